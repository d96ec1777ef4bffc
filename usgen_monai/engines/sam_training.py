"""Fine-tuning a promptable SAM on ``monai.engines``: box / point prompts simulated from the masks every iteration,
the mask decoder trained with frozen image and prompt encoders (or everything), real and synthetic pairs mixed at a
set fraction, resumable with :py:class:`usgen_monai.engines.checkpoint.ResumableCheckpoint`.

arXiv 2506.23664 fine-tunes SAM ViT-B's mask decoder only, with boxes from the mask widened by 0-20 px per side,
DiceCE loss (``sigmoid=True, squared_pred=True``), 256 x 256 images, Adam at 1e-5 for 20 epochs. Without a published
checkpoint the ``small`` configuration trains from scratch, so everything is trained (``set_trainable(net, "all")``).

The pieces a bundle config wires (``_target_``):

* :py:func:`set_trainable`: freeze all but the named parts; returns the parameters for the optimizer.
* :py:class:`RealSyntheticSampler`: each epoch draws a fixed number of synthetic and real items from
  ``ConcatDataset([real, synthetic])``.
* :py:class:`SamPrepareBatch` and :py:class:`SamInferer`: turn a batch of
  :py:class:`usgen_monai.transforms.prompts.ResizeLongestSidePadd` outputs into the network's call and its single-mask
  logits ``(B, 1, H, W)``, for ``SupervisedTrainer`` and ``SupervisedEvaluator`` alike.

Minimal example (a bundle's ``train.json`` wires the same objects)::

    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedTrainer
    from monai.losses import DiceCELoss
    from monai.transforms import Compose, ScaleIntensityd
    from torch.utils.data import ConcatDataset

    from usgen_monai.engines.checkpoint import ResumableCheckpoint
    from usgen_monai.networks.sam import build_sam
    from usgen_monai.transforms.prompts import RandBoxFromMaskd, ResizeLongestSidePadd

    transform = Compose([                              # items {"image": (1, W, H), "label": (1, W, H)}, loaded
        ScaleIntensityd("image"),
        RandBoxFromMaskd("label", margin_range=(0, 20)),           # a new box every iteration
        ResizeLongestSidePadd(["image", "label"], image_size=256, mode=["bilinear", "nearest"]),
    ])
    real, synthetic = Dataset(real_items, transform), Dataset(synthetic_items, transform)
    loader = DataLoader(
        ConcatDataset([real, synthetic]), batch_size=4,
        sampler=RealSyntheticSampler(len(real), len(synthetic), synthetic_fraction=0.5),
    )
    net = build_sam("vit_b", checkpoint="sam_vit_b_01ec64.pth")     # or build_sam("small") from scratch
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=20, train_data_loader=loader, network=net,
        optimizer=torch.optim.Adam(set_trainable(net, "mask_decoder"), lr=1e-5),
        loss_function=DiceCELoss(sigmoid=True, squared_pred=True),
        prepare_batch=SamPrepareBatch(), inferer=SamInferer(),
        train_handlers=[ResumableCheckpoint("runs/sam", {"sam": net}, constants={"sam": net.arguments})],
    )
    trainer.run()
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.inferers import Inferer
from monai.transforms import MapTransform
from monai.utils import CommonKeys as Keys
from torch.utils.data.distributed import DistributedSampler

__all__ = ["RealSyntheticSampler", "SamInferer", "SamPrepareBatch", "TargetMaskd", "set_trainable"]

_PARTS = ("image_encoder", "prompt_encoder", "mask_decoder")


def set_trainable(network: nn.Module, train: str | Sequence[str] = "mask_decoder") -> list[nn.Parameter]:
    """Freeze every parameter of a SAM network except those of the parts named in ``train``.

    Args:
        network: a :py:class:`usgen_monai.networks.sam.PromptableSam` (or a ``segment_anything`` ``Sam``).
        train: ``"mask_decoder"`` (the paper: image and prompt encoders frozen), ``"all"`` (full fine-tuning, and
            training from scratch), or a list of parts from ``image_encoder``, ``prompt_encoder``, ``mask_decoder``.

    Returns:
        the trainable parameters, for the optimizer (``torch.optim.Adam(set_trainable(net), lr=1e-5)``).
    """
    parts = list(_PARTS) if train == "all" else [train] if isinstance(train, str) else list(train)
    unknown = [p for p in parts if p not in _PARTS]
    if unknown or not parts:
        raise ValueError(f"train must be 'all' or parts of {list(_PARTS)}, got train={train!r}.")
    trainable = []
    for name, param in network.named_parameters():
        param.requires_grad_(name.split(".")[0] in parts)
        if param.requires_grad:
            trainable.append(param)
    return trainable


class SamPrepareBatch:
    """``prepare_batch`` for ``monai.engines``: a collated batch of
    :py:class:`usgen_monai.transforms.prompts.ResizeLongestSidePadd` outputs -> ``(images, labels, (), prompts)``.

    ``SupervisedTrainer`` then calls ``inferer(images, network, **prompts)`` with ``prompts`` holding whichever of
    ``boxes`` ``(B, N, 4)``, ``points`` ``(B, N, P, 2)`` and ``point_labels`` ``(B, N, P)`` the batch has. Labels are
    binarised to float (``> 0``) for a sigmoid loss; a batch without labels (inference) gives ``None``.

    Args:
        image_key: the images ``(B, C, S, S)``.
        label_key: the masks ``(B, 1, S, S)``.
        boxes_key: model-frame boxes.
        points_key: model-frame points.
        point_labels_key: their labels.
    """

    def __init__(
        self,
        image_key: str = Keys.IMAGE,
        label_key: str = Keys.LABEL,
        boxes_key: str = "boxes",
        points_key: str = "points",
        point_labels_key: str = "point_labels",
    ) -> None:
        self.image_key, self.label_key = image_key, label_key
        self.prompt_keys = {"boxes": boxes_key, "points": points_key, "point_labels": point_labels_key}

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple, dict[str, torch.Tensor]]:
        def move(value: Any) -> torch.Tensor:
            value = value.as_tensor() if hasattr(value, "as_tensor") else torch.as_tensor(value)
            return value.to(device=device, non_blocking=non_blocking, **kwargs)

        prompts = {arg: move(batchdata[key]) for arg, key in self.prompt_keys.items() if key in batchdata}
        if not prompts:
            raise ValueError(
                f"batch has no prompt: none of {sorted(self.prompt_keys.values())} among its keys {sorted(batchdata)}; "
                "simulate them (RandBoxFromMaskd) or give them, then ResizeLongestSidePadd."
            )
        images = move(batchdata[self.image_key]).float()
        labels = move(batchdata[self.label_key]) if self.label_key in batchdata else None
        return images, None if labels is None else (labels > 0).float(), (), prompts


class SamInferer(Inferer):
    """Run a :py:class:`usgen_monai.networks.sam.PromptableSam` for training and evaluation: its single-mask logits
    ``(B, N, H, W)`` (one channel per prompt; N = 1 with :py:class:`SamPrepareBatch`), which fit a
    ``DiceCELoss(sigmoid=True)`` against ``(B, 1, H, W)`` masks and ``Activations(sigmoid=True)`` /
    ``AsDiscrete(threshold=0.5)`` postprocessing.

    Args:
        multimask_output: predict the network's several masks per prompt and keep, for each prompt, the one with
            the highest predicted IoU (SAM's way with ambiguous single clicks); ``False`` predicts one mask.
    """

    def __init__(self, multimask_output: bool | str = False) -> None:
        from usgen_monai.utils import as_flag

        super().__init__()
        self.multimask_output = as_flag(multimask_output)  # a command line's "false" is a string

    def __call__(  # type: ignore[override]
        self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        logits, iou = network(inputs, *args, multimask_output=self.multimask_output, **kwargs)
        return self.select(logits, iou)

    @staticmethod
    def select(logits: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
        """``(B, N, H, W)`` from the network's ``(B, N, M, H, W)`` logits: the one mask, or for each prompt the mask
        of the highest predicted IoU ``(B, N, M)``."""
        if logits.shape[2] == 1:
            return logits[:, :, 0]
        best = iou.argmax(dim=2)[..., None, None, None].expand(-1, -1, 1, *logits.shape[-2:])
        return logits.gather(2, best)[:, :, 0]


class RealSyntheticSampler(DistributedSampler):
    """Indices into ``ConcatDataset([real, synthetic])`` with a fixed share of synthetic items per epoch.

    Each epoch has ``num_samples`` items: ``round(synthetic_fraction * num_samples)`` synthetic ones and the rest
    real, each group drawn from a fresh random permutation of its items (cycled when an epoch needs more items than
    the group has), then shuffled together. By default an epoch shows every real item once:
    ``num_samples = ceil(num_real / (1 - synthetic_fraction))`` (e.g. 16 real items at fraction 0.5: 16 real and 16
    synthetic), or ``num_synthetic`` at fraction 1. Fixed counts rather than a coin flip per item keep the ratio exact
    at the small data sets this is for.

    It is a ``DistributedSampler``, so MONAI workflows call :py:meth:`set_epoch` at every epoch start (also after
    resuming: the draws depend only on ``seed`` and the epoch), and in a multi-process run each rank takes its share
    of the epoch. Outside a distributed run it is one replica.

    Args:
        num_real: items of the real dataset (first in the ``ConcatDataset``).
        num_synthetic: items of the synthetic dataset (second).
        synthetic_fraction: share of synthetic items per epoch, in ``[0, 1]``.
        num_samples: items per epoch (over all ranks); default as above.
        seed: seed of the draws.
        num_replicas: processes sharing an epoch; default: the distributed world size, else 1.
        rank: this process's rank; default: the distributed rank, else 0.
    """

    def __init__(
        self,
        num_real: int,
        num_synthetic: int,
        synthetic_fraction: float = 0.5,
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if not 0.0 <= synthetic_fraction <= 1.0:
            raise ValueError(f"synthetic_fraction must be in [0, 1], got synthetic_fraction={synthetic_fraction}.")
        if num_real < 0 or num_synthetic < 0:
            raise ValueError(f"item counts must be >= 0, got num_real={num_real}, num_synthetic={num_synthetic}.")
        if num_samples is None:
            num_samples = (
                num_synthetic if synthetic_fraction == 1.0 else math.ceil(num_real / (1.0 - synthetic_fraction))
            )
        self.total = int(num_samples)
        self.num_synthetic_samples = round(synthetic_fraction * self.total)
        self.num_real_samples = self.total - self.num_synthetic_samples
        if self.total < 1:
            raise ValueError(
                f"an epoch would be empty: num_real={num_real}, num_synthetic={num_synthetic}, "
                f"synthetic_fraction={synthetic_fraction}, num_samples={num_samples}."
            )
        if (self.num_real_samples and not num_real) or (self.num_synthetic_samples and not num_synthetic):
            raise ValueError(
                f"synthetic_fraction={synthetic_fraction} needs {self.num_real_samples} real and "
                f"{self.num_synthetic_samples} synthetic items per epoch, but num_real={num_real} and "
                f"num_synthetic={num_synthetic}."
            )
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        num_replicas = (
            num_replicas if num_replicas is not None else torch.distributed.get_world_size() if distributed else 1
        )
        rank = rank if rank is not None else torch.distributed.get_rank() if distributed else 0
        super().__init__(range(num_real + num_synthetic), num_replicas=num_replicas, rank=rank, seed=seed)
        self.num_real, self.num_synthetic_items = int(num_real), int(num_synthetic)
        self.synthetic_fraction = float(synthetic_fraction)
        self.num_samples = math.ceil(self.total / self.num_replicas)  # per rank, as DistributedSampler counts
        self.total_size = self.num_samples * self.num_replicas

    @staticmethod
    def _draw(count: int, size: int, offset: int, generator: torch.Generator) -> list[int]:
        """``count`` indices from ``offset .. offset + size - 1``: random permutations, concatenated as needed."""
        rounds = [torch.randperm(size, generator=generator) for _ in range(math.ceil(count / size))] if count else []
        return (torch.cat(rounds)[:count] + offset).tolist() if rounds else []

    def epoch_indices(self, epoch: int) -> list[int]:
        """All ranks' indices of ``epoch``, before the split across ranks."""
        generator = torch.Generator().manual_seed(self.seed + int(epoch))
        real = self._draw(self.num_real_samples, self.num_real, 0, generator)
        synthetic = self._draw(self.num_synthetic_samples, self.num_synthetic_items, self.num_real, generator)
        both = real + synthetic
        return [both[i] for i in torch.randperm(len(both), generator=generator).tolist()]

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices(self.epoch)
        indices += indices[: self.total_size - len(indices)]  # pad so every rank gets as many, as DistributedSampler
        return iter(indices[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class TargetMaskd(MapTransform):
    """The binary task mask of a label map: 1 where the label is one of the item's target classes, else 0.

    Synthetic pairs from the CSG bundle carry label maps of the unified classes; the item's ``values_key`` (set by
    :py:func:`usgen_monai.bundle.synthetic_pairs` from the datalist's ``target_labels``) lists the classes of the
    task (the fetal head: skull and brain). Items without ``values_key`` pass unchanged (real pairs, binarised when
    loaded), so one pipeline serves both.

    Args:
        keys: the label key(s).
        values_key: the item key holding the target classes.
        allow_missing_keys: don't raise an exception if a label key is missing.
    """

    def __init__(self, keys: Any = Keys.LABEL, values_key: str = "target_labels", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.values_key = values_key

    def __call__(self, data: Mapping[Any, Any]) -> dict[Any, Any]:
        d = dict(data)
        values = d.pop(self.values_key, None)
        if values is None:
            return d
        values = [int(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]
        if not values:
            raise ValueError(f"{self.values_key} is empty: no class makes the task mask.")
        for key in self.key_iterator(d):
            label = d[key]
            mask = None
            for v in values:
                hit = label == v
                mask = hit if mask is None else mask | hit
            d[key] = mask.to(label.dtype) if isinstance(mask, torch.Tensor) else mask.astype(label.dtype)
        return d
