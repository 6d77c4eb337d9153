"""Configuration: what a model is made of and how it is trained, as plain JSON-able dataclasses.

``ModelConfig`` names every part as ``{"name": ..., **kwargs}`` (see :mod:`aekit.registry`), so a
saved ``config.json`` rebuilds the model exactly. ``FamilyConfig`` is the short form a user writes
(a family, a code size and network options, in :mod:`aekit.families`); ``TrainConfig`` holds the
optimisation settings.

Every field of ``FamilyConfig`` and ``TrainConfig`` is declared once with :func:`setting`: its
default, its help text, its allowed values. From that one declaration come the ``aekit train``
options (:func:`aekit.cli.settings.add_settings`), the scikit-learn estimators' parameters and the
range checks of :meth:`validate`; adding a setting touches this file only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import AekitError

FORMAT_VERSION = 1
AUTO = "auto"


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    auto: bool = False,
    cli: bool = True,
    estimator: bool = True,
    choices_from: Callable[[], list[Any]] | None = None,
) -> Any:
    """A dataclass field with what the CLI, the estimators and validation need to know about it.

    ``minimum``/``maximum`` bound a number (inclusive), ``above``/``below`` exclusively;
    ``auto`` also allows the string ``"auto"``; ``cli``/``estimator`` say whether ``aekit train``
    and the scikit-learn estimators expose it; ``choices_from`` is a function that lists the
    allowed values when they are only known at run time (the registered families).
    """
    metadata = {
        "help": help,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "above": above,
        "below": below,
        "auto": auto,
        "cli": cli,
        "estimator": estimator,
        "choices_from": choices_from,
    }
    if isinstance(default, list | dict):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata=metadata)
    return field(default=default, metadata=metadata)


def settings_of(cls: type) -> list[dataclasses.Field]:
    """The fields of a settings dataclass, with their resolved types in ``field.type``."""
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        f.type = hints[f.name]
        fields.append(f)
    return fields


def _union_members(annotation: Any) -> tuple[Any, ...]:
    """``int | None`` -> (int, NoneType); a type that is not a union -> (itself,)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def value_kind(f: dataclasses.Field) -> str:
    """``bool``, ``int``, ``float``, ``str``, ``ints`` (a list of integers) or ``dict`` for a setting."""
    args = [a for a in _union_members(f.type) if a is not type(None)]
    kinds = (("bool", bool), ("int", int), ("float", float), ("ints", list), ("dict", dict))
    for kind, python_type in kinds:
        if any(typing.get_origin(a) is python_type or a is python_type for a in args):
            return kind
    return "str"


def allowed_values(f: dataclasses.Field) -> tuple[Any, ...] | None:
    """The values a setting may take, when they are a list (choices), else None."""
    if f.metadata.get("choices_from"):
        return tuple(f.metadata["choices_from"]())
    return f.metadata.get("choices")


def describe_range(f: dataclasses.Field) -> str:
    """What a setting allows, in words: ``an integer >= 1 or auto``, ``one of adam, adamw``."""
    meta, kind = f.metadata, value_kind(f)
    choices = allowed_values(f)
    if choices:
        text = f"one of {', '.join(map(str, choices))}"
    else:
        text = {"bool": "true or false", "int": "an integer", "float": "a number", "ints": "a list of integers"}.get(
            kind, "a string" if kind == "str" else "a JSON object"
        )
        bounds = [f">= {meta['minimum']:g}" if meta.get("minimum") is not None else ""]
        bounds.append(f"> {meta['above']:g}" if meta.get("above") is not None else "")
        bounds.append(f"<= {meta['maximum']:g}" if meta.get("maximum") is not None else "")
        bounds.append(f"< {meta['below']:g}" if meta.get("below") is not None else "")
        bounds = [b for b in bounds if b]
        if bounds:
            text += " " + " and ".join(bounds)
        if kind == "ints" and meta.get("minimum") is not None:
            text = f"a list of integers, each >= {meta['minimum']:g}"
    if meta.get("auto"):
        text += " or auto"
    if type(None) in _union_members(f.type):
        text += " (or unset)"
    return text


def check_value(f: dataclasses.Field, value: Any, name: str | None = None) -> Any:
    """``value`` if it is allowed for setting ``f``, else a one-line error naming ``name`` (the
    field's name by default, ``--batch-size`` on the command line), the value and what is allowed."""
    name = name or f.name
    meta, kind = f.metadata, value_kind(f)
    optional = type(None) in _union_members(f.type)

    def bad() -> AekitError:
        return AekitError(f"{name}={value!r} is not allowed", f"it must be {describe_range(f)}", f"fix {name}")

    if value is None and optional:
        return value
    if meta.get("auto") and value == AUTO:
        return value
    choices = allowed_values(f)
    if choices is not None:
        if value not in choices:
            raise bad()
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if kind in ("int", "float"):
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        real = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if (kind == "int" and not integral) or (kind == "float" and not real) or not math.isfinite(value):
            raise bad()
        numbers_to_check = [value]
    elif kind == "ints":
        if not isinstance(value, list | tuple) or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in value
        ):
            raise bad()
        numbers_to_check = list(value)
    elif kind == "dict":
        if not isinstance(value, dict):
            raise bad()
        return value
    else:
        if not isinstance(value, str):
            raise bad()
        return value
    for number in numbers_to_check:
        if meta.get("minimum") is not None and number < meta["minimum"]:
            raise bad()
        if meta.get("maximum") is not None and number > meta["maximum"]:
            raise bad()
        if meta.get("above") is not None and number <= meta["above"]:
            raise bad()
        if meta.get("below") is not None and number >= meta["below"]:
            raise bad()
    return value


