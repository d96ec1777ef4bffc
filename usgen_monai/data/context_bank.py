"""Context selection for the CSG generator: a bank of real images from which the appearance context of a
generated image is picked by style similarity.

Style is measured as in neural style transfer: the Gram matrix (channel co-activation) of feature maps, here of
the stage-1 autoencoder's encoder, which captures speckle size, texture and brightness but not where structures
are. Two images whose Gram matrices are close "look alike" regardless of anatomy, which is what a context should
transfer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["gram_matrix", "style_descriptor", "ContextBank"]


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) feature maps -> (B, C, C) Gram matrices normalised by the number of positions."""
    if features.ndim != 4:
        raise ValueError(f"features must be (B, C, H, W), got shape {tuple(features.shape)}.")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def style_descriptor(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) features -> (B, C*(C+1)/2) vector: the upper triangle of the Gram matrix plus nothing else,
    so Euclidean distance between descriptors is the Frobenius distance between Gram matrices (up to the
    off-diagonal weight)."""
    g = gram_matrix(features)
    iu = torch.triu_indices(g.shape[1], g.shape[2])
    return g[:, iu[0], iu[1]]


class ContextBank:
    """Real images (with their tabular context) to pick appearance contexts from.

    Args:
        images: (N, 1, H, W) tensor of real images in [0, 1].
        contexts: N dicts (preset, finding, probe, ...); used to filter candidates.
        feature_fn: images -> (B, C, h, w) feature maps (e.g. the stage-1 encoder's ``encode`` mean); style
            descriptors are computed once here.
        batch_size: batch size for computing the descriptors.

    Example::

        bank = ContextBank(images, contexts, feature_fn=lambda x: autoencoder.encode(x)[0])
        idx = bank.select(k=4, preset="msk", generator=torch.Generator().manual_seed(0))
        idx = bank.select(k=1, style_reference=my_image)  # the images that look most like my_image
    """

    def __init__(
        self,
        images: torch.Tensor,
        contexts: Sequence[dict],
        feature_fn: Callable[[torch.Tensor], torch.Tensor],
        batch_size: int = 16,
    ):
        if len(images) != len(contexts):
            raise ValueError(f"images and contexts must have the same length, got {len(images)} and {len(contexts)}.")
        if len(images) == 0:
            raise ValueError("a context bank needs at least one image.")
        self.images = images
        self.contexts = list(contexts)
        self.feature_fn = feature_fn
        with torch.no_grad():
            self.descriptors = torch.cat(
                [style_descriptor(feature_fn(images[i : i + batch_size]).float()) for i in range(0, len(images), batch_size)]
            )
        # standardise descriptor dimensions so no single channel pair dominates the distance
        self._mean = self.descriptors.mean(0)
        self._std = self.descriptors.std(0).clamp_min(1e-6) if len(images) > 1 else torch.ones_like(self._mean)
        self._normed = (self.descriptors - self._mean) / self._std

    def __len__(self) -> int:
        return len(self.images)

    def candidates(self, **filters) -> np.ndarray:
        """Indices whose context matches every ``key=value`` filter (``None`` values are ignored)."""
        keep = [
            i
            for i, ctx in enumerate(self.contexts)
            if all(v is None or ctx.get(k) == v for k, v in filters.items())
        ]
        return np.asarray(keep, dtype=np.int64)

    def style_distance(self, reference: torch.Tensor) -> torch.Tensor:
        """Distance of every bank image's style to a (1, H, W) or (1, 1, H, W) reference image."""
        if reference.ndim == 3:
            reference = reference[None]
        with torch.no_grad():
            d = style_descriptor(self.feature_fn(reference).float())
        return torch.linalg.vector_norm((d - self._mean) / self._std - self._normed, dim=1)

    def select(
        self,
        k: int = 1,
        style_reference: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        **filters,
    ) -> list[int]:
        """Pick ``k`` context images.

        With ``style_reference``: the ``k`` candidates closest in style to it. Without: a random first pick and
        then, greedily, the candidates farthest in style from those already picked, so ``k`` contexts cover the
        bank's range of appearances (probes, gains, textures) instead of repeating one look.

        Args:
            k: number of contexts (at most the number of candidates).
            style_reference: optional image to match.
            generator: makes the random first pick reproducible.
            filters: context fields to match, e.g. ``preset="breast", finding="malignant"``.

        Raises:
            ValueError: when no bank image matches the filters.
        """
        pool = self.candidates(**filters)
        if pool.size == 0:
            raise ValueError(f"no context image in the bank matches {filters}; the bank holds {len(self)} images.")
        k = min(int(k), pool.size)
        if style_reference is not None:
            d = self.style_distance(style_reference)[pool]
            return [int(pool[i]) for i in torch.argsort(d)[:k]]
        first = int(torch.randint(pool.size, (1,), generator=generator))
        chosen = [first]
        feats = self._normed[pool]
        nearest = torch.linalg.vector_norm(feats - feats[first], dim=1)
        while len(chosen) < k:
            nxt = int(torch.argmax(nearest))
            chosen.append(nxt)
            nearest = torch.minimum(nearest, torch.linalg.vector_norm(feats - feats[nxt], dim=1))
        return [int(pool[i]) for i in chosen]
