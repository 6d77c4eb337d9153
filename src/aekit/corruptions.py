"""Corruption processes C(x~ | x) for denoising autoencoders.

``corrupt(x, generator)`` returns x~ shaped like x; every random draw comes from ``generator`` so a
seeded run is repeatable. The model applies a corruption only on its noisy (training) path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import AekitError
from .registry import Part


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _fraction(value: float, what: str) -> float:
    if not 0 <= value <= 1:
        raise AekitError(f"{what}={value} is outside [0, 1]", "it is a fraction of the inputs", "fix it")
    return float(value)


class Corruption(Part):
    """Base class: subclasses implement ``corrupt``."""

    kind = "corruption"

    def out_shape(self, data_shape: Sequence[int]) -> tuple[int, ...]:
        """The shape the encoder sees for data of ``data_shape`` (the same unless overridden)."""
        return tuple(data_shape)

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.corrupt(x, generator)


class GaussianNoise(Corruption):
    """x~ = x + std * eps, eps ~ N(0, 1); ``clip`` keeps x~ in [0, 1]."""

    name = "gaussian"

    def __init__(self, std: float = 0.1, clip: bool = False) -> None:
        super().__init__()
        if std < 0:
            raise AekitError(f"noise std {std} is negative", "it is a standard deviation", "use >= 0")
        self.std = float(std)
        self.clip = bool(clip)

    def corrupt(self, x, generator=None):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        noisy = x + self.std * noise
        return noisy.clamp(0, 1) if self.clip else noisy


class Masking(Corruption):
    """Each input dimension is independently set to ``value`` with probability ``fraction``."""

    name = "masking"

    def __init__(self, fraction: float = 0.25, value: float = 0.0) -> None:
        super().__init__()
        self.fraction = _fraction(fraction, "fraction")
        self.value = float(value)

    def corrupt(self, x, generator=None):
        dropped = _uniform(x, generator) < self.fraction
        return torch.where(dropped, torch.full_like(x, self.value), x)


class SaltAndPepper(Corruption):
    """A ``fraction`` of the inputs is set to ``low`` or ``high``, each with probability 1/2."""

    name = "salt_and_pepper"

    def __init__(self, fraction: float = 0.1, low: float = 0.0, high: float = 1.0) -> None:
        super().__init__()
        self.fraction = _fraction(fraction, "fraction")
        self.low, self.high = float(low), float(high)

    def corrupt(self, x, generator=None):
        u = _uniform(x, generator)  # one draw decides both whether and which: u < f/2 -> low, < f -> high
        x = torch.where(u < self.fraction / 2, torch.full_like(x, self.low), x)
        return torch.where((u >= self.fraction / 2) & (u < self.fraction), torch.full_like(x, self.high), x)
