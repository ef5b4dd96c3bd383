"""The speed benchmark (``oceandl benchmark perf``): structure of its results, never timing thresholds."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from oceandl.errors import InputError
from oceandl.pipelines import PIPELINES, get_pipeline, run_pipeline
import oceandl.pipelines.perf as perf
from oceandl.pipelines.perf import PerfConfig, _gappy_cube, course_loop, raw_step_loop


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("perf") / "run"
    # heap: the C heap cases start four Python processes (about 19 s of a 26 s run on 2 cores); they
    # have a test of their own (slow) and test_heap.py tests the setting
    folder, results = run_pipeline(get_pipeline("perf"), out,
                                   overrides={"fast": True, "threads": 1, "seed": 3, "heap": False},
                                   device="cpu", progress=False, log=lambda s: None)
    return folder, results


def test_registered():
    assert PIPELINES["perf"] == "oceandl.pipelines.perf"
    assert get_pipeline("perf").config_cls is PerfConfig


def test_fast_run_cases_and_ratios(fast_run):
    folder, results = fast_run
    on_disk = json.loads((folder / "results.json").read_text())["results"]
    assert on_disk.keys() == results.keys()
    expected = {f"mnist_{m}_{k}" for m in ("mlp", "cnn") for k in ("course", "raw", "engine", "engine_bf16")}
    expected |= {"mnist_cnn_engine_channels_last", "interp_unet_train", "interp_unet_raw", "interp_infer_model",
                 "interp_unet_train_plain", "interp_unet_train_unfused", "interp_infer_model_plain",
                 "interp_infer_tiled", "interp_end_to_end", "interp_end_to_end_uncompressed", "dineof_cpu", "dineof_cpu_subspace",
                 "tiled_memory_32", "tiled_memory_64",
                 "untiled_memory_64", "matmul_peak", "read_files_inprocess", "read_files_workers",
                 "stream_train_inprocess", "stream_train_workers", "eof_full", "eof_randomized"}
    from oceandl.utils import native_bf16

    if native_bf16("cpu"):  # a bf16 matmul peak, and the fastest eager switches against the course loop
        expected |= {"matmul_peak_bf16", "mnist_cnn_engine_bf16_channels_last"}
    assert set(results) == expected  # fast: no torch.compile; CPU: no CUDA graphs, no GPU DINEOF
    for name, row in on_disk.items():
        assert row["unit"] in ("samples/s", "Mpx/s", "GFLOP/s"), name
        assert math.isfinite(row["throughput"]) and row["throughput"] > 0, name
        assert row["device"] == "cpu" and row["threads"] == 1 and row["torch"] == torch.__version__
        assert row["peak_host_mb"] > 10, name  # a Python process with torch loaded
        assert len(row["runs"]) == 1  # fast: one pass
        if row["reference"] is None:
            assert row["ratio"] is None
        else:
            ref = on_disk[row["reference"]]
            assert row["ratio"] > 0
            assert row["ratio"] == pytest.approx(row["throughput"] / ref["throughput"])
            assert ref["unit"] == row["unit"]
    assert on_disk["mnist_cnn_engine"]["reference"] == "mnist_cnn_course"
    # roofline: achieved GFLOP/s = samples/s x counted FLOPs, against the measured matmul peak
    peak = on_disk["matmul_peak"]["throughput"]
    for name, row in on_disk.items():
        if name.startswith("mnist_"):
            assert row["gflops"] == pytest.approx(row["throughput"] * row["train_mflop_per_sample"] * 1e-3, rel=1e-3)
            assert row["fraction_of_peak"] == pytest.approx(row["gflops"] / peak)
        else:
            assert "gflops" not in row, name
    course = on_disk["mnist_cnn_course"]
    assert course["ceiling_ratio"] == pytest.approx(1 / course["fraction_of_peak"])
    if native_bf16("cpu"):
        assert course["ceiling_ratio_bf16"] == pytest.approx(
            on_disk["matmul_peak_bf16"]["throughput"] / course["gflops"])
        assert on_disk["mnist_cnn_engine_bf16_channels_last"]["reference"] == "mnist_cnn_course"
    assert "ceiling_ratio" not in on_disk["mnist_cnn_engine"]
    assert "GFLOP/s" in (folder / "results.md").read_text()
    assert on_disk["mnist_cnn_engine"]["ratio_to_raw"] == pytest.approx(
        on_disk["mnist_cnn_engine"]["throughput"] / on_disk["mnist_cnn_raw"]["throughput"])
    assert on_disk["mnist_cnn_engine_bf16"]["reference"] == "mnist_cnn_engine"
    assert on_disk["interp_unet_train"]["reference"] == "interp_unet_raw"
    # the switches: the default case and its raw step in one precision, the plain case fp32 NCHW
    from oceandl.utils import native_bf16

    auto = "bf16" if native_bf16("cpu") else "fp32"
    assert on_disk["interp_unet_train"]["precision"] == on_disk["interp_unet_raw"]["precision"] == auto
    assert on_disk["interp_unet_train"]["channels_last"] is True
    assert on_disk["interp_unet_train_plain"]["precision"] == "fp32"
    assert on_disk["interp_unet_train_plain"]["channels_last"] is False
    assert on_disk["interp_unet_train_plain"]["reference"] == "interp_unet_train"
    assert on_disk["interp_unet_train"]["fused"] is True and on_disk["interp_unet_train_unfused"]["fused"] is False
    assert on_disk["interp_unet_train_unfused"]["reference"] == "interp_unet_train"
    assert on_disk["interp_infer_model"]["precision"] == auto
    assert on_disk["interp_infer_model_plain"]["precision"] == "fp32"
    assert math.isfinite(on_disk["mnist_mlp_engine"]["final_train_loss"])
    assert math.isfinite(on_disk["mnist_cnn_engine_bf16"]["final_train_loss"])  # bf16 autocast on CPU trains
    # tiled inference memory: two grids, the second compared with the first, each in its own process
    small, big = on_disk["tiled_memory_32"], on_disk["tiled_memory_64"]
    assert big["reference"] == "tiled_memory_32" and small["grid"] == "3x32x32" and big["grid"] == "3x64x64"
    assert big["grid_arrays_mb"] == pytest.approx(4 * small["grid_arrays_mb"])
    assert small["working_host_mb"] >= 0 and big["working_host_mb"] >= 0
    assert on_disk["untiled_memory_64"]["reference"] == "tiled_memory_64"
    assert on_disk["dineof_cpu"]["n_iter_total"] >= 1
    sub = on_disk["dineof_cpu_subspace"]
    assert sub["reference"] == "dineof_cpu" and sub["n_iter_total"] >= 1 and sub["ms_per_iteration"] > 0
    assert sub["max_abs_diff_vs_auto"] < 0.05  # the same fixed point, to the convergence tolerance
    # EOF: the randomized solver against the full one, the same modes (a 60-step cube: q = 19 of 60)
    rand = on_disk["eof_randomized"]
    assert rand["reference"] == "eof_full" and rand["n_modes"] == on_disk["eof_full"]["n_modes"] == 3
    assert rand["max_eigenvalue_rel_diff"] < 1e-9 and rand["max_eof_abs_diff"] < 1e-6
    # reading files: the same 200 vignettes both ways; in-process by request, workers by choice
    assert on_disk["read_files_workers"]["reference"] == "read_files_inprocess"
    assert on_disk["read_files_inprocess"]["workers"] == 0 and on_disk["read_files_workers"]["workers"] >= 0
    assert on_disk["read_files_inprocess"]["files"] == on_disk["read_files_workers"]["files"] == 200
    assert on_disk["stream_train_workers"]["reference"] == "stream_train_inprocess"
    assert on_disk["stream_train_workers"]["workers"] == 0  # streamed on the CPU: in this process
    md = (folder / "results.md").read_text()
    assert "mnist_cnn_engine" in md and "torch threads" in md
    run = json.loads((folder / "run.json").read_text())
    assert run["config"]["fast"] is True and run["seed"] == 3


def test_course_and_raw_loops_train():
    """Both reference loops really train: the loss on a learnable toy task goes down."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 120)
    images = (np.where(labels[:, None, None] == 1, 60, 30) + rng.integers(0, 20, (120, 28, 28))).astype(np.uint8)
    x = (torch.from_numpy(images[:, None] / 255.0).float() - 0.1307) / 0.3081  # what the course's transform gives
    y = torch.from_numpy(labels)
    ce = torch.nn.functional.cross_entropy

    def loss(m):
        with torch.no_grad():
            return float(ce(m(x), y))

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 2))
    before = loss(model)
    assert course_loop(model, images, labels, torch.device("cpu"), batch_size=20, lr=0.01, epochs=5) > 0
    assert loss(model) < 0.5 * before
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    assert raw_step_loop(model, x, y, 20, opt, ce, epochs=5) > 0
    assert loss(model) < 0.5 * before


