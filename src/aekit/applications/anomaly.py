"""Novelty detection by reconstruction error.

An autoencoder trained on normal examples reconstructs them well and anything unlike them worse,
so the squared reconstruction error is a novelty score. A threshold turns scores into decisions;
it is chosen as a quantile of the errors on held-out *normal* data, so that ``1 - quantile`` of
normal examples are flagged (the false-alarm rate one asks for).
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
    model: Autoencoder, x: Any, batch_size: int = 1024, device: str | torch.device | None = None
) -> np.ndarray:
    """Squared error between x (N, *data_shape) and its reconstruction from the deterministic code,
    summed over data dimensions: (N,) float64, one novelty score per example (higher = more unusual)."""
    parameter = next(model.parameters())
    model.eval()

    def squared_error(batch: torch.Tensor) -> torch.Tensor:
        return (model.reconstruct(batch) - batch).pow(2).flatten(1).sum(1)  # (B,)

    x = as_tensor(x, dtype=parameter.dtype)  # a float64 model scores in float64
    return apply_batched(squared_error, x, batch_size, device or parameter.device).double().numpy()


def quantile_threshold(errors: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of held-out normal errors (linear interpolation, numpy's default)."""
    if not 0 < quantile <= 1:
        raise AekitError(f"quantile {quantile} is outside (0, 1]", "it is a fraction of normal data", "e.g. 0.99")
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 1 or len(errors) == 0:
        raise AekitError("no validation errors to set a threshold from", "it needs held-out normal data", "pass some")
    return float(np.quantile(errors, quantile))


@dataclass
class AnomalyDetector:
    """A trained autoencoder and a threshold on its squared reconstruction error.

    ``predict(x)`` is True where an example's error exceeds ``threshold``; with a threshold from
    :meth:`calibrate`, about ``1 - quantile`` of normal examples are flagged.
    """

    model: Autoencoder
    threshold: float
    quantile: float | None = None
    batch_size: int = 1024

    @classmethod
    def calibrate(cls, model: Autoencoder, x_val: Any, quantile: float = 0.99, batch_size: int = 1024):
        """Threshold = the ``quantile`` of the errors on held-out normal data x_val (N, *data_shape)."""
        threshold = quantile_threshold(reconstruction_errors(model, x_val, batch_size), quantile)
        return cls(model, threshold, quantile, batch_size)

    def scores(self, x: Any) -> np.ndarray:
        """Squared reconstruction error per example (N,)."""
        return reconstruction_errors(self.model, x, self.batch_size)

    def predict(self, x: Any) -> np.ndarray:
        """(N,) bool: True where the example is flagged as anomalous."""
        return self.scores(x) > self.threshold
