"""keep_freed_memory: the C heap keeps what freed tensors give back (glibc), unless the user said no.

The setting is process-wide and cannot be undone, so what it does to the allocator is measured in
fresh interpreters; the cases where it stands aside return before touching the C library and run
in this process.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
import torch

import oceandl.utils

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# One "step": eight 16 MiB tensors live at once, then all freed, as a training step's activations
# are at the end of backward. After the first step the probe reads how much memory the heap holds
# (glibc's mallinfo2 ``arena``); after a second, it counts the minor page faults of each of nine
# more steps (a step that faults its pages in again touches 32,768).
_PROBE = """
import ctypes, json, resource, torch
from oceandl.utils import keep_freed_memory
kept = keep_freed_memory()
def step():
    ts = [torch.empty(4 << 20) for _ in range(8)]
    for t in ts:
        t.fill_(1.0)
    return sum(float(t[-1]) for t in ts)
class Info(ctypes.Structure):
    _fields_ = [(k, ctypes.c_size_t) for k in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = Info
step()
arena = mallinfo2().arena
step()
faults = []
for _ in range(9):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "heap_mb": arena / 2**20, "faults": sorted(faults)[4]}))
"""


def _probe(**env) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "OCEANDL_KEEP_FREED_MEMORY", "LD_PRELOAD")}
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env={**clean, **env},
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def returned():
    """glibc's default, as a reference: the probe with the setting turned off."""
    if not GLIBC:
        pytest.skip("keep_freed_memory acts on glibc's allocator only (Linux)")
    res = _probe(OCEANDL_KEEP_FREED_MEMORY="0")
    assert res["kept"] is False
    return res


def test_kept_heap_reuses_pages_instead_of_faulting_them_in_again(returned):
    kept = _probe()
    assert kept["kept"] is True
    # the first step's 128 MiB stay on the heap (measured: 348 MiB held against 124 MiB)...
    assert kept["heap_mb"] - returned["heap_mb"] >= 128
    # ...and the median step reuses them: measured 0 or 4,096 faults (one block of eight, when
    # the heap cannot grow in place and glibc maps that block apart) of the step's 32,768 pages.
    # glibc's default faults them all in again at most steps, but it trims the heap at its own
    # discretion, so that side is not asserted.
    assert kept["faults"] <= 32768 // 4


@pytest.mark.parametrize("env", [{"MALLOC_MMAP_THRESHOLD_": "65536"}, {"MALLOC_TRIM_THRESHOLD_": "0"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
                                 {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"},
                                 {"OCEANDL_KEEP_FREED_MEMORY": "off"}, {"OCEANDL_KEEP_FREED_MEMORY": "0"}])
def test_a_choice_of_the_users_own_is_left_alone(env, monkeypatch):
    """It returns before it touches the C library (checked in this process: nothing is set)."""
    import ctypes

    for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: pytest.fail("the C library was touched"))
    oceandl.utils._keep_freed_memory.cache_clear()
    try:
        assert oceandl.utils.keep_freed_memory() is False
    finally:
        oceandl.utils._keep_freed_memory.cache_clear()


def test_the_users_setting_holds_in_a_fresh_process(returned):
    """End to end: with the user's own trim threshold, the first step's blocks leave the heap."""
    res = _probe(MALLOC_TRIM_THRESHOLD_="0")
    assert res["kept"] is False
    assert res["heap_mb"] < returned["heap_mb"] + 64


def test_off_glibc_it_does_nothing(monkeypatch):
    oceandl.utils._keep_freed_memory.cache_clear()
    try:
        monkeypatch.setattr(oceandl.utils.platform, "libc_ver", lambda: ("", ""))
        assert oceandl.utils.keep_freed_memory() is False
    finally:
        oceandl.utils._keep_freed_memory.cache_clear()


def test_cpu_training_and_inference_set_it(monkeypatch):
    """fit and predict on the CPU, and a neural interpolator on the CPU, ask for the kept heap."""
    from oceandl.interp import get_method
    from oceandl.models import get_model
    from oceandl.pipelines.perf import _gappy_cube
    from oceandl.training import TensorData, TrainConfig, engine, fit, predict

    calls = []
    monkeypatch.setattr(engine, "keep_freed_memory", lambda device: calls.append("engine") or True)
    monkeypatch.setattr(oceandl.utils, "keep_freed_memory", lambda device: calls.append("interp") or True)
    x, y = torch.randn(16, 1, 12, 12), torch.randint(0, 3, (16,))
    model = get_model("cnn", 1, 3, channels=(4, 8), hidden=8)
    fit(model, TensorData(x, y), None, TrainConfig(epochs=1, batch_size=8, progress=False, device="cpu"))
    assert calls == ["engine"]
    predict(model, x, device="cpu")
    assert calls == ["engine", "engine"]
    get_method("unet")(seed=0, device="cpu", steps=1, batch_size=2, patch=16, tile=16, overlap=4,
                       model_options={"width": 4, "depth": 2}).fit(_gappy_cube((4, 16, 16), 0))
    assert calls[2:] == ["interp"]


def test_other_devices_need_nothing(monkeypatch):
    """Only the CPU's tensors live on the C heap: for another device it returns before touching libc."""
    import ctypes

    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: pytest.fail("the C library was touched"))
    oceandl.utils._keep_freed_memory.cache_clear()
    try:
        assert oceandl.utils.keep_freed_memory(torch.device("meta")) is False
    finally:
        oceandl.utils._keep_freed_memory.cache_clear()
