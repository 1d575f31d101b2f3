"""All-sky imager model: sites, fish-eye optics, the night sky above them and the CCD that records it.

The synthetic frames (:mod:`spacessl.synth.aurora`) are rendered the way a THEMIS ground-based all-sky imager
sees the sky: an equidistant fish-eye lens maps zenith angle θ to image radius ``r = R·θ/90°`` inside a circular
field of view with dark corners; emission layers (airglow ~95 km, aurora 100–250 km, clouds 1–6 km) are mapped
from the image to the ground through a spherical Earth; stars sit on the celestial sphere and turn about the
celestial pole with sidereal time; a silhouette of trees and buildings hides the lowest elevations; the sensor adds
vignetting, bias, hot pixels, shot and read noise and clips at 14 bits.

Conventions: azimuth is geographic, 0 = north, 90° = east; "magnetic" coordinates are ground coordinates in km
rotated by the site's magnetic declination (x = magnetic east, y = magnetic north). Radiance is in "sky units"
(the zenith airglow is about 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

EARTH_RADIUS_KM = 6371.0
FULL_SCALE_DN = 16383  #: 14-bit saturation level of the camera
REFERENCE_SIZE = 256  #: native THEMIS frame side; star fluxes are defined per pixel at this size


@dataclass(frozen=True)
class Site:
    """A ground station: THEMIS GBO site code, geographic position and magnetic declination (east positive)."""

    code: str
    lat_deg: float
    lon_deg: float
    declination_deg: float


#: THEMIS ground-based observatory all-sky imager sites (approximate positions, declinations around 2010).
SITES: tuple[Site, ...] = (
    Site("atha", 54.60, -113.64, 15.5), Site("chbg", 49.81, -74.42, -14.5), Site("ekat", 64.73, -110.61, 19.0),
    Site("fsim", 61.76, -121.23, 21.0), Site("fsmi", 60.03, -111.93, 17.5), Site("fykn", 66.56, -145.21, 22.0),
    Site("gako", 62.41, -145.15, 20.5), Site("gbay", 53.32, -60.42, -20.0), Site("gill", 56.35, -94.71, 1.5),
    Site("inuv", 68.41, -133.77, 24.0), Site("kapu", 49.39, -82.42, -9.0), Site("kian", 66.97, -160.44, 16.0),
    Site("kuuj", 55.28, -77.75, -13.0), Site("mcgr", 62.95, -155.60, 17.0), Site("nrsq", 61.16, -45.44, -28.0),
    Site("pgeo", 53.82, -122.84, 18.5), Site("pina", 50.26, -95.87, 2.0), Site("rank", 62.82, -92.11, 0.5),
    Site("snkq", 56.54, -79.23, -13.5), Site("talo", 69.54, -93.55, -1.0), Site("tpas", 53.99, -101.07, 6.5),
    Site("whit", 61.01, -135.22, 21.5), Site("yknf", 62.52, -114.31, 19.5),
)
SITE_INDEX: dict[str, int] = {s.code: i for i, s in enumerate(SITES)}


# --------------------------------------------------------------------------------------------- geometry


def ground_distance_km(theta: np.ndarray, height_km: float) -> np.ndarray:
    """Great-circle ground distance (km) from the camera to where a ray at zenith angle θ (rad) meets a
    thin layer at ``height_km`` (spherical Earth). θ is clipped just below the horizon."""
    elev = np.pi / 2 - np.minimum(theta, np.deg2rad(89.5))
    ratio = EARTH_RADIUS_KM / (EARTH_RADIUS_KM + height_km)
    alpha = np.arccos(np.clip(ratio * np.cos(elev), -1.0, 1.0)) - elev  # central angle
    if height_km < 20.0:  # low layers (clouds): flat Earth is fine and keeps far distances bounded
        alpha = np.minimum(alpha, 60.0 * height_km / EARTH_RADIUS_KM)
    return (EARTH_RADIUS_KM * alpha).astype(np.float32)


def van_rhijn(theta: np.ndarray, height_km: float) -> np.ndarray:
    """Path-length enhancement of a thin emitting layer seen at zenith angle θ (1 at the zenith)."""
    s = EARTH_RADIUS_KM / (EARTH_RADIUS_KM + height_km) * np.sin(np.minimum(theta, np.pi / 2))
    return (1.0 / np.sqrt(1.0 - s * s)).astype(np.float32)


def airmass(theta: np.ndarray) -> np.ndarray:
    """Relative optical air mass (Rozenberg 1966), finite at the horizon (~40)."""
    c = np.cos(np.minimum(theta, np.pi / 2))
    return (1.0 / (c + 0.025 * np.exp(-11.0 * c))).astype(np.float32)


def altaz_to_radec(alt: np.ndarray, az: np.ndarray, lat_rad: float, lst_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal (alt, az; rad) → equatorial (ra, dec; rad) at local sidereal time ``lst_rad``."""
    sin_dec = np.sin(lat_rad) * np.sin(alt) + np.cos(lat_rad) * np.cos(alt) * np.cos(az)
    dec = np.arcsin(np.clip(sin_dec, -1.0, 1.0))
    ha = np.arctan2(-np.sin(az) * np.cos(alt),
                    np.cos(lat_rad) * np.sin(alt) - np.sin(lat_rad) * np.cos(alt) * np.cos(az))
    return (lst_rad - ha) % (2 * np.pi), dec


