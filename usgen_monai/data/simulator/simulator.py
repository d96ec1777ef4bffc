"""The B-mode ultrasound simulator: (image, label map, context) triples from a preset, deterministic by seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import ProbeGeometry, ScanConverter
from .phantoms import FindingControls, Phantom, PhantomGrid, make_phantom
from .physics import Acquisition, render_bmode
from .tissues import PRESET_FINDINGS, PRESET_TARGETS, PRESET_TISSUES, UNIFIED_CLASSES, preset_classes

__all__ = ["UltrasoundSample", "UltrasoundSimulator", "PRESETS", "sample_seed"]

PRESETS = tuple(PRESET_TISSUES)

# Scanner settings drawn per image: (low, high) ranges, widened by ``difficulty`` where marked.
_ACQUISITION_RANGES = {
    "breast": dict(probe="linear", depth_mm=(30, 50), width_mm=(38, 50), frequency_mhz=(7.0, 13.0), tgc=0.6),
    # obstetric paths are mostly amniotic fluid, so sonographers set far less TGC than for soft tissue
    "fetal_head": dict(probe="curvilinear", depth_mm=(110, 160), fan_angle_deg=(60, 78), apex_mm=(25, 45),
                       frequency_mhz=(2.5, 5.0), tgc=0.3),
    "msk": dict(probe="linear", depth_mm=(25, 40), width_mm=(38, 50), frequency_mhz=(9.0, 15.0), tgc=0.7),
}


def sample_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th image of a data set made with ``seed``.

    Seeds come from :py:class:`numpy.random.SeedSequence` (``entropy=seed``, ``spawn_key=(index,)``), so data sets
    made with neighbouring seeds share no images, and image ``i`` is the same whatever the data set's size. The value
    is also in each image's ``context["seed"]``.
    """
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got seed={seed!r}.")
    return int(np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(1)[0])


@dataclass
class UltrasoundSample:
    """One simulated image.

    Attributes:
        image: (H, W) float32 B-mode image in [0, 1]; zero outside the fan of curvilinear probes.
        label: (H, W) uint8 label map; values index the simulator's ``classes``.
        mask: (H, W) uint8 binary segmentation target (the preset's target classes).
        context: JSON-serialisable record of what produced the image (preset, finding, acquisition, seed, geometry).
        fan_mask: (H, W) bool field of view.
        acquisition: the scanner settings used (pass them to ``sample`` to image other anatomy the same way).
    """

    image: np.ndarray
    label: np.ndarray
    mask: np.ndarray
    context: dict
    fan_mask: np.ndarray
    acquisition: Acquisition | None = None


