"""Figures: colour scales, land, units and titles of the maps; robustness of every plot function."""
from __future__ import annotations

import os

import numpy as np
import xarray as xr
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from oceandl import plotting  # noqa: E402
from oceandl.errors import InputError, OceanDLError  # noqa: E402


@pytest.fixture
def drawn(monkeypatch):
    """The figures saved during the test (inspected after the plot function closed them)."""
    figures = []
    save = Figure.savefig

    def record(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def _panels(fig) -> dict:
    """Panel title -> Axes (colour-bar axes have no title)."""
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def _day():
    rng = np.random.default_rng(0)
    yy = np.linspace(0, 1, 16)[:, None]
    truth = 25.0 - 15.0 * yy + rng.normal(0, 0.5, (16, 16))
    land = np.zeros((16, 16), bool)
    land[:, :3] = True
    truth[land] = np.nan
    gappy = truth.copy()
    gappy[5:10, 6:12] = np.nan  # a cloud
    filled = truth + rng.normal(0, 0.3, truth.shape)
    sigma = np.abs(rng.normal(0.5, 0.2, truth.shape))
    sigma[land] = np.nan
    return truth, gappy, filled, sigma, land


def test_interpolation_figure_scales_land_units_title(tmp_path, drawn):
    from oceandl.pipelines.interpolate import plot_interpolation

    truth, gappy, filled, sigma, land = _day()
    panels = {"truth": truth, "input (gappy)": gappy, "dineof": filled, "dineof error": filled - truth,
              "sigma": sigma}
    plot_interpolation(panels, tmp_path / "day.png", title="dineof: sst on 2020-01-14", land=land,
                       units="degree_Celsius", extent=(-70, -50, 25, 45))
    assert plt.get_fignums() == []
    (fig,) = drawn
    axes = _panels(fig)
    clim = {k: ax.images[0].get_clim() for k, ax in axes.items()}
    # input, filled and truth compare by colour: one scale
    assert clim["truth"] == clim["input (gappy)"] == clim["dineof"]
    lo, hi = clim["truth"]
    assert 9.0 < lo < hi < 26.0
    # the error: diverging, centred on 0
    elo, ehi = clim["dineof error"]
    assert elo == -ehi and ehi > 0 and axes["dineof error"].images[0].get_cmap().name == "RdBu_r"
    # sigma is not on the SST scale (it was: one flat colour at the bottom of 10..25 degC)
    slo, shi = clim["sigma"]
    assert slo == 0.0 and 0.5 < shi < 2.0
    # land drawn (grey, opaque) over every panel, apart from the cloud's NaN (transparent)
    for ax in axes.values():
        overlay = ax.images[-1].get_array()
        assert overlay.shape == (16, 16, 4)
        assert (overlay[land, 3] == 1).all() and (overlay[~land, 3] == 0).all()
    assert fig._suptitle.get_text() == "dineof: sst on 2020-01-14"
    assert {ax.images[0].colorbar.ax.get_ylabel() for ax in axes.values()} == {"°C"}
    assert axes["truth"].get_ylabel() == "latitude (°N)" and axes["sigma"].get_ylabel() == "latitude (°N)"
    assert axes["dineof error"].get_xlabel() == "longitude (°E)"  # the lowest panel of its column
    assert axes["truth"].images[0].get_extent() == [-70, -50, 25, 45]


def test_interpolate_command_figure_has_date_land_and_sigma_scale(tmp_path, drawn):
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.pipelines.interpolate import run_interpolation

    ds = synthetic_sst(n_time=12, ny=16, nx=16, cloud_cover=0.4, seed=0)
    ds.drop_vars(["sst_true", "cloud"]).to_netcdf(tmp_path / "in.nc")
    run_interpolation(tmp_path / "in.nc", tmp_path / "out.nc", method="climatology", device="cpu", withhold=0.5,
                      figure=tmp_path / "day.png", progress=False, log=lambda *a: None)
    (fig,) = drawn
    axes = _panels(fig)
    assert set(axes) == {"input (gappy)", "climatology", "sigma"}
    assert fig._suptitle.get_text().startswith("climatology: sst on 2020-01-")
    assert axes["sigma"].images[0].get_clim()[0] == 0.0
    assert axes["sigma"].images[0].get_clim() != axes["climatology"].images[0].get_clim()
    overlay = axes["input (gappy)"].images[-1].get_array()
    assert (overlay[ds.land.values.astype(bool), 3] == 1).all()
    # the input panel is what the method saw: the pixels withheld for validation are gaps in it
    day = fig._suptitle.get_text().rsplit(" on ", 1)[1]
    observed = int(np.isfinite(ds["sst"].sel(time=day).values).sum())
    shown = np.ma.masked_invalid(axes["input (gappy)"].images[0].get_array()).count()
    with xr.open_dataset(tmp_path / "out.nc") as out:
        withheld = int((out["missing_flag"].sel(time=day).values == 2).sum())
    assert withheld > 0 and shown == observed - withheld


def test_blank_panel_warning_names_the_callers_line(tmp_path, drawn):
    """'no finite value; drawn blank' had stacklevel=2: through plot_interpolation it named
    pipelines/interpolate.py, not the user's line. It names this file now, either way."""
    import warnings

    from oceandl.pipelines.interpolate import plot_interpolation

    panels = {"a": np.full((4, 4), np.nan), "b": np.ones((4, 4))}
    for draw in (plotting.plot_fields, plot_interpolation):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            draw(panels, tmp_path / "f.png")
        assert [(w.filename, w.category) for w in caught] == [(__file__, UserWarning)], \
            [(w.filename, str(w.message)) for w in caught]


def test_error_panels_of_two_methods_share_one_scale(tmp_path, drawn):
    truth, _, filled, _, land = _day()
    big = filled + 3.0 * (filled - truth)
    plotting.plot_fields({"truth": truth, "a": filled, "a error": filled - truth, "b": big, "b error": big - truth},
                         tmp_path / "f.png", vmin=10, vmax=25, error_keys=["a error", "b error"], land=land)
    axes = _panels(drawn[0])
    assert axes["a error"].images[0].get_clim() == axes["b error"].images[0].get_clim()
    assert axes["truth"].images[0].get_clim() == axes["a"].images[0].get_clim() == (10, 25)


def test_nan_only_panels_and_formats_by_suffix(tmp_path, drawn):
    nan = np.full((6, 6), np.nan)
    # a panel with nothing to show is blank, says so, and warns (it was silent: read as a failed drawing)
    with pytest.warns(UserWarning, match="has no finite value; drawn blank") as caught:
        plotting.plot_fields({"a": nan, "a error": nan, "s": nan, "ok": np.ones((6, 6))}, tmp_path / "nan.png",
                             error_keys=["a error"], own_scale_keys=["s"], land=np.zeros((6, 6), bool), units="K")
    assert sorted(str(w.message).split("'")[1] for w in caught) == ["a", "a error", "s"]
    axes = _panels(drawn[0])
    assert [t.get_text() for t in axes["a"].texts] == ["no data"] and len(axes["ok"].texts) == 0
    plotting.plot_fields({"e": np.zeros((4, 4))}, tmp_path / "zero.png", error_keys=["e"])
    plotting.plot_fields({"a": np.ones((4, 4))}, tmp_path / "f.svg")
    plotting.plot_fields({"a": np.ones((4, 4))}, tmp_path / "f.pdf")
    assert (tmp_path / "nan.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()[:400]
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    assert plt.get_fignums() == []


def test_history_whole_epochs_empty_history_and_no_figure_left_open(tmp_path, drawn):
    plotting.plot_history([{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e} for e in (1, 2, 3)],
                          tmp_path / "c.png")
    ticks = drawn[0].axes[0].get_xticks()
    assert np.allclose(ticks, np.round(ticks))  # no 1.25, 1.5 epochs
    # no epoch logged (or only validation metrics): a figure, not a ValueError with the figure left open
    plotting.plot_history([], tmp_path / "e.png")
    plotting.plot_history([{"epoch": 1, "val_loss": 1.0}], tmp_path / "v.png")
    assert (tmp_path / "e.png").is_file() and (tmp_path / "v.png").is_file()
    # a failure while drawing (here: no such folder, an InputError naming it) leaves no figure behind in pyplot
    for call in (lambda p: plotting.plot_fields({"a": np.ones((3, 3))}, p),
                 lambda p: plotting.plot_confusion(np.eye(3), list("abc"), p),
                 lambda p: plotting.plot_history([{"epoch": 1, "train_loss": 1.0}], p),
                 lambda p: plotting.plot_reliability({"edges": np.linspace(0, 1, 11), "accuracy": np.zeros(10),
                                                      "count": np.zeros(10)}, p),
                 lambda p: plotting.plot_image_grid([np.zeros((2, 4, 4))], ["x"], p)):
        with pytest.raises((OSError, InputError), match="missing"):
            call(tmp_path / "missing" / "x.png")
    assert plt.get_fignums() == []


def test_confusion_readable_with_ten_class_names(tmp_path, drawn):
    names = ["Pure Ocean Waves", "Wind Streaks", "Micro Convective Cells", "Rain Cells", "Biological Slicks",
             "Sea Ice", "Iceberg", "Low Wind Area", "Atmospheric Front", "Oceanic Front"]
    cm = np.diag(np.arange(1, 11)) + 1
    plotting.plot_confusion(cm, names, tmp_path / "cm.png", normalize=True, title="t")
    ax = drawn[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert len(ax.texts) == 100


def test_figures_leave_the_users_backend_alone(tmp_path):
    """Every plot function draws without pyplot: a user's backend (a notebook's, a GUI session's)
    is not switched to Agg behind their back (it was, by the first figure of a training run)."""
    before = matplotlib.get_backend()
    matplotlib.use("pdf")  # any backend but Agg, as chosen by a user
    try:
        plotting.plot_fields({"a": np.ones((4, 4)), "a error": np.zeros((4, 4))}, tmp_path / "f.png",
                             error_keys=["a error"])
        plotting.plot_history([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1}], tmp_path / "c.png")
        plotting.plot_confusion(np.eye(3), list("abc"), tmp_path / "cm.png")
        plotting.plot_reliability({"edges": np.linspace(0, 1, 11), "accuracy": np.linspace(0, 1, 10),
                                   "count": np.ones(10)}, tmp_path / "r.png")
        plotting.plot_image_grid([np.zeros((2, 4, 4))], ["x"], tmp_path / "g.png")
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)
    for name in ("f", "c", "cm", "r", "g"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"  # PNGs all the same (Agg)
    assert plt.get_fignums() == []


def _every_plot(path):
    """Each plot function, writing ``path``."""
    return [lambda: plotting.plot_fields({"a": np.ones((3, 3))}, path),
            lambda: plotting.plot_confusion(np.eye(3), list("abc"), path),
            lambda: plotting.plot_history([{"epoch": 1, "train_loss": 1.0}], path),
            lambda: plotting.plot_reliability({"edges": np.linspace(0, 1, 11), "accuracy": np.zeros(10),
                                               "count": np.zeros(10)}, path),
            lambda: plotting.plot_image_grid([np.zeros((2, 4, 4))], ["x"], path)]


def test_figure_written_atomically(tmp_path, monkeypatch):
    """A write that fails part-way (a full disk) leaves neither a half-written PNG nor a temporary,
    and an earlier figure at the path stays as it was (it was replaced by the truncated one)."""
    import matplotlib.image

    imsave = matplotlib.image.imsave

    def disk_full(fname, *args, **kwargs):
        if not isinstance(fname, (str, os.PathLike)):  # into memory
            return imsave(fname, *args, **kwargs)
        with open(fname, "wb") as fh:
            fh.write(b"\x89PNG\r\n\x1a\n")  # the signature, then nothing
        raise OSError(28, "No space left on device")

    old = tmp_path / "day.png"
    old.write_bytes(b"an earlier figure")
    with monkeypatch.context() as mp:
        mp.setattr(matplotlib.image, "imsave", disk_full)  # what Agg writes a PNG with
        for plot in _every_plot(old):
            # ENOSPC is said as a full disk, exit 1 (utils.atomic_path, audit 121), naming the figure
            with pytest.raises(OceanDLError, match=r"day.png: .*No space left on device.*no space left on the disk"):
                plot()
    assert old.read_bytes() == b"an earlier figure"
    assert [p.name for p in tmp_path.iterdir()] == ["day.png"]
    # a folder at the path is refused, never replaced by the figure
    (tmp_path / "folder.png").mkdir()
    for plot in _every_plot(tmp_path / "folder.png"):
        with pytest.raises(InputError, match="is a folder"):
            plot()
    assert (tmp_path / "folder.png").is_dir()
    for plot in _every_plot(old):  # and a good write replaces the old figure
        plot()
        assert old.read_bytes()[:4] == b"\x89PNG" and old.stat().st_size > 500


def test_huge_grid_drawn_from_a_thinned_copy(tmp_path, drawn):
    """A grid far finer than a panel is drawn from every k-th pixel (the whole 4000 x 4000 day took
    43 s and 6 GB): at most MAX_PANEL_PIXELS per axis, same extent, colour limits from every pixel."""
    ny, nx = 2500, 1200
    field = np.tile(np.linspace(0.0, 10.0, ny, dtype=np.float32)[:, None], (1, nx))
    sigma = np.zeros((ny, nx), np.float32)
    sigma[1::3, 1::3] = 4.0  # only on pixels the stride of 3 leaves out
    land = np.zeros((ny, nx), bool)
    land[:, :100] = True
    plotting.plot_fields({"sst": field, "sst error": field - 5, "sigma": sigma}, tmp_path / "big.png",
                         vmin=0, vmax=10, error_keys=["sst error"], own_scale_keys=["sigma"], land=land,
                         extent=(0, 12, -5, 20))
    axes = _panels(drawn[0])
    for ax in axes.values():
        shown, overlay = ax.images[0].get_array(), ax.images[-1].get_array()
        assert shown.shape == (834, 400) and overlay.shape == (834, 400, 4)
        assert ax.images[0].get_extent() == [0, 12, -5, 20]
        assert (overlay[:, :33, 3] == 1).all() and (overlay[:, 34:, 3] == 0).all()
    assert axes["sigma"].images[0].get_clim() == (0.0, 4.0)  # from every pixel, not the thinned ones
    lim = float(np.percentile(np.abs(field - 5), 99))
    assert axes["sst error"].images[0].get_clim() == pytest.approx((-lim, lim))
    assert (tmp_path / "big.png").stat().st_size < 1_000_000


def test_value_panels_share_one_scale_without_limits_given(tmp_path, drawn):
    """Without vmin/vmax the value panels still share one colour scale (each took its own min..max:
    a gappy input 10..14.3 beside its fill 10..20), from all their pixels together."""
    filled = np.add.outer(np.linspace(10, 20, 8), np.zeros(8))
    observed = filled.copy()
    observed[4:] = np.nan
    plotting.plot_fields({"observed": observed, "filled": filled, "filled error": filled - 15,
                          "sigma": np.full((8, 8), 0.5)}, tmp_path / "s.png", error_keys=["filled error"],
                         own_scale_keys=["sigma"])
    axes = _panels(drawn[0])
    both = np.concatenate([observed[np.isfinite(observed)], filled.ravel()])
    expected = tuple(np.percentile(both, [1, 99]))
    assert axes["observed"].images[0].get_clim() == axes["filled"].images[0].get_clim() == pytest.approx(expected)
    assert axes["sigma"].images[0].get_clim() == (0.0, 0.5)
    # one limit given, the other from the data
    plotting.plot_fields({"observed": observed, "filled": filled}, tmp_path / "t.png", vmin=0)
    axes = _panels(drawn[1])
    clims = [axes[k].images[0].get_clim() for k in ("observed", "filled")]
    assert clims[0] == clims[1] == pytest.approx((0, expected[1]))


def test_confusion_colour_scale_from_zero_and_to_one_when_normalised(tmp_path, drawn):
    """A normalised matrix is on 0..1 (it was 0..its largest fraction: 0.6 as dark as 1.0 of
    another model), counts on 0..max (the smallest count was white), and the colour bar says which."""
    cm = np.array([[3, 2], [2, 3]])
    plotting.plot_confusion(cm, ["a", "b"], tmp_path / "n.png", normalize=True)
    plotting.plot_confusion(cm, ["a", "b"], tmp_path / "c.png")
    (norm, ax_n), (counts, ax_c) = ((f.axes[0].images[0], f.axes[0]) for f in drawn)
    assert norm.get_clim() == (0.0, 1.0) and counts.get_clim() == (0.0, 3.0)
    assert norm.colorbar.ax.get_ylabel() == "fraction of the true class (rows sum to 1)"
    assert counts.colorbar.ax.get_ylabel() == "count"
    assert [t.get_text() for t in ax_n.texts] == ["0.60", "0.40", "0.40", "0.60"]
    assert {t.get_color() for t in ax_n.texts} == {"white", "black"}  # 0.6 > 1/2 on the 0..1 scale


def test_normalised_confusion_row_of_an_absent_class_is_blank(tmp_path, drawn):
    """A class with no test sample (a small split) had a row of 0.00: read as never recognised."""
    cm = np.array([[4, 0, 1], [0, 0, 0], [1, 1, 2]])
    plotting.plot_confusion(cm, ["a", "b", "c"], tmp_path / "n.png", normalize=True)
    ax = drawn[0].axes[0]
    shown = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    assert np.isnan(shown[1]).all()
    assert np.allclose(np.nansum(shown, axis=1)[[0, 2]], 1.0)
    assert [t.get_text() for t in ax.texts][3:6] == ["-", "-", "-"]
    assert [t.get_text() for t in ax.texts][:3] == ["0.80", "0.00", "0.20"]


def test_history_loss_on_a_log_axis_when_it_spans_decades(tmp_path, drawn):
    """An auto-encoder's loss from 1 to 1e-4 was on a linear axis: flat at 0 after two epochs."""
    plotting.plot_history([{"epoch": e, "train_loss": 10.0 ** -e, "val_loss": 2 * 10.0 ** -e,
                            "train_accuracy": 0.1 * e, "val_accuracy": 0.1 * e} for e in range(5)],
                          tmp_path / "c.png")
    loss, acc = drawn[0].axes
    assert (loss.get_ylabel(), loss.get_yscale()) == ("loss", "log") and acc.get_yscale() == "linear"
    assert [ln.get_label() for ln in loss.get_lines()] == ["train", "val"]  # on the same axes
    assert loss.get_xlabel() == "epoch"
    # a loss within a factor of 10 (2.39 -> 2.27) and one crossing 0 (a log-likelihood) stay linear
    plotting.plot_history([{"epoch": 1, "train_loss": 2.39, "val_loss": 2.31},
                           {"epoch": 2, "train_loss": 2.27, "val_loss": 2.27}], tmp_path / "d.png")
    plotting.plot_history([{"epoch": 1, "train_loss": 3.0}, {"epoch": 2, "train_loss": -1.0}], tmp_path / "e.png")
    assert drawn[1].axes[0].get_yscale() == drawn[2].axes[0].get_yscale() == "linear"


def test_image_grid_names_each_column(tmp_path, drawn):
    """The SAR/plankton 'one per class' figure showed ten vignettes with no class names."""
    names = ["Pure Ocean Waves", "Wind Streaks", "Micro Convective Cells"]
    plotting.plot_image_grid([np.zeros((3, 4, 4)), np.ones((3, 4, 4))], ["input", "output"], tmp_path / "g.png",
                             titles=names)
    axes = np.array(drawn[0].axes).reshape(2, 3)
    assert [ax.get_xlabel().replace("\n", " ") for ax in axes[-1]] == names
    assert all(ax.get_xlabel() == "" for ax in axes[0]) and axes[0, 0].get_title(loc="left") == "input"
    assert all(len(line) <= 18 for ax in axes[-1] for line in ax.get_xlabel().split("\n"))
    with pytest.raises(ValueError, match="2 titles for 3 columns"):
        plotting.plot_image_grid([np.zeros((3, 4, 4))], ["x"], tmp_path / "h.png", titles=names[:2])


def test_image_benchmark_samples_name_their_class(tmp_path, drawn):
    from oceandl.datasets.images import TENGEOP_CLASSES
    from oceandl.pipelines import get_pipeline, run_pipeline

    run_pipeline(get_pipeline("sar"), tmp_path / "run", overrides={"fast": True, "models": ("cnn",), "epochs": 1},
                 device="cpu", progress=False, log=lambda s: None)
    (samples,) = [f for f in drawn if f.axes[0].get_title(loc="left") == "one per class"]
    assert [ax.get_xlabel().replace("\n", " ") for ax in samples.axes] == list(TENGEOP_CLASSES.values())


def test_descending_latitude_drawn_north_up(tmp_path, drawn):
    """Rows stored north to south (extent lat0 > lat1, what _map_extent gives for a descending
    latitude) were drawn south up: row 0 (60 N) at the bottom of an inverted latitude axis."""
    from oceandl.pipelines.interpolate import _map_extent

    lat = np.linspace(60, 40, 21)  # descending, as in many L3/L4 files
    lon = np.linspace(-30, -10, 11)
    da = xr.DataArray(np.zeros((21, 11)), coords={"lat": lat, "lon": lon}, dims=("lat", "lon"))
    da[0] = 1.0  # the northern row
    land = np.zeros((21, 11), bool)
    land[0, :3] = True  # land in the north-west corner
    extent = _map_extent(da)
    assert extent[2] > extent[3]
    plotting.plot_fields({"sst": da.values}, tmp_path / "n.png", land=land, extent=extent)
    ax = _panels(drawn[0])["sst"]
    assert ax.images[0].get_extent() == [-31.0, -9.0, 39.5, 60.5] and not ax.yaxis_inverted()
    shown = ax.images[0].get_array()
    assert (shown[-1] == 1).all() and (shown[:-1] == 0).all()  # origin lower: the last row is the top
    assert ax.images[-1].get_array()[-1, :3, 3].tolist() == [1, 1, 1]
    assert ax.images[-1].get_array()[:-1, :, 3].sum() == 0
    # an ascending grid is drawn as stored
    ascending = da.isel(lat=slice(None, None, -1))
    plotting.plot_fields({"sst": ascending.values}, tmp_path / "a.png", extent=_map_extent(ascending))
    ax = _panels(drawn[1])["sst"]
    assert ax.images[0].get_extent() == [-31.0, -9.0, 39.5, 60.5] and (ax.images[0].get_array()[-1] == 1).all()


def test_anomaly_field_drawn_diverging_centred_on_zero(tmp_path, drawn):
    """An anomaly file (sst_anom, 'SST anomaly') was drawn on the SST map between its 1st and 99th
    percentiles (-0.75..2.17 here): its white was at +0.71, not at 0."""
    from oceandl.datasets.sst import synthetic_sst
    from oceandl.pipelines.interpolate import is_anomaly, run_interpolation

    ds = synthetic_sst(n_time=12, ny=16, nx=16, cloud_cover=0.4, seed=0)
    anom = (ds["sst"] - ds["sst"].mean("time")) * 0.5 + 0.35
    anom.attrs = {"units": "degree_Celsius", "long_name": "SST anomaly"}
    xr.Dataset({"sst_anom": anom}).to_netcdf(tmp_path / "anom.nc")
    run_interpolation(tmp_path / "anom.nc", tmp_path / "out.nc", method="climatology", device="cpu",
                      figure=tmp_path / "day.png", progress=False, log=lambda *a: None)
    axes = _panels(drawn[0])
    for k in ("input (gappy)", "climatology"):
        lo, hi = axes[k].images[0].get_clim()
        assert lo == -hi and hi > 0 and axes[k].images[0].get_cmap().name == "RdBu_r"
    assert axes["sigma"].images[0].get_cmap().name == "viridis"
    assert is_anomaly(xr.DataArray([1.0], attrs={"standard_name": "sea_surface_temperature_anomaly"}))
    assert not is_anomaly(ds["sst"])  # an SST (even one crossing 0 degC) keeps its sequential range


def test_missing_pixels_read_apart_from_zero_on_diverging_panels(tmp_path, drawn):
    """An unfilled pixel (NaN) and a zero error were both white on the error map: gaps now show the
    panel's hatched background."""
    err = np.zeros((6, 6))
    err[:2] = np.nan  # left unfilled
    err[4:] = 1.0
    plotting.plot_fields({"m error": err, "m": err + 20}, tmp_path / "e.png", error_keys=["m error"])
    for ax in _panels(drawn[0]).values():
        assert ax.patch.get_hatch() == "////" and ax.patch.get_facecolor()[:3] == (1.0, 1.0, 1.0)
        shown = ax.images[0].get_array()
        assert np.ma.getmaskarray(shown)[:2].all() and not np.ma.getmaskarray(shown)[2:].any()


def test_confusion_of_100_classes_has_no_cell_numbers(tmp_path, drawn):
    """A plankton set's 100-class matrix drew 10,000 cell labels (15 s, 1.7 MB per figure, two per
    model, at 6462 x 5863 px): above 30 classes the cells are colour only, every class still named."""
    rng = np.random.default_rng(0)
    names = [f"taxon {k:03d} é" for k in range(100)]
    cm = rng.integers(0, 5, (100, 100)) + np.diag(rng.integers(5, 50, 100))
    cm[7] = 0  # no test image of one class: its normalised row is grey
    plotting.plot_confusion(cm, names, tmp_path / "n.png", normalize=True)
    ax = drawn[0].axes[0]
    assert len(ax.texts) == 0
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert max(drawn[0].get_size_inches()) <= 17.5
    # a name's font fits its row: at most 0.6 of a row's height (points) on the 16-inch side
    assert ax.get_yticklabels()[0].get_fontsize() <= 0.6 * 16 * 72 / 100 + 1e-9
    assert np.isnan(np.ma.filled(ax.images[0].get_array().astype(float), np.nan)[7]).all()
    assert ax.images[0].get_cmap().get_bad()[:3] == pytest.approx((0.8, 0.8, 0.8))
    # 30 classes keep a number per cell
    plotting.plot_confusion(cm[:30, :30], names[:30], tmp_path / "c.png")
    assert len(drawn[1].axes[0].texts) == 900
