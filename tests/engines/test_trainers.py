from __future__ import annotations

import tempfile
import unittest

import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from ignite.handlers import ProgressBar
from monai.handlers import StatsHandler, from_engine
from monai.networks.nets import PatchDiscriminator

from tests.engines.csg_data import NUM_CLASSES, simulated_batch, tiny_autoencoder, tiny_mask_prior, tiny_translator
from usgen_monai.engines import (
    AutoencoderKLTrainer,
    DDIMSchedule,
    DenoiserInferer,
    LabelMapPrepareBatch,
    LatentScaleFactorHandler,
    ResumableCheckpoint,
    RFlowSchedule,
    TranslatorPrepareBatch,
    compute_latent_scale_factor,
    encode_latents,
    load_checkpoint,
    perceptual_loss_from_weights,
    simulator_vocabulary,
)

BATCH = simulated_batch(num=4)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _probe_loss(network, prepare, inferer, batch, seed: int = 0) -> float:
    """Diffusion loss on a fixed draw of noise, timesteps and dropout, for before/after comparisons."""
    torch.manual_seed(seed)
    inputs, target, args, kwargs = prepare(batch)
    with torch.no_grad():
        return torch.nn.functional.mse_loss(inferer(inputs, network, *args, **kwargs), target).item()


class TestAutoencoderKLTrainer(unittest.TestCase):
    def test_training_reduces_reconstruction_and_starts_adversarial_late(self):
        torch.manual_seed(0)
        ae = tiny_autoencoder()
        disc = PatchDiscriminator(spatial_dims=2, channels=8, in_channels=1, num_layers_d=2)
        disc_before = _state(disc)
        images = BATCH["image"]

        def recon_l1() -> float:
            with torch.no_grad():
                return (ae.reconstruct(images) - images).abs().mean().item()

        before = recon_l1()
        trainer = AutoencoderKLTrainer(
            device="cpu",
            max_epochs=12,
            train_data_loader=[BATCH],
            network=ae,
            optimizer=torch.optim.Adam(ae.parameters(), 2e-3),
            discriminator=disc,
            d_optimizer=torch.optim.Adam(disc.parameters(), 2e-3),
            adversarial_start_iteration=6,
            perceptual_loss=lambda a, b: (a - b).pow(2).mean(),
        )
        d_losses, perceptual = [], []
        losses = from_engine(["discriminator_loss", "perceptual_loss"], first=True)  # as a StatsHandler reads them
        trainer.add_event_handler(
            Events.ITERATION_COMPLETED,
            lambda e: [v.append(float(x)) for v, x in zip((d_losses, perceptual), losses(e.state.output))],
        )
        trainer.run()
        self.assertEqual(trainer.state.iteration, 12)
        self.assertLess(recon_l1(), 0.7 * before)
        self.assertEqual(d_losses[:6], [0.0] * 6)
        self.assertTrue(all(v > 0 for v in d_losses[6:]))
        self.assertTrue(all(v > 0 for v in perceptual))
        self.assertTrue(any(not torch.equal(disc_before[k], v) for k, v in disc.state_dict().items()))

    def test_perceptual_loss_is_optional_and_offline(self):
        self.assertIsNone(perceptual_loss_from_weights(None))
        self.assertIsNone(perceptual_loss_from_weights(""))
        with self.assertRaisesRegex(FileNotFoundError, "missing_resnet50.pt"):
            perceptual_loss_from_weights("/nonexistent/missing_resnet50.pt")

    def test_argument_errors(self):
        ae = tiny_autoencoder()
        opt = torch.optim.Adam(ae.parameters())
        with self.assertRaisesRegex(ValueError, "d_optimizer"):
            AutoencoderKLTrainer("cpu", 1, [BATCH], ae, opt, discriminator=PatchDiscriminator(2, 8, 1, num_layers_d=2))
        with self.assertRaisesRegex(ValueError, "kl_weight=-1"):
            AutoencoderKLTrainer("cpu", 1, [BATCH], ae, opt, kl_weight=-1)


