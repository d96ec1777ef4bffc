"""The usgen-monai MONAI Label app for 2D ultrasound: ``mgcc`` (automatic segmentation), ``sam`` (box and clicks)
and their train tasks, served from the repository's bundle folders, offline.

MONAI Label loads this file from the app folder (``monailabel start_server --app <folder>``); ``usgen-monai label``
copies it into ``<work_dir>/app`` so that the server's own files (``logs/``, ``model/``) stay out of the package.
Settings (``--conf KEY VALUE``; all optional):

* ``mgcc_bundle``, ``sam_bundle``: the bundle folders (default ``bundles/mgcc`` and ``bundles/sam`` of the
  repository). A bundle without ``models/model.pt`` is left out (logged), unless the app retrained it before.
* ``work_dir``: where retrained weights (``models/<task>.pt``), train runs (``train/<task>/<time>/``) and results go
  (default ``<studies>/.usgen-label``).
* ``models``: which infer tasks to serve, comma-separated (default ``mgcc,sam``).
* ``max_epochs``, ``val_split``, ``train_threads``: train-task defaults (20, 0.2, 1); a train request may override
  the first two.
* ``label``: the name of the structure (default ``lesion``; the MGCC bundle's ``channel_def``).
* ``preload``: build the networks at start (default ``true``: the first request is as fast as the others).

Nothing is fetched: no model-zoo list (no ``get_bundle_models``), no SAM2 (the label virtualenv has no ``sam2``), no
sample apps or data sets.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.utils.others.generic import strtobool

import usgen_monai
from usgen_monai.label.datastore import UltrasoundDatastore
from usgen_monai.label.infer import MgccInferTask, SamInferTask
from usgen_monai.label.train import UltrasoundBundleTrainTask

logger = logging.getLogger(__name__)

_REPO = Path(usgen_monai.__file__).resolve().parents[1]


class UltrasoundLabelApp(MONAILabelApp):
    """MONAI Label app serving the MGCC and SAM bundles for 2D ultrasound (see the module docstring)."""

    def __init__(self, app_dir, studies, conf):
        self.bundles = {
            "mgcc": Path(conf.get("mgcc_bundle") or _REPO / "bundles" / "mgcc").resolve(),
            "sam": Path(conf.get("sam_bundle") or _REPO / "bundles" / "sam").resolve(),
        }
        self.work_dir = Path(conf.get("work_dir") or Path(studies) / ".usgen-label").resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.models = [m.strip() for m in str(conf.get("models", "mgcc,sam")).split(",") if m.strip()]
        unknown = sorted(set(self.models) - set(self.bundles))
        if unknown:
            raise ValueError(
                f"--conf models {conf.get('models')!r}: unknown {unknown}; choose from {sorted(self.bundles)}."
            )
        self.label_name = str(conf.get("label", "lesion"))
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="usgen-monai ultrasound",
            description="2D ultrasound annotation: MGCC automatic segmentation, SAM box and click segmentation, retraining",
            version=usgen_monai.__version__,
            labels={self.label_name: 1},
        )

    def init_datastore(self):
        logger.info(f"Init Datastore for: {self.studies}")
        return UltrasoundDatastore(self.studies, label_classes={1: self.label_name}, auto_reload=False)

    def _bundle_ok(self, name: str) -> bool:
        bundle = self.bundles[name]
        if not (bundle / "configs" / "inference.json").is_file():
            logger.warning(f"{name}: {bundle} is not a bundle folder (no configs/inference.json); not served")
            return False
        if not (bundle / "models" / "model.pt").is_file():
            logger.warning(
                f"{name}: {bundle / 'models' / 'model.pt'} does not exist (train the bundle first); not served"
            )
            return False
        return True

    def init_infers(self) -> dict[str, InferTask]:
        conf = {**self.conf, "preload": "false"}  # preloaded below, once the tasks are complete
        tasks: dict[str, InferTask] = {}
        kinds = {"mgcc": MgccInferTask, "sam": SamInferTask}
        for name in self.models:
            if not self._bundle_ok(name):
                continue
            task = kinds[name](str(self.bundles[name]), conf, name=name, work_dir=self.work_dir)
            if task.is_valid():
                tasks[name] = task
            else:
                logger.warning(f"{name}: MONAI Label did not accept the bundle {self.bundles[name]}; not served")
        if strtobool(str(self.conf.get("preload", "true"))):
            for name, task in tasks.items():
                task._get_network("cpu", None)
        logger.info(f"infer tasks: {sorted(tasks)}")
        return tasks

    def init_trainers(self) -> dict[str, TrainTask]:
        trainers: dict[str, TrainTask] = {}
        for name in self.models:
            if not (self.bundles[name] / "configs" / "train.json").is_file():
                continue
            infer = self._infers.get(name)
            current = infer.model_file if infer is not None else None
            task = UltrasoundBundleTrainTask(
                str(self.bundles[name]),
                self.conf,
                name=name,
                work_dir=self.work_dir,
                kind=name,
                current_weights=current,
            )
            if task.is_valid():
                trainers[name] = task
        logger.info(f"train tasks: {sorted(trainers)}")
        return trainers

    def init_strategies(self):
        from monailabel.tasks.activelearning.first import First
        from monailabel.tasks.activelearning.random import Random

        return {"random": Random(), "first": First()}

    def on_init_complete(self):
        super().on_init_complete()
        logger.info(f"usgen-monai label app ready: studies {self.studies}; work {self.work_dir}; pid {os.getpid()}")
