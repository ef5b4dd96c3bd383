"""Synthetic gappy sea-surface-temperature cube: oceandl's built-in default and benchmark truth.

The truth is built from physical pieces on a regular lat/lon grid:

* a meridional gradient (warm south, cold north) with a meandering Gulf-Stream-like front whose
  meanders grow and drift downstream;
* a seasonal cycle whose amplitude grows with latitude and peaks in late summer;
* mesoscale eddies: a red-spectrum random field (2-D power ``k^-4.5``, an along-track spectrum
  near the SQG ``k^-11/3``, rolled off at ~300 km wavelengths) advected every day by a smooth
  flow (the jet along the front plus a slowly evolving eddy streamfunction) and renewed by a slow
  AR(1) process; warm anomalies also push the front poleward, which makes rings and streamers;
* a west-side continent with a ragged coast and one or two islands;
* clouds from :func:`oceandl.datasets.clouds.cloud_masks`;
* optionally (``microwave=True``) a passive-microwave SST, the classic covariate of infrared SST
  under clouds (AMSR2-like: it sees through clouds but not rain, and is coarse, noisier and missing
  near land and between the day's swaths).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import xarray as xr

from oceandl.errors import InputError
from oceandl.utils import check_memory

from .clouds import cloud_masks, spectral_noise_filter

__all__ = ["synthetic_sst"]

KM_PER_DEG = 111.32
KM_PER_DAY_PER_MS = 86.4
MEM_KM = 200.0

# Passive-microwave SST (AMSR2-like, the 6.9/10.7 GHz channels)
MW_FOOTPRINT_KM = 50.0  # full width at half maximum of the Gaussian footprint
MW_NOISE = 0.4  # degC, retrieval noise (correlated at the footprint scale)
MW_COAST_KM = 75.0  # side-lobe land contamination: no retrieval this close to land
MW_SWATH_KM = 1450.0  # AMSR2 swath width
MW_ORBITS_PER_DAY = 233 / 16  # GCOM-W: 233 orbits in a 16-day repeat cycle
MW_INCLINATION = 98.186  # degrees, GCOM-W's sun-synchronous orbit
MW_RAIN_FRACTION = 0.1  # of the cloudy ocean pixels: flagged in rain
MW_RAIN_KM = 40.0  # size of the rain cells


def _smooth_noise(rng: np.random.Generator, ny: int, nx: int, scale: float, slope: float = 4.0,
                  dy: float = 1.0, dx: float = 1.0) -> np.ndarray:
    """One unit-variance random field ``(ny, nx)`` with the spectrum of ``spectral_noise_filter``."""
    filt = spectral_noise_filter(ny, nx, scale, slope, dy, dx)
    return np.fft.irfft2(np.fft.rfft2(rng.standard_normal((ny, nx))) * filt, s=(ny, nx))


def _land_mask(rng: np.random.Generator, ny: int, nx: int, dy_km: float, dx_km: float) -> np.ndarray:
    """Land ``(ny, nx)`` bool: a west-side continent with a SW-NE ragged coast and 1-2 islands.

    The continent covers 10-15 % of the grid (its coast offset is set by a quantile), the
    islands 1-3 %.
    """
    yy, xx = np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")
    # A coast running south-west to north-east, as the North American coast in the default box.
    rough = _smooth_noise(rng, ny, nx, 80.0, 5.0, dy_km, dx_km)
    coast = xx - 0.25 * yy - 0.06 * rough
    target = rng.uniform(0.10, 0.15)
    land = coast < np.quantile(coast, target)
    # Islands: noisy discs a few tens of km across, offshore in the eastern half.
    size = max(dy_km, dx_km)
    for _ in range(int(rng.integers(1, 3))):
        cy, cx = rng.uniform(0.2, 0.8), rng.uniform(0.55, 0.9)
        radius = max(rng.uniform(40.0, 90.0), 1.3 * size)
        r = np.hypot((yy - cy) * ny * dy_km, (xx - cx) * nx * dx_km) / radius
        land |= r + 0.25 * _smooth_noise(rng, ny, nx, 20.0, 3.0, dy_km, dx_km) < 1.0
    return land


def _advect(field: np.ndarray, dj: np.ndarray, di: np.ndarray) -> np.ndarray:
    """Periodic ``field`` ``(ny, nx)`` sampled at ``(j - dj, i - di)`` (departure points, pixels).

    Bicubic interpolation (torch ``grid_sample``) on a wrap-padded copy: a semi-Lagrangian step.
    """
    ny, nx = field.shape
    pad = int(math.ceil(max(np.abs(dj).max(), np.abs(di).max()))) + 3
    padded = np.pad(field, pad, mode="wrap")
    h, w = padded.shape
    jj, ii = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float), indexing="ij")
    gx = 2.0 * (ii + pad - di) / (w - 1) - 1.0  # align_corners=True: -1 and 1 are pixel centres
    gy = 2.0 * (jj + pad - dj) / (h - 1) - 1.0
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1)[None])
    out = torch.nn.functional.grid_sample(
        torch.from_numpy(padded)[None, None], grid, mode="bicubic", padding_mode="border", align_corners=True
    )
    return out[0, 0].numpy()


def _derivative_filters(ny: int, nx: int, dy: float, dx: float) -> tuple[np.ndarray, np.ndarray]:
    """``rfft2``-space multipliers of d/dy and d/dx for a periodic grid with spacings dy, dx."""
    ky = 2j * np.pi * np.fft.fftfreq(ny, d=dy)[:, None]
    kx = 2j * np.pi * np.fft.rfftfreq(nx, d=dx)[None, :]
    return ky, kx


def _swath_edges(lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the day's tracks cross each latitude, and how far their swaths reach: both ``(2, ny, 1)``.

    A circular sun-synchronous orbit (AMSR2's: inclination ``MW_INCLINATION``, ``MW_ORBITS_PER_DAY``)
    seen from the rotating Earth. For the ascending (0) and descending (1) passes of the orbit whose
    ascending node is at longitude 0: the longitude of the nadir track at each latitude, and the
    east-west half width of the ``MW_SWATH_KM`` swath there (in degrees; wide where the track turns
    east-west, near 82 deg, where the swaths of successive orbits overlap).
    """
    spacing = 360.0 / MW_ORBITS_PER_DAY  # degrees of longitude between successive ascending nodes
    inc = math.radians(MW_INCLINATION)
    phi = np.radians(lat)[:, None]
    cos_phi = np.maximum(np.cos(phi), 1e-6)
    ascending = np.arcsin(np.clip(np.sin(phi) / math.sin(inc), -1.0, 1.0))  # argument of latitude
    nadir, half = [], []
    for u in (ascending, np.pi - ascending):
        # the orbit's longitude less the Earth's turn since the node (one spacing per orbit)
        nadir.append(np.degrees(np.arctan2(math.cos(inc) * np.sin(u), np.cos(u)) - u * spacing / 360.0))
        north = math.sin(inc) * np.cos(u) / cos_phi  # d lat / d u
        east = (math.cos(inc) / cos_phi**2 - spacing / 360.0) * cos_phi  # d lon / d u, as a distance
        slant = np.hypot(north, east) / np.maximum(np.abs(north), 1e-9)  # 1 / cos(track angle from north)
        half.append(0.5 * MW_SWATH_KM / (KM_PER_DEG * cos_phi) * slant)
    return np.stack(nadir), np.stack(half)


