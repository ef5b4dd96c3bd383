"""Gappy SST benchmark: every interpolation method on identical withheld pixels of the synthetic cube.

Default size: a year of daily fields (365 days) on a 128 x 128 basin, at three cloud-cover levels
(30 %, 60 %, 85 %); 10 % of the valid pixels are withheld by cloud-mask transfer (DINCAE/DINEOF
style) and every method is scored on exactly those pixels (``val_*``), and also against the
synthetic truth on the gaps (``truth_rmse`` over ``truth_n`` of the ``gap_n`` gap pixels: a pixel
never observed in the cube is land to the methods and stays unfilled; a note gives the count).
``fast=True`` runs a tiny cube in seconds. ``transfer_days=N`` also fills the last N days of each
cube with the climatology, eof and DINEOF fitted on the days before (``transform``, as
``oceandl interpolate --fit-on`` does), beside the fill fitted on every day.

A method entry may carry a label, ``NAME:LABEL``, to run one method twice with other options:
``methods=climatology:mean,climatology,dineof method_options=climatology:mean.harmonics=0``
scores the time mean and the seasonal climatology side by side (rows ``climatology:mean@<cover>``).

A method option ``aux=NAME`` (names joined by ``+``) gives the method the cube's auxiliary
variables: ``sst_mw``, the synthetic passive-microwave SST (made only when asked for):
``methods=unet,unet:mw method_options=unet:mw.aux=sst_mw`` scores the U-Net with and without it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from oceandl.errors import InputError

from .runner import Pipeline, RunContext, resolve_fast

__all__ = ["SSTConfig", "PIPELINE", "run", "parse_method_options", "method_name", "truth_rmse_by_day_cover", "COVER_BINS"]


@dataclass(frozen=True)
class SSTConfig:
    """SST benchmark settings (``--set key=value``; method options as ``method_options=unet.steps=400,...``;
    a method entry ``NAME:LABEL`` is method NAME under its own row label and options)."""

    seed: int = 0
    fast: bool = False
    n_time: int = 365
    size: int = 128
    cloud_covers: tuple[float, ...] = (0.3, 0.6, 0.85)
    withhold: float = 0.1
    methods: tuple[str, ...] = ("climatology", "eof", "dineof", "convae", "unet", "resae")
    method_options: tuple[str, ...] = ()
    #: > 0: also fill the last ``transfer_days`` of each cube with the methods that can transform (the
    #: climatology, eof, dineof) fitted on the days before (rows ``METHOD>transfer@COVER``)
    transfer_days: int = 0


FAST = {"n_time": 24, "size": 32}  # the smoke run's cube; its method options are set in run() and recorded per row


def method_name(entry: str) -> str:
    """The interpolation method of a benchmark entry: ``"climatology:mean"`` -> ``"climatology"``."""
    return entry.split(":", 1)[0]


def parse_method_options(items: tuple[str, ...], methods) -> dict[str, dict]:
    """``("unet.steps=400", "dineof.max_modes=30")`` -> ``{"unet": {"steps": 400}, ...}`` (keys: the
    entries of ``methods``, labelled ones as they are written: ``"climatology:mean.harmonics=0"``)."""
    out: dict[str, dict] = {m: {} for m in methods}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise InputError(f"method_options entry {item!r}: expected method.key=value")
        key, value = item.split("=", 1)
        method, opt = key.split(".", 1)
        if method not in out:
            raise InputError(f"method_options entry {item!r}: {method!r} is not among the methods {tuple(methods)}")
        v: object = value
        for t in (int, float):
            try:
                v = t(value)
                break
            except ValueError:
                pass
        if value.lower() in ("true", "false"):
            v = value.lower() == "true"
        out[method][opt] = v
    return out


def run(cfg: SSTConfig, ctx: RunContext) -> dict:
    """Run the SST benchmark; returns ``{"<method>@<cover>": metrics}`` (``val_*``, ``truth_*``)."""
    from oceandl.datasets.clouds import withhold_by_cloud_transfer
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.interp import get_method, interpolate
    from oceandl.io import open_field
    from oceandl.plotting import plot_fields

    from .interpolate import _map_extent

    # an empty list ran nothing and wrote a run folder with an empty table (exit 0)
    if not cfg.methods:
        raise InputError("methods: give at least one interpolation method")
    if not cfg.cloud_covers:
        raise InputError("cloud_covers: give at least one cloud cover")
    # withhold=0 scored nothing: every val_* was NaN in a table that looked complete (exit 0)
    if not 0 < cfg.withhold < 1:
        raise InputError(f"withhold={cfg.withhold}: the fraction of valid pixels scored must be in (0, 1)")
    # rows are keyed method@cover: a repeated entry ran twice and kept one row
    for key in ("methods", "cloud_covers"):
        values = getattr(cfg, key)
        if len(set(values)) < len(values):
            raise InputError(f"{key}={','.join(map(str, values))}: an entry is repeated")
    for m in cfg.methods:
        if m.count(":") > 1 or m.endswith(":") or "." in m:
            raise InputError(f"methods entry {m!r}: expected a method name or NAME:LABEL")
        get_method(method_name(m))
    cfg = resolve_fast(cfg, FAST)
    n_time, size = cfg.n_time, cfg.size
    if isinstance(cfg.transfer_days, bool) or not isinstance(cfg.transfer_days, int) or cfg.transfer_days < 0:
        raise InputError(f"transfer_days={cfg.transfer_days!r}: a number of days >= 0")
    if cfg.transfer_days and not 2 <= cfg.transfer_days <= n_time - 3:
        # the fit needs a few days, and a transfer of every day but one is no fit on another period
        raise InputError(f"transfer_days={cfg.transfer_days}: between 2 and n_time - 3 ({n_time - 3}) days")
    opts = parse_method_options(cfg.method_options, cfg.methods)
    # auxiliary variables of the cube, by name (the method takes them as DataArrays, read below)
    aux_of = {m: str(opts[m].pop("aux")).split("+") for m in cfg.methods if "aux" in opts[m]}
    for m, names in aux_of.items():
        if not get_method(method_name(m)).takes_aux:
            raise InputError(f"method_options {m}.aux: method {method_name(m)!r} takes no auxiliary variables")
        unknown = [n for n in names if n != "sst_mw"]
        if unknown:
            raise InputError(f"method_options {m}.aux={'+'.join(names)}: the synthetic cube's auxiliary variable "
                             f"is sst_mw, not {unknown[0]!r}")
        if len(set(names)) != len(names):  # refused by the method only once the methods before it had run
            raise InputError(f"method_options {m}.aux={'+'.join(names)}: "
                             f"{', '.join(sorted({n for n in names if names.count(n) > 1}))} given twice")
    if cfg.fast:
        for m in cfg.methods:
            if method_name(m) in ("convae", "unet", "resae", "smp_unet"):
                opts[m] = {"steps": 20, "patch": 32, "tile": 32, "overlap": 8, **opts[m]}
            if method_name(m) == "dineof" and "n_modes" not in opts[m]:  # max_modes acts only without it
                opts[m] = {"max_modes": 6, **opts[m]}
    ctx.note(f"synthetic SST cube: {n_time} days x {size} x {size}, cloud covers {cfg.cloud_covers}, "
             f"{cfg.withhold:.0%} of the valid pixels withheld by cloud-mask transfer (seed {cfg.seed})")
    results: dict[str, dict] = {}
    for cover in cfg.cloud_covers:
        ds = synthetic_sst(n_time=n_time, ny=size, nx=size, cloud_cover=cover, seed=cfg.seed,
                           microwave=bool(aux_of))
        da = open_field(ds, "sst")
        if cover == cfg.cloud_covers[0]:
            # results.md gave the errors without their unit (the data set says it: degree_Celsius)
            ctx.note(f"units: val_rmse, val_mae, val_bias and truth_rmse* in {ds.sst.attrs.get('units', 'the data units')} "
                     f"(the data's); val_corr, val_std_ratio and val_frac_within_1sigma are unitless; "
                     f"seconds: the method's wall time")
        truth = open_field(ds.assign(sst=ds["sst_true"]), "sst").values
        valid = np.isfinite(da.values)
        withheld = withhold_by_cloud_transfer(valid, fraction=cfg.withhold, seed=cfg.seed)
        gaps = (~valid | withheld) & np.isfinite(truth)
        day = int(np.argsort((~valid).mean(axis=(1, 2)))[len(valid) // 2])
        panels = {"truth": truth[day], "input": np.where(valid[day] & ~withheld[day], da.values[day], np.nan)}
        for method in cfg.methods:
            ctx.log(f"cloud cover {cover:.0%}: {method} {opts[method] or ''}")
            t0 = time.perf_counter()
            aux = [open_field(ds, n) for n in aux_of[method]] if method in aux_of else None
            out = interpolate(da, method_name(method), withheld=withheld, return_dataset=True, seed=cfg.seed, device=ctx.device,
                              progress=ctx.progress, aux=aux, **opts[method])
            seconds = time.perf_counter() - t0
            filled = out["sst"].values
            scores = _scores(out, da.values, truth, withheld, gaps)
            row = {"method": method, "cloud_cover": cover, "observed_cover": float(1 - valid.sum() / np.isfinite(truth).sum()),
                   **scores, "seconds": round(seconds, 2), "device": ctx.device, "options": opts[method],
                   **({"aux": "+".join(aux_of[method])} if method in aux_of else {}),
                   **_fit_attrs(out, ("n_modes", "cv_rmse", "harmonics"))}
            results[f"{method}@{cover:g}"] = row
            if cfg.transfer_days and get_method(method_name(method)).can_transform and method not in aux_of:
                results[f"{method}>transfer@{cover:g}"] = _transfer_row(
                    da, truth, withheld, filled, method, opts[method], cover, cfg, ctx)
            panels[method] = filled[day]
            panels[f"{method} error"] = filled[day] - truth[day]
            ctx.log(f"  val_rmse {scores['val_rmse']:.4f}  truth_rmse {scores['truth_rmse']:.4f}  {seconds:.1f} s")
        unscored = {m: results[f"{m}@{cover:g}"]["gap_n"] - results[f"{m}@{cover:g}"]["truth_n"] for m in cfg.methods}
        if any(unscored.values()):  # else truth_rmse reads as "every gap" while it left these out
            ctx.note(f"cover {cover:.0%}: gap pixels left unfilled, hence out of truth_rmse (pixels never observed "
                     f"are land to the methods): " + ", ".join(f"{m} {n} of {int(gaps.sum())}" for m, n in unscored.items()))
        finite = truth[day][np.isfinite(truth[day])]
        plot_fields(panels, ctx.folder / f"fields_cover{int(round(cover * 100))}.png",
                    vmin=float(np.percentile(finite, 1)), vmax=float(np.percentile(finite, 99)),
                    error_keys=[k for k in panels if k.endswith("error")],
                    land=ds.land.values.astype(bool), units=ds.sst.attrs.get("units"),
                    title=f"cloud cover {cover:.0%}: {str(ds.time.values[day])[:10]}",
                    extent=_map_extent(da))
        _summary(results, cover, cfg.methods, ctx)
    return results


def _transfer_row(da, truth, withheld, filled, method: str, opts: dict, cover: float, cfg, ctx) -> dict:
    """``method`` fitted on all but the last ``cfg.transfer_days`` days of ``da`` and filling those
    with :meth:`~oceandl.interp.base.Interpolator.transform`: scored as the main rows on their
    withheld pixels and gaps, beside the fill of the whole cube (``filled``) on the same days."""
    from oceandl.interp import get_method
    from oceandl.metrics.interpolation import interp_metrics

    cut = da.sizes["time"] - cfg.transfer_days
    new, held = da.isel(time=slice(cut, None)), withheld[cut:]
    t0 = time.perf_counter()
    model = get_method(method_name(method))(seed=cfg.seed, device=ctx.device, progress=ctx.progress, **opts)
    # the fit never sees the new days' withheld pixels: it never sees the new days at all
    out = model.fit(da.isel(time=slice(0, cut))).transform(new, withheld=held)
    seconds = time.perf_counter() - t0
    gaps = (~np.isfinite(new.values) | held) & np.isfinite(truth[cut:])
    scores = _scores(out, new.values, truth[cut:], held, gaps)
    # on the gaps the transfer filled: pixels never seen in the fitted days stay unfilled (land to its fit)
    whole = interp_metrics(filled[cut:], truth[cut:], mask=gaps & np.isfinite(out["sst"].values))
    row = {"method": f"{method}>transfer", "cloud_cover": cover, **scores, "whole_cube_truth_rmse": whole["rmse"],
           "fitted_days": int(cut), "transfer_days": int(cfg.transfer_days), "seconds": round(seconds, 2),
           "device": ctx.device, "options": opts, **_fit_attrs(out, ("n_modes", "harmonics"))}
    ctx.log(f"  {method} fitted on the first {cut} days, filling the last {cfg.transfer_days}: truth_rmse "
            f"{scores['truth_rmse']:.4f} (the fill of the whole cube there: {whole['rmse']:.4f})")
    return row


def _scores(out, values: np.ndarray, truth: np.ndarray, withheld: np.ndarray, gaps: np.ndarray) -> dict:
    """A row's scores of the fill ``out`` (the interpolation Dataset): ``val_*`` on the ``withheld``
    pixels of ``values`` (with its sigma, if any), ``truth_rmse``/``truth_n`` on ``gaps``, ``gap_n`` and
    the per-day-cover bins (:func:`truth_rmse_by_day_cover`)."""
    from oceandl.metrics.interpolation import interp_metrics

    fill = out["sst"].values
    val = interp_metrics(fill, values, mask=withheld, sigma=out["sigma"].values if "sigma" in out else None)
    tru = interp_metrics(fill, truth, mask=gaps)
    return {**{f"val_{k}": v for k, v in val.items()}, "truth_rmse": tru["rmse"], "truth_n": tru["n"],
            "gap_n": int(gaps.sum()), **truth_rmse_by_day_cover(fill, truth, gaps)}


def _fit_attrs(out, keys: tuple[str, ...]) -> dict:
    """The fill's attrs among ``keys`` (the modes used, harmonics...) that it has."""
    return {k: out["sst"].attrs[k] for k in keys if k in out["sst"].attrs}


