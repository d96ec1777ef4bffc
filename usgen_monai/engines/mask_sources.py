"""Mask sources: where the label map of a generated pair comes from.

A mask source turns a sample's index and mask seed into a JSON *request* (:py:meth:`MaskSource.plan`) and a request
into a label map (:py:meth:`MaskSource.draw`); the generator stores the request in the pair's provenance record, so
drawing it again gives the same map. Three sources implement the :py:class:`MaskSource` protocol:

* :py:class:`LearnedMaskSource`: the learned mask prior (a label-map diffusion model) of the CSG bundle;
* :py:class:`ProceduralMaskSource`: the simulator's procedural anatomy, with the finding's geometry under control;
* :py:class:`FileMaskSource`: the user's own masks or label maps.

:py:func:`select_mask_source` builds the one a bundle run asks for.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn as nn

from usgen_monai.data.context_fields import GENERATOR_CONTEXT_FIELDS, MASK_CONTEXT_FIELDS
from usgen_monai.data.generator_data import BINARY_MASK_CLASSES
from usgen_monai.data.image_files import read_label_values, resize_label_map
from usgen_monai.data.simulator import (
    PRESET_FINDINGS,
    UNIFIED_CLASSES,
    FindingControls,
    ScanConverter,
    UltrasoundSimulator,
    preset_classes,
)
from usgen_monai.engines.checkpoint import load_checkpoint
from usgen_monai.engines.context import ContextVocabulary
from usgen_monai.engines.guidance import ClassifierFreeGuidance
from usgen_monai.engines.provenance import (
    check_request_type,
    check_unchanged,
    file_sha256,
    sampling_schedule,
    sampling_steps,
)
from usgen_monai.engines.sampler import LabelMapSampler
from usgen_monai.engines.schedulers import build_schedule
from usgen_monai.utils import module_device, size_2d

__all__ = [
    "MASK_SOURCES",
    "FileMaskSource",
    "LearnedMaskSource",
    "MaskSample",
    "MaskSource",
    "ProceduralMaskSource",
    "SimulatorCache",
    "select_mask_source",
]

logger = logging.getLogger(__name__)

#: mask sources :py:func:`select_mask_source` chooses from
MASK_SOURCES = ("prior", "procedural", "files")
# a finding implied by the classes of a label map (a lesion alone does not tell benign from malignant)
_CLASS_FINDINGS = (("tear", "tendon_tear"), ("effusion", "effusion"))

@dataclass
class MaskSample:
    """A label map from a mask source.

    Attributes:
        label: ``(H, W)`` long label map in the unified label space, at the generator's image size.
        context: the tabular context the source knows (at least ``preset``; ``finding`` when known).
        spacing_mm: ``(row, column)`` pixel spacing in mm when the source knows the geometry, else ``None``.
    """

    label: torch.Tensor
    context: dict[str, Any]
    spacing_mm: tuple[float, float] | None = None


@runtime_checkable
class MaskSource(Protocol):
    """What the generator needs of a mask source.

    Attributes:
        type: the source's name, stored in every request it plans (``"prior"``, ``"procedural"``, ``"files"``).
        image_size: ``(H, W)`` of the label maps it draws.
        class_names: the label classes, index = value.
        skipped: ``(file, reason)`` of inputs it could not use, for the run summary (empty when it reads no files).
        checkpoints: ``{file name: SHA-256}`` of the model files it samples with, for the provenance (empty when
            none).
    """

    type: str
    image_size: tuple[int, int]
    class_names: tuple[str, ...]
    skipped: list[tuple[str, str]]
    checkpoints: dict[str, str]

    def plan(self, index: int, seed: int, presets: Sequence[str], finding: str | None = None) -> dict[str, Any]:
        """The JSON request of sample ``index`` (mask seed ``seed``) among ``presets``, with ``finding`` or, when
        ``None``, one the source draws or infers."""
        ...

    def draw(self, request: Mapping[str, Any]) -> MaskSample:
        """The label map a request of :py:meth:`plan` describes; the same request always gives the same map."""
        ...


class SimulatorCache:
    """Simulators by ``(preset, size, difficulty)``, built on first use (building one sets up its phantoms and
    point-spread function, too slow to repeat per sample). Called as ``cache(preset, size, difficulty)``."""

    def __init__(self) -> None:
        self._cache: dict[tuple, UltrasoundSimulator] = {}

    def __call__(self, preset: str, size: Sequence[int], difficulty: float) -> UltrasoundSimulator:
        key = (preset, tuple(int(s) for s in size), float(difficulty))
        if key not in self._cache:
            self._cache[key] = UltrasoundSimulator(preset, size=key[1], difficulty=key[2])
        return self._cache[key]


def _procedural_label(
    simulator: UltrasoundSimulator, seed: int, finding: str | None, controls: FindingControls | None = None
) -> MaskSample:
    """The simulator's label map for ``seed`` (unified classes, zero outside the field of view), without imaging."""
    phantom, acquisition, finding = simulator.generate_label_map(seed, finding, controls)
    fan = ScanConverter(acquisition.geometry, simulator.size).fan_mask
    label = simulator.to_unified(np.where(fan, phantom.label, 0)).astype(np.int64)
    full = simulator.context(acquisition, finding, seed, phantom.geometry)
    context = {k: full[k] for k in GENERATOR_CONTEXT_FIELDS if k in full}
    spacing = tuple(float(s) for s in full["pixel_spacing_mm"])
    return MaskSample(torch.as_tensor(label), context, spacing)


