"""Image readers (TenGeoP GeoTIFF trees, class folders, netCDF stacks, loose files) and transforms."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr
from PIL import Image
from rasterio.transform import Affine

from oceandl.datasets import transforms as T
from oceandl.datasets.images import (
    TENGEOP_CLASSES,
    ImageFilesDataset,
    ImageFolderDataset,
    NetCDFImageDataset,
    TenGeoPDataset,
    list_images,
    open_image_dataset,
    read_image,
)
from oceandl.errors import InputError

NAMES = list(TENGEOP_CLASSES.values())
QUIET_ABSENT = pytest.mark.filterwarnings("ignore:.*no vignettes for class")


def write_tiff(path, arr, georef=True, nodata=None):
    """Write a (bands, H, W) array as a (Geo)TIFF (with a declared ``nodata`` value when given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kw = dict(transform=Affine(0.001, 0, -30, 0, -0.001, 45), crs="EPSG:4326") if georef else {}
    if nodata is not None:
        kw["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(
            path, "w", driver="GTiff", count=arr.shape[0], dtype=arr.dtype.name,
            height=arr.shape[1], width=arr.shape[2], **kw,
        ) as dst:
            dst.write(arr)


def write_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))


@pytest.fixture
def tengeop(tmp_path):
    """F (2 vignettes), G (1, nested one level), K under its full name, and a metadata table."""
    rng = np.random.default_rng(0)
    root = tmp_path / "tengeop"
    arrays = {}
    for folder, names in {"F": ["a", "b"], "G": ["sub/c"], "Sea_Ice": ["d"]}.items():
        for n in names:
            arr = rng.gamma(2.0, 0.05, (1, 24, 24)).astype(np.float32)
            p = root / folder / f"{n}.tiff"
            write_tiff(p, arr)
            arrays[p.stem] = arr
    (root / "metadata.csv").write_text(
        "filename,class,latitude,longitude,time\n"
        "a.tiff,F,10.5,-20.25,2016-03-01T10:00:00Z\n"
        "c.tiff,G,-33.0,150.0,2016-07-02T01:02:03Z\n"
        "d.tiff,K,70.1,5.5,2017-01-05T00:00:00Z\n"
    )
    return root, arrays


def test_tengeop_classes_labels_values_metadata(tengeop):
    root, arrays = tengeop
    # of the data set's labels, and not contradicting training's "the model is trained on the classes present"
    with pytest.warns(UserWarning, match=r"no vignettes for class.*H, I, J, L, M, N, O; the data set keeps the ten "
                                         r"F..O = 0..9 labels \(a model trained on it learns only the classes present\)"):
        ds = TenGeoPDataset(root)
    assert ds.classes == NAMES and ds.codes == list("FGHIJKLMNO")
    assert len(ds) == 4
    assert ds.targets.tolist() == [0, 0, 1, 5]
    assert ds.targets.dtype == np.int64
    assert [p.stem for p in ds.files] == ["a", "b", "c", "d"]
    for i in range(4):
        s = ds[i]
        assert s["image"].dtype == torch.float32 and s["image"].shape == (1, 24, 24)
        np.testing.assert_array_equal(s["image"].numpy(), arrays[ds.files[i].stem])
        assert s["label"].dtype == torch.int64 and int(s["label"]) == ds.targets[i]
        assert s["path"] == str(ds.files[i])
    assert ds.metadata_file == root / "metadata.csv"
    assert ds.metadata(0) == {"latitude": 10.5, "longitude": -20.25, "time": "2016-03-01T10:00:00Z"}
    assert ds.metadata(1) == {}
    assert ds.metadata(3)["latitude"] == 70.1
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 1, 24, 24) and batch["label"].tolist() == [0, 0, 1, 5]


@QUIET_ABSENT
def test_metadata_table_saved_with_a_byte_order_mark_is_read(tengeop):
    # Excel's "CSV UTF-8" starts with a BOM: the first header was "\ufefffilename", the table had no
    # filename column and every vignette's latitude, longitude and time were silently missing
    root, _ = tengeop
    table = root / "metadata.csv"
    table.write_text(table.read_text(), encoding="utf-8-sig")
    assert table.read_bytes().startswith(b"\xef\xbb\xbf")
    ds = TenGeoPDataset(root)
    assert ds.metadata_file == table
    assert ds.metadata(0) == {"latitude": 10.5, "longitude": -20.25, "time": "2016-03-01T10:00:00Z"}


def test_tengeop_archive_layout_and_dispatch(tmp_path):
    root = tmp_path / "archive"
    for letter in "FO":
        write_tiff(root / "GeoTIFF" / letter / f"{letter}1.tif", np.full((1, 8, 8), 0.5, np.float32), georef=False)
    (root / "labels.txt").write_text("fn\tlat\tlon\tdate\nF1.tif\t1\t2\t2016-01-01\n")
    with pytest.warns(UserWarning, match="no vignettes"):
        ds = open_image_dataset(root)
    assert isinstance(ds, TenGeoPDataset)
    assert ds.targets.tolist() == [0, 9]
    assert ds.metadata(0) == {"latitude": 1.0, "longitude": 2.0, "time": "2016-01-01"}
    with pytest.warns(UserWarning):
        assert TenGeoPDataset(root, metadata=False).metadata(0) == {}


