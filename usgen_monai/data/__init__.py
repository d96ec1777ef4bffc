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
