"""Families as presets: each is a choice of parts, returned as a :class:`ModelConfig`.

=============  ==========================================================================
linear         identity activations, Gaussian likelihood: spans the PCA subspace
undercomplete  deep non-linear encoder/decoder, small code, no penalty
sparse         + L1 on the code (``sparsity="l1"``) or KL to a target activation (``"kl"``)
denoising      the encoder sees C(x~|x) (gaussian, masking or salt_and_pepper); target is x
contractive    sigmoid code + weight * ||d code / d x||_F^2
vae            Gaussian latent (mean, log-variance), + beta * KL to N(0, I); or the IWAE bound
hashing        binary latent: noise before a sigmoid in training, hard bits at inference;
               + balanced, decorrelated bits and neighbours in the batch sharing bits
denoise        RED-Net removing Gaussian noise (fixed sigma, blind, or the level as an input map)
super-resolve  RED-Net restoring the detail a bicubic shrink by 2, 3 or 4 removed
inpaint        RED-Net filling holes (pixels, boxes, strokes); the mask is an input channel
colorize       RED-Net predicting chroma from lightness (YCbCr or Lab), scored in RGB
deblock        RED-Net removing JPEG artefacts (a real encode/decode at qualities 10-40)
=============  ==========================================================================

The restoration families take ``depth``, ``width`` and ``downscale`` (see
:class:`aekit.nets.conv.RedNet`). Options shared by every other family: ``network`` (``mlp`` |
``conv``), ``hidden`` (MLP widths, the decoder mirrors them), ``norm`` (MLP: ``none`` | ``batch``
| ``layer``), ``channels`` (conv widths), ``activation`` and ``likelihood`` (``gaussian`` |
``bernoulli``, or a full part description).
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import ModelConfig, Settings, setting
from .errors import AekitError
from .likelihoods import gamut_bins
from .model import Autoencoder

Preset = Callable[..., ModelConfig]
_PRESETS: dict[str, Preset] = {}


def preset(name: str) -> Callable[[Preset], Preset]:
    """Register a family preset under ``name``."""

    def register(function: Preset) -> Preset:
        _PRESETS[name] = function
        return function

    return register


def family_names() -> list[str]:
    """The registered families, sorted."""
    return sorted(_PRESETS)


def all_family_names() -> list[str]:
    """Every family ``aekit train --family`` takes: the autoencoders, then the sequence families
    (:mod:`aekit.text.families`), which train on text."""
    from .text.families import SEQUENCE_FAMILIES

    return [*family_names(), *SEQUENCE_FAMILIES]


def family_summary(family: str) -> str:
    """The first paragraph of a family's description, on one line."""
    return " ".join((_preset(family).__doc__ or "").strip().split("\n\n")[0].split())


def family_options(family: str) -> dict[str, Any]:
    """A family's options (``-o KEY=VALUE``) with their defaults; the network options
    (``network``, ``hidden``, ``channels``, ``activation``, ``norm``, ``likelihood``) included
    for the families built on the shared encoder/decoder skeleton."""
    parameters = _parameters(_preset(family))
    options = {
        k: p.default for k, p in parameters.items() if k not in ("data_shape", "code_size") and p.kind != p.VAR_KEYWORD
    }
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):  # the rest goes to the shared skeleton
        for key, parameter in _parameters(_compose).items():
            if key in NETWORK_OPTIONS:
                options.setdefault(key, parameter.default)
    return options


NETWORK_OPTIONS = ("network", "hidden", "channels", "convs_per_block", "activation", "norm", "likelihood")


def _preset(family: str) -> Preset:
    if family not in _PRESETS:
        raise AekitError(f"unknown family {family!r}", f"the families are {', '.join(family_names())}", "pick one")
    return _PRESETS[family]


def _parameters(function: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(function).parameters)


def _check_option_types(family: str, options: dict[str, Any]) -> None:
    """Each option's value against the preset's annotation: ``level=abc`` is a one-line error."""
    hints = {**typing.get_type_hints(_compose), **typing.get_type_hints(_preset(family))}
    for key, value in options.items():
        expected = _accepted_types(hints.get(key))
        if expected and not isinstance(value, expected):
            names = " or ".join(
                sorted({"number" if t in (int, float) else t.__name__ for t in expected} - {"NoneType"})
            )
            raise AekitError(
                f"family option {key}={value!r} is not a {names}", f"the {family} family's {key} is one", f"fix {key}"
            )


