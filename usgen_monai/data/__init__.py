"""data"""

# dataset readers and layout writers (issue 2, items 4-5)
from usgen_monai.data.datasets import (
    DatasetLayoutError,
    detect_layout,
    load_busi_datalist,
    load_dataset,
    load_folder_pair_datalist,
    load_hc18_datalist,
    load_json_datalist,
    load_transforms,
    split_dataset,
)
from usgen_monai.data.layouts import LAYOUTS, SimulationSummary, simulate_dataset

__all__ = [
    *globals().get("__all__", ()),
    "DatasetLayoutError",
    "LAYOUTS",
    "SimulationSummary",
    "detect_layout",
    "load_busi_datalist",
    "load_dataset",
    "load_folder_pair_datalist",
    "load_hc18_datalist",
    "load_json_datalist",
    "load_transforms",
    "simulate_dataset",
    "split_dataset",
]

# ultrasound DICOM reading and writing (issue 3)
from usgen_monai.data.dicom_reader import (
    DicomFolderResult,
    UltrasoundDicomError,
    UltrasoundDicomReader,
    UltrasoundRegionWarning,
    load_dicom_folder,
)
from usgen_monai.data.dicom_writers import (
    GENERIC_SEGMENT_CODE,
    ULTRASOUND_SEGMENT_CODES,
    SaveDicomSeg,
    SaveDicomSegD,
    SaveDicomSegd,
    SaveDicomSegDict,
    SaveSyntheticDicom,
    SaveSyntheticDicomD,
    SaveSyntheticDicomd,
    SaveSyntheticDicomDict,
    SaveUltrasoundImage,
    SaveUltrasoundImageD,
    SaveUltrasoundImaged,
    SaveUltrasoundImageDict,
    SegmentCode,
    segment_code_for,
    ultrasound_name_formatter,
)

__all__ = [
    *globals().get("__all__", ()),
    "DicomFolderResult",
    "UltrasoundDicomError",
    "UltrasoundDicomReader",
    "UltrasoundRegionWarning",
    "load_dicom_folder",
    "GENERIC_SEGMENT_CODE",
    "ULTRASOUND_SEGMENT_CODES",
    "SaveDicomSeg",
    "SaveDicomSegD",
    "SaveDicomSegd",
    "SaveDicomSegDict",
    "SaveSyntheticDicom",
    "SaveSyntheticDicomD",
    "SaveSyntheticDicomd",
    "SaveSyntheticDicomDict",
    "SaveUltrasoundImage",
    "SaveUltrasoundImageD",
    "SaveUltrasoundImaged",
    "SaveUltrasoundImageDict",
    "SegmentCode",
    "segment_code_for",
    "ultrasound_name_formatter",
]
