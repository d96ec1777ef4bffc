"""A segmentation bundle's own inference pieces, loaded from its folder: the MONAI Deploy app's segmenter and the
SAM bundle's automatic box prompts (the MGCC bundle's masks) both run a bundle through this.

:py:class:`BundleSegmenter` reads ``configs/inference.json`` of a bundle folder with MONAI's ``ConfigParser`` and
takes from it exactly what ``python -m monai.bundle run`` uses: ``preprocessing`` (``LoadImaged`` with
:py:class:`usgen_monai.data.UltrasoundDicomReader`, ``UltrasoundToGreyd``, ``CropToUltrasoundRegiond``,
``ScaleIntensityd``), ``inferer`` (:py:class:`usgen_monai.engines.segmentation_inference.ResizeInferer`, frame by
frame for cines), ``postprocessing`` (sigmoid, threshold, ``Invertd`` back to the file's pixel grid), the label
classes and the bundle version, and runs ``initialize``. The network is ``models/model.ts`` (TorchScript, which
MONAI Deploy's bundle operator prefers) when the bundle has one, else the config's ``network``
(``network_def`` + ``models/model.pt``). The masks are therefore the bundle's own masks, on the source's grid.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from usgen_monai.engines.segmentation_inference import SegmentationInference

__all__ = ["BundleSegmenter", "bundle_model_file"]

logger = logging.getLogger(__name__)


def bundle_model_file(bundle_root: str | os.PathLike) -> Path:
    """The weights a :py:class:`BundleSegmenter` of ``bundle_root`` loads: ``models/model.ts`` (TorchScript, what
    MONAI Deploy prefers) when present, else ``models/model.pt`` (which may not exist)."""
    models = Path(bundle_root) / "models"
    return models / "model.ts" if (models / "model.ts").is_file() else models / "model.pt"


class BundleSegmenter:
    """Preprocess, infer and postprocess one ultrasound file the way a segmentation bundle's inference config does.

    Args:
        bundle_root: the bundle folder (``configs/inference.json``, ``configs/metadata.json``, ``models/``).
        config_file: the inference config, relative to ``bundle_root``. Defaults to ``configs/inference.json``.
        device: overrides the config's ``device`` (``"cpu"``, ``"cuda:0"``); ``None`` keeps it.
        num_threads: the config's ``num_threads`` (torch CPU threads); ``None`` keeps it.

    Raises:
        ValueError: the bundle folder or its inference config is missing (naming the path).
        FileNotFoundError: the bundle has neither ``models/model.ts`` nor ``models/model.pt`` (naming them and the
            training command).
    """

    def __init__(
        self,
        bundle_root: str | os.PathLike,
        config_file: str = "configs/inference.json",
        device: str | torch.device | None = None,
        num_threads: int | None = None,
    ) -> None:
        root = Path(bundle_root).resolve()
        config = root / config_file
        if not root.is_dir():
            raise ValueError(f"bundle folder {root} does not exist.")
        if not config.is_file():
            raise ValueError(f"bundle {root} has no {config_file}; is it a MONAI bundle folder?")
        parser = ConfigParser()
        parser.read_config(str(config))
        metadata = root / "configs" / "metadata.json"
        if metadata.is_file():
            parser.read_meta(str(metadata))
        parser["bundle_root"] = str(root)
        parser["progress"] = False
        if device is not None:
            parser["device"] = f"$torch.device({str(device)!r})"
        if num_threads is not None:
            parser["num_threads"] = int(num_threads)
        self.bundle_root = root
        self.parser = parser
        parser.get_parsed_content("initialize")
        self.device = parser.get_parsed_content("device")
        self.preprocessing = parser.get_parsed_content("preprocessing")
        self.inferer = parser.get_parsed_content("inferer")
        self.postprocessing = parser.get_parsed_content("postprocessing")
        self.label_classes = {int(k): str(v) for k, v in parser.get_parsed_content("label_classes").items()}
        self.version = str(parser.get_parsed_content("bundle_version")) if "bundle_version" in parser else "unknown"
        self.name = str((parser.get("_meta_") or {}).get("name") or root.name)
        self.network, self.model_file = self._network()
        self.runner = SegmentationInference(
            network=self.network,
            preprocessing=self.preprocessing,
            inferer=self.inferer,
            postprocessing=self.postprocessing,
            writer=None,
            device=self.device,
            progress=False,
        )
        logger.info(f"bundle {root} version {self.version}: {self.model_file.name} on {self.device}")

    def _network(self) -> tuple[Any, Path]:
        ts = bundle_model_file(self.bundle_root)
        if ts.suffix == ".ts":
            return torch.jit.load(str(ts), map_location=self.device).eval(), ts
        pt = Path(self.parser.get_parsed_content("model_path"))
        if not pt.is_file():
            train = self.parser.get("train_command", "")
            raise FileNotFoundError(
                f"the bundle {self.bundle_root} has no trained weights: neither {ts} nor {pt} exists."
                + (f" Train them first: {train}" if train else "")
            )
        return self.parser.get_parsed_content("network"), pt

    def preprocess(self, path: str | os.PathLike) -> dict[str, Any]:
        """The bundle's preprocessing of one file: ``{"image": MetaTensor (1, X, Y[, F])}`` on the network's side of
        the region crop, with the transforms recorded for the inverse."""
        return self.preprocessing({"image": os.fspath(path)})

    def predict(self, data: dict[str, Any]) -> MetaTensor:
        """The label map ``(1, X, Y[, F])`` of a preprocessed item, mapped back to its source file's pixel grid."""
        self.runner.predict([data])
        return self.postprocessing(data)["pred"]