# Days binned by their gap fraction (clouds + withheld, over the ocean): what a fill is worth on a
# nearly clear day and on a nearly overcast one differs, and the all-gaps RMSE mixes them.
COVER_BINS = ((0.0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.0))


def _bin_name(lo: float, hi: float) -> str:
    return f"truth_rmse_days_{int(round(lo * 100))}_{int(round(hi * 100))}"


def truth_rmse_by_day_cover(filled: np.ndarray, truth: np.ndarray, gaps: np.ndarray) -> dict[str, float]:
    """RMSE against the truth on the gaps, for the days of each gap-fraction bin of :data:`COVER_BINS`.

    Parameters
    ----------
    filled, truth : float (time, lat, lon)
    gaps : bool (time, lat, lon); the pixels scored (ocean pixels not seen by the method)

    Returns
    -------
    dict
        ``truth_rmse_days_<lo>_<hi>`` (percent bounds; the last bin includes 100 %) -> RMSE, NaN
        where no day falls in the bin; ``n_days_<lo>_<hi>`` -> the number of days.
    """
    from oceandl.metrics.interpolation import interp_metrics

    cover = gaps.sum(axis=(1, 2)) / np.maximum(np.isfinite(truth).sum(axis=(1, 2)), 1)
    out: dict[str, float] = {}
    for lo, hi in COVER_BINS:
        days = (cover >= lo) & ((cover <= hi) if hi >= 1.0 else (cover < hi))
        name = _bin_name(lo, hi)
        out[name] = interp_metrics(filled[days], truth[days], mask=gaps[days])["rmse"]  # NaN for no pixel
        out[name.replace("truth_rmse", "n")] = int(days.sum())
    return out