def _accepted_types(annotation: Any) -> tuple[type, ...]:
    """Python types a value of ``annotation`` may have (numbers: int or float; sequences: list/tuple)."""
    if annotation is None or annotation is Any:
        return ()
    members = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    accepted: list[type] = []
    for member in members:
        origin = typing.get_origin(member) or member
        if member is Any:
            return ()
        if origin is float:
            accepted += [int, float]
        elif origin in (Sequence, list, tuple, collections.abc.Sequence):
            accepted += [list, tuple]
        elif isinstance(origin, type):
            accepted.append(origin)
    return tuple(t for t in accepted if t is not bool) + ((bool,) if bool in accepted else ())


def family_config(family: str, data_shape: Sequence[int], code_size: int = 32, **options: Any) -> ModelConfig:
    """The :class:`ModelConfig` of a family for examples of ``data_shape`` and a code of ``code_size``.

    Unknown families and unknown options are errors that list the choices; an option of the wrong
    type is an error that names it.
    """
    preset = _preset(family)
    shape = [int(d) for d in data_shape]
    if not shape or any(d < 1 for d in shape):
        raise AekitError(f"bad data shape {data_shape}", "every dimension must be positive", "check the data")
    if isinstance(code_size, bool) or not isinstance(code_size, int | np.integer) or int(code_size) < 1:
        raise AekitError(f"code size {code_size!r} is not allowed", "a code needs at least one unit", "use >= 1")
    known = family_options(family)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise AekitError(
            f"the {family} family has no option {', '.join(unknown)}",
            f"its options are {', '.join(known) or 'none'}",
            "fix the name (see `aekit list`)",
        )
    _check_option_types(family, options)
    try:
        return preset(shape, int(code_size), **options)
    except (TypeError, ValueError) as error:
        if isinstance(error, AekitError):
            raise
        raise AekitError(f"bad option for family {family!r}", str(error), "see `aekit list`") from None


@dataclass
class FamilyConfig(Settings):
    """A model as a user describes it: a family, a code size and network options.

    ``build(data_shape)`` turns it into the full :class:`ModelConfig` (see :mod:`aekit.families`).
    A network option left unset keeps the family's own default.
    """

    family: str = setting(
        "undercomplete", "which autoencoder (`aekit list` describes each)", choices_from=lambda: all_family_names()
    )
    code_size: int = setting(32, "code width K (bits for hashing)", minimum=1)
    network: str | None = setting(None, "encoder/decoder network (default: mlp)", choices=("mlp", "conv"))
    hidden: list[int] | None = setting(
        None, "MLP hidden widths on the encoder side, the decoder mirrors them (default 512,256)", minimum=1
    )
    channels: list[int] | None = setting(None, "conv channels per stride-2 block (default 32,64)", minimum=1)
    activation: str | None = setting(
        None,
        "hidden activation (default elu)",
        choices=("relu", "elu", "gelu", "silu", "sigmoid", "tanh", "identity"),
    )
    norm: str | None = setting(
        None, "MLP hidden-layer normalisation (default none)", choices=("none", "batch", "layer")
    )
    likelihood: str | None = setting(
        None,
        "output units: gaussian for real values, bernoulli for data in [0, 1] (default per family)",
        choices=("gaussian", "bernoulli", "multinomial"),
    )
    family_options: dict[str, Any] = setting(
        {}, "the family's own options, e.g. noise, level (denoising), beta (vae); `aekit list` shows them", cli=False
    )

    def preset_options(self) -> dict[str, Any]:
        """The keyword options of the family preset: the network options that are set, plus ``family_options``."""
        network = ("network", "hidden", "channels", "activation", "norm", "likelihood")
        chosen = {key: getattr(self, key) for key in network if getattr(self, key) is not None}
        return {**chosen, **self.family_options}

    def build(self, data_shape: Any) -> ModelConfig:
        """The :class:`ModelConfig` of this family for examples of ``data_shape``."""
        self.validate()
        if self.family not in _PRESETS:
            raise AekitError(
                f"{self.family} is a sequence family", "it is built from a SequenceConfig and trained on text",
                "use aekit.text.train_sequence_model, or aekit train --family with text --data",
            )  # fmt: skip
        return family_config(self.family, data_shape, self.code_size, **self.preset_options())


