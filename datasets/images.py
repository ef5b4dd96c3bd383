"""Readers of labelled image collections as torch Datasets of ``{"image", "label", "index", "path"}``.

* :class:`TenGeoPDataset` — TenGeoP-SARwv (Wang et al. 2019, SEANOE doi:10.17882/56796): Sentinel-1
  wave-mode vignettes as GeoTIFFs in one folder per class letter ``F``..``O`` (the archive unpacks to
  ``GeoTIFF/<letter>/*.tiff``), with an optional per-image metadata table (filename, class,
  latitude, longitude, time).
* :class:`ImageFolderDataset` — one folder per class (PNG, JPEG, TIFF, grey or RGB, any size):
  WHOI-Plankton (``<year>/<class>/*.png``: pass a year folder, or the folder of years with
  ``class_folders="leaf"``, which merges each class across the years), ZooScanNet, Kaggle NDSB
  (``train/<class>/*.jpg``: the ``train`` level is found by itself).
* :class:`NetCDFImageDataset` — an xarray/netCDF stack ``image(sample, y, x)`` + ``label(sample)``.
* :class:`ImageFilesDataset` / :func:`list_images` — unlabelled images to classify (label -1).
* :func:`open_image_dataset` — picks one of the above from what a path is.

Common rules
------------
Pixels: unsigned-integer images are divided by their type's maximum (to [0, 1]); signed-integer and
float images (e.g. linear SAR intensities) are kept as stored; 16-bit images keep their 16 bits
(grey, RGB and RGBA, PNG or TIFF: a 16-bit colour PNG, which PIL reduces to 8 bits, is read by GDAL); non-finite pixels are replaced by the
image's finite median (an all-NaN image is an error), and so are the pixels equal to a TIFF's
declared nodata value or masked by its GDAL mask band. Complex images (SAR SLC) are read as the
intensity ``|z|^2``. Images come out as float32 ``(C, H, W)``, as displayed: an EXIF/TIFF Orientation
tag (a camera held upright or upside down) is applied, as PIL's ``ImageOps.exif_transpose`` does.
A palette TIFF is read as its colours (RGB; one band when every colour is grey, e.g. 1-bit); an
unsigned TIFF with a declared bit depth (GDAL's ``NBITS``, e.g. 12-bit data in uint16) is divided by
``2**NBITS - 1``; a MinIsWhite one (0 = white) is inverted, as PIL and viewers show it. An image of
more pixels than PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 million;
``None`` lifts it) is unreadable, whatever its format; so is a file of several frames (multi-page
TIFF, animated GIF or PNG), rather than read as its first frame without a word (a phone's MPO JPEG
is one picture).

Readability: every file's header is opened at construction (``verify="header"``: cheap, catches
non-image and corrupt-header files, for PNG bad chunk checksums and truncation, for TIFF truncation
by reading the last row); ``verify="full"`` decodes
every file at construction (catches truncated pixel data too, at the cost of reading everything).
Unreadable files are skipped with one warning listing them and recorded in ``dataset.skipped``
(``on_error="skip"``, the default) or raise :class:`InputError` naming the file
(``on_error="raise"``). A file that fails later, when a sample is read, always raises InputError
naming it; the training engine (:func:`oceandl.training.materialize`, ``fit``, ``train_classifier``)
then follows the dataset's ``on_error``: such a file is left out with one warning naming it
(``"skip"``) or stops the run (``"raise"``).

Classes: a class folder with no images is dropped with a warning (generic folders); TenGeoP always
keeps its ten classes so labels mean the same thing on every subset, and warns about absent ones.
"""
from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from oceandl.errors import InputError, warn
from oceandl.preprocess import check_spec, convert_channels, fit_size, pixels_to_float

__all__ = [
    "IMAGE_EXTENSIONS",
    "TENGEOP_CLASSES",
    "read_image",
    "list_images",
    "TenGeoPDataset",
    "ImageFolderDataset",
    "ImageFilesDataset",
    "NetCDFImageDataset",
    "open_image_dataset",
    "is_tengeop_root",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")
_TIFF = (".tif", ".tiff")

#: TenGeoP-SARwv class letters and names (label = position in this order).
TENGEOP_CLASSES = {
    "F": "Pure Ocean Waves",
    "G": "Wind Streaks",
    "H": "Micro Convective Cells",
    "I": "Rain Cells",
    "J": "Biological Slicks",
    "K": "Sea Ice",
    "L": "Iceberg",
    "M": "Low Wind Area",
    "N": "Atmospheric Front",
    "O": "Oceanic Front",
}

# PIL modes read as one band; every other mode is converted to RGB (alpha dropped).
_PIL_GREY = ("1", "L", "LA", "F")

class _Unreadable(Exception):
    """Internal: a file that cannot be read; str() is the reason."""


# --------------------------------------------------------------------------------------------
# Reading single files
# --------------------------------------------------------------------------------------------
def _pil_bands(mode: str) -> int:
    return 1 if mode in _PIL_GREY or mode.startswith("I") else 3


def _probe(path: Path, full: bool) -> tuple[int, int, int, int | None]:
    """``(bands, height, width, orientation)`` from the header (``full``: decode the pixels as well).

    ``orientation`` is the Orientation tag of a TIFF that GDAL reads (see :func:`_tiff_orientation`),
    kept by the datasets for their reads of the file; ``None`` for the files PIL reads (it applies
    the tag itself).
    """
    try:
        if path.stat().st_size == 0:
            # an interrupted copy or download; PIL said "cannot identify image file", GDAL worse
            raise _Unreadable("empty file (0 bytes)")
    except OSError as exc:
        raise _Unreadable(_short(exc)) from None
    if path.suffix.lower() in _TIFF:
        import rasterio
        from rasterio.windows import Window

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GDAL chatter; failures are reported by name
            try:
                src = rasterio.open(path)
            except Exception as exc:  # not a TIFF GDAL can open: PIL may still read it
                try:
                    return (*_probe_pil(path, full), None)
                except _Unreadable:
                    raise _Unreadable(_short(exc)) from None
            try:
                with src:
                    _check_pixels(src.width, src.height)
                    _check_frames(_gdal_pages(src), "a TIFF")
                    if full:
                        src.read()
                    else:
                        # The last row lives at the end of a striped file: reading it catches
                        # truncation for the price of one strip.
                        src.read(1, window=Window(0, src.height - 1, src.width, 1))
                    h, w = src.height, src.width
                    cmap = _palette(src)
                    bands = len(_colour_bands(src)) if cmap is None else _palette_colours(cmap).shape[1]
            except Exception as exc:  # GDAL read errors come in several types
                raise _Unreadable(_short(exc)) from None
        orientation = _tiff_orientation(path)
        if full:
            # decoded by the reader itself: GDAL reports some errors at the first call that asks,
            # so the probe's calls in its own order passed a file whose read then failed (a
            # StripOffsets tag of the wrong type, found by tests/test_fuzz.py)
            _read_raster(path, orientation)
        return (bands, w, h, orientation) if orientation in _SWAPS_AXES else (bands, h, w, orientation)
    return (*_probe_pil(path, full), None)


# EXIF/TIFF Orientation (tag 274) values that swap height and width (a camera held upright).
_ORIENT_TAG = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)


