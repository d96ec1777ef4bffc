"""Former home of the writers, kept for one release so that ``from usgen_monai.data.dicom_writers import ...`` and
``_target_: usgen_monai.data.dicom_writers.*`` keep working; it will be removed in the next release.

The writers now live by concept:

* :py:mod:`usgen_monai.data.synthetic_dicom`: :py:class:`SaveSyntheticDicom` (and ``d``);
* :py:mod:`usgen_monai.data.dicom_seg`: :py:class:`SaveDicomSeg` (and ``d``), :py:class:`SegmentCode`,
  :py:data:`ULTRASOUND_SEGMENT_CODES`, :py:func:`segment_code_for`, :py:data:`GENERIC_SEGMENT_CODE`;
* :py:mod:`usgen_monai.data.image_savers`: :py:class:`SaveUltrasoundImage` (and ``d``), :py:class:`AtomicPILWriter`,
  :py:class:`AtomicNibabelWriter`;
* :py:mod:`usgen_monai.data.writer_common`: the naming rule (:py:func:`ultrasound_name_formatter`),
  :py:func:`save_dataset_atomic` and the SOP class constants.

Import them from ``usgen_monai.data`` (or those modules) instead.
"""

from __future__ import annotations

from usgen_monai.data.dicom_seg import (
    GENERIC_SEGMENT_CODE,
    ULTRASOUND_SEGMENT_CODES,
    SaveDicomSeg,
    SaveDicomSegD,
    SaveDicomSegDict,
    SaveDicomSegd,
    SegmentCode,
    segment_code_for,
)
from usgen_monai.data.image_savers import (
    AtomicNibabelWriter,
    AtomicPILWriter,
    SaveUltrasoundImage,
    SaveUltrasoundImageD,
    SaveUltrasoundImageDict,
    SaveUltrasoundImaged,
)
from usgen_monai.data.synthetic_dicom import (
    SaveSyntheticDicom,
    SaveSyntheticDicomD,
    SaveSyntheticDicomDict,
    SaveSyntheticDicomd,
)
from usgen_monai.data.writer_common import (
    SECONDARY_CAPTURE_IMAGE_STORAGE,
    SYNTHETIC_DATA_TAG,
    US_IMAGE_STORAGE,
    US_MULTIFRAME_IMAGE_STORAGE,
    save_dataset_atomic,
    ultrasound_name_formatter,
)

__all__ = [
    "GENERIC_SEGMENT_CODE",
    "SECONDARY_CAPTURE_IMAGE_STORAGE",
    "SYNTHETIC_DATA_TAG",
    "ULTRASOUND_SEGMENT_CODES",
    "US_IMAGE_STORAGE",
    "US_MULTIFRAME_IMAGE_STORAGE",
    "AtomicNibabelWriter",
    "AtomicPILWriter",
    "SaveDicomSeg",
    "SaveDicomSegD",
    "SaveDicomSegDict",
    "SaveDicomSegd",
    "SaveSyntheticDicom",
    "SaveSyntheticDicomD",
    "SaveSyntheticDicomDict",
    "SaveSyntheticDicomd",
    "SaveUltrasoundImage",
    "SaveUltrasoundImageD",
    "SaveUltrasoundImageDict",
    "SaveUltrasoundImaged",
    "SegmentCode",
    "save_dataset_atomic",
    "segment_code_for",
    "ultrasound_name_formatter",
]
