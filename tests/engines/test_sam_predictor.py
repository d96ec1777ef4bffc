from __future__ import annotations

import unittest

import numpy as np
import torch

from usgen_monai.engines.sam_predictor import PromptPredictor
from usgen_monai.networks.sam import build_sam
from usgen_monai.transforms.prompts import LongestSideFrame, ResizeLongestSidePad

H, W = 97, 211  # an odd, non-square image: a swapped axis or a stretch shows


def _tiny():
    torch.manual_seed(0)
    return build_sam("tiny").eval()


class _Counter:
    """Counts forward calls of the image encoder."""

    def __init__(self, net):
        self.calls = 0
        net.image_encoder.register_forward_hook(lambda *args: setattr(self, "calls", self.calls + 1))


class _MaskEcho(torch.nn.Module):
    """Stands in for a trained model: its 'prediction' is a mask given in the model's frame, as logits, for each
    prompt; it records the model-frame boxes it receives."""

    def __init__(self, net, model_frame_mask: torch.Tensor):
        super().__init__()
        self.net, self.mask, self.boxes = net, model_frame_mask, []
        self.image_size, self.mask_threshold = net.image_size, net.mask_threshold

    @property
    def device(self):
        return self.net.device

    def embed_images(self, images):
        return self.net.embed_images(images)

    def decode(self, embeddings, boxes=None, points=None, point_labels=None, multimask_output=False):
        self.boxes.append(boxes)
        num = boxes.shape[1]
        logits = (self.mask.float() * 8 - 4).expand(1, num, 1, *self.mask.shape[-2:])
        return logits, torch.ones(1, num, 1)


