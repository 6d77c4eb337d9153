"""Synthetic data with a known density, for checking what a model estimates against the truth."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

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


def sparse_features(
    n: int,
    features: int = 512,
    dim: int = 64,
    mean_active: float = 8.0,
    exponent: float = 0.5,
    group_size: int = 1,
    group_rate: float = 0.5,
    seed: int = 0,
    with_activations: bool = True,
    chunk: int = 8192,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """n vectors made of sparse features superposed in fewer dimensions: the ground truth a sparse
    dictionary should recover. Returns (x (n, dim), the true directions (features, dim) with unit
    rows, the activations (n, features) or None without ``with_activations``), float32. Made
    ``chunk`` rows at a time, so memory beyond the result stays bounded; a seed gives the same
    data for the same ``chunk`` (the directions for any). The work follows n * features cheap
    draws and the active features' directions, not a dense (n, features) product.

    Feature i fires with probability proportional to (i + 1) ** -exponent (a Zipf law), scaled so
    that ``mean_active`` features fire per vector on average, with a magnitude ~ (1 + |N(0, 1)|)
    times (i + 1) ** (-exponent / 2) (rarer features are weaker). With ``group_size`` g > 1 the
    features come in groups of g that share a gate open with probability ``group_rate`` per
    vector, so features of a group fire together more often than chance (correlated features).
    The directions are seeded Gaussian, so with features > dim they overlap (superposition)."""
    checks = [n >= 1, features >= 1, dim >= 1, mean_active > 0, exponent >= 0, group_size >= 1, 0 < group_rate <= 1]
    if not all(checks) or chunk < 1:
        raise AekitError(
            "sparse_features settings",
            "n, features, dim, group_size, chunk >= 1; mean_active > 0; exponent >= 0; group_rate in (0, 1]",
            "fix the values",
        )
    generator = torch.Generator().manual_seed(int(seed))
    directions = torch.randn(features, dim, generator=generator)
    directions = directions / directions.norm(dim=1, keepdim=True)  # (F, dim)
    rank = torch.arange(1, features + 1, dtype=torch.float64)
    rate = rank ** -float(exponent)
    rate = (rate * (mean_active / rate.sum())).clamp(max=1.0)  # (F,) firing probabilities
    scale = (rank ** (-float(exponent) / 2)).float()  # (F,)
    groups = (features + group_size - 1) // group_size
    gate_rate = float(group_rate) if group_size > 1 else 1.0
    within = (rate / gate_rate).clamp(max=1.0).float()  # P(fire | gate open)
    x = torch.empty(n, dim)
    activations = torch.zeros(n, features) if with_activations else None
    # the firing draws come from numpy's PCG64, several times faster per number than torch's CPU
    # generator: one uniform per feature and vector is most of the work
    draws = np.random.default_rng(int(seed))
    within, scale = within.numpy(), scale.numpy()
    uniform = np.empty((min(chunk, n), features), dtype=np.float32)  # reused: fresh pages are slow
    fires = np.empty((min(chunk, n), features), dtype=bool)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        gate = draws.random((rows, groups), dtype=np.float32) < gate_rate  # (rows, G)
        gate = np.repeat(gate, group_size, axis=1)[:, :features]  # (rows, F)
        draws.random(dtype=np.float32, out=uniform[:rows])
        np.less(uniform[:rows], within, out=fires[:rows])
        fires[:rows] &= gate
        # magnitudes are drawn for the firing features only, and each vector sums its own few
        # directions (an embedding bag): the cost follows the active features, not rows * F
        row, feature = (torch.from_numpy(i) for i in np.nonzero(fires[:rows]))  # (nnz,) each, grouped by row
        normal = torch.from_numpy(draws.standard_normal(len(row), dtype=np.float32))
        magnitude = (1 + normal.abs()) * torch.from_numpy(scale)[feature]  # (nnz,)
        counts = torch.bincount(row, minlength=rows)
        offsets = counts.cumsum(0) - counts  # (rows,) where each vector's features start
        x[start : start + rows] = F.embedding_bag(
            feature, directions, offsets, mode="sum", per_sample_weights=magnitude
        )
        if activations is not None:
            activations[start + row, feature] = magnitude
    return x, directions, activations
