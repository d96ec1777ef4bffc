"""Segmentation inference on the files users have: a folder or a datalist of PNG, JPEG, NIfTI and ultrasound DICOM.

One model-agnostic runner, :py:class:`SegmentationInference`, shared by the segmentation bundles, the MONAI Label app
and the MONAI Deploy app (kept in one module, a little over the house's ~600 lines, because its input listing, mask
writer and per-file error handling are one path that every consumer must take the same way). It takes the pieces a MONAI bundle names, in the bundle's order::

    preprocessing (MONAI Compose: LoadImaged with UltrasoundDicomReader, UltrasoundToGreyd, CropToUltrasoundRegiond, ...)
        -> inferer(image, network)       any callable that maps a preprocessed image to logits
        -> postprocessing (Compose: Activationsd, AsDiscreted, Invertd back to the input's pixel grid)
        -> writer (MaskWriter: PNG, NIfTI or DICOM SEG that references its source DICOM)

and runs them on every input in batches of inputs of one shape (``parallel_batches`` batches at once, each in its
own thread: the network's operations release the GIL, and for a small network one torch thread per batch uses the
cores better than several threads on one batch). An input that fails anywhere (unreadable, corrupt, an
unsupported DICOM) is logged, recorded with its reason and skipped; the run goes on and ends with a logged summary and
a JSON summary file (``inference_summary.json``) listing every mask written and every failure.

:py:class:`ResizeInferer` adapts a 2D network with a fixed input size to images of any size and to cines: each image
or frame is resized to the network's size, inferred, and its logits resized back, so masks come back on the grid the
preprocessing produced (which ``Invertd`` then maps to the file's own grid). :py:func:`inference_inputs` lists the
inputs of a folder or a MONAI datalist. Model-specific inputs (prompts for a promptable model) travel in the item
dicts: the values of ``prompt_keys`` are passed to the inferer as keyword arguments.

Example::

    runner = SegmentationInference(
        network=net.eval(), preprocessing=preprocessing, inferer=ResizeInferer((256, 256)),
        postprocessing=postprocessing, writer=MaskWriter("out", output_format="dicom", label_classes={1: "lesion"}),
        summary_path="out/inference_summary.json",
    )
    summary = runner.run(inference_inputs(dataset_dir="images"))
    summary.failed  # [{"input": ".../broken.png", "reason": "..."}]
"""

from __future__ import annotations

import logging
import os
import re
import time
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.inferers import Inferer, SimpleInferer

from usgen_monai.utils import as_flag, write_json_atomic

__all__ = [
    "INFERENCE_SUFFIXES",
    "MASK_OUTPUT_FORMATS",
    "InferenceSummary",
    "MaskWriter",
    "ResizeInferer",
    "SegmentationInference",
    "failure_reason",
    "inference_inputs",
]

logger = logging.getLogger(__name__)

#: file suffixes :py:func:`inference_inputs` takes from a folder (files without a suffix are taken when they carry
#: the DICOM ``DICM`` marker)
INFERENCE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".nii", ".nii.gz", ".dcm", ".dicom", ".dic")
#: what :py:class:`MaskWriter` writes
MASK_OUTPUT_FORMATS: tuple[str, ...] = ("png", "nifti", "dicom")
_NON_DICOM_FORMATS = ("png", "nifti", "error")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _natural_key(path: Path) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", path.name)]


def _is_dicom(path: str | os.PathLike) -> bool:
    """A DICOM file by name (``.dcm``, ``.dicom``, ``.dic``) or by its ``DICM`` marker."""
    from usgen_monai.data import UltrasoundDicomReader

    return UltrasoundDicomReader().verify_suffix(str(path))