def _swath_gaps(day: int, node: float, edges: tuple[np.ndarray, np.ndarray], lon: np.ndarray) -> np.ndarray:
    """Where no pass of ``day`` sees, ``(ny, nx)`` bool: the diamonds between the swaths.

    ``node``: the longitude of an ascending node on day 0, in orbit spacings; the pattern moves on by
    the fractional part of ``MW_ORBITS_PER_DAY`` spacings a day (and repeats after 16 days).
    ``edges``: :func:`_swath_edges` of the latitudes. A pixel is missing where it lies outside the
    swaths of both directions: between orbits, and between their ascending and descending passes.
    The seam of the UTC day (where its first and last orbits overlap) is not modelled.
    """
    spacing = 360.0 / MW_ORBITS_PER_DAY
    nadir, half = edges
    shift = (node + day * (MW_ORBITS_PER_DAY % 1.0)) * spacing
    off = ((lon[None, None, :] - shift - nadir) / spacing + 0.5) % 1.0 - 0.5  # to the nearest track (spacings)
    return (np.abs(off) * spacing > half).all(axis=0)


def _microwave(
    ss: np.random.SeedSequence,
    truth: np.ndarray,
    land_mask: np.ndarray,
    clouds: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    dy_km: float,
    dx_km: float,
) -> np.ndarray:
    """Synthetic passive-microwave SST ``(n_time, ny, nx)`` float32 from ``truth`` (NaN on land).

    The truth seen through a Gaussian footprint (normalised convolution over the ocean, so that land
    does not bleed in), plus noise correlated at the footprint scale; NaN on land and within
    ``MW_COAST_KM`` of it, in the gaps between swaths (:func:`_swath_gaps`) and in rain: blobs of about
    ``MW_RAIN_KM`` covering ``MW_RAIN_FRACTION`` of each day's cloudy ocean pixels.
    """
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    n_time, ny, nx = truth.shape
    rng = np.random.default_rng(ss)
    node = rng.uniform(0.0, 1.0)
    edges = _swath_edges(lat)
    sd_km = MW_FOOTPRINT_KM / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    sigma = (sd_km / dy_km, sd_km / dx_km)  # pixels
    ocean = ~land_mask
    weight = gaussian_filter(ocean.astype(float), sigma)
    # the noise: white noise through the footprint (periodic: the same variance up to the edges), scaled
    # by the kernel's norm to MW_NOISE
    impulse = np.zeros((ny, nx))
    impulse[0, 0] = 1.0
    noise_gain = MW_NOISE / math.sqrt((gaussian_filter(impulse, sigma, mode="wrap") ** 2).sum())
    if land_mask.any():
        coast = distance_transform_edt(ocean, sampling=(dy_km, dx_km)) <= MW_COAST_KM
    else:
        coast = land_mask
    rain_filter = spectral_noise_filter(ny, nx, MW_RAIN_KM, 4.0, dy_km, dx_km)
    out = np.empty(truth.shape, dtype=np.float32)
    for t in range(n_time):
        seen = gaussian_filter(np.where(ocean, truth[t], 0.0), sigma) / np.maximum(weight, 1e-12)
        seen += noise_gain * gaussian_filter(rng.standard_normal((ny, nx)), sigma, mode="wrap")
        missing = coast | _swath_gaps(t, node, edges, lon)
        cells = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((ny, nx))) * rain_filter, s=(ny, nx))
        cloudy = clouds[t] & ocean
        if cloudy.any():
            missing |= cloudy & (cells >= np.quantile(cells[cloudy], 1.0 - MW_RAIN_FRACTION))
        out[t] = np.where(missing, np.nan, seen)
    return out


