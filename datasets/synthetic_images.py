"""Synthetic stand-ins for SAR wave-mode vignettes and plankton images, written in the real layouts.

* :func:`make_sar_vignettes` writes the TenGeoP-SARwv layout (``root/<F..O>/*.tiff`` float32 linear
  intensity GeoTIFFs + ``root/metadata.csv``): ten geophysical textures under multiplicative gamma
  speckle, each image with its own mean backscatter, so that the class is in the texture, not in
  the brightness.
* :func:`make_plankton_images` writes one folder per morphotype of grey PNG/JPEG/TIFF images of
  jittered sizes, on dark (in-flow imaging) or light (ZooScan) backgrounds.

Everything is a deterministic function of ``seed`` (each image has its own generator seeded by
``(seed, class, index)``, so an image does not change when ``n_per_class`` does). Both run at about
a thousand 64x64 images per few seconds on one core. :func:`sar_arrays` and
:func:`plankton_arrays` give the same images in memory.

Physical scale of the SAR stand-ins: a vignette spans ``FOOTPRINT_M`` metres whatever ``size``
(so 32 m pixels at 64 px); swell wavelengths are 100-400 m. Other features are set in pixels of a
64 px vignette and scale with ``size``: wind-streak spacing 12-28 px (0.4-0.9 km), convective
cells 10-20 px, rain cells 5-16 px radius, sea-ice floes ~ 10-25 px. They are compressed relative
to a real 20 km vignette so that a 64 px image shows several of them.
"""
from __future__ import annotations

import csv
import functools
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from oceandl.errors import InputError
from oceandl.utils import check_memory

from .images import TENGEOP_CLASSES

__all__ = [
    "FOOTPRINT_M",
    "PLANKTON_CLASSES",
    "sar_vignette",
    "sar_arrays",
    "make_sar_vignettes",
    "plankton_image",
    "plankton_arrays",
    "make_plankton_images",
]

FOOTPRINT_M = 2048.0  # metres covered by a synthetic SAR vignette (32 m pixels at 64 px)
PLANKTON_CLASSES = ["appendicularian", "chaetognath", "copepod", "detritus", "diatom_chain", "radiolarian"]
_SAR_CODES = list(TENGEOP_CLASSES)


# --------------------------------------------------------------------------------------------
# Random fields
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _wavenumbers(n: int) -> tuple[np.ndarray, np.ndarray]:
    k = 2 * np.pi * np.fft.fftfreq(n)
    ky, kx = np.meshgrid(k, k, indexing="ij")  # rows, cols; rad/px
    ky.flags.writeable = kx.flags.writeable = False  # cached: shared between calls
    return ky, kx


def _field(rng: np.random.Generator, n: int, spectrum: np.ndarray) -> np.ndarray:
    """Gaussian random field with amplitude spectrum ``spectrum`` (n, n), zero mean, unit std."""
    noise = np.fft.fft2(rng.standard_normal((n, n)))
    f = np.fft.ifft2(noise * spectrum).real
    f -= f.mean()
    s = f.std()
    return (f / s if s > 0 else f).astype(np.float32)


def _lowpass(rng: np.random.Generator, n: int, wavelength: float) -> np.ndarray:
    ky, kx = _wavenumbers(n)
    k0 = 2 * np.pi / wavelength
    return _field(rng, n, np.exp(-(kx**2 + ky**2) / (2 * k0**2)))


def _ring(rng: np.random.Generator, n: int, wavelength: float, rel_width: float = 0.25) -> np.ndarray:
    ky, kx = _wavenumbers(n)
    k0 = 2 * np.pi / wavelength
    k = np.hypot(kx, ky)
    return _field(rng, n, np.exp(-((k - k0) ** 2) / (2 * (rel_width * k0) ** 2)))


