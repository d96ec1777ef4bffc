"""The MONAI Label datastore for a folder of 2D ultrasound studies (imports MONAI Label: label virtualenv only).

:py:class:`UltrasoundDatastore` is MONAI Label's ``LocalDatastore`` over the files annotators have: PNG and JPEG,
2D NIfTI (``.nii``, ``.nii.gz``) and ultrasound DICOM (``.dcm``, ``.dicom``, and DICOM files without an extension,
found by their ``DICM`` marker). Images are read by the bundles through the package's readers
(:py:class:`usgen_monai.data.UltrasoundDicomReader`: colour, YBR, palette colour, multi-frame cine, regions), so the
datastore itself only lists them and checks labels.

Saving a label (``PUT /datastore/label``) checks it first: a PNG or NIfTI label map of non-negative integers whose
in-plane size is the study's (a cine takes a NIfTI label with one slice per frame). A label that fails, or a study
that cannot be read, is refused with an HTTP 422 naming the study and the problem. The label is stored as MONAI Label
stores it (``labels/<tag>/<study id>.png`` or ``.nii.gz``, what training reads) and, for a DICOM study, also as a
DICOM Segmentation that references the study (``labels/<tag>/dicom-seg/<study id>_seg.dcm``, written with
:py:class:`usgen_monai.data.SaveDicomSeg` through the package's ``MaskWriter``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import HTTPException
from monailabel.datastore.local import LocalDatastore

__all__ = ["IMAGE_EXTENSIONS", "LABEL_EXTENSIONS", "UltrasoundDatastore", "readable", "study_size"]

logger = logging.getLogger(__name__)

#: the study files listed (plus DICOM files without an extension)
IMAGE_EXTENSIONS: tuple[str, ...] = ("*.png", "*.jpg", "*.jpeg", "*.nii.gz", "*.nii", "*.dcm", "*.dicom")
#: the label files accepted
LABEL_EXTENSIONS: tuple[str, ...] = (".png", ".nii.gz", ".nii")
#: the folder (under each label tag) of the DICOM SEG copies
DICOM_SEG_DIR = "dicom-seg"


def _is_dicom(path: str | os.PathLike) -> bool:
    from usgen_monai.data import UltrasoundDicomReader

    return UltrasoundDicomReader().verify_suffix(str(path))


def study_size(path: str | os.PathLike) -> tuple[int, ...]:
    """The size of a study in MONAI's axis order, ``(X, Y)`` or ``(X, Y, frames)`` (X = columns), read from its
    header.

    Raises:
        ValueError: the file cannot be read as a PNG/JPEG, NIfTI or DICOM image (naming it and why).
    """
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            shape = tuple(int(s) for s in nib.load(str(path)).shape)
            shape = shape[:2] + tuple(s for s in shape[2:] if s > 1)
            return shape
        if _is_dicom(path):
            from usgen_monai.data.dicom_files import dcmread_file

            ds = dcmread_file(path, stop_before_pixels=True)
            frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
            size = (int(ds.Columns), int(ds.Rows))
            return size + ((frames,) if frames > 1 else ())
        from PIL import Image

        with Image.open(path) as img:
            return tuple(int(s) for s in img.size)
    except Exception as e:
        raise ValueError(f"cannot read {path.name}: {type(e).__name__}: {e}") from e


def readable(path: str | os.PathLike) -> str | None:
    """``None`` when the study at ``path`` can be read (a PNG/JPEG is decoded in full, NIfTI and DICOM headers are
    read), else why not."""
    try:
        study_size(path)
        if not str(path).lower().endswith((".nii", ".nii.gz")) and not _is_dicom(path):
            from PIL import Image

            with Image.open(path) as img:
                img.load()
    except Exception as e:  # noqa: BLE001 (any failure means "cannot be read", and the reason is reported)
        return f"{os.path.basename(str(path))}: {type(e).__name__}: {e}"
    return None


def _read_label(path: Path, study: str) -> np.ndarray:
    """A label file as a ``(X, Y[, F])`` integer array (MONAI's axis order)."""
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            data = np.asanyarray(nib.load(str(path)).dataobj)
            data = data.reshape(data.shape[:2] + tuple(s for s in data.shape[2:] if s > 1))
        else:
            from PIL import Image

            with Image.open(path) as img:
                if img.mode not in ("L", "P", "1", "I", "I;16"):
                    raise ValueError(f"a label PNG must be one channel (grey or indexed), got mode {img.mode}")
                data = np.asarray(img).T  # rows x columns -> X, Y
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"the label file cannot be read ({type(e).__name__}: {e})") from e
    if not np.isfinite(data).all() or (data < 0).any() or not np.array_equal(np.rint(data), data):
        raise ValueError("the label must hold non-negative integer class values")
    return data.astype(np.int64)