def _touched_pages(size: int):
    """Fresh anonymous memory with every page touched: new resident memory whatever the allocators
    have cached (a 40 MiB numpy array can reuse freed memory in a long test session)."""
    import mmap

    buf = mmap.mmap(-1, size)
    for i in range(0, size, mmap.PAGESIZE):
        buf[i] = 1
    return buf


@pytest.mark.parametrize("force_sampling", [False, True], ids=["kernel-hwm", "sampled"])
def test_peak_rss_tracks_an_allocation(monkeypatch, force_sampling):
    import time

    size = 40 * 2**20
    before = perf._rss_mb()
    probe = _touched_pages(size)
    grew = perf._rss_mb() - before
    probe.close()
    if not grew >= 30:  # NaN too: no /proc
        pytest.skip(f"this platform does not report resident memory faithfully (VmRSS grew {grew} MiB for 40 MiB)")
    if force_sampling:  # the path taken where the kernel's high-water mark cannot be reset (sandboxes)
        monkeypatch.setattr(perf, "reset_peak_rss", lambda: False)
    with perf.PeakRSS(interval=0.001) as mem:
        buf = _touched_pages(size)
        time.sleep(0.02)  # the sampler sees it
        buf.close()
    assert mem.added >= 30, (mem.base, mem.peak, mem.exact)
    if force_sampling:
        assert not mem.exact
    with perf.PeakRSS(interval=0.001) as idle:
        time.sleep(0.01)
    # a block that allocates nothing adds (almost) nothing, even after the 40 MiB block above
    assert idle.added < 10, (idle.base, idle.peak, idle.exact)


