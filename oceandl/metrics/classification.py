"""Classification metrics on a held-out set, from true labels and predicted probabilities."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from oceandl.errors import InputError

__all__ = ["confusion_matrix", "classification_metrics", "expected_calibration_error", "top_k_accuracy",
           "log_loss"]


def _labels(y, num_classes: int, what: str = "y_true") -> np.ndarray:
    """``y`` as a 1-D int64 array of class indices in ``0..num_classes-1``.

    Raises
    ------
    InputError
        If a label is not an integer in that range.
    """
    # An out-of-range label was miscounted without a word (confusion_matrix folded it into another
    # cell, log_loss read -1 as the last class, top-k counted it a miss) or failed as a NumPy error.
    y = np.asarray(y)
    yi = y.astype(np.int64) if np.issubdtype(y.dtype, np.number) else None
    bad = y.ndim != 1 or yi is None or not np.array_equal(yi, y)
    if not bad and y.size:
        bad = yi.min() < 0 or yi.max() >= num_classes
    if bad:
        shown = y.ravel()[:5].tolist()
        raise InputError(f"{what}: labels must be a 1-D array of integers in 0..{num_classes - 1}, "
                         f"got {shown}{'...' if y.size > 5 else ''}")
    return yi


def _probs(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    """Checked labels and (N, C) float64 probabilities; one label per row of ``probs``.

    Raises
    ------
    InputError
        If a row is not a probability distribution: non-finite, a value outside [0, 1], or a sum
        more than 0.01 away from 1 (logits, unnormalised scores).
    """
    p = np.asarray(probs, np.float64)
    if p.ndim != 2:
        raise InputError(f"probs: expected an (N, C) array of class probabilities, got shape {p.shape}")
    y = _labels(y_true, p.shape[1])
    if len(y) != len(p):
        raise InputError(f"y_true has {len(y)} labels but probs has {len(p)} rows")
    # NaN rows argmax to class 0 and count as predictions; a diverged model would score as a guess
    bad = ~np.isfinite(p).all(axis=1)
    if bad.any():
        raise InputError(f"probs: {int(bad.sum())} of {len(p)} rows hold NaN or infinite values "
                         f"(first at row {int(np.argmax(bad))}); the model's outputs are not usable")
    # Logits or unnormalised scores were scored as probabilities without a word: log_loss clipped
    # and renormalised them (logits [[2, -1], [0.5, 1.5]] gave a log-loss of 0.20) and the ECE read
    # a logit of 2 as a confidence. Rows must be distributions; 1e-2 leaves room for probabilities
    # stored rounded (sklearn refuses values above 1 and only warns about sums).
    if p.size:
        sums = p.sum(axis=1)
        off = (p < -1e-6).any(axis=1) | (p > 1 + 1e-6).any(axis=1) | (np.abs(sums - 1) > 1e-2)
        if off.any():
            i = int(np.argmax(off))
            raise InputError(f"probs: {int(off.sum())} of {len(p)} rows are not class probabilities (values "
                             f"in [0, 1] summing to 1; row {i} holds {p[i, :4].round(4).tolist()}"
                             f"{'...' if p.shape[1] > 4 else ''}, sum {sums[i]:.4g}); pass softmax(logits)")
    return y, p


def _count(value, name: str) -> int:
    """``value`` as a positive int (InputError otherwise): a k of -1 sliced all classes but the last."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name}={value!r}: must be a positive integer")
    return int(value)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts; rows are true classes, columns predictions."""
    y_true, y_pred = _labels(y_true, num_classes), _labels(y_pred, num_classes, "y_pred")
    if len(y_true) != len(y_pred):
        raise InputError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    idx = y_true * num_classes + y_pred
    return np.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Fraction of samples whose true class is among the ``k`` most probable.

    Ties are broken towards the lower class index, as ``argmax`` (hence ``accuracy``) breaks them:
    ``k=1`` gives the accuracy and the score never decreases with ``k``. (sklearn's
    ``top_k_accuracy_score`` breaks ties towards the higher index instead.)

    Raises
    ------
    InputError
        If ``k`` is not a positive integer, or the labels or probabilities are not valid.
    """
    k = _count(k, "k")
    y_true, probs = _probs(y_true, probs)
    k = min(k, probs.shape[1])
    # argpartition ordered tied classes arbitrarily: with four classes tied at 0.25, the class that
    # argmax picked (scored right by accuracy) could fall outside the top 2 (top-2 below top-1)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def log_loss(y_true: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped and renormalised)."""
    y_true, probs = _probs(y_true, probs)
    p = np.clip(probs, eps, 1 - eps)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(p)), y_true])))


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> tuple[float, dict]:
    """Expected calibration error (Guo et al. 2017) of the top-class confidence, and the diagram data.

    Returns
    -------
    ece : float
    bins : dict with ``confidence``, ``accuracy`` and ``count`` per bin (for a reliability diagram).
    """
    n_bins = _count(n_bins, "n_bins")
    y_true, probs = _probs(y_true, probs)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    acc = np.bincount(which, weights=correct, minlength=n_bins) / np.maximum(count, 1)
    mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / np.maximum(count, 1)
    ece = float(np.sum(count / max(len(conf), 1) * np.abs(acc - mean_conf)))
    return ece, {"edges": edges.tolist(), "confidence": mean_conf.tolist(), "accuracy": acc.tolist(),
                 "count": count.tolist()}


