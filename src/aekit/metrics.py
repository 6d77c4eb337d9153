"""Measures: reconstruction error, likelihood bounds, subspace angles, image quality (PSNR, SSIM,
colourfulness).

Units are stated per function: squared error summed over data dimensions per example, nats per
example, degrees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import torch

from .errors import AekitError
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


# ------------------------------------------------------------------------------------------------ #
# image quality: arrays (H, W) or (H, W, C), values in [0, data_range]


def psnr(reference: Any, estimate: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10 log10(data_range^2 / MSE) in dB (infinite for equal images)."""
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    _check_same_shape(reference, estimate)
    mse = float(np.mean((reference - estimate) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(data_range**2 / mse)


def ssim(reference: Any, estimate: Any, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al. 2004): Gaussian window (sigma 1.5, 11 x 11), K1 = 0.01,
    K2 = 0.03, population statistics, averaged away from a 5-pixel border and over channels.

    Equals ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range)``; (H, W) or (H, W, C) arrays.
    """
    from scipy.ndimage import gaussian_filter

    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    _check_same_shape(reference, estimate)
    if reference.ndim == 3:
        return float(
            np.mean([ssim(reference[..., c], estimate[..., c], data_range, sigma) for c in range(reference.shape[-1])])
        )
    truncate = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: an 11 x 11 window

    def blur(image: np.ndarray) -> np.ndarray:
        return gaussian_filter(image, sigma, mode="reflect", truncate=truncate)

    mu_x, mu_y = blur(reference), blur(estimate)
    var_x = blur(reference * reference) - mu_x**2
    var_y = blur(estimate * estimate) - mu_y**2
    cov = blur(reference * estimate) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    border = int(truncate * sigma + 0.5)
    return float(index[border:-border, border:-border].mean())


def colourfulness(rgb: Any) -> float:
    """Hasler and Suesstrunk's colourfulness of an (H, W, 3) image in [0, 1], on the 0-255 scale of
    their paper: sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2); 0 for a grey image."""
    rgb = 255 * np.asarray(rgb, np.float64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise AekitError(f"colourfulness needs an (H, W, 3) image, got {rgb.shape}", "", "pass an RGB image")
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise AekitError(f"images of shapes {a.shape} and {b.shape}", "they must have the same shape", "crop or resize")
