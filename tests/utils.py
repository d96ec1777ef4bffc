"""Test helpers: data the tests make themselves."""

from __future__ import annotations


from usgen_monai.data.simulator import UltrasoundSimulator


def simulated_triples(preset: str = "breast", num: int = 2, size: int = 64, seed: int = 0, **kwargs):
    """``num`` simulated (image, mask, context) triples, the way MONAI's tests call ``create_test_image_2d``."""
    sim = UltrasoundSimulator(preset, size=(size, size), **kwargs)
    out = []
    for i in range(num):
        s = sim.sample(seed=seed + i)
        out.append((s.image, s.mask, s.context))
    return out
