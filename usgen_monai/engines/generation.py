"""Generation of synthetic (image, label map) pairs: the inference pipeline of the CSG bundle.

One pair is made in four steps by composed objects, each replaceable on its own::

    label map    <- mask source      (learned prior | procedural simulator geometry | the user's mask files)
    context      <- context source   (an image from a style bank of simulated or of the user's images | the user's
                                      context image | none)
                    + tabular context (preset, finding, probe, depth, frequency, gain, dynamic range)
    image        <- LatentSampler    (ControlNet translator, two guidance scales, DDIM or few-step DDIM, decoder)
    files        <- PairWriter       (PNG | NIfTI | DICOM + DICOM SEG, datalist.json, dataset.json)

:py:class:`PairGenerator` first *plans* a sample: a JSON record that fixes everything the sample depends on (seeds,
the mask request, the context image request, sampler, steps, guidance scales, checkpoint hashes), and then
*generates* the pair from that record alone. :py:meth:`PairGenerator.run` and :py:meth:`PairGenerator.regenerate`
share that second step, so the provenance record written with a pair reproduces it exactly (same software and
hardware), in this process or another.

Seeds: sample ``i`` of a run with seed ``s`` has seed ``sample_seed(s, i)`` (see
:py:func:`usgen_monai.data.simulator.sample_seed`), and its mask, context and noise draws use
``sample_seed(sample_seed(s, i), k)`` for ``k = 0, 1, 2``. Every draw uses its own ``torch.Generator`` or
``numpy.random.Generator`` seeded with these values; nothing reads global random state. Samples are generated one
at a time (the guided condition sets of one sample are batched): on CPU a larger batch is not faster per sample,
and one-sample batches keep a pair independent of what else was generated with it.

Tabular context of a pair, field by field (the first source that has a value wins):

* ``preset``, ``finding``: the mask source (which follows the run's ``preset`` and ``finding``), never the context
  image, whose own finding is unrelated to the mask;
* ``probe``, ``depth_mm`` (geometry, which the label map depends on): the overrides, the mask source, the context
  image's record;
* ``frequency_mhz``, ``gain_db``, ``dynamic_range_db`` (appearance): the overrides, the context image's record, the
  mask source.

A field that no source knows is passed to the translator as unknown (its null embedding), which training taught it.

Regenerating a pair of a bundle run (build the generator with the run's mask source and context source)::

    item = json.load(open("OUT/datalist.json"))["training"][5]
    parser = ConfigParser()
    parser.read_config("bundles/csg/configs/inference.json")
    parser.update({"mask_source": item["provenance"]["mask_source"]["type"]})  # + "masks" / "context_image" if used
    generator = parser.get_parsed_content("evaluator")
    pair = generator.regenerate(item)  # pair.image, pair.label: bit for bit the files of item 5
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

import usgen_monai
from usgen_monai.data.generator_data import BINARY_MASK_CLASSES, GENERATOR_CONTEXT_FIELDS
from usgen_monai.data.image_files import MASK_FILE_SUFFIXES, read_grey_image, read_label_values, resize_label_map
from usgen_monai.data.simulator import (
    PRESET_FINDINGS,
    PRESET_TARGETS,
    PRESETS,
    UNIFIED_CLASSES,
    FindingControls,
    ScanConverter,
    UltrasoundSimulator,
    preset_classes,
    sample_seed,
)
from usgen_monai.engines.checkpoint import load_checkpoint
from usgen_monai.engines.context import ContextVocabulary
from usgen_monai.engines.guidance import ClassifierFreeGuidance, DualGuidance
from usgen_monai.engines.prepare_batch import encode_latents, label_to_onehot
from usgen_monai.engines.sampler import LabelMapSampler, LatentSampler
from usgen_monai.engines.schedulers import NoiseSchedule, build_schedule
from usgen_monai.utils import atomic_write

__all__ = [
    "BINARY_MASK_CLASSES",
    "MASK_FILE_SUFFIXES",
    "OUTPUT_FORMATS",
    "SAMPLERS",
    "BankContextSource",
    "ContextImage",
    "FileContextSource",
    "FileMaskSource",
    "GeneratedPair",
    "GenerationSummary",
    "LearnedMaskSource",
    "MaskSample",
    "PairGenerator",
    "PairWriter",
    "ProceduralMaskSource",
    "file_sha256",
    "merge_context",
    "resolve_presets",
    "sampling_schedule",
    "sampling_steps",
    "select_context_source",
    "select_mask_source",
    "NoContextImageSource",
    "CONTEXT_SOURCES",
]

logger = logging.getLogger(__name__)

#: sampler settings of :py:func:`sampling_schedule` and :py:func:`sampling_steps`
SAMPLERS = ("ddim", "few_step")
#: output formats of :py:class:`PairWriter`
OUTPUT_FORMATS = ("png", "nifti", "dicom")

_MASK_FIELDS = ("preset", "finding")
_GEOMETRY_FIELDS = ("probe", "depth_mm")
_APPEARANCE_FIELDS = ("frequency_mhz", "gain_db", "dynamic_range_db")
_OVERRIDE_FIELDS = _GEOMETRY_FIELDS + _APPEARANCE_FIELDS
# a finding implied by the classes of a label map (a lesion alone does not tell benign from malignant)
_CLASS_FINDINGS = (("tear", "tendon_tear"), ("effusion", "effusion"))


# ----------------------------------------------------------------------------------------------------------------
# small helpers


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_unchanged(request: Mapping[str, Any], what: str) -> Path:
    """``request["path"]``, after checking that the file still exists and has the SHA-256 the request recorded."""
    path = Path(request["path"])
    if not path.is_file():
        raise ValueError(f"{what} {path} of the request does not exist.")
    digest = file_sha256(path)
    if digest != request["sha256"]:
        raise ValueError(f"{what} {path} changed since the request (SHA-256 {digest}, was {request['sha256']}).")
    return path


def _check_sampler(sampler: str) -> str:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got sampler={sampler!r}.")
    return sampler


def sampling_schedule(config: Mapping[str, Any], sampler: str = "ddim") -> NoiseSchedule:
    """The noise schedule of a checkpoint (its ``constants["scheduler"]``), set up for ``sampler``.

    Args:
        config: ``{"name": "ddim" | "rflow", **settings}`` as stored by training.
        sampler: ``"ddim"``: the schedule as trained; ``"few_step"``: for a DDIM schedule, trailing timestep spacing
            (``T - 1, T - 1 - T // n, ...``, Lin et al., https://arxiv.org/abs/2305.08891), which starts from pure
            noise and matches DDIM's step at a handful of steps; a rectified-flow schedule is used as trained (its
            Euler steps need no change).
    """
    _check_sampler(sampler)
    settings = dict(config)
    if sampler == "few_step" and settings.get("name") == "ddim":
        settings["timestep_spacing"] = "trailing"
    return build_schedule(settings)


def sampling_steps(sampler: str = "ddim", num_inference_steps: int = 50, few_step_steps: int = 8) -> int:
    """Number of sampling steps of ``sampler``: ``num_inference_steps`` for ``"ddim"``, ``few_step_steps`` for
    ``"few_step"``."""
    _check_sampler(sampler)
    steps = int(num_inference_steps if sampler == "ddim" else few_step_steps)
    if steps < 1:
        name = "num_inference_steps" if sampler == "ddim" else "few_step_steps"
        raise ValueError(f"{name} must be >= 1, got {name}={steps}.")
    return steps


def resolve_presets(preset: str | None = "", finding: str | None = "", known: Sequence[str] = PRESETS) -> tuple:
    """The presets a run draws from: ``(preset,)`` when given, else every preset of ``known`` that has ``finding``
    (all of them without a finding); samples cycle through them.

    Raises:
        ValueError: an unknown preset, or a finding that the preset (or every preset) lacks.
    """
    known = tuple(p for p in known if p in PRESET_FINDINGS)
    if preset:
        if preset not in known:
            raise ValueError(f"unknown preset {preset!r}; the generator knows presets {list(known)}.")
        if finding and finding not in PRESET_FINDINGS[preset]:
            raise ValueError(
                f"finding {finding!r} is not a finding of preset {preset!r}; expected one of "
                f"{list(PRESET_FINDINGS[preset])}."
            )
        return (preset,)
    presets = tuple(p for p in known if not finding or finding in PRESET_FINDINGS[p])
    if not presets:
        raise ValueError(
            f"finding {finding!r} is not a finding of any preset; findings are "
            f"{ {p: list(PRESET_FINDINGS[p]) for p in known} }."
        )
    return presets


def merge_context(
    mask_context: Mapping[str, Any] | None,
    image_context: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The tabular context of a pair (see the module docstring for the order of precedence).

    Args:
        mask_context: what the mask source knows (preset, finding, and for simulated anatomy its acquisition).
        image_context: the context image's record (a simulated bank image's acquisition), or empty.
        overrides: user values; ``None`` values are ignored.

    Returns:
        the fields of :py:data:`usgen_monai.data.generator_data.GENERATOR_CONTEXT_FIELDS` that some source knows.
    """
    mask_context = dict(mask_context or {})
    image_context = dict(image_context or {})
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    order = {}
    for name in _MASK_FIELDS:
        order[name] = (overrides, mask_context)
    for name in _GEOMETRY_FIELDS:
        order[name] = (overrides, mask_context, image_context)
    for name in _APPEARANCE_FIELDS:
        order[name] = (overrides, image_context, mask_context)
    out: dict[str, Any] = {}
    for name in GENERATOR_CONTEXT_FIELDS:
        for source in order.get(name, (overrides, mask_context, image_context)):
            if source.get(name) is not None:
                out[name] = source[name]
                break
    return out