def make_model(family: str, data_shape: Sequence[int], code_size: int = 32, **options: Any) -> Autoencoder:
    """Build an untrained :class:`Autoencoder` of a family (see :func:`family_config`)."""
    return Autoencoder.from_config(family_config(family, data_shape, code_size, **options))


# ------------------------------------------------------------------------------------------------ #
# the shared skeleton


def _compose(
    family: str,
    data_shape: list[int],
    code_size: int,
    *,
    latent: dict[str, Any],
    encoder_width: int | None = None,
    network: str = "mlp",
    hidden: Sequence[int] = (512, 256),
    channels: Sequence[int] = (32, 64),
    convs_per_block: int = 1,
    activation: str = "elu",
    norm: str = "none",
    likelihood: str | dict[str, Any] = "gaussian",
    penalties: Sequence[dict[str, Any]] = (),
    corruption: dict[str, Any] | None = None,
    undercomplete: bool = False,
) -> ModelConfig:
    n_inputs = math.prod(data_shape)
    if undercomplete and code_size >= n_inputs:
        raise AekitError(
            f"code size {code_size} is not smaller than the input size {n_inputs}",
            f"an undercomplete ({family}) autoencoder must compress, or it can learn the identity",
            f"use --code-size below {n_inputs}, or a regularised family (sparse, denoising, contractive)",
        )
    width = encoder_width if encoder_width is not None else latent["code_size"]
    if network == "mlp":
        encoder = {
            "name": "mlp",
            "in_shape": data_shape,
            "out_shape": [width],
            "hidden": list(hidden),
            "activation": activation,
            "norm": norm,
        }
        decoder = {
            "name": "mlp",
            "in_shape": [code_size],
            "out_shape": data_shape,
            "hidden": list(reversed(list(hidden))),
            "activation": activation,
            "norm": norm,
        }
    elif network == "conv":
        encoder = {
            "name": "conv",
            "in_shape": data_shape,
            "out_shape": [width],
            "channels": list(channels),
            "activation": activation,
            "convs_per_block": convs_per_block,
        }
        decoder = {
            "name": "conv",
            "in_shape": [code_size],
            "out_shape": data_shape,
            "channels": list(channels),
            "activation": activation,
            "convs_per_block": convs_per_block,
        }
    else:
        raise AekitError(f"unknown network {network!r}", "the choices are mlp, conv", "pick one")
    if isinstance(likelihood, str):
        likelihood = {"name": likelihood}
    if likelihood.get("name") == "gaussian":
        likelihood = {"data_shape": data_shape, **likelihood}
    return ModelConfig(
        data_shape=data_shape,
        encoder=encoder,
        latent=latent,
        decoder=decoder,
        likelihood=likelihood,
        penalties=[dict(p) for p in penalties],
        corruption=corruption,
        family=family,
    )


# ------------------------------------------------------------------------------------------------ #
# the families


@preset("linear")
def linear(data_shape: list[int], code_size: int, likelihood: str | dict = "gaussian") -> ModelConfig:
    """One linear layer each way, identity code, Gaussian likelihood (squared error)."""
    return _compose(
        "linear",
        data_shape,
        code_size,
        latent={"name": "deterministic", "code_size": code_size},
        hidden=(),
        activation="identity",
        likelihood=likelihood,
        undercomplete=True,
    )


@preset("undercomplete")
def undercomplete(data_shape: list[int], code_size: int, code_activation: str = "identity", **net: Any) -> ModelConfig:
    """A deep non-linear autoencoder whose only regulariser is its small code."""
    latent = {"name": "deterministic", "code_size": code_size, "activation": code_activation}
    return _compose("undercomplete", data_shape, code_size, latent=latent, undercomplete=True, **net)


@preset("sparse")
def sparse(
    data_shape: list[int],
    code_size: int,
    sparsity: str = "l1",
    weight: float | None = None,
    rho: float = 0.05,
    **net: Any,
) -> ModelConfig:
    """L1 on a ReLU code (a Laplace prior), or KL(rho || mean activation) on a sigmoid code."""
    if sparsity == "l1":
        latent = {"name": "deterministic", "code_size": code_size, "activation": "relu"}
        penalty = {"name": "l1", "weight": 1e-3 if weight is None else weight}
    elif sparsity == "kl":
        latent = {"name": "deterministic", "code_size": code_size, "activation": "sigmoid"}
        penalty = {"name": "kl_sparsity", "weight": 0.1 if weight is None else weight, "rho": rho}
    else:
        raise AekitError(f"unknown sparsity {sparsity!r}", "the choices are l1, kl", "pick one")
    return _compose("sparse", data_shape, code_size, latent=latent, penalties=[penalty], **net)