def _summary(results: dict, cover: float, methods, ctx: RunContext) -> None:
    neural = [m for m in methods if method_name(m) in ("convae", "unet", "resae", "smp_unet")]
    rows = {m: results[f"{m}@{cover:g}"] for m in methods}
    for m in methods:
        tr = results.get(f"{m}>transfer@{cover:g}")
        if tr is not None:
            ctx.note(f"cover {cover:.0%}: {m} fitted on the first {tr['fitted_days']} days fills the last "
                     f"{tr['transfer_days']} with RMSE {tr['truth_rmse']:.4f} against the truth at their gaps; "
                     f"fitted on the whole cube, {tr['whole_cube_truth_rmse']:.4f} ({_change(tr['truth_rmse'], tr['whole_cube_truth_rmse'])})")
    if "dineof" in rows and "climatology" in rows:
        d, c = rows["dineof"]["val_rmse"], rows["climatology"]["val_rmse"]
        ctx.note(f"cover {cover:.0%}: DINEOF held-out RMSE {d:.4f} vs climatology {c:.4f} ({_change(d, c)})")
    if neural and "dineof" in rows:
        best = min(neural, key=lambda m: rows[m]["val_rmse"])
        b, d = rows[best]["val_rmse"], rows["dineof"]["val_rmse"]
        ctx.note(f"cover {cover:.0%}: best neural method {best} held-out RMSE {b:.4f} vs DINEOF {d:.4f} "
                 f"({_change(b, d)})")