@QUIET_ABSENT
@QUIET_ABSENT
def test_own_sar_classes_named_like_some_tengeop_ones_are_all_kept(tmp_path):
    # "Sea Ice" and "Iceberg" made the folder TenGeoP: "Ship" and "Open water" were left out silently
    # and a model was trained on 2 of the 4 classes
    rng = np.random.default_rng(4)
    root = tmp_path / "mysar"
    for cls in ("Iceberg", "Open water", "Sea Ice", "Ship"):
        for i in range(2):
            write_png(root / cls / f"{i}.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    with pytest.warns(UserWarning, match="Open water, Ship are not TenGeoP-SARwv classes"):
        ds = open_image_dataset(root)
    assert isinstance(ds, ImageFolderDataset)
    assert ds.classes == ["Iceberg", "Open water", "Sea Ice", "Ship"] and len(ds) == 8
    with pytest.warns(UserWarning, match="Open water, Ship are not TenGeoP-SARwv classes: their images are left out"):
        TenGeoPDataset(root)


def test_tengeop_errors(tmp_path, tengeop):
    with pytest.raises(InputError, match="no TenGeoP-SARwv class folders"):
        TenGeoPDataset(tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        TenGeoPDataset(tmp_path / "missing")
    empty = tmp_path / "empty"
    for letter in "FG":
        (empty / letter).mkdir(parents=True)
    with pytest.warns(UserWarning), pytest.raises(InputError, match="hold no images"):
        TenGeoPDataset(empty)
    root, _ = tengeop
    with pytest.raises(InputError, match="nometa.csv: metadata file not found"):
        TenGeoPDataset(root, metadata=tmp_path / "nometa.csv")


@QUIET_ABSENT
@pytest.mark.parametrize("cut", [0.9, 0.3])
def test_truncated_tiff_skipped_or_raised_by_name(tengeop, cut):
    root, _ = tengeop
    bad = root / "F" / "b.tiff"
    bad.write_bytes(bad.read_bytes()[: int(bad.stat().st_size * cut)])
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\): b\.tiff"):
        ds = TenGeoPDataset(root, on_error="skip")
    assert ds.skipped == [bad] and str(bad) in ds.skip_reasons
    assert [p.stem for p in ds.files] == ["a", "c", "d"] and ds.targets.tolist() == [0, 1, 5]
    with pytest.raises(InputError, match=r"b\.tiff: unreadable image"):
        TenGeoPDataset(root, on_error="raise")
    with pytest.raises(InputError, match=r"b\.tiff: cannot read image"):
        read_image(bad)


@pytest.fixture
def plankton(tmp_path):
    """Class folders: grey PNGs, an RGB PNG, a grey JPEG of another size."""
    rng = np.random.default_rng(1)
    root = tmp_path / "plankton"
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    write_png(root / "copepod" / "c1.png", grey)
    write_png(root / "copepod" / "c2.png", rng.integers(0, 256, (20, 30), dtype=np.uint8))
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    write_png(root / "diatom" / "d1.png", rgb)
    write_png(root / "diatom" / "d2.jpg", rng.integers(0, 256, (40, 25), dtype=np.uint8))
    return root, grey, rgb


def test_image_folder_classes_channels_sizes(plankton):
    root, grey, rgb = plankton
    (root / "empty_class").mkdir()
    with pytest.warns(UserWarning) as rec:
        ds = ImageFolderDataset(root)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "dropped empty class folder(s): empty_class" in msgs
    assert "2 different sizes; resizing all to 20x30" in msgs
    assert ds.classes == ["copepod", "diatom"]
    assert ds.targets.tolist() == [0, 0, 1, 1]
    assert ds.channels == 3 and ds.size == (20, 30)  # one RGB file -> 3 channels for all
    s0 = ds[0]
    assert s0["image"].shape == (3, 20, 30)
    np.testing.assert_allclose(s0["image"][1].numpy(), grey / 255.0, atol=1e-6)  # grey repeated
    np.testing.assert_allclose(ds[2]["image"].numpy(), np.moveaxis(rgb, -1, 0) / 255.0, atol=1e-6)
    assert ds[3]["image"].shape == (3, 20, 30)  # the 40x25 JPEG resized

    (root / "empty_class").rmdir()
    g = ImageFolderDataset(root, channels=1, size=(16, 16))
    luma = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    np.testing.assert_allclose(
        ImageFolderDataset(root, channels=1, size=(20, 30))[2]["image"][0].numpy(), luma, atol=1e-5
    )
    batch = torch.utils.data.default_collate([g[i] for i in range(4)])
    assert batch["image"].shape == (4, 1, 16, 16)
    for fit in ("crop", "pad"):
        assert ImageFolderDataset(root, channels=1, size=12, fit=fit)[3]["image"].shape == (1, 12, 12)
    # pad keeps the aspect: the 40x25 image becomes 12 high and ~8 wide, margins = border mean.
    padded = ImageFolderDataset(root, channels=1, size=12, fit="pad")[3]["image"][0]
    assert torch.allclose(padded[:, 0], padded[:, -1])


def test_warnings_name_the_callers_line(plankton, tengeop):
    """The readers' warnings had fixed stacklevels: through open_image_dataset (the CLI's and the
    pipelines' entry) they named datasets/images.py, not the user's line. Each names this file now."""
    root, _, _ = plankton
    (root / "empty_class").mkdir()
    (root / "copepod" / "z.png").write_bytes(b"")
    for make in (lambda: ImageFolderDataset(root), lambda: open_image_dataset(root), lambda: open_image_dataset(tengeop[0])):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            make()
        assert caught
        assert {(w.filename, w.category) for w in caught} == {(__file__, UserWarning)}, [w.filename for w in caught]


def test_library_warnings_about_the_files_are_said_once_with_a_count(tmp_path):
    """PIL warns about each JPEG whose EXIF block is cut short ("Tag data larger than file"): once
    per file at the header check and again at every read (the readers' catch_warnings reset Python's
    once-per-line memory): 60 lines on stderr for 30 such files trained 2 epochs. It is one warning
    with the count now, and reading the samples (every epoch when streamed) adds none."""
    import struct

    rng = np.random.default_rng(0)
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x010E, 2, 100, 26) + struct.pack("<I", 0)
    exif = b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd + b"abc"  # a 100-byte tag in 3 bytes
    for c in "ab":
        for i in range(5):
            p = tmp_path / "cam" / c / f"{i}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(p, exif=exif)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageFolderDataset(tmp_path / "cam")
        for _ in range(2):
            for i in range(len(ds)):
                ds[i]
    assert [str(w.message) for w in caught] == [f"{tmp_path / 'cam'}: 10 image(s) (0.jpg, 1.jpg, 2.jpg, ...): "
                                                 "Tag data larger than file. Skipping tag 270"]
    assert caught[0].filename == __file__ and caught[0].category is UserWarning


