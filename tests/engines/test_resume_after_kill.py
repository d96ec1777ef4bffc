"""A training run killed with ``SIGKILL`` in the middle of an epoch resumes from its last checkpoint.

The run lives in a subprocess that calls :py:func:`train` below: a tiny ``monai.engines.SupervisedTrainer`` (a linear
layer, Adam, the same batch every iteration, CPU) with a :py:class:`~usgen_monai.engines.ResumableCheckpoint` that
saves every ``INTERVAL`` iterations. Once past ``KILL_AT`` the first run announces itself in a marker file and waits;
the test kills it there (no cleanup runs, as after an out-of-memory kill or a cluster time limit), runs the same
training again and checks that it resumed at the last checkpoint, lost fewer than ``INTERVAL`` iterations and finished
at the planned total with the weights of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import torch

from usgen_monai.engines import ResumableCheckpoint, read_checkpoint

EPOCH_LENGTH = 8
EPOCHS = 3
INTERVAL = 3  # saves at iterations 3, 6, 9, 12, ...
KILL_AT = 11  # in epoch 2 (iterations 9..16), 2 iterations after the save at 9
LAST_SAVE = KILL_AT // INTERVAL * INTERVAL
ROOT = Path(__file__).resolve().parents[2]


def train(save_dir: str, report: str, marker: str | None = None) -> None:
    """Run the tiny training; with ``marker``, write it after iteration ``KILL_AT`` and wait to be killed."""
    from ignite.engine import Events
    from monai.engines import SupervisedTrainer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    g = torch.Generator().manual_seed(1)
    batch = {"image": torch.randn(4, 3, generator=g), "label": torch.randn(4, 1, generator=g)}
    trainer = SupervisedTrainer(
        device="cpu",
        max_epochs=EPOCHS,
        train_data_loader=[batch] * EPOCH_LENGTH,
        network=net,
        optimizer=opt,
        loss_function=torch.nn.MSELoss(),
    )
    ResumableCheckpoint(save_dir, {"net": net, "optimizer": opt}, save_interval=INTERVAL, epoch_level=False).attach(
        trainer
    )
    record: dict = {"iterations_run": 0}

    @trainer.on(Events.STARTED)  # after the checkpoint's own STARTED handler, which resumes
    def _started(engine):
        record["started_at"] = [engine.state.epoch, engine.state.iteration]

    @trainer.on(Events.ITERATION_COMPLETED)
    def _count(engine):
        record["iterations_run"] += 1

    if marker is not None:

        @trainer.on(Events.ITERATION_COMPLETED(once=KILL_AT))
        def _wait_to_be_killed(engine):
            Path(marker).write_text(str(engine.state.iteration))
            time.sleep(300)

    trainer.run()
    record["finished_at"] = [trainer.state.epoch, trainer.state.iteration]
    record["weights"] = [p.detach().flatten().tolist() for p in net.parameters()]
    Path(report).write_text(json.dumps(record))


def _command(save_dir: Path, report: Path, marker: Path | None = None) -> list[str]:
    code = "import json, sys; from tests.engines.test_resume_after_kill import train; train(*json.loads(sys.argv[1]))"
    args = [str(save_dir), str(report)] + ([str(marker)] if marker is not None else [])
    return [sys.executable, "-c", code, json.dumps(args)]


@unittest.skipUnless(os.name == "posix", "SIGKILL is POSIX")
class TestResumeAfterKill(unittest.TestCase):
    def test_killed_mid_epoch_resumes_from_the_last_checkpoint(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            save_dir, marker = tmp / "run", tmp / "killed_at.txt"
            first = subprocess.Popen(
                _command(save_dir, tmp / "first.json", marker), cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
            )
            try:
                deadline = time.monotonic() + 120
                while not marker.is_file() or not marker.read_text():
                    if first.poll() is not None:
                        self.fail(
                            f"the first run exited with {first.returncode} before it was killed:\n{first.stderr.read()}"
                        )
                    if time.monotonic() > deadline:
                        self.fail("the first run did not reach the kill point within 120 s")
                    time.sleep(0.05)
                os.kill(first.pid, signal.SIGKILL)
                first.wait(30)
            finally:
                if first.poll() is None:
                    first.kill()
                first.stderr.close()
            self.assertEqual(first.returncode, -signal.SIGKILL)
            killed_at = int(marker.read_text())
            self.assertEqual(killed_at, KILL_AT)
            self.assertFalse((tmp / "first.json").exists())  # it never finished

            ckpt = save_dir / "checkpoint.pt"
            saved = read_checkpoint(ckpt)["state_dicts"]["trainer"]
            self.assertEqual(saved["iteration"], LAST_SAVE)  # the last save before the kill, in the middle of epoch 2
            # a kill during a save leaves a partial file, which the next resume removes (the killed pid is dead)
            partial = save_dir / f".checkpoint.pt.{first.pid}.0123abcd.part.pt"
            partial.write_bytes(ckpt.read_bytes()[:100])

            # the same training again, in this process (a second subprocess would only be slower)
            train(str(save_dir), str(tmp / "second.json"))
            resumed = json.loads((tmp / "second.json").read_text())
            self.assertFalse(partial.exists())

        epoch, iteration = resumed["started_at"]
        self.assertEqual((epoch, iteration), (1, LAST_SAVE))  # one full epoch done, 1 iteration into epoch 2
        self.assertLess(killed_at - iteration, INTERVAL)  # lost less than one checkpoint interval
        self.assertEqual(resumed["finished_at"], [EPOCHS, EPOCHS * EPOCH_LENGTH])  # the planned total
        self.assertEqual(resumed["iterations_run"], EPOCHS * EPOCH_LENGTH - LAST_SAVE)  # only the lost ones repeated

        # weights and optimizer state came back exactly: the resumed run ends where an uninterrupted one does
        with tempfile.TemporaryDirectory() as tmp:
            train(str(Path(tmp) / "run"), str(Path(tmp) / "reference.json"))
            reference = json.loads((Path(tmp) / "reference.json").read_text())
        self.assertEqual(reference["iterations_run"], EPOCHS * EPOCH_LENGTH)
        for got, want in zip(resumed["weights"], reference["weights"]):
            torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=0, atol=1e-7)


if __name__ == "__main__":
    unittest.main()
