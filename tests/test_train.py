"""Trainer: determinism, exact resume, early stopping with best-weights restore, NaN handling."""

import dataclasses
import math
import shutil

import pytest
import torch

import aekit
from aekit.callbacks import Callback
from aekit.steps import AutoencoderStep
from aekit.tensors import denormals_flushed, flushing_denormals
from aekit.train import CHECKPOINT_FILE, Trainer, gradient_clip, optimizer_step, zero_grad


def data(n=96, seed=0):
    return torch.rand(n, 1, 6, 5, generator=torch.Generator().manual_seed(seed))


def model_for(family="vae", seed=0, **options):
    torch.manual_seed(seed)
    return aekit.make_model(family, (1, 6, 5), 3, hidden=[12], **options)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("family", ["vae", "denoising", "contractive", "hashing"])
def test_same_seed_gives_the_same_weights(family):
    config = aekit.TrainConfig(epochs=3, batch_size=16, seed=5)
    first, second = model_for(family), model_for(family)
    Trainer(first, config, progress=False).fit(data())
    Trainer(second, config, progress=False).fit(data())
    assert_same_weights(weights(first), weights(second))


@pytest.mark.parametrize(
    "family,options,warmup",
    [
        ("vae", {}, 0.0),
        ("vae", {"importance_samples": 3}, 4.5),  # the warm-up ramp spans the interruption
        ("denoising", {"noise": "gaussian"}, 0.0),
        ("contractive", {"estimator": "projection"}, 0.0),
    ],
)
def test_resume_equals_uninterrupted_training(family, options, warmup, tmp_path):
    config = aekit.TrainConfig(
        epochs=6,
        batch_size=16,
        seed=1,
        checkpoint_every=1,
        patience=0,
        lr_schedule="cosine",
        clip_grad_norm=5.0,
        penalty_warmup_epochs=warmup,
    )
    reference = model_for(family, **options)
    Trainer(reference, config, run_dir=tmp_path / "full", progress=False).fit(data())

    partial_config = aekit.TrainConfig(**{**config.to_dict(), "epochs": 6})
    interrupted = model_for(family, **options)
    trainer = Trainer(interrupted, partial_config, run_dir=tmp_path / "cut", progress=False)
    # stop after 3 epochs by raising from the 4th epoch's first step
    original_loss = interrupted.loss
    calls = {"n": 0}
    steps_per_epoch = math.ceil(len(data()) * 0.9 / 16)

    def loss_that_stops(*args, **kwargs):
        if interrupted.training:
            calls["n"] += 1
            if calls["n"] > 3 * steps_per_epoch:
                raise KeyboardInterrupt
        return original_loss(*args, **kwargs)

    interrupted.loss = loss_that_stops
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(data())

    resumed = model_for(family, seed=123, **options)  # other initial weights: all must come from the checkpoint
    result = Trainer(resumed, partial_config, run_dir=tmp_path / "cut", progress=False).fit(
        data(), resume=tmp_path / "cut" / CHECKPOINT_FILE
    )
    assert len(result.history) == 6
    assert_same_weights(weights(reference), weights(resumed))


def test_resume_refuses_another_configuration(tmp_path):
    config = aekit.TrainConfig(epochs=1, batch_size=16, checkpoint_every=1)
    Trainer(model_for("vae"), config, run_dir=tmp_path, progress=False).fit(data())
    other = aekit.make_model("vae", (1, 6, 5), 4, hidden=[12])
    with pytest.raises(aekit.AekitError, match="another model configuration"):
        Trainer(other, config, progress=False).fit(data(), resume=tmp_path)
    changed = aekit.TrainConfig(epochs=2, batch_size=32, checkpoint_every=1)
    with pytest.raises(aekit.AekitError, match="batch_size=16"):
        Trainer(model_for("vae"), changed, progress=False).fit(data(), resume=tmp_path)
    warmed = aekit.TrainConfig(epochs=2, batch_size=16, checkpoint_every=1, penalty_warmup_epochs=3)
    with pytest.raises(aekit.AekitError, match=r"penalty_warmup_epochs=0\.0"):
        Trainer(model_for("vae"), warmed, progress=False).fit(data(), resume=tmp_path)


def test_early_stopping_restores_the_best_weights():
    x_train, x_val = data(64, 0), data(64, 1) * 4.0  # validation unlike training: it soon gets worse
    config = aekit.TrainConfig(epochs=40, batch_size=16, lr=1e-2, patience=3)
    model = model_for("undercomplete")
    snapshots = {}

    class Remember(Callback):  # the weights at the end of every epoch
        def on_epoch_end(self, loop, record):
            snapshots[record["epoch"]] = weights(model)

    result = Trainer(model, config, progress=False, callbacks=[Remember()]).fit(x_train, x_val)
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 3
    best = min(result.history, key=lambda r: r["val"]["loss"])
    assert best["epoch"] == result.best_epoch
    assert_same_weights(weights(model), snapshots[result.best_epoch])


