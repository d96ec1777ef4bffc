from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from usgen_monai.engines import DDIMSchedule, NoiseSchedule, RFlowSchedule, build_schedule


class TestSchedules(unittest.TestCase):
    @parameterized.expand([[DDIMSchedule()], [RFlowSchedule()]])
    def test_protocol_and_config_round_trip(self, schedule):
        self.assertIsInstance(schedule, NoiseSchedule)
        rebuilt = build_schedule(schedule.config())
        self.assertEqual(type(rebuilt), type(schedule))
        self.assertEqual(rebuilt.config(), schedule.config())

    def test_ddim_trailing_timesteps(self):
        s = DDIMSchedule(num_train_timesteps=1000)
        s.set_timesteps(2)
        self.assertEqual(s.timesteps.tolist(), [999, 499])
        s.set_timesteps(4)
        self.assertEqual(s.timesteps.tolist(), [999, 749, 499, 249])
        s = DDIMSchedule(num_train_timesteps=1000, timestep_spacing="linspace")
        s.set_timesteps(2)
        self.assertEqual(s.timesteps.tolist(), [999, 0])

    @parameterized.expand([[1], [2], [5]])
    def test_ddim_recovers_x0_with_exact_noise(self, steps):
        # with the true noise as the prediction, deterministic DDIM lands on x0 whatever the number of steps
        g = torch.Generator().manual_seed(0)
        x0, noise = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
        s = DDIMSchedule()
        s.set_timesteps(steps)
        x = s.add_noise(x0, noise, s.timesteps[:1].repeat(2))
        for t in s.timesteps:
            x, _ = s.step(noise, t, x)
        torch.testing.assert_close(x, x0, atol=1e-4, rtol=1e-4)

    @parameterized.expand([[1], [2], [5]])
    def test_rflow_recovers_x0_with_exact_velocity(self, steps):
        g = torch.Generator().manual_seed(0)
        x0, noise = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
        s = RFlowSchedule()
        s.set_timesteps(steps)
        ts = s.timesteps
        self.assertEqual(int(ts[0]), 1000)
        x = s.add_noise(x0, noise, ts[:1].repeat(2))
        torch.testing.assert_close(x, noise)
        nxt = torch.cat([ts[1:], torch.zeros_like(ts[:1])])
        for t, t_next in zip(ts, nxt):
            x, _ = s.step(s.training_target(x0, noise, t), t, x, t_next)
        torch.testing.assert_close(x, x0, atol=1e-5, rtol=1e-5)

    def test_training_targets(self):
        g = torch.Generator().manual_seed(0)
        x0, noise = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
        t = torch.tensor([10, 900])
        torch.testing.assert_close(DDIMSchedule().training_target(x0, noise, t), noise)
        v = DDIMSchedule(prediction_type="v_prediction")
        torch.testing.assert_close(v.training_target(x0, noise, t), v.scheduler.get_velocity(x0, noise, t))
        torch.testing.assert_close(DDIMSchedule(prediction_type="sample").training_target(x0, noise, t), x0)
        torch.testing.assert_close(RFlowSchedule().training_target(x0, noise, t), x0 - noise)
        for s in (DDIMSchedule(), RFlowSchedule()):
            ts = s.sample_timesteps(x0)
            self.assertEqual(ts.shape, (2,))
            self.assertTrue(bool(((ts >= 0) & (ts < 1000)).all()))

    def test_errors(self):
        for s in (DDIMSchedule(), RFlowSchedule()):
            self.assertEqual(len(s.timesteps), 0)
            with self.assertRaisesRegex(RuntimeError, "set_timesteps"):
                s.step(torch.zeros(1), torch.tensor(5), torch.zeros(1))
        with self.assertRaisesRegex(ValueError, "unknown schedule name 'pndm'"):
            build_schedule({"name": "pndm"})
        with self.assertRaisesRegex(ValueError, "timestep_spacing"):
            DDIMSchedule(timestep_spacing="leading")

    @parameterized.expand([[NoiseSchedule], [DDIMSchedule], [RFlowSchedule]])
    def test_public_methods_are_documented(self, cls):
        undocumented = []
        for name, member in vars(cls).items():
            func = member.fget if isinstance(member, property) else member
            if not name.startswith("_") and callable(func) and not (func.__doc__ or "").strip():
                undocumented.append(name)
        self.assertEqual(undocumented, [], f"{cls.__name__} methods without a docstring")
        for name in ("set_timesteps", "step", "config", "add_noise", "training_target", "sample_timesteps"):
            self.assertIn(name, vars(cls))


if __name__ == "__main__":
    unittest.main()
