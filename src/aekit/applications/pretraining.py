"""Unsupervised pretraining: a classifier whose first layers are a trained autoencoder's encoder.

    logits = head(code(x)),   code(x) = latent.mean(encoder(x))   (the noise-free code, (B, K))

The encoder and latent are copied from the autoencoder, so the classifier starts from exactly the
learned features; ``freeze=True`` keeps them fixed (a probe of the representation), otherwise they
are fine-tuned with the head on the labels. Built from an *untrained* autoencoder the same network
is the "no pretraining" baseline. :func:`fine_tune` is the supervised loop (cross-entropy, seeded
shuffling, validation error for early stopping and best-weight restore); nothing here writes files.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..errors import AekitError
from ..model import Autoencoder
from ..nets.mlp import MLP
from ..tensors import apply_batched, as_tensor, denormals_flushed, resolve_device
from ..train import make_optimizer, optimizer_step, scheduled_learning_rate, zero_grad


class EncoderClassifier(nn.Module):
    """x (B, *data_shape) -> logits (B, n_classes) through an autoencoder's encoder and a new head.

    ``hidden`` adds layers between the code and the output (the head is an MLP); ``freeze`` stops
    gradients into the encoder and latent and keeps them in eval mode, so a frozen encoder stays
    bit-for-bit what the autoencoder learned.
    """

    def __init__(
        self,
        encoder: nn.Module,
        latent: nn.Module,
        code_size: int,
        n_classes: int,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        freeze: bool = False,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise AekitError(f"{n_classes} class", "a classifier needs at least 2 classes", "check the labels")
        self.encoder = encoder
        self.latent = latent
        self.head = MLP([code_size], [n_classes], hidden=list(hidden), activation=activation)
        self.freeze = bool(freeze)
        for parameter in [*encoder.parameters(), *latent.parameters()]:
            parameter.requires_grad_(not self.freeze)

    @classmethod
    def from_autoencoder(
        cls,
        model: Autoencoder,
        n_classes: int,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        freeze: bool = False,
    ) -> EncoderClassifier:
        """Copy ``model``'s encoder and latent (the autoencoder itself is left untouched)."""
        encoder, latent = copy.deepcopy(model.encoder), copy.deepcopy(model.latent)
        return cls(encoder, latent, model.code_size, n_classes, hidden, activation, freeze)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The differentiable, noise-free code (B, K)."""
        return self.latent.mean(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.code(x))  # (B, n_classes) logits

    def train(self, mode: bool = True) -> EncoderClassifier:
        super().train(mode)
        if self.freeze:  # batch-norm statistics of a frozen encoder must not move either
            self.encoder.eval()
            self.latent.eval()
        return self


@dataclass
class FineTuneResult:
    """Per-epoch history (train loss in nats per example, validation error rate and loss), best epoch,
    its validation error, seconds."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_error: float | None = None
    seconds: float = 0.0


