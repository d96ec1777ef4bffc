"""MONAI Label inference tasks that serve the repository's bundles for 2D ultrasound (imports MONAI Label: runs in
the label virtualenv only, see :py:mod:`usgen_monai.label.environment`).

Both tasks are :py:class:`monailabel.tasks.infer.bundle.BundleInferTask` subclasses pointed at a local bundle folder
(never ``get_bundle_models``, which fetches the model-zoo list): MONAI Label reads the bundle's
``configs/inference.json`` (``network_def``, ``preprocessing``, ``inferer``, ``postprocessing``) and
``configs/metadata.json`` (``network_data_format``: ``image`` in, ``pred`` out, labels from ``channel_def``, 2D from
the two-element ``spatial_shape``). What they change:

* weights: the newest of ``models/model.pt`` in the bundle and the app's retrained ``<work_dir>/models/<task>.pt``
  (written by :py:class:`usgen_monai.label.train.UltrasoundBundleTrainTask`), read by the bundle's own loaders
  (``torch.load(weights_only=True)``) and reloaded when the file changes;
* the result: the label map that ``Restored`` returns with a channel axis, written by the package's
  :py:class:`usgen_monai.engines.segmentation_inference.MaskWriter` as uint8 class indices (0 background, 1 the
  structure): PNG for PNG/JPEG and single-frame DICOM studies, NIfTI for NIfTI studies and cines, DICOM SEG for a
  DICOM study when the request asks for ``"result_extension": ".dcm"``;
* errors: any failure (an unreadable study, a prompt outside the image, ...) becomes an HTTP 422 (500 for anything
  unexpected) whose detail names the task, the study and the problem; the server keeps serving.

:py:class:`SamInferTask` passes the request's ``roi`` ``[x0, y0, x1, y1]``, ``foreground`` and ``background``
``[[x, y], ...]`` (x = column, y = row, in the study's own pixels) to the SAM bundle's ``ResizeLongestSidePadd`` and
``PromptInferer``, which keeps the image embedding of each study (keyed by its pixels): a further click on the same
study runs only the prompt encoder and the mask decoder.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from fastapi import HTTPException
from monai.transforms import MapTransform, SaveImaged
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.bundle import BundleInferTask

__all__ = [
    "MgccInferTask",
    "PromptFramed",
    "SamInferTask",
    "UltrasoundBundleInferTask",
    "request_error",
    "root_cause",
    "study_name",
]

logger = logging.getLogger(__name__)

#: the request keys of the prompts (MONAI Label's)
PROMPT_KEYS = ("roi", "foreground", "background")
#: the model-frame prompt tensors the SAM bundle's ``ResizeLongestSidePadd`` writes and its inferer takes
MODEL_PROMPT_KEYS = ("boxes", "points", "point_labels")
#: exceptions that mean a fault of the server's code (HTTP 500); any other failure is blamed on the request (422)
_SERVER_ERRORS = (AttributeError, ImportError, NameError, SyntaxError, MemoryError)
_RESULT_EXTENSIONS = {".png": "png", ".nii.gz": "nifti", ".nii": "nifti", ".dcm": "dicom"}


def study_name(request: Mapping[str, Any]) -> str:
    """The study a request is about, for messages: its file name (or what the request holds instead)."""
    image = request.get("image_path") or request.get("image")
    return os.path.basename(str(image)) if isinstance(image, (str, os.PathLike)) and image else repr(type(image))


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0].strip()


def root_cause(error: BaseException) -> BaseException:
    """The exception that says what went wrong: the first one down the ``__cause__`` / ``__context__`` chain that is
    not one of MONAI's wrappers (``RuntimeError('applying transform ...')``, ``'Failed to evaluate ...'``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        line = _first_line(current)
        if not line.startswith(("applying transform", "Failed to evaluate")):
            return current
        current = current.__cause__ or current.__context__
    return error


def request_error(task: str, study: str, error: BaseException) -> HTTPException:
    """An HTTP error naming the task, the study and the problem: 422 (the request or its study is at fault) unless
    the cause is a programming error (500)."""
    cause = root_cause(error)
    status = 500 if isinstance(cause, _SERVER_ERRORS) else 422
    text = _first_line(cause)
    if "cannot find a suitable reader" in text:
        text += " (not a readable PNG, JPEG, NIfTI or DICOM image)"
    if len(text) > 600:
        text = text[:597] + "..."
    return HTTPException(status_code=status, detail=f"{task}: study {study}: {type(cause).__name__}: {text}")


