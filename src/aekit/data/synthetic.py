"""Synthetic data with a known density, for checking what a model estimates against the truth."""

from __future__ import annotations

import math

import torch

from ..errors import AekitError


def ring_mixture(modes: int = 8, radius: float = 2.0, std: float = 0.1) -> torch.distributions.MixtureSameFamily:
    """An equal-weight mixture of ``modes`` isotropic 2-D Gaussians of standard deviation ``std``,
    their means evenly spaced on a circle of ``radius`` (the first at angle 0), float64. It has
    ``sample``, ``log_prob`` (nats) and its means at ``.component_distribution.base_dist.loc``
    (modes, 2). Corrupting its samples with Gaussian noise of std sigma gives
    ``ring_mixture(modes, radius, (std**2 + sigma**2) ** 0.5)``: the p_sigma of a denoiser's score."""
    if int(modes) < 1 or radius < 0 or std <= 0:
        raise AekitError(
            f"a ring mixture of {modes} modes, radius {radius}, std {std}",
            "it needs at least one mode, a radius >= 0 and a positive std",
            "fix the values",
        )
    angle = torch.arange(int(modes), dtype=torch.float64) * (2 * math.pi / int(modes))
    means = float(radius) * torch.stack([angle.cos(), angle.sin()], 1)  # (modes, 2)
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.full((int(modes),), 1.0 / int(modes), dtype=torch.float64)),
        torch.distributions.Independent(torch.distributions.Normal(means, float(std)), 1),
    )
