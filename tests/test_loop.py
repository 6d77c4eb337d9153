"""The one loop: any step trains through it; epochs auto, step budgets, callbacks and loggers."""

import csv

import pytest
import torch
from torch import nn

import aekit
from aekit.batches import InMemory, Labelled
from aekit.callbacks import Callback, automatic_patience
from aekit.model import LossOutput
from aekit.train import Trainer, fine_tune, fit


def data(n=96, seed=0):
    return torch.rand(n, 1, 6, 5, generator=torch.Generator().manual_seed(seed))


def model_for(family="undercomplete"):
    torch.manual_seed(0)
    return aekit.make_model(family, (1, 6, 5), 3, hidden=[12])


class LeastSquares(nn.Module):
    """A step of a model kind the loop has never seen: linear regression, in nats (unit variance)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, batch, generator=None):
        nll = 0.5 * (self.linear(batch.x).squeeze(1) - batch.y.float()).pow(2).mean()
        return LossOutput(total=nll, terms={"nll": nll})

    evaluate = forward


def test_any_step_trains_through_the_loop():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(256, generator=generator)
    step = LeastSquares()
    train = InMemory(x, y, make=Labelled)
    config = aekit.TrainConfig(epochs=60, batch_size=32, lr=3e-2, val_fraction=0.0)
    result = fit(step, train, config, progress=False)
    torch.testing.assert_close(step.linear.weight.detach(), torch.tensor([[1.0, -2.0, 0.5, 3.0]]), atol=0.05, rtol=0)
    assert result.stop_reason == "epochs" and len(result.history) == 60 and result.steps == 60 * 8


def test_epochs_auto_stops_when_validation_stops_improving_and_says_why():
    x_train, x_val = data(64, 0), data(64, 1) * 4.0  # validation unlike training: it soon gets worse
    config = aekit.TrainConfig(batch_size=16, lr=1e-2)  # epochs auto, patience auto
    result = Trainer(model_for(), config, progress=False).fit(x_train, x_val)
    patience = automatic_patience(4)
    assert patience == 500  # 4 steps an epoch: 2000 steps of patience
    assert result.stop_reason == "patience" and len(result.history) == result.best_epoch + patience
    assert f"for {patience} epochs (patience {patience}); the best was epoch {result.best_epoch}" in result.stop_detail


def test_epochs_auto_stops_at_the_step_budget_and_fixed_epochs_ignore_it():
    config = aekit.TrainConfig(batch_size=16, max_steps=23)
    result = Trainer(model_for(), config, progress=False).fit(data())
    assert result.stop_reason == "budget" and result.steps == 23
    assert len(result.history) == 4  # 6 steps an epoch: the budget ends the fourth epoch early
    assert "budget of 23 optimisation steps" in result.stop_detail
    fixed = Trainer(model_for(), aekit.TrainConfig(epochs=5, batch_size=16, max_steps=23), progress=False)
    assert fixed.fit(data()).steps == 30  # the epochs asked for


def test_patience_counts_epochs_and_automatic_patience_follows_the_data_size():
    assert automatic_patience(1000) == 5 and automatic_patience(100) == 20 and automatic_patience(1) == 2000


def test_a_callback_can_stop_the_run_and_sees_every_step():
    seen = []

    class StopAtThree(Callback):
        def on_step_start(self, loop):
            seen.append(loop.step)

        def on_epoch_end(self, loop, record):
            if record["epoch"] == 3:
                loop.stop("asked", "a callback asked")

    result = Trainer(model_for(), aekit.TrainConfig(batch_size=32), progress=False, callbacks=[StopAtThree()]).fit(
        data()
    )
    assert result.stop_reason == "asked" and len(result.history) == 3 and seen == list(range(9))


def test_a_stop_asked_during_an_epoch_ends_it_after_that_step_with_validation():
    class StopAtStepFour(Callback):  # e.g. a wall-clock budget checked before every step
        def on_step_start(self, loop):
            if loop.step == 4:
                loop.stop("budget", "the budget is spent")

    config = aekit.TrainConfig(batch_size=8, epochs=5)  # 9 steps per epoch
    result = Trainer(model_for(), config, progress=False, callbacks=[StopAtStepFour()]).fit(data())
    assert result.stop_reason == "budget" and len(result.history) == 1
    assert result.history[0]["val"] is not None and result.steps == 5  # the step under way completes


def test_fine_tuning_is_a_step_of_the_same_loop():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, 6, 5, generator=generator)
    y = (x.flatten(1).sum(1) > 0).long()
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(30, 2))
    epochs = []

    class Record(Callback):
        def on_epoch_end(self, loop, record):
            epochs.append(record)

    result = fine_tune(classifier, x, y, aekit.TrainConfig(epochs=20, lr=1e-2), callbacks=[Record()])
    assert len(epochs) == 20 and set(epochs[0]["val"]) == {"loss", "cross_entropy", "error"}
    best = min(epochs, key=lambda r: (r["val"]["error"], r["val"]["loss"]))
    assert result.best_epoch == best["epoch"] and result.best_val["error"] < 0.25


def test_csv_logger_writes_every_term_per_step_and_per_epoch(tmp_path):
    config = aekit.TrainConfig(epochs=2, batch_size=16, log_every=2, logger="csv")
    Trainer(model_for("vae"), config, run_dir=tmp_path, progress=False).fit(data())
    with open(tmp_path / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps = [r for r in rows if r["kind"] == "step"]
    assert {r["name"] for r in steps} == {"loss", "nll", "kl", "lr"}
    assert sorted({int(r["step"]) for r in steps if r["name"] == "kl"}) == list(range(1, 13))  # 6 steps an epoch
    for kind in ("train", "val"):
        assert {(int(r["epoch"]), r["name"]) for r in rows if r["kind"] == kind} == {
            (e, n) for e in (1, 2) for n in ("loss", "nll", "kl")
        }


def test_tensorboard_logger_writes_scalars_and_reconstructions(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = aekit.TrainConfig(epochs=2, batch_size=16, log_every=3, logger="tensorboard")
    Trainer(model_for("vae"), config, run_dir=tmp_path, progress=False).fit(data())
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"step/loss", "step/kl", "step/lr", "train/nll", "val/kl", "epoch/lr"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("step/kl")] == list(range(1, 13))
    assert [e.step for e in events.Scalars("val/loss")] == [1, 2]
    assert tags["images"] == ["reconstructions"] and len(events.Images("reconstructions")) == 2


def test_hflip_augmentation_mirrors_a_random_half_of_each_training_batch():
    from aekit.steps import AutoencoderStep

    model = model_for()
    x = data(64)
    seen = []
    original = model.loss

    def recording(batch, **kwargs):
        seen.append(batch)
        return original(batch, **kwargs)

    model.loss = recording
    step = AutoencoderStep(model, augment="hflip")
    step(x, torch.Generator().manual_seed(0))
    pairs = list(zip(seen[0], x, strict=True))
    mirrored = torch.tensor([torch.equal(a, b.flip(-1)) and not torch.equal(a, b) for a, b in pairs])
    kept = torch.tensor([torch.equal(a, b) for a, b in pairs])
    assert bool((mirrored | kept).all()) and 20 < int(mirrored.sum()) < 44
    step.evaluate(x, torch.Generator().manual_seed(0))
    assert torch.equal(seen[1], x)  # held-out data are scored as they are