class ProceduralMaskSource:
    """Label maps drawn by the simulator's procedural anatomy generator, with the finding's geometry under control.

    The label map of seed ``s`` is exactly the label map of ``UltrasoundSimulator(preset, image_size).sample(s)``
    (in unified classes): the anatomy and the finding of a simulated image, without forming the image.

    Args:
        image_size: ``(H, W)`` of the maps.
        difficulty: the simulator's confounder scale.
        size_mm: the finding's largest diameter; ``None`` draws it.
        position: ``(lateral, depth)`` of the finding's centre as fractions of the field of view; ``None`` draws it.
        count: number of lesions (breast) or effusion pockets (MSK); ``None`` draws it.
        irregularity: 0 (smooth) to 1 (spiculated); ``None`` draws it.

    Example::

        source = ProceduralMaskSource((128, 128), size_mm=8.0, count=2)
        request = source.plan(0, seed=7, presets=("breast",), finding="malignant")
        mask = source.draw(request)  # mask.label: (128, 128) with two 8 mm lesions
    """

    type = "procedural"

    def __init__(
        self,
        image_size: Sequence[int],
        difficulty: float = 1.0,
        size_mm: float | None = None,
        position: Sequence[float] | None = None,
        count: int | None = None,
        irregularity: float | None = None,
    ) -> None:
        self.image_size = size_2d(image_size)
        if difficulty < 0:
            raise ValueError(f"difficulty must be >= 0, got difficulty={difficulty}.")
        self.difficulty = float(difficulty)
        position = None if position is None else tuple(float(p) for p in position)
        self.controls = FindingControls(size_mm=size_mm, position=position, count=count, irregularity=irregularity)
        self.class_names = UNIFIED_CLASSES
        self.skipped: list[tuple[str, str]] = []
        self.checkpoints: dict[str, str] = {}
        self._simulators = SimulatorCache()

    def plan(self, index: int, seed: int, presets: Sequence[str], finding: str | None = None) -> dict[str, Any]:
        """The request for sample ``index``: presets cycle with the index; ``finding=None`` lets the seed draw it."""
        controls = {k: v for k, v in vars(self.controls).items() if v is not None}
        if "position" in controls:
            controls["position"] = list(controls["position"])
        return {
            "type": self.type,
            "preset": presets[index % len(presets)],
            "finding": finding or None,
            "seed": int(seed),
            "difficulty": self.difficulty,
            "controls": controls,
            "size": list(self.image_size),
        }

    def draw(self, request: Mapping[str, Any]) -> MaskSample:
        """The label map of a request from :py:meth:`plan`."""
        check_request_type(request, self.type)
        controls = dict(request.get("controls") or {})
        if "position" in controls:
            controls["position"] = tuple(controls["position"])
        simulator = self._simulators(request["preset"], request["size"], request["difficulty"])
        mask = _procedural_label(simulator, int(request["seed"]), request.get("finding"), FindingControls(**controls))
        mask.label = resize_label_map(mask.label, self.image_size)
        return mask


