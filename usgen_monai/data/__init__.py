"""Data: readers and writers (images, DICOM, data-set layouts, generated pairs), datasets, context selection and the
simulator.

Names are imported on first use, so ``import usgen_monai.data.simulator`` (pure numpy) does not pay for MONAI,
torch and pydicom; ``from usgen_monai.data import UltrasoundDicomReader`` and bundle ``_target_`` strings work as
usual.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ContextBank": "usgen_monai.data.context_bank",
    "DatasetLayoutError": "usgen_monai.data.datasets",
    "check_item_sizes": "usgen_monai.data.datasets",
    "detect_layout": "usgen_monai.data.datasets",
    "load_busi_datalist": "usgen_monai.data.datasets",
    "load_dataset": "usgen_monai.data.datasets",
    "load_folder_pair_datalist": "usgen_monai.data.datasets",
    "load_hc18_datalist": "usgen_monai.data.datasets",
    "load_json_datalist": "usgen_monai.data.datasets",
    "load_transforms": "usgen_monai.data.datasets",
    "split_dataset": "usgen_monai.data.datasets",
    "DicomFolderResult": "usgen_monai.data.dicom_reader",
    "UltrasoundDicomError": "usgen_monai.data.dicom_reader",
    "UltrasoundDicomReader": "usgen_monai.data.dicom_reader",
    "UltrasoundRegionWarning": "usgen_monai.data.dicom_reader",
    "load_dicom_folder": "usgen_monai.data.dicom_reader",
    "GENERIC_SEGMENT_CODE": "usgen_monai.data.dicom_writers",
    "SaveDicomSeg": "usgen_monai.data.dicom_writers",
    "SaveDicomSegD": "usgen_monai.data.dicom_writers",
    "SaveDicomSegDict": "usgen_monai.data.dicom_writers",
    "SaveDicomSegd": "usgen_monai.data.dicom_writers",
    "SaveSyntheticDicom": "usgen_monai.data.dicom_writers",
    "SaveSyntheticDicomD": "usgen_monai.data.dicom_writers",
    "SaveSyntheticDicomDict": "usgen_monai.data.dicom_writers",
    "SaveSyntheticDicomd": "usgen_monai.data.dicom_writers",
    "SaveUltrasoundImage": "usgen_monai.data.dicom_writers",
    "SaveUltrasoundImageD": "usgen_monai.data.dicom_writers",
    "SaveUltrasoundImageDict": "usgen_monai.data.dicom_writers",
    "SaveUltrasoundImaged": "usgen_monai.data.dicom_writers",
    "SegmentCode": "usgen_monai.data.dicom_writers",
    "ULTRASOUND_SEGMENT_CODES": "usgen_monai.data.dicom_writers",
    "segment_code_for": "usgen_monai.data.dicom_writers",
    "ultrasound_name_formatter": "usgen_monai.data.dicom_writers",
    "generator_training_dataset": "usgen_monai.data.generator_data",
    "write_nifti": "usgen_monai.data.image_writers",
    "write_png": "usgen_monai.data.image_writers",
    "LAYOUTS": "usgen_monai.data.layouts",
    "SimulationSummary": "usgen_monai.data.layouts",
    "simulate_dataset": "usgen_monai.data.layouts",
    "OUTPUT_FORMATS": "usgen_monai.data.pair_writer",
    "PairWriter": "usgen_monai.data.pair_writer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
