"""Context sources: where the appearance context image of a generated pair comes from.

A context source turns a sample's index, context seed and preset into a JSON *request* (:py:meth:`ContextSource.plan`)
and a request into a :py:class:`ContextImage` (:py:meth:`ContextSource.draw`); the generator stores the request in
the pair's provenance record. Three sources implement the :py:class:`ContextSource` protocol:

* :py:class:`BankContextSource`: an image picked by style from a bank of simulated images or of the user's images
  (CSG's context selection);
* :py:class:`FileContextSource`: one image file given by the user;
* :py:class:`NoContextImageSource`: no image (the tabular context alone).

:py:func:`select_context_source` builds the one a bundle run asks for.

The user's images are read by :py:func:`usgen_monai.data.image_files.read_context_image`: PNG, JPEG and NIfTI as
:py:func:`usgen_monai.data.image_files.read_grey_image` reads them, ultrasound DICOM through the package's DICOM path
(one frame of a cine, cropped to the B-mode region, grey). For a DICOM file the request also records ``frame``,
``frame_count``, ``crop`` and ``crop_source``, so :py:meth:`ContextSource.draw` reads the same frame and crop again
after checking the file's SHA-256.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn as nn

from usgen_monai.data.context_fields import GENERATOR_CONTEXT_FIELDS
from usgen_monai.data.image_files import find_image_files, read_context_image
from usgen_monai.data.simulator import sample_seed
from usgen_monai.engines.mask_sources import SimulatorCache
from usgen_monai.engines.provenance import check_request_type, check_unchanged, file_sha256
from usgen_monai.utils import as_flag, module_device, size_2d

__all__ = [
    "CONTEXT_SOURCES",
    "BankContextSource",
    "ContextImage",
    "ContextSource",
    "FileContextSource",
    "NoContextImageSource",
    "select_context_source",
]

logger = logging.getLogger(__name__)

#: request keys that say how a DICOM context image was read (absent for PNG, JPEG and NIfTI files)
_DICOM_READ_KEYS = ("frame", "frame_count", "crop", "crop_source")


def _draw_file(request: Mapping[str, Any]) -> torch.Tensor:
    """The image of a file request: the file checked against its SHA-256, read with the recorded frame and crop."""
    path = check_unchanged(request, "context image")
    size = size_2d(request["size"])
    if "frame" in request:
        return read_context_image(path, size, frame=int(request["frame"]), crop=request["crop"])[0]
    return read_context_image(path, size)[0]


@dataclass
class ContextImage:
    """An appearance context.

    Attributes:
        image: ``(1, H, W)`` float image in ``[0, 1]`` at the generator's image size; ``None`` for no context image
            (the translator's learned null image tokens, which condition dropout trained).
        context: the image's tabular record when known (a simulated image's acquisition), else empty.
        spacing_mm: ``(row, column)`` pixel spacing in mm when known.
    """

    image: torch.Tensor | None
    context: dict[str, Any]
    spacing_mm: tuple[float, float] | None = None


@runtime_checkable
class ContextSource(Protocol):
    """What the generator needs of a context source.

    Attributes:
        type: the source's name, stored in every request it plans (``"bank"``, ``"file"``, ``"none"``).
        image_size: ``(H, W)`` of the context images it draws; ``None`` when it draws none.
        skipped: ``(file, reason)`` of inputs it could not use, for the run summary (empty when it reads no files).
    """

    type: str
    image_size: tuple[int, int] | None
    skipped: list[tuple[str, str]]

    def plan(self, index: int, seed: int, preset: str) -> dict[str, Any]:
        """The JSON request of sample ``index`` (context seed ``seed``) of ``preset``."""
        ...

    def draw(self, request: Mapping[str, Any]) -> ContextImage:
        """The context a request of :py:meth:`plan` describes; the same request always gives the same image."""
        ...


class _EncoderMean:
    """``images -> AutoencoderKL.encode(images)[0]`` on the autoencoder's device (the bank's style features)."""

    def __init__(self, autoencoder: nn.Module) -> None:
        self.autoencoder = autoencoder

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(images.to(module_device(self.autoencoder)))[0].cpu()


class BankContextSource:
    """Context images picked by style from a bank of images (CSG's context selection,
    :py:class:`usgen_monai.data.context_bank.ContextBank`, whose style features are the stage-1 encoder's posterior
    mean).

    With ``dataset_dir="simulator"`` the bank of a preset holds ``bank_size`` simulated images of that preset, image
    ``j`` simulated with seed ``sample_seed(bank_seed, j)``, built the first time a sample of that preset asks for a
    context; the request records the chosen image's simulator seed, so :py:meth:`draw` re-simulates it without the
    bank. With a folder of images the bank holds up to ``bank_size`` of them, drawn with ``bank_seed``, for every
    preset: the images of a data set in a layout of :py:func:`usgen_monai.data.datasets.load_dataset` (e.g. the real
    images the generator was fine-tuned on; masks are not needed), or else every image file under the folder and its
    sub-folders (:py:func:`usgen_monai.data.image_files.find_image_files`: PNG, JPEG, NIfTI, DICOM; other files are
    ignored). Images that cannot be read are logged and skipped with the reason (:py:attr:`skipped`); DICOM files
    are read as :py:class:`FileContextSource` reads them. The request records the chosen file and its SHA-256 (and,
    for DICOM, the frame and crop), and :py:meth:`draw` re-reads it.

    Without ``style_reference`` a bank image is drawn uniformly with the sample's context seed; with one, the draw is
    among the ``style_top_k`` bank images whose style is nearest to it.

    Args:
        autoencoder: the stage-1 ``AutoencoderKL`` (weights loaded).
        image_size: ``(H, W)``.
        dataset_dir: ``"simulator"``, a data-set folder (or datalist JSON) or any folder of images.
        bank_size: images per preset (simulator) or in all (data set).
        bank_seed: seed of the bank images.
        style_reference: an image file to match in style, or ``""``.
        style_top_k: candidates nearest to ``style_reference`` to draw from.
        difficulty: simulator difficulty of the bank images.
        frame: the frame of DICOM cines (0-based, negative from the end); ``None``: the middle one.
        crop_to_region: crop DICOM images to their B-mode region.

    Raises:
        ValueError: bad sizes or seeds, a missing ``style_reference``, or a folder without a readable image.
    """

    type = "bank"

    def __init__(
        self,
        autoencoder: nn.Module,
        image_size: Sequence[int],
        dataset_dir: str | os.PathLike = "simulator",
        bank_size: int = 32,
        bank_seed: int = 0,
        style_reference: str | os.PathLike | None = "",
        style_top_k: int = 4,
        difficulty: float = 1.0,
        frame: int | None = None,
        crop_to_region: bool = True,
    ) -> None:
        if bank_size < 1:
            raise ValueError(f"bank_size must be >= 1, got bank_size={bank_size}.")
        if style_top_k < 1:
            raise ValueError(f"style_top_k must be >= 1, got style_top_k={style_top_k}.")
        sample_seed(bank_seed, 0)  # validates the seed
        self.autoencoder = autoencoder
        self.image_size = size_2d(image_size)
        self.dataset_dir = "simulator" if str(dataset_dir) == "simulator" else str(Path(dataset_dir).resolve())
        self.bank_size = int(bank_size)
        self.bank_seed = int(bank_seed)
        self.style_top_k = int(style_top_k)
        self.difficulty = float(difficulty)
        self.frame = None if frame is None else int(frame)
        self.crop_to_region = as_flag(crop_to_region)
        self.style_reference = Path(style_reference).resolve() if style_reference else None
        if self.style_reference is not None and not self.style_reference.is_file():
            raise ValueError(f"style_reference {self.style_reference} is not a file.")
        self._reference: torch.Tensor | None = None
        self._banks: dict[str | None, Any] = {}
        self._simulators = SimulatorCache()
        self.skipped: list[tuple[str, str]] = []
        if self.dataset_dir != "simulator":
            self.bank(None)  # read the data set now, so a bad folder fails before any sampling

    @property
    def simulated(self) -> bool:
        return self.dataset_dir == "simulator"

    def _simulated_bank(self, preset: str) -> Any:
        from usgen_monai.data.context_bank import ContextBank

        simulator = self._simulators(preset, self.image_size, self.difficulty)
        seeds = [sample_seed(self.bank_seed, j) for j in range(self.bank_size)]
        samples = [simulator.sample(seed=s) for s in seeds]
        images = torch.stack([torch.as_tensor(s.image)[None] for s in samples]).float()
        contexts = [{**s.context, "simulator_seed": seed} for s, seed in zip(samples, seeds)]
        logger.info(f"context bank: {len(samples)} simulated {preset} images")
        return ContextBank(images, contexts, feature_fn=_EncoderMean(self.autoencoder))

    def _bank_files(self) -> list[str]:
        """The images of ``dataset_dir``: a data set's (any layout), else every image file under the folder."""
        from usgen_monai.data.datasets import DatasetLayoutError, detect_layout, load_dataset

        try:
            layout = detect_layout(self.dataset_dir)
        except DatasetLayoutError:
            if not Path(self.dataset_dir).is_dir():
                raise
            files = find_image_files(self.dataset_dir)
            if not files:
                raise ValueError(
                    f"context bank: no image files (PNG, JPEG, NIfTI, DICOM) in dataset_dir={self.dataset_dir} or "
                    "its sub-folders."
                ) from None
            return [str(p) for p in files]
        # the bank needs images only: an image without its mask is still a context
        items = load_dataset(self.dataset_dir, layout, **({} if layout == "monai" else {"allow_missing_labels": True}))
        return sorted({str(item["image"]) for item in items if isinstance(item.get("image"), (str, os.PathLike))})

    def _dataset_bank(self) -> Any:
        from usgen_monai.data.context_bank import ContextBank

        paths = self._bank_files()
        order = np.random.default_rng(sample_seed(self.bank_seed, 0)).permutation(len(paths))
        images, contexts = [], []
        for k in order:
            if len(images) == self.bank_size:
                break
            try:
                image, read = read_context_image(paths[k], self.image_size, self.frame, self.crop_to_region)
            except ValueError as e:
                logger.warning(f"context bank: skipping {paths[k]}: {e}")
                self.skipped.append((paths[k], str(e)))
                continue
            images.append(image[None])
            contexts.append({"path": paths[k], "sha256": file_sha256(paths[k]), **read})
        if not images:
            raise ValueError(f"context bank: no readable image in dataset_dir={self.dataset_dir}.")
        logger.info(f"context bank: {len(images)} images of {self.dataset_dir}")
        return ContextBank(torch.cat(images), contexts, feature_fn=_EncoderMean(self.autoencoder))

    def bank(self, preset: str | None) -> Any:
        """The :py:class:`~usgen_monai.data.context_bank.ContextBank` of ``preset`` (built on first use); a data
        set's bank serves every preset."""
        key = preset if self.simulated else None
        if key not in self._banks:
            self._banks[key] = self._simulated_bank(key) if self.simulated else self._dataset_bank()
        return self._banks[key]

    def plan(self, index: int, seed: int, preset: str) -> dict[str, Any]:
        bank = self.bank(preset)
        filters = {"preset": preset} if self.simulated else {}
        generator = torch.Generator().manual_seed(int(seed))
        if self.style_reference is None:
            chosen = bank.select(k=1, generator=generator, **filters)[0]
        else:
            if self._reference is None:
                self._reference = read_context_image(
                    self.style_reference, self.image_size, self.frame, self.crop_to_region
                )[0]
            nearest = bank.select(k=self.style_top_k, style_reference=self._reference, **filters)
            chosen = nearest[int(torch.randint(len(nearest), (1,), generator=generator))]
        return self.request(int(chosen), preset)

    def request(self, bank_index: int, preset: str) -> dict[str, Any]:
        """The request for image ``bank_index`` of ``preset``'s bank (what :py:meth:`plan` returns for it)."""
        bank = self.bank(preset)
        request = {
            "type": self.type,
            "dataset_dir": self.dataset_dir,
            "preset": preset,
            "bank_index": int(bank_index),
            "bank_size": self.bank_size,
            "bank_seed": self.bank_seed,
            "style_reference": None if self.style_reference is None else str(self.style_reference),
            "size": list(self.image_size),
        }
        record = bank.contexts[bank_index]
        if self.simulated:
            request.update(simulator_seed=int(record["simulator_seed"]), difficulty=self.difficulty)
        else:
            request.update(path=record["path"], sha256=record["sha256"])
            request.update({k: record[k] for k in _DICOM_READ_KEYS if k in record})
        return request

    def draw(self, request: Mapping[str, Any]) -> ContextImage:
        check_request_type(request, self.type)
        if request.get("dataset_dir", "simulator") != "simulator":
            return ContextImage(_draw_file(request), {}, None)
        simulator = self._simulators(request["preset"], request["size"], request["difficulty"])
        s = simulator.sample(seed=int(request["simulator_seed"]))
        context = {k: s.context[k] for k in GENERATOR_CONTEXT_FIELDS if k in s.context}
        spacing = tuple(float(v) for v in s.context["pixel_spacing_mm"])
        return ContextImage(torch.as_tensor(s.image)[None].float(), context, spacing)