@preset("denoising")
def denoising(
    data_shape: list[int],
    code_size: int,
    noise: str = "masking",
    level: float | None = None,
    code_activation: str = "identity",
    **net: Any,
) -> ModelConfig:
    """The encoder sees a corrupted copy; ``noise`` is gaussian (std), masking or salt_and_pepper
    (fraction), ``level`` its strength."""
    defaults = {"gaussian": ("std", 0.3), "masking": ("fraction", 0.25), "salt_and_pepper": ("fraction", 0.1)}
    if noise not in defaults:
        raise AekitError(f"unknown noise {noise!r}", f"the choices are {', '.join(defaults)}", "pick one")
    key, default = defaults[noise]
    corruption = {"name": noise, key: default if level is None else level}
    latent = {"name": "deterministic", "code_size": code_size, "activation": code_activation}
    return _compose("denoising", data_shape, code_size, latent=latent, corruption=corruption, **net)


@preset("contractive")
def contractive(
    data_shape: list[int], code_size: int, weight: float = 0.1, estimator: str = "auto", **net: Any
) -> ModelConfig:
    """A sigmoid code penalised by weight * ||d code / d x||_F^2 (exact for one layer, else projected)."""
    latent = {"name": "deterministic", "code_size": code_size, "activation": "sigmoid"}
    penalty = {"name": "contractive", "weight": weight, "estimator": estimator}
    return _compose("contractive", data_shape, code_size, latent=latent, penalties=[penalty], **net)


@preset("vae")
def vae(
    data_shape: list[int],
    code_size: int,
    beta: float = 1.0,
    free_bits: float = 0.0,
    importance_samples: int = 1,
    likelihood: str | dict = "bernoulli",
    **net: Any,
) -> ModelConfig:
    """Gaussian q(z|x) with a log-variance head, reparameterised; + beta * analytic KL to N(0, I).

    ``free_bits``: a KL floor per code unit (nats). ``importance_samples`` K > 1 trains on the
    IWAE bound with K samples instead of the ELBO (then ``beta`` weights the bound's KL-like term).
    """
    latent = {"name": "gaussian", "code_size": code_size}
    if int(importance_samples) > 1:
        if free_bits:
            raise AekitError(
                "free bits and the IWAE objective do not combine",
                "free bits act on the ELBO's analytic KL term, which the IWAE bound does not have",
                "use importance_samples=1 with free_bits, or drop free_bits",
            )
        objective = {"name": "iwae", "weight": beta, "samples": int(importance_samples)}
    else:
        objective = {"name": "kl", "weight": beta, "free_bits": free_bits}
    return _compose(
        "vae",
        data_shape,
        code_size,
        latent=latent,
        encoder_width=2 * code_size,
        likelihood=likelihood,
        penalties=[objective],
        **net,
    )


@preset("hashing")
def hashing(
    data_shape: list[int],
    code_size: int,
    noise_std: float = 3.0,
    flip_probability: float = 0.0,
    balance: float = 100.0,
    decorrelation: float = 1.0,
    neighbourhood: float = 3.0,
    neighbours: int = 5,
    likelihood: str | dict = "bernoulli",
    **net: Any,
) -> ModelConfig:
    """Binary codes of ``code_size`` bits for semantic hashing (noise before a sigmoid, hard bits).

    ``balance`` weighs balanced, decorrelated bits (``decorrelation`` within it), ``neighbourhood``
    pulls the codes of each example's ``neighbours`` nearest examples of the batch together
    (cross-entropy in nats summed over the bits; give 0 to turn a term off), ``flip_probability``
    flips code units in training. The weights suit 28x28 images with a Bernoulli likelihood.
    """
    latent = {"name": "binary", "code_size": code_size, "noise_std": noise_std, "flip_probability": flip_probability}
    penalties = []
    if balance > 0:
        penalties.append({"name": "bit_balance", "weight": balance, "decorrelation": decorrelation})
    if neighbourhood > 0:
        penalties.append({"name": "neighbourhood", "weight": neighbourhood, "neighbours": neighbours})
    return _compose("hashing", data_shape, code_size, latent=latent, likelihood=likelihood, penalties=penalties, **net)


