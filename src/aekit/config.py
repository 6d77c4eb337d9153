"""Configuration: what a model is made of and how it is trained, as plain JSON-able dataclasses.

``ModelConfig`` names every part as ``{"name": ..., **kwargs}`` (see :mod:`aekit.registry`), so a
saved ``config.json`` rebuilds the model exactly. ``TrainConfig`` holds the optimisation settings.
Both round-trip through JSON and accept ``key=value`` overrides (``lr=3e-4``,
``encoder.hidden=[512,256]``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import AekitError

FORMAT_VERSION = 1


@dataclass
class ModelConfig:
    """The parts of an autoencoder, each as ``{"name": registered name, **constructor kwargs}``."""

    data_shape: list[int | None]  # one example, e.g. [1, 28, 28] or [784]; None: any size (fully convolutional)
    encoder: dict[str, Any]  # (B, *encoder input shape) -> (B, H)
    latent: dict[str, Any]  # (B, H) -> (B, K)
    decoder: dict[str, Any]  # (B, K) -> (B, *data_shape) distribution parameters
    likelihood: dict[str, Any]  # nll(params, x) in nats per example
    penalties: list[dict[str, Any]] = field(default_factory=list)  # each with its "weight"
    corruption: dict[str, Any] | None = None  # C(x~|x), applied on the training path only
    family: str = "custom"  # the preset this came from (informational)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, data, "model configuration")


@dataclass
class TrainConfig:
    """How to train: optimiser, batching, stopping, checkpoints. Defaults suit 28x28 images."""

    epochs: int = 20  # passes over the training split
    batch_size: int = 128  # examples per optimisation step
    lr: float = 1e-3  # learning rate
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0  # decoupled for adamw, L2 for adam
    lr_schedule: str = "constant"  # constant | cosine (decays to 1 % of lr over all epochs)
    val_fraction: float = 0.1  # held out from the training data for validation / early stopping
    patience: int = 0  # epochs without validation improvement before stopping; 0 = never stop early
    restore_best: bool = True  # end with the weights of the best validation epoch
    clip_grad_norm: float = 0.0  # max global gradient norm; 0 = no clipping
    dynamic_binarization: bool = False  # resample x ~ Bernoulli(x) for every batch
    penalty_warmup_epochs: float = 0.0  # penalty weights ramp 0 -> full over these epochs (KL warm-up)
    precision: str = "fp32"  # fp32 | bf16: autocast the training step's matmuls to bfloat16
    compile: bool = False  # torch.compile the training loss, forward and backward (the first step compiles)
    channels_last: bool = True  # NHWC memory layout for convolutional networks (MLPs are unaffected)
    flush_denormal: bool = True  # CPU: denormal floats become 0 while training (x86 is far slower on them)
    seed: int = 0  # seeds initialisation, splits, shuffling, corruption and latent noise
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    checkpoint_every: int = 0  # epochs between checkpoints when a run directory is given; 0 = never
    log_every: int = 50  # steps between progress-bar updates (the only host-device syncs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, data, "training configuration")

    def validate(self) -> TrainConfig:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.optimizer in ("adam", "adamw"), "optimizer must be adam or adamw"),
            (self.lr_schedule in ("constant", "cosine"), "lr_schedule must be constant or cosine"),
            (self.precision in ("fp32", "bf16"), "precision must be fp32 or bf16"),
            (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)"),
            (self.patience >= 0, "patience must be >= 0"),
            (self.clip_grad_norm >= 0, "clip_grad_norm must be >= 0"),
            (self.penalty_warmup_epochs >= 0, "penalty_warmup_epochs must be >= 0"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0"),
            (self.log_every >= 1, "log_every must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise AekitError(f"bad training configuration: {message}", "", "fix the value")
        return self


def _from_dict(cls: type, data: dict[str, Any], what: str) -> Any:
    if not isinstance(data, dict):
        raise AekitError(f"bad {what}", f"expected a JSON object, got {type(data).__name__}", "fix the file")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AekitError(
            f"unknown {what} key(s) {', '.join(unknown)}", f"the keys are {', '.join(sorted(known))}", "fix them"
        )
    try:
        return cls(**data)
    except TypeError as error:
        raise AekitError(f"bad {what}", str(error), "give every required key") from None


def parse_value(text: str) -> Any:
    """``"3e-4"`` -> 3e-4, ``"[1,2]"`` -> [1, 2], ``"true"`` -> True, anything else stays a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``dotted.key=value`` applied; unknown keys are errors."""
    result = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise AekitError(f"bad override {item!r}", "expected key=value", "write e.g. lr=3e-4")
        key, text = item.split("=", 1)
        path = key.strip().split(".")
        node = result
        for i, part in enumerate(path):
            is_last = i == len(path) - 1
            if not isinstance(node, dict) or (part not in node and not (is_last and _open_dict(node))):
                choices = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
                raise AekitError(f"unknown setting {key!r}", f"at {part!r} the keys are {choices}", "fix the key")
            if is_last:
                node[part] = parse_value(text)
            else:
                node = node[part]
    return result


def _open_dict(node: dict[str, Any]) -> bool:
    # a part description accepts any of its constructor's keyword arguments, checked when built
    return "name" in node
