"""Synthetic SAR vignettes and plankton images: determinism, layouts, class distinctness, read-back."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import rasterio
import torch

from oceandl.datasets.images import (
    TENGEOP_CLASSES,
    ImageFolderDataset,
    TenGeoPDataset,
    open_image_dataset,
    read_image,
)
from oceandl.datasets.synthetic_images import (
    PLANKTON_CLASSES,
    make_plankton_images,
    make_sar_vignettes,
    plankton_arrays,
    sar_arrays,
)
from oceandl.errors import InputError


def nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray, n_train: int) -> float:
    """Fit class means on the first ``n_train`` of each class (standardised features), score the rest."""
    classes = np.unique(labels)
    train = np.concatenate([np.flatnonzero(labels == k)[:n_train] for k in classes])
    test = np.setdiff1d(np.arange(len(labels)), train)
    mu, sd = features[train].mean(0), features[train].std(0) + 1e-9
    f = (features - mu) / sd
    centroids = np.stack([f[train][labels[train] == k].mean(0) for k in classes])
    pred = classes[np.argmin(((f[test][:, None] - centroids) ** 2).sum(-1), axis=1)]
    return float((pred == labels[test]).mean())


def sar_spectral_features(x: np.ndarray) -> np.ndarray:
    """Radially averaged log power spectrum (8 bins) + quantiles of the standardised dB image."""
    db = 10 * np.log10(x)
    z = (db - db.mean((1, 2), keepdims=True)) / db.std((1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(z)) ** 2
    n = x.shape[-1]
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    bins = np.digitize(k, np.linspace(0, 0.5, 9)[1:-1])
    radial = np.stack([np.log(power[:, bins == b].mean(1)) for b in range(8)], axis=1)
    quant = np.quantile(z.reshape(len(z), -1), [0.01, 0.1, 0.5, 0.9, 0.99], axis=1).T
    return np.concatenate([radial, quant], axis=1)


@pytest.fixture(scope="module")
def sar():
    return sar_arrays(n_per_class=20, size=64, seed=3)


def test_sar_deterministic_and_seed_dependent():
    a, la = sar_arrays(3, 32, seed=0)
    b, _ = sar_arrays(3, 32, seed=0)
    c, _ = sar_arrays(3, 32, seed=1)
    assert a.shape == (30, 32, 32) and a.dtype == np.float32
    assert la.tolist() == np.repeat(np.arange(10), 3).tolist()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # Each image depends on (seed, class, index) only, not on how many are made.
    more, _ = sar_arrays(4, 32, seed=0)
    np.testing.assert_array_equal(more.reshape(10, 4, 32, 32)[:, :3], a.reshape(10, 3, 32, 32))
    assert (a > 0).all() and np.isfinite(a).all()


def test_sar_classes_distinct_in_texture_not_brightness(sar):
    x, y = sar
    # Simple spectral/histogram features separate the ten classes far above chance (0.1) ...
    assert nearest_centroid_accuracy(sar_spectral_features(x), y, 12) > 0.5
    # ... and class-mean spectra differ pairwise by much more than the within-class scatter allows.
    f = sar_spectral_features(x)
    means = np.stack([f[y == k].mean(0) for k in range(10)])
    sem = np.stack([f[y == k].std(0) for k in range(10)]).mean(0) / np.sqrt(20)
    dist = np.sqrt((((means[:, None] - means[None]) / sem) ** 2).sum(-1))
    assert dist[~np.eye(10, dtype=bool)].min() > 5
    # The mean backscatter alone does not give the class away.
    assert nearest_centroid_accuracy(np.log(x.mean((1, 2)))[:, None], y, 12) < 0.3


def test_sar_class_signatures(sar):
    x, y = sar
    db = 10 * np.log10(x)
    z = (db - db.mean((1, 2), keepdims=True)) / db.std((1, 2), keepdims=True)
    # Icebergs (L): a few very bright point targets -> the largest maxima of the standardised images.
    top = z.reshape(len(z), -1).max(1)
    assert np.median(top[y == 6]) > np.median(top[y != 6]) + 1
    # Low-wind areas (M): the darkest large patches -> widest spread of the smoothed image.
    k = np.ones(8) / 8
    smooth = np.apply_along_axis(lambda r: np.convolve(r, k, "valid"), 2, db)
    spread = smooth.reshape(len(z), -1).std(1)
    assert np.median(spread[y == 7]) > np.quantile(spread[(y != 7) & (y != 5) & (y != 8)], 0.75)


def test_make_sar_vignettes_layout_and_read_back(tmp_path):
    root = make_sar_vignettes(tmp_path / "sar", n_per_class=3, size=32, seed=5)
    assert sorted(p.name for p in root.iterdir()) == sorted([*TENGEOP_CLASSES, "metadata.csv"])
    files = sorted((root / "F").glob("*.tiff"))
    assert len(files) == 3
    with rasterio.open(files[0]) as src:
        assert (src.count, src.height, src.width) == (1, 32, 32)
        assert src.dtypes[0] == "float32" and src.crs.to_epsg() == 4326
    rows = list(csv.DictReader(open(root / "metadata.csv")))
    assert len(rows) == 30 and set(rows[0]) == {"filename", "class", "latitude", "longitude", "time"}
    for r in rows:
        if r["class"] in "KL":
            assert abs(float(r["latitude"])) >= 55

    ds = open_image_dataset(root)
    assert isinstance(ds, TenGeoPDataset)
    assert len(ds) == 30 and ds.targets.tolist() == np.repeat(np.arange(10), 3).tolist()
    expected, _ = sar_arrays(3, 32, seed=5)
    # Files in a class sort by name, which embeds the acquisition time: match them by content.
    got = np.stack([ds[i]["image"][0].numpy() for i in range(30)])
    for k in range(10):
        a = np.sort(got[3 * k : 3 * k + 3].reshape(3, -1).sum(1))
        b = np.sort(expected[3 * k : 3 * k + 3].reshape(3, -1).sum(1))
        np.testing.assert_allclose(a, b, rtol=1e-6)
    meta = ds.metadata(0)
    assert set(meta) == {"latitude", "longitude", "time"} and meta["time"].startswith("201")
    assert ds.metadata_file == root / "metadata.csv"
    # Writing again with the same seed gives the same files.
    again = make_sar_vignettes(tmp_path / "sar2", n_per_class=3, size=32, seed=5)
    assert (again / "F" / files[0].name).read_bytes() == files[0].read_bytes()


def test_make_sar_without_metadata(tmp_path):
    root = make_sar_vignettes(tmp_path / "s", n_per_class=1, size=16, metadata=False)
    assert not (root / "metadata.csv").exists()
    assert TenGeoPDataset(root).metadata(0) == {}


def plankton_shape_features(images):
    """log(area / ellipse area) and log elongation of the object (threshold at half the contrast)."""
    out = []
    for im in images:
        a = im.astype(float) / 255
        bg = np.median(np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]))
        obj = np.abs(a - bg)
        yy, xx = np.nonzero(obj > 0.5 * obj.max())
        ev = np.sort(np.linalg.eigvalsh(np.cov(np.stack([yy, xx]))))
        out.append([np.log(len(yy) / np.sqrt(ev[0] * ev[1] + 1e-9)), np.log(ev[1] / (ev[0] + 1e-9))])
    return np.array(out)


def test_plankton_deterministic_varied_and_distinct():
    imgs, labels = plankton_arrays(20, 64, seed=3)
    again, _ = plankton_arrays(20, 64, seed=3)
    other, _ = plankton_arrays(20, 64, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(imgs, again))
    assert not all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(imgs, other))
    assert labels.tolist() == np.repeat(np.arange(6), 20).tolist()
    shapes = {im.shape for im in imgs}
    assert len(shapes) > 20  # size jitter as in real collections
    assert all(40 <= s <= 90 for shp in shapes for s in shp)
    # Both background polarities occur.
    border = np.array([np.median(im[0]) for im in imgs])
    assert (border < 60).sum() > 20 and (border > 190).sum() > 20
    # Two shape features separate the six morphotypes far above chance (1/6).
    assert nearest_centroid_accuracy(plankton_shape_features(imgs), labels, 12) > 0.6
    # Chaetognaths are the most elongated, radiolarians the least.
    elong = plankton_shape_features(imgs)[:, 1]
    med = [np.median(elong[labels == k]) for k in range(6)]
    assert np.argmax(med) == PLANKTON_CLASSES.index("chaetognath")
    assert np.argmin(med) in (PLANKTON_CLASSES.index("radiolarian"), PLANKTON_CLASSES.index("detritus"))


@pytest.mark.parametrize("fmt", ["png", "jpg", "tif"])
def test_make_plankton_layout_and_read_back(tmp_path, fmt):
    root = make_plankton_images(tmp_path / "pl", n_per_class=3, size=32, seed=1, fmt=fmt)
    assert sorted(p.name for p in root.iterdir()) == PLANKTON_CLASSES
    assert sorted(p.name for p in (root / "copepod").iterdir()) == [f"copepod_{i:05d}.{fmt}" for i in range(3)]
    ds = ImageFolderDataset(root, channels=1, size=(32, 32))
    assert ds.classes == PLANKTON_CLASSES and ds.targets.tolist() == np.repeat(np.arange(6), 3).tolist()
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    assert batch["image"].shape == (18, 1, 32, 32)
    if fmt != "jpg":  # lossless: the native-size pixels come back exactly
        imgs, _ = plankton_arrays(3, 32, seed=1)
        np.testing.assert_allclose(read_image(ds.files[4])[0], imgs[4] / 255.0, atol=1e-6)


def test_generator_errors(tmp_path):
    with pytest.raises(InputError, match="n_per_class"):
        make_sar_vignettes(tmp_path / "x", n_per_class=0)
    with pytest.raises(InputError, match="size"):
        sar_arrays(1, size=8)
    with pytest.raises(InputError, match="fmt"):
        make_plankton_images(tmp_path / "y", fmt="gif")


@pytest.mark.slow
def test_small_cnn_learns_sar_classes():
    """~100 vignettes per class at 64x64: a four-layer CNN beats 80% on held-out vignettes."""
    from torch import nn

    torch.manual_seed(0)
    x, y = sar_arrays(n_per_class=140, size=64, seed=11)
    db = 10 * np.log10(x)
    z = torch.tensor((db - db.mean((1, 2), keepdims=True)) / db.std((1, 2), keepdims=True))[:, None]
    labels = torch.tensor(y)
    train = torch.tensor(np.concatenate([np.flatnonzero(y == k)[:100] for k in range(10)]))
    test = torch.tensor(np.concatenate([np.flatnonzero(y == k)[100:] for k in range(10)]))

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

    model = nn.Sequential(block(1, 16), block(16, 32), block(32, 64), block(64, 64),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    epochs, batch = 10, 32
    steps = epochs * ((len(train) + batch - 1) // batch)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    for _ in range(epochs):
        model.train()
        order = train[torch.randperm(len(train))]
        for b in range(0, len(order), batch):
            idx = order[b : b + batch]
            xb = torch.rot90(z[idx], int(torch.randint(4, ())), (2, 3))
            loss = nn.functional.cross_entropy(model(xb), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        acc = (model(z[test]).argmax(1) == labels[test]).float().mean().item()
    assert acc > 0.8
