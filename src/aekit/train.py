"""Training: one readable loop with validation, early stopping, checkpoints and exact resume.

The data live in memory as one tensor on the training device; a batch is an index into it, so
there is no per-example Python work. Host-device synchronisation happens only every ``log_every``
steps, where the losses of the window are checked for NaN/inf (naming the exact step that broke).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import FORMAT_VERSION, TrainConfig
from .errors import AekitError
from .io import load_state, read_safetensors, write_safetensors
from .model import Autoencoder
from .tensors import as_tensor, resolve_device

CHECKPOINT_FILE = "checkpoint.safetensors"


class TrainingDiverged(AekitError):
    """The loss became NaN or infinite."""


def make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW, fused when this torch supports it on ``device``."""
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        optimizer = cls(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
        if device.type not in ("cpu", "cuda"):
            raise RuntimeError("fused kernels only for cpu and cuda")
        return optimizer
    except (RuntimeError, TypeError):
        return cls(params, lr=config.lr, weight_decay=config.weight_decay)


@dataclass
class TrainResult:
    """What a run produced: per-epoch history, the best validation epoch, why it stopped."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    samples_per_second: float = 0.0


class Trainer:
    """Fit an :class:`Autoencoder` on in-memory data.

    ``run_dir`` (optional) receives ``checkpoint.safetensors`` every ``checkpoint_every`` epochs;
    ``fit(..., resume=path)`` continues from such a checkpoint and ends with exactly the weights
    an uninterrupted run with the same seed would have.
    """

    def __init__(
        self,
        model: Autoencoder,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.config = (config or TrainConfig()).validate()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.device = resolve_device(self.config.device)

    # -------------------------------------------------------------------------------------------- #

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The seeded train/validation split used when no validation data are given."""
        n_val = round(self.config.val_fraction * len(x))
        if n_val == 0:
            return x, None
        if n_val >= len(x):
            raise AekitError(f"val_fraction leaves no training data from {len(x)} examples", "", "lower it")
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.config.seed + 1))
        return x[order[n_val:]], x[order[:n_val]]

    def fit(self, x_train: Any, x_val: Any = None, resume: str | Path | None = None) -> TrainResult:
        """Train on ``x_train`` (N, *data_shape); validate on ``x_val`` or a seeded split of it."""
        cfg, model, device = self.config, self.model, self.device
        x_train = as_tensor(x_train, "training data")
        if x_val is None:
            x_train, x_val = self.split(x_train)
        else:
            x_val = as_tensor(x_val, "validation data")
        for name, data in (("training", x_train), ("validation", x_val)):
            if data is not None and tuple(data.shape[1:]) != model.data_shape:
                raise AekitError(
                    f"{name} examples have shape {tuple(data.shape[1:])}",
                    f"the model was built for {model.data_shape}",
                    "build the model for this data",
                )
        model.to(device)
        x_train = x_train.to(device)
        x_val = x_val.to(device) if x_val is not None else None
        optimizer = make_optimizer(model, cfg, device)
        shuffle_gen = torch.Generator().manual_seed(cfg.seed)
        noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 2)
        result = TrainResult()
        best_state: dict[str, torch.Tensor] | None = None
        start_epoch, since_best = 0, 0
        if resume is not None:
            start_epoch, since_best, best_state = self._restore(
                resume, optimizer, shuffle_gen, noise_gen, result, len(x_train), 0 if x_val is None else len(x_val)
            )

        n = len(x_train)
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        total_steps = cfg.epochs * steps_per_epoch
        # bf16 autocast runs the matmuls in bfloat16; weights, optimiser state and losses stay float32
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
        bar = _progress_bar(total_steps, start_epoch * steps_per_epoch, self.progress)
        started = time.perf_counter()
        trained_samples = 0
        try:
            for epoch in range(start_epoch, cfg.epochs):
                epoch_started = time.perf_counter()
                model.train()
                bar.set_description(f"epoch {epoch + 1}/{cfg.epochs}")
                order = torch.randperm(n, generator=shuffle_gen).to(device)
                window: list[torch.Tensor] = []  # per-step [total, *terms], synced every log_every
                sums: torch.Tensor | None = None
                term_names: list[str] = []
                for i in range(steps_per_epoch):
                    step = epoch * steps_per_epoch + i
                    for group in optimizer.param_groups:
                        group["lr"] = self.learning_rate(step, total_steps)
                    x = x_train[order[i * cfg.batch_size : (i + 1) * cfg.batch_size]]  # (B, *data_shape)
                    if cfg.dynamic_binarization:
                        x = torch.bernoulli(x, generator=noise_gen)
                    scale = self.penalty_scale(step, steps_per_epoch)  # 1 unless warming up
                    with autocast:
                        out = model.loss(x, generator=noise_gen, penalty_scale=scale)
                    optimizer.zero_grad(set_to_none=True)
                    out.total.backward()
                    if cfg.clip_grad_norm > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
                    optimizer.step()
                    term_names = ["loss", *out.terms]
                    window.append(torch.stack([out.total.detach(), *(t.detach() for t in out.terms.values())]))
                    if len(window) == cfg.log_every or i == steps_per_epoch - 1:
                        values = torch.stack(window).cpu()  # (steps, terms): the one sync per window
                        _check_finite(values, step - len(window) + 1, epoch, term_names, self.run_dir)
                        sums = values.sum(0) if sums is None else sums + values.sum(0)
                        bar.update(len(window))
                        bar.set_postfix(
                            {k: f"{v:.4g}" for k, v in zip(term_names, values.mean(0).tolist(), strict=True)}
                        )
                        window = []
                    trained_samples += len(x)
                assert sums is not None
                train_terms = dict(zip(term_names, (sums / steps_per_epoch).tolist(), strict=True))
                val_terms = self.evaluate(x_val) if x_val is not None else None
                record = {
                    "epoch": epoch + 1,
                    "train": train_terms,
                    "val": val_terms,
                    "lr": optimizer.param_groups[0]["lr"],
                    "seconds": time.perf_counter() - epoch_started,
                }
                result.history.append(record)
                if val_terms is not None:
                    bar.set_postfix({"loss": f"{train_terms['loss']:.4g}", "val": f"{val_terms['loss']:.4g}"})
                    if result.best_val_loss is None or val_terms["loss"] < result.best_val_loss:
                        result.best_val_loss, result.best_epoch, since_best = val_terms["loss"], epoch + 1, 0
                        if cfg.restore_best:
                            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        since_best += 1
                stop = cfg.patience > 0 and since_best >= cfg.patience
                last = stop or epoch + 1 == cfg.epochs
                if (
                    self.run_dir is not None
                    and cfg.checkpoint_every > 0
                    and ((epoch + 1) % cfg.checkpoint_every == 0 or last)
                ):
                    self._checkpoint(
                        epoch + 1,
                        since_best,
                        optimizer,
                        shuffle_gen,
                        noise_gen,
                        result,
                        best_state,
                        len(x_train),
                        0 if x_val is None else len(x_val),
                    )
                if stop:
                    result.stopped_early = True
                    break
        finally:
            bar.close()
        result.seconds = time.perf_counter() - started
        result.samples_per_second = trained_samples / max(result.seconds, 1e-9)
        if cfg.restore_best and best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        return result

    def learning_rate(self, step: int, total_steps: int) -> float:
        """The learning rate at ``step``: constant, or cosine decay to 1 % of ``lr``."""
        lr = self.config.lr
        if self.config.lr_schedule == "cosine":
            return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / max(total_steps, 1))))
        return lr

    def penalty_scale(self, step: int, steps_per_epoch: int) -> float:
        """What multiplies every penalty weight at ``step``: 1, or with ``penalty_warmup_epochs`` a
        linear ramp from 0 (KL warm-up, Sonderby et al. 2016: the decoder learns to use the code
        before the KL pulls the posterior to the prior). A function of the step alone, so a resumed
        run continues the ramp exactly."""
        warmup_steps = self.config.penalty_warmup_epochs * steps_per_epoch
        return min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, batch_size: int = 1024) -> dict[str, float]:
        """The training objective on held-out data (fixed noise seed), nats per example by term."""
        model = self.model
        was_training = model.training
        model.eval()
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 3)
        sums: torch.Tensor | None = None
        names: list[str] = []
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size].to(self.device)
            if self.config.dynamic_binarization:
                batch = torch.bernoulli(batch, generator=generator)
            out = model.loss(batch, generator=generator, noisy=True)
            names = ["loss", *out.terms]
            values = torch.stack([out.total.detach(), *(t.detach() for t in out.terms.values())]) * len(batch)
            sums = values if sums is None else sums + values
        model.train(was_training)
        assert sums is not None
        return dict(zip(names, (sums / len(x)).tolist(), strict=True))

    # -------------------------------------------------------------------------------------------- #
    # checkpoints: one safetensors file, tensors plus a JSON header; written atomically

    def _checkpoint(self, epoch, since_best, optimizer, shuffle_gen, noise_gen, result, best_state, n_train, n_val):
        assert self.run_dir is not None
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if best_state is not None:
            tensors.update({f"best.{k}": v for k, v in best_state.items()})
        optim_state = optimizer.state_dict()
        scalar_state: dict[str, dict[str, Any]] = {}
        for index, state in optim_state["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{index}.{key}"] = value
                else:
                    scalar_state.setdefault(str(index), {})[key] = value
        tensors["rng.shuffle"] = shuffle_gen.get_state()
        tensors["rng.noise"] = noise_gen.get_state()
        meta = {
            "format_version": FORMAT_VERSION,
            "model_config": self.model.config.to_dict(),
            "train_config": self.config.to_dict(),
            "epoch": epoch,
            "since_best": since_best,
            "n_train": n_train,
            "n_val": n_val,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "optimizer_param_groups": optim_state["param_groups"],
            "optimizer_scalar_state": scalar_state,
        }
        write_safetensors(self.run_dir / CHECKPOINT_FILE, tensors, meta)

    def _restore(self, path, optimizer, shuffle_gen, noise_gen, result, n_train, n_val):
        path = Path(path)
        if path.is_dir():
            path = path / CHECKPOINT_FILE
        tensors, meta = read_safetensors(path, "checkpoint")
        if meta.get("model_config") != self.model.config.to_dict():
            raise AekitError(
                f"checkpoint {path} was written for another model configuration",
                "resuming needs the same parts and options",
                "resume with the configuration of that run",
            )
        saved = meta["train_config"]
        for key in (
            "batch_size",
            "seed",
            "optimizer",
            "lr",
            "val_fraction",
            "lr_schedule",
            "dynamic_binarization",
            "precision",
            "penalty_warmup_epochs",
        ):
            if saved.get(key) != getattr(self.config, key):
                raise AekitError(
                    f"checkpoint {path} was trained with {key}={saved.get(key)!r}, not {getattr(self.config, key)!r}",
                    "an exact resume needs the same training settings",
                    f"resume with {key}={saved.get(key)!r}",
                )
        if (meta["n_train"], meta["n_val"]) != (n_train, n_val):
            raise AekitError(
                f"checkpoint {path} saw {meta['n_train']}/{meta['n_val']} train/validation examples, "
                f"not {n_train}/{n_val}",
                "resuming needs the same data",
                "resume on the data of that run",
            )
        load_state(self.model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value.to(self.device)
        for index, values in meta["optimizer_scalar_state"].items():
            state.setdefault(int(index), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer_param_groups"]})
        shuffle_gen.set_state(tensors["rng.shuffle"])
        noise_gen.set_state(tensors["rng.noise"])
        result.history = meta["history"]
        result.best_epoch, result.best_val_loss = meta["best_epoch"], meta["best_val_loss"]
        best = {k[5:]: v.to(self.device) for k, v in tensors.items() if k.startswith("best.")} or None
        return meta["epoch"], meta["since_best"], best


def _check_finite(values: torch.Tensor, first_step: int, epoch: int, names: list[str], run_dir: Path | None) -> None:
    finite = torch.isfinite(values).all(1)  # (steps,)
    if bool(finite.all()):
        return
    offset = int((~finite).nonzero()[0])
    bad_term = names[int((~torch.isfinite(values[offset])).nonzero()[0])]
    checkpoint = run_dir / CHECKPOINT_FILE if run_dir is not None else None
    kept = (
        f"the last good checkpoint {checkpoint} is kept"
        if checkpoint is not None and checkpoint.exists()
        else "no checkpoint was written"
    )
    raise TrainingDiverged(
        f"the {bad_term} became {values[offset].tolist()[names.index(bad_term)]} at step {first_step + offset} "
        f"(epoch {epoch + 1})",
        kept,
        "lower the learning rate, set clip_grad_norm, or check the data scale",
    )


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, leave=True)