def test_gappy_cube_has_gaps_land_and_dates():
    da = _gappy_cube((5, 24, 32), seed=1)
    assert da.dims == ("time", "lat", "lon") and da.shape == (5, 24, 32)
    v = da.values
    land = np.isnan(v).all(0)
    assert land.any() and not land.all()
    assert 0.2 < np.isnan(v[:, ~land]).mean() < 0.8
    np.testing.assert_array_equal(v, _gappy_cube((5, 24, 32), seed=1).values)


def test_bad_config_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="dineof_cube"):
        run_pipeline(get_pipeline("perf"), tmp_path / "bad", overrides={"fast": True, "dineof_cube": (4, 4)},
                     device="cpu", progress=False, log=lambda s: None)
    assert not (tmp_path / "bad").exists()


def test_engine_switch_options_are_checked():
    from oceandl.training import TrainConfig

    assert TrainConfig().compile == "none" and TrainConfig().amp_cpu is None  # None: bf16 where native
    with pytest.raises(InputError, match="compile"):
        TrainConfig(compile="fastest")


@pytest.mark.slow
def test_engine_compiled_training_matches_eager_loss():
    """torch.compile (measured by the benchmark) trains the same model to the same loss (no dropout:
    compiled code draws other random numbers)."""
    from oceandl.models import get_model
    from oceandl.training import TensorData, TrainConfig, fit

    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.rand(256, 1, 28, 28, generator=g), torch.randint(0, 10, (256,), generator=g))
    losses = []
    for mode in ("none", "default"):
        torch.manual_seed(0)
        tc = TrainConfig(epochs=2, batch_size=64, optimizer="sgd", scheduler="none", device="cpu", progress=False,
                         compile=mode)
        losses.append(fit(get_model("mlp", 1, 10, hidden=(32,), dropout=0.0), data, None, tc).history[-1]["train_loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)


def test_dineof_case_with_a_fixed_iteration_count():
    """dineof_max_iter makes every mode run exactly that many iterations (same work on every device)."""
    case = perf._dineof_cases(PerfConfig(dineof_cube=(40, 16, 16), dineof_modes=3, dineof_max_iter=4),
                              torch.device("cpu"))[0]
    out = case.fn()
    assert out["n_iter_total"] == 3 * 4 and out["throughput"] > 0
    default = perf._dineof_cases(PerfConfig(dineof_cube=(40, 16, 16), dineof_modes=3), torch.device("cpu"))[0].fn()
    assert default["n_iter_total"] != 12  # to convergence: another count


def test_memory_case_reports_the_subprocess_device_peak(monkeypatch, tmp_path):
    """On CUDA, tiled_memory_<G>'s peak_device_mb was this process's (what the parent held, the same
    at every grid), while its peak_host_mb was the probe subprocess's: the grid's GPU cost was hidden.
    torch.cuda is faked: the parent holds 300 MiB, the probe reports its own peaks."""
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 300 * 2**20)
    by_grid = {32: 40.0, 64: 90.0}

    def fake_subprocess(probe, args, env, what):
        g = args["grid"]
        return {"mpx": 1.0, "seconds": 0.5, "added_host_mb": 1.0, "grid_arrays_mb": 0.5, "working_host_mb": 0.5,
                "peak_host_mb": 200.0, "peak_exact": True, "added_device_mb": by_grid[g] - 10,
                "peak_device_mb": by_grid[g]}

    monkeypatch.setattr(perf, "_in_subprocess", fake_subprocess)
    cfg = PerfConfig(memory_grids=(32, 64), interp_methods=("unet",))
    cuda = torch.device("cuda")
    cases = perf._memory_cases(cfg, cuda, lambda: tmp_path / "ckpt")
    for case in cases:
        perf._measure(case, cuda)
    peaks = {c.name: (c.peak_dev, c.extra["inference_device_mb"]) for c in cases}
    assert peaks == {"tiled_memory_32": (40.0, [30.0]), "tiled_memory_64": (90.0, [80.0]),
                     "untiled_memory_64": (90.0, [80.0])}
    # an in-process case keeps this process's peak
    plain = perf._Case("x", "Mpx/s", None, lambda: {"throughput": 1.0})
    perf._measure(plain, cuda)
    assert plain.peak_dev == 300.0


@pytest.mark.slow
def test_heap_cases_each_side_in_a_fresh_process(tmp_path):
    """heap_<work>_kept against heap_<work>_returned, each in its own process, with and without the
    C heap setting (glibc only); the fast run above leaves them out (heap=False)."""
    from oceandl.utils import keep_freed_memory

    if not keep_freed_memory():
        pytest.skip("the C heap setting is not in force here (not glibc, or the user's own malloc settings)")
    _, on_disk = run_pipeline(get_pipeline("perf"), tmp_path / "run",
                              overrides={"fast": True, "threads": 1, "seed": 3, "classifiers": ("cnn",),
                                         "read_files": 0, "eof_cube": (0, 0, 0), "memory_grids": ()},
                              device="cpu", progress=False, log=lambda s: None)
    for w in ("cnn_train", "infer"):
        assert on_disk[f"heap_{w}_kept"]["reference"] == f"heap_{w}_returned"
        assert on_disk[f"heap_{w}_kept"]["kept"] is True and on_disk[f"heap_{w}_returned"]["kept"] is False
        assert on_disk[f"heap_{w}_kept"]["page_faults"] >= 0
