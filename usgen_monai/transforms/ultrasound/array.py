"""Array transforms for ultrasound images read from DICOM: crop to the imaging region, colour to grey, frame selection.

All three are invertible in MONAI's sense (:py:class:`monai.transforms.InvertibleTransform`): they record what they did
in the ``MetaTensor``'s ``applied_operations``, so :py:class:`monai.transforms.Invertd` (or calling ``inverse``) maps a
prediction made on the transformed image back onto the original pixel grid.

Inputs are channel-first, ``(C, X, Y[, F])``, as produced by ``LoadImage(reader=UltrasoundDicomReader(...),
ensure_channel_first=True)``: two spatial axes and, for multi-frame data, the frame axis last.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import Crop, InvertibleTransform
from monai.utils import TraceKeys, TransformBackends, convert_to_tensor

__all__ = [
    "LUMA_WEIGHTS",
    "CropToUltrasoundRegion",
    "SelectFrames",
    "UltrasoundMetaKeys",
    "UltrasoundToGrey",
    "normalize_frame_selection",
    "rgb_to_grey",
]


class UltrasoundMetaKeys:
    """Metadata keys the ultrasound DICOM reader writes and the ultrasound transforms read.

    Boxes are ``[x_min, y_min, x_max, y_max]`` in pixels of the original DICOM image (x = column, y = row), with
    exclusive maxima. ROIs are ``start``/``end`` pairs along the returned array's first two spatial axes.
    """

    REGION_BOX = "us_region_box"  # chosen B-mode region in the original pixel grid
    REGION_FOUND = "us_region_found"  # False: no usable region, the box is the whole image
    REGION_ROI_START = "us_region_roi_start"  # the same region along the current array's spatial axes
    REGION_ROI_END = "us_region_roi_end"
    REGIONS = "us_regions"  # JSON list of every region (clipped box, data type, units, spacing)
    REGIONS_CLIPPED = "us_regions_clipped"  # True when a region ran past the image and was clipped
    ORIGINAL_SHAPE = "us_original_shape"  # (NumberOfFrames, Rows, Columns, SamplesPerPixel) of the file
    FRAME_INDICES = "us_frame_indices"  # 0-based indices (into the file) of the frames in the array
    FRAME_TIME = "us_frame_time_ms"  # FrameTime (0018,1063), NaN when absent
    SPACING_SOURCE = "us_spacing_source"  # ultrasound_region | pixel_spacing | none
    CROPPED = "us_cropped"  # True when the reader already cropped to the region
    COLOR = "us_color"  # "grey" or "rgb": what the array holds


# ITU-R BT.601 luma weights; the same weights define the Y of DICOM's YBR_FULL
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_grey(img: NdarrayOrTensor, channel_dim: int = 0, keepdim: bool = True) -> NdarrayOrTensor:
    """Colour to grey with the documented rule: ITU-R BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B``.

    The sum is evaluated as ``G + 0.299 (R - G) + 0.114 (B - G)``, algebraically the same, so a B-mode image stored as
    colour (R = G = B) comes back exactly, while colour overlays (Doppler) contribute their luminance. A fourth
    (alpha) channel is ignored.

    Args:
        img: array or tensor with at least 3 channels along ``channel_dim``.
        channel_dim: the colour axis.
        keepdim: keep a size-1 channel axis.

    Returns:
        float32 (numpy) or floating (torch) grey image of the same kind as ``img``.
    """
    n = img.shape[channel_dim]
    if n not in (3, 4):
        raise ValueError(f"rgb_to_grey expects 3 (RGB) or 4 (RGBA) channels along axis {channel_dim}, got {n}.")
    cd = channel_dim % img.ndim

    def channel(i):
        return img[(slice(None),) * cd + (slice(i, i + 1),)]

    if isinstance(img, torch.Tensor):
        r, g, b = (channel(i).to(torch.float32) if not img.is_floating_point() else channel(i) for i in range(3))
    else:
        r, g, b = (np.asarray(channel(i), dtype=np.float32) if img.dtype.kind != "f" else channel(i) for i in range(3))
    grey = g + LUMA_WEIGHTS[0] * (r - g) + LUMA_WEIGHTS[2] * (b - g)
    if not keepdim:
        grey = grey.squeeze(cd) if isinstance(grey, torch.Tensor) else np.squeeze(grey, axis=cd)
    return grey


def normalize_frame_selection(frames: int | Sequence[int] | slice | range, count: int, what: str = "") -> list[int]:
    """Turn a frame selection into a list of non-negative indices, checking it against ``count`` frames.

    Args:
        frames: an index (negative counts from the end), a sequence of indices, a ``range`` or a ``slice``.
        count: number of frames available.
        what: names the data in error messages (a file name, say).

    Raises:
        ValueError: an index is out of range, the selection is empty or of an unsupported type.
    """
    where = f"{what}: " if what else ""
    if isinstance(frames, slice):
        indices = list(range(count))[frames]
    elif isinstance(frames, (int, np.integer)) and not isinstance(frames, bool):
        indices = [int(frames)]
    elif isinstance(frames, (Sequence, range, np.ndarray, torch.Tensor)) and not isinstance(frames, str):
        indices = [int(i) for i in frames]
    else:
        raise ValueError(f"{where}frames must be an int, a sequence of ints, a range or a slice, got {frames!r}.")
    if not indices:
        raise ValueError(f"{where}frame selection {frames!r} is empty for {count} frame(s).")
    out = []
    for i in indices:
        if not -count <= i < count:
            raise ValueError(f"{where}frame {i} requested but there are only {count} frame(s) (0..{count - 1}).")
        out.append(i % count)
    return out


def _meta_roi(img: torch.Tensor) -> tuple[list[int], list[int]] | None:
    if not isinstance(img, MetaTensor):
        return None
    meta = img.meta
    if UltrasoundMetaKeys.REGION_ROI_START not in meta or UltrasoundMetaKeys.REGION_ROI_END not in meta:
        return None
    if not bool(meta.get(UltrasoundMetaKeys.REGION_FOUND, True)):
        return None
    start = [int(v) for v in np.asarray(meta[UltrasoundMetaKeys.REGION_ROI_START]).ravel()]
    end = [int(v) for v in np.asarray(meta[UltrasoundMetaKeys.REGION_ROI_END]).ravel()]
    return start, end


class CropToUltrasoundRegion(Crop):
    """Crop a channel-first ultrasound image to its imaging (B-mode) region, removing burned-in text and rulers.

    The region comes from the metadata written by :py:class:`usgen_monai.data.UltrasoundDicomReader`
    (``us_region_roi_start`` / ``us_region_roi_end``: the largest tissue region of the Sequence of Ultrasound
    Regions), or is given explicitly. Only the first two spatial axes are cropped; a frame axis is kept whole.
    The crop is recorded, so ``inverse`` (and :py:class:`monai.transforms.Invertd`) pads a prediction back to the
    original grid with zeros, and the affine is shifted so that physical positions are unchanged.

    Args:
        roi_start: ``[start_axis0, start_axis1]`` to use instead of the metadata.
        roi_end: ``[end_axis0, end_axis1]`` (exclusive) to use instead of the metadata.
        margin: pixels added around the region on every side (clipped to the image), an int or one per axis.
        allow_missing_region: when the image has no region metadata (or the reader found no region), return it
            uncropped (still recorded, so inversion stays consistent); ``False`` raises a ``ValueError``.
        lazy: whether to defer the crop (MONAI lazy resampling).

    Example::

        loader = LoadImage(reader=UltrasoundDicomReader(), image_only=True, ensure_channel_first=True)
        img = loader("cine.dcm")                      # (1, X, Y, F)
        roi = CropToUltrasoundRegion()(img)           # (1, x1 - x0, y1 - y0, F)
        back = CropToUltrasoundRegion().inverse(roi)  # only with the same instance; use Invertd in pipelines
    """

    def __init__(
        self,
        roi_start: Sequence[int] | None = None,
        roi_end: Sequence[int] | None = None,
        margin: int | Sequence[int] = 0,
        allow_missing_region: bool = True,
        lazy: bool = False,
    ) -> None:
        super().__init__(lazy=lazy)
        if (roi_start is None) != (roi_end is None):
            raise ValueError(
                f"give both roi_start and roi_end or neither, got roi_start={roi_start}, roi_end={roi_end}."
            )
        self.roi_start = None if roi_start is None else [int(v) for v in roi_start]
        self.roi_end = None if roi_end is None else [int(v) for v in roi_end]
        margins = [int(margin)] * 2 if isinstance(margin, (int, np.integer)) else [int(m) for m in margin]
        if len(margins) != 2 or min(margins) < 0:
            raise ValueError(f"margin must be a non-negative int or two of them, got margin={margin}.")
        self.margin = margins
        self.allow_missing_region = allow_missing_region

    def compute_roi(self, img: torch.Tensor) -> tuple[list[int], list[int]]:
        """The ``(start, end)`` to crop along the first two spatial axes of ``img``: the constructor's ROI or the
        region in the metadata, widened by ``margin`` and clipped to the image."""
        spatial = self._spatial_shape(img)
        roi_start, roi_end = self.roi_start, self.roi_end
        if roi_start is None:
            found = _meta_roi(img)
            if found is None:
                if not self.allow_missing_region:
                    name = img.meta.get("filename_or_obj", "image") if isinstance(img, MetaTensor) else "image"
                    raise ValueError(
                        f"{name}: no ultrasound region in the metadata (us_region_roi_start/us_region_roi_end); "
                        "read it with UltrasoundDicomReader or pass roi_start/roi_end."
                    )
                return [0, 0], spatial[:2]
            roi_start, roi_end = found
        start = [int(roi_start[i]) - self.margin[i] for i in range(2)]
        end = [int(roi_end[i]) + self.margin[i] for i in range(2)]
        return self._clip(start, end, spatial)

    @staticmethod
    def _spatial_shape(img: torch.Tensor) -> list[int]:
        spatial = [int(v) for v in (img.peek_pending_shape() if isinstance(img, MetaTensor) else img.shape[1:])]
        if len(spatial) < 2:
            raise ValueError(
                f"CropToUltrasoundRegion expects a channel-first image with >= 2 spatial axes, got {spatial}."
            )
        return spatial

    @staticmethod
    def _clip(start: Sequence[int], end: Sequence[int], spatial: Sequence[int]) -> tuple[list[int], list[int]]:
        if len(start) < 2 or len(end) < 2:
            raise ValueError(f"roi_start/roi_end need two values, got roi_start={start}, roi_end={end}.")
        start_ = [max(int(start[i]), 0) for i in range(2)]
        end_ = [min(int(end[i]), int(spatial[i])) for i in range(2)]
        if any(e <= s for s, e in zip(start_, end_)):
            raise ValueError(
                f"empty ultrasound region: start={list(start)}, end={list(end)} for spatial shape {list(spatial)}."
            )
        return start_, end_

    def __call__(  # type: ignore[override]
        self,
        img: torch.Tensor,
        roi_start: Sequence[int] | None = None,
        roi_end: Sequence[int] | None = None,
        lazy: bool | None = None,
    ) -> torch.Tensor:
        """
        Args:
            img: channel-first image ``(C, X, Y[, F])``.
            roi_start: a final ROI for this call (used as given, no margin; clipped to the image), e.g. computed from
                another image with :py:meth:`compute_roi`.
            roi_end: see ``roi_start``.
            lazy: overrides the constructor's ``lazy``.
        """
        if (roi_start is None) != (roi_end is None):
            raise ValueError(f"give both roi_start and roi_end or neither, got {roi_start}, {roi_end}.")
        if roi_start is None:
            start, end = self.compute_roi(img)
        else:
            start, end = self._clip(roi_start, roi_end, self._spatial_shape(img))
        lazy_ = self.lazy if lazy is None else lazy
        slices = (slice(start[0], end[0]), slice(start[1], end[1]))
        out = super().__call__(img, slices, lazy=lazy_)
        if isinstance(out, MetaTensor) and get_track_meta():
            ops = out.pending_operations if lazy_ else out.applied_operations
            if ops:
                old = _meta_roi(img)
                ops[-1].setdefault(TraceKeys.EXTRA_INFO, {})["us_roi"] = None if old is None else [old[0], old[1]]
            meta = dict(out.meta)
            meta[UltrasoundMetaKeys.REGION_ROI_START] = np.array([0, 0])
            meta[UltrasoundMetaKeys.REGION_ROI_END] = np.array([end[0] - start[0], end[1] - start[1]])
            out.meta = meta
        return out

    def inverse(self, img: MetaTensor) -> MetaTensor:
        transform = self.get_most_recent_transform(img, check=False)
        old_roi = transform.get(TraceKeys.EXTRA_INFO, {}).get("us_roi")
        out = super().inverse(img)
        if isinstance(out, MetaTensor):
            meta = dict(out.meta)
            if old_roi is not None:
                meta[UltrasoundMetaKeys.REGION_ROI_START] = np.asarray(old_roi[0])
                meta[UltrasoundMetaKeys.REGION_ROI_END] = np.asarray(old_roi[1])
            out.meta = meta
        return out


class UltrasoundToGrey(InvertibleTransform):
    """Convert a channel-first colour ultrasound image ``(3 or 4, ...)`` to one grey channel ``(1, ...)``.

    B-mode images are often stored as RGB / YBR / palette colour. The rule is ITU-R BT.601 luma,
    ``Y = 0.299 R + 0.587 G + 0.114 B`` (see :py:func:`rgb_to_grey`): exact for grey pixels stored as colour, and the
    luminance of colour overlays such as Doppler. A single-channel input passes through unchanged.

    The conversion does not change the pixel grid, so ``inverse`` only removes the record of it and returns its input
    unchanged: a prediction's channels are classes, not colours, and the colour itself cannot be recovered.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """
        Args:
            img: channel-first ``(C, spatial...)`` with C = 1, 3 (RGB) or 4 (RGBA).
        """
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        channels = int(img_t.shape[0])
        if channels == 1:
            out = img_t
        elif channels in (3, 4):
            out = rgb_to_grey(img_t, channel_dim=0, keepdim=True)
        else:
            raise ValueError(
                f"UltrasoundToGrey expects 1, 3 (RGB) or 4 (RGBA) channels first, got shape {tuple(img_t.shape)}."
            )
        if isinstance(out, MetaTensor) and get_track_meta():
            meta = dict(out.meta)
            meta[UltrasoundMetaKeys.COLOR] = "grey"
            out.meta = meta
            out = self.push_transform(out, extra_info={"channels": channels})
        return out

    def inverse(self, img: torch.Tensor) -> torch.Tensor:
        if isinstance(img, MetaTensor):
            self.pop_transform(img)
        return img


class SelectFrames(InvertibleTransform):
    """Keep some frames of a multi-frame (cine) ultrasound image.

    Args:
        frames: an index (the frame axis is then removed unless ``keep_dim``), a sequence of indices, a ``range`` or
            a ``slice``. Negative indices count from the end.
        frame_dim: axis of the frame dimension in the channel-first input, by default the last one
            (``UltrasoundDicomReader`` puts frames after the two spatial axes).
        keep_dim: keep a size-1 frame axis when ``frames`` is an int.

    ``inverse`` puts the kept frames back at their positions in a zero-filled array with the original number of
    frames, so a per-frame prediction lines up with the source cine; the metadata (``us_frame_indices`` and the
    affine) is restored as well.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self, frames: int | Sequence[int] | slice | range, frame_dim: int = -1, keep_dim: bool = False
    ) -> None:
        if frame_dim == 0:
            raise ValueError("frame_dim=0 is the channel axis; frames must be a spatial axis (default -1).")
        if isinstance(frames, (bool, str)) or not isinstance(frames, (int, np.integer, Sequence, slice, range)):
            raise ValueError(f"frames must be an int, a sequence of ints, a range or a slice, got {frames!r}.")
        self.frames = frames
        self.frame_dim = frame_dim
        self.keep_dim = keep_dim

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """
        Args:
            img: channel-first ``(C, ..., F)`` with the frames along ``frame_dim``.
        """
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        if img_t.ndim < 3:
            raise ValueError(
                f"SelectFrames expects a channel-first image with a frame axis, got shape {tuple(img_t.shape)}."
            )
        dim = self.frame_dim % img_t.ndim
        if dim == 0:
            raise ValueError(f"frame_dim={self.frame_dim} points at the channel axis of shape {tuple(img_t.shape)}.")
        count = int(img_t.shape[dim])
        name = img_t.meta.get("filename_or_obj", "") if isinstance(img_t, MetaTensor) else ""
        indices = normalize_frame_selection(self.frames, count, str(name))
        squeeze = isinstance(self.frames, (int, np.integer)) and not self.keep_dim
        out = torch.index_select(img_t, dim, torch.as_tensor(indices, device=img_t.device))
        if squeeze:
            out = out.squeeze(dim)
        if isinstance(out, MetaTensor) and get_track_meta():
            meta = dict(out.meta)
            old_indices = meta.get(UltrasoundMetaKeys.FRAME_INDICES)
            if old_indices is not None and len(np.asarray(old_indices).ravel()) == count:
                meta[UltrasoundMetaKeys.FRAME_INDICES] = np.asarray(old_indices).ravel()[indices]
            out.meta = meta
            old_affine = out.affine.clone()
            spatial_axis = dim - 1
            if spatial_axis < out.affine.shape[0] - 1:
                affine = out.affine.clone()
                affine[:-1, -1] += affine[:-1, spatial_axis] * indices[0]
                out.affine = affine
            extra = {
                "frame_count": count,
                "indices": indices,
                "squeezed": squeeze,
                "dim": dim,
                "affine": old_affine,
                "frame_indices": None if old_indices is None else np.asarray(old_indices).ravel().tolist(),
            }
            out = self.push_transform(out, extra_info=extra, orig_size=tuple(img_t.shape[1:]))
        return out

    def inverse(self, img: torch.Tensor) -> torch.Tensor:
        transform = self.pop_transform(img)
        info = transform[TraceKeys.EXTRA_INFO]
        dim, indices = int(info["dim"]), [int(i) for i in info["indices"]]
        data = img.as_tensor() if isinstance(img, MetaTensor) else img
        if info["squeezed"]:
            data = data.unsqueeze(dim)
        shape = list(data.shape)
        shape[dim] = int(info["frame_count"])
        full = torch.zeros(shape, dtype=data.dtype, device=data.device)
        full.index_copy_(dim, torch.as_tensor(indices, device=data.device), data)
        if not isinstance(img, MetaTensor):
            return full
        out = MetaTensor(full, meta=dict(img.meta), applied_operations=img.applied_operations)
        out.affine = info["affine"]
        if info.get("frame_indices") is not None:
            out.meta[UltrasoundMetaKeys.FRAME_INDICES] = np.asarray(info["frame_indices"])
        return out
