"""Acoustic properties of the tissues each simulator preset knows, and the label spaces built from them."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["Tissue", "PRESET_TISSUES", "PRESET_FINDINGS", "PRESET_TARGETS", "UNIFIED_CLASSES", "preset_classes"]


@dataclass(frozen=True)
class Tissue:
    """Acoustic description of one label class.

    Args:
        name: label class name.
        echo_db: mean backscatter relative to glandular tissue, in dB (0 dB shows mid-grey at the default gain).
        density: scatterers per resolution cell relative to fully developed speckle (1.0); below about 0.3 the
            speckle is no longer Rayleigh distributed (brighter isolated dots on a darker ground).
        attenuation: attenuation coefficient in dB/cm/MHz (soft tissue about 0.5-1, fluid about 0.1, bone > 10).
        specular_db: strength of the specular echo on the top surface of the region (skin line, bone cortex),
            None for no specular echo.
        fibrillar: amplitude (0-1) of the oriented fibre texture of muscle and tendon.
        heterogeneity_db: standard deviation of slowly varying echo texture inside the region, in dB.
    """

    name: str
    echo_db: float
    density: float = 1.0
    attenuation: float = 0.7
    specular_db: float | None = None
    fibrillar: float = 0.0
    heterogeneity_db: float = 0.0

    def with_(self, **changes) -> Tissue:
        return replace(self, **changes)


_T = Tissue

# Label value == position in the tuple; 0 is "background" (outside the field of view).
PRESET_TISSUES: dict[str, tuple[Tissue, ...]] = {
    "breast": (
        _T("background", -80.0, 1.0, 0.0),
        _T("skin", 6.0, 1.0, 0.9, specular_db=14.0),
        _T("fat", -9.0, 0.7, 0.5, heterogeneity_db=2.0),
        _T("glandular", 1.0, 1.0, 0.8, heterogeneity_db=3.0),
        _T("ligament", 6.0, 1.0, 0.9),
        _T("duct", -22.0, 0.3, 0.15),
        _T("muscle", -5.0, 1.0, 1.0, fibrillar=0.5),
        _T("rib", -25.0, 0.5, 25.0, specular_db=18.0),
        _T("lesion", -14.0, 0.8, 0.6, heterogeneity_db=2.0),
    ),
    "fetal_head": (
        _T("background", -80.0, 1.0, 0.0),
        _T("maternal_wall", -4.0, 1.0, 0.8, specular_db=8.0, fibrillar=0.25, heterogeneity_db=3.0),
        _T("placenta", -5.0, 1.0, 0.7, heterogeneity_db=2.0),
        _T("amniotic_fluid", -38.0, 0.2, 0.05),
        _T("fetal_body", -4.0, 1.0, 0.8, heterogeneity_db=4.0),
        _T("skull", 16.0, 1.0, 7.0, specular_db=12.0),
        _T("brain", -12.0, 0.8, 0.6, heterogeneity_db=3.0),
    ),
    "msk": (
        _T("background", -80.0, 1.0, 0.0),
        _T("skin", 6.0, 1.0, 0.9, specular_db=14.0),
        _T("fat", -10.0, 0.6, 0.5, heterogeneity_db=2.0),
        _T("muscle", -6.0, 1.0, 1.0, fibrillar=0.6),
        _T("tendon", 6.0, 1.0, 1.1, fibrillar=0.8),
        _T("bone", -30.0, 0.5, 40.0, specular_db=22.0),
        _T("effusion", -36.0, 0.2, 0.05),
        _T("tear", -18.0, 0.5, 0.3, heterogeneity_db=3.0),
    ),
}

PRESET_FINDINGS: dict[str, tuple[str, ...]] = {
    "breast": ("normal", "benign", "malignant"),
    "fetal_head": ("normal",),
    "msk": ("normal", "effusion", "tendon_tear"),
}

# Classes whose union is the binary segmentation target of a preset (what BUSI / HC18 style masks hold).
PRESET_TARGETS: dict[str, tuple[str, ...]] = {
    "breast": ("lesion",),
    "fetal_head": ("skull", "brain"),
    "msk": ("tendon", "tear"),
}


def preset_classes(preset: str) -> tuple[str, ...]:
    """Label class names of ``preset``; the label value of a class is its index."""
    if preset not in PRESET_TISSUES:
        raise ValueError(f"unknown simulator preset {preset!r}; expected one of {sorted(PRESET_TISSUES)}.")
    return tuple(t.name for t in PRESET_TISSUES[preset])


def _unified() -> tuple[str, ...]:
    names: list[str] = []
    for preset in PRESET_TISSUES:
        names.extend(n for n in preset_classes(preset) if n not in names)
    return tuple(names)


# One label space for all presets (a model trained on every preset one-hot encodes labels in this space).
UNIFIED_CLASSES: tuple[str, ...] = _unified()
