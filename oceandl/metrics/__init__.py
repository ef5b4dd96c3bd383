"""Metrics: classification (held-out test set) and interpolation (withheld pixels)."""
from .classification import (classification_metrics, confusion_matrix, expected_calibration_error, log_loss,
                             top_k_accuracy)

__all__ = ["classification_metrics", "confusion_matrix", "expected_calibration_error", "log_loss",
           "top_k_accuracy"]
from .interpolation import interp_metrics  # noqa: E402

__all__ += ["interp_metrics"]