def _is_dicom(path: str) -> bool:
    """A DICOM file by name or by its ``DICM`` marker (the project's reader decides)."""
    from usgen_monai.data import UltrasoundDicomReader

    return UltrasoundDicomReader().verify_suffix(str(path))


class PromptFramed(MapTransform):
    """The frame of a cine that a prompt is about: the request's ``frame`` (0-based) of a multi-frame image
    ``(C, X, Y, F)`` becomes the image ``(C, X, Y)`` (with
    :py:class:`usgen_monai.transforms.ultrasound.SelectFrames`, untraced, so ``Invertd`` maps the prediction back to
    that frame's grid); a 2D image passes unchanged. A cine without ``frame``, or a frame out of range, raises a
    ``ValueError`` naming the study.

    Args:
        key: the image.
        frame_key: the request's frame index.
    """

    def __init__(self, key: str = "image", frame_key: str = "frame") -> None:
        super().__init__(keys=[key])
        self.key, self.frame_key = key, frame_key

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        from usgen_monai.transforms.ultrasound import SelectFrames

        d = dict(data)
        image = d[self.key]
        if image.ndim < 4:
            return d
        frames = int(image.shape[-1])
        frame = d.get(self.frame_key)
        study = study_name(d)
        if frames > 1 and frame is None:
            raise ValueError(
                f"{study} is a cine of {frames} frames; a prompt is about one frame: give 'frame' (0 to {frames - 1})."
            )
        frame = 0 if frame is None else frame
        if isinstance(frame, bool) or not isinstance(frame, (int, float, str)) or not str(frame).lstrip("-").isdigit():
            raise ValueError(f"{study}: frame must be a frame index, got {frame!r}.")
        if not 0 <= int(frame) < frames:
            raise ValueError(f"{study}: frame {int(frame)} is outside the cine's {frames} frames (0 to {frames - 1}).")
        selector = SelectFrames(frames=int(frame))
        with selector.trace_transform(False):
            out = selector(image)
        if hasattr(out, "meta"):
            out.meta["spatial_shape"] = list(out.shape[1:])  # Restored maps back to the frame's grid
        d[self.key] = out
        return d


