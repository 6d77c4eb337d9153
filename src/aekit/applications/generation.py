"""Generating with a trained autoencoder: prior samples, an ex-post Gaussian mixture on the codes,
interpolation between two inputs' codes, latent traversals, and the Markov chain of a denoising
autoencoder.

A VAE's decoder was trained on codes drawn near its prior N(0, I), so prior samples decode to
plausible images. A plain autoencoder has no prior: its codes fill an irregular region with holes,
and N(0, I) draws land mostly outside it. :class:`CodeMixture` fits a Gaussian mixture to the codes
of real data after training (an ex-post density estimate), which any model can sample from.

A denoising autoencoder needs no code density at all: trained to map corrupted x~ ~ C(x~|x) back
to x, its reconstruction distribution P(x|x~) and the corruption define a Markov chain whose
stationary distribution estimates the data's (Bengio et al. 2013, "Generalized Denoising
Auto-Encoders as Generative Models"): :func:`denoising_chain` alternates x~ ~ C(x~|x) and
x ~ P(x|x~). Its field r(x~) - x~ (:func:`denoising_field`) estimates sigma^2 * grad log p_sigma(x~)
for small Gaussian corruption of std sigma (Alain and Bengio 2013; the optimal denoiser is
x~ + sigma^2 grad log p_sigma(x~), Miyasawa/Tweedie), p_sigma the density of the corrupted data.

Images come back as the likelihood's mean (probabilities for Bernoulli outputs), shaped like the
data: (N, *data_shape). Nothing here trains or writes files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import AekitError
from ..model import Autoencoder
from ..tensors import apply_batched, as_tensor


def _device(model: Autoencoder) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def decode_codes(model: Autoencoder, codes: Any, batch_size: int = 1024) -> np.ndarray:
    """The likelihood's mean at each code: codes (N, K) -> images (N, *data_shape) float32."""
    codes = codes.float() if isinstance(codes, torch.Tensor) else torch.as_tensor(np.asarray(codes, np.float32))
    if codes.ndim != 2 or codes.shape[1] != model.code_size:
        raise AekitError(
            f"codes of shape {tuple(codes.shape)}",
            f"the model decodes (N, {model.code_size}) codes",
            "pass one code of the model's code size per row",
        )
    model.eval()
    decoded = apply_batched(lambda z: model.likelihood.mean(model.decode(z)), codes, batch_size, _device(model))
    return decoded.numpy()


@torch.no_grad()
def encode(model: Autoencoder, x: Any, batch_size: int = 1024) -> np.ndarray:
    """Deterministic codes (N, K) of examples x (N, *data_shape)."""
    model.eval()
    return apply_batched(model.encode, as_tensor(x), batch_size, _device(model)).numpy()


