from __future__ import annotations

import tempfile
import unittest
from collections import Counter
from pathlib import Path

import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.losses import DiceCELoss
from monai.transforms import Compose
from parameterized import parameterized
from torch.utils.data import ConcatDataset

from tests.utils import simulated_triples
from usgen_monai.engines.checkpoint import ResumableCheckpoint
from usgen_monai.engines.sam_training import RealSyntheticSampler, SamInferer, SamPrepareBatch, set_trainable
from usgen_monai.networks.sam import build_sam
from usgen_monai.transforms.prompts import RandBoxFromMaskd, RandPointsFromMaskd, ResizeLongestSidePadd

# tiny simulated fetal heads, (1, H, W) row-major as the simulator makes them
ITEMS = [{"image": image[None], "label": mask[None]} for image, mask, _ in simulated_triples("fetal_head", num=4)]
TRANSFORM = Compose(
    [
        RandBoxFromMaskd("label", reverse_indexing=False),  # a new box from the mask every iteration
        RandPointsFromMaskd("label", num_foreground=1, num_background=1, reverse_indexing=False),
        ResizeLongestSidePadd(["image", "label"], image_size=64, mode=["bilinear", "nearest"], reverse_indexing=False),
    ]
)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _trainer(net, max_epochs: int = 1, train: str = "mask_decoder", handlers=(), lr: float = 1e-3):
    dataset = Dataset(ITEMS, TRANSFORM)
    return SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=max_epochs,
        train_data_loader=DataLoader(dataset, batch_size=2, shuffle=False),
        network=net,
        optimizer=torch.optim.Adam(set_trainable(net, train), lr=lr),
        loss_function=DiceCELoss(sigmoid=True, squared_pred=True),
        prepare_batch=SamPrepareBatch(),
        inferer=SamInferer(),
        train_handlers=list(handlers),
    )


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    return build_sam("tiny")


class TestSamFineTuning(unittest.TestCase):
    @parameterized.expand(
        [["mask_decoder", {"mask_decoder"}], ["all", {"image_encoder", "prompt_encoder", "mask_decoder"}]]
    )
    def test_only_trained_parts_change(self, train, changed_parts):
        net = _tiny()
        before = _state(net)
        _trainer(net, max_epochs=2, train=train).run()
        after = net.state_dict()
        changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
        self.assertEqual(changed, changed_parts)

    def test_boxes_are_drawn_every_iteration(self):
        trainer = _trainer(_tiny(), max_epochs=3)
        boxes = []

        @trainer.on(Events.ITERATION_COMPLETED)
        def record(engine):  # the batch is decollated after the iteration: one dict per item
            boxes.append(tuple(torch.as_tensor(engine.state.batch[0]["roi"]).tolist()))

        trainer.run()
        first_item = boxes[::2]  # the same image, once per epoch
        self.assertEqual(len(first_item), 3)
        self.assertGreater(len(set(first_item)), 1)

    def test_resume(self):
        with tempfile.TemporaryDirectory() as tmp:
            net = _tiny()
            first = _trainer(net, max_epochs=2)
            ResumableCheckpoint(
                tmp,
                {"sam": net, "optimizer": first.optimizer},
                {"sam": net.arguments},
                final_filename="model.pt",
                final_objects=["sam"],
            ).attach(first)
            first.run()
            trained = _state(net)

            net2 = _tiny(seed=1)
            second = _trainer(net2, max_epochs=3)
            checkpoint = ResumableCheckpoint(tmp, {"sam": net2, "optimizer": second.optimizer})
            checkpoint.attach(second)
            restored = {}
            second.add_event_handler(Events.STARTED, lambda e: restored.update(_state(net2)))
            second.run()
            self.assertEqual((second.state.epoch, second.state.iteration), (3, 6))
            for key, value in trained.items():
                torch.testing.assert_close(restored[key], value)
            self.assertEqual(checkpoint.constants["sam"], net.arguments)
            shipped = build_sam("tiny", checkpoint=Path(tmp) / "model.pt")  # the first run's final file is a network
            torch.testing.assert_close(shipped.state_dict(), trained)

    def test_set_trainable_errors(self):
        with self.assertRaisesRegex(ValueError, r"train must be 'all' or parts of .*train='decoder'"):
            set_trainable(_tiny(), "decoder")
        net = _tiny()
        self.assertEqual(len(set_trainable(net, ["prompt_encoder"])), len(list(net.prompt_encoder.parameters())))