class Settings:
    """Shared behaviour of the settings dataclasses: JSON round trip and validation."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return _from_dict(cls, data, f"{cls.__name__} settings")

    def validate(self) -> Any:
        """Check every field against its declared type and range; returns self."""
        for f in settings_of(type(self)):
            check_value(f, getattr(self, f.name))
        return self


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
class TrainConfig(Settings):
    """How to train: optimiser, batching, stopping, checkpoints, logging."""

    epochs: int | str = setting(
        AUTO,
        "passes over the training data; auto: until the validation loss stops improving (see patience), "
        "within the max_steps budget, then the best epoch's weights",
        minimum=1,
        auto=True,
    )
    max_steps: int = setting(
        50_000, "budget of optimisation steps of epochs=auto: where it stops at the latest", minimum=1
    )
    patience: int | str = setting(
        AUTO,
        "epochs without a better validation loss before stopping; auto: never for a fixed number of epochs, "
        "and for epochs=auto enough epochs for 2000 steps, at least 5; 0 = never stop early",
        minimum=0,
        auto=True,
    )
    batch_size: int = setting(128, "examples per optimisation step (the global batch when distributed)", minimum=1)
    lr: float = setting(1e-3, "learning rate", above=0.0)
    optimizer: str = setting("adam", "optimiser", choices=("adam", "adamw"))
    weight_decay: float = setting(0.0, "weight decay: L2 for adam, decoupled for adamw", minimum=0.0)
    lr_schedule: str = setting(
        AUTO,
        "learning-rate schedule: constant; cosine (decays to 1 % of lr over the epochs, or over max_steps for "
        "epochs=auto); plateau (halves the rate whenever patience/2 epochs pass without a better validation "
        "loss); auto: plateau for epochs=auto, constant for a fixed number of epochs",
        choices=(AUTO, "constant", "cosine", "plateau"),
    )
    val_fraction: float = setting(
        0.1, "share of the training data held out (seeded) to pick the best epoch and stop", minimum=0.0, below=1.0
    )
    restore_best: bool = setting(True, "end with the weights of the best validation epoch")
    clip_grad_norm: float | str = setting(
        AUTO,
        "clip the global gradient norm to this; 0 = off; auto: the clip the model's parts ask for (1 for the "
        "sparse dictionaries, sae-*), else off",
        minimum=0.0,
        auto=True,
    )
    augment: str = setting(
        "none",
        "random changes of each training batch that keep what the data mean: hflip mirrors a random half of "
        "the images left to right (photos, clothing; not digits or text)",
        choices=("none", "hflip"),
    )
    dynamic_binarization: bool = setting(
        False, "draw x ~ Bernoulli(x) anew for every batch (on the command line: --binarize dynamic)", cli=False
    )
    walkback: int = setting(
        0,
        "walk-back steps of a denoising model (Bengio et al. 2013): also train on corruptions of draws from "
        "the model's own reconstruction distribution, chained this many times, each scored against the clean "
        "example; costs K + 1 forward passes per batch; 0 = off",
        minimum=0,
    )
    penalty_warmup_epochs: float = setting(
        0.0, "ramp every penalty weight linearly from 0 over these epochs (KL warm-up for a vae); 0 = off", minimum=0.0
    )
    precision: str = setting(
        "fp32",
        "bf16 autocasts the training step's matrix products (faster on CPUs with AVX512-BF16/AMX and on GPUs)",
        choices=("fp32", "bf16"),
    )
    compile: bool = setting(False, "torch.compile the training loss, forward and backward (the first step compiles)")
    channels_last: bool = setting(True, "NHWC memory layout for conv networks, faster with oneDNN and cuDNN")
    flush_denormal: bool = setting(
        True, "flush denormal floats to zero while training: Adam's decaying moments otherwise slow x86 CPUs"
    )
    seed: int = setting(
        0, "seeds initialisation, splits, shuffling, corruption and latent noise", minimum=0, estimator=False
    )
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps")
    checkpoint_every: int = setting(
        1, "epochs between checkpoints of a run folder (the final state is always kept); 0 = only the final state",
        minimum=0, estimator=False,
    )  # fmt: skip
    log_every: int = setting(50, "steps between progress and logger updates (the only host-device syncs)", minimum=1)
    logger: str = setting(
        "csv",
        "experiment tracking in the run folder: csv (log.csv), tensorboard (event files in tensorboard/: "
        "losses per step and epoch, learning rate, reconstructions) or none",
        choices=("csv", "tensorboard", "none"),
        estimator=False,
    )


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
