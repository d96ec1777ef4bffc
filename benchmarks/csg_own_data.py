"""The CSG own-data recipe, end to end, on a data set the built-in simulator did not make, measured.

The data set is a BUSI-layout folder (``benchmarks/pymust_breast_dataset.py`` makes one with PyMUST, another
simulator: other physics, other tissue geometry); its ``--train`` part trains, its ``--test`` part (other seeds) is the
"real" images the generated ones are compared with, and its masks condition the generation. The recipe is the one in
``bundles/csg/docs/README.md`` ("Train on your own data"), run through the bundle's own configs:

1. **stage 1 on the user's images**: how well the shipped autoencoder (+ speckle refiner) reconstructs them (C2ST of
   reconstructions vs real, high-frequency energy ratio); with ``--train_refiner`` the shipped refiner is fine-tuned on
   the user's images (``train_refiner.json --dataset_dir ... --pretrained_path models/refiner.pt``), keeping the shipped autoencoder and so the translator's
   latents; with ``--train_autoencoder`` the whole of stage 1 is fine-tuned on them instead (``train_autoencoder.json
   --dataset_dir ... --pretrained_path models/autoencoder.pt``, then a refiner on that autoencoder's
   reconstructions), and, since the latents change, the whole translator (base and a new ControlNet) is fine-tuned
   on the new latents (generator ``user_stage1``);
2. **the ControlNet fine-tuned** on the user's images and masks with the base frozen (``train_diffusion.json
   --dataset_dir ... --train#optimizer#params '$@network.freeze_base()'``); with ``--new_controlnet`` also a new
   ControlNet copied from the base (``--reset_semantic_branch true``), which does not carry the shipped one's reading
   of the label classes (background 0 = outside the field of view);
3. **generation** for the test masks (``inference.json --masks ... --mask_anatomy none --dataset_dir TRAIN``: the
   context bank is the user's training images), with the shipped translator and with the fine-tuned one;
4. **measurements** against the test images: C2ST AUC (generated vs real, with real vs real as the floor), the
   high-frequency energy ratio, and mask consistency by a segmenter trained on the user's training images with flips
   only (``train_segmenter.json --dataset_dir``; no augmentation that hides texture), on images with the finding, and
   how often it finds a lesion in images generated from empty masks.

Every step keeps its output and is skipped when rerun (delete its folder to redo it); the wall time of each step
is kept in ``WORK/seconds.json`` and reported. Writes ``--out`` (JSON) and
``--figure`` (real vs generated, masks outlined).

    OMP_NUM_THREADS=1 python benchmarks/csg_own_data.py --train runs/pymust/train --test runs/pymust/test \\
        --work runs/csg_own_data --out benchmarks/results/csg_own_data.json \\
        --figure bundles/csg/docs/figures/own_data_pymust.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "csg"
CONFIGS = BUNDLE / "configs"
SHIPPED = BUNDLE / "models"
SIZE = 128
LESION = 8  # usgen_monai.data.simulator.UNIFIED_CLASSES.index("lesion")


def _configs(*names: str) -> list[str]:
    return [str(CONFIGS / n) for n in ("common.json", *names)]


def _run(*configs: str, **overrides) -> float:
    start = time.perf_counter()
    bundle_run(
        config_file=_configs(*configs),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        bundle_root=str(BUNDLE),
        image_size=[SIZE, SIZE],  # the benchmark's size, not the bundle's default (256 since 0.3)
        **overrides,
    )
    return time.perf_counter() - start


def _grey(path: Path, size: int = SIZE) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0


def _mask(path: Path, size: int = SIZE) -> np.ndarray:
    return (np.asarray(Image.open(path).convert("L").resize((size, size), Image.NEAREST)) > 0).astype(np.float32)


def busi_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """``(image, mask)`` of a BUSI-layout folder, sorted."""
    pairs = []
    for image in sorted(folder.glob("*/*.png")):
        if image.stem.endswith("_mask"):
            continue
        mask = image.with_name(f"{image.stem}_mask.png")
        if mask.exists():
            pairs.append((image, mask))
    if not pairs:
        raise ValueError(f"{folder}: no BUSI image/mask pairs (FINDING/NAME.png with NAME_mask.png).")
    return pairs


def _tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays))[:, None]


def _generated(folder: Path) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """The generated images, their lesion masks (the conditioning label maps' lesion class) and datalist items."""
    items = json.loads((folder / "datalist.json").read_text())["training"]
    images = [_grey(folder / item["image"]) for item in items]  # datalist paths are relative to its folder
    labels = [(np.asarray(Image.open(folder / item["label"])) == LESION).astype(np.float32) for item in items]
    return _tensor(images), _tensor(labels), items


def stage1_metrics(
    train: torch.Tensor, test: torch.Tensor, refiner_path: Path, settings: dict, autoencoder_path: Path | None = None
) -> dict:
    """C2ST and high-frequency energy of an autoencoder's (default the shipped one's) reconstructions of user images
    (+ a refiner)."""
    from usgen_monai.metrics import classifier_two_sample_test, high_frequency_energy

    parser = ConfigParser()
    parser.read_config(_configs("inference.json"))
    parser.update({"bundle_root": str(BUNDLE), "refiner_path": str(refiner_path),
                   "autoencoder_path": str(autoencoder_path or SHIPPED / "autoencoder.pt")})  # fmt: skip
    autoencoder = parser.get_parsed_content("autoencoder").eval()
    refiner = parser.get_parsed_content("refiner").eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        decoded = torch.cat([autoencoder.reconstruct(train[i : i + 8]).clamp(0, 1) for i in range(0, len(train), 8)])
        noise = torch.randn(refiner.noise_shape(decoded), generator=generator)
        refined = refiner(decoded, noise).clamp(0, 1)
    real_energy = high_frequency_energy(test)
    return {
        "c2st_auc_decoder": classifier_two_sample_test(test, decoded, **settings)["auc"],
        "c2st_auc_reconstruction": classifier_two_sample_test(test, refined, **settings)["auc"],
        "decoder_high_frequency_energy_ratio": high_frequency_energy(decoded) / real_energy,
        "reconstruction_high_frequency_energy_ratio": high_frequency_energy(refined) / real_energy,
        "refiner": str(refiner_path),
        "autoencoder": str(autoencoder_path or SHIPPED / "autoencoder.pt"),
    }


def _segmenter(path: Path):
    parser = ConfigParser()
    parser.read_config(_configs("evaluate.json"))
    parser.update({"bundle_root": str(BUNDLE), "segmenter_path": str(path)})
    return parser.get_parsed_content("segmenter").eval()


def figure(path: Path, real, real_masks, columns: dict[str, tuple[torch.Tensor, torch.Tensor]], rows: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"real (PyMUST, held out)": (real, real_masks), **columns}
    fig, axes = plt.subplots(rows, len(panels), figsize=(2.2 * len(panels), 2.2 * rows))
    for c, (title, (images, masks)) in enumerate(panels.items()):
        for r in range(rows):
            ax = axes[r, c]
            ax.imshow(images[r, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            if masks[r].sum() > 0:
                ax.contour(masks[r, 0].numpy(), levels=[0.5], colors="red", linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, type=Path, help="BUSI-layout training folder")
    p.add_argument("--test", required=True, type=Path, help="BUSI-layout held-out folder (other seeds)")
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--controlnet_epochs", type=int, default=70, help="ControlNet fine-tune epochs")
    p.add_argument("--new_controlnet", action="store_true", help="also fine-tune a new ControlNet copied from the base")
    p.add_argument("--segmenter_epochs", type=int, default=60)
    p.add_argument("--train_refiner", action="store_true", help="retrain the speckle refiner on the user's images")
    p.add_argument("--refiner_epochs", type=int, default=200)
    p.add_argument(
        "--train_autoencoder", action="store_true",
        help="fine-tune the whole of stage 1 (autoencoder, then refiner) and the whole translator on the user's images",
    )
    p.add_argument("--autoencoder_epochs", type=int, default=60)
    p.add_argument("--translator_epochs", type=int, default=70, help="whole-translator fine-tune epochs (new latents)")
    p.add_argument("--c2st_folds", type=int, default=4)
    p.add_argument("--c2st_epochs", type=int, default=30)
    p.add_argument("--out", type=Path)
    p.add_argument("--figure", type=Path)
    args = p.parse_args()
    from usgen_monai.metrics import classifier_two_sample_test, high_frequency_energy, mask_consistency

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    seconds_file = work / "seconds.json"  # each step's wall time, kept across reruns that skip the step
    seconds: dict[str, float] = json.loads(seconds_file.read_text()) if seconds_file.exists() else {}
    train_pairs, test_pairs = busi_pairs(args.train), busi_pairs(args.test)
    train = _tensor([_grey(i) for i, _ in train_pairs])
    test = _tensor([_grey(i) for i, _ in test_pairs])
    test_masks = _tensor([_mask(m) for _, m in test_pairs])
    masks_dir = work / "masks"  # the test masks, flat, in the test pairs' order
    if not masks_dir.exists():
        tmp = work / "masks.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for k, (_, mask) in enumerate(test_pairs):
            shutil.copy(mask, tmp / f"{k:03d}_{mask.parent.name}.png")
        tmp.rename(masks_dir)
    c2st = {"folds": args.c2st_folds, "epochs": args.c2st_epochs, "seed": 0}
    common = {"presets": ["breast"], "dataset_dir": str(args.train), "progress": False}

    # 1. stage 1 on the user's images
    refiner_path = SHIPPED / "refiner.pt"
    if args.train_refiner:
        refiner_path = work / "refiner_models" / "refiner.pt"
        if not refiner_path.exists():
            seconds["train_refiner"] = _run(
                "train_refiner.json", **common, max_epochs=args.refiner_epochs,
                pretrained_path=str(SHIPPED / "refiner.pt"), autoencoder_path=str(SHIPPED / "autoencoder.pt"), ckpt_dir=str(refiner_path.parent),
                output_dir=str(work / "refiner"),
            )  # fmt: skip
    stage1 = {}
    for name, path in (("shipped_refiner", SHIPPED / "refiner.pt"), ("user_refiner", refiner_path)):
        if name == "user_refiner" and not args.train_refiner:
            continue
        stage1_file = work / f"stage1_{name}.json"
        if not stage1_file.exists():
            stage1_file.write_text(json.dumps(stage1_metrics(train[: len(test)], test, path, c2st), indent=2))
        stage1[name] = json.loads(stage1_file.read_text())
    # 1b. the whole of stage 1 on the user's images: the autoencoder fine-tuned, a refiner on its reconstructions
    user_autoencoder = user_ae_refiner = None
    if args.train_autoencoder:
        user_autoencoder = work / "autoencoder_models" / "autoencoder.pt"
        if not user_autoencoder.exists():
            seconds["train_autoencoder"] = _run(
                "train_autoencoder.json", **common, max_epochs=args.autoencoder_epochs,
                pretrained_path=str(SHIPPED / "autoencoder.pt"), autoencoder_path=str(user_autoencoder),
                output_dir=str(work / "autoencoder"), adversarial_start_iteration=100,
            )  # fmt: skip
        user_ae_refiner = work / "refiner_user_autoencoder_models" / "refiner.pt"
        if not user_ae_refiner.exists():
            seconds["train_refiner_user_autoencoder"] = _run(
                "train_refiner.json", **common, max_epochs=args.refiner_epochs,
                pretrained_path=str(SHIPPED / "refiner.pt"), autoencoder_path=str(user_autoencoder),
                ckpt_dir=str(user_ae_refiner.parent), output_dir=str(work / "refiner_user_autoencoder"),
            )  # fmt: skip
        stage1_file = work / "stage1_user_autoencoder.json"
        if not stage1_file.exists():
            metrics = stage1_metrics(train[: len(test)], test, user_ae_refiner, c2st, user_autoencoder)
            stage1_file.write_text(json.dumps(metrics, indent=2))
        stage1["user_autoencoder"] = json.loads(stage1_file.read_text())
    print("stage 1:", json.dumps(stage1), flush=True)

    # 2. the ControlNet fine-tuned with the base frozen: the shipped one, and a new one copied from the base
    # (--reset_semantic_branch true), which does not carry the shipped one's reading of the label classes
    translators = {"shipped": SHIPPED / "model.pt"}
    stage1_of = {}  # generator -> (autoencoder, refiner) when not the shipped autoencoder with `refiner_path`
    for name, reset in (("fine_tuned", False), ("fine_tuned_new_controlnet", True)):
        if name == "fine_tuned_new_controlnet" and not args.new_controlnet:
            continue
        translators[name] = work / f"{name}_models" / "model.pt"
        if not translators[name].exists():
            seconds[f"train_{name}"] = _run(
                "train_diffusion.json", **common, max_epochs=args.controlnet_epochs,
                pretrained_path=str(SHIPPED / "model.pt"), autoencoder_path=str(SHIPPED / "autoencoder.pt"),
                reset_semantic_branch=reset, ckpt_dir=str(translators[name].parent), output_dir=str(work / name),
                **{"train#optimizer#params": "$@network.freeze_base()"},
            )  # fmt: skip

    if user_autoencoder is not None:  # the whole translator on the new latents, with a new ControlNet
        translators["user_stage1"] = work / "user_stage1_models" / "model.pt"
        stage1_of["user_stage1"] = (user_autoencoder, user_ae_refiner)
        if not translators["user_stage1"].exists():
            seconds["train_user_stage1"] = _run(
                "train_diffusion.json", **common, max_epochs=args.translator_epochs,
                pretrained_path=str(SHIPPED / "model.pt"), autoencoder_path=str(user_autoencoder),
                reset_semantic_branch=True, ckpt_dir=str(translators["user_stage1"].parent),
                output_dir=str(work / "user_stage1"),
            )  # fmt: skip

    # 3. a segmenter of the user's images (flips only) for mask consistency
    segmenter_path = work / "segmenter_models" / "segmenter.pt"
    if not segmenter_path.exists():
        seconds["train_segmenter"] = _run(
            "train_segmenter.json", **common, max_epochs=args.segmenter_epochs,
            ckpt_dir=str(segmenter_path.parent), output_dir=str(work / "segmenter"),
        )  # fmt: skip
    segmenter = _segmenter(segmenter_path)

    # 4. generation for the test masks, context bank = the training images
    results: dict = {
        "benchmark": "csg_own_data",
        "data": {"train": str(args.train), "test": str(args.test), "num_train": len(train), "num_test": len(test),
                 "image_size": SIZE, "maker": "benchmarks/pymust_breast_dataset.py (PyMUST)"},  # fmt: skip
        "stage1": stage1,
        "c2st_auc_real_vs_real": classifier_two_sample_test(test, train[: len(test)], **c2st)["auc"],
        "segmenter_dice_real": None,
        "generators": {},
        "settings": vars(args) | {"c2st": c2st},
    }
    columns = {}
    for name, model in translators.items():
        autoencoder, refiner = stage1_of.get(name, (SHIPPED / "autoencoder.pt", refiner_path))
        out = work / f"generated_{name}_{refiner.parent.name}"
        if not (out / "datalist.json").exists():
            seconds[f"generate_{name}"] = _run(
                "inference.json", model_path=str(model), autoencoder_path=str(autoencoder),
                refiner_path=str(refiner), output_dir=str(out), num_samples=len(test_pairs),
                masks=str(masks_dir), preset="breast", mask_anatomy="none", dataset_dir=str(args.train),
                progress=False,
            )  # fmt: skip
        generated, generated_masks, _ = _generated(out)
        consistency = mask_consistency(segmenter, generated, generated_masks, test, test_masks)
        results["segmenter_dice_real"] = consistency["dice_real"]
        results["generators"][name] = {
            "model": str(model),
            "autoencoder": str(autoencoder),
            "refiner": str(refiner),
            "c2st_auc": classifier_two_sample_test(test, generated, **c2st)["auc"],
            "high_frequency_energy_ratio": high_frequency_energy(generated) / high_frequency_energy(test),
            "mask_consistency": consistency,
        }
        columns[f"CSG, {name.replace('_', ' ')}"] = (generated, generated_masks)
        print(name, json.dumps(results["generators"][name]), flush=True)
    seconds_file.write_text(json.dumps(seconds, indent=2))
    results["seconds_per_step"] = seconds
    if args.figure:
        figure(args.figure, test, test_masks, columns)
    # paths relative to the repository, so the committed results do not carry this machine's folders
    text = json.dumps(results, indent=2, default=str).replace(f"{REPO}/", "")
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