def inference_inputs(
    dataset_dir: str | os.PathLike | None = "",
    datalist: str | os.PathLike | None = "",
    datalist_key: str = "test",
    recursive: bool = False,
) -> list[dict[str, Any]]:
    """The inputs of a run: every image file of a folder, or the items of a MONAI datalist.

    A folder gives ``{"image": path}`` for each visible file with a suffix of :data:`INFERENCE_SUFFIXES` (and each
    file without a suffix that carries the DICOM marker), in natural order; other files (text, JSON, ...) are left out
    and counted in the log. A datalist gives its ``datalist_key`` list as read by
    :py:func:`usgen_monai.data.load_json_datalist` (paths joined to the JSON's folder; a missing file is reported by
    the run as a failed input, not here). A datalist, when given, is used instead of the folder.

    Args:
        dataset_dir: a folder of images.
        datalist: a MONAI (Decathlon-style) datalist JSON, or a folder holding ``datalist.json``.
        datalist_key: the datalist's list to read (``"test"``, ``"validation"``, ``"training"``). Defaults to test.
        recursive: also read the folder's sub-folders. Defaults to False.

    Raises:
        ValueError: neither is given, the folder does not exist or holds no image, or the datalist is unreadable or
            lacks ``datalist_key`` (the message names the path).
    """
    if datalist:
        from usgen_monai.data import load_json_datalist

        return [dict(item) for item in load_json_datalist(datalist, key=datalist_key, check_files=False)]
    if not dataset_dir:
        raise ValueError(
            "no inputs: give dataset_dir (a folder of PNG, JPEG, NIfTI or DICOM images, --dataset_dir) or datalist "
            "(a MONAI datalist JSON, --datalist)."
        )
    root = Path(dataset_dir)
    if not root.is_dir():
        raise ValueError(f"dataset_dir {root} is not a folder" + ("." if root.exists() else " (it does not exist)."))
    candidates = root.rglob("*") if recursive else root.iterdir()
    files = sorted(
        (p for p in candidates if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)),
        key=_natural_key,
    )
    images = [p for p in files if _suffix(p) in INFERENCE_SUFFIXES or (not p.suffix and _is_dicom(p))]
    ignored = len(files) - len(images)
    if not images:
        raise ValueError(
            f"no images in {root}: expected files ending in {', '.join(INFERENCE_SUFFIXES)} (or DICOM files without a "
            f"suffix); found {len(files)} other file(s)."
        )
    if ignored:
        logger.info(f"{root}: {len(images)} image file(s); left out {ignored} file(s) that are not images")
    return [{"image": os.path.abspath(p)} for p in images]