def sample_prior(model: Autoencoder, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n codes z ~ p(z) and their decodings: ((n, K), (n, *data_shape)). Needs a latent with a
    prior (a VAE); any other model says so and points to :class:`CodeMixture`."""
    model.latent.require_prior()
    _check_count(n)
    generator = torch.Generator().manual_seed(seed)
    codes = model.latent.prior_sample(int(n), generator).numpy()
    return codes, decode_codes(model, codes)


class CodeMixture:
    """A Gaussian mixture fitted on codes after training, to generate from any autoencoder.

    Scikit-learn conventions: ``CodeMixture(n_components, covariance_type, seed).fit(codes)``, then
    ``sample(n)`` draws codes (n, K) and ``score_samples(codes)`` gives their log density (nats).
    The fitted :class:`sklearn.mixture.GaussianMixture` is ``gaussian_mixture_``.
    """

    def __init__(self, n_components: int = 10, covariance_type: str = "full", seed: int = 0) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.seed = seed

    def fit(self, codes: Any) -> CodeMixture:
        from sklearn.mixture import GaussianMixture

        codes = np.asarray(codes, np.float64)
        if codes.ndim != 2 or len(codes) < self.n_components:
            raise AekitError(
                f"cannot fit {self.n_components} mixture components to codes of shape {codes.shape}",
                "a mixture needs (N, K) codes with at least one example per component",
                "encode more examples or use fewer components",
            )
        self.gaussian_mixture_ = GaussianMixture(
            self.n_components, covariance_type=self.covariance_type, reg_covar=1e-5, random_state=self.seed
        ).fit(codes)
        return self

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """n codes (n, K) float32 drawn from the fitted mixture, in random order."""
        _check_count(n)
        mixture = self._fitted()
        rng = np.random.default_rng(self.seed if seed is None else seed)
        mixture.random_state = int(rng.integers(2**31))  # sklearn draws from a RandomState seeded by this
        codes, _ = mixture.sample(int(n))  # sklearn groups the draws by component: shuffle them
        return codes[rng.permutation(int(n))].astype(np.float32)

    def score_samples(self, codes: Any) -> np.ndarray:
        """log density of each code under the mixture (N,), nats."""
        return self._fitted().score_samples(np.asarray(codes, np.float64))

    def _fitted(self):
        if not hasattr(self, "gaussian_mixture_"):
            raise AekitError("the code mixture is not fitted", "it has no components yet", "call fit(codes) first")
        return self.gaussian_mixture_


def sample_mixture(
    model: Autoencoder, x: Any, n: int, n_components: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, CodeMixture]:
    """Fit a :class:`CodeMixture` on the codes of x (N, *data_shape), draw n codes, decode them.

    Returns (codes (n, K), images (n, *data_shape), the fitted mixture)."""
    mixture = CodeMixture(n_components, seed=seed).fit(encode(model, x))
    codes = mixture.sample(n)
    return codes, decode_codes(model, codes), mixture


# ------------------------------------------------------------------------------------------------ #
# interpolation


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points (T, K) on the segment from code a (K,) to b (K,) at fractions t (T,)."""
    return (1 - t)[:, None] * a + t[:, None] * b


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (T, K): the direction moves along the great circle from a to b at
    constant angular speed while the norm goes linearly from |a| to |b|.

    Under a Gaussian prior most mass lies near a sphere; the straight segment between two typical
    codes cuts inside it (its midpoint is shorter than both ends), the arc does not.
    """
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if min(norm_a, norm_b) == 0:
        return lerp(a, b, t)  # a zero code has no direction
    unit_a, unit_b = a / norm_a, b / norm_b
    angle = math.acos(float(np.clip(unit_a @ unit_b, -1.0, 1.0)))
    if angle < 1e-6:
        return lerp(a, b, t)
    if math.pi - angle < 1e-6:
        raise AekitError(
            "the two codes point in opposite directions",
            "every great circle through them is as short as any other",
            "use --method linear, or pick another pair",
        )
    directions = (np.sin((1 - t) * angle)[:, None] * unit_a + np.sin(t * angle)[:, None] * unit_b) / math.sin(angle)
    return ((1 - t) * norm_a + t * norm_b)[:, None] * directions


INTERPOLATIONS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "linear": lerp,
    "spherical": slerp,
}


def interpolate(
    model: Autoencoder, x_a: Any, x_b: Any, steps: int = 8, method: str = "linear"
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``steps`` codes between the codes of two inputs (each ``data_shape`` or (1, *data_shape)).

    Returns (codes (steps, K), images (steps, *data_shape)); the first and last codes are the
    inputs' own. ``method``: ``linear`` or ``spherical``.
    """
    if method not in INTERPOLATIONS:
        choices = ", ".join(INTERPOLATIONS)
        raise AekitError(f"unknown interpolation {method!r}", f"the choices are {choices}", "pick one")
    if int(steps) < 2:
        raise AekitError(f"{steps} interpolation steps", "the two ends alone take two", "use steps >= 2")
    a, b = (_one_example(model, v) for v in (x_a, x_b))
    if a.shape != b.shape:
        raise AekitError(
            f"the two inputs have shapes {a.shape} and {b.shape}",
            "an interpolation runs between two examples of the same kind",
            "pass two examples of the model's data shape",
        )
    if a.shape != model.data_shape:
        raise AekitError(
            f"inputs of shape {a.shape} do not fit this model",
            f"it expects examples of shape {model.data_shape}",
            "pass two examples like the model's training data",
        )
    code_a, code_b = encode(model, np.stack([a, b]))
    codes = INTERPOLATIONS[method](code_a, code_b, np.linspace(0.0, 1.0, int(steps))).astype(np.float32)
    return codes, decode_codes(model, codes)


def traverse(
    model: Autoencoder,
    x: Any,
    dims: Sequence[int] | None = None,
    offsets: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0),
    scale: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Latent traversals: move one code unit at a time away from the code of x (``data_shape``).

    Unit d takes the values code[d] + offset * scale[d]; ``scale`` (K,) defaults to 1 (prior
    standard deviations for a VAE); pass the codes' standard deviation over a dataset for a plain
    autoencoder. Returns (codes (D, T, K), images (D, T, *data_shape)) for D units and T offsets.
    """
    dims = list(range(model.code_size)) if dims is None else [int(d) for d in dims]
    bad = [d for d in dims if not 0 <= d < model.code_size]
    if bad or not dims:
        raise AekitError(
            f"code units {bad or dims} to traverse",
            f"the code has units 0 to {model.code_size - 1}",
            "pick units in that range",
        )
    x = _one_example(model, x)
    if x.shape != model.data_shape:
        raise AekitError(f"an input of shape {x.shape}", f"the model expects {model.data_shape}", "pass one example")
    code = encode(model, x[None])[0]  # (K,)
    scale = np.ones(model.code_size, np.float32) if scale is None else np.asarray(scale, np.float32)
    offsets = np.asarray(offsets, np.float32)
    codes = np.repeat(code[None, None], len(dims), 0).repeat(len(offsets), 1)  # (D, T, K)
    for row, d in enumerate(dims):
        codes[row, :, d] = code[d] + offsets * scale[d]
    images = decode_codes(model, codes.reshape(-1, model.code_size))
    return codes, images.reshape(len(dims), len(offsets), *model.data_shape)


@torch.no_grad()
def denoising_field(model: Autoencoder, x: Any, batch_size: int = 4096) -> np.ndarray:
    """r(x) - x at points x (N, *data_shape): the reconstruction's mean minus the point, float32
    like x. For a denoising model trained with Gaussian corruption of std sigma it estimates
    sigma^2 * grad log p_sigma(x) (compare with :func:`aekit.metrics.score_alignment`)."""
    _check_data_input(model, "the field r(x) - x")
    points = as_tensor(x).float()
    model.eval()
    return (apply_batched(model.reconstruct, points, batch_size, _device(model)) - points).numpy()


@dataclass
class Chain:
    """Kept states of C chains run in parallel: ``states`` (T, C, *data_shape) float32 after the
    burn-in, every ``thin``-th step; ``steps`` (T,) the step number of each (1 = after one move)."""

    states: np.ndarray
    steps: np.ndarray

    @property
    def samples(self) -> np.ndarray:
        """The last kept state of every chain, (C, *data_shape)."""
        return self.states[-1]


@torch.no_grad()
def denoising_chain(
    model: Autoencoder,
    start: Any,
    steps: int,
    burn_in: int = 0,
    thin: int = 1,
    draw: str = "auto",
    seed: int = 0,
) -> Chain:
    """Run the Markov chain of a denoising autoencoder from ``start`` (C, *data_shape), all C chains
    as one batch: each step corrupts with the model's own training corruption, x~ ~ C(x~|x), then
    reads x from the reconstruction distribution P(x|x~): ``draw`` = ``sample`` draws from it,
    ``mean`` takes its mean, ``auto`` samples unless its spread is a fixed convention (a Gaussian
    with a fixed sigma; then the mean). ``steps`` moves in all; the states after ``burn_in`` moves,
    every ``thin``-th, are kept. Every random draw comes from ``seed``."""
    from ..likelihoods import DRAWS

    if model.corruption is None:
        raise AekitError(
            f"a chain for a {model.family} model without a corruption",
            "the chain alternates the training corruption and the reconstruction",
            "use a denoising model (family denoising)",
        )
    checks = [(int(steps) >= 1, f"{steps} steps"), (0 <= int(burn_in) < int(steps), f"burn-in {burn_in}")]
    checks.append((int(thin) >= 1, f"thinning {thin}"))
    for ok, what in checks:
        if not ok:
            raise AekitError(what, "a chain needs steps >= 1, 0 <= burn-in < steps and thinning >= 1", "fix it")
    if draw not in DRAWS:
        raise AekitError(f"unknown draw {draw!r}", f"the choices are {', '.join(DRAWS)}", "pick one")
    device = _device(model)
    x = as_tensor(start).float().to(device)  # (C, *data_shape)
    if tuple(x.shape[1:]) != tuple(model.data_shape) or len(x) < 1:
        raise AekitError(
            f"chain starts of shape {tuple(x.shape)}",
            f"the model's examples are {tuple(model.data_shape)}",
            "give one start per chain, (C, *data_shape)",
        )
    model.eval()
    generator = torch.Generator(device=device).manual_seed(int(seed))
    kept, kept_steps = [], []
    for step in range(1, int(steps) + 1):
        corrupted = model.corruption.corrupt(x, generator)  # x~ ~ C(x~|x), (C, *input_shape)
        x = model.likelihood.draw(model.decode(model.encode(corrupted)), generator, draw).float()  # (C, *data_shape)
        if step > burn_in and (step - burn_in) % thin == 0:
            kept.append(x.cpu().numpy())
            kept_steps.append(step)
    if not kept:  # the last state is always kept
        kept, kept_steps = [x.cpu().numpy()], [int(steps)]
    return Chain(np.stack(kept).astype(np.float32), np.asarray(kept_steps))


def _check_data_input(model: Autoencoder, what: str) -> None:
    if tuple(model.input_shape) != tuple(model.data_shape):
        raise AekitError(
            f"{what} of a model whose input is not the data ({tuple(model.input_shape)} vs {tuple(model.data_shape)})",
            "the field feeds points of the data space to the encoder",
            "use a denoising model without an extra input channel",
        )


def _one_example(model: Autoencoder, x: Any) -> np.ndarray:
    """One example as float32 ``data_shape``; a leading batch axis of one is dropped."""
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, np.float32)
    return x[0] if x.shape == (1, *model.data_shape) else x


def _check_count(n: int) -> None:
    if int(n) < 1:
        raise AekitError(f"{n} samples asked for", "at least one is needed", "use n >= 1")