def test_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = aekit.TrainConfig(epochs=5, batch_size=16, checkpoint_every=1, log_every=4)
    model = model_for("undercomplete")
    original_loss = model.loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = original_loss(*args, **kwargs)
        if model.training:
            calls["n"] += 1
            if calls["n"] == 9:  # step index 8 (epoch 2)
                out.total = out.total * float("nan")
        return out

    model.loss = poisoned
    with pytest.raises(aekit.TrainingDiverged, match=r"became nan at step 8 \(epoch 2\).*checkpoint.*is kept"):
        Trainer(model, config, run_dir=tmp_path, progress=False).fit(data())
    from aekit.io import read_safetensors

    _, meta = read_safetensors(tmp_path / CHECKPOINT_FILE)
    assert meta["epoch"] == 1


def test_dynamic_binarization_and_wrong_data_shape():
    config = aekit.TrainConfig(epochs=1, batch_size=16, dynamic_binarization=True)
    model = model_for("vae")
    Trainer(model, config, progress=False).fit(data())
    with pytest.raises(aekit.AekitError, match="training examples have shape"):
        Trainer(model, config, progress=False).fit(torch.rand(10, 30))
    with pytest.raises(aekit.AekitError, match="NaN"):
        Trainer(model, config, progress=False).fit(torch.full((10, 1, 6, 5), float("nan")))


def test_bad_training_settings_are_refused():
    with pytest.raises(aekit.AekitError, match=r"epochs=0 is not allowed: it must be an integer >= 1 or auto"):
        Trainer(model_for(), aekit.TrainConfig(epochs=0))
    with pytest.raises(aekit.AekitError, match="unknown device"):
        Trainer(model_for(), aekit.TrainConfig(device="tpu9"))


def test_history_records_every_term():
    result = Trainer(model_for("vae"), aekit.TrainConfig(epochs=2, batch_size=32), progress=False).fit(data())
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert set(result.history[0]["train"]) == {"loss", "nll", "kl"}
    assert set(result.history[0]["val"]) == {"loss", "nll", "kl"}


def test_bf16_autocast_trains_as_well_as_fp32():
    x = data(256)
    losses = {}
    for precision in ("fp32", "bf16"):
        config = aekit.TrainConfig(epochs=8, batch_size=32, lr=3e-3, precision=precision)
        model = model_for("undercomplete")
        result = Trainer(model, config, progress=False).fit(x)
        losses[precision] = result.history[-1]["val"]["loss"]
        assert all(p.dtype == torch.float32 for p in model.parameters())
    first = Trainer(model_for("undercomplete"), aekit.TrainConfig(epochs=1), progress=False).evaluate(x)["loss"]
    assert losses["bf16"] < first
    assert abs(losses["bf16"] - losses["fp32"]) < 0.02 * abs(losses["fp32"])


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_training_data_is_refused_in_any_row_block(bad):
    from aekit.tensors import as_tensor

    x = torch.rand(50, 7, 3)
    assert as_tensor(x).data_ptr() == x.data_ptr()  # float32 input: checked, not copied
    for row in (0, 29, 49):  # first, middle and last block of 10 rows (elements_per_chunk=210 / 21)
        y = x.clone()
        y[row, 6, 2] = bad
        with pytest.raises(aekit.AekitError, match="NaN or infinite"):
            as_tensor(y)
        assert not aekit.tensors._all_finite(y, elements_per_chunk=210)
    assert aekit.tensors._all_finite(x, elements_per_chunk=210)


@pytest.mark.parametrize(
    ("cls", "weight_decay"), [(torch.optim.Adam, 0.0), (torch.optim.Adam, 0.01), (torch.optim.AdamW, 0.1)]
)
def test_direct_fused_step_matches_torch_optimizer(cls, weight_decay):
    torch.manual_seed(0)
    shapes = [(5, 3), (5,), (2, 5)]
    start = [torch.randn(s) for s in shapes]
    grads = [[torch.randn(s) for s in shapes] for _ in range(6)]

    def train(step_fn):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        optimizer = cls(params, lr=1e-2, weight_decay=weight_decay, fused=True)
        for i, step_grads in enumerate(grads):
            optimizer.param_groups[0]["lr"] = 1e-2 / (i + 1)  # the trainer's schedule changes lr in place
            zero_grad(optimizer)
            for p, g in zip(params, step_grads, strict=True):
                p.grad = g.clone()
            step_fn(optimizer)
        return params, optimizer

    expected, reference = train(lambda o: o.step())
    got, optimizer = train(optimizer_step)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the state is the optimizer's own: a torch step continues from it exactly
    state, ref_state = optimizer.state_dict()["state"], reference.state_dict()["state"]
    for index in ref_state:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state[index][key], ref_state[index][key], rtol=0, atol=0)