def classification_metrics(y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str] | None = None,
                           top_k: Sequence[int] = (2, 3)) -> dict:
    """Every metric the course and the SAR/plankton literature report, in one dict.

    Parameters
    ----------
    y_true : (N,) int labels.
    probs : (N, C) predicted class probabilities.
    classes : C class names (default ``"0".."C-1"``).

    Returns
    -------
    dict with ``accuracy``, ``macro_accuracy`` (mean per-class recall over the classes in
    ``y_true``), ``macro_precision``, ``macro_recall``, ``macro_f1`` (means over the classes in
    ``y_true`` or predicted, as sklearn's ``average="macro"``), ``weighted_f1`` (the per-class F1 weighted by
    support, as sklearn's ``average="weighted"``), ``top{k}_accuracy``, ``log_loss``, ``ece``, ``n``,
    ``per_class`` ({name: precision, recall, f1, accuracy, support}), ``confusion_matrix`` (C x C list;
    rows are true classes, columns predictions) and ``reliability`` (diagram data).

    Undefined ratios are 0, as sklearn's ``zero_division=0``: a class never predicted has precision
    0, a class absent from ``y_true`` (support 0) recall 0, and F1 is 0 when both are. Such a class
    still counts in the macro means if it is in ``y_true`` or predicted, and not otherwise.
    ``top{k}_accuracy`` (k < C) breaks ties as ``argmax`` does; ``log_loss`` clips probabilities to
    [1e-15, 1 - 1e-15]; ``ece`` uses 15 equal-width confidence bins (lo, hi].
    """
    y_true, probs = _probs(y_true, probs)
    if len(y_true) == 0:  # every score would be 0 or NaN, reported as if measured
        raise InputError("no samples to score: y_true and probs are empty")
    n_classes = probs.shape[1]
    classes = list(classes) if classes is not None else [str(i) for i in range(n_classes)]
    if len(classes) != n_classes:  # else per_class silently named and kept only the first ones
        raise InputError(f"{len(classes)} class names for {n_classes} columns of probs")
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    # sklearn's zero_division=0 convention: undefined precision/recall count as 0
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    # sklearn's average="macro" (labels from the data): a class neither in y_true nor predicted has
    # no precision, recall or F1 to average. It counted as 0, so a test set without some of the
    # model's classes (e.g. 3 of 10) scored macro-F1 at most 0.3 with every image right.
    seen = present | (predicted > 0)
    ece, reliability = expected_calibration_error(y_true, probs)
    out = {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)),
        "macro_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_precision": float(precision[seen].mean()),
        "macro_recall": float(recall[seen].mean()),
        "macro_f1": float(f1[seen].mean()),
        # with 100+ imbalanced classes the two differ widely and readers of plankton papers expect
        # both: macro weighs a class of 2 test images as one of 2000, weighted follows the counts
        "weighted_f1": float(np.average(f1, weights=support)),
        **{f"top{k}_accuracy": top_k_accuracy(y_true, probs, k) for k in top_k if k < n_classes},
        "log_loss": log_loss(y_true, probs),
        "ece": ece,
        "per_class": {
            c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "accuracy": float(recall[i]), "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
        "classes": classes,
        "reliability": reliability,
    }
    return out
