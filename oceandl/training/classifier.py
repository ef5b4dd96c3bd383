"""Train and evaluate a classifier on any labelled image dataset, end to end (the nine steps)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from ..models import count_parameters, get_model, model_task
from ..preprocess import check_spec, preprocess_batch
from .engine import TensorData, TrainConfig, evaluate_classifier, fit, materialize, split_indices

__all__ = ["train_classifier", "prepare_tensors"]


def prepare_tensors(dataset: Dataset, preprocessing: dict | None, progress: bool = False) -> TensorData:
    """Read a dataset once, apply the preprocessing spec, return a :class:`TensorData`."""
    x, y = materialize(dataset, progress=progress, desc="reading images")
    return TensorData(preprocess_batch(x, preprocessing), y, getattr(dataset, "classes", None))


def train_classifier(dataset: Dataset, model: str, out: str | Path | None, config: TrainConfig = TrainConfig(),
                     *, split: Sequence[float] = (0.7, 0.15, 0.15), preprocessing: dict | None = None,
                     model_options: dict | None = None, classes: Sequence[str] | None = None,
                     resume: bool = False, overwrite: bool = False, figures: str | Path | None = None,
                     tta: bool = False, log=None) -> dict:
    """Split ``dataset`` (seeded, stratified), train ``model`` with the best weights on validation,
    test once, and write the checkpoint folder ``out`` (metrics and preprocessing in its config).

    Returns
    -------
    dict with ``test`` (the classification metrics), ``history``, ``params``, ``seconds``,
    ``samples_per_s``, ``split_sizes`` and ``model`` (the trained module).
    """
    if model_task(model) != "classification":
        raise InputError(f"model {model!r} is not a classifier")
    classes = list(classes or getattr(dataset, "classes", None) or [])
    data = prepare_tensors(dataset, preprocessing, progress=config.progress)
    if not classes:
        classes = [str(i) for i in range(int(data.y.max()) + 1)]
    counts = np.bincount(data.targets, minlength=len(classes))
    if (counts < 3).any():
        few = [c for c, n in zip(classes, counts) if n < 3]
        raise InputError(f"class {few[0]!r} has {counts[classes.index(few[0])]} images: at least 3 are needed "
                         "to split it into training, validation and test")
    parts = split_indices(len(data), split, seed=config.seed, stratify=data.targets)
    if any(len(p) == 0 for p in parts):
        raise InputError(f"split {tuple(split)} of {len(data)} images leaves an empty part")
    train, val, test = (TensorData(data.x[p], data.y[p], classes) for p in parts)
    spec = check_spec({**(preprocessing or {}), "size": list(data.x.shape[-2:]), "channels": int(data.x.shape[1])})
    opts = dict(model_options or {})
    if model in ("mlp",) and "input_size" not in opts:
        opts["input_size"] = list(data.x.shape[-2:])
    net = get_model(model, int(data.x.shape[1]), len(classes), **opts)
    meta = {"model_name": model, "model_args": [int(data.x.shape[1]), len(classes)], "model_options": opts,
            "classes": classes, "preprocessing": spec}
    res = fit(net, train, val, config, task="classification", out=out, checkpoint_meta=meta, resume=resume,
              overwrite=overwrite, log=log)
    test_metrics = evaluate_classifier(res.model, test, classes, device=config.device, tta=tta)
    if out is not None:
        # record the test metrics in the checkpoint's config (the weights are already the best ones)
        from .checkpoint import read_config, save_checkpoint, CONFIG

        cfg = read_config(out)
        cfg["metrics"] = {k: v for k, v in test_metrics.items() if k not in ("reliability",)}
        cfg["split_sizes"] = [len(p) for p in parts]
        import json

        tmp = Path(out) / f".{CONFIG}.part"
        tmp.write_text(json.dumps(cfg, indent=2, default=str))
        tmp.replace(Path(out) / CONFIG)
    if figures is not None:
        from ..plotting import plot_confusion, plot_history, plot_reliability

        fig = Path(figures)
        cm = np.array(test_metrics["confusion_matrix"])
        plot_confusion(cm, classes, fig / "confusion.png")
        plot_confusion(cm, classes, fig / "confusion_normalized.png", normalize=True)
        plot_reliability(test_metrics["reliability"], fig / "reliability.png", test_metrics["ece"])
        plot_history(res.history, fig / "curves.png")
    return {"test": test_metrics, "history": res.history, "params": count_parameters(res.model),
            "seconds": res.seconds, "samples_per_s": res.samples_per_s, "best_epoch": res.best_epoch,
            "split_sizes": [len(p) for p in parts], "model": res.model, "config": asdict(config)}
