"""Figures written by the engine and the pipelines (matplotlib, imported lazily).

The figures are :class:`matplotlib.figure.Figure` objects made outside pyplot: saving one draws it
with the renderer of the file format (Agg for PNG), with no display, whatever backend the user has
chosen, and the user's backend is left as it was (``matplotlib.use("Agg")`` here switched a
notebook's or a GUI session's interactive backend off as soon as a model was trained). Nothing is
registered in pyplot, so no figure is left open however the drawing ends.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import warn
from .units import unit_label

__all__ = ["plot_history", "plot_confusion", "plot_reliability", "plot_image_grid", "plot_fields"]


def _figure(**kwargs):
    """A new figure, not registered in pyplot (see the module docstring)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig, path, dpi: int, fmt: str | None = None) -> None:
    """Write ``fig`` to ``path`` under a temporary name, renamed once complete.

    A failure part-way (a full disk; an error while drawing a PDF or SVG, which is streamed to the
    file as it is drawn) left a half-written image at ``path`` (in place of an earlier one); it now
    leaves ``path`` as it was. The format is ``fmt``, else ``path``'s suffix, else matplotlib's
    default (PNG). ``path`` may also be an open binary file, written directly.
    """
    from matplotlib import rcParams

    from .utils import atomic_path, check_output_path

    if not isinstance(path, (str, os.PathLike)):
        fig.savefig(path, dpi=dpi, format=fmt)
        return
    fmt = fmt or Path(path).suffix[1:].lower() or rcParams["savefig.format"]
    check_output_path(path, overwrite=True, kind="file", what="figure")  # never a folder replaced by a figure
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)


#: the most pixels a map panel keeps along each axis: a panel is about 300 pixels wide on the page,
#: so a finer grid only costs time and memory (a 4000 x 4000 day took 43 s and 6 GB to draw)
MAX_PANEL_PIXELS = 1000


def _thin(a: np.ndarray) -> np.ndarray:
    """``a`` (2-D) subsampled with one stride on both axes to at most :data:`MAX_PANEL_PIXELS` per
    axis: what the panel's nearest-neighbour drawing shows anyway, without resampling the full grid."""
    step = -(-max(a.shape[:2]) // MAX_PANEL_PIXELS)
    return a[::step, ::step] if step > 1 else a


def plot_history(history: Sequence[dict], path: str | os.PathLike) -> None:
    """Training curves (loss and, when present, accuracy) per epoch, train and validation on the
    same axes; the loss on a log axis when its values span more than a factor of 10."""
    from matplotlib.ticker import MaxNLocator

    ep = [h["epoch"] for h in history]
    # a metric logged for either split gets a panel (one with none: an empty "loss" panel, not a crash)
    keys = [k for k in ("loss", "accuracy") if any(f"{s}_{k}" in h for h in history for s in ("train", "val"))]
    keys = keys or ["loss"]
    fig = _figure(figsize=(5 * len(keys), 3.5))
    axes = fig.subplots(1, len(keys), squeeze=False)
    for ax, k in zip(axes[0], keys):
        shown = []
        for split in ("train", "val"):
            vals = [h.get(f"{split}_{k}") for h in history]
            if any(v is not None for v in vals):
                ax.plot(ep, vals, marker="o", label=split)
                shown += [float(v) for v in vals if v is not None]
        shown = np.asarray(shown)
        shown = shown[np.isfinite(shown)]
        if k == "loss" and shown.size and shown.min() > 0 and shown.max() / shown.min() > 10:
            # a loss over a decade or more: on a linear axis every epoch after the first few is flat at 0
            ax.set_yscale("log")
        ax.set_xlabel("epoch"), ax.set_ylabel(k), ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.25, 1.5 ticks
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    _save(fig, path, dpi=110)


#: above this many classes a confusion matrix has no number in its cells: 100 classes were 10,000
#: labels, 15 s and 1.7 MB per figure, too small to read anyway (the counts are in the metrics)
MAX_CELL_LABELS = 30


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: str | os.PathLike, normalize: bool = False,
                   title: str = "") -> None:
    """Confusion matrix (rows: true, columns: predicted), raw counts or row-normalised.

    The colour scale runs from 0 to the largest count, or from 0 to 1 when normalised (so that two
    models' matrices compare by colour); the colour bar says which. Normalised, the row of a class
    with no sample is blank (grey, ``-`` in its cells).

    Up to :data:`MAX_CELL_LABELS` classes each cell shows its number; above, the matrix is drawn by
    colour alone on a figure of at most 16 inches, every class named in a font small enough to
    fit its row (plankton sets have 100+ classes: 10,000 numbers took most of the drawing time and
    were too small to read). The numbers are in the metrics' ``confusion_matrix``.
    """
    cm = np.asarray(cm, float)
    if normalize:
        # a class with no test sample has no fraction to show: blank ('-'), not a row of 0.00 that
        # reads as a class never recognised
        total = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, total, out=np.full_like(cm, np.nan), where=total > 0)
    n = len(classes)
    if n <= MAX_CELL_LABELS:
        size = (1.0 + 0.55 * n, 0.8 + 0.5 * n)
    else:
        side = min(4.0 + 0.12 * n, 16.0)
        size = (side + 1.5, side)
    fig = _figure(figsize=size)
    ax = fig.subplots()
    _draw_confusion(fig, ax, cm, classes, normalize, title)
    _save(fig, path, dpi=110)


