"""``prepare_batch`` callables for ``monai.engines.SupervisedTrainer`` that turn data-set batches into diffusion
training inputs, in the manner of MONAI's ``DiffusionPrepareBatch``: each returns
``(x0, target, (), kwargs)`` where ``kwargs`` carries ``noise``, ``timesteps`` and the conditions, and
:py:class:`usgen_monai.engines.DenoiserInferer` noises ``x0`` and calls the network.

Condition dropout (for classifier-free guidance) is decided here, per sample, and expressed as masks
(``semantic_mask``, ``tabular_mask``, ``image_mask``) that make the network substitute its own null conditions, so
training and sampling use the very same nulls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.engines.utils import PrepareBatch
from monai.networks.utils import one_hot

from usgen_monai.engines.context import ContextVocabulary
from usgen_monai.engines.schedulers import NoiseSchedule

__all__ = ["encode_latents", "label_to_onehot", "TranslatorPrepareBatch", "LabelMapPrepareBatch", "SeededPrepareBatch"]


@torch.no_grad()
def encode_latents(autoencoder: nn.Module, images: torch.Tensor, scale_factor: float = 1.0) -> torch.Tensor:
    """Stage-1 latents of ``images`` for the diffusion model: the posterior mean of an ``AutoencoderKL`` times the
    latent scale factor. The mean (not a posterior sample) is used everywhere (training, scale factor, context
    images) so latents are deterministic and can be cached.

    Args:
        autoencoder: ``AutoencoderKL`` (anything whose ``encode`` returns ``(z_mu, z_sigma)``).
        images: ``(B, C, H, W)``.
        scale_factor: multiplies the latents (see :py:func:`usgen_monai.engines.compute_latent_scale_factor`).
    """
    z_mu, _ = autoencoder.encode(images)
    return z_mu * scale_factor


def label_to_onehot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(B, 1, H, W)`` integer label map -> ``(B, num_classes, H, W)`` float one-hot; a ``(B, num_classes, H, W)``
    input with ``num_classes > 1`` is taken as one-hot already."""
    if label.ndim < 3:
        raise ValueError(
            f"label must be (B, 1, *spatial) or (B, num_classes, *spatial), got shape {tuple(label.shape)}."
        )
    if label.shape[1] == num_classes and num_classes > 1:
        return label.float()
    if label.shape[1] != 1:
        raise ValueError(
            f"label must have 1 channel (label map) or num_classes={num_classes} channels (one-hot), "
            f"got shape {tuple(label.shape)}."
        )
    lab = label.long()
    if bool((lab < 0).any()) or bool((lab >= num_classes).any()):
        found = torch.unique(lab).tolist()
        raise ValueError(f"label values must be in [0, {num_classes}), found {found}.")
    return one_hot(lab, num_classes=num_classes, dim=1).float()