# ------------------------------------------------------------------------------------------------ #
# image restoration: a RED-Net trained as a denoising autoencoder whose corruption is the
# degradation to undo. The encoder is the whole network (its "code" is the restored image), the
# latent and decoder pass it through, and the model takes images of any size.


def _plain(value: Any) -> Any:
    """Tuples as lists, so that a configuration equals its JSON round trip."""
    return list(value) if isinstance(value, tuple) else value


def _restorer(
    family: str,
    data_shape: list[int],
    corruption: dict[str, Any],
    *,
    depth: int,
    width: int,
    downscale: int,
    skip_every: int = 2,
    residual: bool = True,
    decoder: dict[str, Any] | None = None,
    channels_in: int | None = None,
    channels_out: int | None = None,
) -> ModelConfig:
    if len(data_shape) != 3:
        raise AekitError(
            f"the {family} family needs (channels, height, width) images, got {data_shape}",
            "it restores images",
            "train on a folder of images (with --patch-size)",
        )
    channels = data_shape[0]
    encoder = {
        "name": "rednet",
        "in_channels": channels_in or channels,
        "out_channels": channels_out or channels,
        "depth": depth,
        "width": width,
        "skip_every": skip_every,
        "residual": residual,
        "downscale": downscale,
    }
    return ModelConfig(
        data_shape=[channels, None, None],
        encoder=encoder,
        latent={"name": "identity"},
        decoder=decoder or {"name": "identity"},
        likelihood={"name": "gaussian"},  # squared error against the clean image
        corruption=corruption,
        family=family,
    )


@preset("denoise")
def denoise(
    data_shape: list[int],
    code_size: int,
    sigma: float = 25.0,
    max_sigma: float | None = None,
    noise_map: bool = False,
    depth: int = 5,
    width: int = 64,
    downscale: int = 2,
) -> ModelConfig:
    """RED-Net removing Gaussian noise of ``sigma`` grey levels (of 255); over [sigma, max_sigma]
    when max_sigma is given, blind or, with ``noise_map``, told the level through an extra input
    channel (FFDNet): one model for every level in the range, the level given or estimated."""
    noise = {
        "name": "gaussian",
        "std": sigma / 255,
        "max_std": None if max_sigma is None else max_sigma / 255,
        "level_map": bool(noise_map),
    }
    channels_in = data_shape[0] + 1 if noise_map and len(data_shape) == 3 else None
    return _restorer(
        "denoise", data_shape, noise, depth=depth, width=width, downscale=downscale, channels_in=channels_in
    )


@preset("deblock")
def deblock(
    data_shape: list[int],
    code_size: int,
    quality: int | list[int] = (10, 40),  # type: ignore[assignment]
    depth: int = 5,
    width: int = 64,
    downscale: int = 2,
) -> ModelConfig:
    """RED-Net removing the artefacts of JPEG compression at ``quality`` (a value or [min, max] of
    Pillow's 1-95 scale, drawn per image); grey or RGB."""
    jpeg = {"name": "jpeg", "quality": _plain(quality)}
    return _restorer("deblock", data_shape, jpeg, depth=depth, width=width, downscale=downscale)


@preset("super-resolve")
def super_resolve(
    data_shape: list[int],
    code_size: int,
    scale: int | list[int] = 2,
    depth: int = 5,
    width: int = 64,
    downscale: int = 2,
) -> ModelConfig:
    """RED-Net restoring the detail that a bicubic shrink by ``scale`` (2, 3, 4 or a list) removed."""
    return _restorer(
        "super-resolve",
        data_shape,
        {"name": "bicubic", "scale": _plain(scale)},
        depth=depth,
        width=width,
        downscale=downscale,
    )


@preset("inpaint")
def inpaint(
    data_shape: list[int],
    code_size: int,
    mask: str = "mixed",
    rate: float | list[float] = (0.2, 0.8),  # type: ignore[assignment]
    boxes: int | list[int] = (1, 3),  # type: ignore[assignment]
    box_size: int | list[int] = (8, 32),  # type: ignore[assignment]
    fill: str = "smooth",
    depth: int = 5,
    width: int = 64,
    downscale: int = 2,
) -> ModelConfig:
    """RED-Net filling holes (``mask``: pixels, boxes, strokes or mixed); the mask is an extra input
    and the holes are pre-filled (``fill``: ``smooth`` interpolation from their borders, or ``zero``)."""
    holes = {
        "name": "inpainting",
        "kind": mask,
        "fill": fill,
        **{k: _plain(v) for k, v in [("rate", rate), ("boxes", boxes), ("box_size", box_size)]},
    }
    return _restorer(
        "inpaint", data_shape, holes, depth=depth, width=width, downscale=downscale, channels_in=data_shape[0] + 1
    )