def test_direct_step_takes_the_ordinary_path_for_a_missing_gradient():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([a, b], lr=0.1, fused=True)
    a.grad, b.grad = torch.ones(3), torch.ones(2)
    optimizer_step(optimizer)
    zero_grad(optimizer)
    a.grad = torch.ones(3)  # b has no gradient this step: torch skips it, so must we
    before = b.detach().clone()
    optimizer_step(optimizer)
    assert torch.equal(b.detach(), before) and optimizer.state[a]["step"].item() == 2
    assert optimizer.state[b]["step"].item() == 1


# x86 with SSE3 (DAZ); elsewhere torch cannot flush denormals and these tests do not apply
flushable = pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU cannot flush denormals")


@flushable
@pytest.mark.parametrize("flush", [True, False])
def test_training_flushes_denormals_only_while_it_runs(flush):
    model, seen = model_for("undercomplete"), []
    model.encoder.register_forward_hook(lambda *_: seen.append(flushing_denormals()))
    assert not flushing_denormals()
    Trainer(model, aekit.TrainConfig(epochs=1, batch_size=32, flush_denormal=flush), progress=False).fit(data())
    assert seen and all(s == flush for s in seen)  # every training and validation pass
    assert not flushing_denormals()  # the caller's mode is back


@flushable
def test_denormals_flushed_sets_every_thread_and_restores_the_mode():
    tiny = torch.full((1 << 20,), 1e-39)  # float32 denormals; 1 M elements are split over the threads
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert int((tiny * 2.0).count_nonzero()) == len(tiny)
        with denormals_flushed() as on:
            assert on and flushing_denormals()
            assert int((tiny * 2.0).count_nonzero()) == 0  # the worker thread's half is flushed too
        assert not flushing_denormals()
        assert int((tiny * 2.0).count_nonzero()) == len(tiny)
        with denormals_flushed(enabled=False) as on:
            assert not on and int((tiny * 2.0).count_nonzero()) == len(tiny)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif(not any(map(shutil.which, ("g++", "clang++"))), reason="torch.compile needs a C++ compiler on CPU")
def test_compiled_training_follows_eager_training():
    # the whole objective, forward and backward, is one compiled graph; a penalty warm-up passes
    # its changing scale as a tensor so that no step recompiles
    config = aekit.TrainConfig(epochs=2, batch_size=32, seed=3, penalty_warmup_epochs=1.0, val_fraction=0.0)
    eager, compiled = model_for("sparse"), model_for("sparse")
    expected = Trainer(eager, config, progress=False).fit(data())
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        got = Trainer(compiled, dataclasses.replace(config, compile=True), progress=False).fit(data())
    for a, b in zip(got.history, expected.history, strict=True):
        assert a["train"]["loss"] == pytest.approx(b["train"]["loss"], rel=1e-4)
    for key, value in weights(eager).items():
        torch.testing.assert_close(weights(compiled)[key], value, rtol=1e-4, atol=1e-5)


def test_freed_memory_is_kept_once_per_process_unless_glibc_is_told_otherwise():
    """The CPU loop asks glibc to keep freed memory for reuse; the user's own MALLOC_* settings win."""
    import os
    import platform
    import subprocess
    import sys

    program = "from aekit.tensors import keep_freed_memory as k; print(k(), k())"
    plain = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    first, again = plain.stdout.split()
    assert first == again  # decided once
    if platform.libc_ver()[0] == "glibc":
        assert first == "True"
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    told = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, env=env)
    assert told.stdout.split() == ["False", "False"]


def test_gradient_clip_auto_is_what_the_parts_ask_for():
    dictionary = AutoencoderStep(aekit.make_model("sae-topk", (8,), 16, k=2))
    plain = AutoencoderStep(aekit.make_model("undercomplete", (8,), 2))
    assert gradient_clip("auto", dictionary) == 1.0  # the dictionary decoder asks for SAELens's clip
    assert gradient_clip("auto", plain) == 0.0
    assert gradient_clip(0.0, dictionary) == 0.0 and gradient_clip(2.5, plain) == 2.5
    assert aekit.TrainConfig().clip_grad_norm == "auto"
    with pytest.raises(aekit.AekitError, match="clip_grad_norm"):
        aekit.TrainConfig(clip_grad_norm=-1.0).validate()


def test_the_loop_clips_as_the_setting_resolves(monkeypatch):
    original, seen = torch.nn.utils.clip_grad_norm_, []

    def spy(parameters, max_norm, *args, **kwargs):
        seen.append(float(max_norm))
        return original(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    x = torch.randn(64, 8).numpy()
    for family, options, clip in [
        ("sae-topk", {"k": 2}, "auto"),
        ("sae-topk", {"k": 2}, 0.0),
        ("undercomplete", {}, "auto"),
    ]:
        model = aekit.make_model(family, (8,), 4, **options)
        config = aekit.TrainConfig(epochs=1, batch_size=64, clip_grad_norm=clip, val_fraction=0.0)
        Trainer(model, config, progress=False).fit(x)
    assert seen == [1.0]  # one step clipped, at the dictionary's 1; none without a clip