def _derived_seeds(seed: int, index: int) -> tuple[int, dict[str, int]]:
    s = sample_seed(seed, index)
    return s, {"mask": sample_seed(s, 0), "context": sample_seed(s, 1), "noise": sample_seed(s, 2)}


def _size2(size: Sequence[int] | int, name: str = "image_size") -> tuple[int, int]:
    size = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be (H, W) with positive entries, got {name}={size}.")
    return size


def _module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


# ----------------------------------------------------------------------------------------------------------------
# mask sources


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


def _check_request(request: Mapping[str, Any], kind: str) -> None:
    found = request.get("type") if isinstance(request, Mapping) else type(request).__name__
    if found != kind:
        raise ValueError(
            f"this source draws {kind!r} requests, got a {found!r} request; build the generator with the source the "
            "record was made with to regenerate it."
        )


class _Simulators:
    """Cache of simulators by (preset, size, difficulty)."""

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
        self.image_size = _size2(image_size)
        if difficulty < 0:
            raise ValueError(f"difficulty must be >= 0, got difficulty={difficulty}.")
        self.difficulty = float(difficulty)
        position = None if position is None else tuple(float(p) for p in position)
        self.controls = FindingControls(size_mm=size_mm, position=position, count=count, irregularity=irregularity)
        self.class_names = UNIFIED_CLASSES
        self.skipped: list[tuple[str, str]] = []
        self._simulators = _Simulators()

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
        _check_request(request, self.type)
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
        self.image_size = _size2(image_size)
        self.checkpoint = Path(checkpoint)
        device = _module_device(network)
        constants = load_checkpoint(
            self.checkpoint, {"mask_prior": network}, map_location=map_location if map_location is not None else device
        )
        missing = [k for k in ("scheduler", "class_names", "context_vocabulary", "image_size") if k not in constants]
        if missing:
            raise ValueError(f"mask prior checkpoint {self.checkpoint} lacks the constants {missing}.")
        self.network = network.eval()
        self.class_names = tuple(constants["class_names"])
        self.vocabulary = ContextVocabulary.from_dict(constants["context_vocabulary"])
        self.label_size = _size2(constants["image_size"], "mask prior image_size")
        self.condition_fields = tuple(constants.get("condition_fields", ("preset", "finding")))
        unsupported = [f for f in self.condition_fields if f not in _MASK_FIELDS]
        if unsupported:
            raise ValueError(
                f"mask prior checkpoint {self.checkpoint} is conditioned on {list(self.condition_fields)}; this source "
                f"can condition on {list(_MASK_FIELDS)} only."
            )
        self.schedule = sampling_schedule(constants["scheduler"], sampler)
        self.sampler = sampler
        self.num_inference_steps = sampling_steps(sampler, num_inference_steps, few_step_steps)
        ClassifierFreeGuidance(guidance_scale)  # validates the scale
        self.guidance_scale = float(guidance_scale)
        self.sha256 = file_sha256(self.checkpoint)
        self.skipped: list[tuple[str, str]] = []

    @property
    def checkpoints(self) -> dict[str, str]:
        """``{file name: SHA-256}`` of the prior's checkpoint, for the provenance."""
        return {self.checkpoint.name: self.sha256}

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
        _check_request(request, self.type)
        if request["checkpoint_sha256"] != self.sha256:
            raise ValueError(
                f"the request was drawn with a mask prior of SHA-256 {request['checkpoint_sha256']}, but "
                f"{self.checkpoint} has {self.sha256}; the label map cannot be reproduced."
            )
        device = _module_device(self.network)
        context = {"preset": request["preset"], "finding": request["finding"]}
        labels = self.vocabulary.class_labels([context], self.condition_fields, device=device)
        sampler = LabelMapSampler(
            build_schedule(request["schedule"]),
            self.network,
            num_classes=len(self.class_names),
            spatial_shape=request["label_size"],
            guidance=ClassifierFreeGuidance(request["guidance_scale"]),
            num_inference_steps=int(request["num_inference_steps"]),
        )
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
        label = resize_label_map(labels[0, 0].cpu(), _size2(request["size"]))
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
        self.image_size = _size2(image_size)
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
        self._simulators = _Simulators()
        self.masks: list[_MaskFile] = []
        self.skipped: list[tuple[str, str]] = []
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
        _check_request(request, self.type)
        path = _check_unchanged(request, "mask file")
        values, rule = self._read(path)
        size = _size2(request["size"])
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
) -> Any:
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
    return sources[name]()


