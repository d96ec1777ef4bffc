from __future__ import annotations

import json

import numpy as np
import pytest

from usgen_monai.data.simulator import (
    PRESET_FINDINGS,
    PRESETS,
    UNIFIED_CLASSES,
    FindingControls,
    UltrasoundSimulator,
)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_finding_of_every_preset(preset):
    sim = UltrasoundSimulator(preset, size=(96, 80))
    for i, finding in enumerate(sim.findings):
        s = sim.sample(seed=i, finding=finding)
        assert s.image.shape == s.label.shape == s.mask.shape == (96, 80)
        assert s.image.dtype == np.float32 and 0 <= s.image.min() and s.image.max() <= 1
        assert s.label.dtype == np.uint8 and s.label.max() < len(sim.classes)
        assert set(np.unique(s.mask)) <= {0, 1}
        assert s.context["preset"] == preset and s.context["finding"] == finding
        json.dumps(s.context)  # serialisable
        present = {sim.classes[v] for v in np.unique(s.label)}
        if finding == "benign" or finding == "malignant":
            assert "lesion" in present and s.mask.any()
        if finding == "effusion":
            assert "effusion" in present
        if finding == "tendon_tear":
            assert "tear" in present
    assert tuple(sim.findings) == PRESET_FINDINGS[preset]


def test_normal_breast_has_empty_mask_and_fetal_mask_is_the_head():
    assert not UltrasoundSimulator("breast", 64).sample(seed=0, finding="normal").mask.any()
    sim = UltrasoundSimulator("fetal_head", 128)
    s = sim.sample(seed=1)
    head = np.isin(s.label, [sim.classes.index("skull"), sim.classes.index("brain")])
    np.testing.assert_array_equal(s.mask.astype(bool), head)


def test_deterministic_by_seed():
    sim = UltrasoundSimulator("msk", 64)
    a, b, c = sim.sample(seed=7), sim.sample(seed=7), sim.sample(seed=8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.context == b.context
    assert not np.array_equal(a.image, c.image)


def test_geometry_controls_are_honoured():
    sim = UltrasoundSimulator("breast", 128, difficulty=0.0)
    small = sim.sample(seed=3, finding="benign", size_mm=6.0, position=(0.5, 0.45))
    large = sim.sample(seed=3, finding="benign", size_mm=18.0, position=(0.5, 0.45))
    assert large.mask.sum() > 4 * small.mask.sum() > 0
    rows, cols = np.nonzero(small.mask)
    assert abs(cols.mean() / 128 - 0.5) < 0.08 and abs(rows.mean() / 128 - 0.45) < 0.08
    assert small.context["finding_geometry"]["size_mm"] == 6.0
    two = sim.sample(seed=4, finding="malignant", count=2, position=(0.25, 0.4))
    assert two.context["finding_geometry"]["count"] == 2
    smooth = sim.sample(seed=5, finding="malignant", irregularity=0.0, size_mm=15)
    rough = sim.sample(seed=5, finding="malignant", irregularity=1.0, size_mm=15)

    def perimeter_ratio(mask):
        edge = mask ^ np.roll(mask, 1, 0) | mask ^ np.roll(mask, 1, 1)
        return edge.sum() / np.sqrt(mask.sum())

    assert perimeter_ratio(rough.mask.astype(bool)) > perimeter_ratio(smooth.mask.astype(bool))


def test_difficulty_adds_confounders():
    easy = UltrasoundSimulator("breast", 128, difficulty=0.0)
    hard = UltrasoundSimulator("breast", 128, difficulty=2.0)
    fat = easy.classes.index("fat")
    gland = easy.classes.index("glandular")

    def lobules(sim, seed):
        # fat pixels surrounded by gland: count fat islands inside the glandular layer
        from scipy import ndimage

        lab = sim.sample(seed=seed, finding="normal").label
        islands, n = ndimage.label(lab == fat)
        return sum(
            1 for i in range(1, n + 1) if np.isin(lab[ndimage.binary_dilation(islands == i)], [fat, gland]).all()
        )

    assert sum(lobules(hard, s) for s in range(8)) > sum(lobules(easy, s) for s in range(8))


def test_unified_classes_cover_every_preset():
    for preset in PRESETS:
        sim = UltrasoundSimulator(preset, 32)
        lab = sim.sample(seed=0).label
        unified = sim.to_unified(lab)
        for v in np.unique(lab):
            assert UNIFIED_CLASSES[unified[lab == v][0]] == sim.classes[v]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown simulator preset 'liver'"):
        UltrasoundSimulator("liver")
    with pytest.raises(ValueError, match="finding 'malignant' is not one of preset 'msk'"):
        UltrasoundSimulator("msk", 32).sample(seed=0, finding="malignant")
    with pytest.raises(ValueError, match="target classes"):
        UltrasoundSimulator("breast", 32, target=("tendon",))
    with pytest.raises(ValueError, match="position"):
        FindingControls(position=(1.5, 0.2))
    with pytest.raises(ValueError, match="size"):
        UltrasoundSimulator("breast", 8)
