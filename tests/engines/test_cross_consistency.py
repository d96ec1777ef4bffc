"""Cross-consistency training pieces: the ramp and the loss against hand-computed values, the poly schedule, the
trainer on a tiny MGCCNet (labeled and unlabeled batches, cycling, no unlabeled data), and the best-weights saver."""

from __future__ import annotations

import math

import pytest
import torch
from parameterized import parameterized

from usgen_monai.engines.cross_consistency import (
    ConsistencyRamp,
    CrossConsistencyLoss,
    CrossConsistencyTrainer,
    sigmoid_rampup_weight,
)
from usgen_monai.engines.handlers import BestWeightsSaver, PolynomialLRSchedule
from usgen_monai.networks import MGCCNet

TINY_NET = {"channels": (4, 4, 4, 8, 8), "mixer_depth": 1}

# (ramp kwargs, iteration, total iterations, expected phase t); the weight is 7 * exp(-5 (1 - t)^2)
RAMP_CASES = [
    ({"ramp_length": 30000, "num_steps": 200}, 0, None, 0.0),
    ({"ramp_length": 30000, "num_steps": 200}, 149, None, 0.0),  # the MGCC code: iteration // 150 over 200
    ({"ramp_length": 30000, "num_steps": 200}, 150, None, 1 / 200),
    ({"ramp_length": 30000, "num_steps": 200}, 15075, None, 100 / 200),
    ({"ramp_length": 30000, "num_steps": 200}, 30000, None, 1.0),
    ({"ramp_length": 30000, "num_steps": 200}, 10**6, None, 1.0),
    ({"ramp_length": 100, "num_steps": None}, 25, None, 0.25),
    ({"ramp_length": 0}, 0, None, 1.0),
    ({"ramp_length": None, "ramp_fraction": 1.5, "num_steps": None}, 300, 400, 0.5),  # ramp over 1.5 x 400
]


class TestRamp:
    def test_end_points_are_exact(self):
        assert sigmoid_rampup_weight(0.0) == 7.0 * math.exp(-5.0)
        assert sigmoid_rampup_weight(1.0) == 7.0
        assert sigmoid_rampup_weight(-3.0) == 7.0 * math.exp(-5.0) and sigmoid_rampup_weight(2.0) == 7.0
        assert sigmoid_rampup_weight(0.5, max_weight=2.0) == 2.0 * math.exp(-1.25)

    @parameterized.expand(RAMP_CASES)
    def test_phase_and_weight(self, kwargs, iteration, total, phase):
        ramp = ConsistencyRamp(max_weight=7.0, **kwargs)
        assert ramp.phase(iteration, total) == pytest.approx(phase, abs=1e-12)
        assert ramp(iteration, total) == sigmoid_rampup_weight(ramp.phase(iteration, total), 7.0)

    def test_relative_ramp_needs_the_run_length(self):
        with pytest.raises(ValueError, match="total_iterations"):
            ConsistencyRamp(ramp_length=None)(10)

    @parameterized.expand([({"max_weight": -1},), ({"ramp_length": -5},), ({"num_steps": 2.5},)])
    def test_rejects_bad_settings(self, kwargs):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            ConsistencyRamp(**kwargs)


class TestLoss:
    def test_values_on_constructed_outputs(self):
        """Supervised: mean over the four outputs; consistency: mean over aux of mean((p_main - p_aux)^2)."""
        target = torch.tensor([[[[1.0, 0.0]]]])
        labeled = [torch.full((1, 1, 1, 2), v) for v in (0.0, 1.0, 2.0, 3.0)]
        unlabeled = [torch.zeros(1, 1, 1, 2), torch.full((1, 1, 1, 2), math.log(3.0)), torch.zeros(1, 1, 1, 2)]
        loss = CrossConsistencyLoss(supervised_loss=lambda x, y: ((x - y) ** 2).mean(), activation="sigmoid")
        terms = loss(labeled, target, unlabeled, weight=2.0)
        supervised = sum((v**2 + (v - 1) ** 2) / 2 for v in (0.0, 1.0, 2.0, 3.0)) / 4  # = 3.5
        consistency = ((0.5 - 0.75) ** 2 + 0.0) / 2  # sigmoid(0) = 0.5, sigmoid(log 3) = 0.75
        assert terms.supervised.item() == pytest.approx(supervised, abs=1e-7)
        assert terms.consistency.item() == pytest.approx(consistency, abs=1e-7)
        assert terms.total.item() == pytest.approx(supervised + 2.0 * consistency, abs=1e-6)

    def test_softmax_consistency(self):
        main = torch.zeros(1, 2, 1, 1)  # softmax: (0.5, 0.5)
        aux = torch.tensor([[[[math.log(3.0)]], [[0.0]]]])  # softmax: (0.75, 0.25)
        consistency = CrossConsistencyLoss(activation="softmax").consistency([main, aux])
        assert consistency.item() == pytest.approx(0.25**2, abs=1e-7)

    def test_default_supervised_loss_is_half_bce_plus_dice(self):
        """The MGCC code's loss: 0.5 * BCE(logits) + (1 - per-sample soft Dice with smoothing 1e-5)."""
        torch.manual_seed(0)
        logits, target = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
        p = torch.sigmoid(logits).flatten(1)
        t = target.flatten(1)
        dice = 1 - ((2 * (p * t).sum(1) + 1e-5) / (p.sum(1) + t.sum(1) + 1e-5)).mean()
        expected = 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(logits, target) + dice
        got = CrossConsistencyLoss().supervised([logits, logits], target)
        assert got.item() == pytest.approx(expected.item(), abs=1e-6)

    def test_needs_several_outputs(self):
        with pytest.raises(ValueError, match="training mode"):
            CrossConsistencyLoss().supervised(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
        with pytest.raises(ValueError, match="activation"):
            CrossConsistencyLoss(activation="tanh")


def test_poly_schedule_follows_the_engine():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    schedule = PolynomialLRSchedule(opt, power=0.9)

    class State:
        iteration, max_epochs, epoch_length = 1, 2, 5

    engine = type("E", (), {"state": State()})()
    schedule(engine)
    assert opt.param_groups[0]["lr"] == 0.01  # the first iteration runs at the base rate
    engine.state.iteration = 6
    schedule(engine)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * (1 - 5 / 10) ** 0.9)
    engine.state.max_epochs = 4  # an extended run stretches the schedule instead of sitting at zero
    schedule(engine)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * (1 - 5 / 20) ** 0.9)


