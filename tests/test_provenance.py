"""Provenance recorded in run folders: the git commit and whether the checkout had uncommitted changes."""
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