def _oriented(
    rng: np.random.Generator, n: int, wavelength: float, theta: float, rel_dk: float, dtheta: float
) -> np.ndarray:
    """Narrow-band field around wavevector of ``wavelength`` px along angle ``theta`` (both signs)."""
    ky, kx = _wavenumbers(n)
    k0 = 2 * np.pi / wavelength
    k = np.hypot(kx, ky) + 1e-9
    ang = np.arctan2(ky, kx)
    d = np.angle(np.exp(2j * (ang - theta))) / 2  # angular distance modulo pi (both directions)
    spec = np.exp(-((k - k0) ** 2) / (2 * (rel_dk * k0) ** 2) - d**2 / (2 * dtheta**2))
    return _field(rng, n, spec)


def _grid(h: int, w: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    w = h if w is None else w
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))


# --------------------------------------------------------------------------------------------
# SAR vignettes
# --------------------------------------------------------------------------------------------
def _sar_pattern(code: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """Noise-free relative backscatter (mean ~ 1, > 0) of class ``code`` on an n x n grid."""
    s = n / 64.0  # feature scale of the pixel-defined classes
    yy, xx = _grid(n)
    c = (n - 1) / 2
    # Weak large-scale wind variability under every class.
    m = 1 + 0.06 * _lowpass(rng, n, 0.6 * n)
    if code == "F":  # swell: narrow-band wave trains, wavelength 100-400 m, random direction
        wl = rng.uniform(100, 400) / (FOOTPRINT_M / n)
        f = _oriented(rng, n, wl, rng.uniform(0, np.pi), rel_dk=0.12, dtheta=np.radians(12))
        m = m * (1 + rng.uniform(0.3, 0.5) * f)
    elif code == "G":  # wind streaks: weak, long along-wind, 0.4-0.9 km spacing across
        wl = rng.uniform(12, 28) * s
        th = rng.uniform(0, np.pi)
        f = _oriented(rng, n, wl, th, rel_dk=0.45, dtheta=np.radians(7))
        m = m * (1 + rng.uniform(0.15, 0.25) * f)
    elif code == "H":  # micro convective cells: isotropic cellular network (bright rims)
        f = _ring(rng, n, rng.uniform(10, 20) * s, rel_width=0.2)
        a = np.abs(f)
        m = m * (1 + rng.uniform(0.3, 0.45) * (a - a.mean()) / a.std())
    elif code == "I":  # rain cells: roundish patches with sharp edges, bright core or dark
        for _ in range(rng.integers(1, 4)):
            r = rng.uniform(5, 16) * s
            cy, cx = rng.uniform(0.15 * n, 0.85 * n, 2)
            d = np.hypot(yy - cy, xx - cx)
            inside = _sigmoid((r - d) / rng.uniform(0.5, 1.2))
            gain = rng.uniform(1.8, 3.5) if rng.random() < 0.7 else rng.uniform(0.25, 0.5)
            m = m * (1 + (gain - 1) * inside)
            if gain > 1:  # downdraft ring: slightly darker annulus around bright cells
                ring = np.exp(-(((d - 1.5 * r) / (0.35 * r)) ** 2))
                m = m * (1 - 0.3 * ring)
    elif code == "J":  # biological slicks: thin dark meandering filaments (level sets of a smooth field)
        wl = rng.uniform(100, 400) / (FOOTPRINT_M / n)  # a little swell under the slicks
        m = m * (1 + 0.08 * _oriented(rng, n, wl, rng.uniform(0, np.pi), 0.15, 0.3))
        for _ in range(rng.integers(1, 3)):
            f = _lowpass(rng, n, rng.uniform(20, 40) * s)
            lvl = rng.uniform(-0.6, 0.6)
            fil = np.exp(-(((f - lvl) / rng.uniform(0.12, 0.22)) ** 2))
            m = m * (1 - rng.uniform(0.6, 0.85) * fil)
    elif code == "K":  # sea ice: bright floes (Voronoi cells) separated by dark leads
        k = rng.integers(5, 16)
        seeds = rng.uniform(-0.1 * n, 1.1 * n, (k, 2))
        d = np.hypot(yy[..., None] - seeds[:, 0], xx[..., None] - seeds[:, 1])
        order = np.sort(d, axis=-1)
        owner = np.argmin(d, axis=-1)
        floe = np.exp(rng.normal(np.log(2.5), 0.35, k))[owner]
        lead = _sigmoid((order[..., 1] - order[..., 0] - rng.uniform(1.5, 3.5) * s) / 0.6)
        m = (rng.uniform(0.1, 0.3) * (1 - lead) + floe * lead) * (1 + 0.15 * _lowpass(rng, n, 4 * s))
    elif code == "L":  # iceberg: one to three bright point targets on a wavy ocean
        wl = rng.uniform(100, 400) / (FOOTPRINT_M / n)
        m = m * (1 + 0.15 * _oriented(rng, n, wl, rng.uniform(0, np.pi), 0.12, np.radians(15)))
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.1 * n, 0.9 * n, 2)
            sig = rng.uniform(0.7, 1.5) * s
            m = m + rng.uniform(15, 60) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sig**2))
    elif code == "M":  # low wind area: very dark patch covering much of the image
        f = _lowpass(rng, n, 0.5 * n)
        t = np.quantile(f, 1 - rng.uniform(0.4, 0.85))
        patch = _sigmoid((f - t) / rng.uniform(0.05, 0.2))
        m = m * (1 - (1 - rng.uniform(0.04, 0.15)) * patch)
    elif code == "N":  # atmospheric front: straight sharp step in backscatter
        th = rng.uniform(0, 2 * np.pi)
        off = rng.uniform(-n / 6, n / 6)
        dist = (xx - c) * np.cos(th) + (yy - c) * np.sin(th) - off
        ratio = rng.uniform(2.2, 4.5)
        m = m * ratio ** (_sigmoid(dist / rng.uniform(0.5, 1.5)) - 0.5)
    elif code == "O":  # oceanic front: meandering line with a weak step across it
        th = rng.uniform(0, 2 * np.pi)
        u = (xx - c) * np.cos(th) + (yy - c) * np.sin(th)
        v = -(xx - c) * np.sin(th) + (yy - c) * np.cos(th) - rng.uniform(-n / 8, n / 8)
        lam = rng.uniform(25, 60) * s
        v0 = rng.uniform(3, 9) * s * np.sin(2 * np.pi * u / lam + rng.uniform(0, 2 * np.pi))
        v0 += rng.uniform(1, 3) * s * np.sin(4 * np.pi * u / lam + rng.uniform(0, 2 * np.pi))
        d = v - v0
        m = m * rng.uniform(1.2, 1.8) ** (_sigmoid(d / 1.0) - 0.5)
        line = np.exp(-((d / (rng.uniform(1.0, 2.0) * s)) ** 2))
        m = m * (1 + (rng.uniform(1.0, 1.8) if rng.random() < 0.5 else -rng.uniform(0.55, 0.8)) * line)
    else:  # pragma: no cover - internal
        raise ValueError(code)
    return np.clip(m, 0.02, None).astype(np.float32)


