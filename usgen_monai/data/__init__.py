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
    "pil_to_grey": "usgen_monai.data.datasets",
    "load_unext_datalist": "usgen_monai.data.datasets",
    "split_dataset": "usgen_monai.data.splits",
    "UltrasoundDicomError": "usgen_monai.data.dicom_files",
    "dcmread_file": "usgen_monai.data.dicom_files",
    "DicomFolderResult": "usgen_monai.data.dicom_reader",
    "UltrasoundDicomReader": "usgen_monai.data.dicom_reader",
    "UltrasoundRegionWarning": "usgen_monai.data.dicom_reader",
    "load_dicom_folder": "usgen_monai.data.dicom_reader",
    "GENERIC_SEGMENT_CODE": "usgen_monai.data.dicom_seg",
    "SaveDicomSeg": "usgen_monai.data.dicom_seg",
    "SaveDicomSegD": "usgen_monai.data.dicom_seg",
    "SaveDicomSegDict": "usgen_monai.data.dicom_seg",
    "SaveDicomSegd": "usgen_monai.data.dicom_seg",
    "SegmentCode": "usgen_monai.data.dicom_seg",
    "ULTRASOUND_SEGMENT_CODES": "usgen_monai.data.dicom_seg",
    "segment_code_for": "usgen_monai.data.dicom_seg",
    "SaveSyntheticDicom": "usgen_monai.data.synthetic_dicom",
    "SaveSyntheticDicomD": "usgen_monai.data.synthetic_dicom",
    "SaveSyntheticDicomDict": "usgen_monai.data.synthetic_dicom",
    "SaveSyntheticDicomd": "usgen_monai.data.synthetic_dicom",
    "AtomicNibabelWriter": "usgen_monai.data.image_savers",
    "AtomicPILWriter": "usgen_monai.data.image_savers",
    "SaveUltrasoundImage": "usgen_monai.data.image_savers",
    "SaveUltrasoundImageD": "usgen_monai.data.image_savers",
    "SaveUltrasoundImageDict": "usgen_monai.data.image_savers",
    "SaveUltrasoundImaged": "usgen_monai.data.image_savers",
    "SECONDARY_CAPTURE_IMAGE_STORAGE": "usgen_monai.data.writer_common",
    "SYNTHETIC_DATA_TAG": "usgen_monai.data.writer_common",
    "US_IMAGE_STORAGE": "usgen_monai.data.writer_common",
    "US_MULTIFRAME_IMAGE_STORAGE": "usgen_monai.data.writer_common",
    "save_dataset_atomic": "usgen_monai.data.writer_common",
    "ultrasound_name_formatter": "usgen_monai.data.writer_common",
    "generator_training_dataset": "usgen_monai.data.generator_data",
    "find_image_files": "usgen_monai.data.image_files",
    "read_context_image": "usgen_monai.data.image_files",
    "install_library_message_filters": "usgen_monai.data.library_messages",
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