class FileContextSource:
    """One context image for every sample, from a file.

    PNG, JPEG and NIfTI are read with MONAI's ``LoadImage`` in grey (colour by ITU-R BT.601 luma): 8-bit values are
    divided by 255, floats already in ``[0, 1]`` are kept, anything else is scaled from its minimum and maximum.
    Ultrasound DICOM goes through the package's DICOM path
    (:py:func:`usgen_monai.data.image_files.read_context_image`): the ``frame`` of a cine (default the middle one),
    cropped to the B-mode region of the Sequence of Ultrasound Regions (none: the whole image), grey, scaled by its
    stored value range; the request records ``frame``, ``frame_count``, ``crop`` and ``crop_source``. The image is
    resized to ``image_size`` by area averaging (shrinking) or bilinearly, and carries no tabular record.

    Args:
        path: the image file.
        image_size: ``(H, W)``.
        frame: the frame of a DICOM cine (0-based, negative from the end); ``None``: the middle one.
        crop_to_region: crop a DICOM image to its B-mode region.

    Raises:
        ValueError: not a file, or a file that cannot be read (the message names it).
    """

    type = "file"

    def __init__(
        self,
        path: str | os.PathLike,
        image_size: Sequence[int],
        frame: int | None = None,
        crop_to_region: bool = True,
    ) -> None:
        if not path or not Path(path).is_file():
            raise ValueError(f"context_image must be an image file, got context_image={str(path)!r}.")
        self.path = Path(path).resolve()
        self.image_size = size_2d(image_size)
        self.frame = None if frame is None else int(frame)
        self.crop_to_region = as_flag(crop_to_region)
        self.skipped: list[tuple[str, str]] = []
        self.sha256 = file_sha256(self.path)
        # fails early on a bad file
        self.image, self.read = read_context_image(self.path, self.image_size, self.frame, self.crop_to_region)

    def plan(self, index: int, seed: int, preset: str) -> dict[str, Any]:
        return {
            "type": self.type,
            "path": str(self.path),
            "sha256": self.sha256,
            "size": list(self.image_size),
            **self.read,
        }

    def draw(self, request: Mapping[str, Any]) -> ContextImage:
        check_request_type(request, self.type)
        return ContextImage(_draw_file(request), {}, None)


