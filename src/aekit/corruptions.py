"""Corruption processes C(x~ | x) for denoising autoencoders.

``corrupt(x, generator)`` returns x~, what the encoder sees; every random draw comes from
``generator`` so a seeded run is repeatable. The model applies a corruption only on its noisy
(training) path.

A corruption has two halves, so that the same part describes how data are damaged in training and
how a damaged observation is turned into the encoder's input at restoration time:
``observe(x)`` is what the world leaves of x (a noisy image, a smaller image, an image with holes),
``prepare(observation)`` turns an observation into the encoder's input (upsampling it, for
instance); ``corrupt = prepare(observe(x))``. Most corruptions only observe.
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
    """Base class: subclasses implement ``observe`` (and ``prepare`` when the encoder needs more)."""

    kind = "corruption"

    def out_shape(self, data_shape: Sequence[int]) -> tuple[int, ...]:
        """The shape the encoder sees for data of ``data_shape`` (the same unless overridden)."""
        return tuple(data_shape)

    def observe(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """What the corruption leaves of x (B, *data_shape)."""
        raise NotImplementedError

    def prepare(self, observed: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        """The encoder's input for an observation; ``size`` is the spatial size of the data (H, W), if known."""
        return observed

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x~ = prepare(observe(x)): what the encoder sees in training, (B, *out_shape(data_shape))."""
        return self.prepare(self.observe(x, generator), tuple(x.shape[2:]))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.corrupt(x, generator)


class GaussianNoise(Corruption):
    """x~ = x + std * eps, eps ~ N(0, 1); ``clip`` keeps x~ in [0, 1].

    With ``max_std`` the noise is *blind*: each example draws its own std uniformly from
    [std, max_std], so one model learns every level in the range. With ``level_map`` (images
    (B, C, H, W) only) the level is an input too, as in FFDNet: a channel filled with each image's
    std is appended, so one network serves every level and is told which one it faces.

    Shapes: ``observe`` (B, C, ...) -> (B, C, ...), or (B, C + 1, H, W) with ``level_map``.
    """

    name = "gaussian"

    def __init__(
        self, std: float = 0.1, clip: bool = False, max_std: float | None = None, level_map: bool = False
    ) -> None:
        super().__init__()
        if std < 0 or (max_std is not None and max_std < std):
            raise AekitError(
                f"noise std {std} (max_std {max_std}) is not a valid level or range",
                "standard deviations are >= 0 and max_std >= std",
                "fix the values",
            )
        self.std = float(std)
        self.clip = bool(clip)
        self.max_std = None if max_std is None else float(max_std)
        self.level_map = bool(level_map)

    def out_shape(self, data_shape: Sequence[int]) -> tuple[int, ...]:
        return (data_shape[0] + 1, *data_shape[1:]) if self.level_map else tuple(data_shape)

    def observe(self, x, generator=None):
        if self.level_map and x.ndim != 4:
            raise AekitError(
                f"a noise-level map needs images (B, C, H, W), got shape {tuple(x.shape)}",
                "the level is appended as a channel",
                "use level_map only for image models",
            )
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        std: torch.Tensor | float = self.std
        if self.max_std is not None:  # one level per example, (B, 1, ..., 1)
            u = torch.rand((len(x),) + (1,) * (x.ndim - 1), generator=generator, device=x.device, dtype=x.dtype)
            std = self.std + (self.max_std - self.std) * u
        noisy = x + std * noise
        noisy = noisy.clamp(0, 1) if self.clip else noisy
        return with_level_map(noisy, std) if self.level_map else noisy


def with_level_map(noisy: torch.Tensor, std: torch.Tensor | float) -> torch.Tensor:
    """(B, C, H, W) noisy images and their noise std (a number, or (B, 1, 1, 1)) -> (B, C + 1, H, W)
    with the std as a constant last channel (FFDNet's noise-level map, in units of the pixel range)."""
    level = torch.as_tensor(std, dtype=noisy.dtype, device=noisy.device).reshape(-1, 1, 1, 1)
    return torch.cat([noisy, level.expand(len(noisy), 1, *noisy.shape[-2:])], 1)


class Masking(Corruption):
    """Each input dimension is independently set to ``value`` with probability ``fraction``."""

    name = "masking"

    def __init__(self, fraction: float = 0.25, value: float = 0.0) -> None:
        super().__init__()
        self.fraction = _fraction(fraction, "fraction")
        self.value = float(value)

    def observe(self, x, generator=None):
        dropped = _uniform(x, generator) < self.fraction
        return torch.where(dropped, torch.full_like(x, self.value), x)


class SaltAndPepper(Corruption):
    """A ``fraction`` of the inputs is set to ``low`` or ``high``, each with probability 1/2."""

    name = "salt_and_pepper"

    def __init__(self, fraction: float = 0.1, low: float = 0.0, high: float = 1.0) -> None:
        super().__init__()
        self.fraction = _fraction(fraction, "fraction")
        self.low, self.high = float(low), float(high)

    def observe(self, x, generator=None):
        u = _uniform(x, generator)  # one draw decides both whether and which: u < f/2 -> low, < f -> high
        x = torch.where(u < self.fraction / 2, torch.full_like(x, self.low), x)
        return torch.where((u >= self.fraction / 2) & (u < self.fraction), torch.full_like(x, self.high), x)