class UltrasoundBundleInferTask(BundleInferTask):
    """A bundle's inference for 2D ultrasound studies (see the module docstring).

    Args:
        path: the bundle folder (``configs/inference.json``, ``configs/metadata.json``, ``models/model.pt``).
        conf: the app's ``--conf`` settings.
        name: the task's name (the ``/infer/<name>`` route), also the retrained weights' name.
        work_dir: the app's work folder; ``<work_dir>/models/<name>.pt`` is preferred to the bundle's weights when it
            is newer (a retrain). ``None``: the bundle's weights only.
        type: MONAI Label's task type.
        description: shown by ``/info/``; default the bundle's.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        conf: Mapping[str, str],
        name: str,
        work_dir: str | os.PathLike | None = None,
        type: str = InferType.SEGMENTATION,
        description: str | None = None,
    ) -> None:
        self.name = name
        self.work_model = Path(work_dir) / "models" / f"{name}.pt" if work_dir else None
        self.bundle_model = Path(path) / "models" / "model.pt"
        self._inferer_instance: Any = None
        super().__init__(
            str(path), dict(conf), type=type, post_filter=[SaveImaged], add_post_restore=True, load_strict=True
        )
        if not self.valid:
            return
        if description:
            self.description = description

    # ----------------------------------------------------------------------------------------------------------
    # weights

    def model_file(self) -> Path:
        """The weights in use: the app's retrained ones when they exist and are newer than the bundle's."""
        bundle = self.bundle_model
        work = self.work_model
        newer = (
            work is not None
            and work.is_file()
            and (not bundle.is_file() or work.stat().st_mtime >= bundle.stat().st_mtime)
        )
        return work if newer else bundle

    def get_path(self, validate: bool = True) -> str | None:
        path = self.model_file()
        return str(path) if path.is_file() or not validate else None

    def load_weights(self, network: torch.nn.Module, path: Path, device: str) -> torch.nn.Module:
        """``network`` with the weights at ``path`` (the bundle's loader; ``torch.load(weights_only=True)``)."""
        from usgen_monai.bundle import load_model_weights

        return load_model_weights(network, path, map_location=device)

    def _get_network(self, device, data):
        path = self.model_file()
        if not path.is_file():
            raise FileNotFoundError(f"no weights for {self.name}: neither {self.bundle_model} nor {self.work_model}.")
        stamp = (str(path), path.stat().st_mtime_ns)
        cached = self._networks.get(device)
        if cached and cached[1] == stamp:
            return cached[0]
        if cached:
            logger.info(f"{self.name}: reloading the weights {path} (they changed)")
        network = copy.deepcopy(self.network).to(torch.device(device))
        network = self.load_weights(network, path, device).eval()
        self._networks[device] = (network, stamp)
        self.on_network_loaded()
        return network

    def on_network_loaded(self) -> None:
        """Called after (re)loading the weights."""

    # ----------------------------------------------------------------------------------------------------------
    # pipeline

    def inferer(self, data=None):
        """The bundle's inferer, built once and kept (the SAM inferer's embedding cache lives in it)."""
        if self._inferer_instance is None:
            self._inferer_instance = super().inferer(data)
        return self._inferer_instance

    def clean_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """The request as the pipeline takes it (hook)."""
        return request

    def writer(self, data: dict[str, Any], extension=None, dtype=None):
        """Write ``pred`` (``(1, X, Y[, F])`` after ``Restored``) as uint8 class indices; returns the file and the
        result JSON."""
        from usgen_monai.engines.segmentation_inference import MaskWriter

        source = str(data.get("image_path") or "")
        pred = data[self.output_label_key]
        pred = pred if isinstance(pred, torch.Tensor) else torch.as_tensor(pred)
        if pred.ndim == 2 or (pred.ndim == 3 and pred.shape[0] != 1):
            pred = pred[None]  # Restored drops the channel of a cine (X, Y, F); MaskWriter takes (1, X, Y[, F])
        ext = str(data.get("result_extension") or "").lower()
        if ext and ext not in _RESULT_EXTENSIONS:
            raise ValueError(f"result_extension must be one of {sorted(_RESULT_EXTENSIONS)}, got {ext!r}.")
        cine = pred.ndim == 4 and pred.shape[-1] > 1
        if pred.ndim == 4 and not cine:
            pred = pred[..., 0]
        dicom = bool(source) and _is_dicom(source)
        if not ext:
            lower = source.lower()
            ext = ".nii.gz" if cine or lower.endswith((".nii", ".nii.gz")) else ".png"
        fmt = _RESULT_EXTENSIONS[ext]
        if fmt == "dicom" and not dicom:
            raise ValueError(
                f"a DICOM SEG needs a DICOM study to reference, and {os.path.basename(source)} is not one."
            )
        if fmt == "png" and cine:
            fmt, ext = "nifti", ".nii.gz"
        labels = {0: "background", **{int(v): str(k) for k, v in (self.labels or {}).items()}}
        out_dir = Path(tempfile.mkdtemp(prefix=f"usgen-label-{self.name}-"))
        try:
            writer = MaskWriter(out_dir, output_format=fmt, output_postfix="", label_classes=labels, binary_value=1,
                                algorithm_name=f"usgen-monai {self.name}", algorithm_version=self.version or None)  # fmt: skip
            stem = Path(source).name.split(".")[0] or "study"
            paths, written, _ = writer(torch.round(pred.float().cpu()).to(torch.int64), source or stem, stem)
            fd, result = tempfile.mkstemp(suffix=ext, prefix=f"usgen-label-{self.name}-")
            os.close(fd)
            shutil.move(str(paths[0]), result)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        mask = pred[0]
        info = {
            "study": os.path.basename(source),
            "format": written,
            "shape": [int(s) for s in mask.shape],  # columns, rows[, frames]
            "foreground_pixels": int((mask > 0).sum()),
            "weights": str(self.model_file()),
        }
        return result, info

    def __call__(self, request, callbacks=None):
        study = study_name(request)
        start = time.perf_counter()
        try:
            result = super().__call__(self.clean_request(dict(request)), callbacks)
        except HTTPException:
            raise
        except Exception as e:  # one bad study must not take the server down: report it and go on
            error = request_error(self.name, study, e)
            logger.error(f"{error.detail}", exc_info=error.status_code >= 500)
            raise error from e
        logger.info(f"{self.name}: study {study} segmented in {time.perf_counter() - start:.3f} s")
        return result


class MgccInferTask(UltrasoundBundleInferTask):
    """Automatic segmentation with the MGCC bundle (``bundles/mgcc``): ``/infer/mgcc``."""

    def __init__(self, path, conf, name: str = "mgcc", work_dir=None) -> None:
        super().__init__(path, conf, name, work_dir, type=InferType.SEGMENTATION)


class SamInferTask(UltrasoundBundleInferTask):
    """Interactive segmentation with the SAM bundle (``bundles/sam``): ``/infer/sam`` with ``roi``, ``foreground``
    and ``background`` (see the module docstring). Without any prompt, the SAM bundle boxes the MGCC bundle's mask
    (its ``AutoBoxPromptd``) when that bundle has weights; otherwise the request fails with a message asking for a
    prompt.

    3D clients send points as ``[x, y, z]``: on a 2D study ``z`` must be 0 and is dropped. On a cine the request's
    ``frame`` (0-based) says which frame the prompts are about; the result is that frame's mask.
    """

    def __init__(self, path, conf, name: str = "sam", work_dir=None) -> None:
        super().__init__(path, conf, name, work_dir, type=InferType.DEEPGROW)

    def load_weights(self, network, path, device):
        from usgen_monai.bundle import load_sam_bundle_weights

        return load_sam_bundle_weights(network, path, map_location=device)

    def on_network_loaded(self) -> None:
        if self._inferer_instance is not None and hasattr(self._inferer_instance, "clear"):
            self._inferer_instance.clear()  # embeddings of the old image encoder

    @property
    def cache_stats(self) -> dict[str, int]:
        """The embedding cache's hits and misses."""
        i = self._inferer_instance
        return {"hits": int(getattr(i, "hits", 0)), "misses": int(getattr(i, "misses", 0))}

    def clean_request(self, request: dict[str, Any]) -> dict[str, Any]:
        study = study_name(request)
        for key in ("foreground", "background"):
            points = request.get(key)
            if points is None:
                continue
            if isinstance(points, (list, tuple)) and not points:
                request.pop(key)  # clients send [] for "no points of this kind"
                continue
            if isinstance(points, (list, tuple)) and all(isinstance(p, (list, tuple)) for p in points):
                cleaned = []
                for p in points:
                    if len(p) == 3:
                        if p[2] not in (0, 0.0):
                            raise ValueError(f"{study}: {key} point {list(p)} has z={p[2]}, but the study is 2D (z=0).")
                        p = p[:2]
                    cleaned.append(list(p))
                request[key] = cleaned
        roi = request.get("roi")
        if isinstance(roi, (list, tuple)) and not roi:
            request.pop("roi")
        for key in MODEL_PROMPT_KEYS:  # only the pipeline writes these
            request.pop(key, None)
        return request

    def pre_transforms(self, data=None):
        """The SAM bundle's preprocessing with :py:class:`PromptFramed` before its prompt transform."""
        pre = list(super().pre_transforms(data))
        names = [type(t).__name__ for t in pre]
        at = names.index("ResizeLongestSidePadd") if "ResizeLongestSidePadd" in names else len(pre)
        return pre[:at] + [PromptFramed(self.input_key)] + pre[at:]

    def run_inferer(self, data, convert_to_batch=True, device="cuda"):
        inferer = self.inferer(data)
        network = self._get_network(device, data)
        image = data[self.input_key]
        x = image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image)
        x = x[None].to(torch.device(device))
        prompts = {k: torch.as_tensor(data[k]).to(torch.device(device)) for k in MODEL_PROMPT_KEYS if k in data}
        with torch.no_grad():
            out = inferer(x, network, **prompts)
        data[self.output_label_key] = out[0].detach().cpu()
        return data

    def writer(self, data, extension=None, dtype=None):
        result, info = super().writer(data, extension, dtype)
        info["embedding_cache"] = self.cache_stats
        prompts = {k: data[k] for k in PROMPT_KEYS if data.get(k) is not None}
        info["prompts"] = prompts
        return result, info
