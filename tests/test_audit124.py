"""Audit 124: one rule for a netCDF write's exit code, in memory and with --chunks (2 for what netCDF
cannot store, 1 for an I/O failure); --fit-on --chunks names a corrupt input; a dim in degrees_north
beside the latitude said exactly is warned of; colour bars label any spelling of degC/degF/K; an EOF
analysis from Python is written compressed as the CLI writes it."""
from __future__ import annotations

import errno
import os
import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from fakes import cli_climatology, make_raise, set_free_disk, assert_cli_error

from oceandl import utils
from oceandl.cli.main import cli
from oceandl.datasets.sst import synthetic_sst
from oceandl.errors import InputError, OceanDLError
from oceandl.interp import chunked
from oceandl.io import write_netcdf

@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("audit124") / "c.nc"
    synthetic_sst(seed=4, n_time=10, ny=8, nx=8).to_netcdf(path)
    return path


_free, _fails, _interpolate = set_free_disk, make_raise, cli_climatology


# ------------------------------------------------------------ 1. a write's exit code: its cause, in both paths
_CASES = [(RuntimeError("NetCDF: HDF error"), 1), (OSError(errno.EIO, "Input/output error"), 1),
          (PermissionError(errno.EACCES, "Permission denied"), 1),
          (RuntimeError("NetCDF: Name contains illegal characters: (variable 'sst', group '/')"), 2),
          (TypeError("illegal data type for attribute b'history', must be one of dict_keys([...])"), 2)]


@pytest.mark.parametrize("chunks", [[], ["--chunks", "time=5"]], ids=["memory", "chunks"])
@pytest.mark.parametrize("exc,code", _CASES, ids=["hdf", "eio", "eacces", "badname", "badattr"])
def test_a_write_failure_exits_by_its_cause_in_both_paths(cube, tmp_path, monkeypatch, chunks, exc, code):
    """In memory every write failure was an InputError (exit 2: an HDF error, EIO, a permission as bad
    input); with --chunks every one was exit 1 (netCDF refusing a name as an I/O failure), and a TypeError
    of an attribute escaped bare. Now both apply one rule (utils.write_error): what netCDF cannot store
    is bad input, exit 2; an I/O failure exit 1. The one line names the output, nothing is left."""
    _free(monkeypatch, 1 << 30)
    _fails(monkeypatch, (chunked._Writer, "_commit") if chunks else (chunked.xr.Dataset, "to_netcdf"), exc)
    out = tmp_path / "f.nc"
    line = assert_cli_error(_interpolate(cube, out, *chunks), code, f"{out}: cannot write",
                            f"({type(exc).__name__}: {str(exc)[:20]}")
    assert "is full" not in line and "OCEANDL_DEBUG" not in line, line
    assert os.listdir(tmp_path) == []


def test_a_name_netcdf_refuses_is_bad_input_even_on_a_full_disk(tmp_path, monkeypatch):
    """A variable name with a control character (netCDF-C: "Name contains illegal characters") was an
    InputError marked as a write's failure: on a nearly full disk it became "...; the disk of DIR is
    full", exit 1. It is the data's fault: an InputError, without the disk note."""
    _free(monkeypatch, 0)
    ds = xr.Dataset({"sst\x01": ("x", np.arange(3.0))})
    with pytest.raises(InputError, match=r"f.nc: cannot write netCDF \(RuntimeError: NetCDF: Name contains "
                                         r"illegal characters") as got:
        write_netcdf(ds, tmp_path / "f.nc")
    assert "is full" not in str(got.value)
    assert os.listdir(tmp_path) == []


def test_write_error_rule():
    """The shared rule's units: an attribute xarray refuses (ValueError) is the input's; an HDF error is
    the write's, marked so the disk can be said."""
    bad = utils.write_error("f.nc", ValueError("Invalid name for attr ''"))
    io = utils.write_error("f.nc", RuntimeError("NetCDF: HDF error"))
    assert isinstance(bad, InputError) and not bad.write_failure
    assert str(bad) == "f.nc: cannot write netCDF (ValueError: Invalid name for attr '')"
    assert type(io) is OceanDLError and io.write_failure and io.exit_code == 1
    assert str(io) == "f.nc: cannot write netCDF (RuntimeError: NetCDF: HDF error)"


# ------------------------------------------------------------ 2. --fit-on --chunks: a corrupt input named
@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    """past.nc (20 days, fitted on) and new.nc (the next 10, with a covariate sst_mw) of a 8 x 8 cube."""
    root = tmp_path_factory.mktemp("audit124_fit")
    ds = synthetic_sst(seed=6, n_time=30, ny=8, nx=8, microwave=True)
    ds.isel(time=slice(0, 20)).to_netcdf(root / "past.nc")
    ds.isel(time=slice(20, None)).to_netcdf(root / "new.nc")
    from oceandl.interp import DINEOF
    from oceandl.io import open_field

    past = open_field(root / "past.nc", "sst")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small cube's calibration warnings
        DINEOF(n_modes=2, seed=0, transform_smoother=False).fit(
            past, aux={"sst_mw": open_field(root / "past.nc", "sst_mw")}).save(root / "dineof_mw")
    return root