def _draw_confusion(fig, ax, cm: np.ndarray, classes: Sequence[str], normalize: bool, title: str) -> None:
    import matplotlib

    n = len(classes)
    # the scale starts at 0 (left to imshow, the smallest count was white: 2 read as none) and a
    # normalised matrix ends at 1 (else 0.6 was the darkest blue of a poor model, 1.0 of a good one)
    top = 1.0 if normalize else max(float(np.nanmax(cm, initial=0.0)), 1.0)
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="0.8")  # a row with no sample: grey, not "0"
    im = ax.imshow(cm, cmap=cmap, vmin=0.0, vmax=top, interpolation="nearest")
    labelled = n <= MAX_CELL_LABELS
    # unlabelled cells: names in a font of about 0.6 of a row's height, so that they do not overlap
    font = 8 if labelled else float(np.clip(0.6 * fig.get_figheight() * 72 / n, 2.5, 8))
    ax.set_xticks(range(n), classes, rotation=60 if labelled else 90, ha="right" if labelled else "center",
                  fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title or ("normalised" if normalize else "counts"))
    if labelled:
        for i in range(n):
            for j in range(n):
                txt = "-" if np.isnan(cm[i, j]) else f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=6,
                        color="white" if cm[i, j] > top / 2 else "black")
    cb = fig.colorbar(im, ax=ax, fraction=0.046)
    cb.set_label("fraction of the true class (rows sum to 1)" if normalize else "count", fontsize=8)
    _room_for_names(fig, ax, n, cell=0.4 if labelled else 1.4 * font / 72)
    fig.tight_layout()
    _crop_to_drawing(fig)


def _room_for_names(fig, ax, n: int, cell: float) -> None:
    """Widen and heighten ``fig`` so that ``n`` cells of ``cell`` inches and the class names
    around them fit: the size was set by the number of classes alone, so a few long names (a
    taxonomy tree's 'Protista/Diatoms/Chaetoceros sp') left tight_layout no room ('Tight layout
    not applied') and were cut at the figure's edges."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    r = FigureCanvasAgg(fig).get_renderer()  # this figure's own canvas: pyplot's backend is left alone
    dpi = fig.dpi
    names_w = max((t.get_window_extent(r).width for t in ax.get_yticklabels()), default=0.0) / dpi
    names_h = max((t.get_window_extent(r).height for t in ax.get_xticklabels()), default=0.0) / dpi
    title_w = ax.title.get_window_extent(r).width / dpi
    # beside the cells: the names, the 'true' label and margins (0.6), the colour bar and its label (1.0);
    # below and above: the names, the 'predicted' label (0.4), the title (0.4) and margins (0.2)
    width = max(n * cell + names_w + 1.6, title_w + names_w + 0.8)
    height = n * cell + names_h + 1.0
    w, h = fig.get_size_inches()
    if width > w or height > h:
        fig.set_size_inches(max(w, width), max(h, height))


def _crop_to_drawing(fig, pad: float = 0.1) -> None:
    """Resize ``fig`` to what is drawn on it plus ``pad`` inches, the axes kept at their size in
    inches: as ``savefig(bbox_inches="tight")`` does, for every format and caller. A title wider
    than a 2-class matrix ran off the figure ('test accuracy 0.719 (cou'); the matrix, kept
    square, left blank bands where the figure was made room for long names."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    r = FigureCanvasAgg(fig).get_renderer()
    for a in fig.axes:
        a.apply_aspect()  # the square box drawn, not the cell tight_layout gave it
    bb = fig.get_tightbbox(r)  # inches, in the figure's frame (beyond it where something runs off)
    w, h = fig.get_size_inches()
    x0, y0 = bb.x0 - pad, bb.y0 - pad
    nw, nh = bb.width + 2 * pad, bb.height + 2 * pad
    for a in fig.axes:
        p = a.get_position()
        a.set_position([(p.x0 * w - x0) / nw, (p.y0 * h - y0) / nh, p.width * w / nw, p.height * h / nh])
    fig.set_size_inches(nw, nh)


