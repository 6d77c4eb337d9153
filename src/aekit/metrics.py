"""Measures: reconstruction error, likelihood bounds, subspace angles.

Units are stated per function: squared error summed over data dimensions per example, nats per
example, degrees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import torch

from .latents import GaussianLatent
from .model import Autoencoder
from .tensors import as_tensor


@torch.no_grad()
def reconstruction_report(
    model: Autoencoder, x: Any, batch_size: int = 1024, seed: int = 0, device: str | torch.device | None = None
) -> dict[str, float]:
    """Test-set figures for a trained model, averaged over the examples of x (N, *data_shape).

    * ``squared_error``: sum over data dimensions of (x - reconstruction)^2, per example.
    * ``mse``: the same divided by the number of data dimensions.
    * ``nll``: -log p(x | decoder(encode(x))) in nats per example (the deterministic code).
    * ``elbo`` (Gaussian latents): E_q[log p(x|z)] - KL(q || N(0, I)), nats per example, one
      reparameterised sample per example from a generator seeded with ``seed``.
    """
    device = device or next(model.parameters()).device
    x = as_tensor(x)
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    totals: dict[str, float] = {}
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size].to(device)
        params = model.decode(model.encode(batch))
        batch_terms = {
            "squared_error": (model.likelihood.mean(params) - batch).pow(2).flatten(1).sum(1),
            "nll": model.likelihood.nll(params, batch),
        }
        if isinstance(model.latent, GaussianLatent):
            q = model.latent.posterior(model.encoder(batch))
            sampled = model.likelihood.nll(model.decode(q.sample(generator)), batch)
            batch_terms["elbo"] = -(sampled + q.kl_to_standard_normal())
        for key, value in batch_terms.items():
            totals[key] = totals.get(key, 0.0) + float(value.sum())
    report = {key: value / len(x) for key, value in totals.items()}
    report["mse"] = report["squared_error"] / int(np.prod(x.shape[1:]))
    return report


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees between the column spaces of a (D, k) and b (D, l), largest first."""
    return np.degrees(scipy.linalg.subspace_angles(np.asarray(a, np.float64), np.asarray(b, np.float64)))