class ResizeInferer(Inferer):
    """Run a 2D network with a fixed input size on images of any size and on cines.

    ``inputs`` ``(B, C, H, W)`` or, for cines, ``(B, C, H, W, F)`` (frames last, as
    :py:class:`usgen_monai.data.UltrasoundDicomReader` returns them). Every image or frame is resized to
    ``spatial_size`` (the size the network was trained at; MONAI ``Resize`` does the same in training), inferred by
    ``inferer`` in chunks of ``batch_size`` images or frames, and its logits are resized back to the input's size, so
    the output ``(B, K, H, W[, F])`` lies on the input's grid. A MONAI ``Inferer``, so MONAI Label and MONAI Deploy
    can use it as the bundle's ``inferer``.

    Args:
        spatial_size: the network's input size ``(H, W)``. Defaults to ``(256, 256)``.
        inferer: the inner inferer (``SimpleInferer``, ``SlidingWindowInferer``, ...). Defaults to SimpleInferer.
        mode: interpolation of the images and of the logits (``"bilinear"``, ``"nearest"``, ``"area"``, ...).
            Defaults to bilinear.
        batch_size: images or frames per network call. Defaults to 8.
    """

    def __init__(
        self,
        spatial_size: Sequence[int] = (256, 256),
        inferer: Callable[..., Any] | None = None,
        mode: str = "bilinear",
        batch_size: int = 8,
    ) -> None:
        super().__init__()
        size = tuple(int(s) for s in spatial_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"spatial_size must be two positive sizes (H, W), got spatial_size={tuple(spatial_size)}.")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got batch_size={batch_size}.")
        self.spatial_size = size
        self.inferer = inferer if inferer is not None else SimpleInferer()
        self.mode = mode
        self.batch_size = int(batch_size)

    def _resize(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        if tuple(x.shape[2:]) == tuple(size):
            return x
        align = False if self.mode in ("linear", "bilinear", "bicubic", "trilinear") else None
        return F.interpolate(x, size=tuple(size), mode=self.mode, align_corners=align)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """Logits ``(B, K, H, W[, F])`` of ``inputs`` ``(B, C, H, W[, F])``; ``args``/``kwargs`` go to the network."""
        x = inputs.as_tensor() if isinstance(inputs, MetaTensor) else torch.as_tensor(inputs)
        if x.ndim not in (4, 5):
            raise ValueError(
                f"ResizeInferer expects (B, C, H, W) images or (B, C, H, W, F) cines, got shape {tuple(x.shape)}."
            )
        frames = x.shape[-1] if x.ndim == 5 else 0
        if frames:
            b, c, h, w, f = x.shape
            x = x.permute(0, 4, 1, 2, 3).reshape(b * f, c, h, w)
        size = x.shape[2:]
        chunks = []
        for chunk in torch.split(x, self.batch_size):
            logits = self.inferer(self._resize(chunk, self.spatial_size), network, *args, **kwargs)
            if not isinstance(logits, torch.Tensor):
                raise ValueError(
                    f"the network returned {type(logits).__name__}, not a logits tensor; is it in eval mode?"
                )
            chunks.append(self._resize(torch.as_tensor(logits), size))
        out = torch.cat(chunks)
        if frames:
            out = out.reshape(b, f, *out.shape[1:]).permute(0, 2, 3, 4, 1)
        return out


def _label_map(mask: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(1, X, Y[, F])`` label map (MONAI axis order) as an int array, and its affine if it has one."""
    affine = np.asarray(mask.affine) if isinstance(mask, MetaTensor) else None
    data = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if data.ndim not in (3, 4) or data.shape[0] != 1:
        raise ValueError(f"a mask must be a one-channel label map (1, X, Y[, F]), got shape {data.shape}.")
    rounded = np.rint(data)
    if not np.isfinite(data).all() or not np.array_equal(rounded, data) or rounded.min(initial=0) < 0:
        raise ValueError("a mask must hold non-negative integer labels; discretise the prediction first.")
    return rounded.astype(np.int64), affine


class MaskWriter:
    """Write a predicted label map next to the others, named after its input.

    Formats (``output_format``):

    * ``"png"``: ``{stem}_{postfix}.png`` (rows x columns of the input); a cine gets one PNG per frame,
      ``{stem}_{postfix}_frame0000.png``, .... Binary masks (``label_classes`` with at most two classes) hold 0 and
      ``binary_value`` (255, as BUSI masks), others the class indices.
    * ``"nifti"``: ``{stem}_{postfix}.nii.gz``, uint8 class indices with the input's affine; a cine is one
      ``(X, Y, F)`` volume.
    * ``"dicom"``: for a DICOM input, ``{stem}_{postfix}.dcm``, a DICOM Segmentation that references its source image
      (and each source frame of a cine) with one segment per class (:py:class:`usgen_monai.data.SaveDicomSeg`). A
      DICOM SEG must reference a DICOM image, so a non-DICOM input (PNG, JPEG, NIfTI) gets ``non_dicom_format``
      instead: ``"png"`` (default) or ``"nifti"``, with a warning and a note in the run's summary, or ``"error"``
      to fail that input.

    Args:
        output_dir: the folder of the masks.
        output_format: ``"png"``, ``"nifti"`` or ``"dicom"``. Defaults to png.
        output_postfix: appended to the input's file stem. Defaults to ``"seg"``.
        label_classes: ``{label value: class name}`` (MONAI ``channel_def``, keys may be strings) or names by value;
            names the SEG segments and decides binary PNG values. Defaults to ``{0: "background", 1: "foreground"}``.
        non_dicom_format: what ``output_format="dicom"`` writes for a non-DICOM input. Defaults to png.
        binary_value: the PNG value of the foreground of a binary mask. Defaults to 255.
        algorithm_name: the model's name in the SEG. Defaults to ``"usgen-monai"``.
        algorithm_version: the model's version in the SEG. Defaults to the package version.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        output_format: str = "png",
        output_postfix: str = "seg",
        label_classes: Mapping | Sequence[str] | None = None,
        non_dicom_format: str = "png",
        binary_value: int = 255,
        algorithm_name: str = "usgen-monai",
        algorithm_version: str | None = None,
    ) -> None:
        output_format = str(output_format).lower()
        if output_format not in MASK_OUTPUT_FORMATS:
            raise ValueError(
                f"output_format must be one of {MASK_OUTPUT_FORMATS}, got output_format={output_format!r}."
            )
        non_dicom_format = str(non_dicom_format).lower()
        if non_dicom_format not in _NON_DICOM_FORMATS:
            raise ValueError(
                f"non_dicom_format must be one of {_NON_DICOM_FORMATS}, got non_dicom_format={non_dicom_format!r}."
            )
        if not 1 <= int(binary_value) <= 255:
            raise ValueError(f"binary_value must be in 1..255, got binary_value={binary_value}.")
        if label_classes is None:
            label_classes = {0: "background", 1: "foreground"}
        if isinstance(label_classes, Mapping):
            self.label_classes = {int(k): str(v) for k, v in label_classes.items()}
        else:
            self.label_classes = {i: str(v) for i, v in enumerate(label_classes)}
        self.output_dir = Path(output_dir)
        self.output_format = output_format
        self.output_postfix = output_postfix
        self.non_dicom_format = non_dicom_format
        self.binary_value = int(binary_value)
        self.algorithm_name = algorithm_name
        if algorithm_version is None:
            import usgen_monai

            algorithm_version = usgen_monai.__version__
        self.algorithm_version = str(algorithm_version)

    @property
    def binary(self) -> bool:
        """Whether the masks have at most two classes (PNG foreground ``binary_value``)."""
        return len(self.label_classes) <= 2

    def _name(self, stem: str, suffix: str = "") -> Path:
        postfix = f"_{self.output_postfix}" if self.output_postfix else ""
        return self.output_dir / f"{stem}{postfix}{suffix}"

    def _png(self, labels: np.ndarray, stem: str) -> list[Path]:
        from usgen_monai.data import SaveUltrasoundImage

        if labels.max(initial=0) > 255:
            raise ValueError(f"label values up to {labels.max()} do not fit an 8-bit PNG; use output_format='nifti'.")
        values = (labels > 0) * self.binary_value if self.binary else labels
        values = values.astype(np.uint8)
        saver = SaveUltrasoundImage(self.output_dir, output_ext=".png", output_dtype=np.uint8)
        if values.ndim == 3:
            saver(torch.as_tensor(values), filename=self._name(stem))
            return [self._name(stem, ".png")]
        paths = []
        for f in range(values.shape[-1]):
            name = self._name(stem, f"_frame{f:04d}") if values.shape[-1] > 1 else self._name(stem)
            saver(torch.as_tensor(values[..., f]), filename=name)
            paths.append(name.with_name(name.name + ".png"))
        return paths

    def _nifti(self, labels: np.ndarray, affine: np.ndarray | None, stem: str) -> list[Path]:
        from usgen_monai.data import SaveUltrasoundImage

        saver = SaveUltrasoundImage(self.output_dir, output_ext=".nii.gz", output_dtype=np.uint8)
        meta = {"affine": affine if affine is not None else np.eye(4)}
        saver(torch.as_tensor(labels.astype(np.uint8)), meta_data=meta, filename=self._name(stem))
        return [self._name(stem, ".nii.gz")]

    def _dicom(self, labels: np.ndarray, source: str, stem: str) -> list[Path]:
        from usgen_monai.data import SaveDicomSeg

        saver = SaveDicomSeg(
            self.output_dir,
            output_postfix=self.output_postfix,
            label_classes=self.label_classes,
            algorithm_name=self.algorithm_name,
            algorithm_version=self.algorithm_version,
        )
        return [saver.write(torch.as_tensor(labels), source=source, filename=self._name(stem, ".dcm"))]

    def __call__(self, mask: Any, source: str | os.PathLike, stem: str) -> tuple[list[Path], str, str]:
        """Write ``mask`` ``(1, X, Y[, F])`` (label values, on ``source``'s grid, MONAI axis order).

        Args:
            mask: the label map.
            source: the input file (a SEG references it).
            stem: the file-name stem of the outputs (the input's stem, made unique by the run).

        Returns:
            ``(paths written, format written, note)``; the note says why a non-DICOM input got another format.
        """
        labels, affine = _label_map(mask)
        fmt, note = self.output_format, ""
        if fmt == "dicom" and not _is_dicom(source):
            if self.non_dicom_format == "error":
                raise ValueError(
                    f"{source} is not a DICOM file, and a DICOM SEG must reference a source DICOM image "
                    "(non_dicom_format='error'); use output_format png or nifti for it."
                )
            fmt = self.non_dicom_format
            note = (
                f"not a DICOM input: a DICOM SEG must reference a source DICOM image, so the mask was written as "
                f"{fmt.upper()} (non_dicom_format)"
            )
            logger.warning(f"{source}: {note}")
        if fmt == "png":
            paths = self._png(labels, stem)
        elif fmt == "nifti":
            paths = self._nifti(labels, affine, stem)
        else:
            paths = self._dicom(labels, str(source), stem)
        return [Path(p) for p in paths], fmt, note


@dataclass
class InferenceSummary:
    """What a :py:meth:`SegmentationInference.run` did.

    Attributes:
        succeeded: one record per segmented input: ``input``, ``item`` (its position in the inputs), ``outputs``,
            ``format``, ``shape`` (rows, columns), ``frames`` and, where relevant, ``note``.
        failed: one record per skipped input: ``input``, ``item`` and ``reason``.
        seconds: wall time of the run.
        summary_path: the JSON summary file, if one was written.
    """

    succeeded: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    summary_path: str | None = None

    @property
    def total(self) -> int:
        """Number of inputs."""
        return len(self.succeeded) + len(self.failed)

    def line(self) -> str:
        """One line: how many inputs were segmented, how fast, and which failed."""
        rate = len(self.succeeded) / self.seconds if self.seconds > 0 else float("inf")
        text = f"segmented {len(self.succeeded)} of {self.total} input(s) in {self.seconds:.1f} s ({rate:.1f} images/s)"
        if self.failed:
            names = "; ".join(f"{Path(r['input']).name} ({r['reason']})" for r in self.failed[:5])
            more = f" and {len(self.failed) - 5} more" if len(self.failed) > 5 else ""
            text += f"; {len(self.failed)} failed: {names}{more}"
        else:
            text += "; 0 failed"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary: counts, rate, and the records."""
        return {
            "num_inputs": self.total,
            "num_succeeded": len(self.succeeded),
            "num_failed": len(self.failed),
            "seconds": round(self.seconds, 3),
            "images_per_second": round(len(self.succeeded) / self.seconds, 3) if self.seconds > 0 else None,
            "succeeded": self.succeeded,
            "failed": self.failed,
        }


def failure_reason(error: BaseException) -> str:
    """The first line of the innermost cause's message (MONAI wraps a transform's error in ``RuntimeError: applying
    transform ...`` and appends every reader's traceback to "cannot find a suitable reader"), at most 300 characters;
    the whole traceback is logged at debug level."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines()
    text = (lines[0] if lines else "").split(" Please install")[0].strip() or type(error).__name__
    if "cannot find a suitable reader" in text:
        text += " (no reader could read it: a corrupt or truncated file, or a format none of them knows)"
    text = text if len(text) <= 300 else text[:297] + "..."
    return text if text.startswith(type(error).__name__) else f"{type(error).__name__}: {text}"


class SegmentationInference:
    """Segment every input and write one mask per input (one per frame for PNG cines); failures are skipped.

    For each item (a dict with ``image_key``, e.g. from :py:func:`inference_inputs`):
    ``data = preprocessing(item)``; ``data[pred_key] = inferer(data[image_key][None], network, **prompts)[0]``;
    ``data = postprocessing(data)``; ``writer(data[pred_key], source=item[image_key], stem=...)``. Up to
    ``batch_size`` consecutive inputs whose preprocessed images have one shape go through the inferer together
    (a folder of same-size images runs in batches; a mixed folder in smaller groups). The stem is the input's file
    name without its extension(s), with ``_2``, ``_3``, ... added when two inputs share one (``case.png`` and
    ``case.dcm``); with ``item_stems`` every stem instead ends in the item's position in the inputs
    (``case_item3``), so several items on one image (one per prompt) get names that say which item they answer.
    Stems are given in input order before the run, so they do not depend on which inputs fail or finish first.
    Every summary record holds that position as ``item``. Any exception of one item is caught, logged with the file
    name and recorded in the summary (a batch that fails is retried one input at a time); the run goes on. It ends
    with a logged summary line and, with ``summary_path``, a JSON summary.

    Model-agnostic: ``network`` is any callable the inferer can call (an ``nn.Module``, a TorchScript module, a
    function); ``prompt_keys`` name item entries passed to the inferer as keyword arguments (prompts of a promptable
    model, which the preprocessing can also prepare); items with prompts are inferred one at a time.

    Args:
        network: the model (put in eval mode if it has ``eval``).
        preprocessing: ``item -> data`` (MONAI ``Compose`` starting with ``LoadImaged``).
        inferer: ``inferer(inputs, network, **prompts) -> logits``. Defaults to ``SimpleInferer()``.
        postprocessing: ``data -> data``, e.g. activation, discretisation and ``Invertd``; ``None`` to keep the logits.
        writer: ``writer(mask, source, stem) -> (paths, format, note)``, e.g. :py:class:`MaskWriter`; ``None`` writes
            nothing (the results are returned by :py:meth:`segment`).
        image_key: the image key of the items. Defaults to ``"image"``.
        pred_key: where the prediction is stored. Defaults to ``"pred"``.
        prompt_keys: item keys passed to the inferer as keyword arguments. Defaults to none.
        batch_size: inputs of one shape inferred together. Defaults to 4.
        device: the device of the inputs; defaults to the network's (CPU for a network without parameters).
        progress: show a tqdm progress bar (``"false"`` from a command line counts as False). Defaults to True.
        summary_path: the JSON summary file, or ``None``.
        description: the progress bar's label. Defaults to ``"segment"``.
        item_stems: end every output stem in ``_item<k>``, ``k`` the item's position in the inputs (from 0).
            Defaults to False.
        parallel_batches: batches segmented at once, each in its own thread (read, infer, postprocess, write). On
            a CPU the run divides torch's threads among them (at least one each) and restores the setting after.
            Defaults to 1.
    """

    def __init__(
        self,
        network: Callable[..., Any],
        preprocessing: Callable[[dict], dict],
        inferer: Callable[..., Any] | None = None,
        postprocessing: Callable[[dict], dict] | None = None,
        writer: Callable[..., Any] | None = None,
        image_key: str = "image",
        pred_key: str = "pred",
        prompt_keys: Sequence[str] = (),
        batch_size: int = 4,
        device: str | torch.device | None = None,
        progress: bool | str = True,
        summary_path: str | os.PathLike | None = None,
        description: str = "segment",
        item_stems: bool | str = False,
        parallel_batches: int = 1,
    ) -> None:
        if not callable(network):
            raise ValueError(f"network must be callable, got {type(network).__name__}.")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got batch_size={batch_size}.")
        self.network = network
        self.preprocessing = preprocessing
        self.inferer = inferer if inferer is not None else SimpleInferer()
        self.postprocessing = postprocessing
        self.writer = writer
        self.image_key = image_key
        self.pred_key = pred_key
        self.prompt_keys = tuple(prompt_keys)
        self.batch_size = 1 if self.prompt_keys else int(batch_size)
        if device is None:
            from usgen_monai.utils import module_device

            device = module_device(network) if isinstance(network, torch.nn.Module) else "cpu"
        self.device = torch.device(device)
        self.progress = as_flag(progress)
        self.summary_path = None if not summary_path else Path(summary_path)
        self.description = description
        self.item_stems = as_flag(item_stems)
        if int(parallel_batches) != parallel_batches or parallel_batches < 1:
            raise ValueError(f"parallel_batches must be a positive integer, got parallel_batches={parallel_batches}.")
        self.parallel_batches = int(parallel_batches)

    def predict(self, batch: Sequence[dict[str, Any]]) -> None:
        """Infer preprocessed items whose images share one shape, in one call; stores ``pred_key`` in each (a
        ``MetaTensor`` with the image's metadata)."""
        images = [d[self.image_key] for d in batch]
        prompts = {k: batch[0][k] for k in self.prompt_keys if k in batch[0]}
        if hasattr(self.network, "eval"):
            self.network.eval()
        with torch.no_grad():
            inputs = torch.stack([i.as_tensor() if isinstance(i, MetaTensor) else torch.as_tensor(i) for i in images])
            logits = self.inferer(inputs.to(self.device), self.network, **prompts).detach().cpu()
        for data, image, pred in zip(batch, images, logits):
            meta = dict(image.meta) if isinstance(image, MetaTensor) else {}
            data[self.pred_key] = MetaTensor(pred, meta=meta)

    def segment(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Preprocess, infer and postprocess one item; returns the data dict with ``pred_key``."""
        data = self.preprocessing(dict(item))
        self.predict([data])
        return self.postprocessing(data) if self.postprocessing is not None else data

    @staticmethod
    def output_stem(path: str, used: set[str]) -> str:
        """The output file stem of input ``path``: its name without extension(s), with ``_2``, ``_3``, ... when
        ``used`` (updated) already holds it."""
        from usgen_monai.data import ultrasound_name_formatter

        stem = ultrasound_name_formatter({"filename_or_obj": path}, None)["subject"]
        unique, n = stem, 1
        while unique in used:
            n += 1
            unique = f"{stem}_{n}"
        used.add(unique)
        return unique

    def _record(self, data: dict[str, Any], source: str, stem: str, index: int = 0) -> dict[str, Any]:
        """Postprocess and write one predicted item (``index``: its position in the inputs) as ``stem``; returns
        its summary record."""
        if self.postprocessing is not None:
            data = self.postprocessing(data)
        pred = data[self.pred_key]
        spatial = list(pred.shape[1:])
        record: dict[str, Any] = {
            "input": source,
            "item": int(index),
            "shape": [int(spatial[1]), int(spatial[0])],  # rows, columns (MONAI's first spatial axis is the column)
            "frames": int(spatial[2]) if len(spatial) > 2 else 1,
        }
        if self.writer is not None:
            paths, fmt, note = self.writer(pred, source=source, stem=stem)
            record.update(outputs=[str(p) for p in paths], format=fmt)
            if note:
                record["note"] = note
        return record

    def _fail(self, summary: InferenceSummary, source: str, error: BaseException, index: int = 0) -> None:
        reason = failure_reason(error)
        logger.warning(f"skipped {source}: {reason}")
        logger.debug(f"{source} failed", exc_info=error)
        summary.failed.append({"input": source, "item": int(index), "reason": reason})

    def _predict_group(
        self, group: list[tuple[str, dict, int]], summary: InferenceSummary
    ) -> list[tuple[str, dict, int]]:
        """Infer a group of prepared ``(source, data, index)`` items of one shape (one by one if the batch fails);
        returns those inferred."""
        try:
            self.predict([data for _, data, _ in group])
            return group
        except Exception as error:  # noqa: BLE001
            if len(group) == 1:
                self._fail(summary, group[0][0], error, group[0][2])
                return []
        done = []
        for source, data, index in group:
            try:
                self.predict([data])
                done.append((source, data, index))
            except Exception as error:  # noqa: BLE001
                self._fail(summary, source, error, index)
        return done

    def run(self, data: Sequence[Mapping[str, Any] | str | os.PathLike]) -> InferenceSummary:
        """Segment every input of ``data`` (item dicts, or paths) and write the masks.

        Returns:
            an :py:class:`InferenceSummary` (records in input order).

        Raises:
            ValueError: ``data`` is empty.
            RuntimeError: every input failed (the message holds the summary).
        """
        from tqdm.auto import tqdm

        items = [dict(d) if isinstance(d, Mapping) else {self.image_key: os.fspath(d)} for d in data]
        if not items:
            raise ValueError("no inputs to segment.")
        summary, used = InferenceSummary(), set()
        sources = [
            os.fspath(s) if isinstance(s, (str, os.PathLike)) else str(s)
            for s in (i.get(self.image_key) for i in items)
        ]
        if self.item_stems:
            stems = [self.output_stem(source, set()) + f"_item{index}" for index, source in enumerate(sources)]
        else:
            stems = [self.output_stem(source, used) for source in sources]
        start = time.perf_counter()
        lock = threading.Lock()
        with tqdm(total=len(items), desc=self.description, unit="image", disable=not self.progress) as bar:

            def segment_batch(first: int) -> None:
                groups: dict[tuple, list[tuple[str, dict, int]]] = {}
                for index in range(first, min(first + self.batch_size, len(items))):
                    source = sources[index]
                    try:
                        prepared = self.preprocessing(dict(items[index]))
                        groups.setdefault(tuple(prepared[self.image_key].shape), []).append((source, prepared, index))
                    except Exception as error:  # noqa: BLE001 - one bad input is reported and skipped
                        self._fail(summary, source, error, index)
                        with lock:
                            bar.update(1)
                for group in groups.values():
                    for source, prepared, index in self._predict_group(group, summary):
                        try:
                            summary.succeeded.append(self._record(prepared, source, stems[index], index))
                        except Exception as error:  # noqa: BLE001
                            self._fail(summary, source, error, index)
                    with lock:
                        bar.update(len(group))

            batches = range(0, len(items), self.batch_size)
            if self.parallel_batches == 1:
                for first in batches:
                    segment_batch(first)
            else:
                threads = torch.get_num_threads()
                if self.device.type == "cpu":  # one pool of intra-op threads shared by the batches, not one each
                    torch.set_num_threads(max(1, threads // self.parallel_batches))
                try:
                    with ThreadPoolExecutor(self.parallel_batches) as pool:
                        list(pool.map(segment_batch, batches))
                finally:
                    torch.set_num_threads(threads)
        summary.seconds = time.perf_counter() - start
        summary.succeeded.sort(key=lambda r: r["item"])
        summary.failed.sort(key=lambda r: r["item"])
        if self.summary_path is not None:
            write_json_atomic(self.summary_path, summary.to_dict())
            summary.summary_path = str(self.summary_path)
        (logger.warning if summary.failed else logger.info)(
            summary.line() + (f"; summary in {self.summary_path}" if self.summary_path else "")
        )
        if not summary.succeeded:
            raise RuntimeError(f"every input failed: {summary.line()}")
        return summary
