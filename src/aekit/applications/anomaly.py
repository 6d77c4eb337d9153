"""Novelty detection by reconstruction error.

An autoencoder trained on normal examples reconstructs them well and anything unlike them worse,
so the squared reconstruction error is a novelty score. Optionally each dimension's squared error
is divided by a per-dimension ``scale``, its mean over normal data plus a floor: the negative
log-likelihood of the residual under independent Gaussians, up to constants, so that a pixel that
normal examples never use weighs more than one they always reconstruct poorly.

A threshold turns scores into decisions; it is chosen as a quantile of the scores of held-out
*normal* data, so that about ``1 - quantile`` of normal examples are flagged (the false-alarm
rate one asks for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import AekitError
from ..model import Autoencoder
from ..tensors import apply_batched, as_tensor


def reconstruction_errors(
    model: Autoencoder,
    x: Any,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    scale: Any = None,
) -> np.ndarray:
    """Squared error between x (N, *data_shape) and its reconstruction from the deterministic code,
    summed over data dimensions, each first divided by ``scale`` (*data_shape) when given:
    (N,) float64, one novelty score per example (higher = more unusual)."""
    parameter = next(model.parameters())
    device = device or parameter.device
    model.eval()
    weights = None if scale is None else 1.0 / as_tensor(np.asarray(scale)[None], "scale", parameter.dtype).to(device)

    def squared_error(batch: torch.Tensor) -> torch.Tensor:
        error = (model.reconstruct(batch) - batch).pow(2)  # (B, *data_shape)
        return (error if weights is None else error * weights).flatten(1).sum(1)  # (B,)

    x = as_tensor(x, dtype=parameter.dtype)  # a float64 model scores in float64
    return apply_batched(squared_error, x, batch_size, device).double().numpy()


def scale_from_errors(mean_squared_error: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """Per-dimension scale: the mean squared residual of each dimension (*data_shape) plus ``floor``
    times its average over dimensions (so a dimension normal data never get wrong cannot dominate)."""
    if floor <= 0:
        raise AekitError(f"floor {floor}", "it keeps every scale positive", "use a value > 0, e.g. 0.05")
    mean_squared_error = np.asarray(mean_squared_error, dtype=np.float64)
    return mean_squared_error + floor * float(mean_squared_error.mean())


@torch.no_grad()
def residual_scale(model: Autoencoder, x: Any, floor: float = 0.05, batch_size: int = 1024) -> np.ndarray:
    """:func:`scale_from_errors` of the model's residuals on normal data x (N, *data_shape)."""
    parameter = next(model.parameters())
    model.eval()

    def squared_residual(batch: torch.Tensor) -> torch.Tensor:
        return (model.reconstruct(batch) - batch).pow(2)  # (B, *data_shape)

    x = as_tensor(x, dtype=parameter.dtype)
    total = sum(
        squared_residual(x[i : i + batch_size].to(parameter.device)).sum(0).double().cpu()
        for i in range(0, len(x), batch_size)
    )
    return scale_from_errors((total / len(x)).numpy(), floor)


def quantile_threshold(errors: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of held-out normal scores (linear interpolation, numpy's default)."""
    if not 0 < quantile <= 1:
        raise AekitError(f"quantile {quantile} is outside (0, 1]", "it is a fraction of normal data", "e.g. 0.99")
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 1 or len(errors) == 0:
        raise AekitError("no validation errors to set a threshold from", "it needs held-out normal data", "pass some")
    return float(np.quantile(errors, quantile))


@dataclass
class AnomalyDetector:
    """A trained autoencoder, an optional per-dimension ``scale`` and a threshold on the score.

    ``predict(x)`` is True where an example's score exceeds ``threshold``; with a threshold from
    :meth:`calibrate`, about ``1 - quantile`` of normal examples are flagged.
    """

    model: Autoencoder
    threshold: float
    quantile: float | None = None
    scale: np.ndarray | None = None
    batch_size: int = 1024

    @classmethod
    def calibrate(
        cls, model: Autoencoder, x_val: Any, quantile: float = 0.99, scale: Any = None, batch_size: int = 1024
    ) -> AnomalyDetector:
        """Threshold = the ``quantile`` of the scores of held-out normal data x_val (N, *data_shape).

        ``scale``: per-dimension scale for standardised scores, e.g. :func:`residual_scale` of the
        training data (fit it on other data than x_val, or the threshold comes out too low).
        """
        threshold = quantile_threshold(reconstruction_errors(model, x_val, batch_size, scale=scale), quantile)
        return cls(model, threshold, quantile, None if scale is None else np.asarray(scale), batch_size)

    def scores(self, x: Any) -> np.ndarray:
        """Novelty score per example (N,): the (standardised) squared reconstruction error."""
        return reconstruction_errors(self.model, x, self.batch_size, scale=self.scale)

    def predict(self, x: Any) -> np.ndarray:
        """(N,) bool: True where the example is flagged as anomalous."""
        return self.scores(x) > self.threshold