class LearnedMaskSource:
    """Label maps from the learned mask prior: a MONAI ``DiffusionModelUNet`` over one-hot maps, class-conditioned on
    ``preset x finding`` (:py:meth:`ContextVocabulary.class_labels`), sampled with :py:class:`LabelMapSampler` at its
    training size and upsampled to the image size by nearest neighbour on the arg-max label map.

    Args:
        network: the prior's network (weights are loaded from ``checkpoint``).
        checkpoint: the prior's checkpoint (``models/mask_prior.pt``); its constants give the schedule, the class
            names, the vocabulary, the label size (``image_size``) and the ``condition_fields``.
        image_size: ``(H, W)`` of the maps handed on (the translator's image size).
        sampler: ``"ddim"`` or ``"few_step"`` (see :py:func:`sampling_schedule`).
        num_inference_steps: steps for ``"ddim"``.
        few_step_steps: steps for ``"few_step"``.
        guidance_scale: classifier-free guidance of the class condition (1 = conditional only, one pass per step).
        map_location: where the checkpoint's tensors are loaded.
        smoothing: odd box size (at the prior's label size) over which the sampled class scores are averaged before
            the arg-max, a majority-style filter that removes the isolated wrong-class pixels of an undertrained
            prior; 0 or 1 = none.

    Without a ``finding``, :py:meth:`plan` draws one of the preset's findings uniformly (as the simulator, and so the
    training data, does).
    """

    type = "prior"

    def __init__(
        self,
        network: nn.Module,
        checkpoint: str | os.PathLike,
        image_size: Sequence[int],
        sampler: str = "ddim",
        num_inference_steps: int = 50,
        few_step_steps: int = 8,
        guidance_scale: float = 1.0,
        map_location: Any = None,
        smoothing: int = 0,
    ) -> None:
        if int(smoothing) != smoothing or smoothing < 0 or (smoothing > 1 and smoothing % 2 == 0):
            raise ValueError(f"smoothing must be 0 or an odd positive integer, got smoothing={smoothing!r}.")
        self.smoothing = int(smoothing)
        self.image_size = size_2d(image_size)
        self.checkpoint = Path(checkpoint)
        device = module_device(network)
        constants = load_checkpoint(
            self.checkpoint, {"mask_prior": network}, map_location=map_location if map_location is not None else device
        )
        missing = [k for k in ("scheduler", "class_names", "context_vocabulary", "image_size") if k not in constants]
        if missing:
            raise ValueError(f"mask prior checkpoint {self.checkpoint} lacks the constants {missing}.")
        self.network = network.eval()
        self.class_names = tuple(constants["class_names"])
        self.vocabulary = ContextVocabulary.from_dict(constants["context_vocabulary"])
        self.label_size = size_2d(constants["image_size"], "mask prior image_size")
        self.condition_fields = tuple(constants.get("condition_fields", ("preset", "finding")))
        unsupported = [f for f in self.condition_fields if f not in MASK_CONTEXT_FIELDS]
        if unsupported:
            raise ValueError(
                f"mask prior checkpoint {self.checkpoint} is conditioned on {list(self.condition_fields)}; this source "
                f"can condition on {list(MASK_CONTEXT_FIELDS)} only."
            )
        self.schedule = sampling_schedule(constants["scheduler"], sampler)
        self.sampler = sampler
        self.num_inference_steps = sampling_steps(sampler, num_inference_steps, few_step_steps)
        ClassifierFreeGuidance(guidance_scale)  # validates the scale
        self.guidance_scale = float(guidance_scale)
        self.sha256 = file_sha256(self.checkpoint)
        self.skipped: list[tuple[str, str]] = []
        self._samplers: dict[str, LabelMapSampler] = {}
        self._sampler_for(self.schedule.config(), self.num_inference_steps, self.guidance_scale, self.schedule)

    @property
    def checkpoints(self) -> dict[str, str]:
        """``{file name: SHA-256}`` of the prior's checkpoint, for the provenance."""
        return {self.checkpoint.name: self.sha256}

    def _sampler_for(
        self, schedule: Mapping[str, Any], steps: int, guidance_scale: float, built: Any = None
    ) -> LabelMapSampler:
        """The label-map sampler of these settings: built once (the configured one at construction; a record made
        with other settings gets its own on first use)."""
        key = json.dumps([schedule, int(steps), float(guidance_scale)], sort_keys=True)
        if key not in self._samplers:
            self._samplers[key] = LabelMapSampler(
                built if built is not None else build_schedule(schedule),
                self.network,
                num_classes=len(self.class_names),
                spatial_shape=self.label_size,
                guidance=ClassifierFreeGuidance(guidance_scale),
                num_inference_steps=int(steps),
            )
        return self._samplers[key]

    def plan(self, index: int, seed: int, presets: Sequence[str], finding: str | None = None) -> dict[str, Any]:
        preset = presets[index % len(presets)]
        if not finding:
            findings = PRESET_FINDINGS[preset]
            finding = findings[int(np.random.default_rng(seed).integers(len(findings)))]
        return {
            "type": self.type,
            "preset": preset,
            "finding": finding,
            "seed": int(seed),
            "checkpoint_sha256": self.sha256,
            "sampler": self.sampler,
            "num_inference_steps": self.num_inference_steps,
            "schedule": self.schedule.config(),
            "guidance_scale": self.guidance_scale,
            "smoothing": self.smoothing,
            "label_size": list(self.label_size),
            "size": list(self.image_size),
        }

    @torch.no_grad()
    def draw(self, request: Mapping[str, Any]) -> MaskSample:
        check_request_type(request, self.type)
        if request["checkpoint_sha256"] != self.sha256:
            raise ValueError(
                f"the request was drawn with a mask prior of SHA-256 {request['checkpoint_sha256']}, but "
                f"{self.checkpoint} has {self.sha256}; the label map cannot be reproduced."
            )
        device = module_device(self.network)
        context = {"preset": request["preset"], "finding": request["finding"]}
        labels = self.vocabulary.class_labels([context], self.condition_fields, device=device)
        if size_2d(request["label_size"], "label_size") != self.label_size:
            raise ValueError(
                f"the request was drawn at label size {request['label_size']}, the prior {self.checkpoint} samples "
                f"{list(self.label_size)}."
            )
        sampler = self._sampler_for(request["schedule"], request["num_inference_steps"], request["guidance_scale"])
        generator = torch.Generator().manual_seed(int(request["seed"]))
        noise = torch.randn((1, len(self.class_names), *request["label_size"]), generator=generator).to(device)
        out = sampler(
            conditions={"class_labels": labels},
            null_conditions={"class_labels": torch.zeros_like(labels)},
            noise=noise,
        )
        labels = out.labels
        smoothing = int(request.get("smoothing", 0))
        if smoothing > 1:
            scores = torch.nn.functional.avg_pool2d(
                out.logits, smoothing, stride=1, padding=smoothing // 2, count_include_pad=False
            )
            labels = scores.argmax(dim=1, keepdim=True)
        label = resize_label_map(labels[0, 0].cpu(), size_2d(request["size"]))
        return MaskSample(label, context, None)