def test_library_warning_first_seen_at_a_read_is_said_once_naming_the_file(plankton, monkeypatch):
    """A warning that the header check did not give, first seen reading a sample: said once, with
    the file's name, not at every read of every file."""
    import oceandl.datasets.images as images

    root, _, _ = plankton
    ds = ImageFolderDataset(root, channels=1, size=8)
    read = images._read_image

    def noisy(path, *a, **k):
        warnings.warn("odd pixels", RuntimeWarning)
        return read(path, *a, **k)

    monkeypatch.setattr(images, "_read_image", noisy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            for i in range(len(ds)):
                ds[i]
    assert [(str(w.message), w.category, w.filename) for w in caught] == [
        (f"{ds.files[0]}: odd pixels", RuntimeWarning, __file__)]


def test_mixed_band_counts_are_said(plankton):
    # one RGB file among grey ones made every image (and the model) 3-channel without a word,
    # where mixed sizes were already said
    root, _, _ = plankton
    with pytest.warns(UserWarning, match=r"different band counts \(3 of 1 band\(s\), 1 of 3 band\(s\)\); "
                                         r"converting all to 3 \(pass channels="):
        assert ImageFolderDataset(root, size=8).channels == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a chosen band count: nothing to say
        assert ImageFolderDataset(root, channels=1, size=8).channels == 1


def test_zero_byte_files_are_named_as_empty(plankton):
    # a 0-byte PNG, JPEG or TIFF (an interrupted copy) was skipped as "cannot identify image file"
    root, _, _ = plankton
    for name in ("z.png", "z.jpg", "z.tiff"):
        (root / "copepod" / name).write_bytes(b"")
    with pytest.warns(UserWarning, match="skipped 3 unreadable") as rec:
        ds = ImageFolderDataset(root, channels=1, size=8)
    assert sorted(p.name for p in ds.skipped) == ["z.jpg", "z.png", "z.tiff"]
    assert set(ds.skip_reasons.values()) == {"empty file (0 bytes)"}
    assert "z.png (empty file (0 bytes))" in " ".join(str(w.message) for w in rec)


def test_hidden_folders_and_alpha_bands_are_not_samples(tmp_path):
    """Images under a hidden folder of a class (.thumbs, .ipynb_checkpoints) are not samples, and an
    RGBA TIFF is 3 colour bands, as an RGBA PNG is (its alpha is not a band; a 4-band GeoTIFF
    without alpha keeps its 4)."""
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (6, 8, 4), dtype=np.uint8)
    root = tmp_path / "classes"
    for cls in ("a", "b"):
        write_png(root / cls / "x.png", rgba[..., :3])
        write_png(root / cls / ".thumbs" / "x_small.png", rgba[:3, :4, :3])
        write_png(root / cls / "sub" / ".ipynb_checkpoints" / "y.png", rgba[..., :3])
    Image.fromarray(rgba, "RGBA").save(root / "a" / "rgba.tif")
    Image.fromarray(rgba, "RGBA").save(root / "b" / "rgba.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one size and one band count: nothing to warn about
        ds = ImageFolderDataset(root)
    assert len(ds) == 4 and ds.channels == 3 and ds.size == (6, 8)
    expect = np.moveaxis(rgba[..., :3], -1, 0) / 255.0
    np.testing.assert_allclose(read_image(root / "a" / "rgba.tif"), expect, atol=1e-6)
    np.testing.assert_allclose(read_image(root / "a" / "rgba.tif"), read_image(root / "b" / "rgba.png"))
    four = rng.integers(0, 256, (4, 5, 5), dtype=np.uint8)
    write_tiff(tmp_path / "four.tif", four.astype(np.uint16))  # 4 grey/undefined bands
    assert read_image(tmp_path / "four.tif").shape == (4, 5, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp_path / "four8.tif", "w", driver="GTiff", count=4, dtype="uint8", height=5, width=5,
                           photometric="MINISBLACK") as dst:
            dst.write(four)
    np.testing.assert_allclose(read_image(tmp_path / "four8.tif"), four / 255.0)


def test_symlinked_sub_folders_are_followed_without_looping(tmp_path):
    """A class folder made of links to year folders (WHOI-Plankton ``<class>/2014 -> /data/2014/<class>``)
    was "empty" and dropped with a warning, and classify missed the images behind such a link:
    Path.rglob does not follow symlinked folders before Python 3.13. A link back up is no loop."""
    rng = np.random.default_rng(7)
    data = tmp_path / "data"
    for year in ("2013", "2014"):
        for cls in ("Chaetoceros", "Ditylum"):
            for i in range(2):
                write_png(data / year / cls / f"{i}.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    root = tmp_path / "train"
    for cls in ("Chaetoceros", "Ditylum"):
        (root / cls).mkdir(parents=True)
        for year in ("2013", "2014"):
            (root / cls / year).symlink_to(data / year / cls, target_is_directory=True)
    (root / "Ditylum" / "2014" / "loop").symlink_to(root / "Ditylum", target_is_directory=True)  # a cycle
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "dropped empty class folder(s)"
        ds = ImageFolderDataset(root)
    assert ds.classes == ["Chaetoceros", "Ditylum"]
    assert np.bincount(ds.targets).tolist() == [4, 4]  # the cycle is not walked again
    assert str(ds.files[0]) == str(root / "Chaetoceros" / "2013" / "0.png")
    assert len(list_images(root / "Chaetoceros")) == 4
    assert len(ImageFilesDataset(root / "Chaetoceros")) == 4


def test_ndsb_train_level_and_loose_files(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "ndsb"
    for cls in ("acantharia", "shrimp"):
        write_png(root / "train" / cls / f"{cls}.jpg", rng.integers(0, 256, (10, 10), dtype=np.uint8))
    write_png(root / "test" / "1.jpg", rng.integers(0, 256, (10, 10), dtype=np.uint8))
    ds = ImageFolderDataset(root)
    assert ds.root == root / "train" and ds.classes == ["acantharia", "shrimp"]
    assert isinstance(open_image_dataset(root), ImageFolderDataset)
    with pytest.raises(InputError, match="no class sub-folders.*ImageFilesDataset"):
        ImageFolderDataset(root / "test")


def test_corrupt_png_skipped_or_raised_by_name(plankton):
    root, _, _ = plankton
    bad = root / "copepod" / "broken.png"
    good = (root / "copepod" / "c2.png").read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # truncated PNG: header fine, data cut
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\): broken\.png"):
        ds = ImageFolderDataset(root, channels=1, size=8)
    assert ds.skipped == [bad] and len(ds) == 4
    with pytest.raises(InputError, match=r"broken\.png: unreadable image"):
        ImageFolderDataset(root, channels=1, size=8, on_error="raise")
    (root / "copepod" / "noise.jpg").write_bytes(b"not an image at all")
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable.*broken\.png.*noise\.jpg"):
        ImageFolderDataset(root, channels=1, size=8)


def test_truncated_jpeg_caught_by_full_verify_or_at_access(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "jpg"
    for cls in "ab":
        write_png(root / cls / "x.jpg", rng.integers(0, 256, (64, 64), dtype=np.uint8))
    p = root / "a" / "x.jpg"
    p.write_bytes(p.read_bytes()[:-600])
    with pytest.warns(UserWarning, match=r"x\.jpg"):
        assert ImageFolderDataset(root, verify="full").classes == ["a", "b"]
    lazy = ImageFolderDataset(root)  # the header is intact: found only when read
    with pytest.raises(InputError, match=r"x\.jpg: cannot read image"):
        lazy[0]


def test_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        ImageFolderDataset(tmp_path / "nope")
    (tmp_path / "a").mkdir()
    with pytest.raises(InputError, match=r"no class sub-folders with images.*\(empty: a\)"):
        ImageFolderDataset(tmp_path)
    only_bad = tmp_path / "bad"
    (only_bad / "x").mkdir(parents=True)
    (only_bad / "x" / "1.png").write_bytes(b"junk")
    with pytest.raises(InputError, match=r"no readable images: 1 unreadable: .*1\.png"):
        ImageFolderDataset(only_bad)  # one error naming the file (no warning before it)
    with pytest.raises(InputError, match="on_error"):
        ImageFolderDataset(only_bad, on_error="ignore")


def test_geotiff_multiband_and_integer_scaling(tmp_path):
    u16 = np.array([[[0, 65535], [32768, 1]]], dtype=np.uint16)
    write_tiff(tmp_path / "u16.tif", u16, georef=False)
    np.testing.assert_allclose(read_image(tmp_path / "u16.tif")[0], u16[0] / 65535.0)
    f = np.array([[[1.0, np.nan], [3.0, 5.0]]], dtype=np.float32)
    write_tiff(tmp_path / "nan.tif", f)
    np.testing.assert_array_equal(read_image(tmp_path / "nan.tif")[0], [[1, 3], [3, 5]])  # NaN -> median
    write_tiff(tmp_path / "allnan.tif", np.full((1, 2, 2), np.nan, np.float32))
    with pytest.raises(InputError, match="allnan.tif: image has no finite pixel"):
        read_image(tmp_path / "allnan.tif")
    rgb = np.stack([np.full((4, 4), v, np.uint8) for v in (10, 20, 30)])
    write_tiff(tmp_path / "rgb.tif", rgb)
    assert read_image(tmp_path / "rgb.tif").shape == (3, 4, 4)
    luma = (0.299 * 10 + 0.587 * 20 + 0.114 * 30) / 255
    np.testing.assert_allclose(read_image(tmp_path / "rgb.tif", channels=1), luma, rtol=1e-5)


def test_16bit_images_keep_their_16_bits(tmp_path):
    """16-bit grey PNG/TIFF kept 16 bits, but PIL opens a 16-bit RGB PNG as 8-bit RGB and a 16-bit
    grey + alpha one as 8-bit RGBA: values 1 and 2 (of 65535) both read 0, an error up to 0.0036 of
    the range, and the grey + alpha image came out as 3 bands. They are read at full depth now."""
    rng = np.random.default_rng(0)
    rgb = (rng.random((3, 6, 7)) * 65535).astype(np.uint16)
    rgb[:, 0, :3] = [[1, 2, 65535]] * 3
    grey = rgb[0]
    for name, bands, want in (("rgb.png", rgb, rgb), ("rgba.png", np.concatenate([rgb, np.full((1, 6, 7), 65535, np.uint16)]), rgb),
                              ("ga.png", np.stack([grey, np.full_like(grey, 65535)]), grey[None]),
                              ("g.png", grey[None], grey[None])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NotGeoreferencedWarning
            with rasterio.open(tmp_path / name, "w", driver="PNG", width=7, height=6, count=len(bands),
                               dtype="uint16") as dst:
                dst.write(bands)
        got = read_image(tmp_path / name)
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want / 65535.0, rtol=0, atol=1e-7, err_msg=name)
    ds = ImageFilesDataset([tmp_path / "ga.png", tmp_path / "g.png"])
    assert ds.channels == 1 and ds[0]["image"].shape == (1, 6, 7)  # one band at the header check too
    assert ImageFilesDataset(tmp_path / "rgb.png").channels == 3


def test_geotiff_nodata_pixels_are_filled_like_nan(tmp_path):
    # A vignette with a declared fill value (-9999 off the swath, 0 in a uint16 file): those pixels
    # were read as data, -9999 in linear intensity (a -60 dB floor after ToDecibel).
    f = np.array([[[1.0, -9999.0], [3.0, 5.0]]], dtype=np.float32)
    write_tiff(tmp_path / "fill.tif", f, nodata=-9999)
    np.testing.assert_array_equal(read_image(tmp_path / "fill.tif")[0], [[1, 3], [3, 5]])  # -> median
    u16 = np.array([[[0, 65535], [65535, 0]]], dtype=np.uint16)
    write_tiff(tmp_path / "u16.tif", u16, nodata=0)
    np.testing.assert_array_equal(read_image(tmp_path / "u16.tif")[0], np.ones((2, 2)))
    write_tiff(tmp_path / "allfill.tif", np.full((1, 2, 2), -9999, np.float32), nodata=-9999)
    with pytest.raises(InputError, match="allfill.tif: image has no finite pixel"):
        read_image(tmp_path / "allfill.tif")
    # without a declared nodata value the same numbers are data
    write_tiff(tmp_path / "plain.tif", f)
    assert read_image(tmp_path / "plain.tif").min() == -9999


def test_geotiff_mask_band_pixels_are_filled_like_nodata(tmp_path):
    # Off-swath pixels declared by a GDAL mask band (no nodata tag) were read as data: 0 linear
    # intensity, the -60 dB floor after --intensity db, which skewed the per-image normalisation.
    from oceandl.preprocess import preprocess_batch

    f = np.full((1, 4, 4), 0.01, np.float32)
    f[0, 0, 0] = 0.04
    f[0, 3] = 0.0  # off the swath
    path = tmp_path / "masked.tif"
    write_tiff(path, f)
    with rasterio.open(path, "r+") as dst:
        dst.write_mask(np.where(f[0] > 0, 255, 0).astype(np.uint8))
    x = read_image(path)
    np.testing.assert_allclose(x[0, 3], 0.01)  # the median of the valid pixels
    db = preprocess_batch(torch.from_numpy(x)[None], {"intensity": "db"})[0, 0]
    np.testing.assert_allclose(db[0, :2].numpy(), [10 * np.log10(0.04), -20.0], rtol=1e-5)
    assert db.min() > -21  # no -60 dB floor
    # the same numbers, only valid pixels, normalise to the same image where it is valid
    clean = read_image(path)[None]
    clean[0, 0, 3] = 0.01
    a = preprocess_batch(torch.from_numpy(x)[None], {"intensity": "db", "normalize": "per_image"})
    b = preprocess_batch(torch.from_numpy(clean), {"intensity": "db", "normalize": "per_image"})
    torch.testing.assert_close(a, b)
    # an alpha band is still only dropped (as PIL does for an RGBA PNG), its pixels kept
    rgba = np.stack([np.full((2, 2), v, np.uint8) for v in (10, 20, 30, 0)])
    write_tiff(tmp_path / "rgba.tif", rgba)
    np.testing.assert_allclose(read_image(tmp_path / "rgba.tif")[:, 0, 0], np.array([10, 20, 30]) / 255)


def test_complex_geotiff_is_read_as_intensity(tmp_path):
    # A Sentinel-1 SLC pixel (CInt16 / CFloat32) 3+4j has intensity |z|^2 = 25; the float cast kept
    # the real part (3, and a negative "intensity" for half the phases).
    z = np.array([[[3 + 4j, -3 - 4j], [0.1j, -0.1]]], dtype=np.complex64)
    for dtype in ("complex64", "complex_int16"):
        path = tmp_path / f"{dtype}.tif"
        with rasterio.open(path, "w", driver="GTiff", count=1, dtype=dtype, height=2, width=2,
                           transform=Affine(0.001, 0, -30, 0, -0.001, 45), crs="EPSG:4326") as dst:
            dst.write(z if dtype == "complex64" else np.round(z * 10).astype(np.complex64))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no ComplexWarning: nothing discarded
            x = read_image(path)
        want = [[25, 25], [0.01, 0.01]] if dtype == "complex64" else [[2500, 2500], [1, 1]]
        np.testing.assert_allclose(x[0], want, rtol=1e-5)
    from oceandl.classification import _pixels

    np.testing.assert_allclose(_pixels(torch.from_numpy(z)).numpy()[0], [[25, 25], [0.01, 0.01]], rtol=1e-5)
    np.testing.assert_allclose(_pixels(z).numpy()[0], [[25, 25], [0.01, 0.01]], rtol=1e-5)


def test_netcdf_stack_int_string_and_flag_labels(tmp_path):
    rng = np.random.default_rng(4)
    img = rng.random((5, 8, 8)).astype(np.float32)
    ds = xr.Dataset(
        {"image": (("sample", "y", "x"), img), "label": ("sample", np.array([0, 2, 1, 2, 0]))},
        attrs={"classes": "ocean, ice, slick"},
    )
    path = tmp_path / "stack.nc"
    ds.to_netcdf(path)
    d = open_image_dataset(path)
    assert isinstance(d, NetCDFImageDataset)
    assert d.classes == ["ocean", "ice", "slick"] and d.targets.tolist() == [0, 2, 1, 2, 0]
    s = d[1]
    assert s["image"].shape == (1, 8, 8) and s["image"].dtype == torch.float32
    np.testing.assert_array_equal(s["image"][0].numpy(), img[1])

    strings = ds.assign(label=("sample", np.array(["K", "F", "K", "O", "F"])))
    d = NetCDFImageDataset(strings)
    assert d.classes == ["F", "K", "O"] and d.targets.tolist() == [1, 0, 1, 2, 0]

    flags = ds.drop_attrs().assign(label=("sample", np.array([10, 30, 20, 30, 10])))
    flags["label"].attrs.update(flag_values=np.array([10, 20, 30]), flag_meanings="waves streaks ice")
    d = NetCDFImageDataset(flags)
    assert d.classes == ["waves", "streaks", "ice"] and d.targets.tolist() == [0, 2, 1, 2, 0]

    plain = ds.drop_attrs()
    assert NetCDFImageDataset(plain).classes == ["0", "1", "2"]
    assert NetCDFImageDataset(plain, label_var=None).targets.tolist() == [-1] * 5

    four = xr.Dataset({"img": (("n", "band", "y", "x"), rng.random((3, 2, 4, 4))), "cls": ("n", [0, 1, 1])})
    assert NetCDFImageDataset(four, var="img", label_var="cls")[0]["image"].shape == (2, 4, 4)


def test_netcdf_stack_unsigned_ints_scaled_like_image_files(tmp_path):
    # a uint8 stack came out as 0..255 while the same images as PNG files are read as [0, 1]
    rng = np.random.default_rng(5)
    u8 = rng.integers(0, 256, (3, 6, 6), dtype=np.uint8)
    write_png(tmp_path / "a.png", u8[0])
    ds = xr.Dataset({"image": (("sample", "y", "x"), u8), "label": ("sample", [0, 1, 0])})
    np.testing.assert_allclose(NetCDFImageDataset(ds)[0]["image"].numpy(), read_image(tmp_path / "a.png"))
    masked = ds.copy()
    masked["image"].encoding["_FillValue"] = np.uint8(255)  # decoded to float with NaN on reading
    masked.to_netcdf(tmp_path / "u8.nc")
    d = NetCDFImageDataset(tmp_path / "u8.nc")
    assert 0 <= float(d[1]["image"].min()) and float(d[1]["image"].max()) <= 1
    u16 = ds.assign(image=ds["image"].astype(np.uint16) * 257)
    np.testing.assert_allclose(NetCDFImageDataset(u16)[2]["image"][0].numpy(), u8[2] / 255.0, rtol=1e-6)
    signed = ds.assign(image=ds["image"].astype(np.int16))  # signed and float: kept as stored
    np.testing.assert_array_equal(NetCDFImageDataset(signed)[0]["image"][0].numpy(), u8[0])


def test_netcdf_errors(tmp_path):
    ds = xr.Dataset({"image": (("s", "y", "x"), np.zeros((2, 4, 4), np.float32)), "label": ("s", [0, 1])})
    path = tmp_path / "s.nc"
    ds.to_netcdf(path)
    with pytest.raises(InputError, match=r"s\.nc: no variable 'sigma0' \(variables: image, label"):
        NetCDFImageDataset(path, var="sigma0")
    with pytest.raises(InputError, match="no label variable 'class'"):
        NetCDFImageDataset(path, label_var="class")
    with pytest.raises(InputError, match="dims"):
        NetCDFImageDataset(ds.assign(image=(("y", "x"), np.zeros((4, 4)))))
    with pytest.raises(InputError, match="negative"):
        NetCDFImageDataset(ds.assign(label=("s", [0, -1])))
    nan = ds.assign(image=(("s", "y", "x"), np.stack([np.zeros((4, 4)), np.full((4, 4), np.nan)])))
    with pytest.raises(InputError, match=r"image\[1\] has no finite pixel"):
        NetCDFImageDataset(nan)[1]  # when read: the stack's other images can still be classified
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not netcdf")
    with pytest.raises(InputError, match="junk.nc: cannot open as netCDF"):
        open_image_dataset(junk)
    with pytest.raises(InputError, match="no such file or folder"):
        open_image_dataset(tmp_path / "absent.nc")


def test_unlabelled_files(plankton, tmp_path):
    root, grey, _ = plankton
    files = list_images(root / "copepod")
    assert [p.name for p in files] == ["c1.png", "c2.png"]
    both = list_images([root / "copepod" / "c1.png", root / "diatom"])
    assert [p.name for p in both] == ["c1.png", "d1.png", "d2.jpg"]
    ds = ImageFilesDataset(root / "copepod", channels=1)
    s = ds[0]
    assert int(s["label"]) == -1 and s["path"].endswith("c1.png") and ds.classes == []
    np.testing.assert_allclose(s["image"][0].numpy(), grey / 255.0, atol=1e-6)
    with pytest.raises(InputError, match="no such file or folder"):
        list_images(tmp_path / "none")
    with pytest.raises(InputError, match="no image files found"):
        list_images((root / "empty_class").mkdir() or root / "empty_class")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="notes.txt: not an image file"):
        list_images(tmp_path / "notes.txt")


# ----------------------------------------------------------------------------------- transforms
def sample(x):
    return {"image": torch.as_tensor(x, dtype=torch.float32), "label": torch.tensor(3)}


def test_decibel_normalize_resize():
    s = sample([[[1.0, 10.0], [100.0, 0.0]]])
    db = T.ToDecibel()(s)["image"]
    assert db.flatten().tolist() == pytest.approx([0.0, 10.0, 20.0, -60.0])
    assert s["image"][0, 0, 1] == 10.0  # input dict untouched
    n = T.PerImageNormalize()(sample(torch.arange(8.0).reshape(2, 2, 2)))["image"]
    assert float(n.mean()) == pytest.approx(0, abs=1e-6) and float(n.std(unbiased=False)) == pytest.approx(1, abs=1e-5)
    assert T.Resize((4, 6))(sample(torch.ones(1, 8, 8)))["image"].shape == (1, 4, 6)
    out = T.Compose([T.ToDecibel(), T.Resize(1)])(sample(torch.full((1, 4, 4), 10.0)))
    assert out["image"].shape == (1, 1, 1) and float(out["image"]) == pytest.approx(10.0) and int(out["label"]) == 3


def test_random_transforms_seeded_and_shape_preserving():
    x = torch.rand(1, 16, 16)
    aug = T.Compose([
        T.RandomFlip(), T.RandomRot90(), T.RandomRotation(30), T.RandomAffine(10, (0.1, 0.1), (0.9, 1.1)),
        T.RandomResizedCrop(12), T.SpeckleNoise((1, 4)), T.GaussianNoise(0.01),
    ])
    torch.manual_seed(0)
    a = aug(sample(x))["image"]
    torch.manual_seed(0)
    b = aug(sample(x))["image"]
    c = aug(sample(x))["image"]
    assert a.shape == (1, 12, 12) and torch.equal(a, b) and not torch.equal(a, c)
    assert T.RandomCrop(5)(sample(x))["image"].shape == (1, 5, 5)
    with pytest.raises(InputError, match="smaller than the crop"):
        T.RandomCrop(20)(sample(x))
    # Rot90 and flips only permute pixels.
    torch.manual_seed(1)
    r = T.Compose([T.RandomFlip(), T.RandomRot90()])(sample(x))["image"]
    assert torch.equal(r.flatten().sort().values, x.flatten().sort().values)


def test_speckle_statistics():
    torch.manual_seed(0)
    ones = sample(torch.ones(1, 200, 200))
    g = T.SpeckleNoise(4)(ones)["image"]
    assert float(g.mean()) == pytest.approx(1.0, abs=0.01)
    assert float(g.var()) == pytest.approx(0.25, abs=0.01)  # Gamma(L, 1/L): variance 1/L
    assert float(g.min()) > 0
    shifted = T.RandomAffine(translate=(0.25, 0.0))
    img = torch.zeros(1, 8, 8)
    img[0, 4, 4] = 1.0
    shifts = set()
    for seed in range(20):
        torch.manual_seed(seed)
        moved = shifted(sample(img))["image"]
        # A pure integer shift along x by at most 0.25 * 8 = 2 pixels.
        match = [tx for tx in range(-2, 3) if torch.allclose(moved, torch.roll(img, tx, dims=-1), atol=1e-5)]
        assert len(match) == 1
        shifts.add(match[0])
    assert len(shifts) > 1


def test_fixed_class_list(plankton):
    root, _, _ = plankton
    with pytest.warns(UserWarning, match="no images for class.*radiolarian"):
        ds = ImageFolderDataset(root, classes=["diatom", "radiolarian", "copepod"], channels=1, size=8)
    assert ds.classes == ["diatom", "radiolarian", "copepod"]
    assert ds.targets.tolist() == [0, 0, 2, 2]
    assert [p.name for p in ds.files] == ["d1.png", "d2.jpg", "c1.png", "c2.png"]
    with pytest.raises(InputError, match="class folder.*diatom not among"):
        ImageFolderDataset(root, classes=["copepod"])


def test_preprocessing_converts_channels_as_the_readers_do(tmp_path):
    """A model trained from Python with preprocessing channels=1 on RGB files, then run by
    `oceandl classify` (which reads the files at the checkpoint's channels), saw other pixels: RGB
    to grey was the plain mean in preprocess_batch and the luminance in the readers. size=int
    failed as a bare TypeError."""
    from oceandl.preprocess import check_spec, preprocess_batch
    from oceandl.training import materialize

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    spec = {"size": 16, "channels": 1, "intensity": "db", "normalize": "per_image"}
    assert check_spec(spec)["size"] == [16, 16]
    trained = preprocess_batch(materialize(ImageFilesDataset([tmp_path / "a.png"]))[0], spec)
    read = materialize(ImageFilesDataset([tmp_path / "a.png"], size=16, channels=1))[0]
    assert torch.allclose(trained, preprocess_batch(read, spec), atol=1e-5)
    two = torch.rand(1, 2, 4, 4)
    assert torch.equal(preprocess_batch(two, {"channels": 1}), two[:, :1])  # band 1, as the GeoTIFF readers
    assert preprocess_batch(torch.rand(1, 4, 4, 4), {"channels": 3}).shape == (1, 3, 4, 4)
    with pytest.raises(InputError, match="size=0"):
        check_spec({"size": 0})


def test_rgb_to_grey_stays_on_the_images_device(monkeypatch):
    """classify() takes tensors as they are, a GPU's too: RGB to grey weighed them with a CPU tensor,
    which torch refuses next to CUDA images. No GPU here: the 'meta' device stands for one, and
    einsum is watched for an operand on another device than the images (meta lets a mix pass)."""
    from oceandl.preprocess import preprocess_batch

    devices = []
    einsum = torch.einsum

    def watched(eq, *ops):
        devices.append({o.device.type for o in ops})
        return einsum(eq, *ops)

    monkeypatch.setattr(torch, "einsum", watched)
    out = preprocess_batch(torch.empty(2, 3, 8, 8, device="meta"), {"channels": 1, "size": 4})
    assert out.device.type == "meta" and out.shape == (2, 1, 4, 4)
    assert devices == [{"meta"}]
    x = torch.rand(2, 3, 4, 4)  # the luminance itself, on the CPU
    expected = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert torch.allclose(preprocess_batch(x, {"channels": 1})[:, 0], expected, atol=1e-6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_displayed(tmp_path, orientation):
    """A camera image held upright is stored as the sensor's landscape grid plus an Orientation tag:
    it was read lying on its side (a 20x40 JPEG of a portrait 40x20 view), and the header size
    disagreed with the pixels. JPEG, PNG and TIFF are read as PIL's exif_transpose shows them."""
    from PIL import ImageOps

    rng = np.random.default_rng(orientation)
    stored = rng.integers(0, 256, (20, 40), dtype=np.uint8)
    stored[:4, :8] = 255  # a corner to tell the eight orientations apart
    root = tmp_path / "cam"
    for cls, ext in (("a", ".jpg"), ("b", ".png"), ("c", ".tif")):
        img = Image.fromarray(stored)
        exif = img.getexif()
        exif[0x0112] = orientation
        (root / cls).mkdir(parents=True)
        img.save(root / cls / f"x{ext}", exif=exif, **({"quality": 100} if ext == ".jpg" else {}))
    with Image.open(root / "b" / "x.png") as img:
        shown = np.asarray(ImageOps.exif_transpose(img)) / 255.0
    swapped = orientation >= 5
    assert shown.shape == ((40, 20) if swapped else (20, 40))
    np.testing.assert_allclose(read_image(root / "b" / "x.png")[0], shown, atol=1e-6)
    np.testing.assert_allclose(read_image(root / "c" / "x.tif")[0], shown, atol=1e-6)  # GDAL's grid, turned
    assert np.abs(read_image(root / "a" / "x.jpg")[0] - shown).mean() < 0.02  # JPEG: lossy, same place
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the headers give the displayed size: no "different sizes" resize
        ds = ImageFolderDataset(root)
    assert ds.size == shown.shape


@pytest.mark.parametrize("orientation", [1, 6])
def test_tiff_sample_reads_open_the_file_once(tmp_path, monkeypatch, orientation):
    """The Orientation tag of a TIFF (which GDAL does not report) is read by the header probe and
    kept: each sample read opened the file a second time with PIL to look it up again, 1.5-1.9x
    the time of reading a 128 x 128 float32 GeoTIFF. The pixels are the same."""
    import PIL.Image

    rng = np.random.default_rng(orientation)
    for cls in "ab":
        for i in range(2):
            img = Image.fromarray(rng.random((6, 10), dtype=np.float32))
            exif = img.getexif()
            exif[0x0112] = orientation
            (tmp_path / cls).mkdir(exist_ok=True)
            img.save(tmp_path / cls / f"{i}.tif", exif=exif)
    ds = ImageFolderDataset(tmp_path)
    assert ds.size == ((10, 6) if orientation == 6 else (6, 10))
    expected = [read_image(f) for f in ds.files]  # each file on its own: the tag looked up
    opened = []
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    for i in range(len(ds)):
        np.testing.assert_array_equal(ds[i]["image"].numpy(), expected[i])
    assert opened == []  # GDAL alone reads the samples


def test_palette_and_one_bit_tiffs_are_read_as_their_colours(tmp_path):
    """A palette TIFF holds colour-table indices: they were read as the pixels (a 64-colour image
    came out as one dark band in [0, 63/255], a 1-bit TIFF in [0, 1/255]). Now the colours, as PIL
    reads the same image as PNG; a table of greys (1-bit: black, white) is one band."""
    rng = np.random.default_rng(11)
    g = rng.integers(0, 256, (16, 24), dtype=np.uint8)
    rgb = np.dstack([g, 255 - g, np.full_like(g, 200)])
    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=64)
    pal.save(tmp_path / "pal.tif")
    pal.save(tmp_path / "pal.png")
    colours = np.moveaxis(np.asarray(pal.convert("RGB")), -1, 0) / 255.0
    np.testing.assert_allclose(read_image(tmp_path / "pal.tif"), colours, atol=1e-6)
    np.testing.assert_allclose(read_image(tmp_path / "pal.tif"), read_image(tmp_path / "pal.png"))
    bw = g > 128
    Image.fromarray(bw).save(tmp_path / "bw.tif")  # PIL writes 1-bit; GDAL sees a black/white table
    Image.fromarray(bw).save(tmp_path / "bw.png")
    np.testing.assert_array_equal(read_image(tmp_path / "bw.tif"), bw[None].astype(np.float32))
    np.testing.assert_array_equal(read_image(tmp_path / "bw.tif"), read_image(tmp_path / "bw.png"))
    for cls, name in (("a", "pal.tif"), ("b", "bw.tif")):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        (tmp_path / name).rename(tmp_path / "tree" / cls / name)
    with pytest.warns(UserWarning, match=r"1 of 1 band\(s\), 1 of 3 band\(s\)"):  # header bands = read bands
        ds = ImageFolderDataset(tmp_path / "tree")
    assert ds[0]["image"].shape == (3, 16, 24)
    # a palette GeoTIFF's nodata index is missing in every colour (filled like NaN)
    idx = np.array([[[0, 1], [2, 1]]], dtype=np.uint8)
    write_tiff(tmp_path / "nd.tif", idx, nodata=0)
    with rasterio.open(tmp_path / "nd.tif", "r+") as dst:
        dst.write_colormap(1, {0: (255, 255, 255, 255), 1: (255, 0, 0, 255), 2: (0, 0, 255, 255)})
    nd = read_image(tmp_path / "nd.tif")
    np.testing.assert_allclose(nd[:, 0, 0], [0.0, 0.0, 0.0])  # not white: the image's median (3 of 9 are 1)
    np.testing.assert_allclose(nd[:, 1, 0], [0.0, 0.0, 1.0])


def test_tiff_declared_bit_depth_sets_the_range(tmp_path):
    """12-bit camera data is stored in uint16 with NBITS=12: its white 4095 was read as 4095/65535 =
    0.0625, every image of such a collection in [0, 0.0625]. Now by the declared depth, to [0, 1]."""
    u12 = np.array([[[0, 4095], [2048, 1]]], dtype=np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp_path / "u12.tif", "w", driver="GTiff", count=1, dtype="uint16", height=2, width=2,
                           nbits=12) as dst:
            dst.write(u12)
    np.testing.assert_allclose(read_image(tmp_path / "u12.tif"), u12 / 4095.0, rtol=1e-6)
    write_tiff(tmp_path / "u16.tif", u12, georef=False)  # no NBITS: the 16-bit range, as before
    np.testing.assert_allclose(read_image(tmp_path / "u16.tif"), u12 / 65535.0, rtol=1e-6)


def test_min_is_white_tiff_is_read_as_displayed(tmp_path):
    """A MinIsWhite TIFF (scanners: 0 is white) was read as stored, i.e. as its negative: a ramp
    0..60 shown nearly white (PIL mean 0.88) read with mean 0.12. Now inverted, as PIL reads it."""
    ramp = np.tile(np.linspace(0, 60, 16).astype(np.uint8), (8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        for dtype in ("uint8", "uint16"):
            with rasterio.open(tmp_path / f"w_{dtype}.tif", "w", driver="GTiff", count=1, dtype=dtype, height=8,
                               width=16, photometric="MINISWHITE") as dst:
                dst.write(ramp[None].astype(dtype))
    with Image.open(tmp_path / "w_uint8.tif") as img:
        shown = np.asarray(img) / 255.0
    np.testing.assert_allclose(read_image(tmp_path / "w_uint8.tif")[0], shown, atol=1e-6)
    np.testing.assert_allclose(read_image(tmp_path / "w_uint16.tif")[0], 1 - ramp / 65535.0, atol=1e-6)


def test_images_over_the_decompression_bomb_limit_are_refused_by_name(tmp_path, monkeypatch):
    """Over PIL's MAX_IMAGE_PIXELS an image gave a DecompressionBombWarning naming no file, one per
    image and per read (the CLI printed each), and was decoded anyway; GDAL read TIFFs of any size.
    Now it is an unreadable file with the reason (skipped with the others, or the error), for every
    format; MAX_IMAGE_PIXELS = None lifts the limit. The limit is lowered so the files stay tiny."""
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)
    root = tmp_path / "big"
    write_png(root / "a" / "small.png", np.zeros((20, 20), np.uint8))
    write_png(root / "b" / "small.png", np.zeros((20, 20), np.uint8))
    write_png(root / "a" / "over.png", np.zeros((30, 40), np.uint8))  # 1200 px: PIL warns
    write_png(root / "a" / "far.jpg", np.zeros((50, 50), np.uint8))  # 2500 px: PIL raises
    write_tiff(root / "b" / "over.tif", np.zeros((1, 30, 40), np.uint8), georef=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        with pytest.warns(UserWarning, match="skipped 3 unreadable") as rec:
            ds = ImageFolderDataset(root)
        with pytest.raises(InputError, match=r"over\.png: cannot read image \(image too large \(1200 pixels, over "
                                             r"the decompression-bomb limit of 1000: raise PIL\.Image\.MAX_IMAGE_P"):
            read_image(root / "a" / "over.png")
        with pytest.raises(InputError, match=r"over\.tif: .*image too large \(1200 pixels"):
            read_image(root / "b" / "over.tif")
    assert sorted(p.name for p in ds.skipped) == ["far.jpg", "over.png", "over.tif"]
    assert ds.skip_reasons[str(root / "a" / "far.jpg")].startswith("image too large (2500 pixels")
    assert len(rec) == 1 and len(ds) == 2
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", None)
    assert read_image(root / "a" / "far.jpg").shape == (1, 50, 50)
    assert read_image(root / "b" / "over.tif").shape == (1, 30, 40)


def test_multi_frame_files_are_refused_not_cut_to_their_first_frame(tmp_path):
    """A multi-page TIFF or an animated GIF/PNG was read as its first frame without a word (a stack
    of 2 read as the first alone). It is now an unreadable file with the reason; a TIFF whose extra
    directories are overviews or a mask is one image."""
    from rasterio.enums import Resampling

    root = tmp_path / "stacks"
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 200, 90)]
    for cls, name in (("a", "s.tif"), ("a", "s.gif"), ("b", "s.png")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        frames[0].save(root / cls / name, save_all=True, append_images=frames[1:])
    write_png(root / "a" / "one.png", np.zeros((8, 8), np.uint8))
    write_png(root / "b" / "one.png", np.zeros((8, 8), np.uint8))
    with pytest.warns(UserWarning, match=r"skipped 3 unreadable.*s\.gif \(a GIF image of 3 frames: one image per "
                                         r"file is read \(save each frame as a file\)\), s\.tif \(a TIFF of 3 frames"):
        ds = ImageFolderDataset(root)
    assert len(ds) == 2
    for name in ("a/s.tif", "a/s.gif", "b/s.png"):
        with pytest.raises(InputError, match="of 3 frames"):
            read_image(root / name)
    ov = np.arange(64 * 64, dtype=np.float32).reshape(1, 64, 64)
    write_tiff(tmp_path / "ov.tif", ov)
    with rasterio.open(tmp_path / "ov.tif", "r+") as dst:
        dst.build_overviews([2, 4], Resampling.average)
        dst.write_mask(np.ones((64, 64), np.uint8) * 255)
    np.testing.assert_array_equal(read_image(tmp_path / "ov.tif"), ov)


def test_taxonomy_tree_merged_with_a_warning_or_read_by_leaf_folders(tmp_path):
    """A taxonomy tree (``Protista/Diatoms/Chaetoceros``) was read by its top folders: three taxa
    became one class 'Protista', without a word. The top-folder reading now warns (year shards,
    the same names under every class, do not), and class_folders='leaf' makes each folder of images
    a class named by its path."""
    rng = np.random.default_rng(3)
    root = tmp_path / "tree"
    counts = {"Protista/Diatoms/Chaetoceros": 3, "Protista/Diatoms/Thalassiosira": 2,
              "Protista/Dinoflagellates/Ceratium à cornes": 4, "Copepoda calanoida": 5}
    for cls, n in counts.items():
        for i in range(n):
            write_png(root / cls / f"{i}.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    with pytest.warns(UserWarning, match=r"1 class folder\(s\) \(Protista\) hold images in several sub-folders, "
                                         r"merged into one class each .*class_folders='leaf'"):
        top = ImageFolderDataset(root)
    assert top.classes == ["Copepoda calanoida", "Protista"]
    assert np.bincount(top.targets).tolist() == [5, 9]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        leaf = ImageFolderDataset(root, class_folders="leaf")
    assert leaf.classes == sorted(counts)
    assert np.bincount(leaf.targets).tolist() == [counts[c] for c in sorted(counts)]
    assert all(leaf.classes[t] == f.parent.relative_to(root).as_posix() for f, t in zip(leaf.files, leaf.targets))
    # a fixed class list (a trained model's) names the same paths; a leaf not in it is an error
    order = sorted(counts, reverse=True) + ["Other"]
    with pytest.warns(UserWarning, match="no images for class.*Other"):
        fixed = ImageFolderDataset(root, class_folders="leaf", classes=order)
    assert fixed.classes == order and np.bincount(fixed.targets).tolist() == [counts[c] for c in order[:4]]
    with pytest.raises(InputError, match="Protista/Diatoms/Thalassiosira not among the classes"):
        ImageFolderDataset(root, class_folders="leaf", classes=order[:1] + order[2:])
    with pytest.raises(InputError, match="class_folders='nested'"):
        ImageFolderDataset(root, class_folders="nested")
    # year shards under every class are one class's images, not taxa: no warning
    shards = tmp_path / "shards"
    for cls in ("Chaetoceros", "Ditylum"):
        for year in ("2013", "Spring_cruise"):
            write_png(shards / cls / year / "0.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ImageFolderDataset(shards).classes == ["Chaetoceros", "Ditylum"]


def test_year_folders_above_or_below_the_classes(tmp_path):
    """WHOI-Plankton's <year>/<class> of several years: read by top folders, the classes were the
    years (each of every taxon), without a word; by leaf folders, each taxon was split into one class
    per year ('2006/Chaetoceros', '2007/Chaetoceros'), as was <class>/<year> by leaf folders. The leaf
    reading now leaves year/date folders out of the class name (one class per taxon, whichever side
    the years are), and the top reading of year folders warns."""
    rng = np.random.default_rng(0)
    above, below = tmp_path / "above", tmp_path / "below"
    n = {("2006", "Chaetoceros"): 2, ("2007", "Chaetoceros"): 3, ("2006", "Ditylum"): 1, ("2014-05", "Ditylum"): 2}
    for (year, taxon), k in n.items():
        for i in range(k):
            write_png(above / year / taxon / f"{i}.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
            write_png(below / taxon / year / f"{i}.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for root in (above, below):
            leaf = ImageFolderDataset(root, class_folders="leaf")
            assert leaf.classes == ["Chaetoceros", "Ditylum"], root
            assert np.bincount(leaf.targets).tolist() == [5, 3]
        assert ImageFolderDataset(below).classes == ["Chaetoceros", "Ditylum"]  # top: years below merged
    with pytest.warns(UserWarning, match=r"class folders \(2006, 2007, 2014-05\) are years or dates.*"
                                         r"class_folders='leaf'"):
        assert ImageFolderDataset(above).classes == ["2006", "2007", "2014-05"]
    # a taxonomy path keeps its named folders; folders named by digits but not years are classes
    # (MNIST-like 0..9), with a warning when they lie below a named folder (batches of one class?)
    write_png(above / "2006" / "Protista" / "Diatoms" / "0.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    assert "Protista/Diatoms" in ImageFolderDataset(above, class_folders="leaf").classes
    digits = tmp_path / "digits"
    for d in ("0", "1"):
        write_png(digits / d / "0.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ImageFolderDataset(digits, class_folders="leaf").classes == ["0", "1"]
    for d in ("Chaetoceros/001", "Chaetoceros/002", "Ditylum/001"):
        write_png(tmp_path / "batches" / d / "0.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    with pytest.warns(UserWarning, match=r"3 class\(es\) named by a number below a folder \(Chaetoceros/001, "
                                         r".*class_folders='top'"):
        ImageFolderDataset(tmp_path / "batches", class_folders="leaf")


@pytest.mark.parametrize("size,words", [(100000, "at most 16384 pixels a side"), ((16, 16385), "at most 16384"),
                                        (0, "positive int"), ("x", "positive int"), (True, "positive int"),
                                        ((8, 8, 8), "positive int")])
def test_a_size_no_image_can_take_is_refused_before_any_file_is_read(tmp_path, size, words):
    """size=100000 asked for 37 GiB at the first batch (out of memory, exit 1); 0 or 'x' failed in the resize."""
    from oceandl.datasets.images import ImageFilesDataset, ImageFolderDataset
    from oceandl.errors import InputError

    missing = [tmp_path / "not-there.png"]  # never probed: the size is refused first
    with pytest.raises(InputError, match=words):
        ImageFilesDataset(missing, size=size)
    with pytest.raises(InputError, match=words):
        ImageFolderDataset(tmp_path, size=size)


def test_sizes_within_the_limit_are_taken_as_height_width(tmp_path):
    from PIL import Image

    from oceandl.datasets.images import ImageFilesDataset

    f = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(f)
    assert ImageFilesDataset([f], size=12).size == (12, 12)
    assert ImageFilesDataset([f], size=np.int64(6)).size == (6, 6)
    ds = ImageFilesDataset([f], size=[16384, 4])
    assert ds.size == (16384, 4)