class TestSamPrepareBatchAndInferer(unittest.TestCase):
    def test_batch_to_call(self):
        batch = next(iter(DataLoader(Dataset(ITEMS, TRANSFORM), batch_size=2)))
        images, labels, args, prompts = SamPrepareBatch()(batch, "cpu")
        self.assertEqual((tuple(images.shape), tuple(labels.shape), args), ((2, 1, 64, 64), (2, 1, 64, 64), ()))
        self.assertEqual(
            {k: tuple(v.shape) for k, v in prompts.items()},
            {"boxes": (2, 1, 4), "points": (2, 1, 2, 2), "point_labels": (2, 1, 2)},
        )
        self.assertEqual(set(labels.unique().tolist()), {0.0, 1.0})
        net = _tiny().eval()
        with torch.no_grad():
            single = SamInferer()(images, net, **prompts)
            best = SamInferer(multimask_output=True)(images, net, **prompts)
            logits, iou = net(images, multimask_output=True, **prompts)
        self.assertEqual((tuple(single.shape), tuple(best.shape)), ((2, 1, 64, 64), (2, 1, 64, 64)))
        for b in range(2):
            torch.testing.assert_close(best[b, 0], logits[b, 0, iou[b, 0].argmax()])
        with self.assertRaisesRegex(ValueError, "batch has no prompt"):
            SamPrepareBatch()({"image": images, "label": labels})


class TestRealSyntheticSampler(unittest.TestCase):
    def test_fixed_counts_per_epoch(self):
        sampler = RealSyntheticSampler(num_real=4, num_synthetic=30, synthetic_fraction=0.75)
        self.assertEqual(len(sampler), 16)  # every real item once per epoch: 4 real + 12 synthetic
        epochs = []
        for epoch in range(3):
            sampler.set_epoch(epoch)
            indices = list(sampler)
            counts = Counter(i < 4 for i in indices)
            self.assertEqual((counts[True], counts[False]), (4, 12))
            self.assertEqual(sorted(i for i in indices if i < 4), [0, 1, 2, 3])
            self.assertTrue(all(4 <= i < 34 for i in indices if i >= 4))
            epochs.append(indices)
        self.assertNotEqual(epochs[0], epochs[1])
        sampler.set_epoch(1)
        self.assertEqual(list(sampler), epochs[1])  # the draws depend only on seed and epoch (resumable)

    def test_ranks_share_an_epoch_and_loader(self):
        ranks = [RealSyntheticSampler(3, 5, 0.5, num_samples=7, num_replicas=2, rank=r) for r in range(2)]
        parts = [list(s) for s in ranks]
        self.assertEqual([len(p) for p in parts], [4, 4])
        self.assertEqual(sorted(parts[0] + parts[1])[:7], sorted(ranks[0].epoch_indices(0)))
        real, synthetic = Dataset(ITEMS[:2]), Dataset(ITEMS[2:])
        loader = DataLoader(
            ConcatDataset([real, synthetic]),
            batch_size=2,
            sampler=RealSyntheticSampler(len(real), len(synthetic), synthetic_fraction=0.5),
        )
        self.assertEqual(sum(len(b["image"]) for b in loader), 4)

    def test_defaults_and_errors(self):
        self.assertEqual(len(RealSyntheticSampler(5, 0, synthetic_fraction=0.0)), 5)
        self.assertEqual(len(RealSyntheticSampler(0, 9, synthetic_fraction=1.0)), 9)
        with self.assertRaisesRegex(
            ValueError, r"needs 2 real and 2 synthetic items per epoch, but num_real=2 and num_synthetic=0"
        ):
            RealSyntheticSampler(2, 0, synthetic_fraction=0.5)
        with self.assertRaisesRegex(ValueError, r"synthetic_fraction=1\.5"):
            RealSyntheticSampler(2, 2, synthetic_fraction=1.5)


if __name__ == "__main__":
    unittest.main()
