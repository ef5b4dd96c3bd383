"""Training engine, batch augmentation and checkpoints."""
from .augment import AUGMENTATIONS, BatchAugment
from .checkpoint import load_checkpoint, read_config, save_checkpoint
from .engine import (TensorData, TrainConfig, TrainResult, evaluate_classifier, fit, inference_batch_size,
                     materialize, predict, reading_workers, split_indices, streaming_workers, training_precision)

__all__ = ["AUGMENTATIONS", "BatchAugment", "load_checkpoint", "read_config", "save_checkpoint", "TensorData",
           "TrainConfig", "TrainResult", "evaluate_classifier", "fit", "inference_batch_size", "materialize", "predict",
           "reading_workers", "split_indices", "streaming_workers", "training_precision"]
