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
=============  ==========================================================================

Options shared by every family: ``network`` (``mlp`` | ``conv``), ``hidden`` (MLP widths, the
decoder mirrors them), ``norm`` (MLP: ``none`` | ``batch`` | ``layer``), ``channels`` (conv
widths), ``activation`` and ``likelihood``
(``gaussian`` | ``bernoulli``, or a full part description).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .config import ModelConfig
from .errors import AekitError
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
    return sorted(_PRESETS)


def family_config(family: str, data_shape: Sequence[int], code_size: int = 32, **options: Any) -> ModelConfig:
    """The :class:`ModelConfig` of a family for examples of ``data_shape`` and a code of ``code_size``.

    Unknown families and unknown options are errors that list the choices.
    """
    if family not in _PRESETS:
        raise AekitError(f"unknown family {family!r}", f"the families are {', '.join(family_names())}", "pick one")
    shape = [int(d) for d in data_shape]
    if not shape or any(d < 1 for d in shape):
        raise AekitError(f"bad data shape {data_shape}", "every dimension must be positive", "check the data")
    if int(code_size) < 1:
        raise AekitError(f"code size {code_size} is too small", "a code needs at least one unit", "use >= 1")
    try:
        return _PRESETS[family](shape, int(code_size), **options)
    except TypeError as error:
        raise AekitError(f"bad option for family {family!r}", str(error), "see `aekit list`") from None


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
        }
        decoder = {
            "name": "conv",
            "in_shape": [code_size],
            "out_shape": data_shape,
            "channels": list(channels),
            "activation": activation,
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
