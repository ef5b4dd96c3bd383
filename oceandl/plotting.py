"""Figures written by the engine and the pipelines (matplotlib, Agg backend, imported lazily)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["plot_history", "plot_confusion", "plot_reliability", "plot_image_grid", "plot_fields"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: Sequence[dict], path: str | os.PathLike) -> None:
    """Training curves (loss and, when present, accuracy) per epoch."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    keys = [k for k in ("loss", "accuracy") if any(f"train_{k}" in h for h in history)]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
    for ax, k in zip(axes[0], keys):
        for split in ("train", "val"):
            vals = [h.get(f"{split}_{k}") for h in history]
            if any(v is not None for v in vals):
                ax.plot(ep, vals, marker="o", label=split)
        ax.set_xlabel("epoch"), ax.set_ylabel(k), ax.grid(alpha=0.3), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: str | os.PathLike, normalize: bool = False,
                   title: str = "") -> None:
    """Confusion matrix (rows: true, columns: predicted), raw counts or row-normalised."""
    plt = _plt()
    cm = np.asarray(cm, float)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title or ("normalised" if normalize else "counts"))
    for i in range(n):
        for j in range(n):
            txt = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=6,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(reliability: dict, path: str | os.PathLike, ece: float | None = None) -> None:
    """Reliability diagram: accuracy against confidence per bin."""
    plt = _plt()
    edges = np.asarray(reliability["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    acc, count = np.asarray(reliability["accuracy"]), np.asarray(reliability["count"])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.bar(centers[count > 0], acc[count > 0], width=np.diff(edges)[0], edgecolor="k", alpha=0.7)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("confidence"), ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.3f})" if ece is not None else "reliability")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_image_grid(rows: Sequence[np.ndarray], labels: Sequence[str], path: str | os.PathLike,
                    cmap: str = "gray") -> None:
    """Rows of images (each an (n, H, W) array), e.g. originals and reconstructions."""
    plt = _plt()
    n = len(rows[0])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n, 1.3 * len(rows)), squeeze=False)
    for r, (imgs, lab) in enumerate(zip(rows, labels)):
        for c in range(n):
            axes[r, c].imshow(imgs[c], cmap=cmap)
            axes[r, c].axis("off")
        axes[r, 0].set_title(lab, fontsize=7, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fields(fields: dict, path: str | os.PathLike, cmap: str = "RdYlBu_r", vmin=None, vmax=None,
                error_keys: Sequence[str] = (), fmt: str | None = None) -> None:
    """One 2-D field per panel (title: key); keys in ``error_keys`` get a diverging symmetric scale.
    ``fmt``: the image format (default: from ``path``'s suffix; give it for a temporary name)."""
    plt = _plt()
    n = len(fields)
    ncol = min(n, 4)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 3.0 * nrow), squeeze=False)
    for ax, (k, f) in zip(axes.flat, fields.items()):
        f = np.asarray(f)
        if k in error_keys:
            lim = np.nanpercentile(np.abs(f), 99) if np.isfinite(f).any() else 1
            im = ax.imshow(f, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        else:
            im = ax.imshow(f, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(k, fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format=fmt)
    plt.close(fig)