class UltrasoundDatastore(LocalDatastore):
    """MONAI Label's local datastore for 2D ultrasound studies (see the module docstring).

    Args:
        datastore_path: the studies folder.
        label_classes: ``{value: name}`` of the labels (names the DICOM SEG segments); default ``{1: "lesion"}``.
        extensions: the study file patterns. Defaults to :data:`IMAGE_EXTENSIONS`.
        auto_reload: watch the folder for new files.
        read_only: don't write the datastore's JSON.
    """

    def __init__(
        self,
        datastore_path: str | os.PathLike,
        label_classes: Mapping[int, str] | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        auto_reload: bool = False,
        read_only: bool = False,
    ) -> None:
        self.label_classes = {0: "background", **{int(k): str(v) for k, v in (label_classes or {1: "lesion"}).items()}}
        super().__init__(str(datastore_path), extensions=list(extensions), auto_reload=auto_reload, read_only=read_only)

    def _list_files(self, path, patterns):
        found = super()._list_files(path, patterns)
        if os.path.realpath(path) == os.path.realpath(self._datastore.image_path()):
            from usgen_monai.data.dicom_files import has_dicm_marker

            for entry in os.scandir(path):  # DICOM files without an extension (IM0001, ...)
                if entry.is_file() and "." not in entry.name and has_dicm_marker(entry.path):
                    found[entry.name] = entry.name
        return found

    def _fail(self, image_id: str, problem: str, status: int = 422) -> HTTPException:
        logger.error(f"label for study {image_id}: {problem}")
        return HTTPException(status_code=status, detail=f"label for study {image_id}: {problem}")

    def check_label(self, image_id: str, label_filename: str | os.PathLike) -> np.ndarray:
        """The label map of ``label_filename`` once checked against the study ``image_id``.

        Raises:
            HTTPException: 404 for an unknown study; 422 for an unreadable study or label, a label format other than
                PNG/NIfTI, or a label whose size is not the study's.
        """
        if not self._datastore.objects.get(image_id):
            raise self._fail(image_id, "no such study in the datastore", status=404)
        label_path = Path(label_filename)
        if not label_path.name.lower().endswith(LABEL_EXTENSIONS):
            raise self._fail(
                image_id, f"a label must be {', '.join(LABEL_EXTENSIONS)}, got the file {label_path.name!r}"
            )
        image = self.get_image_uri(image_id)
        try:
            size = study_size(image)
        except ValueError as e:
            raise self._fail(image_id, f"the study cannot be read: {e}") from e
        try:
            label = _read_label(label_path, image_id)
        except ValueError as e:
            raise self._fail(image_id, str(e)) from e
        if tuple(label.shape) != tuple(size):
            describe = lambda s: f"{s[0]} x {s[1]}" + (f" x {s[2]} frames" if len(s) > 2 else "")
            raise self._fail(
                image_id,
                f"the label is {describe(label.shape)} (columns x rows) but the study {os.path.basename(image)} is "
                f"{describe(size)}; labels must be on the study's pixel grid"
                + (" (a cine takes a NIfTI label with one slice per frame)" if len(size) > 2 else ""),
            )
        return label

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        label = self.check_label(image_id, label_filename)
        label_id = super().save_label(image_id, label_filename, label_tag, label_info)
        image = self.get_image_uri(image_id)
        if _is_dicom(image):
            try:
                self._save_dicom_seg(image_id, image, label, label_tag)
            except Exception as e:  # the label itself is saved; say why its SEG copy is not
                raise self._fail(image_id, f"saved, but its DICOM SEG could not be written: {e}", status=500) from e
        return label_id

    def dicom_seg_path(self, image_id: str, label_tag: str) -> Path:
        """Where the DICOM SEG copy of a DICOM study's label goes."""
        return Path(self._datastore.label_path(label_tag)) / DICOM_SEG_DIR / f"{image_id}_seg.dcm"

    def _save_dicom_seg(self, image_id: str, image: str, label: np.ndarray, label_tag: str) -> Path:
        import torch

        from usgen_monai.engines.segmentation_inference import MaskWriter

        target = self.dicom_seg_path(image_id, label_tag)
        target.parent.mkdir(parents=True, exist_ok=True)
        classes = dict(self.label_classes)
        for value in np.unique(label):
            classes.setdefault(int(value), f"label {int(value)}")
        writer = MaskWriter(target.parent, output_format="dicom", output_postfix="seg", label_classes=classes,
                            algorithm_name="usgen-monai MONAI Label (annotator)")  # fmt: skip
        paths, _, _ = writer(torch.as_tensor(label)[None], image, image_id)
        logger.info(f"label for study {image_id}: DICOM SEG {paths[0]}")
        return Path(paths[0])