# ----------------------------------------------------------------------------------------------------------------
# context sources


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


class _EncoderMean:
    """``images -> AutoencoderKL.encode(images)[0]`` on the autoencoder's device (the bank's style features)."""

    def __init__(self, autoencoder: nn.Module) -> None:
        self.autoencoder = autoencoder

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(images.to(_module_device(self.autoencoder)))[0].cpu()


class BankContextSource:
    """Context images picked by style from a bank of images (CSG's context selection,
    :py:class:`usgen_monai.data.context_bank.ContextBank`, whose style features are the stage-1 encoder's posterior
    mean).

    With ``dataset_dir="simulator"`` the bank of a preset holds ``bank_size`` simulated images of that preset, image
    ``j`` simulated with seed ``sample_seed(bank_seed, j)``, built the first time a sample of that preset asks for a
    context; the request records the chosen image's simulator seed, so :py:meth:`draw` re-simulates it without the
    bank. With the folder of a data set (any layout of :py:func:`usgen_monai.data.datasets.load_dataset`, e.g. the
    real images the generator was fine-tuned on) the bank holds up to ``bank_size`` of its images, drawn with
    ``bank_seed``, for every preset; images that cannot be read are logged and skipped; the request records the
    chosen file and its SHA-256, and :py:meth:`draw` re-reads it.

    Without ``style_reference`` a bank image is drawn uniformly with the sample's context seed; with one, the draw is
    among the ``style_top_k`` bank images whose style is nearest to it.

    Args:
        autoencoder: the stage-1 ``AutoencoderKL`` (weights loaded).
        image_size: ``(H, W)``.
        dataset_dir: ``"simulator"`` or a data-set folder (or datalist JSON) of real images.
        bank_size: images per preset (simulator) or in all (data set).
        bank_seed: seed of the bank images.
        style_reference: an image file to match in style, or ``""``.
        style_top_k: candidates nearest to ``style_reference`` to draw from.
        difficulty: simulator difficulty of the bank images.

    Raises:
        ValueError: bad sizes or seeds, a missing ``style_reference``, or a data set without a readable image.
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
    ) -> None:
        if bank_size < 1:
            raise ValueError(f"bank_size must be >= 1, got bank_size={bank_size}.")
        if style_top_k < 1:
            raise ValueError(f"style_top_k must be >= 1, got style_top_k={style_top_k}.")
        sample_seed(bank_seed, 0)  # validates the seed
        self.autoencoder = autoencoder
        self.image_size = _size2(image_size)
        self.dataset_dir = "simulator" if str(dataset_dir) == "simulator" else str(Path(dataset_dir).resolve())
        self.bank_size = int(bank_size)
        self.bank_seed = int(bank_seed)
        self.style_top_k = int(style_top_k)
        self.difficulty = float(difficulty)
        self.style_reference = Path(style_reference).resolve() if style_reference else None
        if self.style_reference is not None and not self.style_reference.is_file():
            raise ValueError(f"style_reference {self.style_reference} is not a file.")
        self._reference: torch.Tensor | None = None
        self._banks: dict[str | None, Any] = {}
        self._simulators = _Simulators()
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

    def _dataset_bank(self) -> Any:
        from usgen_monai.data.context_bank import ContextBank
        from usgen_monai.data.datasets import detect_layout, load_dataset

        layout = detect_layout(self.dataset_dir)
        # the bank needs images only: an image without its mask is still a context
        items = load_dataset(self.dataset_dir, layout, **({} if layout == "monai" else {"allow_missing_labels": True}))
        paths = sorted({str(item["image"]) for item in items if isinstance(item.get("image"), (str, os.PathLike))})
        order = np.random.default_rng(sample_seed(self.bank_seed, 0)).permutation(len(paths))
        images, contexts = [], []
        for k in order:
            if len(images) == self.bank_size:
                break
            try:
                images.append(read_grey_image(paths[k], self.image_size)[None])
            except ValueError as e:
                logger.warning(f"context bank: skipping {paths[k]}: {e}")
                self.skipped.append((paths[k], str(e)))
                continue
            contexts.append({"path": paths[k], "sha256": file_sha256(paths[k])})
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
                self._reference = read_grey_image(self.style_reference, self.image_size)
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
        return request

    def draw(self, request: Mapping[str, Any]) -> ContextImage:
        _check_request(request, self.type)
        if request.get("dataset_dir", "simulator") != "simulator":
            path = _check_unchanged(request, "context image")
            return ContextImage(read_grey_image(path, _size2(request["size"])), {}, None)
        simulator = self._simulators(request["preset"], request["size"], request["difficulty"])
        s = simulator.sample(seed=int(request["simulator_seed"]))
        context = {k: s.context[k] for k in GENERATOR_CONTEXT_FIELDS if k in s.context}
        spacing = tuple(float(v) for v in s.context["pixel_spacing_mm"])
        return ContextImage(torch.as_tensor(s.image)[None].float(), context, spacing)


class FileContextSource:
    """One context image for every sample, from a file (PNG, JPEG, NIfTI or DICOM), read with MONAI's ``LoadImage``
    in grey (colour by ITU-R BT.601 luma): 8-bit values are divided by 255, floats already in ``[0, 1]`` are kept,
    anything else is scaled from its minimum and maximum; it is resized to ``image_size`` by area averaging (shrinking)
    or bilinearly. The image carries no tabular record.

    Args:
        path: the image file.
        image_size: ``(H, W)``.
    """

    type = "file"

    def __init__(self, path: str | os.PathLike, image_size: Sequence[int]) -> None:
        if not path or not Path(path).is_file():
            raise ValueError(f"context_image must be an image file, got context_image={str(path)!r}.")
        self.path = Path(path).resolve()
        self.image_size = _size2(image_size)
        self.sha256 = file_sha256(self.path)
        self.image = read_grey_image(self.path, self.image_size)  # fails early on a bad file

    def plan(self, index: int, seed: int, preset: str) -> dict[str, Any]:
        return {"type": self.type, "path": str(self.path), "sha256": self.sha256, "size": list(self.image_size)}

    def draw(self, request: Mapping[str, Any]) -> ContextImage:
        _check_request(request, self.type)
        path = _check_unchanged(request, "context image")
        return ContextImage(read_grey_image(path, _size2(request["size"])), {}, None)


class NoContextImageSource:
    """No context image: appearance comes from the tabular context alone (the translator's null image tokens stand
    in for the image, as condition dropout trained them)."""

    type = "none"

    def plan(self, index: int, seed: int, preset: str) -> dict[str, Any]:
        return {"type": self.type}

    def draw(self, request: Mapping[str, Any]) -> ContextImage:
        _check_request(request, self.type)
        return ContextImage(None, {}, None)


#: context sources :py:func:`select_context_source` chooses from
CONTEXT_SOURCES = ("bank", "file", "none")


def select_context_source(
    context_image: str | os.PathLike | None = "",
    sources: Mapping[str, Callable] | None = None,
    context_source: str | None = "",
) -> Any:
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
    return sources[name]()


# ----------------------------------------------------------------------------------------------------------------
# writing


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return np.clip(np.round(image.detach().cpu().double().numpy() * 255.0), 0, 255).astype(np.uint8)


class PairWriter:
    """Writes pairs as ``<stem>_image.<ext>`` and ``<stem>_label.<ext>`` in ``output_dir`` (``stem`` =
    ``sample_<index:06d>``), then a MONAI datalist ``datalist.json`` and, last, the manifest ``dataset.json`` (whose
    presence means the run completed). Every file is written to a temporary name and moved into place.

    Formats (arrays in MONAI's axis order, first axis = image column, as MONAI's readers return them):

    * ``png``: 8-bit grey image (``round(255 * x)``) and 8-bit label map (class indices); both carry PNG text
      chunks ``Synthetic: YES`` and the provenance.
    * ``nifti``: ``.nii.gz``, float32 image in ``[0, 1]`` and uint8 label map, affine = pixel spacing in mm when
      known; the header's ``descrip`` says SYNTHETIC and a comment extension holds the provenance.
    * ``dicom``: the image as Ultrasound Image Storage via :py:class:`usgen_monai.data.SaveSyntheticDicom`
      (Synthetic Data = YES, provenance, pixel spacing as an ultrasound region), the label map as a DICOM SEG via
      :py:class:`usgen_monai.data.SaveDicomSeg` referencing it (``<stem>_label.dcm``), and the same label map as
      ``<stem>_label.png`` for training readers; the datalist's ``label`` is the PNG and ``label_seg`` the SEG.

    Args:
        output_dir: the output folder (created).
        output_format: ``"png"``, ``"nifti"`` or ``"dicom"``.
        class_names: label class names, index = value (datalist ``labels``, SEG segments).
        model_name: the generator's name, in provenance and DICOM equipment attributes.
        model_version: its version (the bundle version).
        name_prefix: file stem prefix.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        output_format: str = "png",
        class_names: Sequence[str] = UNIFIED_CLASSES,
        model_name: str = "usgen-monai CSG",
        model_version: str = "",
        name_prefix: str = "sample_",
    ) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(
                f"output_format must be one of {list(OUTPUT_FORMATS)}, got output_format={output_format!r}."
            )
        self.output_dir = Path(output_dir)
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ValueError(f"output_dir {self.output_dir} exists and is not a folder.")
        self.output_format = output_format
        self.class_names = tuple(class_names)
        self.model_name = model_name
        self.model_version = str(model_version or usgen_monai.__version__)
        self.name_prefix = name_prefix
        self._image_writer = self._seg_writer = None

    def stem(self, index: int) -> str:
        return f"{self.name_prefix}{int(index):06d}"

    # -- files
    def _text(self, provenance: Mapping[str, Any]) -> dict[str, str]:
        return {
            "Synthetic": "YES",
            "Software": f"{self.model_name} {self.model_version}",
            "Description": "SYNTHETIC ultrasound image generated by usgen-monai; not acquired from a patient",
            "usgen-monai provenance": json.dumps(provenance, sort_keys=True),
        }

    def _write_png(self, path: Path, array: np.ndarray, provenance: Mapping[str, Any]) -> None:
        from PIL import Image, PngImagePlugin

        info = PngImagePlugin.PngInfo()
        for key, value in self._text(provenance).items():
            info.add_itxt(key, value)
        with atomic_write(path) as tmp:
            Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG", pnginfo=info)

    def _write_nifti(
        self, path: Path, array: np.ndarray, spacing: tuple[float, float] | None, provenance: Mapping[str, Any]
    ) -> None:
        import nibabel as nib

        row, col = spacing if spacing is not None else (1.0, 1.0)
        img = nib.Nifti1Image(np.ascontiguousarray(array.T), np.diag([col, row, 1.0, 1.0]))
        img.header.set_xyzt_units("mm")
        img.header["descrip"] = f"SYNTHETIC {self.model_name} {self.model_version}"[:79].encode()
        img.header.extensions.append(
            nib.nifti1.Nifti1Extension("comment", json.dumps(provenance, sort_keys=True).encode())
        )
        with atomic_write(path) as tmp:
            nib.save(img, str(tmp))

    def _write_dicom(
        self,
        image_path: Path,
        seg_path: Path,
        image: torch.Tensor,
        label: torch.Tensor,
        spacing: tuple[float, float] | None,
        provenance: Mapping[str, Any],
    ) -> None:
        from usgen_monai.data.dicom_writers import SaveDicomSeg, SaveSyntheticDicom

        if self._image_writer is None:
            self._image_writer = SaveSyntheticDicom(
                output_dir=self.output_dir, model_name=self.model_name, model_version=self.model_version
            )
            self._seg_writer = SaveDicomSeg(
                output_dir=self.output_dir,
                label_classes=list(self.class_names),
                algorithm_name=self.model_name,
                algorithm_version=self.model_version,
                series_description="Label maps of SYNTHETIC images (usgen-monai)",
            )
        meta = {} if spacing is None else {"spacing": (spacing[1], spacing[0])}
        conditioning = {k: provenance.get(k) for k in ("mask_source", "context_image", "guidance", "sampler")}
        conditioning["checkpoints"] = provenance.get("checkpoints")
        self._image_writer.write(
            image.T[None].numpy(),
            meta_data=meta,
            filename=image_path,
            seed=provenance.get("sample_seed"),
            conditioning=conditioning,
        )
        quiet = logging.getLogger("highdicom")  # logs every attribute module it copies, at INFO
        level = quiet.level
        quiet.setLevel(max(level, logging.WARNING))
        try:
            self._seg_writer.write(label.T[None].numpy(), source=image_path, filename=seg_path)
        finally:
            quiet.setLevel(level)

    def write(
        self,
        index: int,
        image: torch.Tensor,
        label: torch.Tensor,
        spacing_mm: tuple[float, float] | None,
        provenance: Mapping[str, Any],
    ) -> dict[str, str]:
        """Write one pair; returns the datalist paths (relative to ``output_dir``).

        Args:
            index: the sample index (names the files).
            image: ``(H, W)`` float image in ``[0, 1]``.
            label: ``(H, W)`` integer label map.
            spacing_mm: ``(row, column)`` pixel spacing in mm, or ``None``.
            provenance: the pair's provenance record (stored in the files' metadata).
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        stem = self.stem(index)
        image = image.detach().float().cpu()
        label_u8 = label.detach().cpu().numpy().astype(np.uint8)
        if self.output_format == "png":
            paths = {"image": f"{stem}_image.png", "label": f"{stem}_label.png"}
            self._write_png(self.output_dir / paths["image"], _to_uint8(image), provenance)
            self._write_png(self.output_dir / paths["label"], label_u8, provenance)
        elif self.output_format == "nifti":
            paths = {"image": f"{stem}_image.nii.gz", "label": f"{stem}_label.nii.gz"}
            self._write_nifti(self.output_dir / paths["image"], image.numpy(), spacing_mm, provenance)
            self._write_nifti(self.output_dir / paths["label"], label_u8, spacing_mm, provenance)
        else:
            paths = {"image": f"{stem}_image.dcm", "label": f"{stem}_label.png", "label_seg": f"{stem}_label.dcm"}
            self._write_dicom(
                self.output_dir / paths["image"],
                self.output_dir / paths["label_seg"],
                image,
                label.detach().cpu().long(),
                spacing_mm,
                provenance,
            )
            self._write_png(self.output_dir / paths["label"], label_u8, provenance)
        return paths

    def finalize(self, items: Sequence[Mapping[str, Any]], manifest: Mapping[str, Any]) -> tuple[Path, Path]:
        """Write ``datalist.json`` (the ``training`` list) and then ``dataset.json``; returns their paths."""
        from usgen_monai.data.layouts import write_json_atomic

        targets = {
            preset: [self.class_names.index(c) for c in classes if c in self.class_names]
            for preset, classes in PRESET_TARGETS.items()
        }
        datalist = {
            "name": f"{self.model_name} synthetic (image, label) pairs",
            "description": "SYNTHETIC ultrasound images generated by usgen-monai with the label maps that conditioned "
            "them; not real patient data.",
            "synthetic": True,
            "tensorImageSize": "2D",
            "modality": {"0": "US"},
            "labels": {str(i): name for i, name in enumerate(self.class_names)},
            "target_labels": targets,
            "numTraining": len(items),
            "training": [dict(item) for item in items],
        }
        datalist_path = write_json_atomic(self.output_dir / "datalist.json", datalist)
        manifest_path = write_json_atomic(
            self.output_dir / "dataset.json",
            {
                "name": f"{self.model_name} synthetic (image, label) pairs",
                "synthetic": True,
                "output_format": self.output_format,
                "file_naming": "<stem>_image.<ext>, <stem>_label.<ext>",
                "datalist": "datalist.json",
                **manifest,
            },
        )
        return datalist_path, manifest_path


# ----------------------------------------------------------------------------------------------------------------
# the generator


@dataclass
class GeneratedPair:
    """One generated pair.

    Attributes:
        image: ``(H, W)`` float32 image in ``[0, 1]``.
        label: ``(H, W)`` long label map that conditioned it.
        context: the tabular context it was conditioned on.
        spacing_mm: ``(row, column)`` pixel spacing in mm, when known.
        record: the provenance record that reproduces it.
    """

    image: torch.Tensor
    label: torch.Tensor
    context: dict[str, Any]
    spacing_mm: tuple[float, float] | None
    record: dict[str, Any]


@dataclass
class GenerationSummary:
    """What :py:meth:`PairGenerator.run` wrote."""

    output_dir: Path
    num_pairs: int
    output_format: str
    seconds: float
    datalist: Path
    manifest: Path
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        rate = self.num_pairs / self.seconds if self.seconds > 0 else float("inf")
        skipped = f"; skipped {len(self.skipped)} mask file(s)" if self.skipped else ""
        return (
            f"wrote {self.num_pairs} {self.output_format} pairs and {self.datalist.name} to {self.output_dir} in "
            f"{self.seconds:.1f} s ({rate:.2f} pairs/s){skipped}"
        )


class PairGenerator:
    """Generates (image, label map) pairs: mask source -> context source -> latent sampler -> writer.

    Args:
        sampler: a :py:class:`LatentSampler` whose denoiser is the translator
            (:py:class:`usgen_monai.networks.LatentTranslator`), whose decoder is the stage-1 ``AutoencoderKL`` (its
            encoder also encodes the context images), with ``DualGuidance`` or no guidance. Its schedule, steps and
            guidance are the defaults of new samples; a record's own settings are used to regenerate it.
        mask_source: :py:class:`LearnedMaskSource`, :py:class:`ProceduralMaskSource` or :py:class:`FileMaskSource`.
        context_source: :py:class:`BankContextSource` or :py:class:`FileContextSource`.
        constants: the translator checkpoint's constants (``class_names``, ``context_vocabulary``, ``image_size``,
            ``latent_shape``, ``latent_scale_factor``).
        writer: a :py:class:`PairWriter` (needed by :py:meth:`run`).
        autoencoder_constants: the autoencoder checkpoint's constants, checked against ``constants``.
        preset: the preset of every sample; ``""`` cycles through the presets that have ``finding``.
        finding: the finding of every sample; ``""`` lets the mask source draw or infer it.
        context_overrides: tabular values that override every source (``probe``, ``depth_mm``, ``frequency_mhz``,
            ``gain_db``, ``dynamic_range_db``); ``None`` values are ignored.
        checkpoints: ``{name: path}`` of the model files whose SHA-256 goes into the provenance.
        bundle_version: the bundle version for the provenance.
        sampler_name: ``"ddim"`` or ``"few_step"``, recorded with the schedule and steps.
        progress: show a tqdm bar over the samples.

    Example::

        generator = PairGenerator(sampler, ProceduralMaskSource((128, 128)), FileContextSource("ref.png", (128, 128)),
                                  constants=load_checkpoint("models/model.pt", {"translator": translator}),
                                  writer=PairWriter("out", "nifti"), preset="msk", finding="tendon_tear")
        summary = generator.run(num_samples=8, seed=0)
        item = json.load(open("out/datalist.json"))["training"][3]
        pair = generator.regenerate(item)  # bit-for-bit the pair written as item 3
    """

    def __init__(
        self,
        sampler: LatentSampler,
        mask_source: Any,
        context_source: Any,
        constants: Mapping[str, Any],
        writer: PairWriter | None = None,
        autoencoder_constants: Mapping[str, Any] | None = None,
        preset: str | None = "",
        finding: str | None = "",
        context_overrides: Mapping[str, Any] | None = None,
        checkpoints: Mapping[str, str | os.PathLike] | None = None,
        bundle_version: str = "",
        sampler_name: str = "ddim",
        progress: bool = True,
    ) -> None:
        missing = [
            k
            for k in ("class_names", "context_vocabulary", "image_size", "latent_shape", "latent_scale_factor")
            if k not in constants
        ]
        if missing:
            raise ValueError(f"the translator's checkpoint constants lack {missing}; got {sorted(constants)}.")
        decoder = getattr(sampler, "decoder", None)
        if decoder is None or not hasattr(decoder, "encode"):
            raise ValueError("sampler must have an AutoencoderKL decoder (it also encodes the context images).")
        if sampler.guidance is not None and not isinstance(sampler.guidance, DualGuidance):
            raise ValueError(f"sampler guidance must be DualGuidance or None, got {type(sampler.guidance).__name__}.")
        self.sampler = sampler
        self.translator = sampler.denoiser
        self.autoencoder = decoder
        self.class_names = tuple(constants["class_names"])
        self.vocabulary = ContextVocabulary.from_dict(constants["context_vocabulary"])
        self.image_size = _size2(constants["image_size"])
        self.latent_shape = tuple(int(s) for s in constants["latent_shape"])
        self.scale_factor = float(constants["latent_scale_factor"])
        if sampler.latent_shape is not None and tuple(sampler.latent_shape) != self.latent_shape:
            raise ValueError(
                f"sampler latent_shape {sampler.latent_shape} differs from the checkpoint's {list(self.latent_shape)}."
            )
        if abs(sampler.scale_factor - self.scale_factor) > 1e-12:
            raise ValueError(
                f"sampler scale_factor {sampler.scale_factor} differs from the checkpoint's {self.scale_factor}."
            )
        if autoencoder_constants is not None:
            ae_scale = autoencoder_constants.get("latent_scale_factor")
            if ae_scale is not None and abs(float(ae_scale) - self.scale_factor) > 1e-6 * max(1.0, abs(ae_scale)):
                raise ValueError(
                    f"the autoencoder's latent_scale_factor {ae_scale} differs from the {self.scale_factor} the "
                    "translator was trained with; the two checkpoints do not belong together."
                )
            ae_size = autoencoder_constants.get("image_size")
            if ae_size is not None and _size2(ae_size) != self.image_size:
                raise ValueError(
                    f"the autoencoder was trained at image_size {list(ae_size)}, the translator at "
                    f"{list(self.image_size)}."
                )
        for name, source in (("mask_source", mask_source), ("context_source", context_source)):
            size = getattr(source, "image_size", None)
            if size is not None and _size2(size) != self.image_size:
                raise ValueError(
                    f"{name} image_size {list(size)} differs from the translator's {list(self.image_size)}."
                )
        source_classes = tuple(getattr(mask_source, "class_names", self.class_names))
        if source_classes != self.class_names:
            raise ValueError(
                f"the mask source's label classes {list(source_classes)} differ from the translator's "
                f"{list(self.class_names)}."
            )
        self.mask_source = mask_source
        self.context_source = context_source
        self.writer = writer
        known = self.vocabulary.categorical.get("preset", PRESETS)
        self.presets = resolve_presets(preset, finding, known)
        self.finding = finding or None
        overrides = {k: v for k, v in (context_overrides or {}).items() if v is not None}
        unknown = sorted(set(overrides) - set(_OVERRIDE_FIELDS))
        if unknown:
            raise ValueError(f"context_overrides {unknown} are not overridable; fields are {list(_OVERRIDE_FIELDS)}.")
        for name in _APPEARANCE_FIELDS + ("depth_mm",):
            value = overrides.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"context override {name} must be a number, got {name}={value!r}.")
        self.vocabulary.encode([overrides])  # unknown categorical values raise here, naming the field
        self.context_overrides = overrides
        self.checkpoint_paths = {str(k): Path(v) for k, v in (checkpoints or {}).items()}
        self.checkpoints = {k: file_sha256(p) for k, p in self.checkpoint_paths.items()}
        self.bundle_version = str(bundle_version)
        self.sampler_name = _check_sampler(sampler_name)
        self.progress = progress
        self.translator.eval()
        self.autoencoder.eval()

    # -- records
    def _guidance_record(self) -> dict[str, Any] | None:
        g = self.sampler.guidance
        if g is None:
            return None
        return {"semantic_scale": g.semantic_scale, "context_scale": g.context_scale, "start": g.start, "stop": g.stop}

    def plan(self, index: int, seed: int) -> dict[str, Any]:
        """The provenance record of sample ``index`` of a run with ``seed``: everything :py:meth:`generate` needs."""
        if int(index) != index or index < 0:
            raise ValueError(f"index must be a non-negative integer, got index={index!r}.")
        s, seeds = _derived_seeds(seed, index)
        mask_request = self.mask_source.plan(index, seeds["mask"], self.presets, self.finding)
        context_request = self.context_source.plan(index, seeds["context"], mask_request["preset"])
        return _json_safe(
            {
                "generator": f"{type(self).__module__}.{type(self).__name__}",
                "bundle_version": self.bundle_version,
                "usgen_monai_version": usgen_monai.__version__,
                "checkpoints": {**self.checkpoints, **getattr(self.mask_source, "checkpoints", {})},
                "seed": int(seed),
                "index": int(index),
                "sample_seed": s,
                "seeds": seeds,
                "image_size": list(self.image_size),
                "sampler": {
                    "name": self.sampler_name,
                    "num_inference_steps": self.sampler.num_inference_steps,
                    "schedule": self.sampler.scheduler.config(),
                },
                "guidance": self._guidance_record(),
                "mask_source": mask_request,
                "context_image": context_request,
                "context_overrides": dict(self.context_overrides),
            }
        )

    def _check_record(self, record: Mapping[str, Any]) -> None:
        missing = [
            k
            for k in ("checkpoints", "seeds", "image_size", "sampler", "guidance", "mask_source", "context_image")
            if k not in record
        ]
        if missing:
            raise ValueError(f"provenance record lacks {missing}; is it a record of {type(self).__name__}?")
        for name, digest in record["checkpoints"].items():
            if name in self.checkpoints and self.checkpoints[name] != digest:
                raise ValueError(
                    f"the record was made with {name} of SHA-256 {digest}, but {self.checkpoint_paths[name]} has "
                    f"{self.checkpoints[name]}; the pair cannot be reproduced with these weights."
                )
        if _size2(record["image_size"]) != self.image_size:
            raise ValueError(
                f"the record is at image_size {record['image_size']}, this model at {list(self.image_size)}."
            )

    # -- generation
    @torch.no_grad()
    def generate(self, record: Mapping[str, Any]) -> GeneratedPair:
        """Generate the pair a provenance record describes (from :py:meth:`plan`, or read back from a datalist)."""
        record = dict(record.get("provenance", record))
        self._check_record(record)
        device = _module_device(self.translator)
        mask = self.mask_source.draw(record["mask_source"])
        context_image = self.context_source.draw(record["context_image"])
        context = merge_context(mask.context, context_image.context, record.get("context_overrides"))
        spacing = mask.spacing_mm if mask.spacing_mm is not None else context_image.spacing_mm

        categorical, scalars = self.vocabulary.encode([context], device=device)
        image_latents = None
        if context_image.image is not None:
            image_latents = encode_latents(self.autoencoder, context_image.image[None].to(device), self.scale_factor)
        tokens = self.translator.encode_context(categorical, scalars, image_latents)
        semantic = label_to_onehot(mask.label[None, None].to(device), len(self.class_names))
        conditions = {"semantic": semantic, "context": tokens}
        g = record["guidance"]
        guidance = None if g is None else DualGuidance(g["semantic_scale"], g["context_scale"], g["start"], g["stop"])
        sampler = LatentSampler(
            build_schedule(record["sampler"]["schedule"]),
            self.translator,
            guidance,
            decoder=self.autoencoder,
            scale_factor=self.scale_factor,
            latent_shape=self.latent_shape,
            num_inference_steps=int(record["sampler"]["num_inference_steps"]),
        )
        generator = torch.Generator().manual_seed(int(record["seeds"]["noise"]))
        noise = torch.randn((1, *self.latent_shape), generator=generator).to(device)
        out = sampler(conditions=conditions, null_conditions=self.translator.null_conditions(conditions), noise=noise)
        image = out.images[0, 0].float().cpu()
        if tuple(image.shape) != self.image_size:
            raise ValueError(f"the decoder made images of {tuple(image.shape)}, expected {self.image_size}.")
        return GeneratedPair(image, mask.label.long().cpu(), _json_safe(context), spacing, record)

    def regenerate(self, record: Mapping[str, Any]) -> GeneratedPair:
        """Reproduce a pair from its provenance record (or its datalist item): the same image, bit for bit, given the
        same checkpoints (checked by SHA-256), mask files and context files, software and hardware."""
        return self.generate(record)

    def run(self, num_samples: int, seed: int = 0) -> GenerationSummary:
        """Generate and write ``num_samples`` pairs, then the datalist and the manifest; logs a summary (with the mask
        files that were skipped) and returns it."""
        from tqdm.auto import tqdm

        if int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got num_samples={num_samples!r}.")
        sample_seed(seed, 0)  # validates the seed
        if self.writer is None:
            raise ValueError("run() writes pairs and needs a writer (PairWriter).")
        out = self.writer.output_dir
        if (out / "datalist.json").exists():
            logger.warning(f"{out} holds an earlier run's datalist.json; files of the same names are replaced.")
        start = time.perf_counter()
        items = []
        for index in tqdm(range(int(num_samples)), desc="CSG pairs", unit="pair", disable=not self.progress):
            pair = self.generate(self.plan(index, seed))
            paths = self.writer.write(index, pair.image, pair.label, pair.spacing_mm, pair.record)
            items.append({**paths, "context": pair.context, "provenance": pair.record})
        seconds = time.perf_counter() - start
        skipped = list(getattr(self.mask_source, "skipped", []))
        datalist, manifest = self.writer.finalize(
            items,
            {
                "generator": f"{type(self).__module__}.{type(self).__name__}",
                "bundle_version": self.bundle_version,
                "usgen_monai_version": usgen_monai.__version__,
                "num": len(items),
                "seed": int(seed),
                "image_size": list(self.image_size),
                "checkpoints": {**self.checkpoints, **getattr(self.mask_source, "checkpoints", {})},
                "mask_source": getattr(self.mask_source, "type", type(self.mask_source).__name__),
                "context_source": getattr(self.context_source, "type", type(self.context_source).__name__),
                "skipped_masks": [{"file": f, "reason": r} for f, r in skipped],
                "seconds": round(seconds, 3),
            },
        )
        summary = GenerationSummary(out, len(items), self.writer.output_format, seconds, datalist, manifest, skipped)
        logger.info(summary.line())
        for path, reason in skipped:
            logger.warning(f"skipped mask file {path}: {reason}")
        return summary
