from __future__ import annotations

import logging
import os
import tempfile
import unittest
import zipfile
from pathlib import Path

import torch
from monai.engines import SupervisedTrainer
from parameterized import parameterized

from tests.engines.csg_data import NUM_CLASSES, simulated_batch, tiny_autoencoder, tiny_translator
from usgen_monai.data.simulator import UNIFIED_CLASSES
from usgen_monai.engines import (
    CHECKPOINT_FORMAT,
    ContextVocabulary,
    DDIMSchedule,
    DenoiserInferer,
    DualGuidance,
    LatentSampler,
    ResumableCheckpoint,
    RFlowSchedule,
    TranslatorPrepareBatch,
    build_schedule,
    encode_latents,
    label_to_onehot,
    load_checkpoint,
    read_checkpoint,
    sampling_constants,
    save_checkpoint,
    simulator_vocabulary,
)
from usgen_monai.engines.checkpoint import InvalidCheckpointError

BATCH = simulated_batch(num=2)


class _Unpicklable:
    def state_dict(self):
        return {"fn": lambda: None}


class TestCheckpointFile(unittest.TestCase):
    def test_round_trip_weights_only(self):
        torch.manual_seed(0)
        translator, ae = tiny_translator("controlnet"), tiny_autoencoder()
        opt = torch.optim.Adam(translator.parameters())
        translator(torch.randn(1, 3, 16, 16), torch.tensor([3])).sum().backward()
        opt.step()
        constants = sampling_constants(
            latent_scale_factor=0.87,
            scheduler=RFlowSchedule(),
            class_names=UNIFIED_CLASSES,
            context_vocabulary=simulator_vocabulary(),
            image_size=(32, 32),
            latent_shape=(3, 16, 16),
            semantic_mode="controlnet",
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = save_checkpoint(
                Path(tmp) / "sub" / "model.pt",
                {"translator": translator, "autoencoder": ae, "optimizer": opt},
                constants,
            )
            self.assertEqual(os.listdir(path.parent), ["model.pt"])  # no temporary file left
            raw = torch.load(path, weights_only=True)
            self.assertEqual(raw["format"], CHECKPOINT_FORMAT)
            translator2, ae2 = tiny_translator("controlnet"), tiny_autoencoder()
            opt2 = torch.optim.Adam(translator2.parameters())
            loaded = load_checkpoint(path, {"translator": translator2, "autoencoder": ae2, "optimizer": opt2})
        for a, b in zip(translator.state_dict().values(), translator2.state_dict().values()):
            self.assertTrue(torch.equal(a, b))
        for a, b in zip(ae.state_dict().values(), ae2.state_dict().values()):
            self.assertTrue(torch.equal(a, b))
        self.assertEqual(opt2.state_dict()["state"].keys(), opt.state_dict()["state"].keys())
        self.assertEqual(loaded, constants)
        self.assertEqual(loaded["class_names"], list(UNIFIED_CLASSES))
        self.assertEqual(build_schedule(loaded["scheduler"]).config(), RFlowSchedule().config())
        self.assertEqual(ContextVocabulary.from_dict(loaded["context_vocabulary"]), simulator_vocabulary())

    def test_failed_save_keeps_the_previous_file(self):
        net = torch.nn.Linear(2, 2)
        with tempfile.TemporaryDirectory() as tmp:
            path = save_checkpoint(Path(tmp) / "ckpt.pt", {"net": net}, {"step": 1})
            with self.assertRaises((AttributeError, TypeError, RuntimeError)):  # lambdas cannot be pickled
                save_checkpoint(path, {"net": net, "bad": _Unpicklable()}, {"step": 2})
            self.assertEqual(sorted(os.listdir(tmp)), ["ckpt.pt"])
            self.assertEqual(load_checkpoint(path)["step"], 1)

    def test_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(ValueError, r"constants.scheduler must be a plain value"):
                save_checkpoint(Path(tmp) / "a.pt", {"net": torch.nn.Linear(1, 1)}, {"scheduler": DDIMSchedule()})
            other = Path(tmp) / "other.pt"
            torch.save({"weights": torch.zeros(1)}, other)
            with self.assertRaisesRegex(ValueError, "not a usgen-monai-checkpoint"):
                read_checkpoint(other)
            with self.assertRaisesRegex(FileNotFoundError, "missing.pt"):
                read_checkpoint(Path(tmp) / "missing.pt")
            path = save_checkpoint(Path(tmp) / "b.pt", {"net": torch.nn.Linear(1, 1)})
            with self.assertRaisesRegex(KeyError, "'translator'"):
                load_checkpoint(path, {"translator": torch.nn.Linear(1, 1)})


class TestSamplingFromCheckpoint(unittest.TestCase):
    def test_reloaded_checkpoint_reproduces_samples(self):
        torch.manual_seed(0)
        translator, ae = tiny_translator("controlnet").eval(), tiny_autoencoder().eval()
        for p in translator.parameters():  # stand-in for training: no zero-initialised layers
            if p.abs().sum() == 0:
                torch.nn.init.normal_(p, std=0.05)
        vocab = simulator_vocabulary()
        constants = sampling_constants(0.9, RFlowSchedule(), UNIFIED_CLASSES, vocab, (32, 32), (3, 16, 16))

        def sample(net, autoencoder, consts):
            vocabulary = ContextVocabulary.from_dict(consts["context_vocabulary"])
            cat, sca = vocabulary.encode(BATCH["context"])
            with torch.no_grad():
                ctx = encode_latents(autoencoder, BATCH["context_image"], consts["latent_scale_factor"])
                cond = {
                    "semantic": label_to_onehot(BATCH["label"], len(consts["class_names"])),
                    "context": net.encode_context(cat, sca, ctx),
                }
            sampler = LatentSampler(
                build_schedule(consts["scheduler"]),
                net,
                DualGuidance(2.0, 1.5),
                decoder=autoencoder,
                scale_factor=consts["latent_scale_factor"],
                latent_shape=consts["latent_shape"],
                num_inference_steps=2,
            )
            return sampler(
                conditions=cond, null_conditions=net.null_conditions(cond), generator=torch.Generator().manual_seed(5)
            ).images

        expected = sample(translator, ae, constants)
        with tempfile.TemporaryDirectory() as tmp:
            path = save_checkpoint(Path(tmp) / "model.pt", {"translator": translator, "autoencoder": ae}, constants)
            torch.manual_seed(1)
            translator2, ae2 = tiny_translator("controlnet").eval(), tiny_autoencoder().eval()
            loaded = load_checkpoint(path, {"translator": translator2, "autoencoder": ae2})
        torch.testing.assert_close(sample(translator2, ae2, loaded), expected, rtol=0, atol=0)


class TestResume(unittest.TestCase):
    def _trainer(self, tmp, max_epochs, seed):
        torch.manual_seed(seed)
        ae = tiny_autoencoder().eval()
        translator = tiny_translator("controlnet")
        opt = torch.optim.AdamW(translator.parameters(), 1e-3)
        schedule = DDIMSchedule()
        trainer = SupervisedTrainer(
            device="cpu",
            max_epochs=max_epochs,
            train_data_loader=[BATCH, BATCH],
            network=translator,
            optimizer=opt,
            loss_function=torch.nn.MSELoss(),
            prepare_batch=TranslatorPrepareBatch(schedule, NUM_CLASSES, ae, 1.0, simulator_vocabulary()),
            inferer=DenoiserInferer(schedule),
        )
        constants = {"scheduler": schedule.config()} if seed == 0 else {}
        ckpt = ResumableCheckpoint(tmp, {"translator": translator, "optimizer": opt, "trainer": trainer}, constants)
        ckpt.attach(trainer)
        return trainer, translator, ckpt

    def test_resume_continues_the_iteration_count(self):
        with tempfile.TemporaryDirectory() as tmp:
            trainer, translator, ckpt = self._trainer(tmp, max_epochs=1, seed=0)
            trainer.run()
            self.assertEqual(trainer.state.iteration, 2)
            saved = {k: v.clone() for k, v in translator.state_dict().items()}

            # a fresh process (other initial weights) with the same max_epochs restores and has nothing left to do
            trainer2, translator2, ckpt2 = self._trainer(tmp, max_epochs=1, seed=1)
            trainer2.run()
            self.assertEqual(trainer2.state.iteration, 2)
            for k, v in translator2.state_dict().items():
                self.assertTrue(torch.equal(v, saved[k]), k)
            self.assertEqual(ckpt2.constants["scheduler"], DDIMSchedule().config())  # constants come back too

            # raising max_epochs continues from iteration 2
            trainer3, translator3, _ = self._trainer(tmp, max_epochs=2, seed=2)
            trainer3.run()
            self.assertEqual((trainer3.state.epoch, trainer3.state.iteration), (2, 4))
            self.assertEqual(read_checkpoint(ckpt.path)["state_dicts"]["trainer"]["iteration"], 4)
            self.assertTrue(any(not torch.equal(v, saved[k]) for k, v in translator3.state_dict().items()))


def _linear_trainer(save_dir, max_epochs=1, **checkpoint_args):
    """A linear layer trained on one tiny batch, with a ResumableCheckpoint in ``save_dir``."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    batch = {"image": torch.ones(2, 3), "label": torch.zeros(2, 1)}
    trainer = SupervisedTrainer(
        device="cpu",
        max_epochs=max_epochs,
        train_data_loader=[batch, batch],
        network=net,
        optimizer=opt,
        loss_function=torch.nn.MSELoss(),
    )
    ckpt = ResumableCheckpoint(save_dir, {"net": net, "optimizer": opt}, **checkpoint_args)
    ckpt.attach(trainer)
    return trainer, net, ckpt


def _as_if_saved_on_cuda(path, out):
    """Rewrite the storage locations of a CPU checkpoint as ``cuda:0``, as torch.save writes them on a GPU."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                assert data.count(b"X\x03\x00\x00\x00cpu") == 1, "unexpected pickle layout"
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            dst.writestr(info.filename, data)
    return out


# (name, how the damaged file is made from a real checkpoint's bytes, what the message must say)
DAMAGED_FILES = [
    ("truncated", lambda good: good[: len(good) // 2], r"truncated"),
    ("empty", lambda good: b"", r"is empty \(0 bytes\)"),
    (
        "png",
        lambda good: b"\x89PNG\r\n\x1a\n" + bytes(64),
        r"is not a checkpoint: it is not a torch file but a PNG image",
    ),
    ("text", lambda good: b"hello", r"is not a checkpoint: it is not a torch file but a file starting with"),
]


class TestDamagedCheckpoint(unittest.TestCase):
    def _damaged(self, tmp, make):
        good = save_checkpoint(Path(tmp) / "good.pt", {"net": torch.nn.Linear(3, 1)}, {"step": 1})
        bad = Path(tmp) / "run" / "checkpoint.pt"
        bad.parent.mkdir()
        bad.write_bytes(make(good.read_bytes()))
        return bad

    @parameterized.expand(DAMAGED_FILES)
    def test_read_and_load_name_the_file_and_what_to_do(self, _, make, what):
        with tempfile.TemporaryDirectory() as tmp:
            bad = self._damaged(tmp, make)
            for load in (read_checkpoint, lambda p: load_checkpoint(p, {"net": torch.nn.Linear(3, 1)})):
                with self.assertRaises(InvalidCheckpointError) as raised:
                    load(bad)
                message = str(raised.exception)
                self.assertIsInstance(raised.exception, ValueError)
                self.assertIn(str(bad), message)
                self.assertRegex(message, what)
                self.assertIn("Delete it to start over", message)
                self.assertNotIn("PytorchStreamReader", message)

    @parameterized.expand(DAMAGED_FILES)
    def test_resume_from_a_damaged_latest_checkpoint_fails_and_keeps_it(self, _, make, what):
        with tempfile.TemporaryDirectory() as tmp:
            bad = self._damaged(tmp, make)
            before = bad.read_bytes()
            trainer, _, _ = _linear_trainer(bad.parent)
            with self.assertRaisesRegex(InvalidCheckpointError, r"cannot resume training: .*" + what) as raised:
                trainer.run()
            self.assertIn(str(bad), str(raised.exception))
            self.assertIn("resume=False starts over", str(raised.exception))
            self.assertEqual(trainer.state.iteration, 0)  # nothing trained ...
            self.assertEqual(bad.read_bytes(), before)  # ... and nothing overwritten

    def test_foreign_torch_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            pickled = Path(tmp) / "pickled.pt"
            torch.save({"net": _Unpicklable}, pickled)  # a class: weights_only refuses it
            with self.assertRaisesRegex(
                InvalidCheckpointError, r"pickled.pt is not a usgen-monai-checkpoint file.*" r"Unsupported global"
            ):
                read_checkpoint(pickled)
            legacy = Path(tmp) / "legacy.pt"
            torch.save({"a": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
            with self.assertRaisesRegex(InvalidCheckpointError, "not a usgen-monai-checkpoint"):
                read_checkpoint(legacy)
            legacy.write_bytes(legacy.read_bytes()[:100])
            with self.assertRaisesRegex(InvalidCheckpointError, "legacy.pt is truncated or corrupt"):
                read_checkpoint(legacy)
            newer = save_checkpoint(Path(tmp) / "newer.pt", {"net": torch.nn.Linear(1, 1)})
            data = torch.load(newer, weights_only=True)
            torch.save({**data, "version": 99}, newer)
            with self.assertRaisesRegex(InvalidCheckpointError, "newer.pt has checkpoint version 99"):
                read_checkpoint(newer)

    def test_gpu_saved_checkpoint_loads_on_cpu(self):
        with tempfile.TemporaryDirectory() as tmp:
            trainer, net, ckpt = _linear_trainer(Path(tmp) / "a")
            trainer.run()
            gpu = _as_if_saved_on_cuda(ckpt.path, Path(tmp) / "b" / "checkpoint.pt")
            if not torch.cuda.is_available():  # the rewritten file really asks for a GPU
                with self.assertRaisesRegex(RuntimeError, "CUDA"):  # not mistaken for a damaged file
                    read_checkpoint(gpu, map_location=None)
            self.assertEqual(read_checkpoint(gpu)["state_dicts"]["net"]["weight"].device.type, "cpu")
            net2 = torch.nn.Linear(3, 1)
            load_checkpoint(gpu, {"net": net2})
            self.assertEqual(net2.weight.device.type, "cpu")
            torch.testing.assert_close(net2.state_dict(), net.state_dict(), rtol=0, atol=0)
            trainer2, _, _ = _linear_trainer(gpu.parent, max_epochs=2)  # resume on a CPU trainer
            trainer2.run()
            self.assertEqual(trainer2.state.iteration, 4)

    def test_resume_removes_partial_files_of_dead_writers_only(self):
        with tempfile.TemporaryDirectory() as tmp:
            dead = os.getpid() + 1
            while True:  # a pid no process has
                try:
                    os.kill(dead, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
                dead += 1
            stale = Path(tmp) / f".checkpoint.pt.{dead}.deadbeef.part.pt"
            live = Path(tmp) / f".checkpoint.pt.{os.getppid()}.deadbeef.part.pt"
            other = Path(tmp) / f".model.pt.{dead}.deadbeef.part.pt"
            for f in (stale, live, other):
                f.write_bytes(b"PK")
            trainer, _, _ = _linear_trainer(tmp)
            with self.assertLogs("usgen_monai.engines.checkpoint", logging.INFO) as logs:
                trainer.run()
            self.assertFalse(stale.exists())
            self.assertTrue(live.exists() and other.exists())
            self.assertTrue(any("interrupted save" in line for line in logs.output))


if __name__ == "__main__":
    unittest.main()
