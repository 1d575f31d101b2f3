"""Labelled synthetic all-sky auroral frames: the six OATH classes in THEMIS-like camera-night sequences.

Classes (OATH, Clausen & Nickisch 2018): ``arc`` (one or several east–west arcs of varying latitude, width and
curvature), ``diffuse`` (smooth, partly pulsating patches), ``discrete`` (folded, curled, rayed bright forms),
``cloudy`` (textured clouds hiding the stars), ``moon`` (bright disc with glare, ghost and blooming), ``clear``
(stars and airglow only). With ``rare_fraction > 0`` a seventh class ``rare`` is planted: a single frame with a
bright meteor streak inside an otherwise ordinary arc / diffuse / clear sequence.

Frames are rendered by :mod:`spacessl.synth.allsky` (fish-eye optics, star field turning with sidereal time,
airglow with a random gradient, horizon silhouette, vignetting, hot pixels, shot and read noise, 14-bit DN).
They come in *episodes*: runs of consecutive frames 3 s apart of one class whose forms evolve slowly, so
neighbouring frames are near-duplicates as in a real archive; a few episodes make one camera-night.

Hardness: every episode picks its own exposure (an auto-exposure target for the mean sky level, log-uniform over
more than a decade) and camera (bias, hot pixels, noise), whatever its class, so neither the mean brightness nor
the peak of a frame tells the classes apart; shape and texture do.

The output is a pure function of (n, size, seed, rare_fraction): blocks can be generated in any size and from any
starting block (``start_block``) with identical frames, which makes the archive writer resumable.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import ndtri

from spacessl.errors import SpacesslError
from spacessl.synth.allsky import (FULL_SCALE_DN, REFERENCE_SIZE, SITES, Camera, Field1D, Field2D, NoiseTexture,
                                   RadialLift, StarCatalogue, airmass, altaz_to_radec, expose, galactic_latitude,
                                   local_sidereal_time_rad, make_camera, make_star_catalogue, render_stars,
                                   splat_points, van_rhijn)

CLASSES: tuple[str, ...] = ("arc", "diffuse", "discrete", "cloudy", "moon", "clear")
RARE = "rare"
CADENCE_S = 3.0  #: THEMIS ASI frame cadence
_RARE_HOSTS = ("arc", "diffuse", "clear")
#: least brightness of an aurora form relative to the airglow behind it (99.5th percentile over the sky)
_MIN_CONTRAST = {"arc": 2.0, "discrete": 3.0, "diffuse": 0.6}
_NIGHT_HALF_S = 5 * 3600


def label_names(rare_fraction: float = 0.0) -> list[str]:
    """Class names in label order; ``rare`` is appended only when rare samples are planted."""
    return [*CLASSES, RARE] if rare_fraction > 0 else list(CLASSES)


@dataclass(frozen=True)
class Episode:
    """A run of consecutive frames (3 s apart) of one class at one camera.

    ``rare_at`` lists frame offsets within the episode that carry a planted rare event (labelled ``rare``).
    """

    index: int
    night: int
    kind: str
    site: str
    start_ns: int
    n_frames: int
    first: int  #: global index of the episode's first frame
    rare_at: tuple[int, ...] = ()


def plan_aurora(n: int, seed: int = 0, *, rare_fraction: float = 0.0, episode_frames: tuple[int, int] = (4, 16),
                episodes_per_night: tuple[int, int] = (2, 8)) -> list[Episode]:
    """The episodes making up ``n`` frames: balanced classes (±1 frame), shuffled into camera-nights.

    Memory is O(number of episodes). Raises SpacesslError for a bad ``n``, ``rare_fraction`` or range.
    """
    if n < 0:
        raise SpacesslError(f"n must be >= 0, got {n}")
    if not 0.0 <= rare_fraction < 0.5:
        raise SpacesslError(f"rare_fraction must be in [0, 0.5), got {rare_fraction}")
    lo, hi = episode_frames
    if not 1 <= lo <= hi:
        raise SpacesslError(f"episode_frames must be (min, max) with 1 <= min <= max, got {episode_frames}")
    rng = np.random.default_rng([seed, 0xA0])
    n_rare = 0 if rare_fraction == 0 else max(1, int(round(rare_fraction * n)))
    n_rare = min(n_rare, n // 2)
    n_main = n - n_rare
    budget = [n_main // len(CLASSES) + (1 if c < n_main % len(CLASSES) else 0) for c in range(len(CLASSES))]
    pieces: list[tuple[str, int]] = []
    for c, total in enumerate(budget):
        left = total
        while left > 0:
            k = min(left, int(rng.integers(lo, hi + 1)))
            pieces.append((CLASSES[c], k))
            left -= k
    order = rng.permutation(len(pieces))
    pieces = [pieces[i] for i in order]
    rare: dict[int, list[int]] = {}
    hosts = [i for i, (kind, k) in enumerate(pieces) if kind in _RARE_HOSTS and k >= 2]
    if n_rare and not hosts:
        hosts = list(range(len(pieces)))
    for _ in range(n_rare):
        i = int(hosts[rng.integers(len(hosts))])
        rare.setdefault(i, []).append(int(rng.integers(1, pieces[i][1] + 1)))
    episodes: list[Episode] = []
    first, night, i = 0, 0, 0
    while i < len(pieces):
        m = int(rng.integers(episodes_per_night[0], episodes_per_night[1] + 1))
        site = SITES[int(rng.integers(len(SITES)))]
        year = int(rng.integers(2008, 2014))
        day = np.datetime64(f"{year}-10-15") + np.timedelta64(int(rng.integers(0, 165)), "D")
        midnight_ns = int(day.astype("datetime64[ns]").astype(np.int64)) + int(-site.lon_deg / 15 * 3600e9)
        chunk = pieces[i:i + m]
        starts = np.sort(rng.uniform(-_NIGHT_HALF_S, _NIGHT_HALF_S - 600, len(chunk)))
        t_prev = -np.inf
        for j, (kind, k) in enumerate(chunk):
            inserts = tuple(sorted(rare.get(i + j, [])))
            # rare frames are extra frames: offset p means "after the p-th ordinary frame"
            inserts = tuple(p + q for q, p in enumerate(inserts))
            total = k + len(inserts)
            t0 = max(float(starts[j]), t_prev + 60.0)
            episodes.append(Episode(index=len(episodes), night=night, kind=kind, site=site.code,
                                    start_ns=midnight_ns + int(round(t0 * 1e9)), n_frames=total, first=first,
                                    rare_at=inserts))
            t_prev = t0 + total * CADENCE_S
            first += total
        i += len(chunk)
        night += 1
    return episodes


# --------------------------------------------------------------------------------------------- aurora forms


def _band(u: np.ndarray, width: np.ndarray | float, footprint: np.ndarray) -> np.ndarray:
    """Gaussian cross-section of a thin sheet at signed distance ``u`` (km), widened to the pixel footprint so
    that thin arcs stay continuous near the horizon (integrated brightness is kept)."""
    w_eff = np.sqrt(np.float32(width) ** 2 + (0.7 * footprint) ** 2)
    return (np.float32(width) / w_eff) * np.exp(-0.5 * (u / w_eff) ** 2)


def _profile(base_km: float, top_km: float, scale_km: float, n: int = 10) -> tuple[float, np.ndarray, np.ndarray]:
    """Vertical emission profile: ``n`` heights from ``base_km`` up to ``base_km + top_km`` with exponentially
    decaying weights (scale height ``scale_km``) that sum to 1."""
    offsets = np.linspace(0.0, top_km, n)
    w = np.exp(-offsets / scale_km)
    return base_km, offsets, w / w.sum()


class _Arc:
    """Quiet east–west arcs: thin, tall sheets along a gently curved, slowly drifting line."""

    def __init__(self, rng: np.random.Generator):
        n_arcs = int(rng.choice([1, 2, 3], p=[0.5, 0.32, 0.18]))
        y_c = rng.uniform(-300, 300)
        spacing = rng.uniform(35, 170)
        self.tilt = np.deg2rad(rng.uniform(-12, 12))
        curv = rng.uniform(-150, 150) / 600.0 ** 2  # arcs of one system are roughly parallel
        self.arcs = []
        for a in range(n_arcs):
            taper = None
            if rng.random() < 0.3:  # the arc ends: kept on the side x < end (sign +1) or x > end (sign -1)
                sign = rng.choice([-1.0, 1.0])
                taper = (-sign * rng.uniform(-450, -100), rng.uniform(80, 300), sign)
            self.arcs.append(dict(
                y0=y_c + (a - (n_arcs - 1) / 2) * spacing + rng.normal(0, 15), width=rng.uniform(4, 16),
                amp=rng.uniform(5.0, 25.0) * (0.55 ** a if rng.random() < 0.5 else 1.0),
                curv=curv + rng.normal(0, 15) / 600.0 ** 2,
                wave=Field1D(rng, 5, 150, 900, velocity_km_s=rng.uniform(-2, 2)), wave_amp=rng.uniform(0, 15),
                along=Field1D(rng, 6, 80, 500), along_amp=rng.uniform(0.1, 0.4), taper=taper))
        self.vy = rng.uniform(-0.5, 0.5)
        self.profile = _profile(rng.uniform(100, 115), rng.uniform(60, 120), rng.uniform(15, 35))
        self.glow = None
        if rng.random() < 0.15:  # weak diffuse glow equatorward of the arcs
            self.glow = (y_c - rng.uniform(100, 300), rng.uniform(150, 350), rng.uniform(0.1, 0.3))

    def __call__(self, cam: Camera, t: float) -> np.ndarray:
        x0, y0, fp = cam.layer(self.profile[0])
        ct, st = np.float32(math.cos(self.tilt)), np.float32(math.sin(self.tilt))
        x, y = ct * x0 + st * y0, -st * x0 + ct * y0
        out = np.zeros((cam.size, cam.size), dtype=np.float32)
        for arc in self.arcs:
            u = y - np.float32(arc["y0"] + self.vy * t) - np.float32(arc["curv"]) * x * x
            u -= np.float32(arc["wave_amp"]) * arc["wave"](x, t)
            val = _band(u, arc["width"], fp) * (1 + np.float32(arc["along_amp"]) * arc["along"](x))
            if arc["taper"] is not None:
                xe, length, sgn = arc["taper"]
                val /= 1 + np.exp(np.clip(np.float32(sgn) * (x - np.float32(xe)) / np.float32(length / 4), -50, 50))
            out += np.float32(arc["amp"]) * val
        if self.glow is not None:
            yc, half, amp = self.glow
            z = (np.abs(y - np.float32(yc)) - np.float32(half)) / 60.0
            out += np.float32(amp) / (1 + np.exp(np.clip(z, -50, 50)))
        return out


class _Discrete:
    """Active discrete aurora: bright sheets folded and curled by a double domain warp, with moving rays that,
    field-aligned and tall, appear as streaks converging towards the magnetic zenith."""

    def __init__(self, rng: np.random.Generator):
        self.forms = []
        for _ in range(int(rng.choice([1, 2], p=[0.6, 0.4]))):
            self.forms.append(dict(
                y0=rng.uniform(-250, 250), width=rng.uniform(4, 12), amp=rng.uniform(15, 60),
                curv=rng.uniform(-200, 200) / 600.0 ** 2,
                w1=Field2D(rng, 7, 140, 550, velocity_km_s=tuple(rng.uniform(-1.5, 1.5, 2)), omega_rad_s=0.02),
                w2=Field2D(rng, 7, 140, 550, velocity_km_s=tuple(rng.uniform(-1.5, 1.5, 2)), omega_rad_s=0.02),
                a1=rng.uniform(100, 220), a2=rng.uniform(80, 200),
                rays=Field1D(rng, 12, 6, 45, slope=0.3, velocity_km_s=rng.uniform(-3, 3)),
                ray_amp=rng.uniform(0.6, 1.0), along=Field1D(rng, 6, 60, 400), along_amp=rng.uniform(0.3, 0.6)))
        self.profile = _profile(rng.uniform(95, 110), rng.uniform(120, 250), rng.uniform(35, 90))

    def __call__(self, cam: Camera, t: float) -> np.ndarray:
        x, y, fp = cam.layer(self.profile[0])
        out = np.zeros((cam.size, cam.size), dtype=np.float32)
        for f in self.forms:
            xw = x + np.float32(f["a2"]) * f["w2"](x, y, t)
            yw = y + np.float32(f["a1"]) * f["w1"](x, y, t)
            u = yw - np.float32(f["y0"]) - np.float32(f["curv"]) * xw * xw
            rays = np.maximum(0.0, 1 + np.float32(f["ray_amp"]) * f["rays"](xw, t, footprint=fp)) ** 1.5
            along = np.maximum(0.2, 1 + np.float32(f["along_amp"]) * f["along"](xw))
            out += np.float32(f["amp"]) * _band(u, f["width"], fp) * rays * along
        return out


class _Diffuse:
    """Diffuse aurora: a broad, smooth, patchy glow in a wide east–west band; patches may pulsate (4–20 s)."""

    def __init__(self, rng: np.random.Generator):
        self.y_c = rng.uniform(-400, 300)
        self.half = rng.uniform(250, 800) if rng.random() < 0.7 else 3000.0
        self.edge = rng.uniform(80, 250)
        self.amp = rng.uniform(0.8, 4.0)
        self.tex = NoiseTexture(rng, rng.uniform(600, 1500), slope=rng.uniform(1.6, 2.2),
                                velocity_km_s=tuple(rng.uniform(-0.8, 0.8, 2)), morph_rad_s=0.01)
        self.tex_amp = rng.uniform(0.5, 1.0)
        self.pulsating = rng.random() < 0.6
        self.patch = NoiseTexture(rng, rng.uniform(400, 900), slope=1.6, velocity_km_s=tuple(rng.uniform(-0.5, 0.5, 2)))
        self.phase = Field2D(rng, 4, 100, 400)
        self.p_amp = rng.uniform(0.3, 1.3)
        self.period = rng.uniform(4, 20)
        self.profile = _profile(rng.uniform(105, 120), 30.0, 15.0, n=4)

    def __call__(self, cam: Camera, t: float) -> np.ndarray:
        x, y, fp = cam.layer(self.profile[0])
        z = (np.abs(y - np.float32(self.y_c)) - np.float32(self.half)) / np.float32(self.edge)
        env = 1.0 / (1 + np.exp(np.clip(z, -50, 50)))
        val = np.exp(np.float32(self.tex_amp) * self.tex(x, y, t, footprint=fp))
        if self.pulsating:
            mask = 1.0 / (1 + np.exp(-(self.patch(x, y, t, footprint=fp) - 0.6) / 0.2))
            beat = 0.5 + 0.5 * np.sin(np.float32(2 * np.pi * t / self.period) + 2.5 * self.phase(x, y))
            val += np.float32(self.p_amp) * mask * beat
        return np.float32(self.amp) * env * val


# --------------------------------------------------------------------------------------------- the scene


class _Scene:
    """Everything one episode needs to render its frames: camera, sky, class-specific forms, exposure."""

    def __init__(self, ep: Episode, cam: Camera, stars: StarCatalogue, seed: int):
        self.ep, self.cam, self.stars, self.seed = ep, cam, stars, seed
        rng = np.random.default_rng([seed, 0xE9, ep.index])
        s = cam.size
        self.psf_px = rng.uniform(0.55, 0.85) * max(0.5, s / REFERENCE_SIZE) ** 0.5
        # a star's flux spread over bigger pixels: relative to the sky per pixel it scales as size²
        self.star_flux = math.exp(rng.uniform(math.log(30), math.log(120))) * (s / REFERENCE_SIZE) ** 2
        # airglow: van Rhijn brightening, random gradient, extinction near the horizon
        grad_dir, grad = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.8)
        theta, az = cam.theta, cam.az
        ext = np.exp(-rng.uniform(0.1, 0.35) * (airmass(theta) - 1.0)).astype(np.float32)
        self.ext = ext
        self.airglow = (van_rhijn(theta, 95.0) * (1 + grad * np.sin(np.minimum(theta, np.pi / 2))
                                                  * np.cos(az - grad_dir))).astype(np.float32)
        self.milky_way = rng.uniform(0.0, 0.35)
        # light pollution: glow low over one or two towns
        alt = np.pi / 2 - np.minimum(theta, np.pi / 2)
        city = np.zeros_like(theta)
        for _ in range(int(rng.choice([0, 1, 2], p=[0.35, 0.45, 0.2]))):
            daz = np.angle(np.exp(1j * (az - rng.uniform(0, 2 * np.pi))))
            city += (rng.uniform(0.3, 2.5) * np.exp(-alt / np.deg2rad(rng.uniform(4, 15)))
                     * np.exp(-0.5 * (daz / np.deg2rad(rng.uniform(10, 45))) ** 2)).astype(np.float32)
        self.city = city
        self.ground_level = rng.uniform(0.03, 0.3)
        self.alt = alt.astype(np.float32)
        self.kind = ep.kind
        self.aurora = None
        self.aurora_scale = 1.0
        if ep.kind == "arc":
            self.aurora = _Arc(rng)
        elif ep.kind == "discrete":
            self.aurora = _Discrete(rng)
        elif ep.kind == "diffuse":
            self.aurora = _Diffuse(rng)
        elif ep.kind == "cloudy":
            self._init_clouds(rng)
        elif ep.kind == "moon":
            self._init_moon(rng)
        # exposure: auto-exposure target for the mean sky level, independent of the class
        self.target_dn = math.exp(rng.uniform(math.log(120), math.log(4500)))
        self.gain: float | None = None
        self.lift = RadialLift(cam, *self.aurora.profile) if self.aurora is not None else None
        self.inside = (cam.theta <= np.pi / 2).astype(np.float32)
        if ep.kind in _MIN_CONTRAST:  # a form hidden behind the horizon would mislabel the frame
            sky = (self.inside > 0) & ~cam.ground
            img = self.lift(self.aurora(cam, 0.0) * self.inside)
            contrast = np.percentile(img[sky] / self.airglow[sky], 99.5)
            if contrast < _MIN_CONTRAST[ep.kind]:
                self.aurora_scale = _MIN_CONTRAST[ep.kind] / max(contrast, 1e-3)
        self.mw_img = None
        if self.milky_way > 0.02:  # the Milky Way turns by < 0.3° within an episode: drawn once
            lst = local_sidereal_time_rad(ep.start_ns, cam.site.lon_deg)
            ra, dec = altaz_to_radec(self.alt, cam.az, math.radians(cam.site.lat_deg), lst)
            b = galactic_latitude(ra, dec)
            self.mw_img = (self.milky_way * np.exp(-0.5 * (b / 0.14) ** 2)).astype(np.float32)

    # ---- clouds
    def _init_clouds(self, rng: np.random.Generator) -> None:
        self.cloud_h = rng.uniform(1.0, 6.0)
        sc = self.cloud_h / 3.0
        wind = tuple(rng.uniform(-0.02, 0.02, 2))  # km/s
        self.cloud = NoiseTexture(rng, rng.uniform(80, 200) * sc, slope=rng.uniform(1.6, 2.1), texels=256,
                                  velocity_km_s=wind, morph_rad_s=0.01)
        self.cloud_fine = NoiseTexture(rng, rng.uniform(4, 10) * sc, slope=1.4, velocity_km_s=wind, morph_rad_s=0.02)
        coverage = rng.uniform(0.5, 1.0)
        self.cloud_thr = float(ndtri(1 - coverage)) if coverage < 0.999 else -5.0
        self.tau_max = rng.uniform(1.5, 4.0)
        # lit clouds (town light, moonlight, aurora from below) or dark ones that block the airglow
        self.cloud_lum = math.exp(rng.uniform(math.log(1.8), math.log(5.0)) if rng.random() < 0.7
                                  else rng.uniform(math.log(0.1), math.log(0.5)))
        if rng.random() < 0.4:  # aurora glimpsed through the clouds
            self.aurora = _Diffuse(rng) if rng.random() < 0.5 else _Arc(rng)
            self.aurora_scale = rng.uniform(0.2, 0.6)

    def _clouds(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        x, y, fp = self.cam.layer(self.cloud_h)
        fine = self.cloud_fine(x, y, t, footprint=fp)
        f = self.cloud(x, y, t, footprint=fp) + 0.3 * fine
        tau = self.tau_max * 0.35 * np.logaddexp(0.0, (f - np.float32(self.cloud_thr)) / 0.35)
        tau *= np.minimum(airmass(self.cam.theta), 8.0) ** 0.6
        trans = np.exp(-tau).astype(np.float32)
        lum = self.cloud_lum * (1 - trans) * (1 + 0.25 * fine) * (0.6 + 0.4 * self.airglow + 1.5 * self.city)
        return trans, lum.astype(np.float32)

    # ---- moon
    def _init_moon(self, rng: np.random.Generator) -> None:
        self.moon_alt = np.deg2rad(rng.uniform(4, 65))
        self.moon_az = rng.uniform(0, 2 * np.pi)
        self.moon_level = math.exp(rng.uniform(math.log(300), math.log(5000)))
        self.moon_disc_deg = rng.uniform(3.0, 6.0)
        self.moon_glare_deg = rng.uniform(5.0, 14.0)
        self.moon_glare = rng.uniform(0.04, 0.12)
        self.moon_sky = rng.uniform(1.0, 6.0)
        self.moon_ghost = rng.uniform(0.0003, 0.002) if rng.random() < 0.5 else 0.0
        self.moon_bloom = rng.uniform(3, 12) if rng.random() < 0.25 else 0.0
        self.moon_img: np.ndarray | None = None

    def _moon(self) -> np.ndarray:
        if self.moon_img is not None:  # the moon moves < 0.2° within an episode
            return self.moon_img
        cam = self.cam
        cos_g = (np.sin(self.alt) * math.sin(self.moon_alt)
                 + np.cos(self.alt) * math.cos(self.moon_alt) * np.cos(cam.az - self.moon_az))
        g = np.rad2deg(np.arccos(np.clip(cos_g, -1, 1))).astype(np.float32)
        disc = 1.0 / (1 + np.exp(np.minimum((g - np.float32(self.moon_disc_deg)) / 0.3, 60.0)))
        glare = (self.moon_glare / (1 + (g / np.float32(self.moon_glare_deg)) ** 2) ** 1.4
                 + 0.1 * self.moon_glare * np.exp(-g / 25.0))
        out = np.float32(self.moon_level) * (disc + glare)
        # scattered moonlight: brighter towards the moon and the horizon
        out += np.float32(self.moon_sky) * (0.6 + 0.4 * cos_g ** 2) * np.minimum(airmass(cam.theta), 10.0) ** 0.5
        if self.moon_ghost:
            cos_h = (np.sin(self.alt) * math.sin(self.moon_alt)
                     + np.cos(self.alt) * math.cos(self.moon_alt) * np.cos(cam.az - self.moon_az - np.pi))
            gh = np.rad2deg(np.arccos(np.clip(cos_h, -1, 1)))
            out += np.float32(self.moon_level * self.moon_ghost) * np.exp(-0.5 * (gh / 4.0) ** 2).astype(np.float32)
        if self.moon_bloom:
            px, py = cam.project(np.array([self.moon_alt]), np.array([self.moon_az]))
            cols = np.arange(cam.size, dtype=np.float32)
            colw = np.exp(-0.5 * ((cols - np.float32(px[0])) / 0.6) ** 2)
            roww = np.exp(-np.abs(cols - np.float32(py[0])) / np.float32(self.moon_bloom * cam.size / 128))
            out += np.float32(self.moon_level * 0.3) * roww[:, None] * colw[None, :]
        self.moon_img = out.astype(np.float32)
        return self.moon_img

    # ---- meteor (rare)
    def _meteor(self, j: int) -> np.ndarray:
        cam = self.cam
        rng = np.random.default_rng([self.seed, 0x3E7, self.ep.index, j])
        alt0, az0 = np.deg2rad(rng.uniform(25, 85)), rng.uniform(0, 2 * np.pi)
        heading, length = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(25, 70))
        p0 = np.array([math.cos(alt0) * math.sin(az0), math.cos(alt0) * math.cos(az0), math.sin(alt0)])
        east = np.array([math.cos(az0), -math.sin(az0), 0.0])
        north = np.cross(p0, east)
        d = math.cos(heading) * north + math.sin(heading) * east
        n_pts = int(8 * cam.size * length)
        s = np.linspace(0, length, n_pts)
        pts = np.cos(s)[:, None] * p0[None] + np.sin(s)[:, None] * d[None]
        alt = np.arcsin(np.clip(pts[:, 2], -1, 1))
        az = np.arctan2(pts[:, 0], pts[:, 1]) % (2 * np.pi)
        up = alt > np.deg2rad(2)
        px, py = cam.project(alt[up], az[up])
        frac = s[up] / length
        profile = np.sin(np.pi * frac) ** 0.7 * (1 + 2.5 * np.exp(-0.5 * ((frac - rng.uniform(0.4, 0.9)) / 0.06) ** 2))
        level = math.exp(rng.uniform(math.log(0.8), math.log(3))) * cam.size / n_pts * length * 6
        img = np.zeros((cam.size, cam.size), dtype=np.float32)
        splat_points(img, px, py, level * profile, 0.7 * max(1.0, cam.size / 128))
        splat_points(img, px, py, 0.15 * level * profile, 1.2 * max(1.0, cam.size / 128))
        return img

    # ---- a frame
    def radiance(self, j: int) -> np.ndarray:
        """Radiance (S, S) float32 of frame ``j`` of the episode, before vignetting and the sensor."""
        cam, t = self.cam, j * CADENCE_S
        time_ns = self.ep.start_ns + int(round(t * 1e9))
        rng = np.random.default_rng([self.seed, 0xF0, self.ep.index, j])
        above = self.airglow.copy()
        if self.mw_img is not None:
            above += self.mw_img
        if self.aurora is not None:
            base = self.aurora(cam, t) * self.inside
            above += np.float32(self.aurora_scale) * self.lift(base)
        if j in self.ep.rare_at:
            above = above + self._meteor(j)
        above *= self.ext
        stars = render_stars(cam, self.stars, time_ns, rng, self.star_flux, self.psf_px)
        below = self.city.copy()
        if self.kind == "cloudy":
            trans, lum = self._clouds(t)
            above *= trans
            stars *= trans
            below += lum
        elif self.kind == "moon":
            below += self._moon()
        diffuse = above + below
        diffuse[cam.ground] = np.float32(self.ground_level)
        stars[cam.ground] = 0.0
        diffuse = gaussian_filter(diffuse, self.psf_px, mode="nearest")
        return diffuse + stars

    def frame(self, j: int) -> np.ndarray:
        """Frame ``j`` of the episode as recorded: (S, S) uint16 DN."""
        rad = self.radiance(j)
        if self.gain is None:
            rad0 = rad if j == 0 else self.radiance(0)
            level = float(np.sum(rad0 * self.cam.vignette * self.cam.fov) / np.sum(self.cam.fov))
            self.gain = self.target_dn / max(level, 1e-6)
        rng = np.random.default_rng([self.seed, 0xD0, self.ep.index, j])
        gain = self.gain * (1 + rng.normal(0, 0.005))
        return expose(self.cam, rad, gain, self.target_dn, rng)


# --------------------------------------------------------------------------------------------- public API


class _Renderer:
    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self.stars = make_star_catalogue(seed)
        self.cameras: dict[str, Camera] = {}

    def scene(self, ep: Episode) -> _Scene:
        cam = self.cameras.get(ep.site)
        if cam is None:
            site = next(s for s in SITES if s.code == ep.site)
            cam = self.cameras[ep.site] = make_camera(site, self.size, self.seed)
        return _Scene(ep, cam, self.stars, self.seed)


def generate_aurora(n: int, size: int = 128, seed: int = 0, *, block_size: int = 256, rare_fraction: float = 0.0,
                    start_block: int = 0, episode_frames: tuple[int, int] = (4, 16)
                    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray | list[str]]]]:
    """Stream ``n`` labelled all-sky frames in blocks of ``block_size`` (the last may be shorter).

    Yields ``(frames, meta)``: frames (k, 1, size, size) uint16 in DN (14-bit, saturating at 16383); meta has
    ``time_ns`` (k,) int64 UTC, ``source`` list of camera ids (THEMIS site codes), ``origin`` list of str
    (``synthetic``), ``label`` (k,) int16 indexing :func:`label_names`, ``night`` (k,) int32 camera-night id and
    ``episode`` (k,) int32 sequence id. Frames depend only on (n, size, seed, rare_fraction, episode_frames):
    any block size or ``start_block`` gives the same frames. Only one block is held in memory.
    """
    if size < 16:
        raise SpacesslError(f"size must be >= 16 px, got {size}")
    if block_size < 1:
        raise SpacesslError(f"block_size must be >= 1, got {block_size}")
    episodes = plan_aurora(n, seed, rare_fraction=rare_fraction, episode_frames=episode_frames)
    names = label_names(rare_fraction)
    renderer = _Renderer(size, seed)
    start = start_block * block_size
    ep_i = 0
    for b0 in range(start, n, block_size):
        b1 = min(n, b0 + block_size)
        k = b1 - b0
        frames = np.empty((k, 1, size, size), dtype=np.uint16)
        time_ns = np.empty(k, dtype=np.int64)
        label = np.empty(k, dtype=np.int16)
        night = np.empty(k, dtype=np.int32)
        episode = np.empty(k, dtype=np.int32)
        source: list[str] = []
        while episodes[ep_i].first + episodes[ep_i].n_frames <= b0:
            ep_i += 1
        i, e = b0, ep_i
        while i < b1:
            ep = episodes[e]
            sc = renderer.scene(ep)
            for j in range(i - ep.first, min(ep.n_frames, b1 - ep.first)):
                r = ep.first + j - b0
                frames[r, 0] = sc.frame(j)
                time_ns[r] = ep.start_ns + int(round(j * CADENCE_S * 1e9))
                label[r] = names.index(RARE) if j in ep.rare_at else CLASSES.index(ep.kind)
                night[r], episode[r] = ep.night, ep.index
                source.append(ep.site)
            i = ep.first + ep.n_frames
            e += 1
        yield frames, {"time_ns": time_ns, "source": source, "origin": ["synthetic"] * k, "label": label,
                       "night": night, "episode": episode}


def write_aurora_archive(out: str, n: int = 5000, size: int = 128, seed: int = 0, *, chunk_size: int = 256,
                         shard_chunks: int = 16, rare_fraction: float = 0.0, overwrite: bool = False,
                         progress: bool = True, episode_frames: tuple[int, int] = (4, 16)) -> str:
    """Write ``n`` synthetic labelled frames (1, size, size) uint16 to an image archive at ``out``; returns ``out``.

    One generator block (= one chunk) is one writer input, so a killed run resumes where it stopped and the
    result is identical to an uninterrupted run. Refuses to replace a complete archive unless ``overwrite``.
    """
    from tqdm.auto import tqdm

    from spacessl.archive import ArchiveWriter

    names = label_names(rare_fraction)
    attrs = {"synthetic": "aurora", "synthetic_seed": int(seed), "rare_fraction": float(rare_fraction),
             "cadence_s": CADENCE_S, "episode_frames": [int(v) for v in episode_frames],
             "max_value": float(FULL_SCALE_DN),  # 14-bit full scale: what Preprocess maps to 1.0
             "fov_radius": 1.0}  # the sky lies inside the inscribed circle; Preprocess zeroes the corners
    with ArchiveWriter(out, modality="image", sample_shape=(1, size, size), dtype="uint16", units="DN",
                       channels=["gray"], label_names=names, chunk_size=chunk_size, shard_chunks=shard_chunks,
                       extra_meta={"night": "int32", "episode": "int32"}, attrs=attrs, overwrite=overwrite) as w:
        start = w.resume_from
        bar = tqdm(total=n, initial=min(n, start * chunk_size), unit="frame", desc="synth aurora",
                   disable=not progress)
        blocks = generate_aurora(n, size, seed, block_size=chunk_size, rare_fraction=rare_fraction, start_block=start,
                                 episode_frames=episode_frames)
        for b, (frames, meta) in enumerate(blocks, start=start):
            w.append(frames, input_index=b, **meta)
            bar.update(len(frames))
        bar.close()
    return out
