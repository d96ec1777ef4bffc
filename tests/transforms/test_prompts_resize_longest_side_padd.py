from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor, list_data_collate
from monai.transforms import Compose, Invertd

from usgen_monai.transforms.prompts import RandBoxFromMaskd, RandPointsFromMaskd, ResizeLongestSidePadd

H, W = 97, 211


def _item(name: str = "case_1.png", **prompts):
    label = np.zeros((1, W, H), np.uint8)  # MONAI's order: (C, W, H)
    label[0, 30:190, 20:70] = 1
    image = MetaTensor(torch.rand(1, W, H), meta={"filename_or_obj": name})
    return {"image": image, "label": MetaTensor(torch.as_tensor(label), meta={"filename_or_obj": name}), **prompts}


class TestResizeLongestSidePadd(unittest.TestCase):
    def test_prompts_follow_the_image(self):
        t = ResizeLongestSidePadd(["image", "label"], image_size=256, mode=["bilinear", "nearest"])
        out = t(_item(roi=[30, 20, 189, 69], foreground=[[100, 40]], background=[[5, 90]]))
        s = 256 / 211, 118 / 97
        torch.testing.assert_close(out["boxes"], torch.tensor([[30 * s[0], 20 * s[1], 189 * s[0], 69 * s[1]]]))
        torch.testing.assert_close(out["points"], torch.tensor([[[100 * s[0], 40 * s[1]], [5 * s[0], 90 * s[1]]]]))
        torch.testing.assert_close(out["point_labels"], torch.tensor([[1, 0]]))
        self.assertEqual(out["roi"], [30, 20, 189, 69])
        label = out["label"][0]  # row-major model frame: the box's corners fall on the mask's edges
        rows, cols = torch.nonzero(label, as_tuple=True)
        self.assertLessEqual(abs(cols.min().item() - out["boxes"][0, 0].item()), 1.5)
        self.assertLessEqual(abs(rows.max().item() - out["boxes"][0, 3].item()), 1.5)

    def test_simulated_prompts_batch_and_invert(self):
        pipeline = Compose(
            [
                RandBoxFromMaskd("label"),
                RandPointsFromMaskd("label", num_foreground=2, num_background=1),
                ResizeLongestSidePadd(["image", "label"], image_size=256, mode=["bilinear", "nearest"]),
            ]
        ).set_random_state(0)
        items = [pipeline(_item(f"case_{i}.png")) for i in range(2)]
        batch = list_data_collate(items)
        self.assertEqual(tuple(batch["boxes"].shape), (2, 1, 4))
        self.assertEqual(tuple(batch["points"].shape), (2, 1, 3, 2))
        self.assertEqual(tuple(batch["image"].shape), (2, 1, 256, 256))
        item = items[0]
        item["pred"] = MetaTensor(item["label"].float() * 2 - 1, meta=item["label"].meta)
        item["pred"].applied_operations = list(item["label"].applied_operations)
        back = Invertd("pred", transform=pipeline, orig_keys="label")(item)["pred"]
        self.assertEqual(tuple(back.shape), (1, W, H))
        np.testing.assert_array_equal((back > 0).numpy(), _item()["label"].numpy().astype(bool))

    def test_pad_points(self):
        t = ResizeLongestSidePadd("image", image_size=128, pad_points=3)
        out = t(_item(foreground=[[1, 2]]))
        torch.testing.assert_close(out["point_labels"], torch.tensor([[1, -1, -1]]))
        boxed = t(_item(roi=[1, 2, 30, 40]))
        self.assertEqual(tuple(boxed["points"].shape), (1, 3, 2))
        with self.assertRaisesRegex(ValueError, "case_1.png: 4 points given, more than pad_points=3"):
            t(_item(foreground=[[1, 2]] * 4))

    def test_box_and_click_items_batch_together(self):
        # the SAM bundle's click training: OneOf(box, clicks) per item, padded boxes and points
        from monai.transforms import OneOf, SelectItemsd

        pipeline = Compose(
            [
                OneOf([RandBoxFromMaskd("label"), RandPointsFromMaskd("label", num_background=1, empty="background")]),
                ResizeLongestSidePadd(["image", "label"], image_size=128, pad_points=2, pad_boxes=True),
                SelectItemsd(["image", "label", "boxes", "points", "point_labels"]),
            ]
        ).set_random_state(1)
        items = [pipeline(_item(f"case_{i}.png")) for i in range(8)]
        batch = list_data_collate(items)
        self.assertEqual((tuple(batch["boxes"].shape), tuple(batch["points"].shape)), ((8, 1, 4), (8, 1, 2, 2)))
        no_box = torch.isnan(batch["boxes"]).all(-1)[:, 0]
        no_points = (batch["point_labels"] == -1).all(-1)[:, 0]
        self.assertTrue(bool(no_box.any()) and bool(no_points.any()))  # both kinds drawn
        torch.testing.assert_close(no_box, ~no_points)  # each item one kind of prompt
        self.assertTrue(bool((batch["point_labels"][no_box] == torch.tensor([1, 0])).all()))

    def test_errors_name_the_item(self):
        t = ResizeLongestSidePadd(["image", "label"], image_size=128)
        with self.assertRaisesRegex(
            ValueError, r"case_9\.png: roi .* lies outside the image of width 211 and height 97"
        ):
            t(_item("case_9.png", roi=[0, 0, 150, 120]))  # fits only with the axes swapped
        with self.assertRaisesRegex(ValueError, r"case_9\.png: roi .* is an empty box"):
            t(_item("case_9.png", roi=[5, 5, 5, 9]))
        with self.assertRaisesRegex(ValueError, r"case_9\.png: foreground must be a list of \[x, y\]"):
            t(_item("case_9.png", foreground=[3, 4, 5]))
        with self.assertRaisesRegex(ValueError, r"case_9\.png: no prompt; give 'roi'"):
            t(_item("case_9.png"))
        self.assertNotIn("boxes", ResizeLongestSidePadd("image", allow_missing_prompts=True)(_item()))
        mismatched = _item(roi=[1, 1, 5, 5])
        mismatched["label"] = mismatched["label"][:, :100]
        with self.assertRaisesRegex(ValueError, "different spatial sizes"):
            t(mismatched)


if __name__ == "__main__":
    unittest.main()
