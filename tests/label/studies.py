"""Studies the MONAI Label tests build themselves: simulated breast ultrasound as PNG, 2D NIfTI and ultrasound DICOM
(the simulator's pixels written by the package's DICOM writer), their ground-truth masks kept outside the studies
folder, an unreadable study, and bundle folders to serve (the repository's, or copies with weights the test gives)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "bundles"
#: weights files a developer may point the tests at (copied into bundle copies); the shipped ones win
WEIGHTS_ENV = {"mgcc": "USGEN_LABEL_MGCC_WEIGHTS", "sam": "USGEN_LABEL_SAM_WEIGHTS"}


@dataclass
class Study:
    """One study: its datastore id, file, ground-truth mask (rows x columns, 0/1) and size."""

    id: str
    path: Path
    mask: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])

    @property
    def columns(self) -> int:
        return int(self.mask.shape[1])


def simulated(seed: int, size: int = 256, min_area: float = 0.01):
    """A simulated breast image and its lesion mask: the first seed from ``seed`` on whose lesion covers at least
    ``min_area`` of the image (some draws have no finding)."""
    from usgen_monai.data.simulator import UltrasoundSimulator

    sim = UltrasoundSimulator("breast", size=(size, size))
    for s in range(seed, seed + 50):
        sample = sim.sample(seed=s)
        mask = (np.asarray(sample.mask) > 0).astype(np.uint8)
        if mask.mean() >= min_area:
            return np.asarray(sample.image, dtype=np.float32), mask
    raise AssertionError(f"no simulated lesion of {min_area:.0%} of the image in seeds {seed}..{seed + 49}")


def build_studies(root: Path, size: int = 256) -> dict[str, Study]:
    """``root/studies`` with ``us_png.png``, ``us_nifti.nii.gz``, ``us_dicom.dcm`` (simulated, with masks under
    ``root/truth``), ``us_cine.dcm`` (a colour YBR JPEG multi-frame cine with ultrasound regions, from
    ``tests/dicom_factory.py``; no mask) and ``broken.png`` (a truncated PNG)."""
    import nibabel as nib
    from PIL import Image

    from usgen_monai.data.synthetic_dicom import SaveSyntheticDicom

    studies, truth = root / "studies", root / "truth"
    studies.mkdir(parents=True)
    truth.mkdir(parents=True)
    out: dict[str, Study] = {}
    image, mask = simulated(11, size)
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(studies / "us_png.png")
    out["us_png"] = Study("us_png", studies / "us_png.png", mask)
    image, mask = simulated(12, size)
    nib.save(nib.Nifti1Image(image.T.copy(), np.eye(4)), studies / "us_nifti.nii.gz")  # MONAI order: (X, Y)
    out["us_nifti"] = Study("us_nifti", studies / "us_nifti.nii.gz", mask)
    image, mask = simulated(13, size)
    saver = SaveSyntheticDicom(truth, output_postfix="", model_name="usgen-monai simulator")
    saver(image.T[None].copy(), filename=truth / "us_dicom_source")  # the simulator's pixels as an US DICOM
    shutil.copy(truth / "us_dicom_source", studies / "us_dicom.dcm")
    out["us_dicom"] = Study("us_dicom", studies / "us_dicom.dcm", mask)
    from tests.dicom_factory import build_variant

    cine, _ = build_variant("ybr_full_422_jpeg_multiframe_overflow", truth)  # colour YBR JPEG, 3 frames, regions
    shutil.copy(cine, studies / "us_cine.dcm")
    (studies / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated, not an image")
    for study in out.values():
        Image.fromarray(study.mask).save(truth / f"{study.id}_mask.png")
    return out


def trained_weights(name: str) -> Path | None:
    """The trained weights of a bundle: the shipped ``bundles/<name>/models/model.pt``, else the file named by
    ``$USGEN_LABEL_<NAME>_WEIGHTS``, else ``None``."""
    shipped = BUNDLES / name / "models" / "model.pt"
    if shipped.is_file():
        return shipped
    env = os.environ.get(WEIGHTS_ENV[name])
    return Path(env) if env and Path(env).is_file() else None


def _random_weights(name: str, target: Path) -> None:
    """Seeded random weights of the bundle's own ``network_def`` (so the server path runs without trained ones)."""
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLES / name / "configs" / "inference.json"))
    parser["bundle_root"] = str(BUNDLES / name)
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    torch.save(network.state_dict(), target)


def bundle_copies(root: Path) -> tuple[dict[str, Path], dict[str, bool]]:
    """Bundle folders to serve: copies of ``bundles/mgcc`` and ``bundles/sam`` side by side (the SAM bundle finds the
    MGCC bundle next to it for automatic boxes) with trained weights where :py:func:`trained_weights` has them and
    seeded random ones otherwise; returns the folders and which are trained. Copies, so a train task never writes
    into the repository."""
    folders, trained = {}, {}
    for name in ("mgcc", "sam"):
        target = root / "bundles" / name
        shutil.copytree(BUNDLES / name, target, ignore=shutil.ignore_patterns("runs", "eval", "data", "models"))
        (target / "models").mkdir()
        weights = trained_weights(name)
        if weights is not None:
            shutil.copy(weights, target / "models" / "model.pt")
        else:
            _random_weights(name, target / "models" / "model.pt")
        folders[name], trained[name] = target, weights is not None
    return folders, trained


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)
