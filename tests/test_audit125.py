"""A chunked fill of a folder of daily files reads each file's header once: the series was opened
again for the statistics pass and for the blocks' read chunks (and, with a file per input file,
first for its times), two or three header reads of every input file."""
from __future__ import annotations

import collections
import os

import netCDF4
import numpy as np
import pytest
import xarray as xr
from fakes import write_l3_days

from oceandl.interp.chunked import interpolate_chunked

VAR = "sea_surface_temperature"
NT = 8


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit125")
    write_l3_days(root / "days", nt=NT, ny=10, nx=12)
    return root / "days"


@pytest.fixture
def opens(monkeypatch):
    """netCDF4.Dataset opens, by absolute path."""
    counts = collections.Counter()
    init = netCDF4.Dataset.__init__

    def counted(self, filename, *args, **kwargs):
        counts[os.path.abspath(str(filename))] += 1
        return init(self, filename, *args, **kwargs)

    monkeypatch.setattr(netCDF4.Dataset, "__init__", counted)
    return counts


def _input_opens(counts, days):
    return {os.path.basename(p): n for p, n in counts.items() if os.path.dirname(p) == str(days.resolve())}


@pytest.mark.parametrize("per_file", [True, False])
def test_each_input_header_is_read_once(days, tmp_path, opens, per_file):
    out = f"{tmp_path / 'filled'}/" if per_file else tmp_path / "filled.nc"
    # a time halo: the blocks read finer chunks than the statistics pass (the series was opened a third time)
    interpolate_chunked(days, out, method="climatology", var=VAR, chunks="time=3,lat=5,lon=6", halo="time=1")
    got = _input_opens(opens, days)
    assert len(got) == NT and set(got.values()) == {1}, got
    opens.clear()  # the files opened are not kept for the next call: it reads them afresh, once
    interpolate_chunked(days, tmp_path / "again.nc", method="climatology", var=VAR, chunks="time=3")
    assert set(_input_opens(opens, days).values()) == {1}


def test_the_output_is_the_same_as_with_separate_opens(days, tmp_path, monkeypatch):
    import oceandl.io

    interpolate_chunked(days, f"{tmp_path / 'shared'}/", method="climatology", var=VAR, chunks="time=3",
                        halo="time=1")
    # as before: every open_files call opens the files itself
    monkeypatch.setattr(oceandl.io, "reusing_opened", _no_reuse)
    interpolate_chunked(days, f"{tmp_path / 'separate'}/", method="climatology", var=VAR, chunks="time=3",
                        halo="time=1")
    names = sorted(os.listdir(days))
    assert sorted(os.listdir(tmp_path / "shared")) == names == sorted(os.listdir(tmp_path / "separate"))
    for name in names:
        with xr.open_dataset(tmp_path / "shared" / name) as a, xr.open_dataset(tmp_path / "separate" / name) as b:
            for v in (VAR, "missing_flag", "sigma"):
                np.testing.assert_array_equal(a[v].values, b[v].values)
            assert {k: v for k, v in a.attrs.items() if k != "history"} == \
                {k: v for k, v in b.attrs.items() if k != "history"}


def _no_reuse():
    import contextlib

    return contextlib.nullcontext()


def test_an_error_ends_the_reuse(days, tmp_path):
    import oceandl.io

    with pytest.raises(Exception):  # noqa: B017 - any refusal; the cache must not outlive the call
        interpolate_chunked(days, tmp_path / "x.nc", method="climatology", var="no_such_variable", chunks="time=3")
    assert oceandl.io._OPENED.get() is None


def test_the_reuse_is_the_calling_threads_own():
    import threading

    import oceandl.io

    seen = []
    with oceandl.io.reusing_opened():
        assert oceandl.io._OPENED.get() == {}
        # a fill in another thread neither takes nor closes this one's series
        t = threading.Thread(target=lambda: seen.append(oceandl.io._OPENED.get()))
        t.start()
        t.join()
    assert seen == [None] and oceandl.io._OPENED.get() is None
