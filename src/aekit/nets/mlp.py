"""Fully connected networks: the encoder and decoder of every MLP autoencoder."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import AekitError
from ..registry import Part

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}

_NORMS = {"none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


def make_activation(name: str) -> nn.Module:
    """An activation module by name (``relu``, ``elu``, ``sigmoid``, ``tanh``, ``identity``, ...)."""
    if name not in _ACTIVATIONS:
        raise AekitError(
            f"unknown activation {name!r}", f"the choices are {', '.join(sorted(_ACTIVATIONS))}", "pick one"
        )
    return _ACTIVATIONS[name]()


def _shape(value: int | Sequence[int], what: str) -> tuple[int, ...]:
    shape = (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)
    if not shape or any(v <= 0 for v in shape):
        raise AekitError(f"bad {what} {value!r}", "every dimension must be a positive integer", "fix the shape")
    return shape


def layer_widths(values: Sequence[int], what: str) -> list[int]:
    """``values`` as a list of layer widths, each an integer >= 1; anything else is a one-line error."""
    widths = list(values)
    bad = [v for v in widths if isinstance(v, bool) or not isinstance(v, int) or v < 1]
    if bad:
        raise AekitError(f"{what} widths {widths} include {bad[0]!r}", "each layer needs at least one unit", "use >= 1")
    return widths


class MLP(Part):
    """Linear layers with an activation between them; flattens its input, reshapes its output.

    ``norm`` (``none``, ``batch`` or ``layer``) normalises each hidden layer before its activation.

    As an encoder: ``in_shape`` is the data shape and ``out_shape`` the code width ``(H,)``.
    As a decoder: ``in_shape`` is ``(K,)`` and ``out_shape`` the data shape. The last layer has
    no activation: latents and likelihoods decide what the output means.

    Shapes: ``(B, *in_shape) -> (B, *out_shape)``.
    """

    kinds = ("encoder", "decoder")
    name = "mlp"

    def __init__(
        self,
        in_shape: int | Sequence[int],
        out_shape: int | Sequence[int],
        hidden: Sequence[int] = (),
        activation: str = "relu",
        norm: str = "none",
    ) -> None:
        super().__init__()
        if norm not in _NORMS:
            raise AekitError(f"unknown norm {norm!r}", f"the choices are {', '.join(_NORMS)}", "pick one")
        self.in_shape = _shape(in_shape, "input shape")
        self.out_shape = _shape(out_shape, "output shape")
        widths = [math.prod(self.in_shape), *layer_widths(hidden, "hidden"), math.prod(self.out_shape)]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(widths) - 2:
                if _NORMS[norm] is not None:
                    layers.append(_NORMS[norm](fan_out))
                layers.append(make_activation(activation))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x.flatten(1))  # (B, prod(in_shape)) -> (B, prod(out_shape))
        return out.view(x.shape[0], *self.out_shape)

    @property
    def linear_layers(self) -> list[nn.Linear]:
        return [m for m in self.layers if isinstance(m, nn.Linear)]

    @property
    def affine_weight(self) -> torch.Tensor | None:
        """W (out, in) when this network is one affine map ``W x + b`` (one layer, identity
        activation after it), else None: what the exact contractive penalty needs."""
        layers = self.linear_layers
        return layers[0].weight if len(layers) == 1 and len(self.layers) == 1 else None
