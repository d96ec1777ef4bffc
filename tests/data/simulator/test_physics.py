"""Physics sanity of the B-mode model (issue 2 targets): Rayleigh speckle, lesion contrast, shadowing,
enhancement, and the sector fan."""

from __future__ import annotations

import numpy as np
import pytest

from usgen_monai.data.simulator import (
    Acquisition,
    ProbeGeometry,
    ScanConverter,
    Tissue,
    UltrasoundSimulator,
    gaussian_psf_kernel,
    render_bmode,
)

RAYLEIGH_SNR = np.sqrt(np.pi / (4 - np.pi))  # 1.913
ACQ = Acquisition(ProbeGeometry("linear", depth_mm=40, width_mm=40), frequency_mhz=7.5, gain_db=0, noise_db=-40)
SPACING = (40 / 256, 40 / 256)


def _disc(shape, centre, radius):
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    return (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 < radius**2


@pytest.mark.parametrize("frequency", [3.5, 7.5, 12.0])
def test_homogeneous_envelope_is_rayleigh(frequency):
    tissues = (Tissue("background", -80.0), Tissue("tissue", 0.0, density=1.0))
    label = np.ones((256, 256), np.uint8)
    acq = Acquisition(ACQ.geometry, frequency_mhz=frequency)
    out = render_bmode(label, tissues, acq, np.random.default_rng(1), beam_spacing_mm=SPACING, return_intermediates=True)
    env = out["envelope"][20:-20, 20:-20]
    assert abs(env.mean() / env.std() - RAYLEIGH_SNR) < 0.1
    # unit-energy PSF: 0 dB tissue has unit mean power
    assert abs(float((env**2).mean()) - 1.0) < 0.05


def test_low_scatterer_density_is_not_rayleigh():
    tissues = (Tissue("background", -80.0), Tissue("sparse", 0.0, density=0.02))
    label = np.ones((256, 256), np.uint8)
    out = render_bmode(label, tissues, ACQ, np.random.default_rng(2), beam_spacing_mm=SPACING, return_intermediates=True)
    env = out["envelope"][20:-20, 20:-20]
    assert env.mean() / env.std() < RAYLEIGH_SNR - 0.3


@pytest.mark.parametrize("contrast_db", [-6.0, -12.0, -20.0])
def test_hypoechoic_lesion_contrast(contrast_db):
    tissues = (Tissue("background", -80.0), Tissue("tissue", 0.0), Tissue("lesion", contrast_db))
    label = np.ones((256, 256), np.uint8)
    lesion = _disc(label.shape, (128, 128), 40)
    label[lesion] = 2
    out = render_bmode(label, tissues, ACQ, np.random.default_rng(3), beam_spacing_mm=SPACING, return_intermediates=True)
    core = _disc(label.shape, (128, 128), 32)
    rows = slice(100, 157)
    side = np.zeros_like(core)
    side[rows, 10:70] = True
    side[rows, 186:246] = True
    # the log-compressed level difference equals the echo ratio (Rayleigh speckle is scale invariant)
    measured = out["level_db"][core].mean() - out["level_db"][side].mean()
    assert abs(measured - contrast_db) < 2.0
    # and the displayed image is darker by the same amount, in units of the dynamic range
    shown = (out["image"][core].mean() - out["image"][side].mean()) * ACQ.dynamic_range_db
    assert abs(shown - contrast_db) < 2.0


def test_shadow_behind_attenuating_lesion_and_enhancement_behind_cyst():
    tissues = (
        Tissue("background", -80.0),
        Tissue("tissue", 0.0, attenuation=0.7),
        Tissue("shadowing", -10.0, attenuation=4.0),
        Tissue("cyst", -35.0, density=0.2, attenuation=0.05),
    )
    label = np.ones((256, 256), np.uint8)
    label[_disc(label.shape, (70, 64), 28)] = 2
    label[_disc(label.shape, (70, 192), 28)] = 3
    image = render_bmode(label, tissues, ACQ, np.random.default_rng(4), beam_spacing_mm=SPACING)
    below = slice(130, 200)
    shadow = image[below, 54:74].mean()
    enhanced = image[below, 182:202].mean()
    outside = image[below, 118:138].mean()  # same depth, between the two
    assert shadow < 0.5 * outside
    assert enhanced > outside + 0.05


def test_sector_fan_is_zero_outside():
    sim = UltrasoundSimulator("fetal_head", size=(128, 128))
    s = sim.sample(seed=5)
    assert s.context["probe"] == "curvilinear"
    assert not s.fan_mask.all() and s.fan_mask.any()
    assert np.all(s.image[~s.fan_mask] == 0)
    assert np.all(s.label[~s.fan_mask] == 0)
    assert s.image[s.fan_mask].mean() > 0.02


def test_scan_converter_round_trip_preserves_smooth_content():
    geometry = ProbeGeometry("curvilinear", depth_mm=120, fan_angle_deg=70, apex_mm=30)
    conv = ScanConverter(geometry, (128, 128))
    beam = np.tile(np.linspace(0, 1, 128, dtype=np.float32)[:, None], (1, 128))  # brightness grows with depth
    image = conv.beam_to_image(beam)
    fan = conv.fan_mask
    radius = np.hypot(*np.meshgrid(np.arange(128) - 64, np.arange(128), indexing="xy"))
    # brightness increases with distance from the apex inside the fan
    corr = np.corrcoef(image[fan], radius[fan])[0, 1]
    assert corr > 0.9


def test_psf_kernel_has_unit_energy():
    for sigma in (0.3, 1.0, 3.7):
        k = gaussian_psf_kernel(sigma)
        assert abs(float((k**2).sum()) - 1.0) < 1e-5
        assert len(k) % 2 == 1


def test_bad_label_map_errors():
    tissues = (Tissue("background", -80.0),)
    with pytest.raises(ValueError, match="only 1 tissues"):
        render_bmode(np.ones((8, 8), np.uint8), tissues, ACQ, np.random.default_rng(0), beam_spacing_mm=SPACING)
    with pytest.raises(ValueError, match="2D"):
        render_bmode(np.zeros((2, 8, 8), np.uint8), tissues, ACQ, np.random.default_rng(0), beam_spacing_mm=SPACING)
