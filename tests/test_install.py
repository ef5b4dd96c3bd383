"""The package installs as a wheel into a fresh virtual environment and its console script runs."""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_in_fresh_venv_and_cli_runs(tmp_path):
    # --system-site-packages: the heavy dependencies (torch ...) come from the host, so no network
    # is needed; oceandl itself is installed from a wheel built from this checkout.
    wheel_dir = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheel_dir), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheels = list(wheel_dir.glob("oceandl-*.whl"))
    assert len(wheels) == 1
    import zipfile

    names = zipfile.ZipFile(wheels[0]).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("oceandl-")}
    assert tops == {"oceandl"}, f"only the oceandl import name may be installed, got {tops}"
    assert "oceandl/datasets/__init__.py" in names and "oceandl/cli/main.py" in names
    assert "oceandl/__main__.py" in names  # `python -m oceandl`
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    # --force-reinstall: where oceandl is already installed on the host (`pip install -e .`, as the
    # README and .ci/run do first), the venv sees it through the system site-packages and pip skipped
    # the wheel ("already installed with the same version"), leaving no console script in the venv
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--force-reinstall",
                           "-q", str(wheels[0])], capture_output=True, text=True, timeout=300)
    if inst.returncode != 0 and "no such option: --python" in inst.stderr:
        pytest.skip("pip too old for --python")
    assert inst.returncode == 0, inst.stderr[-2000:]
    # the venv alone decides what is imported: no PYTHONPATH pointing at a checkout
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(env_dir / "bin" / "oceandl"), "--version"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env=clean)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"oceandl, version {wheels[0].name.split('-')[1]}"  # the package's version
    # the installed package is the one in the venv, not the checkout
    where = subprocess.run([str(py), "-c", "import oceandl.cli, oceandl.datasets; print(oceandl.datasets.__file__)"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, env=clean)
    assert where.returncode == 0, where.stderr
    assert str(env_dir) in where.stdout


def test_python_m_oceandl_is_the_command(tmp_path):
    """`python -m oceandl` failed ('oceandl' is a package and cannot be directly executed); it is the
    command, for a virtual environment that is not activated or a job script naming its interpreter."""
    import oceandl

    out = subprocess.run([sys.executable, "-m", "oceandl", "--version"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"oceandl, version {oceandl.__version__}"
    bad = subprocess.run([sys.executable, "-m", "oceandl", "eof", str(tmp_path / "none.nc"), "-o",
                          str(tmp_path / "e.nc")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("Error:") and "none.nc" in bad.stderr, bad.stderr


def test_command_starts_without_tomllib(tmp_path):
    """requires-python says >= 3.10, where the standard library has no tomllib: a top-level
    `import tomllib` in the benchmark runner stopped every oceandl command from starting. Only
    `benchmark --config` reads TOML; without a TOML reader it is a one-line error (exit 2)."""
    code = ("import sys; sys.modules['tomllib'] = sys.modules['tomli'] = None\n"
            "from oceandl.cli.main import main; sys.exit(main())")
    run = [sys.executable, "-c", code]
    ok = subprocess.run([*run, "synth", "sst", "--n", "3", "--size", "8", "-o", str(tmp_path / "s.nc")],
                        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "c.toml").write_text("n_time = 4\n")
    bad = subprocess.run([*run, "benchmark", "sst", "--config", str(tmp_path / "c.toml"), "-o", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and "--config" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert not (tmp_path / "r").exists()