def _tiff_orientation(path: Path) -> int:
    """The Orientation tag of a TIFF (1 when absent or unreadable): GDAL reads the stored grid and
    ignores it, so the readers apply it themselves (PIL's header parse, no pixels decoded)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a huge TIFF's bomb warning is for the pixel read to report
            with Image.open(path) as img:
                return _header_orientation(img)
    except Exception:  # not a TIFF PIL parses (e.g. BigTIFF, complex): GDAL's grid as stored
        return 1


def _header_orientation(img) -> int:
    """The Orientation tag of an opened PIL image, from its header only (``getexif`` decodes a PNG
    whose header has no eXIf chunk, looking for one after the pixels: not for a header probe)."""
    from PIL import Image

    if img.format == "TIFF":
        return int(img.getexif().get(_ORIENT_TAG, 1))
    raw = img.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    exif.load(raw)
    return int(exif.get(_ORIENT_TAG, 1))


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """``(C, H, W)`` pixels as displayed for an Orientation tag, as PIL's ``ImageOps.exif_transpose``."""
    flips = {
        2: lambda a: a[..., ::-1],
        3: lambda a: a[..., ::-1, ::-1],
        4: lambda a: a[..., ::-1, :],
        5: lambda a: a.swapaxes(-1, -2),  # PIL's TRANSPOSE
        6: lambda a: np.rot90(a, -1, axes=(-2, -1)),  # ROTATE_270: a quarter turn clockwise
        7: lambda a: a.swapaxes(-1, -2)[..., ::-1, ::-1],  # TRANSVERSE
        8: lambda a: np.rot90(a, 1, axes=(-2, -1)),  # ROTATE_90: a quarter turn anticlockwise
    }
    return np.ascontiguousarray(flips[orientation](arr)) if orientation in flips else arr


def _short(exc: BaseException) -> str:
    """First line of an exception message; for rasterio's "See previous exception", its cause's."""
    while "previous exception" in str(exc) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _bomb_reason(pixels: int) -> str:
    from PIL import Image

    return (f"image too large ({pixels} pixels, over the decompression-bomb limit of {Image.MAX_IMAGE_PIXELS}: "
            "raise PIL.Image.MAX_IMAGE_PIXELS to read it)")


def _check_pixels(width: int, height: int) -> None:
    """PIL's decompression-bomb limit, for the TIFFs GDAL reads too (a 600 kB deflated 20000 x 20000
    TIFF was decoded to 1.6 GB of float32, for an image resized to the model's 128 x 128 anyway)."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        raise _Unreadable(_bomb_reason(width * height))


def _check_frames(frames: int, what: str) -> None:
    """One image per file: a stack (multi-page TIFF, animated GIF/PNG) is refused, not cut to its first
    frame without a word (which frame is "the" image, and are the others samples, is the user's call)."""
    if frames > 1:
        raise _Unreadable(f"{what} of {frames} frames: one image per file is read (save each frame as a file)")


def _gdal_pages(src) -> int:
    """Pages of a multi-page TIFF as GDAL lists them (reduced-resolution overviews and masks are not pages)."""
    names = src.tags(ns="SUBDATASETS")
    return sum(1 for k, v in names.items() if k.endswith("_NAME") and v.startswith("GTIFF_DIR:")) or 1


def _pil_frames(img) -> int:
    # An MPO (a phone's JPEG with a depth map or preview after it) is one picture: its first frame.
    return 1 if img.format == "MPO" else int(getattr(img, "n_frames", 1))


@contextmanager
def _open_pil(path: Path):
    """``PIL.Image.open`` whose decompression-bomb guard is an _Unreadable naming the size.

    Over ``MAX_IMAGE_PIXELS`` PIL only warns (an error past twice that): a warning that names no
    file, one per image (a folder of large scans flooded the terminal) and on every read, after
    which the image was decoded all the same.
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                yield img
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            n = re.search(r"\((\d+) pixels\)", str(exc))
            raise _Unreadable(_bomb_reason(int(n.group(1))) if n else _short(exc)) from None


def _png16_colour(path: Path) -> int | None:
    """The PNG colour type (2 RGB, 4 grey + alpha, 6 RGBA) of a 16-bit colour or grey-alpha PNG, else None.

    PIL opens these as 8-bit RGB/RGBA (it keeps 16 bits for plain grey only): 16-bit RGB pixels
    came out quantised to 1/255 (an error up to 0.0036 of the range), and a 16-bit grey + alpha
    one as 3 bands of 8 bits. GDAL reads them at full depth; the readers use it for them.
    """
    if path.suffix.lower() != ".png":
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)  # signature, IHDR length and type, width, height, bit depth, colour type
    except OSError:
        return None
    if len(head) < 26 or head[12:16] != b"IHDR" or head[24] != 16 or head[25] not in (2, 4, 6):
        return None
    return head[25]


def _probe_pil(path: Path, full: bool) -> tuple[int, int, int]:
    try:
        with _open_pil(path) as img:
            _check_frames(_pil_frames(img), f"a {img.format} image")
            w, h = img.size
            if _header_orientation(img) in _SWAPS_AXES:
                w, h = h, w  # read as displayed (see _read_pil)
            bands = 1 if _png16_colour(path) == 4 else _pil_bands(img.mode)  # PIL: RGBA
            if full:
                img.load()
            elif img.format == "PNG":
                img.verify()  # chunk CRCs, without decompressing
    except _Unreadable:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, struct.error, ...
        raise _Unreadable(_short(exc)) from None
    return bands, h, w


def _scale_and_fill(arr: np.ndarray, path: str) -> np.ndarray:
    """Unsigned ints to [0, 1]; non-finite pixels to the finite median; float32 out."""
    out = pixels_to_float(arr)
    if np.issubdtype(out.dtype, np.floating):
        bad = ~np.isfinite(out)
        if bad.any():
            if bad.all():
                raise InputError(f"{path}: image has no finite pixel (all NaN/inf or the file's nodata value)")
            out = np.where(bad, np.median(out[~bad]), out).astype(np.float32)
    return out


def _read_pil(path: Path) -> np.ndarray:
    from PIL import ImageOps

    with _open_pil(path) as img:
        _check_frames(_pil_frames(img), f"a {img.format} image")
        # As displayed: a camera JPEG held upright stores the sensor's landscape grid plus an
        # Orientation tag, and was read lying on its side (and, not square, at another size).
        ImageOps.exif_transpose(img, in_place=True)
        mode = img.mode
        if mode == "LA":
            img = img.convert("L")
        elif _pil_bands(mode) == 3 and mode != "RGB":
            img = img.convert("RGB")  # palette, RGBA, CMYK, YCbCr, ...
        arr = np.asarray(img)
    if mode == "I" or (mode.startswith("I;16")):
        # 16-bit grey PNG/TIFF: PIL may hand it out as int32 'I'; scale by the 16-bit range.
        arr = arr.astype(np.uint16) if arr.min() >= 0 and arr.max() <= 65535 else arr
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = np.moveaxis(arr, -1, 0)
    return arr


def _colour_bands(src) -> list[int]:
    """The 1-based bands of an open raster, less alpha (an RGBA TIFF is 3 bands, as an RGBA PNG is)."""
    from rasterio.enums import ColorInterp

    bands = [i + 1 for i, ci in enumerate(src.colorinterp) if ci != ColorInterp.alpha]
    return bands or list(range(1, src.count + 1))


def _palette(src) -> dict | None:
    """The colour table (index -> RGBA) of a one-band palette raster, else None."""
    from rasterio.enums import ColorInterp

    if src.count != 1 or src.colorinterp[0] != ColorInterp.palette:
        return None
    try:
        return src.colormap(1)
    except ValueError:  # declared palette without a table: the indices are all there is
        return None


def _palette_colours(cmap: dict) -> np.ndarray:
    """``(K, C)`` uint8 colours of a colour table; C = 1 when every colour is grey (a 1-bit TIFF has
    the table black, white), as PIL reads a 1-bit image as one band, else RGB (alpha dropped)."""
    lut = np.zeros((max(cmap) + 1, 3), np.uint8)
    for k, rgba in cmap.items():
        lut[k] = rgba[:3]
    return lut[:, :1] if (lut == lut[:, :1]).all() else lut


def _read_raster(path: Path, orientation: int | None = None) -> np.ndarray | None:
    """All bands but alpha ``(C, H, W)``; None when GDAL cannot open the file (PIL may).

    ``orientation``: the file's Orientation tag when known (a dataset's header probe read it);
    ``None`` reads it from the file.
    """
    import rasterio
    from rasterio.enums import MaskFlags

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GDAL chatter; failures are reported by name
        try:
            src = rasterio.open(path)
        except Exception:
            return None
        try:
            with src:
                _check_pixels(src.width, src.height)
                _check_frames(_gdal_pages(src), "a TIFF")
                bands = _colour_bands(src)
                arr = src.read(bands)
                nodata = [src.nodatavals[b - 1] for b in bands]
                # A GDAL mask band (internal .msk / GDAL_TIFF_INTERNAL_MASK, e.g. off-swath or land) is
                # the other way a GeoTIFF declares missing pixels: they were read as data (0 -> the
                # -60 dB floor), as the nodata value was. Alpha stays dropped, as PIL does for a PNG.
                masked = [MaskFlags.per_dataset in src.mask_flag_enums[b - 1]
                          and MaskFlags.alpha not in src.mask_flag_enums[b - 1] for b in bands]
                masks = src.read_masks(bands) if any(masked) else None
                cmap = _palette(src)
                # 12-bit camera data (NBITS=12) is stored in uint16: 4095 is white, not 4095/65535
                nbits = [src.tags(b, ns="IMAGE_STRUCTURE").get("NBITS") for b in bands]
                # PhotometricInterpretation=MinIsWhite (scanners, bilevel/fax TIFFs): 0 is white.
                # GDAL hands out the stored values; PIL and viewers invert them.
                white0 = src.tags(ns="IMAGE_STRUCTURE").get("MINISWHITE") == "YES"
        except Exception as exc:
            raise _Unreadable(_short(exc)) from None
    if cmap is not None:
        # A palette TIFF stores colour-table indices, which were read as the pixels (/255: a 64-colour
        # image came out as a dark grey ramp in [0, 0.25], a 1-bit one in [0, 1/255]). Its colours
        # are the image, as PIL reads a palette PNG; missing indices (nodata, mask) in every colour.
        idx = arr[0]
        lut = _palette_colours(cmap)
        if idx.size and idx.max() >= len(lut):  # indices past the table: black, as GDAL expands them
            lut = np.concatenate([lut, np.zeros((int(idx.max()) + 1 - len(lut), lut.shape[1]), np.uint8)])
        missing = np.zeros(idx.shape, bool) if nodata[0] is None else idx == nodata[0]
        if masks is not None and masked[0]:
            missing |= masks[0] == 0
        arr = np.moveaxis(lut[idx], -1, 0)
        nodata, masked = [None] * len(arr), [True] * len(arr)
        masks = np.broadcast_to(np.where(missing, 0, 255).astype(np.uint8), arr.shape) if missing.any() else None
    if orientation is None:
        orientation = _tiff_orientation(path)
    arr = _orient(arr, orientation)
    masks = None if masks is None else _orient(masks, orientation)
    out = pixels_to_float(arr)
    if cmap is None and arr.dtype.kind == "u":
        # unsigned ints to [0, 1] by the file's declared bit depth, not its storage type's
        full = np.iinfo(arr.dtype).max
        top = np.array([2.0 ** int(n) - 1 if n and n.isdigit() and 0 < int(n) < 8 * arr.itemsize else full
                        for n in nbits], np.float32)
        if (top != full).any():
            out = arr.astype(np.float32) / top[:, None, None]
        if white0:
            out = 1 - out
    if masks is not None or any(v is not None for v in nodata):
        # The GeoTIFF's declared fill value (e.g. -9999 or 0 off the swath) is no pixel: it was kept
        # as data, a -60 dB floor after --intensity db that skewed the per-image normalisation.
        # As NaN, it gets the median fill of every missing pixel.
        out = out.copy()
        for i, v in enumerate(nodata):
            if v is not None:
                out[i][np.isnan(arr[i]) if np.isnan(v) else arr[i] == v] = np.nan
            if masks is not None and masked[i]:
                out[i][masks[i] == 0] = np.nan
    return out


def read_image(path: str | os.PathLike, channels: int | None = None) -> np.ndarray:
    """Read one image file as float32 ``(C, H, W)``.

    TIFFs are read with rasterio (all bands, any dtype, GeoTIFF or plain), falling back to PIL;
    other formats with PIL, but for 16-bit colour (RGB, RGBA, grey + alpha) PNGs, which PIL reduces
    to 8 bits: rasterio reads them at full depth. Pixel scaling follows the module rules (unsigned ints to [0, 1]). A
    band the file declares alpha is left out, as PIL does for an RGBA PNG (GDAL declares the 4th
    band of a 4-band byte TIFF alpha unless it is written with ``photometric="MINISBLACK"``).

    Parameters
    ----------
    path
        Image file (.png, .jpg, .jpeg, .tif, .tiff, .bmp, .gif).
    channels
        Convert to 1 (grey: ITU-R 601 luma of RGB) or 3 (grey repeated) bands; ``None`` keeps them.

    Raises
    ------
    InputError
        The file cannot be read or decoded (message names it).
    """
    return _read_image(Path(path), channels)


def _read_image(path: Path, channels: int | None = None, orientation: int | None = None) -> np.ndarray:
    """:func:`read_image`, with a TIFF's Orientation tag when known (see :func:`_read_raster`)."""
    try:
        # a 16-bit colour PNG by GDAL too: PIL reduces it to 8 bits
        arr = _read_raster(path, orientation) if path.suffix.lower() in _TIFF or _png16_colour(path) else None
        if arr is None:
            try:
                arr = _read_pil(path)
            except Exception as exc:  # PIL raises OSError, SyntaxError, struct.error, ...
                raise _Unreadable(_short(exc)) from None
    except _Unreadable as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from None
    arr = _scale_and_fill(arr, str(path))
    return _convert_channels(arr, channels, str(path)) if channels else arr