def sar_vignette(code: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One synthetic vignette of TenGeoP class letter ``code``: linear intensity float32 ``(size, size)``.

    The noise-free pattern is scaled by a per-image mean backscatter (about -18 to -8 dB) and
    multiplied by gamma speckle of 1 to 4 looks (mean 1, variance 1/L).
    """
    if code not in TENGEOP_CLASSES:
        raise InputError(f"SAR class {code!r}: not one of {', '.join(TENGEOP_CLASSES)}")
    m = _sar_pattern(code, rng, size)
    sigma0 = 10 ** (rng.uniform(-1.8, -0.8))  # mean backscatter, varied so brightness is no class cue
    looks = int(rng.integers(1, 5))
    speckle = rng.gamma(looks, 1.0 / looks, size=m.shape)
    return (sigma0 * m / m.mean() * speckle).astype(np.float32)


def _check_counts(n_per_class: int, size: int) -> None:
    if int(n_per_class) < 1:
        raise InputError(f"n_per_class={n_per_class}: must be >= 1")
    if int(size) < 16:
        raise InputError(f"size={size}: must be >= 16 pixels")
    # one image is built from a dozen float64 and complex working arrays of size x size
    check_memory(int(size) ** 2 * 8 * 12, f"size={size}", "ask for smaller images")


def sar_arrays(n_per_class: int = 20, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The vignettes of :func:`make_sar_vignettes` in memory.

    Returns
    -------
    images : numpy.ndarray
        float32 ``(10 * n_per_class, size, size)`` linear intensities, class-major order.
    labels : numpy.ndarray
        int64 ``(N,)``, 0..9 for F..O.
    """
    _check_counts(n_per_class, size)
    images = np.empty((10 * n_per_class, size, size), np.float32)
    for k, code in enumerate(_SAR_CODES):
        for i in range(n_per_class):
            rng = np.random.default_rng([seed, k, i])
            images[k * n_per_class + i] = sar_vignette(code, rng, size)
    return images, np.repeat(np.arange(10, dtype=np.int64), n_per_class)


def _sar_meta(code: str, rng: np.random.Generator) -> tuple[float, float, datetime]:
    if code in "KL":  # sea ice and icebergs: polar waters
        lat = rng.uniform(55, 75) * rng.choice([-1, 1])
    else:
        lat = rng.uniform(-60, 60)
    lon = rng.uniform(-180, 180)
    t = datetime(2016, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=int(rng.integers(0, 2 * 365 * 86400)))
    return float(lat), float(lon), t


def make_sar_vignettes(
    root: str | os.PathLike,
    n_per_class: int = 20,
    size: int = 64,
    seed: int = 0,
    metadata: bool = True,
) -> Path:
    """Write synthetic TenGeoP-SARwv vignettes in the archive layout.

    Layout: ``root/<F..O>/s1a-wv<1|2>-slc-vv-<YYYYmmddtHHMMSS>-<NNNNN>.tiff`` — single-band float32
    linear-intensity GeoTIFFs (EPSG:4326, centred on the image's latitude/longitude) — and, with
    ``metadata``, ``root/metadata.csv`` (``filename,class,latitude,longitude,time``).

    Classes (see :data:`~oceandl.datasets.images.TENGEOP_CLASSES`): F swell trains (100-400 m),
    G weak wind streaks, H convective cells, I rain cells, J dark slick filaments, K ice floes and
    leads, L bright point targets, M low-wind dark patch, N straight sharp step, O meandering line.

    Parameters
    ----------
    root
        Output folder (created; existing files of the same names are replaced).
    n_per_class
        Vignettes per class.
    size
        Width = height in pixels (>= 16).
    seed
        Everything is a function of it.
    metadata
        Write ``metadata.csv``.

    Returns
    -------
    Path
        ``root``.
    """
    import rasterio
    from rasterio.transform import Affine

    _check_counts(n_per_class, size)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    profile = dict(driver="GTiff", count=1, dtype="float32", height=size, width=size, crs="EPSG:4326")
    for k, code in enumerate(_SAR_CODES):
        folder = root / code
        folder.mkdir(exist_ok=True)
        for i in range(n_per_class):
            rng = np.random.default_rng([seed, k, i])
            image = sar_vignette(code, rng, size)
            lat, lon, t = _sar_meta(code, np.random.default_rng([seed, k, i, 1]))
            name = f"s1a-wv{1 + (i % 2)}-slc-vv-{t:%Y%m%dt%H%M%S}-{k * n_per_class + i:05d}.tiff"
            dy = FOOTPRINT_M / size / 111_320.0
            dx = dy / max(np.cos(np.radians(lat)), 0.05)
            transform = Affine(dx, 0, lon - dx * size / 2, 0, -dy, lat + dy * size / 2)
            with rasterio.open(folder / name, "w", transform=transform, **profile) as dst:
                dst.write(image, 1)
            rows.append((name, code, f"{lat:.4f}", f"{lon:.4f}", t.strftime("%Y-%m-%dT%H:%M:%SZ")))
    if metadata:
        with open(root / "metadata.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["filename", "class", "latitude", "longitude", "time"])
            w.writerows(rows)
    return root


# --------------------------------------------------------------------------------------------
# Plankton
# --------------------------------------------------------------------------------------------
def _soft(inside_dist: np.ndarray, edge: float) -> np.ndarray:
    """Anti-aliased mask from a signed distance (positive inside), ``edge`` = one pixel."""
    return np.clip(inside_dist / edge + 0.5, 0, 1)


def _seg_dist(u: np.ndarray, v: np.ndarray, p0, p1) -> np.ndarray:
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
    return np.hypot(u - (x0 + t * dx), v - (y0 + t * dy))


def _ellipse(u, v, cx, cy, a, b, edge):
    r = np.hypot((u - cx) / a, (v - cy) / b)
    return _soft((1 - r) * min(a, b), edge)


def _line(u, v, p0, p1, width, edge):
    return _soft(width / 2 - _seg_dist(u, v, p0, p1), edge)


def _polyline(u, v, pts, widths, edge):
    out = np.zeros_like(u)
    for (p0, p1, w) in zip(pts[:-1], pts[1:], widths):
        out = np.maximum(out, _line(u, v, p0, p1, w, edge))
    return out


def _plankton_shape(name: str, rng: np.random.Generator, u: np.ndarray, v: np.ndarray, e: float) -> np.ndarray:
    """Opacity in [0, 1] of morphotype ``name`` in object coordinates (object spans about +-0.45)."""
    if name == "copepod":  # oval prosome, thin urosome, two long antennae swept back
        a, b = rng.uniform(0.17, 0.24), rng.uniform(0.07, 0.1)
        m = _ellipse(u, v, 0.05, 0, a, b, e)
        tail = (0.05 - a - rng.uniform(0.12, 0.2), 0)
        m = np.maximum(m, _line(u, v, (0.05 - a, 0), tail, rng.uniform(0.03, 0.045), e))
        head = 0.05 + 0.8 * a
        for sgn in (-1, 1):
            ang = np.radians(rng.uniform(95, 150))
            ln = rng.uniform(0.28, 0.42)
            tip = (head + ln * np.cos(ang), sgn * ln * np.sin(ang))
            m = np.maximum(m, _line(u, v, (head, sgn * 0.03), tip, rng.uniform(0.01, 0.016), e))
        return m
    if name == "diatom_chain":  # chain of rectangular or round cells, gently curved
        k = int(rng.integers(3, 8))
        length = rng.uniform(0.7, 0.9)
        cw = length / k
        h = rng.uniform(0.07, 0.14)
        bend = rng.uniform(-0.4, 0.4)
        m = np.zeros_like(u)
        round_cells = rng.random() < 0.4
        for j in range(k):
            cx = -length / 2 + (j + 0.5) * cw
            cy = bend * cx**2
            if round_cells:
                m = np.maximum(m, _ellipse(u, v, cx, cy, 0.42 * cw, 0.42 * cw, e))
            else:
                box = np.minimum(0.42 * cw - np.abs(u - cx), h / 2 - np.abs(v - cy))
                m = np.maximum(m, _soft(box, e))
        xs = np.linspace(-length / 2, length / 2, 9)
        pts = [(x, bend * x**2) for x in xs]
        return np.maximum(m, _polyline(u, v, pts, [0.012] * 8, e))
    if name == "radiolarian":  # round capsule with a bright rim and radiating spines
        r = rng.uniform(0.13, 0.2)
        rr = np.hypot(u, v)
        m = 0.6 * _soft(r - rr, e) + 0.4 * _soft(0.025 - np.abs(rr - r), e)
        n_sp = int(rng.integers(12, 28))
        ln = rng.uniform(0.12, 0.25)
        for ang in rng.uniform(0, 2 * np.pi) + np.linspace(0, 2 * np.pi, n_sp, endpoint=False):
            p0 = (r * np.cos(ang), r * np.sin(ang))
            p1 = ((r + ln) * np.cos(ang), (r + ln) * np.sin(ang))
            m = np.maximum(m, _line(u, v, p0, p1, rng.uniform(0.008, 0.014), e))
        return np.clip(m, 0, 1)
    if name == "chaetognath":  # arrow worm: long thin transparent body, small head, tail fin
        a, b = rng.uniform(0.38, 0.46), rng.uniform(0.022, 0.038)
        m = 0.75 * _ellipse(u, v, 0, 0, a, b, e)
        m = np.maximum(m, _ellipse(u, v, a - 0.03, 0, 0.045, 1.6 * b, e))
        fin = _soft(np.minimum(0.07 - np.abs(u + a - 0.02), 0.7 * (0.07 - np.abs(u + a - 0.02)) - np.abs(v) + 0.01), e)
        return np.maximum(m, 0.6 * fin)
    if name == "appendicularian":  # oval trunk and a long undulating tail
        m = _ellipse(u, v, 0.25, 0, rng.uniform(0.08, 0.12), rng.uniform(0.06, 0.09), e)
        amp, k = rng.uniform(0.03, 0.08), rng.uniform(8, 16)
        ph = rng.uniform(0, 2 * np.pi)
        xs = np.linspace(0.17, -0.45, 16)
        pts = [(x, amp * np.sin(k * x + ph) * (0.17 - x) / 0.6) for x in xs]
        widths = np.linspace(0.035, 0.012, 15)
        return np.maximum(m, 0.85 * _polyline(u, v, pts, widths, e))
    if name == "detritus":  # irregular blob of uneven opacity, sometimes with fragments
        th = np.arctan2(v, u)
        rad = rng.uniform(0.15, 0.3) * np.ones_like(u)
        for k in range(2, 8):
            rad = rad * (1 + rng.normal(0, 0.35 / k) * np.cos(k * th + rng.uniform(0, 2 * np.pi)))
        m = _soft(rad - np.hypot(u, v), e)
        for _ in range(rng.integers(0, 3)):
            cx, cy = rng.uniform(-0.35, 0.35, 2)
            m = np.maximum(m, _ellipse(u, v, cx, cy, rng.uniform(0.03, 0.07), rng.uniform(0.02, 0.05), e))
        return m * rng.uniform(0.5, 0.9)
    raise InputError(f"plankton class {name!r}: not one of {', '.join(PLANKTON_CLASSES)}")  # pragma: no cover


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0.05:
        return img
    h, w = img.shape
    # Pad by reflection so the object near the border does not wrap around.
    p = int(3 * sigma) + 1
    padded = np.pad(img, p, mode="reflect")
    hp, wp = padded.shape
    tf = np.exp(-2 * (np.pi * sigma) ** 2 * (np.fft.fftfreq(wp)[None, :] ** 2 + np.fft.fftfreq(hp)[:, None] ** 2))
    return np.fft.ifft2(np.fft.fft2(padded) * tf).real[p : p + h, p : p + w]


def plankton_image(name: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One synthetic plankton image of morphotype ``name``: uint8 ``(H, W)``, H and W in ~[0.75, 1.35] * size.

    Random rotation, scale (0.75-1.1 of the frame), blur (0-1.2 px), noise, and background polarity
    (dark background with a bright object, or the reverse).
    """
    h = int(round(size * rng.uniform(0.75, 1.35)))
    w = int(round(size * rng.uniform(0.75, 1.35)))
    yy, xx = _grid(h, w)
    frame = min(h, w) * rng.uniform(0.75, 1.1)
    ang = rng.uniform(0, 2 * np.pi)
    cy, cx = h / 2 + rng.normal(0, 0.04 * h), w / 2 + rng.normal(0, 0.04 * w)
    # Object coordinates: rotate the pixel grid back, in units of the frame.
    du, dv = (xx - cx) / frame, (yy - cy) / frame
    u = du * np.cos(ang) + dv * np.sin(ang)
    v = -du * np.sin(ang) + dv * np.cos(ang)
    if rng.random() < 0.5:
        v = -v  # mirror image
    opacity = _plankton_shape(name, rng, u, v, 1.0 / frame)
    texture = 1 + 0.12 * _lowpass_rect(rng, h, w, 0.08 * min(h, w))
    opacity = np.clip(opacity * texture, 0, 1)
    opacity = _blur(opacity, rng.uniform(0, 1.2))
    if rng.random() < 0.5:  # dark field: bright organism
        bg, fg = rng.uniform(0.02, 0.12), rng.uniform(0.55, 0.95)
    else:  # ZooScan-like: light background, dark organism
        bg, fg = rng.uniform(0.8, 0.97), rng.uniform(0.1, 0.45)
    img = bg + (fg - bg) * opacity + rng.normal(0, rng.uniform(0.01, 0.04), (h, w))
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def _lowpass_rect(rng: np.random.Generator, h: int, w: int, wavelength: float) -> np.ndarray:
    ky = 2 * np.pi * np.fft.fftfreq(h)[:, None]
    kx = 2 * np.pi * np.fft.fftfreq(w)[None, :]
    k0 = 2 * np.pi / wavelength
    f = np.fft.ifft2(np.fft.fft2(rng.standard_normal((h, w))) * np.exp(-(kx**2 + ky**2) / (2 * k0**2))).real
    return ((f - f.mean()) / (f.std() + 1e-12)).astype(np.float32)


def plankton_arrays(n_per_class: int = 20, size: int = 64, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """The images of :func:`make_plankton_images` in memory: a list of uint8 ``(H, W)`` and int64 labels
    (index into :data:`PLANKTON_CLASSES`, class-major order)."""
    _check_counts(n_per_class, size)
    images = [
        plankton_image(name, np.random.default_rng([seed, k, i]), size)
        for k, name in enumerate(PLANKTON_CLASSES)
        for i in range(n_per_class)
    ]
    return images, np.repeat(np.arange(len(PLANKTON_CLASSES), dtype=np.int64), n_per_class)


def make_plankton_images(
    root: str | os.PathLike,
    n_per_class: int = 20,
    size: int = 64,
    seed: int = 0,
    fmt: str = "png",
) -> Path:
    """Write synthetic plankton images, one folder per morphotype: ``root/<class>/<class>_NNNNN.<fmt>``.

    Morphotypes (:data:`PLANKTON_CLASSES`): appendicularian (trunk + undulating tail), chaetognath
    (long thin body), copepod (oval body + antennae), detritus (irregular blob), diatom_chain
    (linked cells), radiolarian (round with spines). Grey 8-bit images of jittered sizes.

    Parameters
    ----------
    root
        Output folder (created).
    n_per_class
        Images per class.
    size
        Nominal side; each image's height and width are drawn in about [0.75, 1.35] * size.
    seed
        Everything is a function of it.
    fmt
        ``"png"``, ``"jpg"`` or ``"tif"``.

    Returns
    -------
    Path
        ``root``.
    """
    from PIL import Image

    fmt = fmt.lower().lstrip(".")
    if fmt not in ("png", "jpg", "jpeg", "tif", "tiff"):
        raise InputError(f"fmt={fmt!r}: use png, jpg or tif")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    images, labels = plankton_arrays(n_per_class, size, seed)
    for k, name in enumerate(PLANKTON_CLASSES):
        (root / name).mkdir(exist_ok=True)
    for j, (img, lab) in enumerate(zip(images, labels)):
        name = PLANKTON_CLASSES[lab]
        path = root / name / f"{name}_{j % n_per_class:05d}.{fmt}"
        kw = {"quality": 95} if fmt in ("jpg", "jpeg") else {}
        Image.fromarray(img).save(path, **kw)
    return root
