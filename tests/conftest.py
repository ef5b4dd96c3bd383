"""Shared fixtures: seeded tiny data, the real-data locator, thread settings."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import torch_threads

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test starts from the same global torch RNG state: a network built before ``fit`` (which
    seeds only from there on) otherwise got a random initialisation per process, and a test at the
    edge of its threshold passed or failed by chance (0.75 vs > 0.9 in one; one run in two)."""
    torch.manual_seed(0)
    yield


def _real_data_root() -> Path | None:
    from oceandl.utils import data_root

    return data_root()


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The folder with the real MNIST test set, or skip with the reason."""
    root = _real_data_root()
    if root is None or not any((root / "mnist").glob("t10k-images-idx3-ubyte*")):
        pytest.skip("real MNIST not found: set OCEANDL_DATA to a folder with mnist/t10k-*-ubyte.gz "
                    "(../shared/data beside the checkout is used when present)")
    return root


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: on tiny matrices OpenMP synchronisation dominates (badly on a busy machine)."""
    with torch_threads(1):
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def digits():
    """A seeded 28x28 'digit' batch: 4 classes of blobs at class-specific positions, (N, 1, 28, 28)."""
    g = torch.Generator().manual_seed(0)
    n = 240
    y = torch.arange(n) % 4
    x = 0.1 * torch.rand(n, 1, 28, 28, generator=g)
    for c in range(4):
        r, col = 4 + 12 * (c // 2), 4 + 12 * (c % 2)
        x[y == c, :, r:r + 8, col:col + 8] += 0.8
    return x, y
