"""audit134: DINEOF's iterations on a small matrix run on one torch thread, from the main thread only.

Reported: the in-memory fill of ``synthetic_sst(40, 24, 24, cloud 0.7)`` took 5-50 s, its 1181
iterations' 40 x 40 eigh 6-50 ms each under an OpenMP team of two on a busy 2-core machine (0.7 ms on
one thread); ``--chunks`` blocks, on dask threads, took about 1 s. Now 1.1-1.9 s, the fill identical
(/tmp/audit134_measure.py). These tests check the thread count the iterations see, not the time.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _fit_and_record(monkeypatch, shape=(20, 8, 8)):
    import xarray as xr

    import oceandl.interp.dineof as D

    seen: list[int] = []
    orig = D.DINEOF._iterations

    def spy(self, filled, mask, k):
        seen.append(torch.get_num_threads())
        return orig(self, filled, mask, k)

    monkeypatch.setattr(D.DINEOF, "_iterations", spy)
    rng = np.random.default_rng(0)
    nt, ny, nx = shape
    t = np.arange(nt)[:, None, None]
    x = (np.sin(t / 3.0) * np.cos(np.arange(ny)[None, :, None] / 4.0) + np.arange(nx)[None, None, :] / nx
         + 0.05 * rng.standard_normal(shape))
    x[rng.random(shape) < 0.4] = np.nan
    da = xr.DataArray(x, dims=("time", "lat", "lon"),
                      coords={"time": np.arange(nt) * np.timedelta64(1, "D") + np.datetime64("2020-01-01")})
    D.DINEOF(n_modes=2, device="cpu").fit(da)
    return seen


def test_small_fit_iterates_on_one_thread_and_restores(monkeypatch, two_threads):
    seen = _fit_and_record(monkeypatch)
    assert seen == [1, 1]  # the fixed rank's ramp (k = 1, 2), on one thread
    assert torch.get_num_threads() == 2  # restored


def test_large_matrix_keeps_the_threads(monkeypatch, two_threads):
    import oceandl.interp.dineof as D

    monkeypatch.setattr(D, "_ONE_THREAD_MAX", 10)  # 20 x 64: 20^2 * 64 multiply-adds, above it
    assert _fit_and_record(monkeypatch) == [2, 2]


def test_other_threads_leave_the_thread_count_alone(monkeypatch, two_threads):
    """torch.set_num_threads is process-wide: a worker thread setting and restoring it could leave it at 1."""
    out: list = []
    th = threading.Thread(target=lambda: out.append(_fit_and_record(monkeypatch)))
    th.start()
    th.join()
    assert out == [[2, 2]] and torch.get_num_threads() == 2