class UltrasoundSimulator:
    """Physically grounded B-mode simulator with breast, fetal-head and MSK presets.

    It is a stand-in for real data (for tests, demos, benchmarks and for running every bundle on a fresh machine),
    not a substitute for it: tissue properties are textbook values and anatomy is procedural.

    Args:
        preset: ``"breast"`` (BUSI-like), ``"fetal_head"`` (HC18-like) or ``"msk"`` (tendon, muscle, bone).
        size: (H, W) of the output image.
        difficulty: scales the confounders (lookalike structures, blurred and isoechoic findings, gain and probe
            variation); 1.0 is the default, 0 gives clean textbook images.
        target: class names whose union forms ``mask``; defaults to the preset's target (lesion, head, tendon).

    Example::

        sim = UltrasoundSimulator("breast", size=(256, 256))
        s = sim.sample(seed=0, finding="malignant")
        s.image.shape, s.label.max(), s.context["finding"]
    """

    def __init__(
        self,
        preset: str = "breast",
        size: int | tuple[int, int] = (256, 256),
        difficulty: float = 1.0,
        target: tuple[str, ...] | None = None,
    ):
        self.classes = preset_classes(preset)
        self.preset = preset
        self.size = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
        if min(self.size) < 16:
            raise ValueError(f"size must be at least 16x16, got size={self.size}.")
        if difficulty < 0:
            raise ValueError(f"difficulty must be >= 0, got difficulty={difficulty}.")
        self.difficulty = float(difficulty)
        self.findings = PRESET_FINDINGS[preset]
        target = tuple(target) if target is not None else PRESET_TARGETS[preset]
        unknown = [t for t in target if t not in self.classes]
        if unknown:
            raise ValueError(f"target classes {unknown} are not classes of preset {preset!r}: {self.classes}.")
        self.target = target
        self._target_lut = np.isin(np.arange(len(self.classes)), [self.classes.index(t) for t in target]).astype(
            np.uint8
        )
        self._unified_lut = np.array([UNIFIED_CLASSES.index(c) for c in self.classes], dtype=np.uint8)

    def draw_acquisition(self, rng: np.random.Generator) -> Acquisition:
        """Scanner settings for one image: geometry, frequency, gain and dynamic range vary as between probes."""
        r = _ACQUISITION_RANGES[self.preset]
        d = self.difficulty

        def step(key, default, resolution):
            # scanners offer depth and sector width in steps, not continuously (and equal geometries share
            # cached scan-conversion tables)
            low, high = r.get(key, (default, default))
            return float(np.round(rng.uniform(low, high) / resolution) * resolution)

        geometry = ProbeGeometry(
            probe=r["probe"],
            depth_mm=step("depth_mm", 40, 5.0 if r["probe"] == "linear" else 10.0),
            width_mm=step("width_mm", 40, 4.0),
            fan_angle_deg=step("fan_angle_deg", 70, 6.0),
            apex_mm=step("apex_mm", 40, 10.0),
        )
        return Acquisition(
            geometry=geometry,
            frequency_mhz=float(rng.uniform(*r["frequency_mhz"])),
            bandwidth=float(rng.uniform(0.5, 0.8)),
            f_number=float(rng.uniform(1.5, 1.5 + 1.5 * max(d, 0.3))),
            gain_db=float(rng.normal(0.0, 3.0 * d)),
            dynamic_range_db=float(rng.uniform(50, 70)),
            tgc_attenuation=float(r["tgc"] + rng.normal(0.0, 0.08 * d)),
            noise_db=float(rng.uniform(-12, 0) + 4 * d),
        )

    def generate_label_map(
        self,
        seed: int,
        finding: str | None = None,
        controls: FindingControls | None = None,
        acquisition: Acquisition | None = None,
    ) -> tuple[Phantom, Acquisition, str]:
        """The procedural mask prior: draw anatomy and finding without forming the image.

        Returns:
            (phantom, acquisition, finding); ``phantom.label`` is the (H, W) label map on the image grid.
        """
        rng = np.random.default_rng(seed)
        if finding is None:
            finding = self.findings[int(rng.integers(len(self.findings)))]
        elif finding not in self.findings:
            raise ValueError(f"finding {finding!r} is not one of preset {self.preset!r}'s findings {self.findings}.")
        acquisition = acquisition or self.draw_acquisition(rng)
        grid = PhantomGrid(acquisition.geometry, self.size)
        phantom = make_phantom(self.preset, grid, rng, finding, self.difficulty, controls or FindingControls())
        return phantom, acquisition, finding

    def render(
        self, phantom: Phantom, acquisition: Acquisition, rng: np.random.Generator, return_intermediates: bool = False
    ):
        """Form the B-mode image of a phantom (on the image grid) with the given scanner settings."""
        converter = ScanConverter(acquisition.geometry, self.size)
        label_beam = converter.image_to_beam(phantom.label)
        extra = None if phantom.extra_echo_db is None else converter.image_to_beam(phantom.extra_echo_db)
        g = acquisition.geometry
        dz = g.depth_mm / self.size[0]
        if g.probe == "linear":
            dx = g.width_mm / self.size[1]
        else:
            dx = (g.apex_mm + g.depth_mm / 2) * np.deg2rad(g.fan_angle_deg) / self.size[1]
        out = render_bmode(
            label_beam,
            phantom.tissues,
            acquisition,
            rng,
            beam_spacing_mm=(dz, dx),
            extra_echo_db=extra,
            fibre_angles_deg=phantom.fibre_angles_deg,
            soft_margins_px=phantom.soft_margins_px,
            return_intermediates=return_intermediates,
        )
        if return_intermediates:
            out["beam_label"] = label_beam
            out["image"] = converter.beam_to_image(out["image"])
            return out
        return converter.beam_to_image(out)

    def sample(
        self,
        seed: int,
        finding: str | None = None,
        controls: FindingControls | None = None,
        acquisition: Acquisition | None = None,
        **control_kwargs,
    ) -> UltrasoundSample:
        """Simulate one image.

        Args:
            seed: fixes everything: anatomy, finding geometry, acquisition and speckle.
            finding: one of ``self.findings``; ``None`` draws one from the seed.
            controls: a :class:`FindingControls`; or pass its fields as keyword arguments
                (``size_mm``, ``position``, ``count``, ``irregularity``).
            acquisition: scanner settings to use instead of drawing them from the seed (e.g. another sample's
                ``acquisition``, for an image of different anatomy that looks alike: a style-matched context image).
        """
        if control_kwargs:
            if controls is not None:
                raise ValueError("pass either controls or its fields as keyword arguments, not both.")
            controls = FindingControls(**control_kwargs)
        phantom, acquisition, finding = self.generate_label_map(seed, finding, controls, acquisition)
        rng = np.random.default_rng([seed, 1])
        image = self.render(phantom, acquisition, rng)
        fan = ScanConverter(acquisition.geometry, self.size).fan_mask
        label = np.where(fan, phantom.label, 0).astype(np.uint8)
        context = self.context(acquisition, finding, seed, phantom.geometry)
        return UltrasoundSample(image, label, self._target_lut[label], context, fan, acquisition)

    def context(self, acquisition: Acquisition, finding: str, seed: int, geometry: dict) -> dict:
        """JSON-serialisable record of what a user controls in an acquisition."""
        g = acquisition.geometry
        ctx = {
            "preset": self.preset,
            "finding": finding,
            "probe": g.probe,
            "depth_mm": round(g.depth_mm, 3),
            "frequency_mhz": round(acquisition.frequency_mhz, 3),
            "gain_db": round(acquisition.gain_db, 3),
            "dynamic_range_db": round(acquisition.dynamic_range_db, 3),
            "difficulty": self.difficulty,
            "seed": int(seed),
            "pixel_spacing_mm": [round(float(s), 5) for s in g.pixel_spacing_mm(self.size)],
            "finding_geometry": geometry,
        }
        if g.probe == "linear":
            ctx["width_mm"] = round(g.width_mm, 3)
        else:
            ctx["fan_angle_deg"] = round(g.fan_angle_deg, 3)
        return ctx

    def to_unified(self, label: np.ndarray) -> np.ndarray:
        """Map a label map of this preset into :data:`UNIFIED_CLASSES` values."""
        return self._unified_lut[label]