def _loader(num: int, batch: int, labeled: bool = True, size: int = 16):
    from monai.data import DataLoader

    g = torch.Generator().manual_seed(num)
    items = []
    for _ in range(num):
        item = {"image": torch.rand(1, size, size, generator=g)}
        if labeled:
            item["label"] = (torch.rand(1, size, size, generator=g) > 0.7).float()
        items.append(item)
    return DataLoader(items, batch_size=batch, shuffle=False)


def _trainer(unlabeled, max_epochs=1, **kwargs) -> CrossConsistencyTrainer:
    torch.manual_seed(0)
    net = MGCCNet(**TINY_NET)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    return CrossConsistencyTrainer(
        device="cpu",
        max_epochs=max_epochs,
        train_data_loader=_loader(4, 2),
        unlabeled_data_loader=unlabeled,
        network=net,
        optimizer=opt,
        loss_function=CrossConsistencyLoss(),
        train_handlers=[PolynomialLRSchedule(opt)],
        **kwargs,
    )


def test_trainer_cycles_the_unlabeled_loader_and_logs_every_term():
    unlabeled = _loader(3, 2, labeled=False)  # 2 batches per pass; 3 epochs x 2 iterations need 3 passes
    seen = []
    trainer = _trainer(unlabeled, max_epochs=3, consistency_weight=ConsistencyRamp(ramp_length=4, num_steps=None))

    def record(engine):
        out = engine.state.output  # decollated: one dict per labeled image
        seen.append((out[0]["consistency_weight"], len(out), float(out[0]["consistency_loss"])))

    from ignite.engine import Events

    trainer.add_event_handler(Events.ITERATION_COMPLETED, record)
    trainer.run()
    assert trainer.state.iteration == 6 and trainer._unlabeled_pass == 3
    weights = [w for w, _, _ in seen]
    assert weights[0] == pytest.approx(7.0 * math.exp(-5.0)) and weights[-1] == 7.0  # iteration 5 of a ramp of 4
    assert all(n == 2 for _, n, _ in seen)  # pred holds the labeled half only
    assert all(c > 0 for _, _, c in seen)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * (1 - 5 / 6) ** 0.9)


def test_trainer_without_unlabeled_data_uses_the_labeled_images():
    trainer = _trainer(None, consistency_weight=1.5)
    trainer.run()
    out = trainer.state.output[0]
    assert out["consistency_weight"] == 1.5 and out["consistency_loss"] > 0
    with pytest.raises(ValueError, match="unlabeled data loader is empty"):
        _trainer(_loader(0, 2, labeled=False))


def test_trainer_without_consistency_term_draws_no_unlabeled_batch():
    trainer = _trainer(_loader(2, 2, labeled=False, size=32), max_epochs=2, consistency_weight=0.0)
    trainer.run()  # the unlabelled images are of another size: drawn, they would raise
    out = trainer.state.output[0]
    assert trainer._unlabeled_pass == 0 and out["consistency_weight"] == 0.0
    assert float(out["loss"]) == pytest.approx(float(out["supervised_loss"]))


def test_trainer_rejects_mismatched_sizes():
    trainer = _trainer(_loader(2, 2, labeled=False, size=32))
    with pytest.raises(ValueError, match="differ in channels or size"):
        trainer.run()


def test_best_weights_saver_keeps_the_best_across_resumes(tmp_path):
    net = torch.nn.Linear(2, 1)
    saver = BestWeightsSaver(net, tmp_path / "model.pt", metric_name="val_mean_dice")

    def validate(value, epoch):
        state = type("S", (), {"metrics": {"val_mean_dice": value}, "epoch": epoch})()
        saver(type("E", (), {"state": state})())

    validate(float("nan"), 1)  # the first validation always writes
    assert (tmp_path / "model.pt").is_file()
    with torch.no_grad():
        net.weight.fill_(1.0)
    validate(0.5, 2)
    written = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(written) == {"weight", "bias"} and torch.equal(written["weight"], net.weight)
    with torch.no_grad():
        net.weight.fill_(2.0)
    validate(float("nan"), 3)
    validate(0.4, 4)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["weight"].eq(1.0).all()
    resumed = BestWeightsSaver(net, tmp_path / "model.pt", metric_name="val_mean_dice")
    resumed.load_state_dict(saver.state_dict())
    assert (resumed.best_metric, resumed.best_epoch) == (0.5, 2)
    with pytest.raises(KeyError, match="val_loss"):
        BestWeightsSaver(net, tmp_path / "x.pt", metric_name="val_loss")(
            type("E", (), {"state": type("S", (), {"metrics": {"val_mean_dice": 1.0}, "epoch": 1})()})()
        )
