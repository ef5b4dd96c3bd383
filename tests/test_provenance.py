"""Provenance recorded in run folders (the git commit, whether the checkout had uncommitted changes, the
versions) and in output files (`oceandl_software`: the libraries whose code computed them)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from oceandl.utils import git_commit, git_dirty, provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run([shutil.which("git"), *args], cwd=cwd, check=True, capture_output=True, env=env)


def test_commit_and_dirty_flag(tmp_path):
    assert git_commit(tmp_path) is None and git_dirty(tmp_path) is None  # not a checkout
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = git_commit(tmp_path)
    assert head is not None and len(head) == 40
    assert git_dirty(tmp_path) is False
    (tmp_path / "b.py").write_text("untracked files do not count\n")
    assert git_dirty(tmp_path) is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_dirty(tmp_path) is True
    assert git_commit(tmp_path) == head


def test_installed_package_inside_another_repository_is_not_a_checkout(tmp_path, monkeypatch):
    """oceandl installed in a virtualenv inside some project's git repository: git found that
    enclosing repository, and its commit and dirty flag were recorded as oceandl's. Only a
    repository that tracks oceandl's own files counts now."""
    from oceandl import utils

    _git(tmp_path, "init", "-q")
    (tmp_path / "project.py").write_text("x = 1\n")
    _git(tmp_path, "add", "project.py")
    _git(tmp_path, "commit", "-q", "-m", "project")
    (tmp_path / "project.py").write_text("x = 2\n")  # the project is dirty, not oceandl
    pkg = tmp_path / ".venv" / "lib" / "site-packages" / "oceandl"
    pkg.mkdir(parents=True)
    (pkg / "utils.py").write_text("# installed copy\n")
    monkeypatch.setattr(utils, "__file__", str(pkg / "utils.py"))
    assert utils.git_commit() is None and utils.git_dirty() is None
    prov = utils.provenance()
    assert prov["git_commit"] is None and prov["git_dirty"] is None
    _git(tmp_path, "add", "-f", str(pkg / "utils.py"))  # a checkout that holds the package: its commit
    _git(tmp_path, "commit", "-q", "-m", "vendored")
    assert utils.git_commit() == utils.git_commit(tmp_path) and utils.git_dirty() is True


def test_provenance_keys():
    prov = provenance()
    assert {"versions", "python", "platform", "git_commit", "git_dirty"} <= set(prov)
    assert prov["versions"]["oceandl"] is not None


def test_torch_version_is_the_build_that_runs():
    """The torch version came from the wheel's metadata, which can drop the build's local tag: a
    run of torch 2.14.1+cu130 recorded 2.14.1, so the CUDA (or CPU-only) build was recorded nowhere."""
    import torch

    assert provenance()["versions"]["torch"] == torch.__version__


def test_run_files_are_strict_json(tmp_path):
    """NaN (an empty bin, an undefined score) was written as a bare NaN, which jq, JavaScript and
    strict parsers refuse: the whole results.json was unreadable to them. It is null now."""
    import json

    import numpy as np

    from oceandl.utils import write_json

    path = tmp_path / "results.json"
    write_json({"a": {"rmse": np.float32(1.5), "corr": float("nan"), "bins": np.array([1.0, np.inf, -np.inf]),
                      "n": np.int64(3), "ok": True, "pair": (np.nan, 2)}}, path)

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    got = json.loads(path.read_text(), parse_constant=refuse)
    assert got == {"a": {"rmse": 1.5, "corr": None, "bins": [1.0, None, None], "n": 3, "ok": True,
                         "pair": [None, 2]}}


# ------------------------------------------------------------------ the software in output files
def _versions():
    from importlib import metadata

    return metadata.version("numpy"), metadata.version("xarray")


def _assert_software(value: str, *, torch_expected: bool) -> None:
    """``oceandl_software``: the installed numpy and xarray, oceandl's version, torch's build only
    where torch computed the numbers."""
    import oceandl

    numpy_v, xarray_v = _versions()
    parts = value.split("; ")
    assert parts[:3] == [f"oceandl {oceandl.__version__}", f"numpy {numpy_v}", f"xarray {xarray_v}"], value
    if torch_expected:
        import torch

        assert f"torch {torch.__version__}" in parts, value
    else:
        assert "torch" not in value, value


def _cube():
    from tests.fakes import lowrank_cube

    return lowrank_cube(8, 16, 16, seed=0, dates=True)[0].rename("sst")