def _infer_finding(preset: str, classes: set[str]) -> str | None:
    for name, finding in _CLASS_FINDINGS:
        if name in classes:
            return finding if finding in PRESET_FINDINGS[preset] else None
    if "lesion" in classes:
        return None
    return "normal" if "normal" in PRESET_FINDINGS[preset] else None


@dataclass
class _MaskFile:
    path: Path
    sha256: str
    rule: str
    preset: str
    finding: str | None


class FileMaskSource:
    """The user's own label maps: every PNG or NIfTI file (``.png``, ``.nii``, ``.nii.gz``) in a folder, in sorted
    order; sample ``i`` uses the ``i``-th usable file (cycling), so ``num_samples`` = the number of files gives one
    pair per mask.

    Files are read with MONAI's ``LoadImage`` in MONAI's axis order (the first axis of a PNG is its column, as
    ``PILReader`` returns it, and NIfTI arrays are taken the same way), which is how :py:class:`PairWriter` writes
    labels, so a generated label map fed back here is the same map. How values are read:

    * **binary masks**: all values in ``{0, 1}`` or all in ``{0, 255}``. The foreground becomes ``mask_class``
      (default :py:data:`BINARY_MASK_CLASSES` of the preset: lesion, brain, tendon). With ``anatomy="simulated"``
      it is pasted onto simulated anatomy of the preset without finding, drawn with the sample's mask seed, since a
      translator trained on the simulator knows full anatomy, not a lone structure on background. With
      ``anatomy="none"`` the rest stays background 0, the "not annotated" of a translator fine-tuned on a user's
      data set of binary masks (:py:class:`usgen_monai.data.generator_data.UserGeneratorDataset`). Needs
      ``preset``.
    * **label maps**: any other integer values, taken as indices of ``class_names`` (the unified classes of
      :py:data:`usgen_monai.data.simulator.UNIFIED_CLASSES`, 0 = background outside the field of view). Without
      ``preset``, the preset is the one whose classes include all classes of the map.

    The finding is ``finding`` when given, else implied by the classes (tear: tendon_tear, effusion: effusion, a
    lesion: unknown, none: normal). Maps of another size are resized to ``image_size`` by nearest neighbour.

    A file that cannot be used (unreadable, not 2D, colour, non-integer or out-of-range values, no telling its preset)
    is logged with the reason and skipped; :py:attr:`skipped` lists ``(file, reason)`` for the run summary.

    Args:
        directory: the folder of masks.
        image_size: ``(H, W)`` of the maps handed on.
        preset: the preset of every mask; ``""`` infers it per label map (binary masks then are skipped).
        finding: the finding of every mask; ``""`` infers it.
        mask_class: the class of a binary mask's foreground; ``""`` = the preset's default.
        class_names: the unified label classes.
        difficulty: simulator difficulty of the anatomy under binary masks.
        anatomy: what surrounds a binary mask's foreground: ``"simulated"`` anatomy or ``"none"`` (background).

    Raises:
        ValueError: ``directory`` is not a folder, ``mask_class`` is not a class, ``anatomy`` unknown, or no file is
            usable.
    """

    type = "files"

    def __init__(
        self,
        directory: str | os.PathLike,
        image_size: Sequence[int],
        preset: str | None = "",
        finding: str | None = "",
        mask_class: str | None = "",
        class_names: Sequence[str] = UNIFIED_CLASSES,
        difficulty: float = 1.0,
        anatomy: str = "simulated",
    ) -> None:
        if anatomy not in ("simulated", "none"):
            raise ValueError(f"anatomy must be 'simulated' or 'none', got anatomy={anatomy!r}.")
        self.anatomy = anatomy
        if not directory or not Path(directory).is_dir():
            raise ValueError(f"masks must be a folder of PNG or NIfTI label maps, got masks={str(directory)!r}.")
        self.directory = Path(directory).resolve()
        self.image_size = size_2d(image_size)
        self.class_names = tuple(class_names)
        if preset and preset not in PRESET_FINDINGS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {list(PRESET_FINDINGS)}.")
        self.preset = preset or None
        self.finding = finding or None
        if mask_class and mask_class not in self.class_names:
            raise ValueError(f"mask_class {mask_class!r} is not a label class; classes are {list(self.class_names)}.")
        self.mask_class = mask_class or None
        self.difficulty = float(difficulty)
        self._preset_values = {
            p: {self.class_names.index(c) for c in preset_classes(p) if c in self.class_names} for p in PRESET_FINDINGS
        }
        self._simulators = SimulatorCache()
        self.masks: list[_MaskFile] = []
        self.skipped: list[tuple[str, str]] = []
        self.checkpoints: dict[str, str] = {}
        for path in sorted(p for p in self.directory.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                self.masks.append(self._scan(path))
            except ValueError as e:
                reason = str(e).removeprefix(f"{path}: ")
                logger.warning(f"skipping mask file {path}: {reason}")
                self.skipped.append((str(path), reason))
        if not self.masks:
            raise ValueError(
                f"no usable mask in {self.directory}: {len(self.skipped)} file(s) skipped "
                f"({'; '.join(f'{Path(p).name}: {r}' for p, r in self.skipped) or 'the folder is empty'})."
            )

    # -- reading
    def _read(self, path: Path) -> tuple[np.ndarray, str]:
        """``(H, W)`` int64 values and the rule (``"binary"`` or ``"labels"``); ValueError names the problem."""
        return read_label_values(path, len(self.class_names))

    def _scan(self, path: Path) -> _MaskFile:
        values, rule = self._read(path)
        present = {int(v) for v in np.unique(values)} - {0}
        if rule == "binary":
            if self.preset is None:
                raise ValueError(f"{path}: a binary mask needs a preset to draw the anatomy around it (set preset).")
            preset = self.preset
            classes = {self._mask_class(preset)} if present else set()
        else:
            if not present:
                raise ValueError(f"{path}: holds only background (0), no anatomy to generate.")
            preset = self.preset or self._infer_preset(path, present)
            classes = {self.class_names[v] for v in present}
            outside = sorted(classes - set(preset_classes(preset)))
            if outside:
                logger.warning(f"mask file {path} holds classes {outside} that preset {preset!r} does not have.")
        finding = self.finding or _infer_finding(preset, classes)
        if finding is not None and finding not in PRESET_FINDINGS[preset]:
            raise ValueError(f"{path}: finding {finding!r} is not a finding of preset {preset!r}.")
        return _MaskFile(path, file_sha256(path), rule, preset, finding)

    def _infer_preset(self, path: Path, present: set[int]) -> str:
        candidates = [p for p, values in self._preset_values.items() if present <= values]
        if len(candidates) == 1:
            return candidates[0]
        names = sorted(self.class_names[v] for v in present)
        if not candidates:
            raise ValueError(f"{path}: classes {names} belong to no single preset; set preset.")
        raise ValueError(f"{path}: classes {names} fit presets {candidates}; set preset to choose.")

    def _mask_class(self, preset: str) -> str:
        return self.mask_class or BINARY_MASK_CLASSES[preset]

    # -- the source protocol
    def plan(self, index: int, seed: int, presets: Sequence[str] = (), finding: str | None = None) -> dict[str, Any]:
        """The request for sample ``index``: the ``index % len(masks)``-th usable file (``presets`` and ``finding``
        are fixed per file at construction)."""
        m = self.masks[index % len(self.masks)]
        return {
            "type": self.type,
            "path": str(m.path),
            "sha256": m.sha256,
            "rule": m.rule,
            "mask_class": self._mask_class(m.preset) if m.rule == "binary" else None,
            "preset": m.preset,
            "finding": m.finding,
            "seed": int(seed),
            "difficulty": self.difficulty,
            "anatomy": self.anatomy,
            "size": list(self.image_size),
        }

    def draw(self, request: Mapping[str, Any]) -> MaskSample:
        check_request_type(request, self.type)
        path = check_unchanged(request, "mask file")
        values, rule = self._read(path)
        size = size_2d(request["size"])
        label = resize_label_map(torch.as_tensor(values), size)
        context: dict[str, Any] = {"preset": request["preset"], "finding": request["finding"]}
        spacing = None
        if rule == "binary" and request.get("anatomy", "simulated") == "none":
            label = torch.where(label > 0, self.class_names.index(request["mask_class"]), 0)
        elif rule == "binary":
            simulator = self._simulators(request["preset"], size, request["difficulty"])
            normal = "normal" if "normal" in PRESET_FINDINGS[request["preset"]] else None
            anatomy = _procedural_label(simulator, int(request["seed"]), normal)
            label = torch.where(label > 0, self.class_names.index(request["mask_class"]), anatomy.label)
            context = {**anatomy.context, **context}
            spacing = anatomy.spacing_mm
        return MaskSample(label, context, spacing)


def select_mask_source(
    mask_source: str = "prior", masks: str | os.PathLike | None = "", sources: Mapping[str, Callable] | None = None
) -> MaskSource:
    """Build the mask source a run asks for: ``"files"`` when ``masks`` names a folder (whatever ``mask_source``
    says), else ``mask_source``.

    Args:
        mask_source: ``"prior"``, ``"procedural"`` or ``"files"``.
        masks: the folder of the user's masks, or empty.
        sources: ``{name: callable}`` building each source (in a bundle config, components with
            ``"_mode_": "callable"``), so only the chosen one is built (and only its checkpoint is read).

    Raises:
        ValueError: an unknown ``mask_source``.
    """
    sources = dict(sources or {})
    name = "files" if masks else mask_source
    if masks and mask_source != "files":
        logger.info(f"masks={str(masks)!r} given: generating for those masks (mask_source={mask_source!r} not used).")
    if name not in sources:
        raise ValueError(f"mask_source must be one of {sorted(sources)}, got mask_source={name!r}.")
    source = sources[name]()
    if not isinstance(source, MaskSource):
        raise ValueError(f"mask source {name!r} built a {type(source).__name__}, which is not a MaskSource.")
    return source

