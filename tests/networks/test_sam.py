from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import torch
from monai.networks import eval_mode
from parameterized import parameterized
from segment_anything import sam_model_registry

from usgen_monai.engines.checkpoint import save_checkpoint
from usgen_monai.networks.sam import SAM_ARCHITECTURES, PromptableSam, build_sam, load_sam_weights

TINY = SAM_ARCHITECTURES["tiny"]

# (kwargs, input_shape, prompts per image N, points per prompt P (0: boxes only), multimask, expected logits shape)
CASES = [
    [{}, (1, 1, 64, 64), 1, 0, False, (1, 1, 1, 64, 64)],
    [{}, (2, 3, 64, 64), 3, 0, False, (2, 3, 1, 64, 64)],
    [{}, (2, 1, 64, 64), 2, 4, True, (2, 2, 3, 64, 64)],
    [{"num_multimask_outputs": 2}, (1, 1, 40, 64), 1, 2, True, (1, 1, 2, 40, 64)],  # unpadded input
]


def _prompts(batch: int, num: int, points: int, size: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    corners = torch.rand(batch, num, 2, 2, generator=g) * (size - 1)
    boxes = torch.cat([corners.min(2).values, corners.max(2).values], -1)
    if not points:
        return {"boxes": boxes}
    coords = torch.rand(batch, num, points, 2, generator=g) * (size - 1)
    labels = torch.randint(0, 2, (batch, num, points), generator=g)
    return {"boxes": boxes, "points": coords, "point_labels": labels}


def _tiny(**kwargs) -> PromptableSam:
    torch.manual_seed(0)
    return PromptableSam(**{**TINY, **kwargs})


class TestPromptableSam(unittest.TestCase):
    @parameterized.expand(CASES)
    def test_shape(self, kwargs, input_shape, num, points, multimask, expected):
        net = _tiny(**kwargs)
        with eval_mode(net):
            logits, iou = net(
                torch.rand(input_shape), multimask_output=multimask, **_prompts(input_shape[0], num, points)
            )
        self.assertEqual(tuple(logits.shape), expected)
        self.assertEqual(tuple(iou.shape), expected[:3])

    def test_batch_equals_single_images(self):
        net = _tiny()
        images, prompts = torch.rand(2, 1, 64, 64), _prompts(2, 2, 3)
        with eval_mode(net):
            batched, _ = net(images, **prompts)
            for b in range(2):
                single, _ = net(images[b : b + 1], **{k: v[b : b + 1] for k, v in prompts.items()})
                torch.testing.assert_close(batched[b : b + 1], single, atol=1e-5, rtol=1e-4)

    def test_grey_is_repeated_to_rgb(self):
        net = _tiny()
        grey = torch.rand(1, 1, 64, 64)
        torch.testing.assert_close(net.preprocess(grey), net.preprocess(grey.repeat(1, 3, 1, 1)))
        expected = (grey[0, 0] * 255 - 123.675) / 58.395
        torch.testing.assert_close(net.preprocess(grey)[0, 0], expected)

    def test_points_only_and_unbatched_prompt_shapes(self):
        net = _tiny()
        with eval_mode(net):
            logits, _ = net(torch.rand(2, 1, 64, 64), points=torch.rand(2, 3, 2) * 63, point_labels=torch.ones(2, 3))
            boxed, _ = net(torch.rand(2, 1, 64, 64), boxes=torch.tensor([[1.0, 2, 30, 40], [3, 4, 50, 60]]))
        self.assertEqual(tuple(logits.shape), (2, 1, 1, 64, 64))
        self.assertEqual(tuple(boxed.shape), (2, 1, 1, 64, 64))

    def test_mixed_batch_of_box_and_click_prompts(self):
        # one image prompted by a box (padding points), the other by clicks (all-NaN box): each decodes as alone
        net = _tiny()
        images = torch.rand(2, 1, 64, 64)
        box = torch.tensor([[[5.0, 6, 40, 50]]])
        clicks, labels = torch.tensor([[[[20.0, 22], [50, 10]]]]), torch.tensor([[[1, 0]]])
        boxes = torch.cat([box, torch.full((1, 1, 4), float("nan"))])
        points = torch.cat([torch.zeros(1, 1, 2, 2), clicks])
        point_labels = torch.cat([torch.full((1, 1, 2), -1), labels])
        with eval_mode(net):
            mixed, _ = net(images, boxes=boxes, points=points, point_labels=point_labels)
            boxed, _ = net(images[:1], boxes=box)
            clicked, _ = net(images[1:], points=clicks, point_labels=labels)
            with self.assertRaisesRegex(ValueError, "image 0 of the batch has no prompt"):
                net(images[:1], boxes=torch.full((1, 1, 4), float("nan")), points=torch.zeros(1, 1, 2, 2),
                    point_labels=torch.full((1, 1, 2), -1))  # fmt: skip
            with self.assertRaisesRegex(ValueError, "NaN coordinates"):
                net(images[:1], boxes=torch.tensor([[[1.0, float("nan"), 3, 4]]]))
        torch.testing.assert_close(mixed[:1], boxed, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(mixed[1:], clicked, atol=1e-5, rtol=1e-4)

    def test_errors(self):
        net = _tiny()
        image = torch.rand(1, 1, 64, 64)
        with self.assertRaisesRegex(ValueError, "needs a prompt"):
            net(image)
        with self.assertRaisesRegex(ValueError, r"boxes must be \(B=1, N, 4\)"):
            net(image, boxes=torch.zeros(2, 1, 4))
        with self.assertRaisesRegex(ValueError, "points and point_labels together"):
            net(image, points=torch.zeros(1, 1, 2))
        with self.assertRaisesRegex(ValueError, "same number of prompts"):
            net(image, boxes=torch.zeros(1, 2, 4), points=torch.zeros(1, 3, 1, 2), point_labels=torch.ones(1, 3, 1))
        with self.assertRaisesRegex(ValueError, "exceed the model's image_size=64"):
            net(torch.rand(1, 1, 65, 64), boxes=torch.zeros(1, 4))
        with self.assertRaisesRegex(ValueError, r"\(B, 1 or 3, H, W\)"):
            net(torch.rand(1, 2, 64, 64), boxes=torch.zeros(1, 4))
        with self.assertRaisesRegex(ValueError, "image_size=60, patch_size=8"):
            PromptableSam(**{**TINY, "image_size": 60})
        with self.assertRaisesRegex(ValueError, r"encoder_global_attn_indexes=\[5\]"):
            PromptableSam(**{**TINY, "encoder_global_attn_indexes": (5,)})
        with self.assertRaisesRegex(ValueError, "unknown SAM architecture 'vit_x'"):
            build_sam("vit_x")

    def test_arguments_rebuild_the_network(self):
        net = _tiny()
        self.assertEqual(PromptableSam(**net.arguments).arguments, net.arguments)
        self.assertEqual(set(net.state_dict()), set(PromptableSam(**net.arguments).state_dict()))


class TestSamCheckpoints(unittest.TestCase):
    """A randomly initialised ViT-B from ``segment_anything.sam_model_registry``, saved as the published files are
    saved (``torch.save(model.state_dict())``), built once for the module."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        vit_b = sam_model_registry["vit_b"]()
        cls.vit_b_path = Path(cls.tmp.name) / "sam_vit_b.pth"
        torch.save(vit_b.state_dict(), cls.vit_b_path)
        cls.probe = {
            k: vit_b.state_dict()[k].clone() for k in ("image_encoder.pos_embed", "mask_decoder.iou_token.weight")
        }
        del vit_b

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_published_layout_loads(self):
        net = build_sam("vit_b", checkpoint=self.vit_b_path)
        self.assertFalse(net.training)
        for key, value in self.probe.items():
            torch.testing.assert_close(net.state_dict()[key], value)

    def test_mismatch_names_keys_counts_and_file(self):
        with self.assertRaises(ValueError) as ctx:
            build_sam("small", checkpoint=self.vit_b_path)
        message = str(ctx.exception)
        self.assertIn(str(self.vit_b_path), message)
        self.assertRegex(message, r"\d+ unexpected keys \(image_encoder\.blocks\.\d+\.")
        self.assertRegex(message, r"\d+ keys of other shapes \(e\.g\. \S+: checkpoint \(")
        self.assertIn("embed dim 768, depth 12 (vit_b)", message)

    def test_missing_and_unexpected_keys(self):
        net = _tiny()
        state = net.state_dict()
        state["mask_decoder.extra.weight"] = torch.zeros(1)
        del state["prompt_encoder.not_a_point_embed.weight"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "renamed.pt"
            torch.save(state, path)
            with self.assertRaisesRegex(
                ValueError,
                r"renamed\.pt does not fit the network: 1 missing keys \(prompt_encoder\.not_a_point_embed\.weight\); "
                r"1 unexpected keys \(mask_decoder\.extra\.weight\)",
            ):
                load_sam_weights(_tiny(), path)

    def test_gpu_saved_loads_on_cpu(self):
        """Tensors tagged as saved on ``cuda:0`` (as a GPU run writes them) load with the default CPU mapping."""
        net = _tiny()
        registry = torch.serialization._package_registry
        entry = (-1, lambda obj: "cuda:0", lambda obj, location: None)  # tag every storage as a CUDA one
        registry.insert(0, entry)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "gpu.pt"
            try:
                torch.save(net.state_dict(), path)
            finally:
                registry.remove(entry)
            if not torch.cuda.is_available():
                with self.assertRaisesRegex(RuntimeError, "CUDA"):
                    torch.load(path, weights_only=True)
            loaded = load_sam_weights(_tiny(image_size=64), path)
        self.assertEqual(next(loaded.parameters()).device.type, "cpu")
        torch.testing.assert_close(loaded.state_dict(), net.state_dict())

    def test_package_checkpoint_and_prefixed_keys(self):
        net = _tiny()
        with tempfile.TemporaryDirectory() as tmp:
            path = save_checkpoint(Path(tmp) / "model.pt", {"sam": net}, {"sam": net.arguments})
            torch.testing.assert_close(build_sam("tiny", checkpoint=path).state_dict(), net.state_dict())
            with self.assertRaisesRegex(ValueError, r"no state for 'network'; it has \['sam'\]"):
                build_sam("tiny", checkpoint=path, state_key="network")
            ddp = Path(tmp) / "ddp.pt"
            torch.save({"model": {f"module.{k}": v for k, v in net.state_dict().items()}}, ddp)
            torch.testing.assert_close(build_sam("tiny", checkpoint=ddp).state_dict(), net.state_dict())

    def test_unreadable_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(FileNotFoundError, "none is downloaded"):
                build_sam("tiny", checkpoint=Path(tmp) / "absent.pth")
            objects = Path(tmp) / "objects.pt"
            torch.save({"net": torch.nn.Linear(1, 1)}, objects)
            with self.assertRaisesRegex(ValueError, r"cannot read SAM checkpoint .*objects\.pt with torch\.load"):
                build_sam("tiny", checkpoint=objects)
            listed = Path(tmp) / "list.pt"
            torch.save([torch.zeros(1)], listed)
            with self.assertRaisesRegex(ValueError, r"list\.pt holds no SAM state dict"):
                build_sam("tiny", checkpoint=listed)


if __name__ == "__main__":
    unittest.main()
