""".ci/gpu-check, the GPU script, on this machine: what it does around its steps (the steps
themselves are rehearsed with GPU_CHECK_DEVICE=cpu GPU_CHECK_FAST=1, see docs/benchmarks.md)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "gpu-check"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None
                                or shutil.which("tar") is None, reason="needs bash, timeout and tar")


def test_steps_run_programs_not_shell_functions():
    # `timeout` execs its command: a shell function of that name is not found on a machine without
    # the program on PATH (exit 127 for every oceandl step on the device machine)
    text = SCRIPT.read_text()
    functions = set(re.findall(r"^\s*([A-Za-z_][\w-]*)\s*\(\)\s*\{", text, re.M))
    programs = re.findall(r"^step \S+ \d+ (\S+)", text, re.M)
    assert programs and not functions & set(programs), (functions, programs)


def test_budget_spent_still_packs_at_most_eight_files(tmp_path):
    # a PATH with python3 alone (no oceandl of the developer's) and a budget too small for any step:
    # the install, the oceandl check and the end run; what comes back is at most 8 files
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "OUT": str(out), "GPU_CHECK_DEVICE": "cpu",
           "GPU_CHECK_FAST": "1", "GPU_CHECK_BUDGET": "1", "GPU_CHECK_SITE": str(tmp_path / "site"),
           "TMPDIR": str(tmp_path), "GPU_CHECK_WHEELS": str(tmp_path / "no-wheels")}  # not a checkout's .whl
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert "failed" not in text and "after the install" not in text, text[-2000:]
    assert proc.returncode == 1, text[-2000:]  # skipped steps are a failure of the check
    assert text.count("SKIPPED (budget") == 3
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and (out / "gpu-check.tgz").is_file() and (out / "steps.log").is_file()
    listing = subprocess.run(["tar", "tzf", str(out / "gpu-check.tgz")], capture_output=True, text=True).stdout
    assert "./install.log" in listing.split()
