from __future__ import annotations

import numpy as np
import pytest
import torch

from usgen_monai.data.context_bank import ContextBank, gram_matrix, style_descriptor
from usgen_monai.data.simulator import UltrasoundSimulator


def _features(x):
    # fixed random conv features: enough to see speckle size and brightness
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 1, 5, 5, generator=g)
    return torch.nn.functional.conv2d(x, w, padding=2).relu()


def _bank():
    images, contexts = [], []
    for preset in ("breast", "msk"):
        sim = UltrasoundSimulator(preset, 48)
        for seed in range(6):
            s = sim.sample(seed=seed)
            images.append(torch.from_numpy(s.image)[None])
            contexts.append(s.context)
    return torch.stack(images), contexts


def test_gram_matrix_is_symmetric_and_position_invariant():
    f = torch.rand(2, 3, 8, 8)
    g = gram_matrix(f)
    torch.testing.assert_close(g, g.transpose(1, 2))
    torch.testing.assert_close(gram_matrix(f.roll(3, dims=-1)), g)  # where things are does not matter
    assert style_descriptor(f).shape == (2, 6)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        gram_matrix(torch.rand(3, 8, 8))


def test_select_by_style_reference_finds_the_same_image_first():
    images, contexts = _bank()
    bank = ContextBank(images, contexts, _features)
    assert bank.select(k=1, style_reference=images[7]) == [7]
    # a much brighter image matches bright bank images better than dark ones
    bright = bank.select(k=3, style_reference=(images[0] + 0.3).clamp(0, 1))
    means = images.mean((1, 2, 3))
    assert means[bright].mean() >= means.median()


def test_select_filters_and_diversity_and_errors():
    images, contexts = _bank()
    bank = ContextBank(images, contexts, _features)
    picked = bank.select(k=4, preset="msk", generator=torch.Generator().manual_seed(0))
    assert len(set(picked)) == 4 and all(contexts[i]["preset"] == "msk" for i in picked)
    again = bank.select(k=4, preset="msk", generator=torch.Generator().manual_seed(0))
    assert picked == again
    assert len(bank.select(k=50, preset="breast")) == 6
    with pytest.raises(ValueError, match="no context image in the bank matches"):
        bank.select(preset="fetal_head")
    with pytest.raises(ValueError, match="same length"):
        ContextBank(images[:2], contexts[:3], _features)


def test_diverse_selection_spreads_more_than_random():
    images, contexts = _bank()
    bank = ContextBank(images, contexts, _features)
    picked = bank.select(k=3, generator=torch.Generator().manual_seed(1))
    spread = torch.pdist(bank._normed[picked]).min()
    rng = np.random.default_rng(0)
    random_spreads = [torch.pdist(bank._normed[rng.choice(len(bank), 3, replace=False)]).min() for _ in range(20)]
    assert spread >= np.median(random_spreads)
