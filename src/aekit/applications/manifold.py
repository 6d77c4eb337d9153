"""Manifold tangent planes from the encoder's Jacobian.

At a point x the code's Jacobian J = d code / d x (K, D) says how the code moves when x does. Its
right-singular vectors with large singular values are the input directions the encoder is
sensitive to: for a regularised autoencoder (contractive, denoising), which is trained to be
insensitive to everything except moves along the data manifold, they span the manifold's tangent
plane at x (Rifai et al. 2011). Shown as images, grey is "no change", white "brighten", black
"darken".

The code differentiated is the latent's noise-free code (the posterior mean for a VAE, the
sigmoid code of a contractive autoencoder): ``model.latent.mean(model.encoder(x))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import AekitError
from ..model import Autoencoder


@dataclass
class TangentPlane:
    """The encoder's local geometry at one input.

    ``jacobian`` (K, D) is d code / d x with D the flattened data size; ``singular_values``
    (min(K, D),) descending; ``directions`` (k, *data_shape) the leading right-singular vectors,
    unit norm, each signed so that its largest entry is positive.
    """

    point: np.ndarray
    jacobian: np.ndarray
    singular_values: np.ndarray
    directions: np.ndarray


def encoder_jacobian(model: Autoencoder, x: Any) -> torch.Tensor:
    """The exact Jacobian of the code at one input x (``data_shape`` or (1, *data_shape)): (K, D).

    Computed with :func:`torch.func.jacrev` (reverse mode, one pass per code unit) in eval mode,
    in the dtype of the model's parameters.
    """
    parameter = next(model.parameters())
    x = torch.as_tensor(x if isinstance(x, torch.Tensor) else np.asarray(x), dtype=parameter.dtype)
    size = math.prod(model.data_shape)
    if x.numel() != size:
        raise AekitError(
            f"an input of shape {tuple(x.shape)}",
            f"the model expects one example of shape {model.data_shape}",
            "pass a single example",
        )
    model.eval()

    def code(flat: torch.Tensor) -> torch.Tensor:  # (D,) -> (K,)
        return model.latent.mean(model.encoder(flat.view(1, *model.data_shape)))[0]

    return torch.func.jacrev(code)(x.reshape(size).to(parameter.device)).detach().cpu()


def tangent_plane(model: Autoencoder, x: Any, k: int = 8) -> TangentPlane:
    """The Jacobian at x, its singular values and its ``k`` leading right-singular vectors."""
    if int(k) < 1:
        raise AekitError(f"k={k} tangent directions", "at least one is needed", "use k >= 1")
    jacobian = encoder_jacobian(model, x).double()  # (K, D)
    _, singular_values, vh = torch.linalg.svd(jacobian, full_matrices=False)  # vh (min(K, D), D)
    directions = vh[: int(k)]
    peaks = directions.gather(1, directions.abs().argmax(1, keepdim=True))  # (k, 1) largest-|.| entry
    directions = directions * torch.sign(peaks)
    return TangentPlane(
        point=np.asarray(x, np.float32).reshape(model.data_shape),
        jacobian=jacobian.float().numpy(),
        singular_values=singular_values.float().numpy(),
        directions=directions.float().numpy().reshape(-1, *model.data_shape),
    )


def singular_value_spectra(model: Autoencoder, x: Any) -> np.ndarray:
    """Singular values of the code's Jacobian at each example of x (N, *data_shape): (N, min(K, D))."""
    return np.stack([tangent_plane(model, example, k=1).singular_values for example in np.asarray(x)])


def as_tangent_images(directions: np.ndarray) -> np.ndarray:
    """Directions (k, ...) as images in [0, 1]: 0.5 = unchanged, 1 = brighten, 0 = darken, each
    direction scaled so its largest change reaches black or white."""
    directions = np.asarray(directions, np.float32)
    peak = np.abs(directions.reshape(len(directions), -1)).max(1).clip(min=1e-12)
    return 0.5 + 0.5 * directions / peak.reshape(-1, *([1] * (directions.ndim - 1)))


def vertical_translations(image: Any, shifts: Sequence[float]) -> np.ndarray:
    """A 1-D image manifold: ``image`` (H, W) moved down by each (sub-pixel) shift, in pixels.

    Cubic-spline interpolation makes the images a smooth function of the shift, so the tangent
    d image / d shift exists; zeros enter at the border. Returns (T, 1, H, W) float32.
    """
    from scipy.ndimage import shift as shift_image

    image = np.asarray(image, np.float64)
    if image.ndim != 2:
        raise AekitError(f"an image of shape {image.shape}", "translations act on one (H, W) image", "pass one")
    return np.stack([shift_image(image, (s, 0.0), order=3, mode="constant")[None] for s in shifts]).astype(np.float32)