def plot_reliability(reliability: dict, path: str | os.PathLike, ece: float | None = None) -> None:
    """Reliability diagram: accuracy against confidence per bin."""
    edges = np.asarray(reliability["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    acc, count = np.asarray(reliability["accuracy"]), np.asarray(reliability["count"])
    fig = _figure(figsize=(4, 4))
    ax = fig.subplots()
    ax.bar(centers[count > 0], acc[count > 0], width=np.diff(edges)[0], edgecolor="k", alpha=0.7)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("confidence"), ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.3f})" if ece is not None else "reliability")
    fig.tight_layout()
    _save(fig, path, dpi=110)


def plot_image_grid(rows: Sequence[np.ndarray], labels: Sequence[str], path: str | os.PathLike,
                    cmap: str = "gray", titles: Sequence[str] | None = None) -> None:
    """Rows of images (each an (n, H, W) array), e.g. originals and reconstructions.

    ``labels`` name the rows; ``titles`` (one per column, e.g. the class of each image) go under
    the images of the last row, long ones wrapped onto two lines.
    """
    import textwrap

    n = len(rows[0])
    if titles is not None and len(titles) != n:
        raise ValueError(f"plot_image_grid: {len(titles)} titles for {n} columns")
    fig = _figure(figsize=(1.2 * n, 1.3 * len(rows) + (0.3 if titles is not None else 0)))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (imgs, lab) in enumerate(zip(rows, labels)):
        for c in range(n):
            axes[r, c].imshow(imgs[c], cmap=cmap)
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            axes[r, c].set_frame_on(False)
        axes[r, 0].set_title(lab, fontsize=7, loc="left")
    for c, t in enumerate(titles or ()):
        # the x label (not axis("off"), which hides it) of the bottom image of the column
        axes[-1, c].set_xlabel(textwrap.fill(str(t), 18), fontsize=6)
    fig.tight_layout()
    _save(fig, path, dpi=110)


