"""Promptable segmentation with the Segment Anything architecture (image encoder ViT, prompt encoder, mask decoder),
built from explicit arguments with the ``segment-anything`` package's own modules, and loaded from local checkpoints.

Kirillov et al., "Segment Anything", ICCV 2023 (arXiv 2304.02643); fine-tuned for fetal-head ultrasound with frozen
image and prompt encoders by arXiv 2506.23664.

* :py:class:`PromptableSam` is ``segment_anything.modeling.Sam`` with typed size arguments, a batched
  ``forward(images, boxes, points, point_labels)`` and the one place where grey ultrasound becomes SAM's input
  (:py:meth:`PromptableSam.preprocess`). Its state dict has the key layout of the published checkpoints.
* :data:`SAM_ARCHITECTURES` holds the published sizes (``vit_b``, ``vit_l``, ``vit_h``: the arguments of
  ``segment_anything/build_sam.py``), ``small``, a CPU-sized configuration of the same architecture, and ``tiny``
  for tests.
* :py:func:`build_sam` builds one of them, optionally loading weights with :py:func:`load_sam_weights`. Nothing is
  ever downloaded: a published checkpoint (SAM ViT-B/L/H, MedSAM) is a local file saved with
  ``torch.save(model.state_dict())``.

Coordinates: prompts are pixel coordinates in the model's frame (the image resized so that its long side is
``image_size``, then padded at the bottom/right to ``image_size x image_size``, see
:py:class:`usgen_monai.transforms.prompts.LongestSideFrame`), ``x`` = column (last axis), ``y`` = row.

Example::

    net = build_sam("small")                                   # trains from scratch
    sam_b = build_sam("vit_b", checkpoint="/data/sam_vit_b_01ec64.pth")   # a local published checkpoint
    logits, iou = net(images, boxes=torch.tensor([[[40.0, 50.0, 200.0, 180.0]]]))   # (1, 1, 1, 256, 256), (1, 1, 1)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

__all__ = ["SAM_ARCHITECTURES", "PromptableSam", "build_sam", "load_sam_weights", "read_sam_state_dict"]

# One row per architecture. The published sizes take the arguments of segment_anything/build_sam.py; "small" is this
# package's CPU configuration of the same architecture (256 px, 16 x 16 tokens, 1.85 M parameters: one box on a
# 256 x 256 image in tens of milliseconds on 2 CPU cores) and "tiny" is for tests and smoke runs of configs.
_COLUMNS = (
    "image_size",
    "patch_size",
    "encoder_embed_dim",
    "encoder_depth",
    "encoder_num_heads",
    "encoder_global_attn_indexes",
    "encoder_window_size",
    "prompt_embed_dim",
    "mask_in_chans",
    "decoder_mlp_dim",
    "decoder_num_heads",
    "iou_head_hidden_dim",
)
_ROWS = {
    # name: (image, patch, ViT dim, depth, heads, global attention blocks, window, prompt dim, mask in, MLP, heads, IoU)
    "vit_b": (1024, 16, 768, 12, 12, (2, 5, 8, 11), 14, 256, 16, 2048, 8, 256),
    "vit_l": (1024, 16, 1024, 24, 16, (5, 11, 17, 23), 14, 256, 16, 2048, 8, 256),
    "vit_h": (1024, 16, 1280, 32, 16, (7, 15, 23, 31), 14, 256, 16, 2048, 8, 256),
    "small": (256, 16, 128, 4, 4, (1, 3), 8, 128, 16, 512, 4, 128),
    "tiny": (64, 8, 32, 2, 2, (1,), 4, 32, 8, 64, 2, 32),
}
SAM_ARCHITECTURES: dict[str, dict[str, Any]] = {name: dict(zip(_COLUMNS, row)) for name, row in _ROWS.items()}
"""Constructor arguments of :py:class:`PromptableSam` for each named size (the others keep their defaults)."""

# ImageNet RGB statistics on a 0-255 scale, as every published SAM checkpoint was trained with
_PIXEL_MEAN = (123.675, 116.28, 103.53)
_PIXEL_STD = (58.395, 57.12, 57.375)
# the layout of usgen_monai.engines.checkpoint files (networks never import engines, so the name is repeated here)
_PACKAGE_CHECKPOINT_FORMAT = "usgen-monai-checkpoint"


class PromptableSam(Sam):
    """Segment Anything (image encoder ViT, prompt encoder, mask decoder) with box and point prompts, batched.

    A subclass of ``segment_anything.modeling.Sam`` built from typed size arguments, so its state dict has the
    published key layout (``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``) and the package's
    ``SamPredictor`` works with it too. The defaults are the ``small`` configuration of :data:`SAM_ARCHITECTURES`;
    :py:func:`build_sam` builds the published sizes.

    Args:
        image_size: side of the square model input (1024 for published checkpoints).
        patch_size: ViT patch size; the image embedding is ``image_size // patch_size`` square.
        encoder_embed_dim: ViT width.
        encoder_depth: number of ViT blocks.
        encoder_num_heads: attention heads per ViT block.
        encoder_global_attn_indexes: blocks with global attention; the others attend within windows.
        encoder_window_size: side of the attention windows (0: all blocks global).
        encoder_mlp_ratio: ViT MLP width / ``encoder_embed_dim``.
        prompt_embed_dim: channels of the image embedding, prompt tokens and mask decoder.
        mask_in_chans: hidden channels of the prompt encoder's mask-input branch.
        decoder_depth: layers of the mask decoder's two-way transformer.
        decoder_mlp_dim: MLP width of that transformer.
        decoder_num_heads: its attention heads (must divide ``prompt_embed_dim // 2``).
        iou_head_depth: layers of the IoU prediction head.
        iou_head_hidden_dim: width of the IoU prediction head.
        num_multimask_outputs: masks predicted with ``multimask_output=True``.
        pixel_mean: per-channel (RGB) mean on SAM's 0-255 scale.
        pixel_std: per-channel (RGB) standard deviation on that scale.
        intensity_scale: factor from the input intensity range to SAM's 0-255 scale (255 for images in [0, 1]).

    Example::

        >>> net = PromptableSam()
        >>> logits, iou = net(torch.rand(2, 1, 256, 256), boxes=torch.tensor([[[10.0, 20, 90, 120]], [[5, 5, 60, 50]]]))
        >>> logits.shape, iou.shape
        (torch.Size([2, 1, 1, 256, 256]), torch.Size([2, 1, 1]))

    See Also:
        :py:class:`usgen_monai.engines.sam_predictor.PromptPredictor`: one cached embedding, many prompts.
    """

    def __init__(
        self,
        image_size: int = 256,
        patch_size: int = 16,
        encoder_embed_dim: int = 128,
        encoder_depth: int = 4,
        encoder_num_heads: int = 4,
        encoder_global_attn_indexes: Sequence[int] = (1, 3),
        encoder_window_size: int = 8,
        encoder_mlp_ratio: float = 4.0,
        prompt_embed_dim: int = 128,
        mask_in_chans: int = 16,
        decoder_depth: int = 2,
        decoder_mlp_dim: int = 512,
        decoder_num_heads: int = 4,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 128,
        num_multimask_outputs: int = 3,
        pixel_mean: Sequence[float] = _PIXEL_MEAN,
        pixel_std: Sequence[float] = _PIXEL_STD,
        intensity_scale: float = 255.0,
    ) -> None:
        arguments = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        _check_arguments(**arguments)
        embedding_size = image_size // patch_size
        super().__init__(
            image_encoder=ImageEncoderViT(
                img_size=image_size,
                patch_size=patch_size,
                embed_dim=encoder_embed_dim,
                depth=encoder_depth,
                num_heads=encoder_num_heads,
                mlp_ratio=encoder_mlp_ratio,
                out_chans=prompt_embed_dim,
                qkv_bias=True,
                norm_layer=partial(nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                window_size=encoder_window_size,
                global_attn_indexes=tuple(int(i) for i in encoder_global_attn_indexes),
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=prompt_embed_dim,
                image_embedding_size=(embedding_size, embedding_size),
                input_image_size=(image_size, image_size),
                mask_in_chans=mask_in_chans,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=num_multimask_outputs,
                transformer=TwoWayTransformer(
                    depth=decoder_depth,
                    embedding_dim=prompt_embed_dim,
                    mlp_dim=decoder_mlp_dim,
                    num_heads=decoder_num_heads,
                ),
                transformer_dim=prompt_embed_dim,
                iou_head_depth=iou_head_depth,
                iou_head_hidden_dim=iou_head_hidden_dim,
            ),
            pixel_mean=[float(v) for v in pixel_mean],
            pixel_std=[float(v) for v in pixel_std],
        )
        self.image_size = int(image_size)
        self.intensity_scale = float(intensity_scale)
        self.arguments = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in arguments.items()}
        """The constructor's arguments as plain values (for checkpoint constants: ``PromptableSam(**arguments)``)."""

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Turn model-frame images into the image encoder's input: the one place where grey ultrasound becomes what
        SAM expects.

        A single grey channel is repeated to SAM's three (RGB) channels, intensities are multiplied by
        ``intensity_scale`` (``[0, 1]`` -> SAM's 0-255 scale), normalised with ``pixel_mean`` / ``pixel_std``, and an
        image smaller than ``image_size`` is padded at the bottom/right with zeros after normalisation, as
        ``segment_anything`` does. Images from :py:class:`usgen_monai.transforms.prompts.ResizeLongestSidePad`
        arrive already padded, with black (intensity 0, as outside an ultrasound sector).

        Args:
            x: ``(B, 1 or 3, H, W)`` with ``H, W <= image_size``, intensities in ``[0, 1]`` for the default scale.

        Returns:
            ``(B, 3, image_size, image_size)``.
        """
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"PromptableSam expects images of shape (B, 1 or 3, H, W), got {tuple(x.shape)}.")
        if max(x.shape[-2:]) > self.image_size:
            raise ValueError(
                f"images of spatial size {tuple(x.shape[-2:])} exceed the model's image_size={self.image_size}; "
                "resize the long side first (ResizeLongestSidePad)."
            )
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return super().preprocess(x.float() * self.intensity_scale)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Image embeddings ``(B, prompt_embed_dim, image_size // patch_size, image_size // patch_size)`` of model-frame
        images ``(B, 1 or 3, H, W)`` (see :py:meth:`preprocess`)."""
        return self.image_encoder(self.preprocess(images))

    def decode(
        self,
        embeddings: torch.Tensor,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        multimask_output: bool = False,
        output_size: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt encoder and mask decoder on given image embeddings: the part that runs again for every prompt.

        Args:
            embeddings: ``(B, C, h, w)`` from :py:meth:`embed_images`.
            boxes: ``(B, N, 4)`` (or ``(B, 4)`` for N = 1) as ``[x0, y0, x1, y1]`` in model-frame pixels; an image
                whose boxes are all NaN has no box prompt (batches that mix box and click prompts).
            points: ``(B, N, P, 2)`` (or ``(B, P, 2)`` for N = 1) as ``[x, y]`` in model-frame pixels.
            point_labels: ``(B, N, P)`` (or ``(B, P)``): 1 foreground, 0 background, -1 padding (ignored); an image
                whose labels are all -1 has no point prompt. Each image needs a box or a point.
            multimask_output: predict ``num_multimask_outputs`` masks per prompt instead of one.
            output_size: ``(H, W)`` to crop the logits to (the unpadded image); default the whole model frame.

        Returns:
            mask logits ``(B, N, M, H, W)`` at the model's input resolution and IoU predictions ``(B, N, M)``, where
            N is the number of prompts per image and M is 1 or ``num_multimask_outputs``.
        """
        boxes, points, point_labels = _batched_prompts(embeddings.shape[0], boxes, points, point_labels)
        output_size = (self.image_size, self.image_size) if output_size is None else tuple(output_size)
        dense_pe = self.prompt_encoder.get_dense_pe()
        logits, ious = [], []
        # the package's MaskDecoder repeats one image's embedding for all of its prompts, so it runs once per image
        for b in range(embeddings.shape[0]):
            box, point = _item_prompts(b, boxes, points, point_labels)
            sparse, dense = self.prompt_encoder(points=point, boxes=box, masks=None)
            low_res, iou = self.mask_decoder(
                image_embeddings=embeddings[b : b + 1],
                image_pe=dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
            )
            logits.append(self.postprocess_masks(low_res, output_size, output_size))
            ious.append(iou)
        return torch.stack(logits), torch.stack(ious)

    def forward(  # type: ignore[override]
        self,
        images: torch.Tensor,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits for a batch of images with one or more prompts each.

        Prompt ``n`` of image ``b`` is the box ``boxes[b, n]`` together with the points ``points[b, n]``; give boxes,
        points or both. Every image of a batch has the same number of prompts ``N`` and points ``P`` (pad points
        with label -1).

        Args:
            images: ``(B, 1 or 3, H, W)`` model-frame images, intensities in ``[0, 1]`` (see :py:meth:`preprocess`),
                ``H, W <= image_size``; usually ``image_size`` square from
                :py:class:`usgen_monai.transforms.prompts.ResizeLongestSidePad`.
            boxes: ``(B, N, 4)`` or ``(B, 4)``, ``[x0, y0, x1, y1]`` in model-frame pixels (x = column).
            points: ``(B, N, P, 2)`` or ``(B, P, 2)``, ``[x, y]`` in model-frame pixels.
            point_labels: ``(B, N, P)`` or ``(B, P)``: 1 foreground, 0 background, -1 padding.
            multimask_output: M = ``num_multimask_outputs`` masks per prompt instead of 1.

        Returns:
            ``(logits, iou_predictions)``: mask logits ``(B, N, M, H, W)`` at the input's resolution (threshold at 0)
            and the predicted IoU of each mask ``(B, N, M)``.
        """
        return self.decode(
            self.embed_images(images), boxes, points, point_labels, multimask_output, tuple(images.shape[-2:])
        )


def _check_arguments(**kw: Any) -> None:  # every argument of PromptableSam
    """Reject size combinations the package's modules would fail on later (or silently mishandle)."""
    if kw["image_size"] % kw["patch_size"]:
        raise ValueError(
            f"image_size must be a multiple of patch_size, got image_size={kw['image_size']}, "
            f"patch_size={kw['patch_size']}."
        )
    if kw["encoder_embed_dim"] % kw["encoder_num_heads"]:
        raise ValueError(
            f"encoder_num_heads must divide encoder_embed_dim, got encoder_embed_dim={kw['encoder_embed_dim']}, "
            f"encoder_num_heads={kw['encoder_num_heads']}."
        )
    bad = [i for i in kw["encoder_global_attn_indexes"] if not 0 <= int(i) < kw["encoder_depth"]]
    if bad:
        raise ValueError(
            f"encoder_global_attn_indexes must be block indices below encoder_depth={kw['encoder_depth']}, "
            f"got encoder_global_attn_indexes={list(kw['encoder_global_attn_indexes'])}."
        )
    if kw["encoder_window_size"] < 0:
        raise ValueError(f"encoder_window_size must be >= 0, got encoder_window_size={kw['encoder_window_size']}.")
    if kw["prompt_embed_dim"] % 8 or (kw["prompt_embed_dim"] // 2) % kw["decoder_num_heads"]:
        raise ValueError(
            "prompt_embed_dim must be a multiple of 8 and decoder_num_heads must divide prompt_embed_dim // 2, got "
            f"prompt_embed_dim={kw['prompt_embed_dim']}, decoder_num_heads={kw['decoder_num_heads']}."
        )
    if kw["mask_in_chans"] % 4:
        raise ValueError(f"mask_in_chans must be a multiple of 4, got mask_in_chans={kw['mask_in_chans']}.")
    if len(kw["pixel_mean"]) != 3 or len(kw["pixel_std"]) != 3 or min(kw["pixel_std"]) <= 0:
        raise ValueError(
            f"pixel_mean and pixel_std need three (RGB) values, std positive, got pixel_mean={list(kw['pixel_mean'])}, "
            f"pixel_std={list(kw['pixel_std'])}."
        )


def _item_prompts(
    b: int, boxes: torch.Tensor | None, points: torch.Tensor | None, labels: torch.Tensor | None
) -> tuple[torch.Tensor | None, tuple[torch.Tensor, torch.Tensor] | None]:
    """Image ``b``'s prompts for SAM's prompt encoder: its boxes unless all NaN, its points unless all padding, so
    that an image prompted by a box alone (or by clicks alone) in a mixed batch is encoded as it is at inference."""
    box = None if boxes is None or torch.isnan(boxes[b]).all() else boxes[b]
    point = None if points is None or bool((labels[b] == -1).all()) else (points[b], labels[b])
    if box is not None and torch.isnan(box).any():
        raise ValueError(f"image {b} of the batch has boxes with NaN coordinates; a missing box is all NaN.")
    if box is None and point is None:
        raise ValueError(f"image {b} of the batch has no prompt: its boxes are NaN and its points all padding (-1).")
    return box, point


def _batched_prompts(
    batch: int, boxes: torch.Tensor | None, points: torch.Tensor | None, labels: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Check the prompt tensors of :py:meth:`PromptableSam.decode` and bring them to ``(B, N, 4)``, ``(B, N, P, 2)``
    and ``(B, N, P)``."""
    if boxes is None and points is None:
        raise ValueError("PromptableSam needs a prompt: give boxes, points (with point_labels) or both.")
    if (points is None) != (labels is None):
        raise ValueError("give points and point_labels together (labels: 1 foreground, 0 background, -1 padding).")
    if boxes is not None:
        boxes = boxes.float()
        if boxes.ndim == 2:
            boxes = boxes[:, None]
        if boxes.ndim != 3 or boxes.shape[0] != batch or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be (B={batch}, N, 4) or (B, 4), got {tuple(boxes.shape)}.")
    if points is not None:
        points, labels = points.float(), labels.long()
        if points.ndim == 3:
            points, labels = points[:, None], labels[:, None]
        if points.ndim != 4 or points.shape[0] != batch or points.shape[-1] != 2 or labels.shape != points.shape[:-1]:
            raise ValueError(
                f"points must be (B={batch}, N, P, 2) or (B, P, 2) with point_labels (B, N, P) or (B, P), got points "
                f"{tuple(points.shape)} and point_labels {tuple(labels.shape)}."
            )
        if boxes is not None and boxes.shape[1] != points.shape[1]:
            raise ValueError(
                f"boxes and points must hold the same number of prompts per image, got {boxes.shape[1]} boxes and "
                f"{points.shape[1]} point sets."
            )
    return boxes, points, labels


def build_sam(
    architecture: str = "small", checkpoint: str | os.PathLike | None = None, state_key: str = "sam", **overrides: Any
) -> PromptableSam:
    """Build a :py:class:`PromptableSam` of a named size, from a local checkpoint when one is given.

    Without ``checkpoint`` the network is randomly initialised (the ``small`` configuration trains from scratch).
    Nothing is downloaded: published checkpoints (SAM ViT-B/L/H, MedSAM) are local files.

    Args:
        architecture: a key of :data:`SAM_ARCHITECTURES`: ``"vit_b"``, ``"vit_l"``, ``"vit_h"`` (the published sizes,
            1024 px), ``"small"`` (256 px, CPU-sized) or ``"tiny"`` (64 px, for tests).
        checkpoint: path of a state dict (see :py:func:`read_sam_state_dict` for the accepted files), or ``None``.
        state_key: the entry of a usgen-monai checkpoint that holds the network.
        overrides: constructor arguments of :py:class:`PromptableSam` that replace the architecture's.

    Returns:
        the network, in eval mode when weights were loaded.

    Raises:
        ValueError: unknown ``architecture``, or a checkpoint whose keys or shapes do not fit (the message names the
            file and the keys).
    """
    if architecture not in SAM_ARCHITECTURES:
        raise ValueError(f"unknown SAM architecture {architecture!r}; expected one of {sorted(SAM_ARCHITECTURES)}.")
    net = PromptableSam(**{**SAM_ARCHITECTURES[architecture], **overrides})
    if checkpoint is not None:
        load_sam_weights(net, checkpoint, state_key=state_key)
        net.eval()
    return net


def read_sam_state_dict(
    path: str | os.PathLike, state_key: str = "sam", map_location: Any = "cpu"
) -> dict[str, torch.Tensor]:
    """Read a SAM state dict from a local file with ``torch.load(..., weights_only=True)``.

    Accepted: a plain state dict as the published SAM and MedSAM files are saved (``torch.save(model.state_dict())``),
    one nested under ``"model"`` or ``"state_dict"``, and a usgen-monai checkpoint (the network under ``state_key``).
    Keys prefixed ``module.`` (saved from ``DistributedDataParallel``) lose the prefix. Tensors saved on a GPU are
    mapped to ``map_location`` (CPU by default), so they load on machines without one.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file cannot be read with ``weights_only=True`` or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SAM checkpoint not found: {path} (checkpoints are local files; none is downloaded).")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds of errors on files that are not what they should be
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"cannot read SAM checkpoint {path} with torch.load(weights_only=True): {reason}. Save it with "
            "torch.save(model.state_dict())."
        ) from exc
    if isinstance(data, Mapping) and data.get("format") == _PACKAGE_CHECKPOINT_FORMAT:
        states = data.get("state_dicts", {})
        if state_key not in states:
            raise ValueError(f"checkpoint {path} has no state for {state_key!r}; it has {sorted(states)}.")
        data = states[state_key]
    elif isinstance(data, Mapping) and not any(torch.is_tensor(v) for v in data.values()):
        nested = next((data[k] for k in ("model", "state_dict") if isinstance(data.get(k), Mapping)), None)
        data = nested if nested is not None else data
    if not isinstance(data, Mapping) or not data or not all(torch.is_tensor(v) for v in data.values()):
        found = type(data).__name__ if not isinstance(data, Mapping) else f"a dict with keys {list(data)[:5]}"
        raise ValueError(f"{path} holds no SAM state dict (a mapping of parameter names to tensors); found {found}.")
    state = {str(k): v for k, v in data.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _examples(keys: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(sorted(keys)[:most])
    return f"{shown}, ..." if len(keys) > most else shown


def _looks_like(state: Mapping[str, torch.Tensor]) -> str:
    """What the checkpoint's image encoder appears to be, e.g. ``"embed dim 768, depth 12 (vit_b)"``."""
    weight = state.get("image_encoder.patch_embed.proj.weight")
    if weight is None:
        return "no SAM image encoder"
    depth = len({k.split(".")[2] for k in state if k.startswith("image_encoder.blocks.")})
    found = {"encoder_embed_dim": int(weight.shape[0]), "encoder_depth": depth}
    name = next(
        (n for n, a in SAM_ARCHITECTURES.items() if all(a.get(k) == v for k, v in found.items())), "no known size"
    )
    return f"an image encoder of embed dim {found['encoder_embed_dim']}, depth {depth} ({name})"


def load_sam_weights(
    network: nn.Module, checkpoint: str | os.PathLike, state_key: str = "sam", map_location: Any = "cpu"
) -> nn.Module:
    """Load a local checkpoint into a SAM network (in place), strictly.

    Args:
        network: a :py:class:`PromptableSam` (or any ``segment_anything`` ``Sam``).
        checkpoint: file read by :py:func:`read_sam_state_dict`.
        state_key: entry of a usgen-monai checkpoint that holds the network.
        map_location: where the tensors go (CPU by default, so GPU-saved files load anywhere).

    Returns:
        ``network``.

    Raises:
        ValueError: keys missing from or unexpected in the checkpoint, or tensors of other shapes; the message names
            the file, counts each kind, names a few of each, and says what architecture the checkpoint looks like.
    """
    state = read_sam_state_dict(checkpoint, state_key=state_key, map_location=map_location)
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or reshaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_examples(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_examples(unexpected)})")
        if reshaped:
            first = min(reshaped)
            parts.append(
                f"{len(reshaped)} keys of other shapes (e.g. {first}: checkpoint {tuple(state[first].shape)}, "
                f"network {tuple(expected[first].shape)})"
            )
        raise ValueError(
            f"SAM checkpoint {checkpoint} does not fit the network: {'; '.join(parts)}. The checkpoint holds "
            f"{_looks_like(state)}; build the architecture it was saved from (build_sam('vit_b' / 'vit_l' / 'vit_h' / "
            "'small', ...), same image_size)."
        )
    network.load_state_dict(state, strict=True)
    return network
