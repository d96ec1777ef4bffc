"""Pair generation (usgen_monai.engines.generation) on tiny networks: 32x32 images, 16x16 latents, 2 sampling steps."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from tests.engines.csg_data import tiny_autoencoder, tiny_mask_prior, tiny_translator
from usgen_monai.data.datasets import load_json_datalist
from usgen_monai.data.simulator import PRESET_FINDINGS, PRESETS, UNIFIED_CLASSES, UltrasoundSimulator
from usgen_monai.engines import (
    BankContextSource,
    DDIMSchedule,
    DualGuidance,
    FileContextSource,
    FileMaskSource,
    LatentSampler,
    LearnedMaskSource,
    NoContextImageSource,
    PairGenerator,
    ProceduralMaskSource,
    RFlowSchedule,
    file_sha256,
    load_checkpoint,
    merge_context,
    resolve_presets,
    sampling_constants,
    sampling_schedule,
    sampling_steps,
    save_checkpoint,
    select_context_source,
    select_mask_source,
    simulator_vocabulary,
)
from usgen_monai.data.pair_writer import PairWriter
from usgen_monai.networks import SpeckleRefiner

SIZE = (32, 32)
VOCAB = simulator_vocabulary()
FIELDS = ("preset", "finding")
SCALE = 0.9
K = len(UNIFIED_CLASSES)


def _randomize_zero_init(net: torch.nn.Module, seed: int = 1) -> None:
    # MONAI zero-initialises output and ControlNet convolutions; give them weights so that conditions matter
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """Tiny random checkpoints with the constants the training configs store."""
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    autoencoder, translator, prior = (
        tiny_autoencoder(),
        tiny_translator(),
        tiny_mask_prior(VOCAB.num_class_labels(FIELDS)),
    )
    _randomize_zero_init(translator)
    _randomize_zero_init(prior, seed=2)
    save_checkpoint(
        d / "autoencoder.pt", {"autoencoder": autoencoder}, {"latent_scale_factor": SCALE, "image_size": SIZE}
    )
    save_checkpoint(
        d / "model.pt",
        {"translator": translator},
        sampling_constants(
            SCALE, DDIMSchedule(prediction_type="v_prediction"), UNIFIED_CLASSES, VOCAB, SIZE, (3, 16, 16)
        ),
    )
    save_checkpoint(
        d / "mask_prior.pt",
        {"mask_prior": prior},
        sampling_constants(
            scheduler=DDIMSchedule(prediction_type="v_prediction", clip_sample=True),
            class_names=UNIFIED_CLASSES,
            context_vocabulary=VOCAB,
            image_size=(16, 16),
            condition_fields=FIELDS,
        ),
    )
    return d


def _networks(ckpt: Path):
    """Fresh networks with the saved weights (as another process would load them)."""
    autoencoder, translator = tiny_autoencoder(), tiny_translator()
    constants = load_checkpoint(ckpt / "model.pt", {"translator": translator})
    ae_constants = load_checkpoint(ckpt / "autoencoder.pt", {"autoencoder": autoencoder})
    return autoencoder, translator, constants, ae_constants


def _prior_source(ckpt: Path, steps: int = 2, guidance: float = 1.0, sampler: str = "ddim") -> LearnedMaskSource:
    net = tiny_mask_prior(VOCAB.num_class_labels(FIELDS))
    return LearnedMaskSource(net, ckpt / "mask_prior.pt", SIZE, sampler, steps, steps, guidance)


def _generator(
    ckpt: Path,
    out: Path | None = None,
    output_format: str = "png",
    mask: str = "procedural",
    masks: Path | None = None,
    context_image: Path | None = None,
    guidance: tuple[float, float] = (2.0, 1.5),
    sampler: str = "ddim",
    steps: int = 2,
    preset: str = "",
    finding: str = "",
    overrides: dict | None = None,
    refiner: torch.nn.Module | None = None,
    **mask_kwargs,
) -> PairGenerator:
    autoencoder, translator, constants, ae_constants = _networks(ckpt)
    if masks is not None:
        mask_source = FileMaskSource(masks, SIZE, preset=preset, finding=finding, **mask_kwargs)
    elif mask == "prior":
        mask_source = _prior_source(ckpt)
    else:
        mask_source = ProceduralMaskSource(SIZE, **mask_kwargs)
    if context_image is not None:
        context_source = FileContextSource(context_image, SIZE)
    else:
        context_source = BankContextSource(autoencoder, SIZE, bank_size=4)
    latent_sampler = LatentSampler(
        sampling_schedule(constants["scheduler"], sampler),
        translator,
        DualGuidance(*guidance),
        decoder=autoencoder,
        scale_factor=constants["latent_scale_factor"],
        latent_shape=constants["latent_shape"],
        num_inference_steps=sampling_steps(sampler, steps, steps),
    )
    return PairGenerator(
        latent_sampler,
        mask_source,
        context_source,
        constants,
        writer=None if out is None else PairWriter(out, output_format, model_version="9.9.9"),
        autoencoder_constants=ae_constants,
        preset=preset,
        finding=finding,
        context_overrides=overrides,
        checkpoints={"model.pt": ckpt / "model.pt", "autoencoder.pt": ckpt / "autoencoder.pt"},
        bundle_version="9.9.9",
        sampler_name=sampler,
        progress=False,
        refiner=refiner,
    )


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _write_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(np.ascontiguousarray(array)).save(path)
    return path


def _msk_label(seed: int = 3, size=SIZE, finding: str = "tendon_tear") -> np.ndarray:
    sim = UltrasoundSimulator("msk", size=size)
    return sim.to_unified(sim.sample(seed=seed, finding=finding).label).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------- settings


def test_sampling_steps_and_schedules():
    assert sampling_steps("ddim", 50, 8) == 50
    assert sampling_steps("few_step", 50, 4) == 4
    for bad in ({"sampler": "euler"}, {"sampler": "few_step", "few_step_steps": 0}):
        with pytest.raises(ValueError, match="sampling|few_step_steps"):
            sampling_steps(**bad)
    linspace = DDIMSchedule(timestep_spacing="linspace").config()
    assert sampling_schedule(linspace, "ddim").config()["timestep_spacing"] == "linspace"
    few = sampling_schedule(linspace, "few_step")
    few.set_timesteps(4)
    assert few.timesteps.tolist() == [999, 749, 499, 249]  # trailing: starts from pure noise
    assert sampling_schedule(RFlowSchedule().config(), "few_step").config() == RFlowSchedule().config()
    with pytest.raises(ValueError, match="sampling"):
        sampling_schedule(linspace, "dpm")


def test_resolve_presets():
    assert resolve_presets("", "") == PRESETS
    assert resolve_presets("", "tendon_tear") == ("msk",)
    assert resolve_presets("breast", "malignant") == ("breast",)
    with pytest.raises(ValueError, match="not a finding of preset 'breast'"):
        resolve_presets("breast", "tendon_tear")
    with pytest.raises(ValueError, match="unknown preset 'liver'"):
        resolve_presets("liver", "")
    with pytest.raises(ValueError, match="not a finding of any preset"):
        resolve_presets("", "fracture")


def test_merge_context_precedence():
    mask = {"preset": "msk", "finding": None, "depth_mm": 30.0, "gain_db": 1.0}
    image = {"preset": "breast", "finding": "effusion", "depth_mm": 40.0, "probe": "linear", "gain_db": -2.0,
             "frequency_mhz": 10.0}  # fmt: skip
    ctx = merge_context(mask, image, {"gain_db": 6, "probe": None})
    assert ctx == {"preset": "msk", "depth_mm": 30.0, "probe": "linear", "frequency_mhz": 10.0, "gain_db": 6}


# ------------------------------------------------------------------------------------------------ mask sources


def test_procedural_source_is_the_simulators_label_map():
    source = ProceduralMaskSource(SIZE)
    request = source.plan(5, seed=11, presets=("breast", "msk"), finding="tendon_tear")
    assert request["preset"] == "msk"  # presets cycle with the index
    mask = source.draw(request)
    sim = UltrasoundSimulator("msk", size=SIZE)
    sample = sim.sample(seed=11, finding="tendon_tear")
    np.testing.assert_array_equal(mask.label.numpy(), sim.to_unified(sample.label))
    assert {k: mask.context[k] for k in ("preset", "finding", "probe", "depth_mm", "gain_db")} == {
        k: sample.context[k] for k in ("preset", "finding", "probe", "depth_mm", "gain_db")
    }
    assert UNIFIED_CLASSES.index("tear") in mask.label.unique().tolist()
    assert mask.spacing_mm == tuple(sample.context["pixel_spacing_mm"])


def test_procedural_source_controls_geometry():
    lesion = UNIFIED_CLASSES.index("lesion")

    def lesion_pixels(**controls):
        source = ProceduralMaskSource((64, 64), difficulty=0.0, **controls)
        return [int((source.draw(source.plan(0, s, ("breast",), "malignant")).label == lesion).sum()) for s in range(3)]

    assert lesion_pixels(count=0) == [0, 0, 0]
    small, large = lesion_pixels(size_mm=5.0), lesion_pixels(size_mm=20.0)
    assert all(0 < a < b for a, b in zip(small, large))
    with pytest.raises(ValueError, match="irregularity"):
        ProceduralMaskSource(SIZE, irregularity=2.0)


def test_learned_prior_conditions_on_preset_and_finding(ckpt):
    source = _prior_source(ckpt, guidance=2.0)
    seen = []
    source.network.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["class_labels"].clone()), with_kwargs=True)
    request = source.plan(0, seed=5, presets=("msk",), finding="tendon_tear")
    mask = source.draw(request)
    expected = VOCAB.class_labels([{"preset": "msk", "finding": "tendon_tear"}], FIELDS)
    assert len(seen) == 2 and all(torch.equal(y, torch.cat([torch.zeros_like(expected), expected])) for y in seen)
    assert tuple(mask.label.shape) == SIZE and mask.context == {"preset": "msk", "finding": "tendon_tear"}
    coarse = mask.label[::2, ::2]  # nearest upsampling of the 16x16 arg-max map
    assert torch.equal(mask.label, coarse.repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert torch.equal(source.draw(request).label, mask.label)
    assert not torch.equal(source.draw({**request, "seed": 6}).label, mask.label)
    findings = {source.plan(0, seed, ("msk",), None)["finding"] for seed in range(12)}
    assert findings == set(PRESET_FINDINGS["msk"])
    with pytest.raises(ValueError, match="SHA-256"):
        source.draw({**request, "checkpoint_sha256": "0" * 64})


def test_learned_prior_checks_its_checkpoint(tmp_path):
    net = tiny_mask_prior(VOCAB.num_class_labels(FIELDS))
    save_checkpoint(tmp_path / "prior.pt", {"mask_prior": net}, {"class_names": list(UNIFIED_CLASSES)})
    with pytest.raises(ValueError, match="lacks the constants"):
        LearnedMaskSource(net, tmp_path / "prior.pt", SIZE)


def test_file_masks_label_maps_and_binary_masks(tmp_path):
    label = _msk_label()
    _write_png(tmp_path / "a_map.png", label)  # written by PIL as (rows, cols)
    binary = np.zeros((48, 64), np.uint8)
    binary[10:20, 5:40] = 255  # another size: resized to 32x32
    _write_png(tmp_path / "b_binary.png", binary)
    source = FileMaskSource(tmp_path, SIZE, preset="msk", mask_class="tear")
    assert [m.path.name for m in source.masks] == ["a_map.png", "b_binary.png"] and source.skipped == []

    first = source.plan(0, seed=1)
    assert (first["rule"], first["preset"], first["finding"]) == ("labels", "msk", "tendon_tear")
    np.testing.assert_array_equal(source.draw(first).label.numpy(), label)  # orientation and values kept

    second = source.plan(3, seed=7)  # cycles: file 3 % 2
    assert (second["path"], second["rule"], second["mask_class"]) == (str(tmp_path / "b_binary.png"), "binary", "tear")
    mask = source.draw(second)
    foreground = torch.nn.functional.interpolate(torch.as_tensor(binary > 0)[None, None].float(), SIZE)[0, 0] > 0
    anatomy = ProceduralMaskSource(SIZE).draw({**ProceduralMaskSource(SIZE).plan(0, 7, ("msk",), "normal")}).label
    assert torch.equal(mask.label[foreground], torch.full((int(foreground.sum()),), UNIFIED_CLASSES.index("tear")))
    assert torch.equal(mask.label[~foreground], anatomy[~foreground])
    assert mask.context["finding"] == "tendon_tear" and mask.context["probe"] == "linear"

    _write_png(tmp_path / "a_map.png", np.zeros_like(label) + 2)  # the file changes after planning
    with pytest.raises(ValueError, match="changed since the request"):
        source.draw(first)


def test_file_masks_infer_the_preset_and_report_bad_files(tmp_path, caplog):
    _write_png(tmp_path / "good.png", _msk_label())
    (tmp_path / "notes.txt").write_text("not a mask")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    nib.save(nib.Nifti1Image(np.full((8, 8), 0.5, np.float32), np.eye(4)), tmp_path / "probabilities.nii.gz")
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 5
    _write_png(tmp_path / "colour.png", rgb)
    _write_png(tmp_path / "values.png", np.arange(64, dtype=np.uint8).reshape(8, 8))
    skin_fat = np.array([[1, 2], [2, 1]], np.uint8).repeat(4, 0).repeat(4, 1)  # skin + fat: breast or msk
    _write_png(tmp_path / "ambiguous.png", skin_fat)
    _write_png(tmp_path / "binary.png", (skin_fat == 1).astype(np.uint8))  # binary without a preset
    with caplog.at_level(logging.WARNING, logger="usgen_monai.engines.generation"):
        source = FileMaskSource(tmp_path, SIZE)
    assert [m.path.name for m in source.masks] == ["good.png"] and source.masks[0].preset == "msk"
    reasons = {Path(f).name: r for f, r in source.skipped}
    assert sorted(reasons) == sorted(
        ["notes.txt", "broken.png", "probabilities.nii.gz", "colour.png", "values.png", "ambiguous.png", "binary.png"]
    )
    assert "not a mask file" in reasons["notes.txt"]
    assert "cannot be read" in reasons["broken.png"]
    assert "non-integer" in reasons["probabilities.nii.gz"]
    assert "colour" in reasons["colour.png"]
    assert "neither binary" in reasons["values.png"]
    assert "fit presets ['breast', 'msk']" in reasons["ambiguous.png"]
    assert "needs a preset" in reasons["binary.png"]
    assert sum("skipping mask file" in r.message for r in caplog.records) == 7

    for name in ("good.png", "notes.txt"):
        os.remove(tmp_path / name)
    with pytest.raises(ValueError, match=f"no usable mask in {tmp_path}: 6 file"):
        FileMaskSource(tmp_path, SIZE)
    with pytest.raises(ValueError, match="mask_class 'cartilage'"):
        FileMaskSource(tmp_path, SIZE, preset="msk", mask_class="cartilage")
    with pytest.raises(ValueError, match="must be a folder"):
        FileMaskSource(tmp_path / "missing", SIZE)


class _NamedSource:
    """The smallest object that satisfies the MaskSource and ContextSource protocols."""

    def __init__(self, name: str) -> None:
        self.type, self.image_size, self.class_names, self.skipped, self.checkpoints = name, SIZE, UNIFIED_CLASSES, [], {}

    def plan(self, *args, **kwargs):
        return {"type": self.type}

    def draw(self, request):
        raise NotImplementedError


def test_select_sources():
    built = []

    def source(name):
        built.append(name)
        return _NamedSource(name)

    sources = {name: (lambda name=name: source(name)) for name in ("prior", "procedural", "files")}
    assert select_mask_source("procedural", "", sources).type == "procedural"
    assert select_mask_source("prior", "/data/masks", sources).type == "files"  # --masks wins
    assert built == ["procedural", "files"]  # only the chosen source is built
    with pytest.raises(ValueError, match="mask_source must be one of"):
        select_mask_source("stylegan", "", sources)
    with pytest.raises(ValueError, match="not a MaskSource"):
        select_mask_source("prior", "", {"prior": lambda: "prior"})
    contexts = {name: (lambda name=name: _NamedSource(name)) for name in ("bank", "file", "none")}
    assert select_context_source("", contexts).type == "bank"
    assert select_context_source("ref.png", contexts).type == "file"
    assert select_context_source("", contexts, context_source="none").type == "none"
    with pytest.raises(ValueError, match="needs context_image"):
        select_context_source("", contexts, context_source="file")
    with pytest.raises(ValueError, match="unknown context_source 'style'"):
        select_context_source("", contexts, context_source="style")
    with pytest.raises(ValueError, match="not a ContextSource"):
        select_context_source("", {"bank": lambda: object()})


def test_the_sampler_is_built_once(ckpt, tmp_path, monkeypatch):
    generator = _generator(ckpt, tmp_path / "out")
    used = []
    original = LatentSampler.__call__

    def spy(self, *args, **kwargs):
        used.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LatentSampler, "__call__", spy)
    generator.run(2)
    assert len(used) == 2 and all(s is generator.sampler for s in used)  # the configured sampler, every record
    # a record made with other settings gets its own sampler, built once and kept for the next such record
    record = generator.plan(0, 0)
    record["sampler"]["num_inference_steps"] = 1
    generator.generate(record)
    generator.generate(record)
    assert used[-1] is used[-2] and used[-1] is not generator.sampler
    assert used[-1].num_inference_steps == 1


def test_speckle_refiner_is_seeded_recorded_and_optional(ckpt, tmp_path):
    torch.manual_seed(3)
    refiner = SpeckleRefiner(channels=8)
    torch.nn.init.normal_(refiner.out.weight, std=0.05)  # not the identity of an untrained refiner
    plain, refined = _generator(ckpt), _generator(ckpt, refiner=refiner)
    record, plain_record = refined.plan(0, 5), plain.plan(0, 5)
    assert record["refiner"] == {"noise_channels": 4} and "refiner" in record["seeds"]
    assert "refiner" not in plain_record and "refiner" not in plain_record["seeds"]  # as records were before
    a, b = refined.generate(record), plain.generate(plain_record)
    assert not torch.equal(a.image, b.image) and torch.equal(a.label, b.label)
    torch.testing.assert_close(refined.regenerate(record).image, a.image, rtol=0, atol=0)  # seeded texture
    # a record made without the refiner regenerates without it, with or without a refiner at hand
    torch.testing.assert_close(refined.regenerate(plain_record).image, b.image, rtol=0, atol=0)
    with pytest.raises(ValueError, match="made with a speckle refiner"):
        plain.regenerate(record)
    constants = _networks(ckpt)[2]
    off = PairGenerator(refined.sampler, refined.mask_source, refined.context_source, constants, refiner=refiner,
                        refine_speckle=False)  # fmt: skip
    assert "refiner" not in off.plan(0, 5)
    # `monai.bundle run --refine_speckle false` gives the string "false"
    off = PairGenerator(refined.sampler, refined.mask_source, refined.context_source, constants, refiner=refiner,
                        refine_speckle="false")  # fmt: skip
    assert "refiner" not in off.plan(0, 5)


def test_no_context_image_uses_the_null_image_tokens(ckpt, tmp_path):
    generator = _generator(ckpt)
    record = generator.plan(0, 7)
    with_image = generator.generate(record)
    source = generator.context_source
    no_image = generator.plan(0, 7, context_source=NoContextImageSource())
    assert no_image["context_image"] == {"type": "none"} and no_image["mask_source"] == record["mask_source"]
    without = generator.generate(no_image)  # a "none" request needs no other source
    assert generator.context_source is source  # nothing was swapped
    assert without.image.shape == with_image.image.shape
    assert not torch.equal(without.image, with_image.image)
    torch.testing.assert_close(generator.regenerate(no_image).image, without.image, rtol=0, atol=0)
    bad = {**record, "context_image": {"type": "file", "path": "x.png"}}
    with pytest.raises(ValueError, match="'file' request.*context source is 'bank'"):
        generator.generate(bad)


# --------------------------------------------------------------------------------------------- context sources


def test_bank_context_source_picks_by_preset_and_style(ckpt, tmp_path):
    autoencoder = _networks(ckpt)[0]
    source = BankContextSource(autoencoder, SIZE, bank_size=5, bank_seed=3)
    request = source.plan(0, seed=1, preset="fetal_head")
    bank = source.bank("fetal_head")
    assert request["preset"] == "fetal_head" and set(source._banks) == {"fetal_head"}  # built per preset, lazily
    drawn = source.draw(request)  # re-simulated from the recorded seed, without the bank
    assert torch.equal(drawn.image, bank.images[request["bank_index"]])
    assert drawn.context["probe"] == "curvilinear" == bank.contexts[request["bank_index"]]["probe"]
    assert len({source.plan(0, seed, "fetal_head")["bank_index"] for seed in range(12)}) > 1

    target = 2
    reference = _write_png(tmp_path / "ref.png", (bank.images[target, 0].numpy() * 255).round().astype(np.uint8))
    styled = BankContextSource(autoencoder, SIZE, bank_size=5, bank_seed=3, style_reference=reference, style_top_k=1)
    assert {styled.plan(0, seed, "fetal_head")["bank_index"] for seed in range(4)} == {target}
    with pytest.raises(ValueError, match="/data/busi"):
        BankContextSource(autoencoder, SIZE, dataset_dir="/data/busi")


def test_file_context_source(tmp_path):
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:, :32] = (255, 255, 255)
    path = _write_png(tmp_path / "context.png", rgb)
    source = FileContextSource(path, SIZE)
    request = source.plan(0, seed=0, preset="msk")
    assert request["sha256"] == file_sha256(path)
    image = source.draw(request).image
    assert tuple(image.shape) == (1, *SIZE) and image.dtype == torch.float32
    assert image[0, :, :16].min() == 1.0 and image[0, :, 16:].max() == 0.0  # columns stay columns; in [0, 1]
    _write_png(path, 255 - rgb)
    with pytest.raises(ValueError, match="changed since the request"):
        source.draw(request)
    with pytest.raises(ValueError, match="context_image must be an image file"):
        FileContextSource(tmp_path / "missing.png", SIZE)


# -------------------------------------------------------------------------------------------------- generator


def _datalist(out: Path) -> list[dict]:
    return load_json_datalist(out / "datalist.json")


def test_run_writes_pairs_datalist_and_provenance(ckpt, tmp_path):
    out = tmp_path / "out"
    generator = _generator(ckpt, out, preset="msk", finding="tendon_tear", overrides={"gain_db": 6, "probe": None})
    summary = generator.run(3, seed=4)
    assert summary.num_pairs == 3 and summary.skipped == []
    names = sorted(os.listdir(out))
    assert names == sorted(
        ["datalist.json", "dataset.json", "items"]
        + [f"sample_{i:06d}_{k}.png" for i in range(3) for k in ("image", "label")]
    )  # no temporary files left
    assert sorted(os.listdir(out / "items")) == [f"sample_{i:06d}.json" for i in range(3)]
    items = _datalist(out)
    assert [Path(item["image"]).name for item in items] == [f"sample_{i:06d}_image.png" for i in range(3)]
    record = items[1]["provenance"]
    assert record["bundle_version"] == "9.9.9" and (record["seed"], record["index"]) == (4, 1)
    assert record["checkpoints"] == {"model.pt": file_sha256(ckpt / "model.pt"),
                                     "autoencoder.pt": file_sha256(ckpt / "autoencoder.pt")}  # fmt: skip
    assert record["guidance"] == {"semantic_scale": 2.0, "context_scale": 1.5, "start": 0.0, "stop": 1.0}
    assert (record["sampler"]["name"], record["sampler"]["num_inference_steps"]) == ("ddim", 2)
    assert record["mask_source"]["type"] == "procedural" and record["context_image"]["type"] == "bank"
    context = items[1]["context"]
    assert (context["preset"], context["finding"], context["gain_db"]) == ("msk", "tendon_tear", 6)
    manifest = json.loads((out / "dataset.json").read_text())
    raw = json.loads((out / "datalist.json").read_text())
    assert manifest["synthetic"] is True and raw["synthetic"] is True and manifest["num"] == 3
    assert raw["labels"]["0"] == "background" and raw["target_labels"]["msk"] == [
        UNIFIED_CLASSES.index("tendon"),
        UNIFIED_CLASSES.index("tear"),
    ]
    with Image.open(items[1]["image"]) as im:
        assert im.text["Synthetic"] == "YES" and json.loads(im.text["usgen-monai provenance"]) == record

    pair = _generator(ckpt).regenerate(items[1])  # a new generator, as in another process
    np.testing.assert_array_equal(_png(items[1]["label"]), pair.label.numpy())
    np.testing.assert_array_equal(_png(items[1]["image"]), np.round(pair.image.double().numpy() * 255).astype(np.uint8))
    assert pair.context == context


def test_regeneration_is_bit_exact_and_uses_the_record(ckpt, tmp_path):
    out = tmp_path / "out"
    generator = _generator(ckpt, out, output_format="nifti", mask="prior")
    generator.run(2, seed=0)
    items = _datalist(out)
    stored = nib.load(items[1]["image"])
    assert b"SYNTHETIC" in stored.header["descrip"].tobytes()
    image = torch.as_tensor(np.asarray(stored.dataobj).T)
    label = torch.as_tensor(np.asarray(nib.load(items[1]["label"]).dataobj).T.astype(np.int64))

    masks = FileMaskSource(out, SIZE, preset="breast")  # NIfTI label maps read back as written
    assert [m.path.name for m in masks.masks] == ["sample_000000_label.nii.gz", "sample_000001_label.nii.gz"]
    assert torch.equal(masks.draw(masks.plan(1, seed=0)).label, label)

    fresh = _generator(ckpt, mask="prior")
    pair = fresh.regenerate(items[1]["provenance"])
    assert pair.image.dtype == image.dtype == torch.float32
    assert torch.equal(pair.image, image) and torch.equal(pair.label, label)  # bit for bit
    assert torch.equal(fresh.generate(fresh.plan(1, seed=0)).image, image)  # sample 1 alone = sample 1 of the run

    other = fresh.regenerate({**items[1]["provenance"], "guidance": {**pair.record["guidance"], "semantic_scale": 5.0}})
    assert not torch.equal(other.image, image)  # the record's settings are used, not the generator's
    assert not torch.equal(fresh.generate(fresh.plan(0, seed=1)).image, image)
    with pytest.raises(ValueError, match="cannot be reproduced with these weights"):
        fresh.regenerate({**items[1]["provenance"], "checkpoints": {"model.pt": "0" * 64}})
    with pytest.raises(ValueError, match="this source draws 'procedural' requests, got a 'prior' request"):
        _generator(ckpt).regenerate(items[1])


def test_user_masks_and_context_image(ckpt, tmp_path, caplog):
    masks = tmp_path / "masks"
    masks.mkdir()
    label = _msk_label(seed=8, finding="effusion")
    _write_png(masks / "case_1.png", label)
    (masks / "case_2.png").write_bytes(b"not a png")
    context = _write_png(tmp_path / "context.png", np.full((40, 40), 128, np.uint8))
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="usgen_monai.engines.generation"):
        summary = _generator(ckpt, out, masks=masks, context_image=context, sampler="few_step", steps=3).run(2)
    assert summary.skipped == [(str(masks / "case_2.png"), summary.skipped[0][1])]
    assert caplog.records[-1].message.startswith(f"skipped mask file {masks / 'case_2.png'}")  # summarised last
    manifest = json.loads((out / "dataset.json").read_text())
    assert [Path(s["file"]).name for s in manifest["skipped_masks"]] == ["case_2.png"]
    items = _datalist(out)
    for item in items:  # both samples use the one good mask, with different seeds
        np.testing.assert_array_equal(_png(item["label"]), label)
        record = item["provenance"]
        assert record["mask_source"]["path"] == str(masks / "case_1.png")
        assert record["context_image"] == {"type": "file", "path": str(context), "sha256": file_sha256(context),
                                           "size": list(SIZE)}  # fmt: skip
        assert record["sampler"]["name"] == "few_step" and record["sampler"]["num_inference_steps"] == 3
        assert item["context"]["finding"] == "effusion" and "gain_db" not in item["context"]
    assert not np.array_equal(_png(items[0]["image"]), _png(items[1]["image"]))


def test_a_killed_run_continues_where_it_stopped(ckpt, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    _generator(ckpt, reference).run(4, seed=2)
    out = tmp_path / "out"
    generator = _generator(ckpt, out)
    original = PairWriter.write

    def write_two_then_die(self, index, *args, **kwargs):
        if index == 2:
            raise KeyboardInterrupt  # the process is stopped while pair 2 is generated
        return original(self, index, *args, **kwargs)

    monkeypatch.setattr(PairWriter, "write", write_two_then_die)
    with pytest.raises(KeyboardInterrupt):
        generator.run(4, seed=2)
    assert not (out / "datalist.json").exists() and len(os.listdir(out / "items")) == 2
    monkeypatch.setattr(PairWriter, "write", original)
    generated, generate = [], PairGenerator.generate

    def counting_generate(self, record, **kwargs):
        generated.append(record["index"])
        return generate(self, record, **kwargs)

    monkeypatch.setattr(PairGenerator, "generate", counting_generate)
    summary = _generator(ckpt, out).run(4, seed=2)
    assert generated == [2, 3] and (summary.num_pairs, summary.num_resumed) == (2, 2)
    for name in sorted(os.listdir(reference)):
        if name.endswith(".png"):
            assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert _datalist(out) == [
        {k: (str(out / Path(v).name) if k in ("image", "label") else v) for k, v in item.items()}
        for item in _datalist(reference)
    ]
    # a rerun with other settings does not keep the earlier pairs
    generated.clear()
    _generator(ckpt, out).run(4, seed=3)
    assert generated == [0, 1, 2, 3]


def test_dicom_output_is_flagged_synthetic(ckpt, tmp_path):
    out = tmp_path / "out"
    generator = _generator(ckpt, out, output_format="dicom", preset="breast", finding="malignant")
    generator.run(1, seed=2)
    item = _datalist(out)[0]
    assert [Path(item[k]).name for k in ("image", "label", "label_seg")] == [
        "sample_000000_image.dcm",
        "sample_000000_label.png",
        "sample_000000_label.dcm",
    ]
    ds = pydicom.dcmread(item["image"])
    assert ds[0x0008, 0x001C].value == "YES" and ds.Modality == "US" and "SYNTHETIC" in ds.SeriesDescription
    assert f'"seed": {item["provenance"]["sample_seed"]}' in ds.ImageComments
    pair = _generator(ckpt).regenerate(item)
    np.testing.assert_array_equal(ds.pixel_array, np.round(pair.image.double().numpy() * 255).astype(np.uint8))
    seg = pydicom.dcmread(item["label_seg"])
    assert seg.Modality == "SEG" and seg[0x0008, 0x001C].value == "YES"
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == list(UNIFIED_CLASSES[1:])  # stable segment numbers
    segments = {
        f.SegmentIdentificationSequence[0].ReferencedSegmentNumber for f in seg.PerFrameFunctionalGroupsSequence
    }
    assert segments == {v for v in pair.label.unique().tolist() if v != 0}  # frames of the classes present
    np.testing.assert_array_equal(_png(item["label"]), pair.label.numpy())


def test_generator_checks_its_parts(ckpt, tmp_path):
    with pytest.raises(ValueError, match="not overridable"):
        _generator(ckpt, overrides={"preset": "msk"})
    with pytest.raises(ValueError, match="unknown value 'phased' for context field 'probe'"):
        _generator(ckpt, overrides={"probe": "phased"})
    with pytest.raises(ValueError, match="gain_db must be a number, got gain_db='6 dB'"):
        _generator(ckpt, overrides={"gain_db": "6 dB"})
    autoencoder, translator, constants, ae_constants = _networks(ckpt)
    sampler = LatentSampler(DDIMSchedule(), translator, DualGuidance(), decoder=autoencoder, scale_factor=SCALE,
                            latent_shape=(3, 16, 16), num_inference_steps=2)  # fmt: skip
    parts = (sampler, ProceduralMaskSource(SIZE), BankContextSource(autoencoder, SIZE, bank_size=2))
    with pytest.raises(ValueError, match="label classes"):
        PairGenerator(*parts, {**constants, "class_names": list(UNIFIED_CLASSES[:5])})
    with pytest.raises(ValueError, match="do not belong together"):
        PairGenerator(*parts, constants, autoencoder_constants={**ae_constants, "latent_scale_factor": 0.5})
    with pytest.raises(ValueError, match="image_size"):
        PairGenerator(sampler, ProceduralMaskSource((64, 64)), parts[2], constants)
    with pytest.raises(ValueError, match="needs a writer"):
        PairGenerator(*parts, constants).run(1)
    with pytest.raises(ValueError, match="output_format must be one of"):
        PairWriter(tmp_path, "jpeg")


def test_learned_prior_smoothing_removes_isolated_pixels(ckpt):
    from usgen_monai.metrics import label_map_fragmentation

    net = tiny_mask_prior(VOCAB.num_class_labels(FIELDS))
    raw = LearnedMaskSource(net, ckpt / "mask_prior.pt", SIZE, "ddim", 2, 2, 1.0)
    smooth = LearnedMaskSource(net, ckpt / "mask_prior.pt", SIZE, "ddim", 2, 2, 1.0, smoothing=5)
    raw_maps, smooth_maps = [], []
    for k in range(3):
        request = smooth.plan(k, 40 + k, ("msk",))
        assert request["smoothing"] == 5
        smooth_maps.append(smooth.draw(request).label)
        raw_maps.append(raw.draw({**request, "smoothing": 0}).label)
    assert label_map_fragmentation(torch.stack(smooth_maps)) < label_map_fragmentation(torch.stack(raw_maps))
    for bad in (2, -1, 1.5):
        with pytest.raises(ValueError, match="smoothing must be"):
            LearnedMaskSource(net, ckpt / "mask_prior.pt", SIZE, smoothing=bad)
