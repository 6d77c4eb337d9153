"""The one training loop: batches -> a step function returning the loss terms -> optimiser.

Every model kind trains here: autoencoders (:class:`Trainer`, a thin front over :func:`fit`),
classifiers fine-tuned from an encoder (:func:`fine_tune`), and any later kind through its step
function (see :mod:`aekit.steps`). What happens around the step (validation, early stopping with
the best weights, learning-rate schedules, warm-ups, progress, loggers, checkpoints, timing) is
done by small callbacks (:mod:`aekit.callbacks`); DDP, ``torch.compile``, bf16 autocast and the
channels_last layout wrap the step once.

Host-device synchronisation happens only every ``log_every`` steps, where the losses of the
window are checked for NaN/inf (naming the exact step that broke). Every epoch draws its batch
order and its noise (corruption, latent samples) from generators seeded by (seed, epoch[, process]),
so a run resumed from a checkpoint repeats exactly what the uninterrupted run would have done.
Under ``torchrun`` the same loop trains data-parallel (:mod:`aekit.distributed`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import distributed
from .batches import InMemory, Labelled, Streamed, seeded_split
from .callbacks import (
    CHECKPOINT_FILE,
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    LearningRateSchedule,
    Loop,
    PenaltyWarmup,
    ProgressBar,
    TensorBoardLogger,
    Timing,
    automatic_patience,
    load_checkpoint,
    overrides,
)
from .config import TrainConfig
from .data.streaming import ArrayFile
from .errors import AekitError
from .model import Autoencoder, LossOutput, shape_fits
from .steps import AutoencoderStep, ClassifierStep
from .tensors import as_tensor, denormals_flushed, keep_freed_memory, resolve_device, to_channels_last

__all__ = ["CHECKPOINT_FILE", "TrainResult", "Trainer", "TrainingDiverged", "evaluate", "fine_tune", "fit"]

STREAM_VALIDATION_LIMIT = 10_000  # held-out rows read into memory from a streamed dataset


class TrainingDiverged(AekitError):
    """The loss became NaN or infinite."""


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW, fused when this torch supports it on ``device``."""
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    params = [p for p in model.parameters() if p.requires_grad]
    if device.type in ("cpu", "cuda"):
        try:
            return cls(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
        except (RuntimeError, TypeError):
            pass
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


_HAS_FUSED_ADAM = hasattr(torch, "_fused_adam_") and hasattr(torch, "_fused_adamw_")  # torch's own kernels


def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``; for a fused Adam or AdamW, one direct call of torch's fused kernel.

    torch.optim's step spends about 0.4 ms of Python per call on a CPU (step hooks, profiler
    records, grouping tensors by device and dtype): 5 % of a batch-128 MLP step in bfloat16. The
    direct call updates the very state the optimizer's own step keeps (``step``, ``exp_avg``,
    ``exp_avg_sq``), so ``state_dict``, checkpoints and resume are unchanged. Everything else takes
    the ordinary path: the first step (which creates the state), several parameter groups, AMSGrad,
    ``maximize``, parameters without a gradient, mixed devices or dtypes.
    """
    groups = optimizer.param_groups
    group = groups[0]
    lean = (
        _HAS_FUSED_ADAM
        and type(optimizer) in (torch.optim.Adam, torch.optim.AdamW)
        and len(groups) == 1
        and group.get("fused")
        and not (group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"])
    )
    if lean:
        params = group["params"]
        states = [optimizer.state.get(p) for p in params]
        grads = [p.grad for p in params]
        kinds = {(p.device, p.dtype) for p in params}
        lean = all(states) and all(g is not None for g in grads) and len(kinds) == 1
    if not lean:
        optimizer.step()
        return
    steps = [state["step"] for state in states]
    torch._foreach_add_(steps, 1)
    kernel = torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
    kernel(
        params,
        grads,
        [state["exp_avg"] for state in states],
        [state["exp_avg_sq"] for state in states],
        [],
        steps,
        amsgrad=False,
        lr=group["lr"],
        beta1=group["betas"][0],
        beta2=group["betas"][1],
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=False,
    )


def zero_grad(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.zero_grad(set_to_none=True)`` without its hooks' per-call cost."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


def epoch_seed(seed: int, epoch: int, stream: int, rank: int = 0) -> int:
    """An independent seed for one (run seed, epoch, random stream, process) combination."""
    return int(np.random.SeedSequence([seed, epoch, stream, rank]).generate_state(1)[0])


@dataclass
class TrainResult:
    """What a run produced: per-epoch history, the best epoch, when and why it stopped, speed.

    Each history entry holds ``epoch``, the ``train`` and ``val`` loss terms (nats per example),
    ``lr``, ``seconds`` (wall) and ``cpu_seconds`` (this process's CPU time, all threads).
    ``stop_reason`` is ``epochs`` (the epochs asked for), ``budget`` (``max_steps``) or
    ``patience`` (no better validation loss for ``patience`` epochs); ``stop_detail`` says it in words.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val: dict[str, float] | None = None  # the validation terms of the best epoch
    stop_reason: str = ""
    stop_detail: str = ""
    start_epoch: int = 0  # the epoch this call started from (a resumed run's checkpoint), 0 otherwise
    steps: int = 0  # optimisation steps, over every call that trained this run
    seconds: float = 0.0  # wall time of the epochs run by this call
    samples_per_second: float = 0.0  # training examples per second, all processes together
    first_step_seconds: float = 0.0  # includes torch.compile's compilation when enabled

    @property
    def stopped_early(self) -> bool:
        return self.stop_reason == "patience"

    @property
    def best_val_loss(self) -> float | None:
        return None if self.best_val is None else self.best_val["loss"]


class _Prepared(nn.Module):
    """The step as the loop calls it: inputs in the channels_last layout for conv networks, and
    the step under bf16 autocast (matrix products in bfloat16; weights, optimiser state and
    losses stay float32). DDP and torch.compile wrap this module."""

    def __init__(self, step: nn.Module, channels_last: bool, bf16: bool, device_type: str) -> None:
        super().__init__()
        self.step, self.channels_last, self.bf16, self.device_type = step, channels_last, bf16, device_type

    def forward(self, batch: Any, generator: torch.Generator) -> LossOutput:
        if self.channels_last and isinstance(batch, torch.Tensor) and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.step(batch, generator)


def _prepare(step: nn.Module, config: TrainConfig, topology: distributed.Topology, device: torch.device) -> nn.Module:
    """Wrap ``step`` once: layout and autocast, then DDP across processes, then torch.compile."""
    channels_last = config.channels_last and to_channels_last(step)  # conv networks only
    forward: nn.Module = _Prepared(step, channels_last, config.precision == "bf16", device.type)
    if topology.distributed:
        forward = nn.parallel.DistributedDataParallel(forward, device_ids=[device] if device.type == "cuda" else None)
    if config.compile:
        # the whole loss, forward and backward, as one graph: the likelihood's and the
        # activations' elementwise passes and autocast's casts fuse around the matrix products
        forward = torch.compile(forward)
    return forward


def standard_callbacks(config: TrainConfig, steps_per_epoch: int, run_dir: Path | None, progress: bool) -> list:
    """The callbacks every run gets from its settings, in the order they act at an epoch's end."""
    patience = config.patience
    if patience == "auto":
        patience = automatic_patience(steps_per_epoch) if config.epochs == "auto" else 0
    callbacks: list[Callback] = [Timing(), EarlyStopping(int(patience), config.restore_best)]
    callbacks.append(LearningRateSchedule(config, int(patience) or automatic_patience(steps_per_epoch)))
    if config.penalty_warmup_epochs > 0:
        callbacks.append(PenaltyWarmup(config.penalty_warmup_epochs))
    if progress:
        callbacks.append(ProgressBar())
    if run_dir is not None and config.logger == "csv":
        callbacks.append(CSVLogger(run_dir / "log.csv"))
    if run_dir is not None and config.logger == "tensorboard":
        callbacks.append(TensorBoardLogger(run_dir / "tensorboard"))
    return callbacks


def fit(
    step: nn.Module,
    train: Any,
    config: TrainConfig,
    val: Any = None,
    callbacks: Sequence[Callback] = (),
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    monitor: Sequence[str] = ("loss",),
) -> TrainResult:
    """Train ``step`` (see :mod:`aekit.steps`) on the batches of ``train`` (a source, see
    :mod:`aekit.batches`); score ``val`` after every epoch. ``run_dir`` receives checkpoints and
    logs (first process only); ``resume`` continues from a checkpoint. ``monitor``: the validation
    terms that rank epochs, compared in order. Returns the :class:`TrainResult`."""
    cfg = config.validate()
    topology = distributed.current()
    device = topology.device or resolve_device(cfg.device)
    run_dir = Path(run_dir) if run_dir is not None and topology.is_main else None
    if topology.distributed and cfg.batch_size < topology.world:
        raise AekitError(
            f"batch size {cfg.batch_size} is smaller than the {topology.world} processes",
            "batch_size is the global batch, split over the processes",
            f"use --batch-size >= {topology.world}",
        )
    step.to(device)
    forward = _prepare(step, cfg, topology, device)
    optimizer = make_optimizer(step, cfg, device)
    # parts that keep a constraint after every update (a dictionary's unit-norm columns)
    constraints = [m.after_optimizer_step for m in step.modules() if callable(getattr(m, "after_optimizer_step", None))]
    clip = gradient_clip(cfg.clip_grad_norm, step)
    # a source that forms its own batches (a token budget) says how many it makes
    counted = getattr(train, "steps_per_epoch", None)
    steps_per_epoch = counted() if counted is not None else math.ceil(len(train) / cfg.batch_size)
    loop = Loop(cfg, step, optimizer, topology, device, steps_per_epoch, len(train), len(val) if val else 0, run_dir)
    loop.monitor = tuple(monitor)
    loop.preview = next(val.in_order(8)) if val else None
    show = progress and topology.is_main
    loop.callbacks = [*standard_callbacks(cfg, steps_per_epoch, run_dir, show), *callbacks]
    loop.callbacks.append(Checkpoint(cfg.checkpoint_every))  # last: it saves what the others decided
    if resume is not None:
        load_checkpoint(loop, resume)
    emit = _Emitter(loop.callbacks)
    emit("on_fit_start", loop)
    window = _LossWindow(loop, emit)
    if device.type == "cpu":
        keep_freed_memory()  # see aekit.tensors: fresh pages each step cost more than the arithmetic
    with denormals_flushed(cfg.flush_denormal and device.type == "cpu"):  # see aekit.tensors
        while loop.stop_reason is None and _planned(loop):
            emit("on_epoch_start", loop)
            step.train()
            noise = torch.Generator(device=device).manual_seed(epoch_seed(cfg.seed, loop.epoch, 1, topology.rank))
            for batch in train.epoch(cfg.batch_size, epoch_seed(cfg.seed, loop.epoch, 0)):  # (B, ...) global
                local = batch[distributed.shard(len(batch), topology)]  # (b, ...): this process's share
                if len(local) == 0:  # a last batch too small to share: every process skips it
                    continue
                emit("on_step_start", loop)
                out = forward(local, noise)  # LossOutput: total and terms, nats per example
                zero_grad(optimizer)
                # DDP averages gradients over processes; weighting by the local share makes that
                # average the gradient of the whole global batch even when shares differ by one
                share = batch_weight(local) * topology.world / batch_weight(batch)
                (out.total if share == 1 else out.total * share).backward()
                if clip > 0:
                    nn.utils.clip_grad_norm_(step.parameters(), clip)
                optimizer_step(optimizer)
                for constrain in constraints:
                    constrain()
                loop.step, loop.examples = loop.step + 1, loop.examples + len(batch)
                window.add(out, batch_weight(local))
                if loop.step >= loop.max_steps or loop.stop_reason is not None:  # a callback may stop mid-epoch
                    break
            window.flush()
            loop.epoch += 1
            val_terms = evaluate(step, val, cfg.seed, topology, device) if val else None
            record = {"epoch": loop.epoch, "train": window.epoch_means(), "val": val_terms, "lr": loop.lr}
            loop.history.append(record)
            _planned(loop)  # the epochs asked for or the step budget may be spent: say so before checkpointing
            emit("on_epoch_end", loop, record)
    emit("on_fit_end", loop)
    step.eval()
    return _result(loop)


def gradient_clip(setting: float | str, step: nn.Module) -> float:
    """The global gradient norm a step is clipped to (0: none): ``setting``, or for ``"auto"`` the
    smallest ``gradient_clip`` that a part of the model asks for (a sparse dictionary's decoder
    asks for 1), else 0."""
    if setting != "auto":
        return float(setting)
    asked = [float(m.gradient_clip) for m in step.modules() if getattr(m, "gradient_clip", None)]
    return min(asked, default=0.0)


def batch_weight(batch: Any) -> int:
    """What a batch's mean loss is averaged over: its examples, or ``batch.weight`` when the
    batch says (the target tokens of a :class:`~aekit.text.batches.TokenBatch`)."""
    weight = getattr(batch, "weight", None)
    return int(weight) if weight is not None else len(batch)


def _planned(loop: Loop) -> bool:
    """Whether the plan leaves steps to take; if not, records why the loop stops."""
    if loop.max_epochs is not None and loop.epoch >= loop.max_epochs:
        loop.stop("epochs", f"trained the {loop.max_epochs} epochs asked for")
    elif loop.step >= loop.max_steps:
        loop.stop("budget", f"spent the budget of {loop.config.max_steps} optimisation steps (max_steps)")
    return loop.stop_reason is None


def _result(loop: Loop) -> TrainResult:
    timing, stopping = loop.find(Timing), loop.find(EarlyStopping)
    best_epoch = stopping.best_epoch if stopping is not None else None
    best = loop.history[best_epoch - 1] if best_epoch is not None and best_epoch <= len(loop.history) else None
    seconds = timing.seconds if timing is not None else 0.0
    trained = loop.examples - (timing.examples_at_start if timing is not None else 0)
    return TrainResult(
        history=loop.history,
        best_epoch=best_epoch,
        best_val=best["val"] if best is not None else None,
        stop_reason=loop.stop_reason or "",
        stop_detail=loop.stop_detail,
        start_epoch=loop.resumed_from or 0,
        steps=loop.step,
        seconds=seconds,
        samples_per_second=trained / max(seconds, 1e-9),
        first_step_seconds=timing.first_step_seconds if timing is not None else 0.0,
    )


class _Emitter:
    """Calls a hook on the callbacks that implement it (looked up once, not at every step)."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)

    @functools.cache  # noqa: B019  (one emitter per run)
    def _hooks(self, hook: str) -> list:
        return [getattr(cb, hook) for cb in self.callbacks if overrides(cb, hook)]

    def __call__(self, hook: str, *args: Any) -> None:
        for function in self._hooks(hook):
            function(*args)


@torch.no_grad()
def evaluate(
    step: nn.Module,
    source: Any,
    seed: int = 0,
    topology: distributed.Topology | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 1024,
) -> dict[str, float]:
    """``step.evaluate`` over every batch of ``source`` in order (fixed noise seed), in eval mode:
    the example-weighted mean of each term ("loss" is the total), nats per example. In a process
    group each process scores its share of every batch and the sums are combined."""
    topology = topology or distributed.Topology()
    was_training = step.training
    step.eval()
    generator = torch.Generator(device=device).manual_seed(epoch_seed(seed, 0, 3, topology.rank))
    sums, names = None, []
    for batch in source.in_order(batch_size):
        local = batch[distributed.shard(len(batch), topology)].to(device)
        weight = batch_weight(local) if len(local) else 0
        if weight == 0:  # this process has none of this batch; it still adds (zeros) to the sums
            local = batch[:1].to(device)
        out = step.evaluate(local, generator)
        reported = {**out.terms, **out.metrics}
        names = ["loss", *reported]
        values = torch.stack([out.total.detach(), *(t.detach() for t in reported.values())]).float() * weight
        values = torch.cat([values, values.new_tensor([weight])])
        sums = values if sums is None else sums + values
    step.train(was_training)
    assert sums is not None, "a validation source with no batches"
    sums = distributed.all_reduce_sum(sums, topology).cpu()
    return dict(zip(names, (sums[:-1] / sums[-1]).tolist(), strict=True))


class _LossWindow:
    """Loss terms of recent steps, kept on the device and brought to the host every ``log_every``
    steps (one sync), checked for NaN/inf there and handed to the callbacks' ``on_log``."""

    def __init__(self, loop: Loop, emit: _Emitter) -> None:
        self.loop, self.emit = loop, emit
        self.rows: list[list[torch.Tensor]] = []  # per step: [total, *terms], 0-d tensors on the device
        self.sizes: list[int] = []
        self.names: list[str] = []
        self.sums: torch.Tensor | None = None

    def add(self, out: LossOutput, batch_size: int) -> None:
        reported = {**out.terms, **out.metrics}
        self.names = ["loss", *reported]
        self.rows.append([out.total.detach(), *(t.detach() for t in reported.values())])  # no kernel per step
        self.sizes.append(batch_size)
        if len(self.rows) == self.loop.config.log_every:
            self.flush()

    def flush(self) -> None:
        """Check the window for NaN/inf and add it to the epoch's sums: one host-device sync."""
        if not self.rows:
            return
        first_step = self.loop.step - len(self.rows)
        means = torch.stack([t for row in self.rows for t in row]).view(len(self.rows), -1).float().cpu()
        sizes = torch.tensor(self.sizes, dtype=means.dtype)[:, None]  # (steps, 1)
        values = torch.cat([means * sizes, sizes], 1)  # (steps, terms + 1)
        _check_finite(means, first_step, self.loop, self.names)
        self.sums = values.sum(0) if self.sums is None else self.sums + values.sum(0)
        self.rows, self.sizes = [], []
        self.emit("on_log", self.loop, first_step, self.names, means)

    def epoch_means(self) -> dict[str, float]:
        """Example-weighted means of the epoch's terms over all processes; starts a new epoch."""
        assert self.sums is not None, "an epoch with no training step"
        sums = distributed.all_reduce_sum(self.sums.to(self.loop.device), self.loop.topology).cpu()
        self.sums = None
        return dict(zip(self.names, (sums[:-1] / sums[-1]).tolist(), strict=True))


def _check_finite(values: torch.Tensor, first_step: int, loop: Loop, names: list[str]) -> None:
    finite = torch.isfinite(values).all(1)  # (steps,)
    if bool(finite.all()):
        return
    offset = int((~finite).nonzero()[0])
    bad = int((~torch.isfinite(values[offset])).nonzero()[0])
    checkpoint = loop.run_dir / CHECKPOINT_FILE if loop.run_dir is not None else None
    kept = (
        f"the last good checkpoint {checkpoint} is kept"
        if checkpoint is not None and checkpoint.exists()
        else "no checkpoint was written"
    )
    raise TrainingDiverged(
        f"the {names[bad]} became {values[offset, bad].item()} at step {first_step + offset} (epoch {loop.epoch + 1})",
        kept,
        "lower the learning rate, set clip_grad_norm, or check the data scale",
    )


# ------------------------------------------------------------------------------------------------ #
# fronts of the loop: autoencoders and classifiers


STATISTICS_SAMPLE = 2048  # training examples the parts' data statistics are computed from


class Trainer:
    """Fit an :class:`Autoencoder` on in-memory or streamed data, in one process or several.

    A thin front over :func:`fit` with an :class:`~aekit.steps.AutoencoderStep`. ``run_dir``
    (optional) receives ``checkpoint.safetensors`` (every ``checkpoint_every`` epochs and after the
    last) and the logs of ``config.logger``; ``fit(..., resume=path)`` continues from a checkpoint
    and ends with exactly the weights an uninterrupted run with the same seed would have. In a
    process group started by torchrun (see :mod:`aekit.distributed`) the trainer trains
    data-parallel; ``batch_size`` is then the global batch, and only the first process writes
    checkpoints or shows progress. ``callbacks`` are added to the standard ones.
    """

    def __init__(
        self,
        model: Autoencoder,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        progress: bool = True,
        chunk_rows: int = 65536,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.model = model
        self.config = (config or TrainConfig()).validate()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.chunk_rows = chunk_rows
        self.callbacks = list(callbacks)
        self.device = distributed.current().device or resolve_device(self.config.device)

    def step(self) -> AutoencoderStep:
        """The step function this trainer trains with."""
        cfg = self.config
        if cfg.walkback and self.model.corruption is None:
            raise AekitError(
                f"walkback={cfg.walkback} for a {self.model.family} model without a corruption",
                "walk-back corrupts the model's own samples with the corruption it is trained with",
                "train a denoising model (family denoising or a restoration task), or drop walkback",
            )
        return AutoencoderStep(
            self.model, cfg.dynamic_binarization, cfg.penalty_warmup_epochs > 0, cfg.augment, cfg.walkback
        )

    def fit(self, x_train: Any, x_val: Any = None, resume: str | Path | None = None) -> TrainResult:
        """Train on ``x_train`` (N, *data_shape): an array, a tensor, a ``numpy.memmap`` or an
        :class:`ArrayFile` (streamed); validate on ``x_val`` or a seeded split of the training data."""
        train, val = self.sources(x_train, x_val)
        if resume is None and self.model.learns_data_statistics:  # a resumed run has them in its checkpoint
            self.model.fit_data_statistics(self.statistics_sample(x_train))
        return fit(self.step(), train, self.config, val, self.callbacks, self.run_dir, resume, self.progress)

    def statistics_sample(self, x_train: Any, size: int = STATISTICS_SAMPLE) -> torch.Tensor:
        """A seeded sample of at most ``size`` training examples (float32, on the model's device) for
        :meth:`Autoencoder.fit_data_statistics`."""
        n = len(x_train)
        rows = np.sort(np.random.default_rng(self.config.seed + 2).permutation(n)[: min(size, n)])
        if isinstance(x_train, np.memmap | ArrayFile):
            source = x_train if isinstance(x_train, ArrayFile) else ArrayFile(x_train)
            return torch.as_tensor(source.take(rows)).to(self.device)
        return as_tensor(x_train, "training data")[torch.as_tensor(rows)].float().to(self.device)

    def sources(self, x_train: Any, x_val: Any = None) -> tuple[InMemory | Streamed, InMemory | None]:
        """The training and validation sources of ``fit``, with the data checked where they enter:
        finite values, the model's example shape, the likelihood's domain."""
        cfg, check = self.config, functools.partial(self.model.likelihood.check_data, what="training data")
        if isinstance(x_train, np.memmap | ArrayFile):
            source = x_train if isinstance(x_train, ArrayFile) else ArrayFile(x_train)
            held_out = np.empty(0, np.int64)
            if x_val is None and cfg.val_fraction > 0:
                n_val = min(round(cfg.val_fraction * len(source)), STREAM_VALIDATION_LIMIT)
                held_out = np.random.default_rng(cfg.seed + 1).choice(len(source), n_val, replace=False)
                x_val = source.take(held_out)
            train: InMemory | Streamed = Streamed(source, self.device, held_out, self.chunk_rows, check)
            shape = source.example_shape
        else:
            x_train = as_tensor(x_train, "training data")
            if x_val is None and cfg.val_fraction > 0:
                kept, held_out = seeded_split(len(x_train), cfg.val_fraction, cfg.seed)
                x_train, x_val = x_train[kept], (x_train[held_out] if len(held_out) else None)
            check(x_train)
            train, shape = InMemory(x_train, device=self.device), tuple(x_train.shape[1:])
        val = None
        if x_val is not None:
            x_val = as_tensor(x_val, "validation data")
            self.model.likelihood.check_data(x_val, what="validation data")
            val = InMemory(x_val, device=self.device)
        for name, example_shape in (("training", shape), ("validation", None if x_val is None else x_val.shape[1:])):
            if example_shape is not None and not shape_fits(example_shape, self.model.data_shape):
                raise AekitError(
                    f"{name} examples have shape {tuple(example_shape)}",
                    f"the model was built for {self.model.data_shape}",
                    "build the model for this data",
                )
        return train, val

    def evaluate(self, x: Any, batch_size: int = 1024) -> dict[str, float]:
        """The training objective on held-out data x (fixed noise seed), nats per example by term."""
        x = as_tensor(x, "evaluation data")
        self.model.to(self.device)
        return evaluate(self.step(), InMemory(x, device=self.device), self.config.seed, None, self.device, batch_size)


def fine_tune(
    classifier: nn.Module,
    x: Any,
    y: Any,
    config: TrainConfig | None = None,
    x_val: Any = None,
    y_val: Any = None,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train ``classifier`` (logits out) on x (N, ...) and integer labels y (N,) with cross-entropy,
    through :func:`fit` with a :class:`~aekit.steps.ClassifierStep`.

    Validation data are ``x_val``/``y_val`` or, when not given, a seeded ``config.val_fraction``
    of x. The validation error rate (ties broken by the validation cross-entropy) ranks epochs for
    early stopping and, with ``config.restore_best``, for the weights kept at the end; the best
    epoch's terms are in ``result.best_val`` (``error``, ``cross_entropy``).
    """
    cfg = (config or TrainConfig()).validate()
    device = resolve_device(cfg.device)
    x, y = as_tensor(x, "training data"), as_labels(y)
    if len(y) != len(x):
        raise AekitError(f"{len(x)} examples but {len(y)} labels", "each example needs one label", "fix the data")
    if x_val is None and cfg.val_fraction > 0:
        kept, held_out = seeded_split(len(x), cfg.val_fraction, cfg.seed)
        if len(held_out):
            x, x_val, y, y_val = x[kept], x[held_out], y[kept], y[held_out]
    train = InMemory(x, y, device=device, make=Labelled)
    val = None
    if x_val is not None:
        val = InMemory(as_tensor(x_val, "validation data"), as_labels(y_val), device=device, make=Labelled)
    step = ClassifierStep(classifier, cfg.augment)
    return fit(step, train, cfg, val, callbacks, progress=progress, monitor=("error", "loss"))


def as_labels(y: Any) -> torch.Tensor:
    """Integer labels (N,) as a new int64 CPU tensor; a copy, so read-only arrays (memory-mapped
    datasets) are fine and the caller's array is never shared."""
    return torch.tensor(np.asarray(y), dtype=torch.long)
