"""MONAI Label train tasks that retrain the repository's bundles on the datastore's labels, through the bundles' own
``configs/train.json`` (imports MONAI Label: label virtualenv only).

:py:class:`UltrasoundBundleTrainTask` is a :py:class:`monailabel.tasks.train.bundle.BundleTrainTask`: MONAI Label
runs the bundle's ``train#trainer`` with the datastore's labelled studies as ``train#dataset#data`` and
``validate#dataset#data`` (MONAI Label's ``val_split``), in a process of its own (the server keeps serving). What it
adds for these bundles:

* outputs outside the repository: the best weights go to ``<work_dir>/models/<task>.pt`` (the bundle's
  ``model_path``), which the infer task of the same name then prefers over the bundle's ``models/model.pt``; the
  bundle's checkpoints and logs go to ``<work_dir>/train/<task>/<time stamp>/`` (its ``output_dir``);
* the start: the weights in use (retrained, else the bundle's), through the bundles' own settings: MGCC's
  ``pretrained_path`` (loaded by its ``initialize``; a ``CheckpointLoader`` for a bundle without one) and SAM's
  ``checkpoint`` (a decoder fine-tune with the image and prompt encoders frozen, the SAM bundle's
  ``train_mode: auto``). A train request with ``"pretrained": false`` starts from scratch;
* the data: the datastore's labels as a ``folder`` layout (label values > 0 are the structure); DICOM studies go in
  through the package's reader (converted to grey NIfTI files under the run folder first, since the bundles' training
  loaders read PNG/NIfTI); cines are left out (logged). For MGCC the datastore's unlabelled studies are its unlabelled
  set (a datalist file in the run folder), as the MGCC method intends;
* a validation set that is never empty: with too few labels for ``val_split``, the training studies validate too
  (logged), so the bundle's best-weights saver still writes the weights;
* one training thread (``train_threads``, default 1) and ``num_workers`` 0.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import partition_dataset
from monailabel.tasks.train.bundle import BundleTrainTask

__all__ = ["UltrasoundBundleTrainTask", "prepare_training_items"]

logger = logging.getLogger(__name__)

_KINDS = ("mgcc", "sam")


def _is_dicom(path: str) -> bool:
    from usgen_monai.data import UltrasoundDicomReader

    return UltrasoundDicomReader().verify_suffix(str(path))


def _dicom_to_grey_nifti(image: str, out_dir: Path) -> Path | None:
    """A single-frame ultrasound DICOM as a grey NIfTI (MONAI axis order, the study's grid); ``None`` for a cine."""
    from monai.transforms import Compose, LoadImaged

    from usgen_monai.data import SaveUltrasoundImage, UltrasoundDicomReader
    from usgen_monai.transforms import UltrasoundToGreyd

    data = Compose(
        [
            LoadImaged("image", reader=UltrasoundDicomReader(), image_only=True, ensure_channel_first=True),
            UltrasoundToGreyd("image"),
        ]
    )({"image": image})["image"]
    if data.ndim > 3 and data.shape[-1] > 1:
        return None
    data = data.reshape(data.shape[:3])
    name = out_dir / f"{Path(image).name.split('.')[0]}_grey"
    SaveUltrasoundImage(out_dir, output_ext=".nii.gz", output_dtype=np.float32)(
        data, meta_data={"affine": np.eye(4)}, filename=name
    )
    return name.with_name(name.name + ".nii.gz")


def prepare_training_items(items: list[dict[str, Any]], run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The datastore's ``{"image", "label"}`` items as the bundles' training loaders read them: DICOM studies
    converted to grey NIfTI under ``run_dir/dicom_as_nifti``, cines left out (logged)."""
    from usgen_monai.label.datastore import readable

    out, converted = [], Path(run_dir) / "dicom_as_nifti"
    for item in items:
        image = item["image"]
        problem = readable(image)
        if problem is not None:
            logger.warning(f"training leaves out a study that cannot be read: {problem}")
            continue
        if _is_dicom(image):
            converted.mkdir(parents=True, exist_ok=True)
            grey = _dicom_to_grey_nifti(image, converted)
            if grey is None:
                logger.warning(
                    f"training leaves out the cine {os.path.basename(image)} (2D training takes single frames)"
                )
                continue
            item = {**item, "image": str(grey), "source": image}
        out.append(item)
    return out


class UltrasoundBundleTrainTask(BundleTrainTask):
    """Retrain (MGCC) or fine-tune (SAM) a bundle on the datastore's labels (see the module docstring).

    Args:
        path: the bundle folder.
        conf: the app's ``--conf`` settings (``train_threads``, ``max_epochs``).
        name: the task's name (``/train/<name>``), also the weights' name under ``work_dir/models``.
        work_dir: the app's work folder.
        kind: ``"mgcc"`` or ``"sam"``: how the run starts from the current weights.
        current_weights: a callable returning the weights in use (the infer task's choice); default the bundle's.
    """

    def __init__(self, path, conf, name: str, work_dir, kind: str, current_weights=None) -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got kind={kind!r}.")
        super().__init__(str(path), dict(conf), load_strict=True)
        self.name, self.kind = name, kind
        self.work_dir = Path(work_dir)
        self.work_model = self.work_dir / "models" / f"{name}.pt"
        self.current_weights = current_weights or (lambda: Path(path) / "models" / "model.pt")
        self._run_dir: Path | None = None
        self._unlabeled: list[str] = []

    def config(self) -> dict[str, Any]:
        c = super().config()
        c.update(
            {
                "max_epochs": int(self.conf.get("max_epochs", 20)),
                "val_split": float(self.conf.get("val_split", 0.2)),
                "multi_gpu": False,
                "tracking": ["None"],
                "train_threads": int(self.conf.get("train_threads", 1)),
            }
        )
        return c

    def _fetch_datalist(self, request, datastore):
        self._run_dir = self.work_dir / "train" / self.name / time.strftime("%Y%m%d-%H%M%S")
        self._run_dir.mkdir(parents=True, exist_ok=True)
        items = [{"image": d["image"], "label": d["label"]} for d in datastore.datalist() if d]
        items = prepare_training_items(items, self._run_dir)
        if not items:
            raise ValueError(
                f"{self.name}: the datastore has no labelled 2D studies to train on (save labels first: PUT "
                "/datastore/label)."
            )
        from usgen_monai.label.datastore import readable

        unlabeled = []
        for image_id in datastore.get_unlabeled_images():
            uri = datastore.get_image_uri(image_id)
            if _is_dicom(uri):  # the unlabelled loader reads PNG / NIfTI
                continue
            problem = readable(uri)
            if problem is None:
                unlabeled.append(uri)
            else:
                logger.warning(f"{self.name}: the unlabelled set leaves out a study that cannot be read: {problem}")
        self._unlabeled = unlabeled
        logger.info(
            f"{self.name}: {len(items)} labelled studies, {len(unlabeled)} unlabelled; run folder {self._run_dir}"
        )
        return items

    def _partition_datalist(self, datalist, request, shuffle=False):
        val_split = float(request.get("val_split", 0.2))
        if val_split > 0 and len(datalist) >= 2:
            train, val = partition_dataset(datalist, ratios=[1 - val_split, val_split], shuffle=shuffle)
        else:
            train, val = list(datalist), []
        if not val:
            logger.warning(
                f"{self.name}: too few labelled studies for a validation split; the training studies validate"
            )
            val = list(train)
        if not train:
            train = list(val)
        return train, val

    def _load_checkpoint(self, model_pytorch, pretrained, train_handlers):
        # MONAI Label's version inserts a CheckpointLoader and expects dict handlers, while the bundles list some as
        # references ("@train#checkpoint"); the start weights are set in _update_overrides instead
        self._pretrained = bool(pretrained)

    def _start_weights(self) -> Path | None:
        """The weights a run starts from (those in use), or ``None`` (from scratch)."""
        if not getattr(self, "_pretrained", True):
            return None
        weights = Path(self.current_weights())
        if not weights.is_file():
            logger.info(f"{self.name}: no weights at {weights}; training from scratch")
            return None
        return weights

    def _update_overrides(self, overrides):
        import torch

        torch.set_num_threads(int(self.conf.get("train_threads", 1)))
        run_dir = self._run_dir or (self.work_dir / "train" / self.name / time.strftime("%Y%m%d-%H%M%S"))
        self.work_model.parent.mkdir(parents=True, exist_ok=True)
        handlers = overrides.get("train#handlers")
        overrides["train#handlers"] = list(handlers) if handlers is not None else handlers
        overrides.update(
            {
                "model_path": str(self.work_model),
                "ckpt_dir": str(self.work_model.parent),
                "output_dir": str(run_dir),
                "dataset_dir": str(run_dir),
                "layout": "folder",
                "num_workers": 0,
            }
        )
        if self.kind == "mgcc" and self._unlabeled:
            from usgen_monai.utils import write_json_atomic

            datalist = run_dir / "unlabeled.json"
            write_json_atomic(datalist, {"training": [{"image": p} for p in self._unlabeled]})
            overrides["unlabeled"] = [str(datalist)]
        weights = self._start_weights()
        if weights is not None and self.kind == "sam":
            overrides["checkpoint"] = str(weights)  # the SAM bundle's start weights: a decoder fine-tune
        elif weights is not None and self.bundle_config.get("pretrained_path") is not None:
            overrides["pretrained_path"] = str(weights)  # the MGCC bundle's start weights (its initialize loads them)
        elif weights is not None:  # a bundle without a start-weights setting: MONAI's CheckpointLoader
            loader = {"_target_": "CheckpointLoader", "load_path": str(weights), "load_dict": {"model": "$@network"},
                      "strict": True, "map_location": "cpu"}  # fmt: skip
            overrides["train#handlers"] = [loader, *(overrides.get("train#handlers") or [])]
        if weights is not None:
            logger.info(f"{self.name}: starting from {weights}")
        from usgen_monai.utils import json_safe, write_json_atomic

        record = {k: v for k, v in overrides.items() if k not in ("train#dataset#data", "validate#dataset#data")}
        record["training_items"] = len(overrides.get("train#dataset#data") or [])
        record["validation_items"] = len(overrides.get("validate#dataset#data") or [])
        write_json_atomic(run_dir / "overrides.json", json_safe(json.loads(json.dumps(record, default=str))))
        return overrides