def _convert_channels(arr: np.ndarray, channels: int, path: str) -> np.ndarray:
    """(C, H, W) pixels with ``channels`` bands, by :func:`oceandl.preprocess.convert_channels`."""
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None]
    return convert_channels(x, channels, path)[0].contiguous().numpy()


# --------------------------------------------------------------------------------------------
# Base dataset over files
# --------------------------------------------------------------------------------------------
@contextmanager
def _noting(notes: dict[tuple[type, str], list[Path]], path: Path):
    """Collect the warnings the image libraries give about ``path`` into ``notes`` (by category and
    text), to be said once for all the files: PIL's "Tag data larger than file" came once per
    file and again at every read (a ``catch_warnings`` per read resets Python's once-per-line
    memory), 60 lines for 30 JPEGs of a camera with a broken EXIF block."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                text = str(w.message).strip().splitlines()
                paths = notes.setdefault((w.category, text[0] if text else w.category.__name__), [])
                if path not in paths[-1:]:  # a file counted once, however many times it gave the warning
                    paths.append(path)


def _checked_size(size) -> tuple[int, int] | None:
    """``size`` (an int or (height, width), each 1 to :data:`~oceandl.preprocess.MAX_SIZE`) as a
    tuple, or None; an :class:`InputError` otherwise. Asked before any file is read: size=100000
    asked for 37 GiB at the first batch (an out-of-memory exit 1), 0 or a string failed in the
    resize as a bare error."""
    return None if size is None else tuple(check_spec({"size": size})["size"])


class _FileImageDataset(Dataset):
    """Files + labels -> samples; header check, channel/size harmonisation (see module docstring).

    The image libraries' own warnings about the files (PIL's "Possibly corrupt EXIF data", ...)
    are said once per text for all the files that gave it, with their count and the first names
    (the header check's), and a text first seen when a sample is read once, naming its file.
    """

    def __init__(
        self,
        files: Sequence[Path],
        labels: Sequence[int],
        classes: list[str],
        *,
        channels: int | None = None,
        size: int | tuple[int, int] | None = None,
        fit: str = "stretch",
        transform: Callable[[dict], dict] | None = None,
        on_error: str = "skip",
        verify: str = "header",
        where: str = "",
    ) -> None:
        size = _checked_size(size)  # before any file is listed or probed
        if on_error not in ("skip", "raise"):
            raise InputError(f"on_error={on_error!r}: use 'skip' or 'raise'")
        if verify not in ("header", "full"):
            raise InputError(f"verify={verify!r}: use 'header' or 'full'")
        if fit not in ("stretch", "crop", "pad"):
            raise InputError(f"fit={fit!r}: use 'stretch', 'crop' or 'pad'")
        if channels not in (None, 1, 3):
            raise InputError(f"channels={channels!r}: use 1, 3 or None (keep)")
        self.classes = list(classes)
        self.transform = transform
        self.fit = fit
        # also for the files that fail later, when read: the training engine leaves them out or raises
        self.on_error = on_error
        self.skipped: list[Path] = []
        self.skip_reasons: dict[str, str] = {}
        # and their labels: a class whose files are all unreadable is named as left out, not absent
        self.skip_labels: dict[str, int] = {}
        # every file given, readable or not: classify gives the skipped ones their rows
        self.inputs: list[Path] = [Path(f) for f in files]

        keep_files, keep_labels, shapes, orientations = [], [], [], []
        notes: dict[tuple[type, str], list[Path]] = {}
        for f, lab in zip(files, labels):
            try:
                with _noting(notes, Path(f)):
                    shape = _probe(Path(f), full=verify == "full")
            except _Unreadable as exc:
                if on_error == "raise":
                    raise InputError(f"{f}: unreadable image ({exc})") from None
                self.skipped.append(Path(f))
                self.skip_reasons[str(f)] = str(exc)
                self.skip_labels[str(f)] = int(lab)
                continue
            keep_files.append(Path(f))
            keep_labels.append(int(lab))
            shapes.append(shape[:3])
            orientations.append(shape[3])
        if not keep_files:
            if self.skipped:  # say which files and why: "no readable images" alone leaves the user guessing
                named = "; ".join(f"{p} ({self.skip_reasons[str(p)]})" for p in self.skipped[:3])
                more = f"; and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
                raise InputError(f"{where}: no readable images: {len(self.skipped)} unreadable: {named}{more}")
            raise InputError(f"{where}: no readable images")
        if self.skipped:
            named = _display_names(self.skipped)
            shown = ", ".join(f"{named[p]} ({self.skip_reasons[str(p)]})" for p in self.skipped[:10])
            more = f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            warn(f"{where}: skipped {len(self.skipped)} unreadable image(s): {shown}{more}")
        skipped = set(self.skipped)
        for (category, text), paths in notes.items():
            paths = [p for p in paths if p not in skipped]  # a skipped file's reason is said above
            if not paths:
                continue
            names = ", ".join(p.name for p in paths[:3]) + (", ..." if len(paths) > 3 else "")
            warn(f"{where}: {len(paths)} image(s) ({names}): {text}", category)
        # said once: a read of the same files (every epoch when streamed) says only what is new
        self._said: set[tuple[type, str]] = set(notes)
        self.files: list[Path] = keep_files
        self.targets = np.asarray(keep_labels, dtype=np.int64)
        # each TIFF's Orientation tag, read by the header probe: a read looked it up again with a
        # second open of the file by PIL (GDAL does not report it), 1.3-1.8x the time of reading
        # a 128 x 128 float32 GeoTIFF
        self._orientations: list[int | None] = orientations

        # One channel count and one size, so that the default collate can stack samples.
        bands = Counter(s[0] for s in shapes)
        if channels is None:
            channels = next(iter(bands)) if len(bands) == 1 else (3 if max(bands) >= 3 else 1)
            if len(bands) > 1:
                # as for sizes: one stray RGB file among grey plankton images made every image (and
                # the model trained on them) 3-channel, without a word
                counts = ", ".join(f"{n} of {b} band(s)" for b, n in sorted(bands.items()))
                warn(f"{where}: images of different band counts ({counts}); converting all to "
                     f"{channels} (pass channels= / --channels to choose)")
        self.channels = int(channels)
        if size is None:
            sizes = Counter((s[1], s[2]) for s in shapes)
            size = sizes.most_common(1)[0][0]
            if len(sizes) > 1:
                warn(
                    f"{where}: images of {len(sizes)} different sizes; resizing all to {size[0]}x{size[1]} "
                    f"(the most common; pass size= / --size to choose)",
                )
        elif isinstance(size, int):
            size = (size, size)
        self.size: tuple[int, int] = (int(size[0]), int(size[1]))

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, index: int, channels: int | None) -> np.ndarray:
        """:func:`_read_image` of sample ``index``; a library warning not said before is said once,
        naming the file (see the class docstring)."""
        notes: dict[tuple[type, str], list[Path]] = {}
        with _noting(notes, self.files[index]):
            arr = _read_image(self.files[index], channels, self._orientations[index])
        for key in notes.keys() - self._said:
            self._said.add(key)
            warn(f"{self.files[index]}: {key[1]}", key[0])
        return arr

    @property
    def keys(self) -> list[str]:
        """Each readable file's path below the data folder (``root``; POSIX, e.g. ``b/07.png``), the
        name the training split is keyed on: the same file is in the same part of every version of
        the folder, whatever files are added, removed or unreadable (see ``split_indices``)."""
        root = getattr(self, "root", None)
        out = []
        for f in self.files:
            try:
                out.append(f.relative_to(root).as_posix() if root is not None else f.name)
            except ValueError:  # a file given from outside the root: its own path
                out.append(f.as_posix())
        return out

    def load(self, index: int) -> torch.Tensor:
        """The image of sample ``index`` as float32 ``(C, H, W)`` (channels and size harmonised)."""
        arr = self._read(index, self.channels)
        return fit_size(torch.from_numpy(np.ascontiguousarray(arr)), self.size, self.fit)

    def metadata(self, index: int) -> dict:
        """Per-sample metadata (empty for plain image folders)."""
        return {}

    def __getitem__(self, index: int) -> dict:
        sample = {
            "image": self.load(index),
            "label": torch.tensor(self.targets[index], dtype=torch.int64),
            "index": int(index),
            "path": str(self.files[index]),
        }
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} images, {len(self.classes)} classes, "
            f"{self.channels}x{self.size[0]}x{self.size[1]})"
        )


def _display_names(paths: Iterable[str | os.PathLike]) -> dict[Path, str]:
    """How a warning names each of ``paths``: its file name, or, where several share it (``bad.png``
    in two class folders, WHOI's ``2006/Chaetoceros`` and ``2007/Chaetoceros``), its path below the
    folder they have in common: 'skipped 2 unreadable image(s): bad.png (...), bad.png (...)' did
    not say which."""
    paths = [Path(p) for p in paths]
    counts = Counter(p.name for p in paths)
    try:
        base = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else None
    except ValueError:  # relative and absolute paths together: no common folder
        base = None
    out = {}
    for p in paths:
        out[p] = p.name
        if counts[p.name] > 1:
            try:
                out[p] = p.relative_to(base).as_posix() if base is not None else str(p)
            except ValueError:
                out[p] = str(p)
    return out


def _is_image(p: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> bool:
    return p.is_file() and p.suffix.lower() in extensions and not p.name.startswith(".")


def _mnist_split(folder: Path) -> str | None:
    """``"test"`` or ``"train"``: the MNIST split whose IDX files ``folder`` holds (the test one first), or None."""
    from .mnist import find_mnist_files

    for split in ("test", "train"):
        try:
            find_mnist_files(folder, split)
            return split
        except InputError:
            pass
    return None


def _images_in(folder: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[Path]:
    # Recursive and sorted, so the order (and hence seeded splits) is the same on every machine;
    # hidden folders (.thumbs, .ipynb_checkpoints, .Trash) hold copies or caches, not samples.
    return sorted(_walk_images(folder, extensions))


def _walk_images(folder: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS, _seen: frozenset = frozenset()):
    """The image files under ``folder``, following symlinked sub-folders (not into a loop).

    Path.rglob does not follow them before Python 3.13: a class folder made of links to year
    folders (``Chaetoceros/2014 -> /data/whoi/2014/Chaetoceros``) was "empty" and dropped, and
    ``classify`` missed the images behind such a link, with no word.
    """
    try:
        st = folder.stat()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:  # an unreadable or vanished sub-folder holds no samples we can read
        return
    seen = _seen | {(st.st_dev, st.st_ino)}
    for e in entries:
        p = Path(e.path)
        if e.name.startswith("."):
            continue
        try:
            is_dir = e.is_dir()  # follows links
        except OSError:
            continue
        if is_dir:
            try:
                sub = p.stat()
            except OSError:
                continue
            if (sub.st_dev, sub.st_ino) not in seen:  # a link to a folder above: a loop
                yield from _walk_images(p, extensions, seen)
        elif _is_image(p, extensions):
            yield p


def _check_dir(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    return root


# --------------------------------------------------------------------------------------------
# TenGeoP-SARwv
# --------------------------------------------------------------------------------------------
def _norm(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def tengeop_letter(name: str) -> str | None:
    """The TenGeoP-SARwv class letter a folder ``name`` stands for (its letter ``F``, its full name
    ``Pure Ocean Waves`` in any case and spacing, or ``F_Pure_Ocean_Waves``), else None."""
    n = _norm(name)
    if name.upper() in TENGEOP_CLASSES:
        return name.upper()
    for k, v in TENGEOP_CLASSES.items():
        if n == _norm(v) or (len(n) > 1 and n[0].upper() == k and n[1:] == _norm(v)):
            return k
    return None


def _tengeop_folders(root: Path) -> dict[str, Path]:
    """Class letter -> folder, for folders named by letter, full name, or ``F_Pure_Ocean_Waves``."""
    found: dict[str, Path] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        letter = tengeop_letter(d.name)
        if letter is not None and letter not in found:
            found[letter] = d
    return found


def _tengeop_root(root: Path) -> Path | None:
    # The SEANOE archive unpacks to GeoTIFF/<letter>/; accept its parent too.
    for cand in (root, root / "GeoTIFF", root / "geotiff"):
        if cand.is_dir() and len(_tengeop_folders(cand)) >= 2:
            return cand
    return None


def _other_image_folders(class_root: Path) -> list[str]:
    """Sub-folders of a TenGeoP class root that hold images but are no (first) TenGeoP class folder."""
    classes = set(_tengeop_folders(class_root).values())
    return [d.name for d in sorted(class_root.iterdir())
            if d.is_dir() and not d.name.startswith(".") and d not in classes and _has_images(d)]


def is_tengeop_root(path: str | os.PathLike) -> bool:
    """Whether ``path`` (or its ``GeoTIFF`` sub-folder) holds at least two TenGeoP class folders."""
    path = Path(path)
    return path.is_dir() and _tengeop_root(path) is not None


_META_COLUMNS = {
    "filename": ("filename", "file", "file_name", "fn", "name", "image", "vignette", "path"),
    "class": ("class", "label", "class_name", "category"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "long"),
    "time": ("time", "date", "datetime", "acquisition_time", "timestamp"),
}


def _read_metadata_table(path: Path) -> dict[str, dict] | None:
    """Parse a CSV/TSV/whitespace table with a filename column: ``{file stem: row}`` or None."""
    try:
        # utf-8-sig: a table saved by Excel starts with a byte-order mark, which made the first
        # header "\ufefffilename": no filename column, so the metadata was silently not read
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError:
        return None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) < 2:
        return None
    first = lines[0]
    if "," in first or "\t" in first or ";" in first:
        delim = "," if "," in first else ("\t" if "\t" in first else ";")
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
    else:
        rows = [ln.split() for ln in lines]
    header = [h.strip().lower() for h in rows[0]]
    cols = {}
    for key, aliases in _META_COLUMNS.items():
        for a in aliases:
            if a in header:
                cols[key] = header.index(a)
                break
    if "filename" not in cols:
        return None
    table = {}
    for row in rows[1:]:
        if len(row) <= cols["filename"]:
            continue
        rec = {}
        for key in ("latitude", "longitude"):
            try:
                rec[key] = float(row[cols[key]]) if key in cols else None
            except (ValueError, IndexError):
                rec[key] = None
        rec["time"] = row[cols["time"]].strip() if "time" in cols and cols["time"] < len(row) else None
        name = Path(row[cols["filename"]].strip()).name
        table[Path(name).stem] = rec
    return table


class TenGeoPDataset(_FileImageDataset):
    """TenGeoP-SARwv vignettes: ``{"image": float32 (C, H, W), "label", "index", "path"}``.

    Parameters
    ----------
    root
        Folder holding the class folders (``F``..``O``, or the full class names, or
        ``F_Pure_Ocean_Waves``), or its parent with a ``GeoTIFF`` sub-folder (the archive layout).
        Vignettes are found recursively in each class folder (``.tiff``/``.tif``; PNG/JPEG accepted).
    metadata
        ``True``: look for a metadata table (``*.csv``/``*.txt`` with a filename column, and
        latitude/longitude/time columns) in the class root and its parent; a path: that table;
        ``False``: none.
    channels, size, fit, transform, on_error, verify
        See :class:`ImageFolderDataset`. ``channels`` defaults to 1 (band 1 of the GeoTIFF).

    Attributes
    ----------
    classes : list[str]
        The ten class names in F..O order (label = index), always all ten.
    codes : list[str]
        The class letters ``["F", ..., "O"]``.
    targets : numpy.ndarray
        ``int64 (N,)``.
    metadata_file : Path or None
        The table read, if any.

    Notes
    -----
    Samples hold tensors and the path only, so the default collate works; per-image latitude,
    longitude and time come from :meth:`metadata`. Pixel values are the stored linear intensities
    (float GeoTIFFs); apply :class:`~oceandl.datasets.transforms.ToDecibel` if wanted.
    """

    codes = list(TENGEOP_CLASSES)

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        metadata: bool | str | os.PathLike = True,
        channels: int | None = 1,
        size: int | tuple[int, int] | None = None,
        fit: str = "stretch",
        transform: Callable[[dict], dict] | None = None,
        on_error: str = "skip",
        verify: str = "header",
    ) -> None:
        size = _checked_size(size)  # before any file is listed or probed
        root = _check_dir(root)
        class_root = _tengeop_root(root)
        folders = _tengeop_folders(class_root) if class_root is not None else {}
        if class_root is None or not folders:
            raise InputError(
                f"{root}: no TenGeoP-SARwv class folders (expected sub-folders F..O or the class names, "
                f"or GeoTIFF/F..O)"
            )
        self.root = class_root
        others = _other_image_folders(class_root)
        if others:  # else their images were left out without a word
            warn(f"{class_root}: folder(s) {', '.join(others)} are not TenGeoP-SARwv classes: their "
                 "images are left out")
        files, labels, absent = [], [], []
        for label, letter in enumerate(self.codes):
            found = _images_in(folders[letter]) if letter in folders else []
            if not found:
                absent.append(letter)
            files += found
            labels += [label] * len(found)
        if absent:
            warn(
                f"{class_root}: no vignettes for class(es) {', '.join(absent)}; "
                # said alone, this read as if a model would keep ten classes; training then warned
                # that it trains on the classes present: both are true, of the data set and the model
                f"the data set keeps the ten F..O = 0..9 labels (a model trained on it learns only the classes "
                f"present)",
            )
        if not files:
            raise InputError(f"{class_root}: the class folders hold no images")
        super().__init__(
            files,
            labels,
            list(TENGEOP_CLASSES.values()),
            channels=channels,
            size=size,
            fit=fit,
            transform=transform,
            on_error=on_error,
            verify=verify,
            where=str(class_root),
        )
        self.metadata_file, self._meta = self._load_metadata(metadata, root)

    def _load_metadata(self, metadata, root: Path) -> tuple[Path | None, dict]:
        if metadata is False:
            return None, {}
        if metadata is not True:
            path = Path(metadata)
            if not path.is_file():
                raise InputError(f"{path}: metadata file not found")
            table = _read_metadata_table(path)
            if table is None:
                raise InputError(f"{path}: not a metadata table (needs a header with a filename column)")
            return path, table
        cands = []
        for d in dict.fromkeys([self.root, root, self.root.parent]):
            cands += sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".txt"))
        for path in cands:
            table = _read_metadata_table(path)
            if table:
                return path, table
        return None, {}

    def load(self, index: int) -> torch.Tensor:
        """Band 1 of vignette ``index`` (all bands when ``channels`` is None), float32 ``(C, H, W)``."""
        arr = self._read(index, None)
        arr = arr[:1] if self.channels == 1 else _convert_channels(arr, self.channels, str(self.files[index]))
        return fit_size(torch.from_numpy(np.ascontiguousarray(arr)), self.size, self.fit)

    def metadata(self, index: int) -> dict:
        """``{"latitude", "longitude", "time"}`` of sample ``index`` (empty dict when unknown)."""
        return dict(self._meta.get(self.files[index].stem, {}))


# --------------------------------------------------------------------------------------------
# Generic class folders
# --------------------------------------------------------------------------------------------
# Year or date folders (2006, 2014-05, 20140501, 2014_05_01): shards of a class in time, not classes.
_DATE_FOLDER = re.compile(r"(19|20)\d\d([-_.]?\d\d){0,2}")


def _leaf_class(parts: tuple[str, ...]) -> str:
    """The class of the images in folder ``parts`` (below the root) for ``class_folders="leaf"``:
    its path without year/date folders, so that ``2006/Chaetoceros`` and ``2007/Chaetoceros`` (the
    WHOI-Plankton layout) or ``Chaetoceros/2006`` and ``Chaetoceros/2007`` are one class,
    ``Chaetoceros``; a path of date folders only is kept whole."""
    named = [q for q in parts if not _DATE_FOLDER.fullmatch(q)]
    return "/".join(named or parts)


def _has_images(folder: Path) -> bool:
    return next(iter(_walk_images(folder)), None) is not None


def _class_root(root: Path) -> Path:
    """Descend into ``train/`` (Kaggle NDSB) or a single wrapping folder when that is where classes are."""
    subs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    direct = any(_is_image(p) for p in root.iterdir())
    for d in subs:
        if d.name.lower() == "train" and any(
            s.is_dir() and any(_is_image(p) for p in s.iterdir()) for s in d.iterdir()
        ):
            return d
    if (
        len(subs) == 1
        and not direct
        and not any(_is_image(p) for p in subs[0].iterdir())
        and any(s.is_dir() and _has_images(s) for s in subs[0].iterdir())
    ):
        return _class_root(subs[0])
    return root


class ImageFolderDataset(_FileImageDataset):
    """One folder per class: ``root/<class>/**/*.{png,jpg,jpeg,tif,tiff,bmp,gif}``.

    Parameters
    ----------
    root
        Folder of class folders. A ``train/`` sub-folder holding the class folders (Kaggle NDSB) or a
        single wrapping folder is descended into. Images are found recursively inside each class.
    classes
        Fixed class names (label = position), e.g. a trained model's, for a test folder: folders of
        other names are an error, missing ones a warning. ``None``: the sorted folder names.
    channels
        1 or 3 converts every image (grey = ITU-R 601 luma; RGB = grey repeated); ``None`` keeps the
        band count when all files agree, else 3 when any file is colour, else 1 (with a warning).
    size
        ``(H, W)`` or int for every sample; ``None`` keeps the native size when all files agree,
        else resizes to the most common size (with a warning).
    fit
        How a differently shaped image reaches ``size``: ``"stretch"`` (resize), ``"crop"`` (resize to
        cover, centre-crop) or ``"pad"`` (resize to fit, pad with the border mean).
    transform
        Called on each sample dict.
    on_error
        ``"skip"`` (warn once, list the files in ``.skipped``) or ``"raise"`` (InputError naming the file).
    verify
        ``"header"`` (open each header at construction) or ``"full"`` (decode each file).
    class_folders
        ``"top"``: each folder of ``root`` is a class, with the images of all its sub-folders (year
        folders, links to them); a class whose images lie in two or more sub-folders is warned
        about, as a taxonomy tree (``Protista/Diatoms/Chaetoceros``) read this way merges its taxa.
        ``"leaf"``: each folder holding images is a class of the images directly in it, named by
        its path below ``root`` (``"Protista/Diatoms/Chaetoceros"``) less its year or date folders
        (``2006``, ``2014-05``, ``20140501``): the folders of one taxon in several years, above it
        (``2006/Chaetoceros``, ``2007/Chaetoceros``: WHOI-Plankton) or below it
        (``Chaetoceros/2006``), are one class, ``"Chaetoceros"``; a fixed ``classes`` list then
        names such paths. Class folders named by years in the ``"top"`` mode (the classes are then
        the years) and leaf folders named by other numbers below a named folder (shards of a class?)
        are warned about.

    Attributes
    ----------
    classes : list[str]
        Class folder names, sorted (label = index); empty folders dropped with a warning
        (unless ``classes`` was given). With ``class_folders="leaf"``, paths below ``root``
        (``/``-separated).
    targets : numpy.ndarray
        ``int64 (N,)``.
    files : list[Path]
        One per sample.
    skipped : list[Path]
        Unreadable files left out (reasons in ``skip_reasons``).
    inputs : list[Path]
        Every image file found, readable or not (``files`` and ``skipped``), in order.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        classes: Sequence[str] | None = None,
        channels: int | None = None,
        size: int | tuple[int, int] | None = None,
        fit: str = "stretch",
        transform: Callable[[dict], dict] | None = None,
        on_error: str = "skip",
        verify: str = "header",
        class_folders: str = "top",
    ) -> None:
        size = _checked_size(size)  # before any file is listed or probed
        if class_folders not in ("top", "leaf"):
            raise InputError(f"class_folders={class_folders!r}: use 'top' or 'leaf'")
        root = _check_dir(root)
        self.root = _class_root(root)
        if class_folders == "top":
            subs = sorted(d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
            candidates = {d.name: _images_in(d) for d in subs}
        else:
            candidates = {}
            for p in _images_in(self.root):
                rel = p.parent.relative_to(self.root)
                if rel.parts:  # images loose in root belong to no class, as in the "top" layout
                    # 2006/Chaetoceros and 2007/Chaetoceros were two classes, one taxon split by year
                    candidates.setdefault(_leaf_class(rel.parts), []).append(p)
            candidates = dict(sorted(candidates.items()))
            numbered = [c for c in candidates if "/" in c and re.fullmatch(r"[\d_.-]+", c.rsplit("/", 1)[1])]
            if numbered:
                warn(f"{self.root}: {len(numbered)} class(es) named by a number below a folder "
                     f"({', '.join(numbered[:3])}{', ...' if len(numbered) > 3 else ''}): if such "
                     "folders are batches or days of one class, the class is the folder above: use "
                     "class_folders='top' (--class-folders top)")
        if classes is not None:
            # Fixed class list (e.g. a trained model's): labels follow it; absent classes are kept.
            fixed = list(classes)
            unknown = [c for c, found in candidates.items() if c not in fixed and found]
            if unknown:
                raise InputError(f"{self.root}: class folder(s) {', '.join(unknown)} not among the classes {fixed}")
            candidates = {c: candidates[c] for c in fixed if c in candidates}
        found_classes, files, labels, empty = [], [], [], []
        for name, found in candidates.items():
            if not found:
                empty.append(name)
                continue
            files += found
            labels += [fixed.index(name) if classes is not None else len(found_classes)] * len(found)
            found_classes.append(name)
        years = class_folders == "top" and found_classes and all(_DATE_FOLDER.fullmatch(c) for c in found_classes)
        if years and any(p.parent != self.root / c for c in found_classes for p in candidates[c]):
            # <year>/<class>/*.png (WHOI-Plankton) of several years: the years were the classes, each
            # of every taxon, without a word
            warn(f"{self.root}: the class folders ({', '.join(found_classes[:5])}"
                 f"{', ...' if len(found_classes) > 5 else ''}) are years or dates, each holding "
                 "sub-folders: the classes are probably the folders inside them (<year>/<class>); "
                 "class_folders='leaf' (--class-folders leaf) reads them, one class per name across "
                 "the years")
        elif class_folders == "top":
            # a taxonomy tree read by its top folders merged its taxa into one class, without a word.
            # Shards of one class (year or date folders, the same names under every class, as WHOI's
            # <class>/2014 links) are not taxa: only sub-folders of a name of their own are
            nested = {c: sorted({p.parent for p in candidates[c]}) for c in found_classes}
            subnames = {c: {p.relative_to(self.root / c).parts[0] for p in ps if p != self.root / c}
                        for c, ps in nested.items()}
            shared = {n for c in subnames for n in subnames[c] if sum(n in v for v in subnames.values()) > 1}
            nested = {c: ps for c, ps in nested.items() if len(ps) > 1 and self.root / c not in ps
                      and any(not re.fullmatch(r"[\d_.-]+", n) and n not in shared for n in subnames[c])}
            if nested:
                c, ps = next(iter(nested.items()))
                shown = ", ".join(p.relative_to(self.root).as_posix() for p in ps[:3])
                warn(f"{self.root}: {len(nested)} class folder(s) ({', '.join(list(nested)[:5])}"
                     f"{', ...' if len(nested) > 5 else ''}) hold images in several sub-folders, merged "
                     f"into one class each (e.g. {c!r} from {shown}{', ...' if len(ps) > 3 else ''}); for one "
                     "class per folder of images (a taxonomy tree) use class_folders='leaf' "
                     "(--class-folders leaf)")
        if not found_classes:
            loose = any(_is_image(p) for p in self.root.iterdir())
            # said to shell users too: the Python class alone left them without a command
            hint = (" (images lie directly in it: to train, put each class's images in a sub-folder per class "
                    "named after it; to label these with a trained model: oceandl classify --model MODEL "
                    "FOLDER, or ImageFilesDataset in Python)") if loose else ""
            hint += f" (empty: {', '.join(empty)})" if empty else ""
            raise InputError(f"{self.root}: no class sub-folders with images (expected <class>/*.png|jpg|tif){hint}")
        if classes is not None:
            absent = [c for c in fixed if c not in found_classes]
            if absent:
                warn(f"{self.root}: no images for class(es) {', '.join(absent)}")
            found_classes = fixed
        elif empty:
            warn(f"{self.root}: dropped empty class folder(s): {', '.join(empty)}")
        super().__init__(
            files,
            labels,
            found_classes,
            channels=channels,
            size=size,
            fit=fit,
            transform=transform,
            on_error=on_error,
            verify=verify,
            where=str(self.root),
        )


# --------------------------------------------------------------------------------------------
# Unlabelled files
# --------------------------------------------------------------------------------------------
def list_images(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Image files from a folder (searched recursively, sorted), a file, a glob pattern
    (``"GeoTIFF/*/*.tiff"``), or a list of them.

    A pattern that names no existing path is expanded (sorted; ``**`` recursive), as a quoted one
    given to ``oceandl classify`` is: a shell's expansion of TenGeoP-SARwv's 37,553 vignettes passes
    its argument limit. Of the files it matches, those not of an image type (``metadata.csv``)
    are left out; the folders it matches are searched.

    Raises
    ------
    InputError
        A path that does not exist, a file that is not an image type, a pattern that matches no
        image, or no images at all.
    """
    import glob

    from oceandl.io import is_pattern

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists() and is_pattern(p):
            matched = [Path(m) for m in sorted(glob.glob(str(p), recursive=True))]
            found = [m for m in matched if m.is_dir() or _is_image(m)]
            found = [f for m in found for f in (_images_in(m) if m.is_dir() else [m])]
            if not found:
                raise InputError(f"{p}: no image file matches this pattern (extensions {', '.join(IMAGE_EXTENSIONS)})")
            out += found
        elif p.is_dir():
            out += _images_in(p)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise InputError(f"{p}: not an image file (extensions {', '.join(IMAGE_EXTENSIONS)})")
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    if not out:
        for p in map(Path, paths):
            # the folder `train classifier --data` read as MNIST was "no image files found" here
            if p.is_dir() and _mnist_split(p):
                raise InputError(f"{p}: MNIST IDX files, which classify does not read (image files or a netCDF "
                                 f"stack): from Python, oceandl.classify(load_mnist({str(p)!r}, "
                                 f"{_mnist_split(p)!r})[0], model=...) (load_mnist: oceandl.datasets.mnist)")
        raise InputError(f"{', '.join(map(str, paths))}: no image files found")
    return list(dict.fromkeys(out))


class ImageFilesDataset(_FileImageDataset):
    """Unlabelled images to classify: ``{"image", "label": -1, "index", "path"}``.

    Parameters
    ----------
    files
        A folder, a file, or a list of them (see :func:`list_images`).
    channels, size, fit, transform, on_error, verify
        As for :class:`ImageFolderDataset`; set ``channels`` and ``size`` to what the model expects.
    """

    def __init__(
        self,
        files: str | os.PathLike | Iterable[str | os.PathLike],
        *,
        channels: int | None = None,
        size: int | tuple[int, int] | None = None,
        fit: str = "stretch",
        transform: Callable[[dict], dict] | None = None,
        on_error: str = "skip",
        verify: str = "header",
    ) -> None:
        size = _checked_size(size)  # before any file is listed or probed
        found = list_images(files)
        super().__init__(
            found,
            [-1] * len(found),
            [],
            channels=channels,
            size=size,
            fit=fit,
            transform=transform,
            on_error=on_error,
            verify=verify,
            where=str(files) if isinstance(files, (str, os.PathLike)) else f"{len(found)} files",
        )


# --------------------------------------------------------------------------------------------
# netCDF stacks
# --------------------------------------------------------------------------------------------
def _class_names_from_attrs(attrs: dict) -> list[str] | None:
    names = attrs.get("classes", attrs.get("class_names"))
    if names is None:
        return None
    if isinstance(names, str):
        parts = [s.strip() for s in names.split(",")] if "," in names else names.split()
        return [s for s in parts if s]
    return [str(s) for s in np.atleast_1d(names)]


class NetCDFImageDataset(Dataset):
    """A stack of images in a netCDF file or xarray Dataset: ``var(sample, [channel,] y, x)``.

    Parameters
    ----------
    path_or_ds
        netCDF file or an open :class:`xarray.Dataset`. The data is loaded into memory.
    var
        Image variable, 3-D ``(sample, y, x)`` or 4-D ``(sample, channel, y, x)``; the first dim is
        the sample dim.
    label_var
        Label variable or coordinate along the sample dim: integers (class names from its attrs
        ``classes`` — a list or comma/space separated string — or ``flag_values``/``flag_meanings``,
        else the dataset's ``classes`` attribute, else ``"0"..str(max)``) or strings (classes = the
        sorted distinct values). ``None``: unlabelled, label -1.
    transform
        Called on each sample dict.

    Attributes
    ----------
    sample_dim : str
        The image variable's first dim.
    sample_coords : dict of xarray.Variable
        The file's 1-D variables along ``sample_dim`` (its coordinate, each image's time or
        position; not ``label_var``), which :func:`oceandl.classify` keeps in its predictions.

    Notes
    -----
    Unsigned-integer images (stored type, without scale_factor/add_offset) are divided by their
    type's maximum, to [0, 1], as image files are. Non-finite pixels are replaced by the image's
    finite median. An image without a finite pixel (a vignette all cloud or land) is an InputError
    naming it when it is read, as an unreadable file is, and not when the stack is opened: the
    other images of the stack can still be classified (``oceandl classify`` gives it a row with
    the reason in ``error``).
    """

    def __init__(
        self,
        path_or_ds,
        var: str = "image",
        label_var: str | None = "label",
        transform: Callable[[dict], dict] | None = None,
    ) -> None:
        import xarray as xr

        if isinstance(path_or_ds, xr.Dataset):
            ds, where = path_or_ds, "dataset"
        else:
            where = str(path_or_ds)
            if not Path(path_or_ds).is_file():
                raise InputError(f"{where}: no such file")
            try:
                ds = xr.open_dataset(path_or_ds)
            except Exception as exc:  # netCDF4/h5netcdf/xarray raise many types for a bad file
                raise InputError(f"{where}: cannot open as netCDF ({_short(exc)})") from None
        self.source = where
        self.attrs = dict(ds.attrs)  # the file's global attributes (its history, for what is written from it)
        if var not in ds.variables:
            raise InputError(f"{where}: no variable {var!r} (variables: {', '.join(map(str, ds.variables))})")
        da = ds[var]
        if da.ndim not in (3, 4):
            raise InputError(
                f"{where}: variable {var!r} has dims {da.dims}; expected (sample, y, x) or (sample, channel, y, x)"
            )
        images = np.asarray(da.values, dtype=np.float32)
        stored = np.dtype(da.encoding.get("dtype", da.dtype)) if da.dtype.kind == "f" else da.dtype
        if stored.kind == "u" and not {"scale_factor", "add_offset"} & set(da.encoding):
            # The module's rule for image files (a uint8 PNG is read as [0, 1]): a model trained on a
            # folder sees the same pixels from the stack. `stored`: ints with a _FillValue decode to float.
            images /= np.float32(np.iinfo(stored).max)
        if images.ndim == 3:
            images = images[:, None]
        if len(images) == 0:
            raise InputError(f"{where}: variable {var!r} holds no images")
        bad = ~np.isfinite(images)
        # images without a finite pixel: an error when read (one all-NaN vignette made the whole
        # stack unreadable, for classify too); kept in place, so that indices stay the file's
        self._empty = set(np.flatnonzero(bad.reshape(len(images), -1).all(axis=1)).tolist())
        if bad.any():
            some = np.flatnonzero(bad.reshape(len(images), -1).any(axis=1))
            some = some[~np.isin(some, list(self._empty))]
            med = np.zeros((len(images), 1, 1, 1), np.float32)
            med[some] = np.nanmedian(np.where(bad[some], np.nan, images[some]), axis=(1, 2, 3), keepdims=True)
            images = np.where(bad, med, images).astype(np.float32)
        self._images = torch.from_numpy(np.ascontiguousarray(images))
        self.targets, self.classes = self._labels(ds, da, label_var, where, len(images))
        self.transform = transform
        self.var = var
        # what says which image is which (the sample coordinate, each image's time, lat, lon): the
        # predictions of a stack keep them, or rows 0..N-1 could not be joined back to the file
        self.sample_dim = str(da.dims[0])
        self.sample_coords = {str(k): v.load() for k, v in ds.variables.items()
                              if v.dims == (da.dims[0],) and k != label_var}
        if ds is not path_or_ds:  # we opened it, the values are in memory now
            ds.close()

    @staticmethod
    def _labels(ds, da, label_var, where, n) -> tuple[np.ndarray, list[str]]:
        if label_var is None:
            return np.full(n, -1, dtype=np.int64), []
        if label_var not in ds.variables:
            names = ", ".join(map(str, ds.variables))
            raise InputError(f"{where}: no label variable {label_var!r} (variables: {names})")
        lab = ds[label_var]
        if lab.dims != (da.dims[0],):
            raise InputError(f"{where}: label {label_var!r} has dims {lab.dims}; expected ({da.dims[0]},)")
        values = lab.values
        if values.dtype.kind in "USO":
            strings = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])
            classes = sorted(set(strings.tolist()))
            return np.searchsorted(classes, strings).astype(np.int64), classes
        if values.dtype.kind == "f":
            if not np.isfinite(values).all() or (values != np.round(values)).any():
                raise InputError(f"{where}: label {label_var!r} has missing or non-integer values")
        elif values.dtype.kind not in "iub":
            raise InputError(f"{where}: label {label_var!r} of type {values.dtype} is neither integer nor string")
        values = values.astype(np.int64)
        if "flag_values" in lab.attrs and "flag_meanings" in lab.attrs:
            flags = np.atleast_1d(lab.attrs["flag_values"]).astype(np.int64)
            names = str(lab.attrs["flag_meanings"]).split()
            if len(names) != len(flags):
                raise InputError(f"{where}: label {label_var!r} flag_values and flag_meanings differ in length")
            unknown = np.setdiff1d(values, flags)
            if unknown.size:
                raise InputError(f"{where}: label {label_var!r} value {unknown[0]} not in flag_values")
            order = np.argsort(flags)
            return order[np.searchsorted(flags[order], values)].astype(np.int64), names
        classes = _class_names_from_attrs(lab.attrs) or _class_names_from_attrs(ds.attrs)
        if values.min() < 0:
            raise InputError(f"{where}: label {label_var!r} has negative value {values.min()}")
        if classes is None:
            classes = [str(i) for i in range(int(values.max()) + 1)]
        elif values.max() >= len(classes):
            raise InputError(f"{where}: label {label_var!r} value {values.max()} but only {len(classes)} class names")
        return values, classes

    def __len__(self) -> int:
        return len(self.targets)

    def metadata(self, index: int) -> dict:
        """Per-sample metadata (empty)."""
        return {}

    def __getitem__(self, index: int) -> dict:
        if int(index) in self._empty:
            raise InputError(f"{self.source}: {self.var}[{int(index)}] has no finite pixel (all NaN/inf)")
        sample = {
            "image": self._images[index].clone(),
            "label": torch.tensor(self.targets[index], dtype=torch.int64),
            "index": int(index),
        }
        return self.transform(sample) if self.transform is not None else sample


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------
def open_image_dataset(path: str | os.PathLike, **kw) -> Dataset:
    """Open a labelled image collection from what ``path`` is.

    * a ``.nc``/``.nc4``/``.netcdf`` file -> :class:`NetCDFImageDataset` (``var``, ``label_var``)
    * a folder with TenGeoP class folders (``F``..``O``, or ``GeoTIFF/F..O``) and no other folder of
      images -> :class:`TenGeoPDataset`
    * any other folder -> :class:`ImageFolderDataset`

    ``kw`` goes to the chosen class.

    Raises
    ------
    InputError
        A path that does not exist or is a file of another kind.
    """
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() in (".nc", ".nc4", ".netcdf", ".cdf"):
            return NetCDFImageDataset(p, **kw)
        raise InputError(f"{p}: not a netCDF file (.nc) nor a folder of class folders")
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if is_tengeop_root(p):
        # a collection of one's own with two folders named like TenGeoP classes ("Sea Ice", "Iceberg")
        # beside others ("Ship") was read as TenGeoP: the other classes were left out without a word
        others = _other_image_folders(_tengeop_root(p))
        if not others or "metadata" in kw:
            return TenGeoPDataset(p, **kw)
        warn(f"{p}: folder(s) {', '.join(others)} are not TenGeoP-SARwv classes: every folder is read "
             "as a class (labels in sorted folder order)")
    return ImageFolderDataset(p, **kw)
