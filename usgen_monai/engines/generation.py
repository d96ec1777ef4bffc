"""Generation of synthetic (image, label map) pairs: the inference pipeline of the CSG bundle.

One pair is made in four steps by composed objects, each replaceable on its own::

    label map    <- mask source      (learned prior | procedural simulator geometry | the user's mask files)
                                     :py:mod:`usgen_monai.engines.mask_sources`
    context      <- context source   (an image from a style bank of simulated or of the user's images | the user's
                                      context image | none)  :py:mod:`usgen_monai.engines.context_sources`
                    + tabular context (preset, finding, probe, depth, frequency, gain, dynamic range),
                                      merged by :py:func:`usgen_monai.engines.context.merge_context`
    image        <- LatentSampler    (ControlNet translator, two guidance scales, DDIM or few-step DDIM, decoder)
    files        <- PairWriter       (PNG | NIfTI | DICOM + DICOM SEG, datalist.json, dataset.json)
                                     :py:mod:`usgen_monai.data.pair_writer`

:py:class:`PairGenerator` first *plans* a sample: a JSON record that fixes everything the sample depends on (seeds,
the mask request, the context image request, sampler, steps, guidance scales, checkpoint hashes;
:py:mod:`usgen_monai.engines.provenance`), and then *generates* the pair from that record alone.
:py:meth:`PairGenerator.run` and :py:meth:`PairGenerator.regenerate` share that second step, so the provenance record
written with a pair reproduces it exactly (same software and hardware), in this process or another.

Every draw uses its own ``torch.Generator`` or ``numpy.random.Generator`` seeded from the record; nothing reads
global random state. Samples are generated one at a time (the guided condition sets of one sample are batched): on
CPU a larger batch is not faster per sample, and one-sample batches keep a pair independent of what else was
generated with it.

Regenerating a pair of a bundle run (build the generator with the run's mask source and context source)::

    item = json.load(open("OUT/datalist.json"))["training"][5]
    parser = ConfigParser()
    parser.read_config(["bundles/csg/configs/common.json", "bundles/csg/configs/inference.json"])
    parser.update({"mask_source": item["provenance"]["mask_source"]["type"]})  # + "masks" / "context_image" if used
    generator = parser.get_parsed_content("generator")
    pair = generator.regenerate(item)  # pair.image, pair.label: bit for bit the files of item 5
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

import usgen_monai
from usgen_monai.data.context_fields import APPEARANCE_CONTEXT_FIELDS, OVERRIDABLE_CONTEXT_FIELDS
from usgen_monai.data.simulator import PRESET_FINDINGS, PRESETS, sample_seed
from usgen_monai.data.pair_writer import PairWriter
from usgen_monai.engines.context import ContextVocabulary, merge_context
from usgen_monai.engines.context_sources import ContextSource, NoContextImageSource
from usgen_monai.engines.guidance import DualGuidance
from usgen_monai.engines.mask_sources import MaskSource
from usgen_monai.engines.prepare_batch import encode_latents, label_to_onehot
from usgen_monai.engines.provenance import check_sampler, derived_seeds, file_sha256
from usgen_monai.engines.sampler import LatentSampler
from usgen_monai.engines.schedulers import build_schedule
from usgen_monai.utils import as_flag, json_safe, module_device, size_2d, write_json_atomic

__all__ = ["ITEMS_DIR", "GeneratedPair", "GenerationSummary", "PairGenerator", "resolve_presets"]

logger = logging.getLogger(__name__)

#: folder (in the output folder) of the datalist items of finished pairs, what a resumed or sharded run reads back
ITEMS_DIR = "items"
# ``plan``'s presets/finding default: the run's own
_RUN = object()


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
    """What :py:meth:`PairGenerator.run` wrote (in this process: ``num_pairs`` generated now, ``num_resumed`` kept from
    an earlier run)."""

    output_dir: Path
    num_pairs: int
    output_format: str
    seconds: float
    datalist: Path
    manifest: Path
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_context: list[tuple[str, str]] = field(default_factory=list)
    num_resumed: int = 0

    def line(self) -> str:
        rate = self.num_pairs / self.seconds if self.seconds > 0 else float("inf")
        skipped = f"; kept {self.num_resumed} pair(s) an earlier run wrote" if self.num_resumed else ""
        skipped += f"; skipped {len(self.skipped)} mask file(s)" if self.skipped else ""
        if self.skipped_context:
            skipped += f"; skipped {len(self.skipped_context)} context image(s)"
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
        refiner: a :py:class:`usgen_monai.networks.SpeckleRefiner` applied to every decoded image (weights loaded),
            with its own noise seed recorded in the provenance; ``None`` keeps the decoder's images. A record made
            without a refiner is regenerated without one, so older records stay reproducible.
        refine_speckle: apply ``refiner`` to new samples; ``False`` generates the decoder's images (records made
            with the refiner still regenerate with it).
        image_size: ``(H, W)`` of the pairs; ``None`` = the size the translator was trained at (``constants``). The
            networks are convolutional, so another size divisible by the autoencoder's downsampling works (e.g. 128
            with weights fine-tuned at 256); the latent grid scales with it.

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
        mask_source: MaskSource,
        context_source: ContextSource,
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
        refiner: nn.Module | None = None,
        refine_speckle: bool = True,
        image_size: Sequence[int] | None = None,
    ) -> None:
        missing = [
            k
            for k in ("class_names", "context_vocabulary", "image_size", "latent_shape", "latent_scale_factor")
            if k not in constants
        ]
        if missing:
            raise ValueError(f"the translator's checkpoint constants lack {missing}; got {sorted(constants)}.")
        if not isinstance(sampler, LatentSampler):
            raise ValueError(
                f"sampler must be a LatentSampler, got {type(sampler).__name__} ({sampler!r}); in the CSG bundle "
                "the id "
                "'sampler' is the LatentSampler: choose DDIM or few-step sampling with --sampling ddim|few_step."
            )
        decoder = sampler.decoder
        if decoder is None or not hasattr(decoder, "encode"):
            raise ValueError("sampler must have an AutoencoderKL decoder (it also encodes the context images).")
        if sampler.guidance is not None and not isinstance(sampler.guidance, DualGuidance):
            raise ValueError(f"sampler guidance must be DualGuidance or None, got {type(sampler.guidance).__name__}.")
        self.sampler = sampler
        self.translator = sampler.denoiser
        self.autoencoder = decoder
        self.class_names = tuple(constants["class_names"])
        self.vocabulary = ContextVocabulary.from_dict(constants["context_vocabulary"])
        trained_size = size_2d(constants["image_size"])
        trained_latent = tuple(int(s) for s in constants["latent_shape"])
        factor = trained_size[0] // trained_latent[1]
        self.image_size = trained_size if image_size is None else size_2d(image_size)
        if any(s % factor for s in self.image_size):
            raise ValueError(
                f"image_size {list(self.image_size)} must be divisible by {factor}, the autoencoder's downsampling."
            )
        self.latent_shape = (trained_latent[0], *(s // factor for s in self.image_size))
        self.scale_factor = float(constants["latent_scale_factor"])
        if sampler.latent_shape is not None and tuple(sampler.latent_shape) != self.latent_shape:
            raise ValueError(
                f"sampler latent_shape {list(sampler.latent_shape)} does not fit image_size {list(self.image_size)} "
                f"(latent {list(self.latent_shape)} with the checkpoint's {trained_latent[0]} channels and "
                f"{factor}x downsampling)."
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
        if not isinstance(mask_source, MaskSource):
            raise ValueError(f"mask_source must be a MaskSource, got {type(mask_source).__name__}.")
        if not isinstance(context_source, ContextSource):
            raise ValueError(f"context_source must be a ContextSource, got {type(context_source).__name__}.")
        for name, size in (("mask_source", mask_source.image_size), ("context_source", context_source.image_size)):
            if size is not None and size_2d(size) != self.image_size:
                raise ValueError(
                    f"{name} image_size {list(size)} differs from the translator's {list(self.image_size)}."
                )
        source_classes = tuple(mask_source.class_names)
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
        unknown = sorted(set(overrides) - set(OVERRIDABLE_CONTEXT_FIELDS))
        if unknown:
            raise ValueError(
                f"context_overrides {unknown} are not overridable; fields are {list(OVERRIDABLE_CONTEXT_FIELDS)}."
            )
        for name in APPEARANCE_CONTEXT_FIELDS + ("depth_mm",):
            value = overrides.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"context override {name} must be a number, got {name}={value!r}.")
        self.vocabulary.encode([overrides])  # unknown categorical values raise here, naming the field
        self.context_overrides = overrides
        self.checkpoint_paths = {str(k): Path(v) for k, v in (checkpoints or {}).items()}
        self.checkpoints = {k: file_sha256(p) for k, p in self.checkpoint_paths.items()}
        self.bundle_version = str(bundle_version)
        self.sampler_name = check_sampler(sampler_name)
        self.progress = as_flag(progress)
        self.refiner = None if refiner is None else refiner.eval()
        self.refine_speckle = as_flag(refine_speckle) and refiner is not None
        self.translator.eval()
        self.autoencoder.eval()
        self._no_context_image = NoContextImageSource()
        # samplers by their recorded settings: the configured one, and one per other setting a record asks for
        self._samplers = {self._sampler_key(self._sampler_record(), self._guidance_record()): sampler}

    # -- records
    def _sampler_record(self) -> dict[str, Any]:
        return {
            "name": self.sampler_name,
            "num_inference_steps": self.sampler.num_inference_steps,
            "schedule": self.sampler.scheduler.config(),
        }

    def _guidance_record(self) -> dict[str, Any] | None:
        g = self.sampler.guidance
        if g is None:
            return None
        return {"semantic_scale": g.semantic_scale, "context_scale": g.context_scale, "start": g.start, "stop": g.stop}

    @staticmethod
    def _sampler_key(sampler: Mapping[str, Any], guidance: Mapping[str, Any] | None) -> str:
        return json.dumps([sampler["num_inference_steps"], sampler["schedule"], guidance], sort_keys=True)

    def _sampler_for(self, record: Mapping[str, Any]) -> LatentSampler:
        """The sampler of a record's settings: the configured one, or (a record made with other settings) one built
        from the same translator and decoder on first use and kept."""
        key = self._sampler_key(record["sampler"], record["guidance"])
        if key not in self._samplers:
            g = record["guidance"]
            self._samplers[key] = LatentSampler(
                build_schedule(record["sampler"]["schedule"]),
                self.translator,
                None if g is None else DualGuidance(g["semantic_scale"], g["context_scale"], g["start"], g["stop"]),
                decoder=self.autoencoder,
                scale_factor=self.scale_factor,
                latent_shape=self.latent_shape,
                num_inference_steps=int(record["sampler"]["num_inference_steps"]),
            )
        return self._samplers[key]

    def _context_source_for(self, request: Mapping[str, Any]) -> ContextSource:
        """The source that draws a context request: the configured one, or no image for a ``"none"`` request."""
        kind = request.get("type")
        if kind == self.context_source.type:
            return self.context_source
        if kind == NoContextImageSource.type:
            return self._no_context_image
        raise ValueError(
            f"the record's context image is a {kind!r} request, but this generator's context source is "
            f"{self.context_source.type!r}; build the generator with the source the record was made with."
        )

    @property
    def checkpoint_hashes(self) -> dict[str, str]:
        """``{file name: SHA-256}`` of every model file a pair depends on (translator, autoencoder, mask prior)."""
        return {**self.checkpoints, **self.mask_source.checkpoints}

    def plan(
        self,
        index: int,
        seed: int,
        presets: Sequence[str] | Any = _RUN,
        finding: str | None | Any = _RUN,
        context_source: ContextSource | None = None,
    ) -> dict[str, Any]:
        """The provenance record of sample ``index`` of a run with ``seed``: everything :py:meth:`generate` needs.

        Args:
            index: the sample's index in the run.
            seed: the run's seed.
            presets: presets the sample cycles through; default: the run's (``preset`` / ``finding`` of the
                constructor).
            finding: the sample's finding, ``None`` to let the mask source draw it; default: the run's.
            context_source: plan the context image with this source instead of the configured one (e.g.
                :py:class:`NoContextImageSource` to measure the tabular context alone); :py:meth:`generate` draws
                its request with the same source.
        """
        if int(index) != index or index < 0:
            raise ValueError(f"index must be a non-negative integer, got index={index!r}.")
        finding = self.finding if finding is _RUN else finding
        if presets is _RUN:
            presets = self.presets
        else:
            known = self.vocabulary.categorical.get("preset", PRESETS)
            presets = tuple(p for name in presets for p in resolve_presets(name, finding, known))
        context_source = self.context_source if context_source is None else context_source
        s, seeds = derived_seeds(seed, index)
        if self.refine_speckle:
            seeds["refiner"] = sample_seed(s, 3)
        mask_request = self.mask_source.plan(index, seeds["mask"], presets, finding)
        context_request = context_source.plan(index, seeds["context"], mask_request["preset"])
        return json_safe(
            {
                "generator": f"{type(self).__module__}.{type(self).__name__}",
                "bundle_version": self.bundle_version,
                "usgen_monai_version": usgen_monai.__version__,
                "checkpoints": self.checkpoint_hashes,
                "seed": int(seed),
                "index": int(index),
                "sample_seed": s,
                "seeds": seeds,
                "image_size": list(self.image_size),
                "sampler": self._sampler_record(),
                "guidance": self._guidance_record(),
                "mask_source": mask_request,
                "context_image": context_request,
                "context_overrides": dict(self.context_overrides),
                **({"refiner": {"noise_channels": self.refiner.noise_channels}} if self.refine_speckle else {}),
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
        if size_2d(record["image_size"]) != self.image_size:
            raise ValueError(
                f"the record is at image_size {record['image_size']}, this model at {list(self.image_size)}."
            )

    # -- generation
    @torch.no_grad()
    def generate(self, record: Mapping[str, Any], context_source: ContextSource | None = None) -> GeneratedPair:
        """Generate the pair a provenance record describes (from :py:meth:`plan`, or read back from a datalist).

        Args:
            record: the provenance record, or a datalist item holding it under ``provenance``.
            context_source: the source that draws the record's context request; default: the configured one, or no
                context image for a ``{"type": "none"}`` request.
        """
        record = dict(record.get("provenance", record))
        self._check_record(record)
        device = module_device(self.translator)
        mask = self.mask_source.draw(record["mask_source"])
        source = self._context_source_for(record["context_image"]) if context_source is None else context_source
        context_image = source.draw(record["context_image"])
        context = merge_context(mask.context, context_image.context, record.get("context_overrides"))
        spacing = mask.spacing_mm if mask.spacing_mm is not None else context_image.spacing_mm

        categorical, scalars = self.vocabulary.encode([context], device=device)
        image_latents = None
        if context_image.image is not None:
            image_latents = encode_latents(self.autoencoder, context_image.image[None].to(device), self.scale_factor)
        tokens = self.translator.encode_context(categorical, scalars, image_latents)
        semantic = label_to_onehot(mask.label[None, None].to(device), len(self.class_names))
        conditions = {"semantic": semantic, "context": tokens}
        sampler = self._sampler_for(record)
        generator = torch.Generator().manual_seed(int(record["seeds"]["noise"]))
        noise = torch.randn((1, *self.latent_shape), generator=generator).to(device)
        out = sampler(conditions=conditions, null_conditions=self.translator.null_conditions(conditions), noise=noise)
        images = out.images
        if record.get("refiner") is not None:
            images = self._refine(images, record)
        image = images[0, 0].float().cpu()
        if tuple(image.shape) != self.image_size:
            raise ValueError(f"the decoder made images of {tuple(image.shape)}, expected {self.image_size}.")
        return GeneratedPair(image, mask.label.long().cpu(), json_safe(context), spacing, record)

    def _refine(self, images: torch.Tensor, record: Mapping[str, Any]) -> torch.Tensor:
        if self.refiner is None:
            raise ValueError(
                "the record was made with a speckle refiner; build the generator with it (refiner=...) to regenerate "
                "it."
            )
        generator = torch.Generator().manual_seed(int(record["seeds"]["refiner"]))
        noise = torch.randn(self.refiner.noise_shape(images), generator=generator).to(images.device)
        return self.refiner(images.to(memory_format=torch.contiguous_format), noise)

    def regenerate(self, record: Mapping[str, Any]) -> GeneratedPair:
        """Reproduce a pair from its provenance record (or its datalist item): the same image, bit for bit, given the
        same checkpoints (checked by SHA-256), mask files and context files, software and hardware."""
        return self.generate(record)

    def item_path(self, index: int) -> Path:
        """Where pair ``index``'s datalist item is kept until the datalist is written: ``items/<stem>.json`` in the
        output folder, written (atomically) after the pair's files, so its presence means the pair is complete."""
        if self.writer is None:
            raise ValueError("pairs are written by a writer (PairWriter); this generator has none.")
        return self.writer.output_dir / ITEMS_DIR / f"{self.writer.stem(index)}.json"

    def _finished_item(self, index: int, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """The kept item of pair ``index`` when an earlier run wrote it completely with the same record, else None."""
        path = self.item_path(index)
        if not path.is_file():
            return None
        try:
            item = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if item.get("provenance") != record:
            logger.warning(f"{path} was written with other settings; pair {index} is generated again.")
            return None
        files = [item.get(k) for k in ("image", "label", "label_seg") if item.get(k)]
        if not all((self.writer.output_dir / f).is_file() for f in files):
            return None
        return item

    def run(self, num_samples: int, seed: int = 0) -> GenerationSummary:
        """Generate and write ``num_samples`` pairs, then the datalist and the manifest; logs a summary (with the
        inputs that were skipped) and returns it.

        Resumable and shardable: each pair is written with its datalist item (:py:meth:`item_path`), and a pair whose
        item an earlier run into the same ``output_dir`` wrote with the same provenance record is kept, not generated
        again, so a killed run continues where it stopped. Under ``torch.distributed`` (e.g. ``torchrun`` with
        ``multi_gpu_inference.json``) rank ``r`` of ``N`` generates the pairs ``r, r + N, ...``; each pair's seeds
        come from its index, so ``N`` processes write exactly the pairs one process would, and rank 0 writes the
        datalist and the manifest once every rank is done.
        """
        from tqdm.auto import tqdm

        if int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got num_samples={num_samples!r}.")
        sample_seed(seed, 0)  # validates the seed
        if self.writer is None:
            raise ValueError("run() writes pairs and needs a writer (PairWriter).")
        rank, world_size = _distributed_rank()
        out = self.writer.output_dir
        if rank == 0 and (out / "datalist.json").exists():
            logger.warning(
                f"{out} holds an earlier run's datalist.json; pairs written with the same settings are kept."
            )
        start = time.perf_counter()
        items: dict[int, dict[str, Any]] = {}
        resumed = 0
        indices = range(rank, int(num_samples), world_size)
        for index in tqdm(indices, desc="CSG pairs", unit="pair", disable=not self.progress or rank != 0):
            record = self.plan(index, seed)
            item = self._finished_item(index, record)
            if item is not None:
                resumed += 1
            else:
                pair = self.generate(record)
                paths = self.writer.write(index, pair.image, pair.label, pair.spacing_mm, pair.record)
                item = {**paths, "context": pair.context, "provenance": pair.record}
                write_json_atomic(self.item_path(index), item)
            items[index] = item
        seconds = time.perf_counter() - start
        skipped = list(self.mask_source.skipped)
        skipped_context = list(self.context_source.skipped)
        if world_size > 1:
            import torch.distributed as dist

            dist.barrier()
            if rank == 0:
                for index in range(int(num_samples)):
                    if index not in items:
                        items[index] = json.loads(self.item_path(index).read_text(encoding="utf-8"))
        datalist, manifest = out / "datalist.json", out / "dataset.json"
        if rank == 0:
            datalist, manifest = self.writer.finalize(
                [items[i] for i in range(int(num_samples))],
                {
                    "generator": f"{type(self).__module__}.{type(self).__name__}",
                    "bundle_version": self.bundle_version,
                    "usgen_monai_version": usgen_monai.__version__,
                    "num": int(num_samples),
                    "seed": int(seed),
                    "image_size": list(self.image_size),
                    "checkpoints": self.checkpoint_hashes,
                    "mask_source": self.mask_source.type,
                    "context_source": self.context_source.type,
                    "skipped_masks": [{"file": f, "reason": r} for f, r in skipped],
                    "skipped_context_images": [{"file": f, "reason": r} for f, r in skipped_context],
                    "seconds": round(seconds, 3),
                },
            )
        if world_size > 1:
            dist.barrier()  # every rank returns once the datalist exists
        summary = GenerationSummary(
            out, len(indices) - resumed, self.writer.output_format, seconds, datalist, manifest, skipped,
            skipped_context, resumed,
        )  # fmt: skip
        logger.info(summary.line() + (f" (rank {rank} of {world_size})" if world_size > 1 else ""))
        for path, reason in skipped:
            logger.warning(f"skipped mask file {path}: {reason}")
        for path, reason in skipped_context:
            logger.warning(f"skipped context image {path}: {reason}")
        return summary


def _distributed_rank() -> tuple[int, int]:
    """``(rank, world size)`` of this process under ``torch.distributed``, ``(0, 1)`` without it."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
