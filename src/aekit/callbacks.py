"""Callbacks of the training loop: everything around the step that is not the step.

The loop (:func:`aekit.train.fit`) calls each callback's hooks in order: ``on_fit_start``,
``on_epoch_start``, ``on_step_start`` (before each optimisation step), ``on_log`` (every
``log_every`` steps, with the loss terms of each of those steps), ``on_epoch_end`` (with the epoch's
record) and ``on_fit_end``. A callback sees the :class:`Loop` (counters, optimiser, step module,
history) and may set ``loop.stop_reason``. One whose state must survive a resume gives
``state()``/``load_state()``; the checkpoint stores it.

The standard ones, built from the :class:`~aekit.config.TrainConfig` by the loop:

* :class:`Timing`: wall and CPU seconds per epoch, time of the first step, examples per second.
* :class:`EarlyStopping`: keeps the best validation epoch's weights, stops after ``patience``
  epochs without improvement, restores the best weights at the end.
* :class:`LearningRateSchedule`: constant, cosine or halving on plateaus.
* :class:`PenaltyWarmup`: ramps the penalty weights from 0 (KL warm-up).
* :class:`ProgressBar`: a tqdm bar over the steps.
* :class:`CSVLogger`, :class:`TensorBoardLogger`: experiment tracking in the run folder.
* :class:`Checkpoint`: the resumable state (model, optimiser, loop, callbacks) in one safetensors file.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed
from .config import FORMAT_VERSION, TrainConfig, settings_of
from .errors import AekitError
from .files import atomic_write_bytes, read_safetensors, write_safetensors
from .io import load_state

CHECKPOINT_FILE = "checkpoint.safetensors"


@dataclass
class Loop:
    """The state of a training run, as callbacks see it."""

    config: TrainConfig
    step_module: nn.Module  # the step: holds the model being trained
    optimizer: torch.optim.Optimizer
    topology: distributed.Topology
    device: torch.device
    steps_per_epoch: int  # optimisation steps in one pass over the training data
    n_train: int  # training examples
    n_val: int  # validation examples (0: none)
    run_dir: Path | None = None
    monitor: tuple[str, ...] = ("loss",)  # validation terms that rank epochs, compared in this order
    preview: Any = None  # a few held-out examples for loggers that draw (or None)
    epoch: int = 0  # epochs finished
    step: int = 0  # optimisation steps done
    examples: int = 0  # training examples seen, all processes together
    history: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None  # epochs | budget | patience; set when the loop must stop
    stop_detail: str = ""
    callbacks: list[Callback] = field(default_factory=list)
    resumed_from: int | None = None  # the epoch a resumed run started from

    @property
    def max_epochs(self) -> int | None:
        """The epochs asked for, or None for ``epochs="auto"``."""
        epochs = self.config.epochs
        return None if epochs == "auto" else int(epochs)

    @property
    def max_steps(self) -> int:
        """The steps planned: the ``max_steps`` budget of ``epochs="auto"``, else the epochs asked for."""
        if self.max_epochs is None:
            return self.config.max_steps
        return self.max_epochs * self.steps_per_epoch

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def stop(self, reason: str, detail: str) -> None:
        """Ask the loop to stop: asked during an epoch's steps, the epoch ends after the current step
        (then validation, the epoch's record and checkpoint as usual); asked at an epoch's end, no
        other epoch starts. The first reason given is kept."""
        if self.stop_reason is None:
            self.stop_reason, self.stop_detail = reason, detail

    def find(self, kind: type) -> Any:
        """The first callback of type ``kind``, or None."""
        return next((cb for cb in self.callbacks if isinstance(cb, kind)), None)


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    name = "callback"  # the key of its state in a checkpoint

    def on_fit_start(self, loop: Loop) -> None: ...

    def on_epoch_start(self, loop: Loop) -> None: ...

    def on_step_start(self, loop: Loop) -> None: ...

    def on_log(self, loop: Loop, first_step: int, names: list[str], values: torch.Tensor) -> None:
        """``values`` (steps, terms) on the CPU: the terms of steps ``first_step ...`` in nats."""

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None: ...

    def on_fit_end(self, loop: Loop) -> None: ...

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON-able values to keep in a checkpoint."""
        return {}, {}

    def load_state(self, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None: ...


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` does something in ``hook`` (the loop calls only those, every step)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


# ------------------------------------------------------------------------------------------------ #
# standard callbacks


class Timing(Callback):
    """Wall and CPU seconds per epoch (``seconds``, ``cpu_seconds`` in each record), the first
    step's time (it includes torch.compile's compilation) and the whole run's speed."""

    name = "timing"

    def __init__(self) -> None:
        self.started = self.epoch_started = self.epoch_cpu = 0.0
        self.first_step_seconds = 0.0
        self.first_step = 0
        self.seconds = 0.0
        self.examples_at_start = 0

    def on_fit_start(self, loop: Loop) -> None:
        self.started, self.first_step, self.examples_at_start = time.perf_counter(), loop.step, loop.examples

    def on_epoch_start(self, loop: Loop) -> None:
        self.epoch_started, self.epoch_cpu = time.perf_counter(), time.process_time()

    def on_step_start(self, loop: Loop) -> None:
        if loop.step == self.first_step + 1:  # the first step of this call is done
            self.first_step_seconds = time.perf_counter() - self.epoch_started

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        record["seconds"] = time.perf_counter() - self.epoch_started
        record["cpu_seconds"] = time.process_time() - self.epoch_cpu  # all of this process's threads

    def on_fit_end(self, loop: Loop) -> None:
        self.seconds = time.perf_counter() - self.started


def resolved_schedule(config: TrainConfig) -> str:
    """The learning-rate schedule ``config.lr_schedule`` stands for (``auto`` resolved)."""
    if config.lr_schedule != "auto":
        return config.lr_schedule
    return "plateau" if config.epochs == "auto" else "constant"


def automatic_patience(steps_per_epoch: int) -> int:
    """Epochs of patience for ``epochs="auto"``: enough for 2000 optimisation steps, at least 5.

    Small datasets take few steps per epoch, and their validation loss still falls after many
    epochs; large ones improve within an epoch. Counting steps serves both.
    """
    return max(5, math.ceil(2000 / max(steps_per_epoch, 1)))


class EarlyStopping(Callback):
    """Tracks the best epoch by the validation terms ``loop.monitor`` (the training loss when there
    is no validation data), keeps a copy of its weights, stops after ``patience`` epochs without
    improvement (0: never) and, with ``restore_best``, ends with the best weights."""

    name = "early_stopping"

    def __init__(self, patience: int, restore_best: bool = True) -> None:
        self.patience, self.restore_best = patience, restore_best
        self.best: list[float] | None = None
        self.best_epoch: int | None = None
        self.since_best = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def score(self, loop: Loop, record: dict[str, Any]) -> list[float]:
        terms = record["val"] if record.get("val") is not None else record["train"]
        return [terms[key] for key in loop.monitor if key in terms]

    def on_fit_start(self, loop: Loop) -> None:
        if self.patience > 0 and self.since_best >= self.patience:
            loop.stop("patience", self._detail(loop))

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        score = self.score(loop, record)
        if self.best is None or score < self.best:
            self.best, self.best_epoch, self.since_best = score, record["epoch"], 0
            if self.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in loop.step_module.state_dict().items()}
        else:
            self.since_best += 1
        if self.patience > 0 and self.since_best >= self.patience:
            loop.stop("patience", self._detail(loop))

    def _detail(self, loop: Loop) -> str:
        split = "validation" if loop.n_val else "training"
        return (
            f"no better {split} {'/'.join(loop.monitor)} for {self.since_best} epochs "
            f"(patience {self.patience}); the best was epoch {self.best_epoch}"
        )

    def on_fit_end(self, loop: Loop) -> None:
        if self.restore_best and self.best_state is not None:
            loop.step_module.load_state_dict(self.best_state)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        values = {"best": self.best, "best_epoch": self.best_epoch, "since_best": self.since_best}
        return dict(self.best_state or {}), values

    def load_state(self, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.since_best = values["best"], values["best_epoch"], values["since_best"]
        self.best_state = tensors or None


class LearningRateSchedule(Callback):
    """``constant``; ``cosine``: from ``lr`` down to 1 % of it over the planned steps (the epochs
    asked for, or the step budget of ``epochs="auto"``), a function of the step alone so a resumed
    run continues the curve exactly; ``plateau``: halved whenever the best epoch is ``patience // 2``
    epochs old (at least 2), never below 1/1024 of ``lr``; ``auto``: plateau when the epochs are
    ``auto`` (the rate anneals as the validation loss levels off), constant otherwise."""

    name = "lr_schedule"

    def __init__(self, config: TrainConfig, patience: int) -> None:
        self.kind, self.base = resolved_schedule(config), config.lr
        self.wait = max(2, patience // 2)
        self.scale = 1.0

    def _set(self, loop: Loop, lr: float) -> None:
        for group in loop.optimizer.param_groups:
            group["lr"] = lr

    def on_fit_start(self, loop: Loop) -> None:
        self._set(loop, self.base * self.scale)

    def on_step_start(self, loop: Loop) -> None:
        if self.kind == "cosine":
            progress = loop.step / max(loop.max_steps, 1)
            self._set(loop, self.base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))))

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        stopping = loop.find(EarlyStopping)
        if self.kind != "plateau" or stopping is None or stopping.since_best == 0:
            return
        if stopping.since_best % self.wait == 0 and self.scale > 1 / 1024:
            self.scale /= 2
            self._set(loop, self.base * self.scale)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"scale": self.scale}

    def load_state(self, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
        self.scale = values["scale"]


class PenaltyWarmup(Callback):
    """Ramps the step's ``penalty_scale`` linearly from 0 to 1 over ``epochs`` (KL warm-up,
    Sonderby et al. 2016: the decoder learns to use the code before the KL pulls the posterior to
    the prior). A function of the step alone, so a resumed run continues the ramp exactly."""

    name = "penalty_warmup"

    def __init__(self, epochs: float) -> None:
        self.epochs = epochs

    def on_fit_start(self, loop: Loop) -> None:
        if not isinstance(getattr(loop.step_module, "penalty_scale", None), torch.Tensor):
            raise AekitError(
                "penalty_warmup_epochs is set, but this step has no penalties to ramp",
                "only an autoencoder's step weights penalties",
                "leave penalty_warmup_epochs at 0",
            )

    def on_step_start(self, loop: Loop) -> None:
        warmup_steps = self.epochs * loop.steps_per_epoch
        if loop.step <= warmup_steps + 1:  # afterwards the scale stays at 1
            scale = min(1.0, loop.step / warmup_steps) if warmup_steps > 0 else 1.0
            loop.step_module.penalty_scale.fill_(scale)


class ProgressBar(Callback):
    """A tqdm bar over the optimisation steps (planned steps for a fixed number of epochs; a count
    for ``epochs="auto"``), with the latest losses and the best validation epoch."""

    name = "progress"

    def __init__(self) -> None:
        self.bar: Any = None

    def on_fit_start(self, loop: Loop) -> None:
        from tqdm.auto import tqdm

        total = loop.max_steps if loop.max_epochs is not None else None
        self.bar = tqdm(total=total, initial=loop.step, unit="step", dynamic_ncols=True, leave=True)

    def on_epoch_start(self, loop: Loop) -> None:
        planned = f"/{loop.max_epochs}" if loop.max_epochs is not None else ""
        self.bar.set_description(f"epoch {loop.epoch + 1}{planned}")

    def on_log(self, loop: Loop, first_step: int, names: list[str], values: torch.Tensor) -> None:
        self.bar.update(len(values))
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in zip(names, values.mean(0).tolist(), strict=True)})

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        shown = {"loss": f"{record['train']['loss']:.4g}"}
        if record.get("val") is not None:
            shown["val"] = f"{record['val']['loss']:.4g}"
        stopping = loop.find(EarlyStopping)
        if stopping is not None and stopping.best_epoch is not None:
            shown["best"] = f"epoch {stopping.best_epoch}"
        self.bar.set_postfix(shown)

    def on_fit_end(self, loop: Loop) -> None:
        if self.bar is not None:
            self.bar.close()


class CSVLogger(Callback):
    """Every loss term per step and per epoch, and the learning rate, in a long-format CSV:
    ``kind,epoch,step,name,value`` with kind ``step`` (one row per term and step), ``train`` or
    ``val`` (epoch means). Rewritten on resume without the rows after the checkpoint."""

    name = "csv_logger"
    FIELDS = ("kind", "epoch", "step", "name", "value")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[tuple[Any, ...]] = []

    def on_fit_start(self, loop: Loop) -> None:
        if loop.resumed_from is not None and self.path.is_file():
            with open(self.path, newline="") as handle:
                self.rows = [
                    (r["kind"], int(r["epoch"]), int(r["step"]), r["name"], float(r["value"]))
                    for r in csv.DictReader(handle)
                    if int(r["epoch"]) <= loop.epoch
                ]
        self._write()

    def on_log(self, loop: Loop, first_step: int, names: list[str], values: torch.Tensor) -> None:
        for offset, row in enumerate(values.tolist()):
            step = first_step + offset + 1
            self.rows += [("step", loop.epoch + 1, step, n, v) for n, v in zip(names, row, strict=True)]
        self.rows.append(("step", loop.epoch + 1, first_step + len(values), "lr", loop.lr))

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        for kind in ("train", "val"):
            for name, value in (record.get(kind) or {}).items():
                self.rows.append((kind, record["epoch"], loop.step, name, value))
        self._write()  # whole epochs at a time: the file always ends at an epoch boundary

    def _write(self) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.FIELDS)
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, buffer.getvalue().encode())


class TensorBoardLogger(Callback):
    """TensorBoard event files in ``log_dir``: every loss term per step (``step/``) and per epoch
    (``train/``, ``val/``), the learning rate, and each epoch the step's ``preview`` of a few
    held-out examples as images (originals above reconstructions for an autoencoder).
    Needs the ``tensorboard`` package (``pip install tensorboard``)."""

    name = "tensorboard_logger"

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise AekitError(
                "the tensorboard logger needs the tensorboard package",
                "it is not installed",
                "pip install tensorboard, or use --logger csv",
            ) from None
        self.log_dir, self.writer_class, self.writer = Path(log_dir), SummaryWriter, None

    def on_fit_start(self, loop: Loop) -> None:
        # purge_step drops the events a killed run wrote after its last checkpoint
        self.writer = self.writer_class(str(self.log_dir), purge_step=loop.step + 1 if loop.step else None)

    def on_log(self, loop: Loop, first_step: int, names: list[str], values: torch.Tensor) -> None:
        for offset, row in enumerate(values.tolist()):
            for name, value in zip(names, row, strict=True):
                self.writer.add_scalar(f"step/{name}", value, first_step + offset + 1)
        self.writer.add_scalar("step/lr", loop.lr, first_step + len(values))

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        for kind in ("train", "val"):
            for name, value in (record.get(kind) or {}).items():
                self.writer.add_scalar(f"{kind}/{name}", value, record["epoch"])
        self.writer.add_scalar("epoch/lr", record["lr"], record["epoch"])
        preview = getattr(loop.step_module, "preview", None)
        if preview is not None and loop.preview is not None:
            images = preview(loop.preview)  # (N, C, H, W) in [0, 1], or None
            if images is not None:
                self.writer.add_images("reconstructions", images, record["epoch"])
        self.writer.flush()

    def on_fit_end(self, loop: Loop) -> None:
        if self.writer is not None:
            self.writer.close()


class Checkpoint(Callback):
    """Writes ``checkpoint.safetensors`` into ``loop.run_dir`` every ``every`` epochs (0: only at
    the end) and always after the last epoch, from the first process only: weights, optimiser,
    loop counters, history and every callback's state, enough to resume exactly."""

    name = "checkpoint"

    def __init__(self, every: int) -> None:
        self.every = every

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        due = (self.every > 0 and loop.epoch % self.every == 0) or loop.stop_reason is not None
        if due and loop.run_dir is not None and loop.topology.is_main:
            save_checkpoint(loop, loop.run_dir / CHECKPOINT_FILE)


# ------------------------------------------------------------------------------------------------ #
# checkpoints: one safetensors file, tensors plus a JSON header, written atomically


def resume_keys() -> list[str]:
    """Settings that change what an epoch computes: a resumed run must keep them."""
    changeable = {"epochs", "max_steps", "patience", "restore_best", "compile", "channels_last", "flush_denormal"}
    changeable |= {"device", "checkpoint_every", "log_every", "logger"}
    return [f.name for f in settings_of(TrainConfig) if f.name not in changeable]


def save_checkpoint(loop: Loop, path: Path) -> None:
    """Everything :func:`load_checkpoint` needs to continue ``loop`` exactly."""
    tensors = {f"step.{k}": v for k, v in loop.step_module.state_dict().items()}
    optim_state = loop.optimizer.state_dict()
    scalar_state: dict[str, dict[str, Any]] = {}
    for index, state in optim_state["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalar_state.setdefault(str(index), {})[key] = value
    callbacks: dict[str, Any] = {}
    for callback in loop.callbacks:
        kept, values = callback.state()
        tensors.update({f"callback.{callback.name}.{k}": v for k, v in kept.items()})
        if values:
            callbacks[callback.name] = values
    describe = getattr(loop.step_module, "describe", None)
    meta = {
        "format_version": FORMAT_VERSION,
        "step": describe() if describe is not None else None,
        "train_config": loop.config.to_dict(),
        "epoch": loop.epoch,
        "steps": loop.step,
        "examples": loop.examples,
        "n_train": loop.n_train,
        "n_val": loop.n_val,
        "history": loop.history,
        "stop_reason": loop.stop_reason,
        "stop_detail": loop.stop_detail,
        "callbacks": callbacks,
        "optimizer_param_groups": optim_state["param_groups"],
        "optimizer_scalar_state": scalar_state,
    }
    write_safetensors(path, tensors, meta)


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The JSON part of a checkpoint (counters, history, settings), without loading it."""
    return read_safetensors(_checkpoint_path(path), "checkpoint")[1]


def _checkpoint_path(path: str | Path) -> Path:
    path = Path(path)
    return path / CHECKPOINT_FILE if path.is_dir() else path


def load_checkpoint(loop: Loop, path: str | Path) -> None:
    """Restore ``loop`` (step weights, optimiser, counters, history, callbacks) from ``path``;
    a checkpoint of another model, other training settings or other data is refused."""
    path = _checkpoint_path(path)
    tensors, meta = read_safetensors(path, "checkpoint")
    describe = getattr(loop.step_module, "describe", None)
    if meta.get("step") != (describe() if describe is not None else None):
        raise AekitError(
            f"checkpoint {path} was written for another model configuration",
            "resuming needs the same parts and options",
            "resume with the configuration of that run",
        )
    saved = meta["train_config"]
    for key in resume_keys():
        if saved.get(key) != getattr(loop.config, key):
            raise AekitError(
                f"checkpoint {path} was trained with {key}={saved.get(key)!r}, not {getattr(loop.config, key)!r}",
                "an exact resume needs the same training settings",
                f"resume with {key}={saved.get(key)!r}",
            )
    if (meta["n_train"], meta["n_val"]) != (loop.n_train, loop.n_val):
        raise AekitError(
            f"checkpoint {path} saw {meta['n_train']}/{meta['n_val']} train/validation examples, "
            f"not {loop.n_train}/{loop.n_val}",
            "resuming needs the same data",
            "resume on the data of that run",
        )
    load_state(loop.step_module, {k[5:]: v for k, v in tensors.items() if k.startswith("step.")}, str(path))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value.to(loop.device)
    for index, values in meta["optimizer_scalar_state"].items():
        state.setdefault(int(index), {}).update(values)
    loop.optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer_param_groups"]})
    loop.epoch, loop.step, loop.examples = meta["epoch"], meta["steps"], meta["examples"]
    loop.history = copy.deepcopy(meta["history"])
    loop.resumed_from = loop.epoch
    for callback in loop.callbacks:
        prefix = f"callback.{callback.name}."
        kept = {k[len(prefix) :]: v.to(loop.device) for k, v in tensors.items() if k.startswith(prefix)}
        values = meta["callbacks"].get(callback.name)
        if values is not None or kept:
            callback.load_state(kept, values or {})
