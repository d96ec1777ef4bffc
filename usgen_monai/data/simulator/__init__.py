"""Built-in B-mode ultrasound simulator: the default data for training, tests, demos and benchmarks."""

from __future__ import annotations

from .geometry import ProbeGeometry, ScanConverter
from .phantoms import FindingControls, Phantom, PhantomGrid, make_phantom
from .physics import Acquisition, gaussian_psf_kernel, render_bmode
from .simulator import PRESETS, UltrasoundSample, UltrasoundSimulator, sample_seed
from .tissues import PRESET_FINDINGS, PRESET_TARGETS, PRESET_TISSUES, UNIFIED_CLASSES, Tissue, preset_classes

__all__ = [
    "Acquisition",
    "FindingControls",
    "PRESETS",
    "PRESET_FINDINGS",
    "PRESET_TARGETS",
    "PRESET_TISSUES",
    "Phantom",
    "PhantomGrid",
    "ProbeGeometry",
    "ScanConverter",
    "SimulatedUltrasoundDataset",
    "Tissue",
    "UNIFIED_CLASSES",
    "UltrasoundSample",
    "UltrasoundSimulator",
    "gaussian_psf_kernel",
    "make_phantom",
    "preset_classes",
    "render_bmode",
    "sample_seed",
]


def __getattr__(name: str):
    # the MONAI dataset wrapper imports monai (seconds); plain simulation should not pay for it
    if name == "SimulatedUltrasoundDataset":
        from .dataset import SimulatedUltrasoundDataset

        return SimulatedUltrasoundDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
