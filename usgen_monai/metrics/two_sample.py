"""Classifier two-sample test (C2ST): can a small network tell generated images from real ones?

Lopez-Paz and Oquab, "Revisiting Classifier Two-Sample Tests", ICLR 2017, https://arxiv.org/abs/1610.06545. A
binary CNN is trained to separate two sets of images and scored by ROC AUC on images it did not train on, over
``k`` folds: 0.5 means the sets are indistinguishable to that network, 1.0 that it separates them perfectly. Unlike
a loss or a Fréchet distance it answers the question that matters for synthetic training data, whether any network
can tell the domain apart, and real-vs-real gives its noise floor.

The classifier is MONAI's ``Classifier`` (strided residual units, one logit), trained with Adam on balanced folds;
everything is seeded, so the same inputs give the same AUCs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_roc_auc
from monai.networks.nets import Classifier

__all__ = ["classifier_two_sample_test", "high_frequency_energy"]


def high_frequency_energy(images: torch.Tensor, box_size: int = 5) -> float:
    """The standard deviation of ``images`` minus their ``box_size`` x ``box_size`` box mean: the energy of the fine
    texture (speckle) that a blurring autoencoder loses. Compare generated with real as a ratio.

    Args:
        images: ``(N, 1, H, W)`` intensities.
        box_size: odd box width in pixels.
    """
    if box_size < 3 or box_size % 2 == 0:
        raise ValueError(f"box_size must be an odd integer >= 3, got box_size={box_size}.")
    x = torch.as_tensor(images, dtype=torch.float64)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, 1, H, W), got shape {tuple(x.shape)}.")
    local_mean = torch.nn.functional.avg_pool2d(x, box_size, stride=1, padding=box_size // 2, count_include_pad=False)
    return float((x - local_mean).std())


def _train(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    train: torch.Tensor,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
) -> None:
    loss_function = torch.nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=generator)]
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss_function(network(images[batch]).reshape(-1), labels[batch]).backward()
            optimizer.step()


def _folds(n: int, k: int, generator: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n, generator=generator).chunk(k))


def classifier_two_sample_test(
    real: torch.Tensor,
    generated: torch.Tensor,
    folds: int = 4,
    epochs: int = 30,
    batch_size: int = 16,
    channels: Sequence[int] = (8, 16, 32, 32),
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> dict[str, float | list[float]]:
    """ROC AUC of a CNN that separates ``generated`` from ``real`` images, over ``folds`` held-out folds.

    Each fold holds out ``1 / folds`` of both sets, trains a fresh classifier on the rest for ``epochs`` epochs
    (full passes, shuffled) and scores the held-out images. Sets of unequal size are cut to the smaller one.

    Args:
        real: ``(N, 1, H, W)`` real images in ``[0, 1]``.
        generated: ``(M, 1, H, W)`` generated images of the same size.
        folds: number of folds (>= 2; each needs at least 2 images per set).
        epochs: training epochs per fold.
        batch_size: images per step (half real, half generated on average).
        channels: the classifier's channels per stride-2 level.
        learning_rate: Adam's learning rate.
        seed: seeds the fold split, the initialisation and the shuffling.

    Returns:
        ``{"auc": mean AUC, "auc_std": its standard deviation over folds, "aucs": per fold, "num_per_set": n}``.

    Raises:
        ValueError: sets of other shapes, or too few images for the folds.
    """
    real = torch.as_tensor(real, dtype=torch.float32)
    generated = torch.as_tensor(generated, dtype=torch.float32)
    if real.ndim != 4 or real.shape[1:] != generated.shape[1:]:
        raise ValueError(
            "real and generated must be (N, C, H, W) of one size, got "
            f"{tuple(real.shape)} and {tuple(generated.shape)}."
        )
    n = min(len(real), len(generated))
    if folds < 2 or n < 2 * folds:
        raise ValueError(f"need folds >= 2 and at least 2 images per set per fold, got folds={folds} and {n} images.")
    generator = torch.Generator().manual_seed(int(seed))
    real = real[torch.randperm(len(real), generator=generator)[:n]]
    generated = generated[torch.randperm(len(generated), generator=generator)[:n]]
    images = torch.cat([real, generated])
    labels = torch.cat([torch.zeros(n), torch.ones(n)])
    real_folds, generated_folds = _folds(n, folds, generator), _folds(n, folds, generator)
    aucs: list[float] = []
    for k in range(folds):
        test = torch.cat([real_folds[k], generated_folds[k] + n])
        train = torch.cat([torch.cat([real_folds[j], generated_folds[j] + n]) for j in range(folds) if j != k])
        with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the caller's global RNG alone
            torch.manual_seed(int(seed) * 1000 + k)
            network = Classifier(tuple(images.shape[1:]), classes=1, channels=channels, strides=[2] * len(channels))
        optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
        network.train()
        with torch.enable_grad():  # callers often evaluate under no_grad
            _train(network, optimizer, images, labels, train, int(epochs), batch_size, generator)
        network.eval()
        with torch.no_grad():
            scores = torch.sigmoid(network(images[test]).reshape(-1))
        aucs.append(float(compute_roc_auc(scores, labels[test])))
    return {"auc": float(np.mean(aucs)), "auc_std": float(np.std(aucs)), "aucs": aucs, "num_per_set": n}