@preset("colorize")
def colorize(
    data_shape: list[int],
    code_size: int,
    space: str | None = None,
    output: str = "gaussian",
    rebalance: float = 0.5,
    temperature: float = 0.38,
    calibrate: float = 0.25,
    depth: int = 5,
    width: int = 64,
    downscale: int = 2,
) -> ModelConfig:
    """RED-Net predicting the chroma from the lightness. ``output`` is the output unit:
    ``gaussian`` regresses the chroma of ``space`` (ycbcr, the default, or lab), scored in RGB by
    squared error; ``categorical`` predicts a distribution over quantised Lab chroma bins per
    pixel (Zhang et al. 2016: class rebalancing by ``rebalance``, annealed-mean readout at
    ``temperature`` after dividing a ``calibrate`` power of the rebalancing weights back out, 0.25
    as chosen on CBSD432 by bench/colorize_temperature.py; see :class:`aekit.likelihoods.ChromaBins`)."""
    if data_shape[0] != 3:
        raise AekitError(
            f"colorization trains on RGB images, got {data_shape[0]} channel(s)",
            "it learns colours",
            "use colour images (--image-mode rgb)",
        )
    if output not in ("gaussian", "categorical"):
        raise AekitError(f"unknown colorize output {output!r}", "the choices are gaussian, categorical", "pick one")
    if output == "gaussian":
        space = space or "ycbcr"
        return _restorer(
            "colorize",
            data_shape,
            {"name": "grayscale", "space": space},
            depth=depth,
            width=width,
            downscale=downscale,
            decoder={"name": "colour", "space": space},
            channels_in=1,
            channels_out=3,
        )
    if space not in (None, "lab"):
        raise AekitError(f"space {space!r} with categorical output", "the chroma bins are Lab's", "use space=lab")
    likelihood = {"name": "chroma_bins", "rebalance": rebalance, "temperature": temperature, "calibrate": calibrate}
    bins = len(gamut_bins())
    config = _restorer(
        "colorize",
        data_shape,
        {"name": "grayscale", "space": "lab"},
        depth=depth,
        width=width,
        downscale=downscale,
        channels_in=1,
        channels_out=1 + bins,  # the lightness (passed through), then the bins' logits
    )
    config.likelihood = likelihood
    return config


# ------------------------------------------------------------------------------------------------ #
# sparse dictionaries (aekit.sae.parts): a linear encoder and a unit-norm dictionary


def _dictionary(
    family: str,
    data_shape: list[int],
    code_size: int,
    latent: dict[str, Any],
    width: int | None,
    expansion: float | None,
    aux_k: int,
    aux_weight: float,
    centre: str,
    seed: int,
    penalties: Sequence[dict[str, Any]] = (),
    encoder_scale: float = 1.0,
) -> ModelConfig:
    dim = math.prod(d for d in data_shape if d is not None)
    if len(data_shape) != 1 or data_shape[0] is None:
        raise AekitError(
            f"a sparse dictionary of examples shaped {tuple(data_shape)}",
            "it learns directions in a space of vectors (activations of a network layer)",
            "flatten the data to (N, D)",
        )
    if width is None:
        width = round(expansion * dim) if expansion is not None else code_size
    parts = {"dim": dim, "width": int(width), "init_seed": seed, "centre": centre}
    penalties = [*penalties, {"name": "auxk", "weight": aux_weight, "aux_k": aux_k}] if aux_k > 0 else list(penalties)
    return ModelConfig(
        data_shape=list(data_shape),
        encoder={"name": "dictionary", **parts, **({"init_scale": encoder_scale} if encoder_scale != 1 else {})},
        latent={**latent, "code_size": int(width)},
        decoder={"name": "dictionary", **parts},
        # squared error over the D dimensions in units of the data's scale: weights are scale-free
        likelihood={"name": "gaussian", "sigma_from_data": True},
        penalties=penalties,
        family=family,
    )