def _check_prob(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {name}={value}.")
    return value


def _to(value: Any, device: str | torch.device | None, non_blocking: bool, **kwargs: Any) -> Any:
    return value.to(device=device, non_blocking=non_blocking, **kwargs) if isinstance(value, torch.Tensor) else value


class TranslatorPrepareBatch(PrepareBatch):
    """Batches of (image, label map, context[, context image]) -> latent diffusion inputs for a
    :py:class:`~usgen_monai.networks.LatentTranslator`, with semantic/context condition dropout.

    Each sample draws one uniform number ``u``: ``u < drop_both_prob`` drops both conditions, the next
    ``drop_semantic_prob`` drops only the semantic map and the next ``drop_context_prob`` only the context.

    Args:
        schedule: the noise schedule (noise levels and training target).
        num_classes: one-hot channels of the semantic map.
        autoencoder: stage-1 model; ``None`` when ``image_key`` (and ``context_image_key``) hold latents already
            (scaled), e.g. from a cache.
        scale_factor: latent scale factor applied after encoding.
        vocabulary: encodes ``batch[context_key]``; ``None`` = no tabular context.
        image_key: the image (or latent) key.
        label_key: the label map (``(B, 1, H, W)`` integers in the unified label space, or one-hot) key.
        context_key: the context dict key (collated by ``list_data_collate``).
        context_image_key: the context image key; absent from a batch = no image context. Pair each image with a
            *different* image of a similar style (CSG's context selection, or the simulator with the same acquisition
            settings and another seed) so that the image context carries appearance, not the target's anatomy.
        drop_semantic_prob: probability of dropping only the semantic map.
        drop_context_prob: probability of dropping only the context (tabular and image).
        drop_both_prob: probability of dropping both.
        drop_image_prob: probability of dropping the context image alone among the samples that keep their context,
            drawn independently of the others. When the context image and the tabular context describe the same
            acquisition (as in simulated pairs), a model that always sees both learns appearance from the image and
            ignores tabular fields such as gain; dropping the image often enough makes the tabular context steer
            appearance on its own.

    Returns (from ``__call__``):
        ``(latents, target, (), kwargs)`` with ``kwargs`` = ``noise``, ``timesteps``, ``semantic``,
        ``semantic_mask``, ``categorical``, ``scalars``, ``context_latents``, ``tabular_mask``, ``image_mask``.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        num_classes: int,
        autoencoder: nn.Module | None = None,
        scale_factor: float = 1.0,
        vocabulary: ContextVocabulary | None = None,
        image_key: str = "image",
        label_key: str = "label",
        context_key: str = "context",
        context_image_key: str | None = "context_image",
        drop_semantic_prob: float = 0.1,
        drop_context_prob: float = 0.1,
        drop_both_prob: float = 0.1,
        drop_image_prob: float = 0.0,
    ) -> None:
        self.drop_semantic_prob = _check_prob("drop_semantic_prob", drop_semantic_prob)
        self.drop_image_prob = _check_prob("drop_image_prob", drop_image_prob)
        self.drop_context_prob = _check_prob("drop_context_prob", drop_context_prob)
        self.drop_both_prob = _check_prob("drop_both_prob", drop_both_prob)
        total = self.drop_semantic_prob + self.drop_context_prob + self.drop_both_prob
        if total > 1.0 + 1e-9:
            raise ValueError(
                "drop probabilities must sum to at most 1, got drop_semantic_prob="
                f"{drop_semantic_prob}, drop_context_prob={drop_context_prob}, drop_both_prob={drop_both_prob}."
            )
        if scale_factor <= 0:
            raise ValueError(f"scale_factor must be positive, got scale_factor={scale_factor}.")
        self.schedule = schedule
        self.num_classes = int(num_classes)
        self.autoencoder = autoencoder
        self.scale_factor = float(scale_factor)
        self.vocabulary = vocabulary
        self.image_key = image_key
        self.label_key = label_key
        self.context_key = context_key
        self.context_image_key = context_image_key

    def _latents(self, images: torch.Tensor) -> torch.Tensor:
        if self.autoencoder is None:
            return images.float()
        return encode_latents(self.autoencoder, images.float(), self.scale_factor)

    def dropout_masks(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample keep flags ``(semantic_keep, context_keep)``, both ``(B,)`` bool."""
        u = torch.rand(batch_size, device=device)
        p_both, p_sem, p_ctx = self.drop_both_prob, self.drop_semantic_prob, self.drop_context_prob
        drop_both = u < p_both
        drop_sem = (u >= p_both) & (u < p_both + p_sem)
        drop_ctx = (u >= p_both + p_sem) & (u < p_both + p_sem + p_ctx)
        return ~(drop_both | drop_sem), ~(drop_both | drop_ctx)

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict[str, Any]]:
        if not isinstance(batchdata, Mapping):
            raise ValueError(f"TranslatorPrepareBatch expects a dict batch, got {type(batchdata).__name__}.")
        for key in (self.image_key, self.label_key):
            if key not in batchdata:
                raise ValueError(f"batch has no {key!r} entry; keys are {sorted(batchdata)}.")
        images = _to(batchdata[self.image_key], device, non_blocking, **kwargs)
        latents = self._latents(images)
        bsz = latents.shape[0]
        semantic = label_to_onehot(_to(batchdata[self.label_key], device, non_blocking, **kwargs), self.num_classes)

        categorical = scalars = None
        if self.vocabulary is not None and self.context_key in batchdata:
            categorical, scalars = self.vocabulary.encode(
                batchdata[self.context_key], device=latents.device, batch_size=bsz
            )
        context_latents = None
        if self.context_image_key is not None and self.context_image_key in batchdata:
            context_latents = self._latents(_to(batchdata[self.context_image_key], device, non_blocking, **kwargs))

        semantic_keep, context_keep = self.dropout_masks(bsz, latents.device)
        image_keep = context_keep & (torch.rand(bsz, device=latents.device) >= self.drop_image_prob)
        noise = torch.randn_like(latents)
        timesteps = self.schedule.sample_timesteps(latents)
        target = self.schedule.training_target(latents, noise, timesteps)
        infer_kwargs = {
            "noise": noise,
            "timesteps": timesteps,
            "semantic": semantic,
            "semantic_mask": semantic_keep,
            "categorical": categorical,
            "scalars": scalars,
            "context_latents": context_latents,
            "tabular_mask": context_keep,
            "image_mask": image_keep,
        }
        return latents, target, (), infer_kwargs