class TestPromptPredictor(unittest.TestCase):
    def setUp(self):
        self.net = _tiny()
        self.image = np.random.default_rng(0).random((1, W, H), dtype=np.float32)  # MONAI's order (C, W, H)

    def test_one_embedding_many_boxes_equals_per_box(self):
        predictor = PromptPredictor(self.net)
        predictor.set_image(self.image)
        boxes = np.array([[10, 5, 120, 60], [100, 30, 210, 96], [0, 0, 50, 50]])
        points, labels = np.array([[60, 30], [150, 80]]), np.array([1, 0])
        logits, iou = predictor.predict(boxes=boxes, points=points, labels=labels, return_logits=True)
        self.assertEqual(tuple(logits.shape), (3, 1, W, H))
        self.assertEqual(tuple(iou.shape), (3, 1))
        for n, box in enumerate(boxes):
            single, single_iou = predictor.predict(boxes=box, points=points, labels=labels, return_logits=True)
            torch.testing.assert_close(single[0], logits[n], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(single_iou[0], iou[n], atol=1e-5, rtol=1e-4)
        masks, _ = predictor.predict(boxes=boxes, points=points, labels=labels)
        torch.testing.assert_close(masks, logits > 0)

    def test_matches_the_network_on_the_model_frame(self):
        predictor = PromptPredictor(self.net, reverse_indexing=False)
        image = self.image[:, :64, :64].transpose(0, 2, 1).copy()  # already the frame's size: no resize
        predictor.set_image(image)
        logits, _ = predictor.predict(boxes=[3, 4, 40, 50], return_logits=True)
        with torch.no_grad():
            expected, _ = self.net(torch.as_tensor(image)[None], boxes=torch.tensor([[3.0, 4, 40, 50]]))
        torch.testing.assert_close(logits, expected[0], atol=1e-5, rtol=1e-4)

    def test_cache_hit_does_not_recompute(self):
        counter = _Counter(self.net)
        predictor = PromptPredictor(self.net, max_cached_images=2)
        other = self.image[:, ::-1].copy()
        key = predictor.set_image(self.image)
        predictor.predict(boxes=[1, 1, 30, 30])
        predictor.set_image(self.image)  # same pixels: the digest is the key
        predictor.predict(boxes=[5, 5, 60, 60])
        self.assertEqual(counter.calls, 1)
        predictor.set_image(other, key="other.png")
        predictor.predict(boxes=[1, 1, 30, 30], key=key)  # the first image, by key, without setting it again
        self.assertEqual((counter.calls, predictor.cached_keys), (2, ["other.png", key]))
        predictor.set_image(self.image, key="third.png")  # evicts the least recently used ("other.png")
        self.assertEqual((counter.calls, predictor.cached_keys), (3, [key, "third.png"]))
        predictor.set_image(other, key="third.png")  # a key set again with other pixels is recomputed
        self.assertEqual(counter.calls, 4)
        with self.assertRaisesRegex(KeyError, "no cached embedding for 'other.png'"):
            predictor.predict(boxes=[1, 1, 30, 30], key="other.png")
        predictor.forget()
        with self.assertRaisesRegex(RuntimeError, "no image is set"):
            predictor.predict(boxes=[1, 1, 30, 30])

    def test_aspect_ratio_round_trip_is_exact(self):
        """A mask drawn in original coordinates comes back exactly, and prompts scale with the image."""
        rows, cols = np.mgrid[:H, :W]
        drawn = (((cols - 120) / 70.0) ** 2 + ((rows - 50) / 30.0) ** 2 <= 1).astype(np.uint8)
        monai_order = torch.as_tensor(drawn.T[None])  # (1, W, H)
        net = build_sam("tiny", image_size=256).eval()  # a frame larger than the image: the way back shrinks
        model_frame = ResizeLongestSidePad(256, mode="nearest")(monai_order).as_tensor()
        echo = _MaskEcho(net, model_frame)
        predictor = PromptPredictor(echo)
        predictor.set_image(self.image)
        masks, _ = predictor.predict(boxes=[[50, 20, 190, 80], [0, 0, 211, 97]])
        self.assertEqual(tuple(masks.shape), (2, 1, W, H))
        np.testing.assert_array_equal(masks[0, 0].numpy(), drawn.T.astype(bool))
        frame = LongestSideFrame((H, W), 256)
        torch.testing.assert_close(
            echo.boxes[0][0, 0], torch.as_tensor(frame.boxes_to_model([50, 20, 190, 80])).float()
        )
        torch.testing.assert_close(echo.boxes[0][0, 1], torch.tensor([0.0, 0.0, 256.0, 118.0]))  # 97 rows -> 118

    def test_row_major_and_grey_uint8(self):
        predictor = PromptPredictor(self.net, reverse_indexing=False)
        image = (self.image[0].T * 255).astype(np.uint8)  # (H, W), no channel
        predictor.set_image(image)
        masks, iou = predictor.predict_prompts(roi=[10, 5, 120, 60], foreground=[[60, 30]], background=[[200, 90]])
        self.assertEqual((tuple(masks.shape), tuple(iou.shape)), ((1, H, W), (1,)))
        with self.assertRaisesRegex(ValueError, r"prompt: roi .* outside the image of width 211 and height 97"):
            predictor.predict_prompts(roi=[0, 0, 97, 211])

    def test_errors(self):
        predictor = PromptPredictor(self.net)
        with self.assertRaisesRegex(ValueError, r"C = 1 or 3, got shape \(2, 211, 97\)"):
            predictor.set_image(np.zeros((2, W, H)))
        predictor.set_image(self.image)
        with self.assertRaisesRegex(ValueError, "needs a prompt"):
            predictor.predict()
        with self.assertRaisesRegex(ValueError, r"prompt 1: roi .* is an empty box"):
            predictor.predict(boxes=[[1, 1, 30, 30], [5, 5, 5, 30]])
        with self.assertRaisesRegex(ValueError, r"prompt 0: foreground point\(s\) \[\[300\.0, 5\.0\]\] lie outside"):
            predictor.predict(points=[[300, 5]], labels=[1])
        with self.assertRaisesRegex(ValueError, "2 boxes but 3 point sets"):
            predictor.predict(boxes=[[1, 1, 30, 30]] * 2, points=np.ones((3, 1, 2)), labels=np.ones((3, 1)))
        with self.assertRaisesRegex(ValueError, "max_cached_images"):
            PromptPredictor(self.net, max_cached_images=0)


if __name__ == "__main__":
    unittest.main()