def _count_preset(family: str, latent_name: str, doc: str) -> Preset:
    """Register the preset of a dictionary whose sparsity is a count k (TopK, BatchTopK)."""

    def count_preset(
        data_shape: list[int],
        code_size: int,
        k: int = 32,
        width: int | None = None,
        expansion: float | None = None,
        aux_k: int = 256,
        aux_weight: float = 1 / 16,
        dead_window: int = 1_000_000,
        centre: str = "mean",
        seed: int = 0,
    ) -> ModelConfig:
        latent = {"name": latent_name, "k": k, "dead_window": dead_window}
        return _dictionary(family, data_shape, code_size, latent, width, expansion, aux_k, aux_weight, centre, seed)

    count_preset.__doc__ = doc
    return preset(family)(count_preset)


sae_topk = _count_preset(
    "sae-topk",
    "topk",
    """A sparse dictionary whose code keeps the k largest pre-activations of each example (Gao et
    al. 2024), AuxK reviving dead latents. ``width`` latents (or ``expansion`` times the input
    dimension; default: the code size); ``aux_k`` 0 turns AuxK off; ``dead_window``: examples
    without firing after which a latent counts as dead; ``centre``: mean or median (geometric) of
    the data, the decoder's starting bias; ``seed``: the starting dictionary.""",
)
sae_batchtopk = _count_preset(
    "sae-batchtopk",
    "batchtopk",
    """A sparse dictionary whose training batch keeps its k * B largest pre-activations, so each
    example uses k latents on average (Bussmann et al. 2024); in inference a threshold estimated in
    training replaces the batch. Options as sae-topk.""",
)


@preset("sae-l1")
def sae_l1(
    data_shape: list[int],
    code_size: int,
    l1_weight: float = 1.0,
    encoder_scale: float = 0.1,
    width: int | None = None,
    expansion: float | None = None,
    aux_k: int = 0,
    aux_weight: float = 1 / 16,
    dead_window: int = 1_000_000,
    centre: str = "mean",
    seed: int = 0,
) -> ModelConfig:
    """A sparse dictionary with a ReLU code and an L1 penalty of weight ``l1_weight`` on it, the
    L1 dictionary of Bricken et al. (2023): with the decoder's columns at unit norm the penalty is
    the decoder-norm-weighted L1 of later work. Unlike the course's ``sparse`` family it has the
    dictionary's parts (normalised inputs, unit-norm columns, the decoder reading only the firing
    latents). The weight is in nats per unit of code against half the squared error of the
    normalised vectors (the same at any data scale). The encoder starts as ``encoder_scale`` times
    the decoder's transpose: from 0.1 (as Conerly et al. 2024) the code grows into its sparsity and
    recovers more of the true features than from 1 (bench/sae_peers.py). Other options as
    sae-topk (AuxK off by default)."""
    latent = {"name": "relu", "dead_window": dead_window}
    l1 = [{"name": "l1", "weight": l1_weight}]
    return _dictionary(
        "sae-l1", data_shape, code_size, latent, width, expansion, aux_k, aux_weight, centre, seed, l1, encoder_scale
    )


@preset("sae-jumprelu")
def sae_jumprelu(
    data_shape: list[int],
    code_size: int,
    l0_weight: float = 0.3,
    threshold: float = 1.0,
    bandwidth: float = 0.05,
    width: int | None = None,
    expansion: float | None = None,
    aux_k: int = 0,
    aux_weight: float = 1 / 16,
    dead_window: int = 1_000_000,
    centre: str = "mean",
    seed: int = 0,
) -> ModelConfig:
    """A sparse dictionary whose latents fire above a learnt threshold each, trained with an L0
    penalty of weight ``l0_weight`` by straight-through estimators (Rajamanoharan et al. 2024);
    ``threshold`` is where they start, ``bandwidth`` the estimators' kernel width. The inputs are
    normalised, so pre-activations are of order 1: thresholds start at 1 (the paper's 0.001 needs
    far more steps to climb; measured in bench/sae.py) and the kernel is 0.05 wide. The weight is
    in nats per active latent against half the squared error of the normalised vectors, so it
    means the same at any data scale. Other options as sae-topk (AuxK off by default: the L0
    penalty sets the sparsity)."""
    latent = {"name": "jumprelu", "threshold": threshold, "bandwidth": bandwidth, "dead_window": dead_window}
    l0 = [{"name": "l0", "weight": l0_weight}]
    return _dictionary(
        "sae-jumprelu", data_shape, code_size, latent, width, expansion, aux_k, aux_weight, centre, seed, l0
    )