def radec_to_altaz(ra: np.ndarray, dec: np.ndarray, lat_rad: float, lst_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Equatorial (ra, dec; rad) → horizontal (alt, az; rad, az from north through east)."""
    ha = lst_rad - ra
    sin_alt = np.sin(dec) * np.sin(lat_rad) + np.cos(dec) * np.cos(lat_rad) * np.cos(ha)
    alt = np.arcsin(np.clip(sin_alt, -1.0, 1.0))
    az = np.arctan2(-np.cos(dec) * np.sin(ha),
                    np.sin(dec) * np.cos(lat_rad) - np.cos(dec) * np.sin(lat_rad) * np.cos(ha))
    return alt, az % (2 * np.pi)


def local_sidereal_time_rad(time_ns: int, lon_deg: float) -> float:
    """Local mean sidereal time (rad) at UTC ``time_ns`` (ns since 1970) and east longitude ``lon_deg``."""
    jd = time_ns / 86_400e9 + 2440587.5
    gmst_deg = 280.46061837 + 360.98564736629 * (jd - 2451545.0)
    return math.radians((gmst_deg + lon_deg) % 360.0)


# --------------------------------------------------------------------------------------------- camera


@dataclass
class Camera:
    """One imager at one frame size: pixel ↔ sky mapping, horizon silhouette and sensor constants.

    Arrays are (S, S) float32 unless noted. ``theta``/``az`` give the zenith angle and azimuth (rad) each pixel
    looks at (θ > π/2 outside the field of view).
    """

    site: Site
    size: int
    cx: float
    cy: float
    radius_px: float
    rotation_rad: float
    theta: np.ndarray
    az: np.ndarray
    fov: np.ndarray  #: soft field-of-view mask in [0, 1]
    ground: np.ndarray  #: True where the horizon silhouette (trees, buildings, hills) hides the sky
    vignette: np.ndarray
    bias_dn: float
    read_noise_dn: float
    e_per_dn: float
    hot_index: np.ndarray  #: (H,) flat pixel indices of hot pixels
    hot_ratio: np.ndarray  #: (H,) hot-pixel dark signal relative to the frame's mean sky signal
    _layers: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)  # LRU
    _polar: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def pixel_rad(self) -> float:
        """Angular size of one pixel along the radius (rad)."""
        return (np.pi / 2) / self.radius_px

    def layer(self, height_km: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Magnetic ground coordinates (x east, y north; km) where each pixel's ray meets a layer at
        ``height_km``, and the radial ground footprint of one pixel there (km). Cached per height."""
        key = round(float(height_km) * 2) / 2 if height_km >= 20 else round(float(height_km) * 10) / 10
        if key not in self._layers:
            if len(self._layers) >= 4:  # small LRU: an episode uses one or two layers
                self._layers.pop(next(iter(self._layers)))
            d = ground_distance_km(self.theta, key)
            d2 = ground_distance_km(np.minimum(self.theta + self.pixel_rad, np.pi / 2), key)
            az_m = self.az - np.deg2rad(self.site.declination_deg)
            x = (d * np.sin(az_m)).astype(np.float32)
            y = (d * np.cos(az_m)).astype(np.float32)
            self._layers[key] = (x, y, np.maximum(d2 - d, 0.05).astype(np.float32))
        self._layers[key] = self._layers.pop(key)  # most recently used last
        return self._layers[key]

    @property
    def polar_shape(self) -> tuple[int, int]:
        """(radii, angles) of the polar resampling grid: one-pixel radial steps out to the horizon."""
        return int(math.ceil(self.radius_px)) + 2, int(math.ceil(2 * np.pi * self.radius_px))

    @property
    def to_polar(self) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear gather (indices, weights) from the image to the polar grid."""
        if "to_polar" not in self._polar:
            n_r, n_a = self.polar_shape
            rr, aa = np.meshgrid(np.arange(n_r, dtype=np.float64), np.arange(n_a) * (2 * np.pi / n_a), indexing="ij")
            col, row = self.cx + rr * np.sin(aa), self.cy - rr * np.cos(aa)
            idx, w = _corners(row.ravel(), col.ravel(), self.size, self.size, wrap_cols=False)
            self._polar["to_polar"] = (idx, w)
        return self._polar["to_polar"]

    @property
    def from_polar(self) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear gather (indices, weights) from the polar grid back to the image."""
        if "from_polar" not in self._polar:
            n_r, n_a = self.polar_shape
            yy, xx = np.mgrid[0:self.size, 0:self.size].astype(np.float64)
            dx, dy = xx - self.cx, self.cy - yy
            r = np.hypot(dx, dy)
            a = (np.arctan2(dx, dy) % (2 * np.pi)) * (n_a / (2 * np.pi))
            idx, w = _corners(r.ravel(), a.ravel(), n_r, n_a, wrap_cols=True)
            self._polar["from_polar"] = (idx, w)
        return self._polar["from_polar"]

    def project(self, alt: np.ndarray, az: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sky direction (alt, az; rad) → pixel coordinates (px column, py row), fractional."""
        r = self.radius_px * (np.pi / 2 - alt) / (np.pi / 2)
        psi = self.rotation_rad - az
        return self.cx + r * np.sin(psi), self.cy - r * np.cos(psi)


def make_camera(site: Site, size: int, seed: int) -> Camera:
    """The camera at ``site`` for frames of ``size`` px; its optics and sensor are fixed by (seed, site)."""
    rng = np.random.default_rng([seed, 0xCA, SITE_INDEX[site.code]])
    rel_radius = rng.uniform(0.445, 0.49)
    off = rng.uniform(-0.012, 0.012, size=2)
    rotation = rng.uniform(-np.pi, np.pi)
    s = size
    cx, cy = (s - 1) / 2 + off[0] * s, (s - 1) / 2 + off[1] * s
    radius = rel_radius * s
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    dx, dy = xx - cx, cy - yy
    r = np.hypot(dx, dy)
    theta = (r / radius * (np.pi / 2)).astype(np.float32)
    psi = np.arctan2(dx, dy)
    az = ((rotation - psi) % (2 * np.pi)).astype(np.float32)
    edge = max(0.6, 0.006 * s)
    fov = np.clip((radius - r) / edge + 0.5, 0.0, 1.0).astype(np.float32)
    # horizon silhouette: rolling hills plus a few trees / masts, elevation (deg) as a function of azimuth
    az_grid = np.linspace(0, 2 * np.pi, 721)
    mask = np.full(az_grid.shape, rng.uniform(0.5, 3.0))
    for k in range(1, 7):
        mask += rng.normal(0, 1.6 / k) * np.cos(k * az_grid + rng.uniform(0, 2 * np.pi))
    for _ in range(rng.integers(2, 9)):
        centre, width, height = rng.uniform(0, 2 * np.pi), rng.uniform(0.01, 0.12), rng.uniform(3, 14)
        dist = np.angle(np.exp(1j * (az_grid - centre)))
        mask = np.maximum(mask, height * np.clip(1 - np.abs(dist) / width, 0, 1) ** 0.6)
    mask = np.clip(mask, 0, 20)
    elev_deg = 90.0 - np.rad2deg(theta)
    ground = elev_deg < np.interp(az, az_grid, mask)
    vig_strength = rng.uniform(0.25, 0.55)
    vignette = (1.0 - vig_strength * np.clip(theta / (np.pi / 2), 0, 1) ** 2.2).astype(np.float32)
    n_hot = int(rng.integers(2, 9) * (s / 128) ** 2) + 1
    hot_index = rng.integers(0, s * s, size=n_hot)
    hot_ratio = np.exp(rng.uniform(np.log(0.5), np.log(60.0), size=n_hot)).astype(np.float32)
    return Camera(site=site, size=s, cx=cx, cy=cy, radius_px=radius, rotation_rad=rotation, theta=theta, az=az,
                  fov=fov, ground=ground, vignette=vignette, bias_dn=float(rng.uniform(150, 900)),
                  read_noise_dn=float(rng.uniform(3.0, 9.0)), e_per_dn=float(rng.uniform(0.8, 2.5)),
                  hot_index=hot_index, hot_ratio=hot_ratio)


def zenith_angle_at(distance_km: np.ndarray, height_km: float) -> np.ndarray:
    """Inverse of :func:`ground_distance_km`: the zenith angle (rad) under which a point of a layer at
    ``height_km`` lies ``distance_km`` away along the ground (values above π/2 are beyond the horizon)."""
    rho = EARTH_RADIUS_KM / (EARTH_RADIUS_KM + height_km)
    alpha = distance_km / EARTH_RADIUS_KM
    elev = np.arctan2(np.cos(alpha) - rho, np.sin(alpha))
    return (np.pi / 2 - elev).astype(np.float32)


def _bilinear(img: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Gather ``Σ_c img.flat[idx[c]] · w[c]`` over the 4 bilinear corners c."""
    flat = img.reshape(-1)
    return flat[idx[0]] * w[0] + flat[idx[1]] * w[1] + flat[idx[2]] * w[2] + flat[idx[3]] * w[3]


def _corners(r: np.ndarray, c: np.ndarray, n_rows: int, n_cols: int, *, wrap_rows: bool = False,
             wrap_cols: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (4, P) and weights (4, P) of bilinear interpolation at fractional (row, col); outside the
    grid the edge is repeated, or the grid wraps around (periodic) along the axes asked."""
    r0, c0 = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
    fr, fc = (r - r0).astype(np.float32), (c - c0).astype(np.float32)
    def pair(i0: np.ndarray, n: int, wrap: bool) -> list[np.ndarray]:
        return [i0 % n, (i0 + 1) % n] if wrap else [np.clip(i0, 0, n - 1), np.clip(i0 + 1, 0, n - 1)]

    rows, cols = pair(r0, n_rows, wrap_rows), pair(c0, n_cols, wrap_cols)
    idx = np.stack([rows[0] * n_cols + cols[0], rows[0] * n_cols + cols[1], rows[1] * n_cols + cols[0],
                    rows[1] * n_cols + cols[1]])
    w = np.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc])
    return idx, w


class RadialLift:
    """Turns an emission image rendered at the layer ``base_km`` into the image of a vertically extended,
    field-aligned (vertical) structure: the same horizontal pattern repeated at heights ``base_km + offsets_km``
    with ``weights``, so a tall curtain or ray appears stretched towards the zenith as in real all-sky images.

    Lifting only moves emission along the image radius, so it is done on a polar grid (resample, a small
    (R, R) matrix along the radius, resample back). Emission that would come from beyond the base layer's
    horizon contributes nothing.
    """

    def __init__(self, cam: Camera, base_km: float, offsets_km: np.ndarray, weights: np.ndarray):
        self.cam = cam
        n_r = cam.polar_shape[0]
        theta = np.arange(n_r) / cam.radius_px * (np.pi / 2)
        m = np.zeros((n_r, n_r), dtype=np.float32)
        rows = np.arange(n_r)
        for off, w in zip(offsets_km, weights):
            theta0 = zenith_angle_at(ground_distance_km(theta, base_km + float(off)), base_km)
            r0 = theta0 / (np.pi / 2) * cam.radius_px
            ok = (theta0 < np.pi / 2) & (r0 < n_r - 1)
            i0 = np.floor(r0[ok]).astype(np.int64)
            f = (r0[ok] - i0).astype(np.float32)
            np.add.at(m, (rows[ok], i0), w * (1 - f))
            np.add.at(m, (rows[ok], i0 + 1), w * f)
        self.matrix = sparse.csr_matrix(m)  # ≤ 2 entries per height per row; sparse product stays single-threaded

    def __call__(self, img: np.ndarray) -> np.ndarray:
        cam = self.cam
        polar = _bilinear(img, *cam.to_polar).reshape(cam.polar_shape)
        lifted = np.asarray(self.matrix @ polar, dtype=np.float32)
        return _bilinear(lifted, *cam.from_polar).reshape(img.shape)


# --------------------------------------------------------------------------------------------- smooth random fields


class Field2D:
    """A smooth random field on the ground: a sum of ``n_modes`` drifting plane waves with a power-law spectrum.

    ``f(x, y, t) = Σ a_k cos(k_k · (p - v t) + ω_k t + φ_k)``, roughly unit variance; x, y in km, t in s.
    Modes shorter than the pixel footprint (passed to :meth:`__call__`) are attenuated so that fine texture
    near the horizon fades instead of aliasing.
    """

    def __init__(self, rng: np.random.Generator, n_modes: int, min_wavelength_km: float, max_wavelength_km: float,
                 slope: float = 1.0, velocity_km_s: tuple[float, float] = (0.0, 0.0), omega_rad_s: float = 0.0,
                 anisotropy: float = 1.0):
        lam = np.exp(rng.uniform(np.log(min_wavelength_km), np.log(max_wavelength_km), n_modes))
        ang = rng.uniform(0, 2 * np.pi, n_modes)
        k = 2 * np.pi / lam
        self.kx = (k * np.cos(ang)).astype(np.float32)
        self.ky = (k * np.sin(ang) * anisotropy).astype(np.float32)
        amp = lam ** slope
        self.amp = (amp / np.sqrt(0.5 * np.sum(amp ** 2))).astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, n_modes)
        self.omega = rng.normal(0, omega_rad_s, n_modes) if omega_rad_s else np.zeros(n_modes)
        self.vx, self.vy = velocity_km_s

    def __call__(self, x: np.ndarray, y: np.ndarray, t: float = 0.0, footprint: np.ndarray | None = None,
                 blur: float = 0.6) -> np.ndarray:
        out = np.zeros(np.shape(x), dtype=np.float32)
        x0, y0 = self.vx * t, self.vy * t
        for kx, ky, a, ph, om in zip(self.kx, self.ky, self.amp, self.phase, self.omega):
            c = ph + om * t - kx * x0 - ky * y0
            wave = np.cos(kx * x + ky * y + np.float32(c))
            if footprint is not None:
                kf = float(np.hypot(kx, ky)) * blur
                wave *= np.exp(-0.5 * (kf * footprint) ** 2)
            out += a * wave
        return out


class Field1D:
    """A smooth random function of one coordinate (km): ``Σ a_k cos(k_k (x - v t) + φ_k)``, unit variance."""

    def __init__(self, rng: np.random.Generator, n_modes: int, min_wavelength_km: float, max_wavelength_km: float,
                 slope: float = 1.0, velocity_km_s: float = 0.0):
        lam = np.exp(rng.uniform(np.log(min_wavelength_km), np.log(max_wavelength_km), n_modes))
        self.k = (2 * np.pi / lam * rng.choice([-1.0, 1.0], n_modes)).astype(np.float32)
        amp = lam ** slope
        self.amp = (amp / np.sqrt(0.5 * np.sum(amp ** 2))).astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, n_modes)
        self.v = velocity_km_s

    def __call__(self, x: np.ndarray, t: float = 0.0, footprint: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros(np.shape(x), dtype=np.float32)
        for k, a, ph in zip(self.k, self.amp, self.phase):
            wave = np.cos(k * x + np.float32(ph - k * self.v * t))
            if footprint is not None:
                wave *= np.exp(-0.5 * (0.6 * float(abs(k)) * footprint) ** 2)
            out += a * wave
        return out


class NoiseTexture:
    """Periodic fractal noise (spectrum ∝ |k|^-slope) on a ``texels``² tile spanning ``period_km``, sampled at
    ground positions with bilinear interpolation from a mip pyramid (2×2 box-filtered levels) chosen by the pixel
    footprint, so texture finer than a pixel fades instead of aliasing. Two independent tiles are blended with a
    slowly turning angle, so the pattern morphs while it drifts with ``velocity_km_s``; unit variance.
    """

    def __init__(self, rng: np.random.Generator, period_km: float, slope: float = 1.8, texels: int = 128,
                 velocity_km_s: tuple[float, float] = (0.0, 0.0), morph_rad_s: float = 0.0):
        n = texels
        k = np.hypot(*np.meshgrid(np.fft.fftfreq(n) * n, np.fft.fftfreq(n) * n, indexing="ij"))
        amp = np.where(k > 0, np.maximum(k, 1.0) ** (-slope), 0.0)
        tiles = []
        for _ in range(2):
            spec = amp * np.exp(2j * np.pi * rng.uniform(size=(n, n))) * rng.rayleigh(size=(n, n))
            tile = np.fft.ifft2(spec).real
            tiles.append(tile / tile.std())
        level = np.stack(tiles).astype(np.float32)  # (2, n, n)
        self.levels = [level]
        while level.shape[1] > 4:
            m = level.shape[1] // 2
            level = level.reshape(2, m, 2, m, 2).mean(axis=(2, 4))
            self.levels.append(level)
        self.texel_km = period_km / n
        self.vx, self.vy = velocity_km_s
        self.morph = morph_rad_s
        self.phase = rng.uniform(0, 2 * np.pi)

    def __call__(self, x: np.ndarray, y: np.ndarray, t: float = 0.0, footprint: np.ndarray | None = None) -> np.ndarray:
        u = (x - self.vx * t) / self.texel_km
        v = (y - self.vy * t) / self.texel_km
        a = self.phase + self.morph * t
        ca, sa = np.float32(math.cos(a)), np.float32(math.sin(a))
        top = len(self.levels) - 1
        if footprint is None:
            lvl = np.zeros(np.shape(x), dtype=np.float32)
        else:
            lvl = np.clip(np.log2(np.maximum(footprint / self.texel_km, 1.0)), 0, top - 1e-3).astype(np.float32)
        lo = np.floor(lvl).astype(np.int64)
        out = np.empty(np.shape(x), dtype=np.float32)
        for lev in np.unique(lo):
            sel = lo == lev
            frac = lvl[sel] - lev
            acc = np.zeros(int(sel.sum()), dtype=np.float32)
            for li, wl in ((lev, 1 - frac), (lev + 1, frac)):
                tile = ca * self.levels[li][0] + sa * self.levels[li][1]
                m, scale = tile.shape[0], 2.0 ** li
                # texel centres of level li sit at (i + 0.5) · 2^li - 0.5 in level-0 texels
                idx, w = _corners((u[sel] + 0.5) / scale - 0.5, (v[sel] + 0.5) / scale - 0.5, m, m,
                                  wrap_rows=True, wrap_cols=True)
                acc += wl * _bilinear(tile, idx, w)
            out[sel] = acc
        return out


# --------------------------------------------------------------------------------------------- stars


@dataclass(frozen=True)
class StarCatalogue:
    """Random stars on the celestial sphere (shared by every camera of a data set): ra, dec (rad), V magnitude."""

    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray


def make_star_catalogue(seed: int, n_stars: int = 2500, faintest_mag: float = 5.5) -> StarCatalogue:
    """Stars uniform on the sphere with the observed counts N(<m) ∝ 10^(0.5 m) down to ``faintest_mag``."""
    rng = np.random.default_rng([seed, 0x57A])
    u = rng.uniform(10 ** (-0.5 * (faintest_mag + 1.5)), 1.0, n_stars)
    mag = faintest_mag + 2.0 * np.log10(u)
    ra = rng.uniform(0, 2 * np.pi, n_stars)
    dec = np.arcsin(rng.uniform(-1, 1, n_stars))
    return StarCatalogue(ra=ra, dec=dec, mag=mag)


def splat_points(img: np.ndarray, px: np.ndarray, py: np.ndarray, flux: np.ndarray, sigma_px: float) -> None:
    """Add point sources of total ``flux`` with a Gaussian PSF to ``img`` (S, S) in place.

    ``px``/``py`` are fractional column/row positions in pixel-centre coordinates (pixel i is centred on i).
    """
    s = img.shape[0]
    rad = max(2, int(math.ceil(2.5 * sigma_px)))
    offs = np.arange(-rad, rad + 1)
    ix0, iy0 = np.rint(px).astype(np.int64), np.rint(py).astype(np.int64)
    gx = ix0[:, None] + offs[None, :]  # (N, K)
    gy = iy0[:, None] + offs[None, :]
    wx = np.exp(-((gx - px[:, None]) ** 2) / (2 * sigma_px ** 2))  # separable Gaussian PSF
    wy = np.exp(-((gy - py[:, None]) ** 2) / (2 * sigma_px ** 2))
    norm = flux / (wx.sum(axis=1) * wy.sum(axis=1) + 1e-12)
    w = (wy * norm[:, None])[:, :, None] * wx[:, None, :]  # (N, K, K)
    idx = gy[:, :, None] * s + gx[:, None, :]
    ok = ((gx >= 0) & (gx < s))[:, None, :] & ((gy >= 0) & (gy < s))[:, :, None]
    img += np.bincount(idx[ok], weights=w[ok], minlength=s * s).reshape(s, s).astype(img.dtype)


def render_stars(cam: Camera, cat: StarCatalogue, time_ns: int, rng: np.random.Generator,
                 flux_scale: float, psf_px: float) -> np.ndarray:
    """Stars above the horizon at ``time_ns`` (extinction and scintillation applied), (S, S) float32, sky units."""
    lst = local_sidereal_time_rad(time_ns, cam.site.lon_deg)
    alt, az = radec_to_altaz(cat.ra, cat.dec, math.radians(cam.site.lat_deg), lst)
    up = alt > np.deg2rad(1.0)
    alt, az, mag = alt[up], az[up], cat.mag[up]
    px, py = cam.project(alt, az)
    theta = np.pi / 2 - alt
    flux = flux_scale * 10 ** (-0.4 * mag) * np.exp(-0.25 * (airmass(theta) - 1.0))
    flux = flux * (1.0 + rng.normal(0, 0.04 + 0.12 * (theta / (np.pi / 2)) ** 4, flux.shape)).clip(0.3, 2.0)
    img = np.zeros((cam.size, cam.size), dtype=np.float32)
    splat_points(img, px, py, flux, psf_px)
    return img


def galactic_latitude(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Galactic latitude b (rad) of equatorial positions (J2000 galactic pole)."""
    ra_p, dec_p = np.deg2rad(192.859508), np.deg2rad(27.128336)
    sb = np.sin(dec) * np.sin(dec_p) + np.cos(dec) * np.cos(dec_p) * np.cos(ra - ra_p)
    return np.arcsin(np.clip(sb, -1, 1))


# --------------------------------------------------------------------------------------------- sensor


def expose(cam: Camera, radiance: np.ndarray, gain: float, mean_level_dn: float,
           rng: np.random.Generator) -> np.ndarray:
    """Record a radiance image (S, S; sky units, vignetting not yet applied) as a 14-bit frame (S, S) uint16.

    ``gain`` converts sky units to DN; hot pixels add ``hot_ratio · mean_level_dn``; shot noise follows the
    electron count (``e_per_dn``), then read noise and bias; values clip to [0, 16383].
    """
    sig = radiance * cam.vignette * cam.fov * np.float32(gain)
    sig = sig.reshape(-1)
    np.add.at(sig, cam.hot_index, cam.hot_ratio * np.float32(mean_level_dn))
    sig = np.maximum(sig, 0.0)
    noise = rng.standard_normal(sig.shape, dtype=np.float32)
    sigma = np.sqrt(sig / np.float32(cam.e_per_dn) + np.float32(cam.read_noise_dn) ** 2)
    dn = sig + sigma * noise + np.float32(cam.bias_dn)
    return np.clip(np.rint(dn), 0, FULL_SCALE_DN).astype(np.uint16).reshape(cam.size, cam.size)
