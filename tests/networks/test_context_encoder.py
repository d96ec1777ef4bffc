from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from usgen_monai.networks import ContextEncoder, ImageContextTokenizer, TabularContextEncoder

D = 16
# (kwargs, expected number of tokens)
TEST_CASES = [
    [dict(embed_dim=D, categorical_sizes=(4, 6, 3), num_scalars=4, image_channels=3, image_grid_size=2), 3 + 1 + 4],
    [dict(embed_dim=D, categorical_sizes=(4, 6), num_scalars=0, image_channels=0), 2],
    [dict(embed_dim=D, num_scalars=2), 1],
    [dict(embed_dim=D, image_channels=4, image_grid_size=3), 9],
]


def _inputs(enc: ContextEncoder, batch: int = 3):
    g = torch.Generator().manual_seed(0)
    sizes = enc.tabular.categorical_sizes
    cat = torch.stack([torch.randint(0, s, (batch,), generator=g) for s in sizes], 1) if sizes else None
    sca = torch.rand(batch, enc.tabular.num_scalars, generator=g) if enc.tabular.num_scalars else None
    img = torch.randn(batch, enc.image.in_channels, 8, 8, generator=g) if enc.image is not None else None
    return cat, sca, img


class TestContextEncoder(unittest.TestCase):
    @parameterized.expand(TEST_CASES)
    def test_shape(self, kwargs, num_tokens):
        enc = ContextEncoder(**kwargs)
        cat, sca, img = _inputs(enc)
        tokens = enc(cat, sca, img)
        self.assertEqual(enc.num_tokens, num_tokens)
        self.assertEqual(tuple(tokens.shape), (3, num_tokens, D))
        self.assertEqual(tuple(enc.null_tokens(3).shape), (3, num_tokens, D))

    @parameterized.expand(TEST_CASES)
    def test_absent_context_is_null(self, kwargs, _):
        enc = ContextEncoder(**kwargs)
        cat, sca, img = _inputs(enc)
        null = enc.null_tokens(3)
        torch.testing.assert_close(enc(batch_size=3), null)
        off = torch.zeros(3, dtype=torch.bool)
        torch.testing.assert_close(enc(cat, sca, img, tabular_mask=off, image_mask=off), null)

    def test_per_sample_masks(self):
        enc = ContextEncoder(**TEST_CASES[0][0])
        cat, sca, img = _inputs(enc)
        full = enc(cat, sca, img)
        null = enc.null_tokens(3)
        mixed = enc(
            cat, sca, img, tabular_mask=torch.tensor([True, False, True]), image_mask=torch.tensor([False, True, True])
        )
        n_tab = enc.tabular.num_tokens
        torch.testing.assert_close(mixed[0, :n_tab], full[0, :n_tab])
        torch.testing.assert_close(mixed[0, n_tab:], null[0, n_tab:])
        torch.testing.assert_close(mixed[1, :n_tab], null[1, :n_tab])
        torch.testing.assert_close(mixed[1, n_tab:], full[1, n_tab:])
        torch.testing.assert_close(mixed[2], full[2])
        self.assertFalse(torch.allclose(full[0, :n_tab], null[0, :n_tab]))

    def test_samples_are_independent(self):
        enc = ContextEncoder(**TEST_CASES[0][0])
        cat, sca, img = _inputs(enc)
        both = enc(cat, sca, img)
        first = enc(cat[:1], sca[:1], img[:1])
        torch.testing.assert_close(both[:1], first)

    def test_missing_scalars_change_tokens(self):
        enc = TabularContextEncoder(D, (), num_scalars=2)
        present = enc(scalars=torch.tensor([[0.0, 0.5]]))
        missing = enc(scalars=torch.tensor([[float("nan"), 0.5]]))
        self.assertTrue(torch.isfinite(missing).all())
        self.assertFalse(torch.allclose(present, missing))

    def test_null_tokens_get_gradients(self):
        enc = ContextEncoder(**TEST_CASES[0][0])
        cat, sca, img = _inputs(enc)
        enc(cat, sca, img, tabular_mask=torch.tensor([False, True, True])).sum().backward()
        self.assertGreater(enc.null_tabular.grad.abs().sum().item(), 0)
        self.assertEqual(enc.null_image.grad.abs().sum().item(), 0)  # image present everywhere

    def test_image_tokenizer_shape(self):
        tok = ImageContextTokenizer(in_channels=3, embed_dim=D, grid_size=2, hidden_channels=8)
        self.assertEqual(tuple(tok(torch.randn(2, 3, 16, 12)).shape), (2, 4, D))

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "at least one input"):
            ContextEncoder(embed_dim=D)
        with self.assertRaisesRegex(ValueError, "categorical_sizes"):
            TabularContextEncoder(D, (1,))
        enc = ContextEncoder(embed_dim=D, categorical_sizes=(3,))
        with self.assertRaisesRegex(ValueError, "outside"):
            enc(categorical=torch.tensor([[3]]))
        with self.assertRaisesRegex(ValueError, "image_channels=0"):
            enc(categorical=torch.tensor([[1]]), image_latents=torch.randn(1, 3, 4, 4))
        with self.assertRaisesRegex(ValueError, "batch_size"):
            enc()
        with self.assertRaisesRegex(ValueError, "tabular_mask"):
            enc(categorical=torch.tensor([[1]]), tabular_mask=torch.tensor([True, False]))


if __name__ == "__main__":
    unittest.main()
