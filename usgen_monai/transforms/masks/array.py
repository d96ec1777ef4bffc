"""Array transforms that turn the mask files of public ultrasound data sets into binary segmentation targets.

* :py:class:`FillOutline` fills an outline annotation (HC18 draws the head as an ellipse outline) into a mask.
* :py:class:`MergeMasks` merges several masks of one image (BUSI ships ``benign (12)_mask.png`` and
  ``benign (12)_mask_1.png``) into one binary mask by logical OR.

Both take channel-first input, ``(C, spatial_dim_0[, spatial_dim_1, ...])``, as
:py:class:`monai.transforms.LoadImage` with ``ensure_channel_first=True`` produces, and return 0/1 values in the
input's type and dtype, so a :py:class:`monai.data.MetaTensor` keeps its metadata.
"""

from __future__ import annotations

import numpy as np
from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms.transform import Transform
from monai.utils import TransformBackends
from monai.utils.type_conversion import convert_data_type, convert_to_dst_type, convert_to_tensor
from scipy import ndimage

__all__ = ["FillOutline", "MergeMasks"]


def _check_channel_first(img: NdarrayOrTensor, name: str) -> None:
    if img.ndim < 3:
        raise ValueError(
            f"{name} expects a channel-first array (C, spatial_dim_0, spatial_dim_1[, ...]), got shape "
            f"{tuple(img.shape)}; load with ensure_channel_first=True or add EnsureChannelFirst before it."
        )


class FillOutline(Transform):
    """Fill closed outlines into solid binary masks, channel by channel.

    HC18 annotates each fetal head as an ellipse outline about two pixels wide (``000_HC_Annotation.png``); the
    segmentation target is the filled ellipse. A pixel is foreground when it lies on the outline (value above
    ``threshold``) or in a background region that the outline encloses, decided by
    :py:func:`scipy.ndimage.binary_fill_holes`. Each channel is filled on its own over all spatial dimensions.

    An outline that is not closed (cut by the image border, say) encloses nothing and stays an outline.

    Args:
        threshold: values above it are outline pixels. Defaults to 0, so any non-zero value counts (HC18 outlines
            are 255 on 0).
        connectivity: maximum number of orthogonal hops between two background pixels that count as connected,
            from 1 to the number of spatial dimensions. The default 1 means an outline whose pixels touch only at
            corners still closes. See :py:func:`scipy.ndimage.generate_binary_structure`.

    Example::

        >>> outline = np.zeros((1, 7, 7), np.float32)
        >>> outline[0, 1, 1:6] = outline[0, 5, 1:6] = outline[0, 1:6, 1] = outline[0, 1:6, 5] = 255
        >>> FillOutline()(outline)[0, 3, 3]
        1.0

    See Also:
        :py:class:`monai.transforms.FillHoles`, which fills holes within each label of a label map instead.
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, threshold: float = 0.0, connectivity: int = 1) -> None:
        if int(connectivity) != connectivity or connectivity < 1:
            raise ValueError(f"connectivity must be a positive integer, got connectivity={connectivity!r}.")
        self.threshold = float(threshold)
        self.connectivity = int(connectivity)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: outline annotation of shape ``(C, spatial_dim_0, spatial_dim_1[, ...])``.

        Returns:
            the filled mask, same shape, type and dtype as ``img``, with values 0 and 1.

        Raises:
            ValueError: when ``img`` has no channel dimension or ``connectivity`` exceeds its spatial dimensions.
        """
        _check_channel_first(img, "FillOutline")
        spatial_dims = img.ndim - 1
        if self.connectivity > spatial_dims:
            raise ValueError(
                f"connectivity={self.connectivity} exceeds the {spatial_dims} spatial dimensions of an input of "
                f"shape {tuple(img.shape)}."
            )
        img_np, *_ = convert_data_type(img, np.ndarray)
        structure = ndimage.generate_binary_structure(spatial_dims, self.connectivity)
        out_np = np.stack([ndimage.binary_fill_holes(channel > self.threshold, structure) for channel in img_np])
        out, *_ = convert_to_dst_type(out_np, img, dtype=img.dtype)  # a MetaTensor ``img`` lends its metadata
        return out


class MergeMasks(Transform):
    """Merge the channels of a stack of masks into one binary mask by logical OR.

    BUSI stores a lesion that has several parts as several files (``benign (12)_mask.png``,
    ``benign (12)_mask_1.png``). :py:class:`monai.transforms.LoadImage` given a list of file names stacks them as
    channels; this transform turns the stack into the single-channel target. A pixel is foreground when it is above
    ``threshold`` in any channel. A single mask passes through binarised, so the transform also maps 0/255 masks to
    0/1, and RGB masks (three channels) to one channel.

    Args:
        threshold: values above it are foreground. Defaults to 0, so any non-zero value counts.

    Example::

        >>> masks = np.zeros((2, 4, 4), np.float32)
        >>> masks[0, 0, 0] = masks[1, 3, 3] = 255
        >>> MergeMasks()(masks)[0].sum()
        2.0
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = float(threshold)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: masks stacked on the first axis, shape ``(C, spatial_dim_0, spatial_dim_1[, ...])``.

        Returns:
            the merged mask of shape ``(1, spatial_dim_0, spatial_dim_1[, ...])``, same type and dtype as ``img``,
            with values 0 and 1.

        Raises:
            ValueError: when ``img`` has no channel dimension.
        """
        _check_channel_first(img, "MergeMasks")
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        out = (img_t > self.threshold).any(dim=0, keepdim=True)
        out, *_ = convert_to_dst_type(out, img, dtype=img.dtype)
        return out
