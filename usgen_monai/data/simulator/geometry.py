"""Probe geometry: where each beam sample lies in the displayed image, and scan conversion between the two grids.

The physics runs on the *beam grid* (rows = samples along a beam, i.e. depth; columns = beams), the phantom and
the output live on the *image grid* (rows = depth, columns = lateral position). For a linear probe both grids
coincide. For a curvilinear (sector) probe the beams fan out from a virtual apex above the image, and the image
is the bounding box of the fan; pixels outside the fan are zero in the output and marked by the fan mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["ProbeGeometry", "ScanConverter"]


@dataclass(frozen=True)
class ProbeGeometry:
    """Geometry of one acquisition.

    Args:
        probe: ``"linear"`` or ``"curvilinear"``.
        depth_mm: imaging depth (length of a beam).
        width_mm: aperture width of a linear probe (ignored for curvilinear).
        fan_angle_deg: opening angle of a curvilinear probe.
        apex_mm: distance from the virtual apex to the transducer face of a curvilinear probe.
    """

    probe: str = "linear"
    depth_mm: float = 40.0
    width_mm: float = 40.0
    fan_angle_deg: float = 70.0
    apex_mm: float = 40.0

    def __post_init__(self):
        if self.probe not in ("linear", "curvilinear"):
            raise ValueError(f"probe must be 'linear' or 'curvilinear', got probe={self.probe!r}.")
        if self.depth_mm <= 0 or self.width_mm <= 0:
            raise ValueError(f"depth_mm and width_mm must be positive, got {self.depth_mm}, {self.width_mm}.")

    def image_extent_mm(self, size: tuple[int, int] | None = None) -> tuple[float, float, float, float]:
        """(x_min, x_max, z_min, z_max) of the image grid in mm; z is measured from the apex for curvilinear.

        A linear image spans the aperture and the depth exactly. A curvilinear image is the fan's bounding box,
        widened (or deepened) to the aspect ratio of ``size`` so its pixels are square, as on a scanner; the fan is
        centred laterally and starts at the top.
        """
        if self.probe == "linear":
            return -self.width_mm / 2, self.width_mm / 2, 0.0, self.depth_mm
        half = np.deg2rad(self.fan_angle_deg) / 2
        outer = self.apex_mm + self.depth_mm
        x_half, z0, z1 = outer * np.sin(half), self.apex_mm * np.cos(half), outer
        if size is not None:
            spacing = max((z1 - z0) / size[0], 2 * x_half / size[1])
            x_half = spacing * size[1] / 2
            z1 = z0 + spacing * size[0]
        return float(-x_half), float(x_half), float(z0), float(z1)

    def pixel_spacing_mm(self, size: tuple[int, int]) -> tuple[float, float]:
        """(row, column) spacing of the image grid in mm."""
        x0, x1, z0, z1 = self.image_extent_mm(size)
        return float((z1 - z0) / size[0]), float((x1 - x0) / size[1])


@lru_cache(maxsize=64)
def _sector_maps(geometry: ProbeGeometry, size: tuple[int, int]):
    h, w = size
    x0, x1, z0, z1 = geometry.image_extent_mm(size)
    half = np.deg2rad(geometry.fan_angle_deg) / 2
    # image pixel centres -> (radius, angle) -> fractional beam-grid indices
    zs = z0 + (np.arange(h) + 0.5) * (z1 - z0) / h
    xs = x0 + (np.arange(w) + 0.5) * (x1 - x0) / w
    zz, xx = np.meshgrid(zs, xs, indexing="ij")
    radius = np.hypot(xx, zz)
    angle = np.arctan2(xx, zz)
    row = (radius - geometry.apex_mm) / geometry.depth_mm * h - 0.5
    col = (angle + half) / (2 * half) * w - 0.5
    fan = (row >= -0.5) & (row <= h - 0.5) & (col >= -0.5) & (col <= w - 0.5)
    row = np.clip(row, 0, h - 1)
    col = np.clip(col, 0, w - 1)
    r0 = np.minimum(np.floor(row).astype(np.int64), h - 2)
    c0 = np.minimum(np.floor(col).astype(np.int64), w - 2)
    fr = (row - r0).astype(np.float32)
    fc = (col - c0).astype(np.float32)
    idx = np.flatnonzero(fan).astype(np.int32)
    base = (r0 * w + c0).ravel()[idx].astype(np.int32)
    weights = np.stack(
        [
            ((1 - fr) * (1 - fc)).ravel()[idx],
            ((1 - fr) * fc).ravel()[idx],
            (fr * (1 - fc)).ravel()[idx],
            (fr * fc).ravel()[idx],
        ]
    )
    offsets = np.array([0, 1, w, w + 1], dtype=np.int32)
    # beam sample -> nearest image pixel (to carry the phantom's label map onto the beam grid)
    rr = geometry.apex_mm + (np.arange(h) + 0.5) * geometry.depth_mm / h
    th = -half + (np.arange(w) + 0.5) * 2 * half / w
    brr, bth = np.meshgrid(rr, th, indexing="ij")
    bz = brr * np.cos(bth)
    bx = brr * np.sin(bth)
    irow = np.clip(((bz - z0) / (z1 - z0) * h).astype(np.int64), 0, h - 1)
    icol = np.clip(((bx - x0) / (x1 - x0) * w).astype(np.int64), 0, w - 1)
    to_beam = (irow * w + icol).ravel().astype(np.int32)
    return fan, idx, base, offsets, weights, to_beam


class ScanConverter:
    """Maps arrays between the beam grid and the image grid of a :class:`ProbeGeometry` (both ``size``)."""

    def __init__(self, geometry: ProbeGeometry, size: tuple[int, int]):
        self.geometry = geometry
        self.size = (int(size[0]), int(size[1]))
        self.linear = geometry.probe == "linear"
        if not self.linear:
            self._fan, self._idx, self._base, self._offsets, self._weights, self._to_beam = _sector_maps(
                geometry, self.size
            )

    @property
    def fan_mask(self) -> np.ndarray:
        """Boolean image-grid mask of the field of view (all True for a linear probe)."""
        if self.linear:
            return np.ones(self.size, dtype=bool)
        return self._fan

    def image_to_beam(self, image: np.ndarray) -> np.ndarray:
        """Nearest-neighbour resampling of an image-grid array (a label map) onto the beam grid."""
        if self.linear:
            return image
        return image.ravel()[self._to_beam].reshape(self.size)

    def beam_to_image(self, beam: np.ndarray) -> np.ndarray:
        """Bilinear scan conversion of a beam-grid array to the image grid; zero outside the fan."""
        if self.linear:
            return beam
        flat = beam.ravel()
        out = np.zeros(self.size[0] * self.size[1], dtype=beam.dtype)
        acc = self._weights[0] * flat[self._base + self._offsets[0]]
        for k in range(1, 4):
            acc += self._weights[k] * flat[self._base + self._offsets[k]]
        out[self._idx] = acc
        return out.reshape(self.size)
