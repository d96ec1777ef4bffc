"""Context images and context banks given as ultrasound DICOM (usgen_monai.engines.context_sources): one frame of a
cine, cropped to the B-mode region, grey, recorded in the request so that regeneration reads the same pixels.

The DICOM files are built here by tests/dicom_factory.py; the generator is the tiny one of test_generation.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.dicom_factory import DEFAULT_REGIONS, build_variant, frame_level, frame_numbered_cine, write_image
from tests.engines.csg_data import tiny_autoencoder
from tests.engines.test_generation import SIZE, _generator, ckpt  # noqa: F401 (ckpt is a fixture)
from usgen_monai.data.image_files import read_grey_image
from usgen_monai.engines import BankContextSource, FileContextSource, file_sha256

REGION = DEFAULT_REGIONS[0]
REGION_BOX = [REGION.x0, REGION.y0, REGION.x1 + 1, REGION.y1 + 1]  # [x_min, y_min, x_max, y_max), maxima exclusive


def _cine(path: Path, frames: int = 30) -> Path:
    """A YBR_FULL_422 cine whose frame f shows the level frame_level(f) in its imaging region."""
    return write_image(path, frame_numbered_cine(frames), photometric="YBR_FULL_422", uid_seed=path.name)


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def test_cine_uses_the_middle_frame_cropped_to_the_region_and_records_it(tmp_path):
    cine = _cine(tmp_path / "cine.dcm")
    source = FileContextSource(cine, SIZE)
    request = source.plan(0, seed=0, preset="msk")
    assert request == {
        "type": "file",
        "path": str(cine.resolve()),
        "sha256": file_sha256(cine),
        "size": list(SIZE),
        "frame": 15,
        "frame_count": 30,
        "crop": REGION_BOX,
        "crop_source": "ultrasound_region",
    }
    image = source.draw(request).image
    assert tuple(image.shape) == (1, *SIZE)
    # the middle frame's level everywhere: no black border, no burned-in text
    torch.testing.assert_close(image, torch.full((1, *SIZE), frame_level(15) / 255.0), rtol=0, atol=1.5 / 255)

    last = FileContextSource(cine, SIZE, frame=-1)
    assert last.plan(0, 0, "msk")["frame"] == 29
    assert abs(float(last.draw(last.plan(0, 0, "msk")).image.mean()) - frame_level(29) / 255.0) < 1.5 / 255
    with pytest.raises(ValueError, match=r"cine\.dcm: frame 30 requested but there are only 30 frame\(s\)"):
        FileContextSource(cine, SIZE, frame=30)


def test_palette_file_is_cropped_to_its_region_and_the_crop_recorded(tmp_path):
    palette, expected = build_variant("palette_color", tmp_path)  # burned-in text outside the tissue region
    request = FileContextSource(palette, SIZE).plan(0, 0, "breast")
    assert request["crop"] == REGION_BOX and request["crop_source"] == "ultrasound_region"
    assert request["frame"] == 0 and request["frame_count"] == 1
    # what the region holds, as an 8-bit PNG read the usual way (palette levels are 16-bit: g * 257)
    crop = (expected[0, REGION_BOX[1] : REGION_BOX[3], REGION_BOX[0] : REGION_BOX[2]] / 257).astype(np.uint8)
    reference = read_grey_image(_png(tmp_path / "region.png", crop), SIZE)
    torch.testing.assert_close(FileContextSource(palette, SIZE).draw(request).image, reference, rtol=0, atol=1e-6)

    whole = FileContextSource(palette, SIZE, crop_to_region=False).plan(0, 0, "breast")
    assert whole["crop"] == [0, 0, 64, 48] and whole["crop_source"] == "not_cropped"
    no_region = write_image(tmp_path / "no_region.dcm", frame_numbered_cine(1)[..., 0], regions=None)
    recorded = FileContextSource(no_region, SIZE).plan(0, 0, "breast")
    assert recorded["crop"] == [0, 0, 64, 48] and recorded["crop_source"] == "no_region"


def test_a_folder_of_dicom_and_png_files_is_a_bank(tmp_path, caplog):
    folder = tmp_path / "bank"
    cine = _cine(folder / "cine.dcm", frames=5)
    palette, _ = build_variant("palette_color", folder / "clinic")
    _png(folder / "a.png", np.full((40, 40), 90, np.uint8))
    _png(folder / "clinic" / "b.png", np.full((40, 40), 200, np.uint8))
    broken = folder / "broken.dcm"
    broken.write_bytes(cine.read_bytes()[:400])  # cut short
    (folder / "notes.txt").write_text("acquired on the old scanner")
    with caplog.at_level(logging.WARNING, logger="usgen_monai.engines.context_sources"):
        source = BankContextSource(tiny_autoencoder(), SIZE, dataset_dir=folder, bank_size=10)
    bank = source.bank(None)
    paths = sorted(context["path"] for context in bank.contexts)
    assert paths == sorted(str(p) for p in (folder / "a.png", folder / "clinic" / "b.png", cine, palette))
    assert [path for path, _ in source.skipped] == [str(broken)]  # notes.txt is no image: ignored, not skipped
    assert str(broken) in source.skipped[0][1] and f"context bank: skipping {broken}" in caplog.text
    for index, context in enumerate(bank.contexts):
        request = source.request(index, "msk")
        assert request["sha256"] == file_sha256(context["path"])
        assert ("frame" in request) == context["path"].endswith(".dcm")
        torch.testing.assert_close(source.draw(request).image, bank.images[index], rtol=0, atol=0)  # bit-exact
    by_path = {c["path"]: source.request(i, "msk") for i, c in enumerate(bank.contexts)}
    assert by_path[str(cine)]["frame"] == 2 and by_path[str(cine)]["crop"] == REGION_BOX
    assert by_path[str(palette)]["crop_source"] == "ultrasound_region"

    _cine(cine, frames=6)  # the file changed after the run
    with pytest.raises(ValueError, match=rf"context image {cine} changed since the request"):
        source.draw(by_path[str(cine)])

    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"no image files .* in dataset_dir=.*empty"):
        BankContextSource(tiny_autoencoder(), SIZE, dataset_dir=tmp_path / "empty")


def test_regeneration_from_the_record_is_bit_exact_and_checks_the_file(ckpt, tmp_path):  # noqa: F811
    cine = _cine(tmp_path / "cine.dcm")
    record = _generator(ckpt, context_image=cine).plan(0, seed=3)
    context = record["context_image"]
    assert context["frame"] == 15 and context["crop"] == REGION_BOX and context["path"] == str(cine.resolve())
    first = _generator(ckpt, context_image=cine).generate(record)
    again = _generator(ckpt, context_image=cine).regenerate(record)  # a new generator, as in another process
    torch.testing.assert_close(again.image, first.image, rtol=0, atol=0)

    _cine(cine, frames=31)
    with pytest.raises(ValueError, match=rf"context image {cine.resolve()} changed since the request"):
        _generator(ckpt, context_image=tmp_path / "cine.dcm").regenerate(record)