@pytest.mark.parametrize("which,exc", [("sst", RuntimeError("NetCDF: HDF error")),
                                       ("sst", OSError(errno.EIO, "Input/output error")),
                                       ("sst_mw", RuntimeError("NetCDF: HDF error"))], ids=["hdf", "eio", "aux"])
def test_fit_on_chunks_names_a_corrupt_input(fit, tmp_path, monkeypatch, exc, which):
    """`interpolate NEW --fit-on PAST --chunks time=5` read each time block directly (not through the
    blocks' reader): a corrupt input (netCDF's "HDF error" when a block is read) failed as the bare
    "RuntimeError: NetCDF: HDF error", exit 1, naming no file. It now names the file, the variable (or
    the covariate) and the steps, exit 2, as the other chunked fills do; nothing written."""
    _free(monkeypatch, 1 << 30)
    real = chunked.open_lazy

    def corrupt(source, var=None, *a, **k):  # the new file's blocks fail when read (the fit's file reads fine)
        da = real(source, var, *a, **k)
        if str(source).endswith("new.nc") and var == which:
            da = da.copy(data=da.data.map_blocks(lambda b: (_ for _ in ()).throw(exc), dtype=da.dtype))
        return da

    monkeypatch.setattr(chunked, "open_lazy", corrupt)
    out = tmp_path / "f.nc"
    # a covariate: a saved DINEOF fit with it (the climatology takes none; a fit made here takes seconds)
    fit_on = (["--method", "dineof", "--fit-on", str(fit / "dineof_mw"), "--aux", "sst_mw"] if which == "sst_mw"
              else ["--method", "climatology", "--fit-on", str(fit / "past.nc")])
    res = CliRunner().invoke(cli, ["interpolate", str(fit / "new.nc"), "--var", "sst", *fit_on, "--chunks", "time=5",
                                   "--quiet", "-o", str(out)])
    said = "variable 'sst_mw' (aux)" if which == "sst_mw" else "variable 'sst'"
    assert_cli_error(res, 2, f"{fit / 'new.nc'}: {said}: cannot read its values at time 0:5",
                     f"({type(exc).__name__}: ", "a corrupt or unreadable input file")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ 3. a dim in degrees_north beside the latitude
def _two_lat(a_attrs, b_attrs, names=("a", "b"), a_values=None):
    rng = np.random.default_rng(0)
    return xr.DataArray(15 + rng.random((4, 5, 6)).astype("f4"), dims=("time", *names), name="sst",
                        coords={"time": np.arange(4).astype("datetime64[D]"),
                                names[0]: (names[0], np.arange(5.0) if a_values is None else a_values, a_attrs),
                                names[1]: (names[1], 10 + np.arange(6.0), b_attrs)}, attrs={"units": "degC"})


@pytest.mark.parametrize("b_attrs, by", [({"standard_name": "latitude", "units": "degrees_north"},
                                          "its standard_name 'latitude'"), ({"axis": "Y"}, "its axis 'Y'")],
                         ids=["standard_name", "axis"])
@pytest.mark.parametrize("read", ["open_field", "canonical_dims"])
def test_a_dim_in_degrees_north_not_taken_as_latitude_is_said(b_attrs, by, read):
    """(time, a, b), b said to be the latitude exactly and a in degrees_north: a was read as the longitude
    by position, without a word (audit 121 made open_field and canonical_dims agree on b). Its units or
    b's attributes are wrong, which only the user can tell: one warning says what a was read as, its
    values and what to correct, from a file (open_field) and from Python (canonical_dims, say=True)."""
    import warnings

    from oceandl.interp.base import canonical_dims
    from oceandl.io import open_field

    da = _two_lat({"units": "degrees_north"}, b_attrs, a_values=np.array([100.0, 101, 102, 103, 104]))
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        if read == "open_field":
            assert open_field(da.to_dataset()).encoding["source_grid"].dims == {"time": "time", "lat": "b", "lon": "a"}
        else:
            assert canonical_dims(da, say=True) == ("time", "b", "a")
    said = [str(w.message) for w in got if "degrees_north" in str(w.message)]
    assert len(said) == 1, [str(w.message) for w in got]
    assert (f"variable 'sst': dim 'a' has latitude coordinates (units 'degrees_north', values 100 to 104), but 'b' "
            f"is the latitude ({by}): 'a' is read as the longitude; if it is one, correct its units (degrees_east), "
            "else the standard_name, axis and units of 'b'") in said[0], said
    with warnings.catch_warnings():  # not said without say (every look at an array's dims), nor of one latitude
        warnings.simplefilter("error")
        canonical_dims(da)
        canonical_dims(_two_lat({"units": "degrees_east"}, b_attrs), say=True)
        open_field(_two_lat({"units": "degrees_east"}, b_attrs).to_dataset())