class TestLatentScaleFactor(unittest.TestCase):
    def test_matches_direct_std(self):
        torch.manual_seed(0)
        ae = tiny_autoencoder().eval()
        loader = [simulated_batch(num=2, seed=s) for s in (0, 10, 20)]
        value = compute_latent_scale_factor(ae, loader)
        latents = torch.cat([encode_latents(ae, b["image"]) for b in loader])
        self.assertAlmostEqual(value, 1.0 / latents.double().std().item(), places=5)
        self.assertAlmostEqual(
            compute_latent_scale_factor(ae, loader, max_batches=1),
            1.0 / encode_latents(ae, loader[0]["image"]).double().std().item(),
            places=5,
        )
        with self.assertRaisesRegex(ValueError, "empty"):
            compute_latent_scale_factor(ae, [])

    def test_handler_stores_it_in_the_checkpoint(self):
        torch.manual_seed(0)
        ae = tiny_autoencoder()
        trainer = AutoencoderKLTrainer("cpu", 1, [BATCH], ae, torch.optim.Adam(ae.parameters(), 1e-3))
        constants: dict = {"image_size": [32, 32]}
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = ResumableCheckpoint(tmp, {"autoencoder": ae, "trainer": trainer}, constants, save_interval=0)
            ckpt.attach(trainer)  # attached first: its final save runs before the handler
            LatentScaleFactorHandler(ae, [BATCH], constants, checkpoint=ckpt).attach(trainer)
            # the usual bundle handlers read the trainer's output
            StatsHandler(tag_name="train_loss", output_transform=from_engine(["loss"], first=True)).attach(trainer)
            ProgressBar(persist=False).attach(trainer, output_transform=from_engine(["recon_loss"], first=True))
            trainer.run()
            stored = load_checkpoint(ckpt.path)
        self.assertAlmostEqual(stored["latent_scale_factor"], compute_latent_scale_factor(ae, [BATCH]), places=6)
        self.assertEqual(stored["image_size"], [32, 32])


class TestDiffusionTraining(unittest.TestCase):
    def _trainer(self, network, params, prepare, schedule, iterations):
        return SupervisedTrainer(
            device="cpu",
            max_epochs=iterations,
            train_data_loader=[BATCH],
            network=network,
            optimizer=torch.optim.AdamW(params, 3e-3),
            loss_function=torch.nn.MSELoss(),
            prepare_batch=prepare,
            inferer=DenoiserInferer(schedule),
        )

    def test_translator_training_reduces_loss(self):
        for schedule in (DDIMSchedule(), RFlowSchedule()):
            torch.manual_seed(0)
            ae = tiny_autoencoder().eval()
            translator = tiny_translator("controlnet")
            prepare = TranslatorPrepareBatch(schedule, NUM_CLASSES, ae, 1.0, simulator_vocabulary())
            inferer = DenoiserInferer(schedule)
            before = _probe_loss(translator, prepare, inferer, BATCH)
            self._trainer(translator, translator.parameters(), prepare, schedule, 15).run()
            after = _probe_loss(translator, prepare, inferer, BATCH)
            self.assertLess(after, 0.8 * before, schedule.name)

    def test_semantic_fine_tuning_leaves_the_base_unchanged(self):
        torch.manual_seed(0)
        ae = tiny_autoencoder().eval()
        for mode in ("controlnet", "spade"):
            translator = tiny_translator(mode)
            base_before = {id(p): p.detach().clone() for p in translator.base_parameters()}
            semantic_before = [p.detach().clone() for p in translator.semantic_parameters()]
            params = translator.freeze_base()
            schedule = DDIMSchedule()
            prepare = TranslatorPrepareBatch(schedule, NUM_CLASSES, ae, 1.0, simulator_vocabulary())
            self._trainer(translator, params, prepare, schedule, 3).run()
            for p in translator.base_parameters():
                self.assertTrue(torch.equal(p, base_before[id(p)]), mode)
            changed = [not torch.equal(a, b) for a, b in zip(semantic_before, translator.semantic_parameters())]
            self.assertTrue(any(changed), mode)
            if mode == "controlnet":
                self.assertTrue(all(not p.requires_grad for p in translator.unet.parameters()))

    def test_mask_prior_training_reduces_loss(self):
        torch.manual_seed(0)
        vocab = simulator_vocabulary()
        prior = tiny_mask_prior(vocab.num_class_labels(("preset", "finding")))
        schedule = DDIMSchedule(clip_sample=True)
        prepare = LabelMapPrepareBatch(schedule, NUM_CLASSES, vocab)
        inferer = DenoiserInferer(schedule)
        before = _probe_loss(prior, prepare, inferer, BATCH)
        self._trainer(prior, prior.parameters(), prepare, schedule, 25).run()
        self.assertLess(_probe_loss(prior, prepare, inferer, BATCH), 0.8 * before)


if __name__ == "__main__":
    unittest.main()