def synthetic_sst(
    n_time: int = 365,
    ny: int = 128,
    nx: int = 128,
    cloud_cover: float = 0.5,
    seed: int = 0,
    start: str = "2020-01-01",
    lat_range: tuple[float, float] = (25.0, 45.0),
    lon_range: tuple[float, float] = (-70.0, -50.0),
    land: bool = True,
    microwave: bool = False,
) -> xr.Dataset:
    """A realistic daily SST cube with clouds, land and the cloud-free truth.

    Parameters
    ----------
    n_time, ny, nx : int
        Number of days, latitudes and longitudes.
    cloud_cover : float
        Mean cloud cover in ``(0, 1)``; daily covers vary around it.
    seed : int
        Seed: the same arguments give identical arrays.
    start : str
        First day (anything :func:`pandas.Timestamp` reads).
    lat_range, lon_range : tuple of float
        Edges of the box in degrees north / east (cells are centred inside).
    land : bool
        Add a continent and islands (else all ocean).
    microwave : bool
        Also make ``sst_mw``, a passive-microwave SST (a covariate: it sees under clouds). It has its
        own random stream: the other variables are the same as without it.

    Returns
    -------
    xarray.Dataset
        Coordinates ``time`` (daily), ``lat`` (ascending), ``lon`` (ascending) and variables

        * ``sst`` (time, lat, lon) float32, degC: the observation, NaN under cloud and on land;
        * ``sst_true`` (time, lat, lon) float32, degC: the truth, NaN only on land;
        * ``cloud`` (time, lat, lon) int8: 1 where cloudy;
        * ``land`` (lat, lon) int8: 1 on land;
        * with ``microwave``, ``sst_mw`` (time, lat, lon) float32, degC: the truth seen through a
          50 km (FWHM) Gaussian footprint plus 0.4 degC noise correlated at that scale, NaN on land
          and within 75 km of it, in the diamond-shaped gaps between the day's ascending and
          descending swaths (AMSR2's orbit: 1450 km wide, a 16-day repeat; in the default box 18 %
          of the ocean on average, 0-26 % on a given day) and in rain (10 % of the cloudy ocean
          pixels). It has no ``standard_name``: the field to fill is still found as ``sst``.

    Raises
    ------
    InputError
        For a bad size, box, cover or start date, or a cube larger than this machine's memory.
    """
    if min(n_time, ny, nx) < 1 or ny < 4 or nx < 4:
        raise InputError(f"synthetic_sst shape ({n_time}, {ny}, {nx}): need n_time >= 1, ny, nx >= 4")
    if not 0.0 < cloud_cover < 1.0:
        raise InputError(f"cloud_cover {cloud_cover!r}: must be between 0 and 1 (exclusive)")
    lat0, lat1 = map(float, lat_range)
    lon0, lon1 = map(float, lon_range)
    if not (-90.0 <= lat0 < lat1 <= 90.0) or not lon0 < lon1 or lon1 - lon0 > 360.0:
        raise InputError(f"lat_range {lat_range} / lon_range {lon_range}: not a valid box")
    try:
        time = pd.date_range(pd.Timestamp(start), periods=n_time, freq="D")
    except (ValueError, TypeError) as exc:
        raise InputError(f"start {start!r}: not a date ({exc})") from None

    # truth and observation (float32), the cloud masks (bool, then int8), and the complex spectra
    # of the day loop (a few complex128 grids); with microwave, sst_mw (float32) and its day loop's
    # float64 grids: refused now rather than after hours of work
    check_memory(n_time * ny * nx * (14 if microwave else 10) + ny * nx * 16 * 12,
                 f"synthetic_sst shape ({n_time}, {ny}, {nx})", "ask for fewer days or a smaller grid")
    # spawn(4)'s first three children are spawn(3)'s: the microwave stream leaves the others as they were
    land_ss, ocean_ss, cloud_ss, mw_ss = np.random.SeedSequence(seed).spawn(4)
    dlat, dlon = (lat1 - lat0) / ny, (lon1 - lon0) / nx
    lat = lat0 + dlat * (np.arange(ny) + 0.5)
    lon = lon0 + dlon * (np.arange(nx) + 0.5)
    dy_km = KM_PER_DEG * dlat
    dx_km = KM_PER_DEG * dlon * max(math.cos(math.radians(0.5 * (lat0 + lat1))), 0.05)
    y_km = (lat - lat0)[:, None] * KM_PER_DEG
    x_km = np.arange(nx)[None, :] * dx_km
    width_km = nx * dx_km

    # --- Front: a Gulf-Stream-like jet 60 % of the way poleward across the box, meanders of 300-800 km that grow
    # and drift downstream (about 5-15 km/day).
    rng = np.random.default_rng(ocean_ss)
    n_modes = 3
    wavelength = rng.uniform(300.0, 800.0, n_modes)
    amp_km = rng.uniform(30.0, 70.0, n_modes)
    speed = rng.uniform(5.0, 15.0, n_modes)
    phase0 = rng.uniform(0.0, 2 * np.pi, n_modes)
    growth = 0.5 + x_km / width_km  # meanders grow eastward
    poleward = 1.0 if lat0 + lat1 >= 0 else -1.0  # +y is poleward in the north only
    y_front0 = (0.5 + 0.1 * poleward) * (lat1 - lat0) * KM_PER_DEG

    def front(t: int) -> tuple[np.ndarray, np.ndarray]:
        """Front position (km from the south edge) and its along-x slope, both ``(1, nx)``."""
        k = 2 * np.pi / wavelength[:, None, None]
        arg = k * (x_km - speed[:, None, None] * t) + phase0[:, None, None]
        pos = y_front0 + growth * (amp_km[:, None, None] * np.sin(arg)).sum(axis=0)
        slope = growth * (amp_km[:, None, None] * k * np.cos(arg)).sum(axis=0)
        slope += (amp_km[:, None, None] * np.sin(arg)).sum(axis=0) / width_km
        return pos, slope

    # --- Eddies: a red random field (unit variance), AR(1) renewal with 20-day memory, advected.
    eddy_filter = spectral_noise_filter(ny, nx, 45.0, 4.5, dy_km, dx_km)
    # Scale-dependent memory: 20 days for large eddies, a day or two at 50 km. Stirring cascades
    # variance to small scales (a passive tracer would flatten to k^-1); the fast renewal there
    # stands for the dissipation that keeps the observed steep spectrum.
    k2 = np.fft.fftfreq(ny, d=dy_km)[:, None] ** 2 + np.fft.rfftfreq(nx, d=dx_km)[None, :] ** 2
    rho = np.exp(-(1.0 + k2 * MEM_KM**2) / 20.0)
    innov = np.sqrt(1.0 - rho**2)
    # A slowly evolving eddy streamfunction (30-day memory, ~0.12 m/s rms) stirs the field.
    psi_filter = spectral_noise_filter(ny, nx, 60.0, 5.0, dy_km, dx_km)
    rho_psi = math.exp(-1.0 / 30.0)
    ddy, ddx = _derivative_filters(ny, nx, dy_km, dx_km)
    u_unit = np.fft.irfft2(-ddy * psi_filter, s=(ny, nx))  # impulse response: rms from Parseval
    v_unit = np.fft.irfft2(ddx * psi_filter, s=(ny, nx))
    psi_gain = 0.12 * KM_PER_DAY_PER_MS / math.sqrt(ny * nx * (u_unit**2 + v_unit**2).mean())
    jet_speed = 0.8 * KM_PER_DAY_PER_MS  # km/day at the jet core
    jet_width = 60.0

    def white_hat() -> np.ndarray:
        return np.fft.rfft2(rng.standard_normal((ny, nx)))

    theta_hat = white_hat() * eddy_filter
    psi_hat = white_hat() * psi_filter * psi_gain
    theta = np.fft.irfft2(theta_hat, s=(ny, nx))

    # Seasonal cycle: 3 degC at 25N to 5 degC at 45N, peaking near 23 August (day 235).
    abslat = np.abs(lat)[:, None]
    season_amp = np.clip(3.0 + 0.1 * (abslat - 25.0), 1.0, 6.0)
    peak = np.where(lat >= 0, 235.0, 235.0 + 182.6)[:, None]
    doy = time.day_of_year.to_numpy()
    background = np.minimum(25.0 - 0.5 * (abslat - 25.0), 28.5)  # 0.5 degC per degree of latitude
    front_step = 5.0  # degC across the front
    front_width = 40.0  # km

    truth = np.empty((n_time, ny, nx), dtype=np.float32)
    for t in range(n_time):
        pos, slope = front(t)
        if t > 0:
            # Semi-Lagrangian step: sample yesterday's field at the departure points.
            jet = jet_speed / np.cosh((y_km - pos) / jet_width) ** 2
            u = jet + np.fft.irfft2(-ddy * psi_hat, s=(ny, nx))
            v = jet * slope + np.fft.irfft2(ddx * psi_hat, s=(ny, nx))
            advected = _advect(theta, v / dy_km, u / dx_km)
            theta_hat = rho * np.fft.rfft2(advected) + innov * white_hat() * eddy_filter
            theta = np.fft.irfft2(theta_hat, s=(ny, nx))
            psi_hat = rho_psi * psi_hat + math.sqrt(1 - rho_psi**2) * white_hat() * psi_filter * psi_gain
        dist = poleward * (y_km - pos)  # > 0 on the cold side of the front
        # Eddy variance peaks along the jet (0.6 degC far away, 1.6 degC near it); warm anomalies
        # also push the front poleward, turning meanders into rings and streamers.
        amp = 0.6 + 1.0 * np.exp(-((dist / 250.0) ** 2))
        displaced = dist - 50.0 * theta
        frontal = -0.5 * front_step * (1.0 + np.tanh(displaced / front_width))
        seasonal = season_amp * np.cos(2 * np.pi * (doy[t] - peak) / 365.25)
        # Sea water freezes at -1.8 degC; no open ocean exceeds ~32.5 degC.
        truth[t] = np.clip(background + frontal + seasonal + amp * theta, -1.8, 32.5)

    land_mask = (
        _land_mask(np.random.default_rng(land_ss), ny, nx, dy_km, dx_km)
        if land
        else np.zeros((ny, nx), dtype=bool)
    )
    cloud_scale = max(200.0 / math.sqrt(dy_km * dx_km), 1.0)  # ~200 km cloud systems
    clouds = cloud_masks(
        n_time, ny, nx, cover=cloud_cover, seed=int(cloud_ss.generate_state(1)[0]), scale=cloud_scale
    )
    truth[:, land_mask] = np.nan
    observed = np.where(clouds, np.float32(np.nan), truth)

    coords = {
        "time": ("time", time, {"standard_name": "time", "long_name": "time", "axis": "T"}),
        "lat": ("lat", lat, {"standard_name": "latitude", "long_name": "latitude",
                             "units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", lon, {"standard_name": "longitude", "long_name": "longitude",
                             "units": "degrees_east", "axis": "X"}),
    }
    dims = ("time", "lat", "lon")
    sst_attrs = {"standard_name": "sea_surface_temperature", "units": "degree_Celsius"}
    variables = {
        # the long_name says what the field is, not where it is missing: a filled copy keeps it, and
        # "observed sea surface temperature" then named a field that is mostly the method's estimate
        "sst": (dims, observed, {**sst_attrs, "long_name": "sea surface temperature"}),
        "sst_true": (dims, truth, {**sst_attrs, "long_name": "true cloud-free sea surface temperature"}),
        "cloud": (dims, clouds.astype(np.int8), {"long_name": "cloud mask", "flag_values": np.int8([0, 1]),
                                                 "flag_meanings": "clear cloud"}),
        "land": (("lat", "lon"), land_mask.astype(np.int8), {"long_name": "land mask",
                                                             "flag_values": np.int8([0, 1]),
                                                             "flag_meanings": "ocean land"}),
    }
    summary = ("sst: the observation, NaN under cloud and on land; sst_true: the cloud-free truth; "
               "cloud, land: the masks")
    if microwave:
        # no standard_name: find_variable takes a sea_surface_temperature first, and a third one would make
        # it a choice among names rather than the field's role
        variables["sst_mw"] = (dims, _microwave(mw_ss, truth, land_mask, clouds, lat, lon, dy_km, dx_km), {
            "long_name": "passive microwave sea surface temperature (synthetic)",
            "units": "degree_Celsius",
            "comment": f"sst_true seen through a Gaussian footprint of {MW_FOOTPRINT_KM:g} km (FWHM; over the "
                       f"ocean only), plus Gaussian noise of {MW_NOISE:g} degC correlated at that scale; missing "
                       f"on land and within {MW_COAST_KM:g} km of it, in the diamond-shaped gaps between the "
                       f"day's ascending and descending swaths ({MW_SWATH_KM:g} km wide, "
                       f"{MW_ORBITS_PER_DAY:g} orbits a day, a 16-day repeat) and in rain "
                       f"({MW_RAIN_FRACTION:.0%} of the cloudy ocean pixels)",
        })
        summary += ("; sst_mw: a passive-microwave SST (coarse, noisier, missing near land, between swaths "
                    "and in rain)")
    ds = xr.Dataset(
        variables,
        coords=coords,
        attrs={
            "title": "Synthetic gappy sea surface temperature",
            "summary": summary,
            "source": "oceandl synthetic",
            "seed": int(seed),
            "cloud_cover": float(cloud_cover),
            "land": int(bool(land)),
            "Conventions": "CF-1.8",
        },
    )
    return ds