# ------------------------------------------------------------ 4. colour bars: every spelling of degC/degF/K
@pytest.mark.parametrize("units, label", [("C", "°C"), ("degF", "°F")])
def test_map_colour_bar_labels_any_spelling_of_the_units(tmp_path, monkeypatch, units, label):
    """plotting had its own list of Celsius spellings: a field in "C", "deg C" or "degF" (read as degC and
    degF by the interpolators, oceandl.units) had the raw string as its colour bar's label. Both now read
    one list: °C, °F, K for any of their spellings; other units as given."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from oceandl import plotting
    from oceandl.units import unit_label

    drawn = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self), save(self, *a, **k))[1])
    plotting.plot_fields({"a": np.ones((4, 4)), "b": np.zeros((4, 4))}, tmp_path / "f.png", units=units)
    (fig,) = drawn
    bars = {ax.get_ylabel() for ax in fig.axes if not ax.get_title()}
    assert bars == {label}, bars
    said = {u: unit_label(u) for u in ("deg C", "degree_Celsius", "℃", "degree_Fahrenheit", "kelvin", "degK", "m")}
    assert said == {"deg C": "°C", "degree_Celsius": "°C", "℃": "°C", "degree_Fahrenheit": "°F", "kelvin": "K",
                    "degK": "K", "m": "m"}


def test_plotting_reads_the_units_without_the_interpolators():
    """The shared spellings live in a light module: importing oceandl.plotting imports neither the
    interpolators (xarray) nor torch."""
    import subprocess
    import sys

    code = ("import sys, oceandl.plotting; from oceandl.units import unit_label; "
            "print(unit_label('C'), 'oceandl.interp' in sys.modules, 'torch' in sys.modules)")
    import oceandl

    root = os.path.dirname(os.path.dirname(os.path.abspath(oceandl.__file__)))  # this checkout's, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    assert out == ["°C", "False", "False"], out


# ------------------------------------------------------------ 5. an EOF analysis from Python written as the CLI writes it
@pytest.mark.parametrize("rotate", [0, 2], ids=["eof", "rotated"])
def test_an_eof_result_from_python_is_written_as_the_cli_writes_it(tmp_path, rotate):
    """`oceandl.eof(da).to_dataset().to_netcdf()` (and `res.eofs.to_netcdf()`) wrote every variable
    uncompressed, where `oceandl eof` writes zlib 4 and the PCs in one chunk along time (the fills got
    this in audit 120, the EOF analysis not). Its results' encoding now says so: each variable
    compressed and chunked as in the CLI's file, the rotated analysis' too."""
    import netCDF4
    import pandas as pd

    import oceandl

    rng = np.random.default_rng(0)
    nt, ny, nx = 40, 12, 14
    da = xr.DataArray((15 + rng.standard_normal((nt, ny, nx))).astype("f4"), dims=("time", "lat", "lon"), name="sst",
                      attrs={"units": "degC"}, coords={"time": pd.date_range("2020-01-01", periods=nt),
                                                        "lat": np.linspace(10, 12, ny), "lon": np.linspace(20, 23, nx)})
    res = oceandl.eof(da, n_modes=3)
    res = res.rotate(rotate) if rotate else res
    res.to_dataset().to_netcdf(tmp_path / "py.nc")
    res.pcs.to_netcdf(tmp_path / "pcs.nc")  # a result written alone
    da.to_dataset().to_netcdf(tmp_path / "in.nc")
    out = CliRunner().invoke(cli, ["eof", str(tmp_path / "in.nc"), "-n", "3", "--rotate", str(rotate),
                                   "-o", str(tmp_path / "cli.nc")])
    assert out.exit_code == 0, out.output

    def layout(path):
        with netCDF4.Dataset(path) as nc:
            return {k: (nc[k].filters()["zlib"], nc[k].filters()["complevel"], nc[k].chunking())
                    for k in nc.variables if k not in nc.dimensions}

    py, cl = layout(tmp_path / "py.nc"), layout(tmp_path / "cli.nc")
    assert py == cl, (py, cl)
    assert py["eofs"] == (True, 4, [3 if not rotate else 2, 12, 14]) and py["pcs"] == (True, 4, [40, rotate or 3])
    assert layout(tmp_path / "pcs.nc")["pcs"] == py["pcs"]
