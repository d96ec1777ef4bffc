"""The evidence: does synthetic data help? A resumable study that trains the bundles through their own configs on
few labelled pairs, with and without synthetic data, and reports held-out Dice (``python -m usgen_monai study``)."""

from usgen_monai.study.arms import ARMS, GENERATOR_ARM, StudyContext, run_arm, run_generator
from usgen_monai.study.command import add_study_arguments, run_study, run_study_command
from usgen_monai.study.protocol import (
    AnatomyData,
    StudySettings,
    labeled_subset,
    prepare_study_data,
    write_cell_datalist,
    write_masks_folder,
)
from usgen_monai.study.report import plot_dice_against_labeled, summarize, write_report
from usgen_monai.study.runner import BundleRunError, Cell, bundle_command, run_bundle, run_cell

__all__ = [
    "ARMS",
    "AnatomyData",
    "BundleRunError",
    "Cell",
    "GENERATOR_ARM",
    "StudyContext",
    "StudySettings",
    "add_study_arguments",
    "bundle_command",
    "labeled_subset",
    "plot_dice_against_labeled",
    "prepare_study_data",
    "run_arm",
    "run_bundle",
    "run_cell",
    "run_generator",
    "run_study",
    "run_study_command",
    "summarize",
    "write_cell_datalist",
    "write_masks_folder",
    "write_report",
]
