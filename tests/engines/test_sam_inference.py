"""Prompted-inference pieces: the prompts file reader, the malformed-item check, the embedding-caching inferer and
the mapping of model-frame predictions back to the original grid."""

from __future__ import annotations

import json

import pytest
import torch

from usgen_monai.engines.sam_inference import CheckPromptItemd, FromModelFramed, PromptInferer, prompt_inputs
from usgen_monai.engines.sam_training import SamInferer
from usgen_monai.networks.sam import build_sam
from usgen_monai.transforms.prompts import ResizeLongestSidePad


def test_prompt_inputs_reads_lists_and_datalists(tmp_path):
    items = [{"image": "a.png", "roi": [1, 2, 3, 4]}, {"image": "/abs/b.png", "foreground": [[1, 1]], "extra": 7}]
    (tmp_path / "list.json").write_text(json.dumps(items))
    read = prompt_inputs(tmp_path / "list.json")
    assert read[0] == {"image": str(tmp_path / "a.png"), "roi": [1, 2, 3, 4]}
    assert read[1] == {"image": "/abs/b.png", "foreground": [[1, 1]], "extra": 7}
    (tmp_path / "dict.json").write_text(json.dumps({"test": items[:1], "training": items}))
    assert len(prompt_inputs(tmp_path / "dict.json")) == 1
    assert len(prompt_inputs(tmp_path / "dict.json", datalist_key="training")) == 2
    (tmp_path / "one.json").write_text(json.dumps({"name": "x", "items": items}))
    assert len(prompt_inputs(tmp_path / "one.json")) == 2  # the only list


def test_malformed_entries_stay_and_fail_when_prepared(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps([{"image": "a.png"}, 5, {"roi": [1, 2, 3, 4]}, {"image": ""}]))
    read = prompt_inputs(tmp_path / "p.json")
    assert len(read) == 4 and CheckPromptItemd()(read[0]) == read[0]
    for k in (1, 2, 3):
        assert read[k]["image"] == f"{tmp_path / 'p.json'} item {k}"
        with pytest.raises(ValueError, match=f"p.json item {k}"):
            CheckPromptItemd()(read[k])


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "cannot read prompts file"),
        ("[]", "holds no items"),
        ('{"a": [], "b": []}', "without a 'test'"),
        ('"text"', "expected a list of items"),
    ],
)
def test_prompt_file_errors_name_the_file(tmp_path, content, message):
    (tmp_path / "p.json").write_text(content)
    with pytest.raises(ValueError, match=message) as raised:
        prompt_inputs(tmp_path / "p.json")
    assert "p.json" in str(raised.value)
    with pytest.raises(ValueError, match="does not exist"):
        prompt_inputs(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="no inputs"):
        prompt_inputs("", dataset_dir="")


def test_prompt_inferer_caches_embeddings_and_matches_the_full_forward():
    torch.manual_seed(0)
    net = build_sam("tiny").eval()
    images = torch.rand(3, 1, 64, 64)
    boxes = torch.tensor([[[4.0, 5, 40, 50]], [[10, 10, 60, 30]], [[0, 0, 63, 63]]])
    inferer = PromptInferer(max_cached_images=2)
    with torch.no_grad():
        reference = SamInferer()(images, net, boxes=boxes)
        cached = inferer(images[:1], net, boxes=boxes[:1])
        torch.testing.assert_close(cached, reference[:1])
        assert (inferer.misses, inferer.hits) == (1, 0)
        again = inferer(images[:1], net, boxes=boxes[1:2])  # another box on the same image: no new embedding
        torch.testing.assert_close(again, SamInferer()(images[:1], net, boxes=boxes[1:2]))
        assert (inferer.misses, inferer.hits) == (1, 1)
        torch.testing.assert_close(inferer(images, net, boxes=boxes), reference, atol=1e-5, rtol=1e-4)
        assert (inferer.misses, inferer.hits) == (3, 2) and len(inferer._cache) == 2  # the oldest dropped
    with pytest.raises(ValueError, match="select a frame"):
        inferer(torch.rand(1, 1, 64, 64, 3), net, boxes=boxes[:1])
    with pytest.raises(ValueError, match="max_cached_images"):
        PromptInferer(max_cached_images=0)


def test_from_model_frame_gives_a_mask_back_on_its_grid():
    mask = torch.zeros(1, 50, 30)  # MONAI order: 50 columns, 30 rows
    mask[0, 10:40, 5:20] = 1
    frame = ResizeLongestSidePad(64, mode="nearest")(mask)
    out = FromModelFramed("pred", reference_key="label_original", image_size=64, reference_to="label")(
        {"pred": frame.float(), "label_original": mask}
    )
    assert torch.equal(out["pred"], mask) and out["label"] is mask
    with pytest.raises(KeyError, match="label_original"):
        FromModelFramed("pred", reference_key="label_original", image_size=64)({"pred": frame})
