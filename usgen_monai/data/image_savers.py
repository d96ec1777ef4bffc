"""MONAI's ``SaveImage`` path for plain image files: :py:class:`SaveUltrasoundImage` (and
:py:class:`SaveUltrasoundImaged`) for NIfTI and PNG, with the package's naming rule
(:py:mod:`usgen_monai.data.writer_common`), through MONAI's own writers made atomic (:py:class:`AtomicNibabelWriter`,
:py:class:`AtomicPILWriter`: a temporary file in the target folder, then ``os.replace``).

:py:mod:`usgen_monai.data.image_writers` writes the same formats from numpy without MONAI (data-set layouts, generated
pairs, figures).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.config import DtypeLike, KeysCollection
from monai.data.image_writer import NibabelWriter, PILWriter
from monai.transforms import MapTransform, SaveImage

from usgen_monai.data.writer_common import _to_numpy, ultrasound_name_formatter
from usgen_monai.utils import atomic_write

__all__ = [
    "AtomicNibabelWriter",
    "AtomicPILWriter",
    "SaveUltrasoundImage",
    "SaveUltrasoundImageD",
    "SaveUltrasoundImageDict",
    "SaveUltrasoundImaged",
]


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` writing to a temporary file first, then ``os.replace``.

    With ``resample=False`` the affine is taken as it is: MONAI 1.6.1's resampling step fails on 2D images even when
    there is nothing to resample.
    """

    def set_metadata(self, meta_dict: Mapping | None, resample: bool = True, **options):
        if resample:
            return super().set_metadata(meta_dict, resample=resample, **options)
        _, affine, _ = self.get_meta_info(meta_dict)
        if self.output_dtype is None and self.data_obj is not None and hasattr(self.data_obj, "dtype"):
            self.output_dtype = self.data_obj.dtype
        self.affine = np.eye(4) if affine is None else _to_numpy(affine).astype(np.float64)

    def write(self, filename, verbose: bool = False, **obj_kwargs):  # type: ignore[override]
        with atomic_write(filename) as tmp:
            super().write(f"{tmp}", verbose=verbose, **obj_kwargs)


class AtomicPILWriter(PILWriter):
    """MONAI's ``PILWriter`` writing to a temporary file first, then ``os.replace``."""

    def write(self, filename, verbose: bool = False, **kwargs):  # type: ignore[override]
        with atomic_write(filename) as tmp:
            super().write(f"{tmp}", verbose=verbose, **kwargs)


_EXT_WRITERS = {".nii": AtomicNibabelWriter, ".nii.gz": AtomicNibabelWriter, ".png": AtomicPILWriter}


class SaveUltrasoundImage(SaveImage):
    """MONAI's ``SaveImage`` for NIfTI (``.nii``/``.nii.gz``) or PNG (``.png``) with this package's naming rule
    (``{output_dir}/{subject}_{postfix}{ext}``, no sub-folders) and atomic writes.

    Args:
        output_dir: folder for the files.
        output_postfix: appended to the name.
        output_ext: ``".nii.gz"``, ``".nii"`` or ``".png"``.
        output_dtype: data type to save (default float32 for NIfTI, uint8 for PNG).
        scale: PNG only: ``255`` maps ``[0, 1]`` to ``0..255`` (MONAI's rule), ``None`` saves values as they are.
        resample: resample to the original affine/shape from the metadata before saving (MONAI's behaviour).
        name_prefix: file-name prefix when the data has no file name (``{prefix}{index:06d}``).
        print_log: print the path of every file written.
        channel_dim: the channel axis of the input.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike = "./",
        output_postfix: str = "trans",
        output_ext: str = ".nii.gz",
        output_dtype: DtypeLike | None = None,
        scale: int | None = None,
        resample: bool = False,
        name_prefix: str = "sample_",
        print_log: bool = False,
        channel_dim: int | None = 0,
    ) -> None:
        ext = output_ext if output_ext.startswith(".") else f".{output_ext}"
        ext = ext.lower()
        if ext not in _EXT_WRITERS:
            raise ValueError(f"output_ext must be one of {sorted(_EXT_WRITERS)}, got output_ext={output_ext!r}.")
        if output_dtype is None:
            output_dtype = np.uint8 if ext == ".png" else np.float32
        self.name_prefix = name_prefix
        super().__init__(
            output_dir=output_dir,
            output_postfix=output_postfix,
            output_ext=ext,
            output_dtype=output_dtype,
            resample=resample,
            scale=scale,
            separate_folder=False,
            print_log=print_log,
            output_name_formatter=ultrasound_name_formatter,
            channel_dim=channel_dim,
            writer=_EXT_WRITERS[ext],
        )


class SaveUltrasoundImaged(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`SaveUltrasoundImage`.

    Args:
        keys: the items to save.
        allow_missing_keys: don't raise if a key is missing.
        kwargs: :py:class:`SaveUltrasoundImage` arguments.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs) -> None:
        super().__init__(keys, allow_missing_keys)
        self.saver = SaveUltrasoundImage(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.saver(d[key])
        return d


SaveUltrasoundImageD = SaveUltrasoundImageDict = SaveUltrasoundImaged