def fine_tune(
    classifier: nn.Module,
    x: Any,
    y: Any,
    config: TrainConfig | None = None,
    x_val: Any = None,
    y_val: Any = None,
    progress: bool = False,
) -> FineTuneResult:
    """Train ``classifier`` (logits out) on x (N, ...) and integer labels y (N,) with cross-entropy.

    Validation data are ``x_val``/``y_val`` or, when not given, a seeded ``config.val_fraction``
    of x. The validation error rate (ties broken by the validation cross-entropy) drives early
    stopping (``config.patience``) and, with ``config.restore_best``, the weights kept at the end.
    Uses the batch size, learning rate, schedule, optimiser, weight decay, gradient clipping,
    precision, denormal flushing, seed and device of ``config``.
    """
    cfg = (config or TrainConfig()).validate()
    device = resolve_device(cfg.device)
    x = as_tensor(x, "training data")
    y = as_labels(y)
    if len(y) != len(x):
        raise AekitError(f"{len(x)} examples but {len(y)} labels", "each example needs one label", "fix the data")
    if x_val is None and cfg.val_fraction > 0:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed + 1))
        n_val = round(cfg.val_fraction * len(x))
        if 0 < n_val < len(x):
            x, x_val, y, y_val = x[order[n_val:]], x[order[:n_val]], y[order[n_val:]], y[order[:n_val]]
    if x_val is not None:
        x_val = as_tensor(x_val, "validation data")
        y_val = as_labels(y_val)

    classifier.to(device)
    x, y = x.to(device), y.to(device)
    optimizer = make_optimizer(classifier, cfg, device)
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    result = FineTuneResult()
    best_state: dict[str, torch.Tensor] | None = None
    best_score: tuple[float, float] | None = None
    since_best = 0
    started = time.perf_counter()
    epochs = range(cfg.epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, unit="epoch", dynamic_ncols=True)
    with denormals_flushed(cfg.flush_denormal and device.type == "cpu"):  # see aekit.tensors
        for epoch in epochs:
            classifier.train()
            order = torch.randperm(len(x), generator=shuffle_gen).to(device)
            loss_sum = torch.zeros((), device=device)
            for i in range(steps_per_epoch):
                for group in optimizer.param_groups:
                    group["lr"] = scheduled_learning_rate(cfg, epoch * steps_per_epoch + i, total_steps)
                index = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                with autocast:
                    logits = classifier(x[index])  # (B, n_classes)
                loss = F.cross_entropy(logits.float(), y[index])  # nats per example
                zero_grad(optimizer)
                loss.backward()
                if cfg.clip_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(classifier.parameters(), cfg.clip_grad_norm)
                optimizer_step(optimizer)
                loss_sum += loss.detach() * len(index)
            train_loss = float(loss_sum) / len(x)  # the one host-device sync per epoch
            if not math.isfinite(train_loss):
                raise AekitError(
                    f"the classification loss became {train_loss} in epoch {epoch + 1}",
                    "training diverged",
                    "lower the learning rate or set clip_grad_norm",
                )
            record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss}
            if x_val is not None:
                logits = predict_logits(classifier, x_val)  # (N_val, n_classes)
                record["val_error"] = float((logits.argmax(1) != y_val).float().mean())
                record["val_loss"] = float(F.cross_entropy(logits.float(), y_val))
                # the lowest error wins; among equal errors (a small validation set), the lowest loss
                score = (record["val_error"], record["val_loss"])
                if best_score is None or score < best_score:
                    best_score, since_best = score, 0
                    result.best_val_error, result.best_epoch = record["val_error"], epoch + 1
                    if cfg.restore_best:
                        best_state = {k: v.detach().clone() for k, v in classifier.state_dict().items()}
                else:
                    since_best += 1
            result.history.append(record)
            if progress:
                epochs.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "epoch"})
            if cfg.patience > 0 and since_best >= cfg.patience:
                break
    if best_state is not None:
        classifier.load_state_dict(best_state)
    classifier.eval()
    result.seconds = time.perf_counter() - started
    return result


def as_labels(y: Any) -> torch.Tensor:
    """Integer labels (N,) as a new int64 CPU tensor; a copy, so read-only arrays (memory-mapped
    datasets) are fine and the caller's array is never shared."""
    return torch.tensor(np.asarray(y), dtype=torch.long)


def predict_logits(classifier: nn.Module, x: Any, batch_size: int = 1024) -> torch.Tensor:
    """Logits (N, n_classes) on the CPU, computed in eval mode on the classifier's device."""
    parameter = next(classifier.parameters())
    classifier.eval()
    return apply_batched(classifier, as_tensor(x, dtype=parameter.dtype), batch_size, parameter.device)


def error_rate(classifier: nn.Module, x: Any, y: Any, batch_size: int = 1024) -> float:
    """Fraction of examples whose most probable class is not their label."""
    predicted = predict_logits(classifier, x, batch_size).argmax(1)
    return float((predicted != as_labels(y)).float().mean())