def test_software_versions_names_only_the_libraries_asked_and_imports_none():
    """A numpy-only fill must not import torch to say its version (nor list it)."""
    import sys

    code = ("import sys; from oceandl.utils import software_versions as s; v = s(); "
            "assert 'torch' not in sys.modules and 'torch' not in v, v; print(v)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    _assert_software(out.stdout.strip(), torch_expected=False)
    from oceandl.utils import software_versions

    _assert_software(software_versions("torch"), torch_expected=True)
    assert software_versions("torch", "torch").count("torch") == 1


@pytest.mark.parametrize("method", ["climatology", "unet"])
def test_interpolation_output_records_its_software(method, tmp_path):
    """A filled field recorded only oceandl's version: not the numpy, xarray (and torch, for a
    network) whose numbers went into it."""
    import xarray as xr

    from oceandl.interp import interpolate

    opts = {"steps": 2, "batch_size": 2, "patch": 16, "model_options": {"width": 4, "depth": 1}} if method == "unet" else {}
    ds = interpolate(_cube(), method, return_dataset=True, device="cpu", **opts)
    ds.to_netcdf(tmp_path / "f.nc")
    with xr.open_dataset(tmp_path / "f.nc") as back:
        for attrs in (back.attrs, back[next(iter(ds.data_vars))].attrs):
            assert attrs["oceandl_version"]
            _assert_software(attrs["oceandl_software"], torch_expected=method == "unet")


def test_refill_and_chunked_and_eof_files_carry_one_fresh_value(tmp_path):
    """A climatology fill of a DINEOF output (torch in its software) says its own software, no torch,
    in the file and on the variable; so do the --chunks path and an `eof` file."""
    import xarray as xr
    from click.testing import CliRunner

    from oceandl.cli.main import cli
    from oceandl.interp.base import _input_attrs

    assert "oceandl_software" not in _input_attrs({"oceandl_version": "0.0.1", "oceandl_software": "stale"})
    _cube().to_dataset(name="sst").to_netcdf(tmp_path / "in.nc")

    def run(*args):
        res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert res.exit_code == 0, res.output

    run("interpolate", tmp_path / "in.nc", "--method", "dineof", "--withhold", 0, "--set", "max_modes=2",
        "--device", "cpu", "--quiet", "-o", tmp_path / "dineof.nc")
    with xr.open_dataset(tmp_path / "dineof.nc") as ds:
        _assert_software(ds.attrs["oceandl_software"], torch_expected=True)  # DINEOF runs on torch
    run("interpolate", tmp_path / "dineof.nc", "--var", "sst", "--method", "climatology", "--withhold", 0,
        "--quiet", "-o", tmp_path / "refill.nc")
    run("interpolate", tmp_path / "dineof.nc", "--var", "sst", "--method", "climatology", "--chunks",
        "time=-1,lat=8,lon=8", "--quiet", "-o", tmp_path / "chunked.nc")
    for name in ("refill.nc", "chunked.nc"):
        with xr.open_dataset(tmp_path / name) as ds:
            for attrs in (ds.attrs, ds["sst"].attrs):
                _assert_software(attrs["oceandl_software"], torch_expected=False)
    run("eof", tmp_path / "refill.nc", "--var", "sst", "--n-modes", 2, "-o", tmp_path / "eof.nc")
    with xr.open_dataset(tmp_path / "eof.nc") as ds:
        _assert_software(ds.attrs["oceandl_software"], torch_expected=False)  # the full (numpy) SVD
        assert ds.attrs["solver"] == "full"


def test_classify_predictions_record_their_software(tmp_path):
    """`oceandl classify -o x.nc` recorded oceandl's version alone: the network ran in torch."""
    import numpy as np
    import xarray as xr
    from click.testing import CliRunner

    from oceandl.cli.main import cli
    from oceandl.models import get_model
    from oceandl.preprocess import check_spec
    from oceandl.training.checkpoint import save_checkpoint

    options = {"channels": [4], "hidden": 4}
    save_checkpoint(tmp_path / "ck", get_model("cnn", 1, 2, **options), model_name="cnn", model_args=[1, 2],
                    model_options=options, task="classification", classes=["a", "b"],
                    preprocessing=check_spec({"size": [16, 16], "normalize": "per_image"}))
    img = np.random.default_rng(0).normal(size=(3, 16, 16)).astype(np.float32)
    xr.Dataset({"image": (("sample", "y", "x"), img)}).to_netcdf(tmp_path / "stack.nc")
    res = CliRunner().invoke(cli, ["classify", str(tmp_path / "stack.nc"), "--model", str(tmp_path / "ck"),
                                   "--device", "cpu", "--quiet", "-o", str(tmp_path / "p.nc")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with xr.open_dataset(tmp_path / "p.nc") as ds:
        assert ds.attrs["oceandl_version"]
        _assert_software(ds.attrs["oceandl_software"], torch_expected=True)