def plot_fields(fields: dict, path: str | os.PathLike, cmap: str = "RdYlBu_r", vmin=None, vmax=None,
                error_keys: Sequence[str] = (), fmt: str | None = None, *, own_scale_keys: Sequence[str] = (),
                land: np.ndarray | None = None, units: str | None = None, title: str = "",
                extent: Sequence[float] | None = None) -> None:
    """One 2-D field per panel (title: key), ``origin="lower"`` (row 0 is the southern edge, unless
    ``extent`` says the rows go north to south).

    Parameters
    ----------
    fields : dict
        Panel title -> 2-D array; NaN is drawn as missing (hatched white: apart from a value drawn
        white, such as 0 on a diverging map); a panel with no finite value is
        drawn blank, marked "no data", with a warning. A grid finer than
        :data:`MAX_PANEL_PIXELS` along an axis is drawn from every k-th pixel (the same k on both
        axes): the figure looks the same, drawn in seconds; the colour limits still come from every pixel.
    path : str or os.PathLike
        Image file.
    cmap, vmin, vmax
        Colour map and limits of the value panels (shared by all of them: input, filled and truth
        compare by colour); a limit not given is the 1st (``vmin``) or 99th (``vmax``) percentile
        of the finite pixels of all the value panels together.
    error_keys : sequence of str
        Panels drawn on a diverging map centred on 0, all on one scale symmetric at the 99th
        percentile of their ``|f|``.
    fmt : str, optional
        Image format (default: from ``path``'s suffix; give it for a temporary name).
    own_scale_keys : sequence of str
        Panels of another quantity (an uncertainty ``sigma``) on their own sequential scale from 0.
    land : numpy.ndarray of bool, optional
        Land mask (same shape as the fields), drawn grey on every panel so that it reads apart from
        missing (cloudy, hatched) pixels.
    units : str, optional
        Label of the colour bars (also of the error and ``own_scale_keys`` panels: same units).
    title : str
        Figure title (e.g. the date shown).
    extent : sequence of 4 float, optional
        ``(lon0, lon1, lat0, lat1)``: the outer edges of the first and last column and of the first
        and last row, as ``pipelines.interpolate._map_extent`` gives them: axes in degrees, labelled;
        without it the panels have no axes. Rows stored north to south (``lat0 > lat1``: a
        descending latitude, as in many L3/L4 products) are drawn north up, and columns stored
        east to west east right.
    """
    n = len(fields)
    if n == 0:
        raise ValueError("plot_fields: no field to draw")
    ncol = min(n, 4)
    nrow = -(-n // ncol)
    fig = _figure(figsize=(3.3 * ncol, 3.0 * nrow + (0.3 if title else 0)))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    kw = {"origin": "lower", "interpolation": "nearest"}
    flip = (slice(None), slice(None))
    if extent is not None:
        x0, x1, y0, y1 = (float(e) for e in extent)
        # imshow draws row 0 at lat0: with a descending latitude that put north at the bottom of the
        # map (under an inverted axis); the rows (columns) are reversed instead, the axes ascending
        flip = (slice(None, None, -1 if y0 > y1 else 1), slice(None, None, -1 if x0 > x1 else 1))
        kw["extent"] = (min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1))
        kw["aspect"] = "auto"
    land_rgba = None
    if land is not None:
        # grey where land, transparent elsewhere, over each panel: NaN alone draws land and clouds alike
        shown = _thin(np.asarray(land, bool))[flip]
        land_rgba = np.zeros(shown.shape + (4,))
        land_rgba[shown] = (0.55, 0.55, 0.55, 1.0)
    # one symmetric scale for all the error panels: the benchmark compares methods by them (each
    # on its own 99th percentile, the same red was 8 degC in one panel and 6 in the next)
    errors = [np.abs(np.asarray(fields[k], dtype=float)) for k in fields if k in error_keys]
    errors = np.concatenate([e[np.isfinite(e)] for e in errors]) if errors else np.array([])
    lim = float(np.percentile(errors, 99)) if errors.size else 1.0
    lim = lim if lim > 0 else 1.0  # all zero: a visible white panel, not a degenerate scale
    if vmin is None or vmax is None:
        # one scale for every value panel, as given ones are: left to imshow, each panel took its own
        # min..max (a gappy input 10..14.3 degC beside its fill 10..20, the same red 14 and 20 degC)
        values = [np.asarray(fields[k]) for k in fields if k not in error_keys and k not in own_scale_keys]
        values = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
        if values.size:
            lo, hi = np.percentile(values, [1, 99])
            vmin, vmax = float(lo) if vmin is None else vmin, float(hi) if vmax is None else vmax
    for idx, (ax, (k, f)) in enumerate(zip(axes.flat, fields.items())):
        full = np.asarray(f)
        f = _thin(full)[flip].astype(float)
        if k in error_keys:
            im = ax.imshow(f, cmap="RdBu_r", vmin=-lim, vmax=lim, **kw)
        elif k in own_scale_keys:
            hi = float(np.nanpercentile(full, 99)) if np.isfinite(full).any() else 1.0
            im = ax.imshow(f, cmap="viridis", vmin=0.0, vmax=hi if hi > 0 else 1.0, **kw)
        else:
            im = ax.imshow(f, cmap=cmap, vmin=vmin, vmax=vmax, **kw)
        if land_rgba is not None and np.shape(land) == np.shape(fields[k]):
            ax.imshow(land_rgba, **kw)
        # missing pixels (NaN) show the panel's background: hatched, so that a gap reads apart from
        # a value drawn white (0 on the diverging error and anomaly maps, where they looked alike)
        ax.patch.set_facecolor("white")
        ax.patch.set_edgecolor("0.7")
        ax.patch.set_hatch("////")
        if not np.isfinite(full).any():
            # a blank panel read as a drawing failure (or as a field of the lowest colour): say why
            warn(f"{os.fspath(path) if isinstance(path, (str, os.PathLike)) else 'figure'}: "
                 f"panel {k!r} has no finite value; drawn blank")
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=9,
                    color="0.3")
        ax.set_title(k, fontsize=9)
        if extent is None:
            ax.axis("off")
        else:
            ax.tick_params(labelsize=7)
            if idx + ncol >= n:  # the lowest panel of its column
                ax.set_xlabel("longitude (°E)", fontsize=8)
            if idx % ncol == 0:
                ax.set_ylabel("latitude (°N)", fontsize=8)
        cb = fig.colorbar(im, ax=ax, fraction=0.046)
        if units:
            # any spelling the interpolators read as degC, degF or kelvin ("C", "degF"), as a reader expects it
            cb.set_label(unit_label(units), fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path, dpi=100, fmt=fmt)