class LabelMapPrepareBatch(PrepareBatch):
    """Batches of label maps (+ context) -> diffusion inputs for the mask prior, a MONAI ``DiffusionModelUNet`` over
    one-hot maps scaled to ``[-1, 1]`` with class-embedding conditioning on a combination of context fields
    (``ContextVocabulary.class_labels``), and condition dropout to ``null_class_label``.

    Args:
        schedule: the noise schedule.
        num_classes: one-hot channels.
        vocabulary: encodes the conditioning fields; ``None`` trains an unconditional prior.
        condition_fields: categorical fields combined into the class label, e.g. ``("preset", "finding")``.
        label_key: label map key.
        context_key: context dict key.
        drop_condition_prob: probability of replacing a sample's class label by ``null_class_label``.
        null_class_label: the unconditional label (0 in ``ContextVocabulary.class_labels``).

    Returns (from ``__call__``):
        ``(x0, target, (), {"noise", "timesteps", "class_labels"})`` (``class_labels`` only with a vocabulary).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        num_classes: int,
        vocabulary: ContextVocabulary | None = None,
        condition_fields: Sequence[str] = ("preset", "finding"),
        label_key: str = "label",
        context_key: str = "context",
        drop_condition_prob: float = 0.1,
        null_class_label: int = 0,
    ) -> None:
        self.schedule = schedule
        self.num_classes = int(num_classes)
        self.vocabulary = vocabulary
        self.condition_fields = tuple(condition_fields)
        if vocabulary is not None:
            vocabulary.num_class_labels(self.condition_fields)  # validates the field names
        self.label_key = label_key
        self.context_key = context_key
        self.drop_condition_prob = _check_prob("drop_condition_prob", drop_condition_prob)
        self.null_class_label = int(null_class_label)

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict[str, Any]]:
        if not isinstance(batchdata, Mapping) or self.label_key not in batchdata:
            keys = sorted(batchdata) if isinstance(batchdata, Mapping) else type(batchdata).__name__
            raise ValueError(f"batch has no {self.label_key!r} entry; got {keys}.")
        onehot = label_to_onehot(_to(batchdata[self.label_key], device, non_blocking, **kwargs), self.num_classes)
        x0 = onehot * 2.0 - 1.0
        noise = torch.randn_like(x0)
        timesteps = self.schedule.sample_timesteps(x0)
        target = self.schedule.training_target(x0, noise, timesteps)
        infer_kwargs: dict[str, Any] = {"noise": noise, "timesteps": timesteps}
        if self.vocabulary is not None:
            if self.context_key not in batchdata:
                raise ValueError(f"batch has no {self.context_key!r} entry needed for the class labels.")
            labels = self.vocabulary.class_labels(
                batchdata[self.context_key], self.condition_fields, device=x0.device, batch_size=x0.shape[0]
            )
            drop = torch.rand(labels.shape[0], device=x0.device) < self.drop_condition_prob
            infer_kwargs["class_labels"] = torch.where(drop, torch.full_like(labels, self.null_class_label), labels)
        return x0, target, (), infer_kwargs


class SeededPrepareBatch(PrepareBatch):
    """Another ``prepare_batch`` run with fixed randomness, for validation: every call draws its noise, timesteps and
    condition dropout from the global generators seeded with ``seed``, inside ``torch.random.fork_rng`` so the
    training's random stream is left as it was. A validation loss then changes only when the network does.

    Args:
        prepare_batch: e.g. a :py:class:`TranslatorPrepareBatch` or :py:class:`LabelMapPrepareBatch` (with its
            dropout probabilities set to 0 for a validation loss of the fully conditioned model).
        seed: the seed of every call.
    """

    def __init__(self, prepare_batch: PrepareBatch, seed: int = 0) -> None:
        self.prepare_batch = prepare_batch
        self.seed = int(seed)

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> Any:
        cuda = device is not None and torch.device(device).type == "cuda"
        devices = [torch.device(device).index or 0] if cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            return self.prepare_batch(batchdata, device, non_blocking, **kwargs)