def _change(new: float, ref: float) -> str:
    """'12.3% lower' / '4.5% higher' (an RMSE against its reference); '+-46.8% improvement' read badly."""
    if not (np.isfinite(new) and np.isfinite(ref)) or ref == 0:
        return "not comparable"
    r = new / ref - 1
    return f"{abs(r):.1%} {'lower' if r < 0 else 'higher'}"


PIPELINE = Pipeline(
    name="sst", config_cls=SSTConfig, run=run, fast=FAST, timings=("seconds",),
    columns=("val_rmse", "val_mae", "val_bias", "val_corr", "val_std_ratio", "val_frac_within_1sigma", "truth_rmse",
             *(_bin_name(lo, hi) for lo, hi in COVER_BINS), "whole_cube_truth_rmse", "n_modes", "harmonics", "seconds",
             "device"),
    description="Gap filling of a synthetic cloudy SST cube: every method scored on identical withheld pixels.",
    legend="name: METHOD@COVER, the cube's mean cloud cover; val_*: on the pixels withheld by cloud-mask transfer "
           "(never seen by the method): rmse, mae, bias (mean of fill - observed), corr (Pearson), std_ratio "
           "(std of the fill / std of the observed; below 1: over-smoothed), frac_within_1sigma (share of "
           "|error| <= the method's sigma, 0.683 when calibrated; methods that give a sigma only); truth_rmse: "
           "against the cloud-free truth on every gap filled (clouds and withheld pixels); "
           "truth_rmse_days_LO_HI: the same on the days whose gap fraction is in [LO, HI) percent (HI 100 "
           "included; nan: no such day); METHOD>transfer@COVER (transfer_days > 0): METHOD fitted on the days "
           "before the last transfer_days and filling those with transform(), never fitted on them, scored on "
           "their withheld pixels and gaps; whole_cube_truth_rmse: the METHOD@COVER fill (fitted on every day) "
           "on the same days and the gaps the transfer filled; n_modes: EOF modes used; harmonics: seasonal harmonics removed per pixel (0: the time mean); "
           "seconds: the method's wall time; device: where it ran. Units below.",
)
