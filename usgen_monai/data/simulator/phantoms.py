"""Procedural label maps (the anatomy and the findings) of the simulator presets.

Each preset draws layered anatomy with smooth random boundaries, inserts confounders whose number and strength
grow with ``difficulty`` (hypoechoic fat lobules, Cooper's ligaments, ducts, rib shadows and blurred, isoechoic
lesions for the breast; maternal wall, placenta, fetal body and skull shadowing for the fetal head; anisotropy,
vessels and fat lobules for MSK), and places the finding, whose geometry (size, position, count,
irregularity) can be fixed by the caller. This is also the procedural mask prior of the CSG generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .geometry import ProbeGeometry
from .tissues import PRESET_TISSUES, Tissue

__all__ = ["PhantomGrid", "Phantom", "FindingControls", "make_phantom"]


@dataclass(frozen=True)
class FindingControls:
    """Geometry of the finding that the caller may fix; ``None`` draws it from the preset's distribution.

    Args:
        size_mm: largest diameter of the finding (lesion, effusion, tear length, or the head's major axis).
        position: (lateral, depth) position of its centre as fractions (0-1) of the field of view.
        count: number of lesions (breast) or effusion pockets (MSK).
        irregularity: 0 (smooth ellipse) to 1 (very irregular, spiculated margins).
    """

    size_mm: float | None = None
    position: tuple[float, float] | None = None
    count: int | None = None
    irregularity: float | None = None

    def __post_init__(self):
        if self.size_mm is not None and self.size_mm <= 0:
            raise ValueError(f"size_mm must be positive, got size_mm={self.size_mm}.")
        if self.position is not None and (len(self.position) != 2 or not all(0 <= p <= 1 for p in self.position)):
            raise ValueError(f"position must be two fractions in [0, 1], got position={self.position}.")
        if self.count is not None and self.count < 0:
            raise ValueError(f"count must be >= 0, got count={self.count}.")
        if self.irregularity is not None and not 0 <= self.irregularity <= 1:
            raise ValueError(f"irregularity must be in [0, 1], got irregularity={self.irregularity}.")


class PhantomGrid:
    """Cartesian image grid of a probe geometry, with each pixel's depth below the transducer face and its
    fractional lateral position across the field of view (used to draw layers that follow the probe face)."""

    def __init__(self, geometry: ProbeGeometry, size: tuple[int, int]):
        self.geometry = geometry
        self.size = size
        h, w = size
        x0, x1, z0, z1 = geometry.image_extent_mm(size)
        self.dz, self.dx = (z1 - z0) / h, (x1 - x0) / w
        self.z = (z0 + (np.arange(h) + 0.5) * self.dz).astype(np.float32)
        self.x = (x0 + (np.arange(w) + 0.5) * self.dx).astype(np.float32)
        self.depth, self.lateral_index, self.inside = _grid_maps(geometry, size)

    def to_mm(self, u: float, v: float) -> tuple[float, float]:
        """(lateral, depth) fractions of the field of view -> Cartesian (x, z) in mm."""
        g = self.geometry
        if g.probe == "linear":
            return -g.width_mm / 2 + u * g.width_mm, v * g.depth_mm
        half = np.deg2rad(g.fan_angle_deg) / 2
        theta = (u - 0.5) * 2 * half
        r = g.apex_mm + v * g.depth_mm
        return float(r * np.sin(theta)), float(r * np.cos(theta))

    def box(self, cx: float, cz: float, radius: float) -> tuple[slice, slice]:
        h, w = self.size
        r0 = int(np.clip((cz - radius - self.z[0]) / self.dz, 0, h))
        r1 = int(np.clip((cz + radius - self.z[0]) / self.dz + 2, 0, h))
        c0 = int(np.clip((cx - radius - self.x[0]) / self.dx, 0, w))
        c1 = int(np.clip((cx + radius - self.x[0]) / self.dx + 2, 0, w))
        return slice(r0, r1), slice(c0, c1)

    def layer(self, boundary_mm: np.ndarray) -> np.ndarray:
        """Boolean map of pixels shallower than a boundary given per lateral position (length = columns)."""
        return self.depth < boundary_mm[self.lateral_index]


@lru_cache(maxsize=64)
def _grid_maps(geometry: ProbeGeometry, size: tuple[int, int]):
    h, w = size
    x0, x1, z0, z1 = geometry.image_extent_mm(size)
    z = z0 + (np.arange(h) + 0.5) * (z1 - z0) / h
    x = x0 + (np.arange(w) + 0.5) * (x1 - x0) / w
    if geometry.probe == "linear":
        return z[:, None].astype(np.float32), np.arange(w)[None, :], np.ones(size, bool)
    zz, xx = np.meshgrid(z, x, indexing="ij")
    half = np.deg2rad(geometry.fan_angle_deg) / 2
    radius = np.hypot(xx, zz)
    angle = np.arctan2(xx, zz)
    depth = (radius - geometry.apex_mm).astype(np.float32)
    lateral = np.clip(((angle + half) / (2 * half) * w).astype(np.int32), 0, w - 1)
    inside = (depth >= 0) & (depth <= geometry.depth_mm) & (np.abs(angle) <= half)
    return depth, lateral, inside


@dataclass
class Phantom:
    """A label map on the image grid plus what the renderer needs beyond the preset's tissue table."""

    label: np.ndarray
    tissues: tuple[Tissue, ...]
    extra_echo_db: np.ndarray | None = None
    fibre_angles_deg: dict[int, float] = field(default_factory=dict)
    soft_margins_px: dict[int, float] = field(default_factory=dict)
    geometry: dict = field(default_factory=dict)


def smooth_curve(rng: np.random.Generator, n: int, mean: float, amplitude: float, terms: int = 3) -> np.ndarray:
    """Random smooth function of the lateral position: a few low-frequency sinusoids around ``mean``."""
    u = np.linspace(0, 1, n, dtype=np.float32)
    out = np.full(n, mean, dtype=np.float32)
    for k in range(1, terms + 1):
        out += amplitude / k * rng.uniform(-1, 1) * np.sin(np.pi * k * u + rng.uniform(0, 2 * np.pi))
    return out


def blob(
    grid: PhantomGrid,
    center: tuple[float, float],
    radii: tuple[float, float],
    angle_deg: float,
    rng: np.random.Generator,
    irregularity: float = 0.0,
    spiculation: float = 0.0,
    ring: float | None = None,
):
    """An ellipse with a randomly perturbed margin, as (bounding box, boolean mask inside the box).

    Args:
        center: (x, z) in mm. radii: semi-axes (lateral, axial) in mm before rotation.
        irregularity: amplitude of the low-order margin harmonics (lobulation). spiculation: length of spicules
            relative to the radius. ring: if given, also return the band of this thickness (mm) inside the margin,
            as (box, filled mask, ring mask).
    """
    cx, cz = center
    a, b = max(radii[0], grid.dx), max(radii[1], grid.dz)
    reach = max(a, b) * (1.0 + 2 * irregularity + spiculation) + max(grid.dx, grid.dz)
    box = grid.box(cx, cz, reach)
    zz = grid.z[box[0], None] - cz
    xx = grid.x[None, box[1]] - cx
    t = np.deg2rad(angle_deg)
    u = (xx * np.cos(t) + zz * np.sin(t)) / a
    v = (-xx * np.sin(t) + zz * np.cos(t)) / b
    rho = np.sqrt(u * u + v * v)
    margin = np.ones_like(rho)
    if irregularity > 0 or spiculation > 0:
        theta = np.arctan2(v, u)
        for k in range(2, 7):
            margin += irregularity * rng.normal() / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        for _ in range(int(spiculation * 14)):
            centre = rng.uniform(-np.pi, np.pi)
            d = np.angle(np.exp(1j * (theta - centre)))
            margin += spiculation * rng.uniform(0.5, 1.5) * np.exp(-0.5 * (d / 0.07) ** 2)
    mask = rho < margin
    if ring is not None:
        return box, mask, mask & (rho > margin - ring / min(a, b))
    return box, mask


def _paint(label: np.ndarray, region, value: int, within: tuple[int, ...] | None = None) -> None:
    box, mask = region
    sub = label[box]
    if within is not None:
        mask = mask & np.isin(sub, within)
    sub[mask] = value


def _fraction(rng, low, high):
    return float(rng.uniform(low, high))


# ----------------------------------------------------------------------------------------------- breast
def breast_phantom(grid: PhantomGrid, rng: np.random.Generator, finding: str, difficulty: float, ctl: FindingControls):
    names = [t.name for t in PRESET_TISSUES["breast"]]
    L = {n: i for i, n in enumerate(names)}
    h, w = grid.size
    depth = grid.geometry.depth_mm
    label = np.full(grid.size, L["fat"], np.uint8)
    extra = np.zeros(grid.size, np.float32)

    skin = smooth_curve(rng, w, _fraction(rng, 1.4, 2.4), 0.3)
    fat_bottom = smooth_curve(rng, w, depth * _fraction(rng, 0.15, 0.3), depth * 0.06)
    gland_bottom = fat_bottom + smooth_curve(rng, w, depth * _fraction(rng, 0.35, 0.5), depth * 0.06)
    muscle_top = gland_bottom + _fraction(rng, 1.0, 2.5)
    muscle_bottom = muscle_top + smooth_curve(rng, w, depth * _fraction(rng, 0.1, 0.18), depth * 0.03)
    below_gland = ~grid.layer(gland_bottom)
    label[grid.layer(muscle_bottom) & ~grid.layer(muscle_top)] = L["muscle"]
    label[~grid.layer(fat_bottom) & ~below_gland] = L["glandular"]
    label[grid.layer(skin)] = L["skin"]

    n_conf = rng.poisson(3.0 * difficulty)
    # Cooper's ligaments: bright arcs through the subcutaneous fat, anchored on the gland surface
    for _ in range(rng.poisson(1.0 + 1.5 * difficulty)):
        cx, _ = grid.to_mm(rng.uniform(0.05, 0.95), 0)
        col = int(np.clip((cx - grid.x[0]) / grid.dx, 0, w - 1))
        cz = float(fat_bottom[col]) + _fraction(rng, 1, 4)
        box, _, arc = blob(grid, (cx, cz), (_fraction(rng, 5, 14), _fraction(rng, 3, 8)), rng.uniform(-25, 25), rng,
                           0.15, ring=0.35)
        _paint(label, (box, arc), L["ligament"], within=(L["fat"],))
    # hypoechoic fat lobules inside the gland: they look like lesions but are fat
    for _ in range(rng.poisson(1.0 + 2.5 * difficulty)):
        c = grid.to_mm(rng.uniform(0.05, 0.95), rng.uniform(0.2, 0.7))
        r = _fraction(rng, 1.5, 5.0)
        _paint(label, blob(grid, c, (r * _fraction(rng, 1, 1.8), r), rng.uniform(-30, 30), rng, 0.08), L["fat"],
               within=(L["glandular"],))
    # ducts: thin, elongated, anechoic
    for _ in range(rng.poisson(0.5 + 1.5 * difficulty)):
        c = grid.to_mm(rng.uniform(0.1, 0.9), rng.uniform(0.25, 0.6))
        _paint(label, blob(grid, c, (_fraction(rng, 2.5, 7), _fraction(rng, 0.5, 1.2)), rng.uniform(-25, 25), rng, 0.1),
               L["duct"], within=(L["glandular"], L["fat"]))
    # a rib below the pectoral muscle casts a shadow to the bottom of the image
    if rng.random() < 0.25 + 0.35 * min(difficulty, 1.5):
        col = int(rng.integers(w // 8, w - w // 8))
        cz = float(muscle_bottom[col]) + _fraction(rng, 3, 7)
        cx = float(grid.x[col])
        _paint(label, blob(grid, (cx, cz), (_fraction(rng, 5, 9), _fraction(rng, 3, 5)), rng.uniform(-10, 10), rng),
               L["rib"], within=(L["fat"], L["muscle"]))
    # gain inhomogeneity across the image (probe contact, TGC slider): a smooth lateral band
    if n_conf:
        extra += (difficulty * rng.normal(0, 1.5) * np.sin(np.linspace(0, np.pi, w) * rng.uniform(0.5, 2)))[None, :]

    tissues = list(PRESET_TISSUES["breast"])
    geometry: dict = {}
    soft: dict[int, float] = {}
    if finding != "normal":
        count = ctl.count if ctl.count is not None else int(1 + (rng.random() < 0.08))
        malignant = finding == "malignant"
        irregular = ctl.irregularity if ctl.irregularity is not None else (
            _fraction(rng, 0.35, 0.9) if malignant else _fraction(rng, 0.0, 0.2))
        size = ctl.size_mm if ctl.size_mm is not None else (
            _fraction(rng, 7, 22) if malignant else _fraction(rng, 5, 18))
        if malignant:
            contrast = _fraction(rng, -20, -8)
            atten = _fraction(rng, 1.8, 3.5)
            hetero = _fraction(rng, 2, 5)
        elif rng.random() < 0.4:  # simple cyst: anechoic, posterior enhancement
            contrast, atten, hetero = _fraction(rng, -32, -24), 0.08, 0.5
        else:  # fibroadenoma-like solid benign mass
            contrast, atten, hetero = _fraction(rng, -16, -7), _fraction(rng, 0.3, 0.6), _fraction(rng, 1, 3)
        if rng.random() < 0.25 * difficulty:  # isoechoic and heterogeneous: hard to see
            contrast = _fraction(rng, -6, -3)
            hetero += 2.0
        tissues[L["lesion"]] = tissues[L["lesion"]].with_(echo_db=contrast, attenuation=atten, heterogeneity_db=hetero)
        blur = float(difficulty * rng.uniform(0.3, 2.2))
        if blur > 0.3:
            soft[L["lesion"]] = blur
        centres = []
        for i in range(count):
            if ctl.position is not None and i == 0:
                u, v = ctl.position
            else:
                u, v = _fraction(rng, 0.2, 0.8), _fraction(rng, 0.3, 0.6)
            c = grid.to_mm(u, v)
            if malignant and rng.random() < 0.5:  # taller than wide
                radii = (size / 2 * _fraction(rng, 0.6, 0.9), size / 2)
            else:
                radii = (size / 2, size / 2 * _fraction(rng, 0.45, 0.8))
            spic = irregular * _fraction(rng, 0.1, 0.4) if malignant else 0.0
            _paint(label, blob(grid, c, radii, rng.uniform(-25, 25), rng, 0.25 * irregular, spic), L["lesion"],
                   within=tuple(L[n] for n in ("fat", "glandular", "ligament", "duct", "muscle")))
            centres.append([round(u, 4), round(v, 4)])
        geometry = {
            "size_mm": round(size, 3),
            "positions": centres,
            "count": count,
            "irregularity": round(irregular, 4),
            "contrast_db": round(contrast, 2),
            "margin_blur_px": round(blur, 3),
        }
    return Phantom(label, tuple(tissues), extra if n_conf else None, {L["muscle"]: rng.uniform(-12, 12)}, soft,
                   geometry)


# ----------------------------------------------------------------------------------------------- fetal head
def fetal_head_phantom(grid: PhantomGrid, rng, finding: str, difficulty: float, ctl: FindingControls):
    names = [t.name for t in PRESET_TISSUES["fetal_head"]]
    L = {n: i for i, n in enumerate(names)}
    h, w = grid.size
    depth = grid.geometry.depth_mm
    label = np.full(grid.size, L["amniotic_fluid"], np.uint8)
    extra = np.zeros(grid.size, np.float32)
    wall = smooth_curve(rng, w, _fraction(rng, 10, 18) + 10 * difficulty * rng.random(), 3)
    if rng.random() < 0.6:
        top = rng.random() < 0.5
        thick = _fraction(rng, 12, 28)
        if top:
            plac = grid.layer(wall + thick) & ~grid.layer(wall)
        else:
            bottom = smooth_curve(rng, w, depth * _fraction(rng, 0.8, 0.95), 6)
            plac = ~grid.layer(bottom - thick)
        label[plac] = L["placenta"]
    label[grid.layer(wall)] = L["maternal_wall"]
    # posterior uterine wall / maternal tissue at the bottom of the fan
    label[~grid.layer(smooth_curve(rng, w, depth * _fraction(rng, 0.88, 1.0), 5))] = L["maternal_wall"]

    major = ctl.size_mm if ctl.size_mm is not None else _fraction(rng, 50, 100)
    a = major / 2
    b = a * _fraction(rng, 0.74, 0.88)
    if ctl.position is not None:
        u, v = ctl.position
    else:
        spread = 0.15 + 0.12 * min(difficulty, 1.5)
        u, v = _fraction(rng, 0.5 - spread, 0.5 + spread), _fraction(rng, 0.42, 0.62)
    centre = grid.to_mm(u, v)
    angle = rng.uniform(-90, 90)
    irregular = ctl.irregularity if ctl.irregularity is not None else 0.02
    # fetal body beside the head (a lookalike ellipse), sometimes limbs
    body_dir = rng.uniform(0, 2 * np.pi)
    body_r = (_fraction(rng, 0.8, 1.2) * a, _fraction(rng, 0.6, 0.9) * a)
    body_c = (centre[0] + np.cos(body_dir) * (a + body_r[0] * 0.8), centre[1] + np.sin(body_dir) * (b + body_r[1] * 0.8))
    _paint(label, blob(grid, body_c, body_r, np.rad2deg(body_dir), rng, 0.1), L["fetal_body"],
           within=(L["amniotic_fluid"], L["placenta"]))
    for _ in range(rng.poisson(1.5 * difficulty)):
        c = grid.to_mm(rng.uniform(0.1, 0.9), rng.uniform(0.3, 0.85))
        _paint(label, blob(grid, c, (_fraction(rng, 6, 18), _fraction(rng, 2, 4)), rng.uniform(0, 180), rng, 0.1),
               L["fetal_body"], within=(L["amniotic_fluid"],))
    box, mask, skull = blob(grid, centre, (a, b), angle, rng, irregular, ring=_fraction(rng, 2.0, 3.5))
    _paint(label, (box, mask), L["brain"])
    _paint(label, (box, skull), L["skull"])
    # falx (midline echo) and choroid plexus: structure inside the brain that is not its own class
    zz = grid.z[box[0], None] - centre[1]
    xx = grid.x[None, box[1]] - centre[0]
    t = np.deg2rad(angle)
    across = -xx * np.sin(t) + zz * np.cos(t)
    falx = np.exp(-0.5 * (across / 0.6) ** 2) * 14.0
    sub = extra[box]
    sub += np.where(mask, falx, 0).astype(np.float32)
    for side in (-1, 1):
        pc = (centre[0] - side * np.sin(t) * b * 0.35, centre[1] + side * np.cos(t) * b * 0.35)
        pbox, pmask = blob(grid, pc, (a * 0.25, b * 0.1), angle, rng, 0.2)
        extra[pbox] += np.where(pmask & (label[pbox] == L["brain"]), 12.0, 0.0).astype(np.float32)
    label[~grid.inside] = L["background"]
    geometry = {
        "size_mm": round(major, 3),
        "positions": [[round(u, 4), round(v, 4)]],
        "count": 1,
        "irregularity": round(irregular, 4),
        "angle_deg": round(float(angle), 2),
        "minor_mm": round(2 * b, 3),
    }
    return Phantom(label, PRESET_TISSUES["fetal_head"], extra, {L["maternal_wall"]: rng.uniform(-8, 8)}, {}, geometry)


# ----------------------------------------------------------------------------------------------- MSK
def msk_phantom(grid: PhantomGrid, rng, finding: str, difficulty: float, ctl: FindingControls):
    names = [t.name for t in PRESET_TISSUES["msk"]]
    L = {n: i for i, n in enumerate(names)}
    h, w = grid.size
    depth = grid.geometry.depth_mm
    label = np.full(grid.size, L["muscle"], np.uint8)
    extra = np.zeros(grid.size, np.float32)
    skin = smooth_curve(rng, w, _fraction(rng, 1.0, 1.8), 0.2)
    fat = skin + smooth_curve(rng, w, _fraction(rng, 2.5, 7.0), 1.2)
    tendon_mid = smooth_curve(rng, w, depth * _fraction(rng, 0.38, 0.55), depth * 0.06)
    thickness = _fraction(rng, 2.8, 5.5)
    tendon_top, tendon_bottom = tendon_mid - thickness / 2, tendon_mid + thickness / 2
    bone = smooth_curve(rng, w, depth * _fraction(rng, 0.68, 0.85), depth * 0.07, terms=2)
    label[~grid.layer(bone)] = L["bone"]
    tendon = grid.layer(tendon_bottom) & ~grid.layer(tendon_top)
    if rng.random() < 0.35:  # myotendinous junction: the tendon starts part-way across the image
        start = int(rng.integers(w // 6, w // 2))
        if rng.random() < 0.5:
            tendon[:, :start] = False
        else:
            tendon[:, w - start:] = False
    label[tendon] = L["tendon"]
    label[grid.layer(fat)] = L["fat"]
    label[grid.layer(skin)] = L["skin"]
    # vessels and fat lobules: hypoechoic lookalikes in fat and muscle
    for _ in range(rng.poisson(1.0 + 2.0 * difficulty)):
        c = grid.to_mm(rng.uniform(0.05, 0.95), rng.uniform(0.1, 0.6))
        r = _fraction(rng, 0.8, 2.5)
        box, mask = blob(grid, c, (r * _fraction(rng, 1, 2), r), rng.uniform(-20, 20), rng, 0.05)
        mask = mask & np.isin(label[box], (L["fat"], L["muscle"]))
        extra[box] -= np.where(mask, _fraction(rng, 8, 25), 0).astype(np.float32)
    # anisotropy: a segment of the tendon loses its echo where the fibres curve away from the beam
    if rng.random() < 0.5 * difficulty:
        col = rng.integers(0, w)
        span = w * _fraction(rng, 0.08, 0.25)
        offset = np.abs(np.arange(w) - col) / span
        fall = (_fraction(rng, 6, 14) * 0.5 * (1 + np.cos(np.pi * np.clip(offset, 0, 1)))).astype(np.float32)
        extra -= np.where(label == L["tendon"], fall[None, :], 0).astype(np.float32)

    geometry: dict = {}
    if finding == "effusion":
        count = ctl.count if ctl.count is not None else 1
        size = ctl.size_mm if ctl.size_mm is not None else _fraction(rng, 6, 16)
        centres = []
        for i in range(count):
            if ctl.position is not None and i == 0:
                u, v = ctl.position
                c = grid.to_mm(u, v)
            else:
                u = _fraction(rng, 0.2, 0.8)
                col = int(u * (w - 1))
                zc = float(tendon_bottom[col] + (bone[col] - tendon_bottom[col]) * _fraction(rng, 0.2, 0.6))
                c = (float(grid.x[col]), zc)
                v = zc / depth
            irr = ctl.irregularity if ctl.irregularity is not None else _fraction(rng, 0.05, 0.3)
            _paint(label, blob(grid, c, (size / 2, size / 2 * _fraction(rng, 0.2, 0.45)), rng.uniform(-10, 10), rng,
                               irr * 0.3), L["effusion"], within=(L["muscle"], L["fat"]))
            centres.append([round(float(u), 4), round(float(v), 4)])
        geometry = {"size_mm": round(size, 3), "positions": centres, "count": count}
    elif finding == "tendon_tear":
        cols = np.flatnonzero(tendon.any(axis=0))
        if cols.size:
            if ctl.position is not None:
                col = int(np.clip(ctl.position[0] * (w - 1), cols.min(), cols.max()))
            else:
                col = int(rng.choice(cols[len(cols) // 6: max(len(cols) - len(cols) // 6, len(cols) // 6 + 1)]))
            size = ctl.size_mm if ctl.size_mm is not None else _fraction(rng, 2, 8)
            irr = ctl.irregularity if ctl.irregularity is not None else _fraction(rng, 0.1, 0.6)
            partial = rng.random() < 0.5
            zc = float(tendon_mid[col] + (thickness * 0.25 * rng.choice([-1, 1]) if partial else 0))
            c = (float(grid.x[col]), zc)
            _paint(label, blob(grid, c, (size / 2, thickness * (0.35 if partial else 0.75)), rng.uniform(-30, 30), rng,
                               0.4 * irr), L["tear"], within=(L["tendon"],))
            geometry = {
                "size_mm": round(size, 3),
                "positions": [[round(col / (w - 1), 4), round(zc / depth, 4)]],
                "count": 1,
                "irregularity": round(irr, 4),
                "full_thickness": not partial,
            }
    fibres = {L["muscle"]: rng.uniform(-25, 25), L["tendon"]: rng.uniform(-4, 4)}
    return Phantom(label, PRESET_TISSUES["msk"], extra, fibres, {}, geometry)


_PHANTOMS = {"breast": breast_phantom, "fetal_head": fetal_head_phantom, "msk": msk_phantom}


def make_phantom(
    preset: str, grid: PhantomGrid, rng: np.random.Generator, finding: str, difficulty: float, controls: FindingControls
) -> Phantom:
    """Draw the label map and per-sample tissue properties of one ``preset`` image."""
    if preset not in _PHANTOMS:
        raise ValueError(f"unknown simulator preset {preset!r}; expected one of {sorted(_PHANTOMS)}.")
    return _PHANTOMS[preset](grid, rng, finding, difficulty, controls)