class NoContextImageSource:
    """No context image: appearance comes from the tabular context alone (the translator's null image tokens stand
    in for the image, as condition dropout trained them)."""

    type = "none"

    def __init__(self) -> None:
        self.image_size: tuple[int, int] | None = None
        self.skipped: list[tuple[str, str]] = []

    def plan(self, index: int, seed: int, preset: str) -> dict[str, Any]:
        return {"type": self.type}

    def draw(self, request: Mapping[str, Any]) -> ContextImage:
        check_request_type(request, self.type)
        return ContextImage(None, {}, None)


#: context sources :py:func:`select_context_source` chooses from
CONTEXT_SOURCES = ("bank", "file", "none")


def select_context_source(
    context_image: str | os.PathLike | None = "",
    sources: Mapping[str, Callable] | None = None,
    context_source: str | None = "",
) -> ContextSource:
    """Build the context source a run asks for: ``context_source`` when given (``"bank"``, ``"file"`` or ``"none"``),
    else ``"file"`` when ``context_image`` names a file and ``"bank"`` otherwise.

    Args:
        context_image: the user's context image, or empty.
        sources: ``{"bank": callable, "file": callable, "none": callable}`` building each source.
        context_source: the source's name, or empty to decide from ``context_image``.

    Raises:
        ValueError: an unknown or unconfigured source, or ``"file"`` without ``context_image``.
    """
    sources = dict(sources or {})
    name = context_source or ("file" if context_image else "bank")
    if name not in CONTEXT_SOURCES:
        raise ValueError(f"unknown context_source {name!r}; expected one of {list(CONTEXT_SOURCES)}.")
    if name == "file" and not context_image:
        raise ValueError("context_source='file' needs context_image=FILE.")
    if name not in sources:
        raise ValueError(f"no {name!r} context source was configured; configured: {sorted(sources)}.")
    source = sources[name]()
    if not isinstance(source, ContextSource):
        raise ValueError(f"context source {name!r} built a {type(source).__name__}, which is not a ContextSource.")
    return source
