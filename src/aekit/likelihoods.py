"""Likelihoods p(x | g(z)): what the decoder's output means and how reconstruction is scored.

All negative log-likelihoods are in nats per example, summed over every data dimension: shape (B,).
``nll(params, x)`` also broadcasts ``params`` (..., B, *data_shape) against x (B, *data_shape) to
(..., B): many decodings of one batch (importance samples) are scored without copying x.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import AekitError, check_options
from .registry import Part


def _extremes(values: Any, rows_per_chunk: int = 1 << 16) -> tuple[float, float]:
    """(min, max) of a tensor or array, a block at a time (no temporary as large as the data)."""
    if len(values) == 0:
        return 0.0, 0.0
    flat = values.reshape(len(values), -1) if values.ndim > 1 else values.reshape(-1, 1)
    lows, highs = [], []
    for start in range(0, len(flat), rows_per_chunk):
        block = flat[start : start + rows_per_chunk]
        lows.append(float(block.min()))
        highs.append(float(block.max()))
    return min(lows), max(highs)


def _sum_data_dims(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.flatten(-(x.dim() - 1)).sum(-1)  # (..., B, *data_shape) -> (..., B)


DRAWS = ("auto", "sample", "mean")  # how a chain reads a reconstruction distribution (Likelihood.draw)


class Likelihood(Part):
    """Base class: ``nll(params, x)`` (B,) nats, ``mean(params)`` like x, ``sample(params)`` like x."""

    kind = "likelihood"

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    # whether the spread of the distribution is a fixed convention of the loss rather than learned
    # (a Gaussian with a fixed sigma): its samples say nothing about the data's spread
    fixed_spread: bool = False

    def draw(self, params: torch.Tensor, generator: torch.Generator | None = None, how: str = "auto") -> torch.Tensor:
        """One reconstruction for a Markov chain, like x: ``sample`` draws from the distribution,
        ``mean`` takes its mean, ``auto`` samples unless the spread is fixed (then the mean)."""
        if how not in DRAWS:
            raise AekitError(f"unknown draw {how!r}", f"the choices are {', '.join(DRAWS)}", "pick one")
        if how == "mean" or (how == "auto" and self.fixed_spread):
            return self.mean(params)
        return self.sample(params, generator)

    # the values data may take under this likelihood, as (low, high); None: unbounded
    domain: tuple[float | None, float | None] = (None, None)

    def check_data(self, x: Any, what: str = "data") -> None:
        """Raise a one-line error if x (a tensor, or rows of a sparse matrix) has values outside
        this likelihood's domain: its NLL would be meaningless there."""
        low, high = self.domain
        if low is None and high is None:
            return
        values = x.matrix.data if hasattr(x, "matrix") else x
        smallest, largest = _extremes(values)
        if (low is not None and smallest < low) or (high is not None and largest > high):
            allowed = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
            raise AekitError(
                f"{what} has values in [{smallest:.4g}, {largest:.4g}]",
                f"the {self.name} likelihood scores data in {allowed}",
                "rescale the data (--scale minmax) or use a gaussian likelihood",
            )


class GaussianLikelihood(Likelihood):
    """Linear output units read as the mean of N(mean, sigma^2), for real-valued data.

    ``learn_sigma``: ``"none"`` keeps ``sigma`` fixed (then the NLL is the squared error / (2 sigma^2)
    plus a constant), ``"shared"`` learns one sigma, ``"per_dimension"`` learns one per data
    dimension. A learned sigma never drops below ``min_sigma`` (a pixel that never changes would
    otherwise drive its NLL to minus infinity). ``sigma_from_data``: sigma is fixed at the training
    data's root mean square per dimension, sqrt(E||x||^2 / D), measured before training
    (:meth:`from_data`) and saved with the weights: the squared error is then counted in units of
    the data's own scale, so penalty weights beside it mean the same for data of any scale.
    """

    name = "gaussian"

    def __init__(
        self,
        sigma: float = 1.0,
        learn_sigma: str = "none",
        data_shape: Sequence[int] = (),
        min_sigma: float = 1e-3,
        sigma_from_data: bool = False,
    ) -> None:
        super().__init__()
        if sigma <= 0 or min_sigma <= 0:
            raise AekitError(f"sigma {sigma} / min_sigma {min_sigma} must be positive", "they are scales", "fix")
        choices = ("none", "shared", "per_dimension")
        if learn_sigma not in choices:
            raise AekitError(
                f"unknown learn_sigma {learn_sigma!r}", f"the choices are {', '.join(choices)}", "pick one"
            )
        if learn_sigma == "per_dimension" and not data_shape:
            raise AekitError("per-dimension sigma needs data_shape", "it has one sigma per data dimension", "pass it")
        if sigma_from_data and learn_sigma != "none":
            raise AekitError(
                f"sigma_from_data with learn_sigma {learn_sigma!r}", "a sigma is either measured or learnt", "pick one"
            )
        self.learn_sigma, self.sigma_from_data = learn_sigma, bool(sigma_from_data)
        self.log_min_sigma = math.log(min_sigma)
        shape = tuple(data_shape) if learn_sigma == "per_dimension" else ()
        log_sigma = torch.full(shape, math.log(sigma))
        if learn_sigma == "none":  # saved only when it is a statistic of the data
            self.register_buffer("log_sigma", log_sigma, persistent=self.sigma_from_data)
        else:
            self.log_sigma = nn.Parameter(log_sigma)

    @property
    def fixed_spread(self) -> bool:  # type: ignore[override]
        return self.learn_sigma == "none"

    @property
    def learns_from_data(self) -> bool:
        """Whether :meth:`from_data` measures anything (only with ``sigma_from_data``)."""
        return self.sigma_from_data

    @torch.no_grad()
    def from_data(self, x: torch.Tensor) -> None:
        """With ``sigma_from_data``: sigma = sqrt(E||x||^2 / D) of the sample x (N, *data_shape)."""
        if self.sigma_from_data:
            mean_square = float(x.flatten(1).double().square().mean())
            self.log_sigma.fill_(0.5 * math.log(max(mean_square, 1e-30)))

    def _log_sigma(self) -> torch.Tensor:
        if self.learn_sigma == "none":
            return self.log_sigma
        return self.log_sigma.clamp(min=self.log_min_sigma)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.learn_sigma == "none":
            # one fixed sigma: the scaled squared error plus a constant, in two passes over the
            # data instead of six (about 4 % of a bf16 training step of a small MLP autoencoder)
            squared_error = _sum_data_dims((x - params).square(), x)
            dims = math.prod(x.shape[1:])
            log_sigma = self.log_sigma  # a number (a buffer: measured on the data, or fixed)
            return squared_error * (0.5 * torch.exp(-2 * log_sigma)) + dims * (log_sigma + 0.5 * math.log(2 * math.pi))
        log_sigma = self._log_sigma()
        z = (x - params) * torch.exp(-log_sigma)
        per_dim = 0.5 * z.pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)  # (..., B, *data_shape)
        return _sum_data_dims(per_dim, x)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def sample(self, params, generator=None):
        noise = torch.randn(params.shape, generator=generator, device=params.device, dtype=params.dtype)
        return params + torch.exp(self._log_sigma()) * noise


class BernoulliLikelihood(Likelihood):
    """Decoder outputs are logits of independent Bernoullis, for binary (or [0, 1]) data.

    The NLL is the binary cross-entropy on logits, softplus(l) - x l: a sigmoid output followed by a
    log would lose precision exactly where the model is confident.
    """

    name = "bernoulli"
    domain = (0.0, 1.0)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # torch's fused kernel computes softplus(l) - x l in one pass forward and one backward
        # (about 0.1 ms less per (128, 784) batch than the three separate operations)
        terms = F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")
        return _sum_data_dims(terms, x)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def sample(self, params, generator=None):
        return torch.bernoulli(torch.sigmoid(params), generator=generator)


class MultinomialLikelihood(Likelihood):
    """Decoder outputs are the logits of a distribution over the D features (words), for documents.

    ``nll(params, x) = -sum_d x_d log softmax(params)_d``: the negative log-probability of a bag of
    words with (possibly fractional) counts x, up to the multinomial coefficient, in nats per
    document; TF-IDF weights work as fractional counts. A document's words then inform the code
    about what it is about, which a per-word Bernoulli on mostly-zero inputs barely does (the
    multinomial/softmax output of semantic hashing's document models). ``mean`` is the word
    distribution softmax(params); ``sample`` draws ``draws`` words from it.
    """

    name = "multinomial"
    domain = (0.0, None)

    def __init__(self, draws: int = 100) -> None:
        super().__init__()
        if int(draws) < 1:
            raise AekitError(f"draws={draws}", "a sampled document needs at least one word", "use >= 1")
        self.draws = int(draws)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(params.flatten(1), dim=1)  # (B, D)
        return -(x.flatten(1) * log_p).sum(1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return F.softmax(params.flatten(1), dim=1).view_as(params)

    def sample(self, params, generator=None):
        probabilities = F.softmax(params.flatten(1), dim=1)
        words = torch.multinomial(probabilities, self.draws, replacement=True, generator=generator)  # (B, draws)
        counts = torch.zeros_like(probabilities).scatter_add_(1, words, torch.ones_like(words, dtype=params.dtype))
        return counts.view_as(params)


def gamut_bins(grid: float = 10.0, levels: int = 64) -> torch.Tensor:
    """The centres (Q, 2) of the ``grid`` x ``grid`` cells of the CIELAB (a, b) plane that sRGB
    colours reach (at any lightness): the quantised chroma of colour images. Grid 10 gives 261."""
    from . import colour

    values = torch.linspace(0, 1, levels, dtype=torch.float64)
    rgb = torch.stack(torch.meshgrid(values, values, values, indexing="ij")).reshape(3, -1, 1)
    ab = colour.rgb_to_lab(rgb)[1:, :, 0].T * colour.AB_SCALE  # (levels^3, 2) in Lab units
    return (torch.unique(torch.round(ab / grid), dim=0) * grid).float()


class ChromaBins(Likelihood):
    """Colour as a categorical distribution per pixel over quantised chroma (Zhang et al. 2016,
    "Colorful Image Colorization"): the course's output units chosen as a likelihood, where a
    Gaussian on the chroma predicts the mean of every plausible colour (greyish sepia) and a
    categorical one keeps the modes apart.

    ``params`` (B, 1 + Q, H, W): the lightness L / 100 (passed through from the input), then logits
    over the Q in-gamut (a, b) bins of side ``grid`` (:func:`gamut_bins`). Data x: RGB (B, 3, H, W)
    in [0, 1]. ``nll``: cross-entropy against the soft-encoded true chroma (its ``neighbours``
    nearest bins, Gaussian weights of width ``spread``), each pixel weighted by its class
    rebalancing weight, summed over pixels: weighted nats per image. The weights come from the
    bins' frequencies on training data (:meth:`from_data`), smoothed by a Gaussian of width
    ``spread`` and mixed with a uniform by ``rebalance`` (0: none; Zhang et al. use 0.5), so rare
    saturated colours are not drowned by the common greys. ``mean``: the annealed mean (softmax
    with ``temperature``, 0.38 in the paper, between the mode's vividness and the mean's
    smoothness) as RGB; ``sample``: one bin per pixel. Rebalancing biases what the network learns
    towards the rare colours (the weighted cross-entropy is minimised by p(q) proportional to
    weight(q) times the true frequency); ``calibrate`` in [0, 1] divides weight(q) ** calibrate back
    out before either readout: 0 reads the tilted distribution (vivid, but rare colours are
    over-predicted), 1 the data's frequencies (faithful on average, but muted).
    """

    name = "chroma_bins"
    domain = (0.0, 1.0)

    def __init__(
        self,
        grid: float = 10.0,
        neighbours: int = 5,
        spread: float = 5.0,
        rebalance: float = 0.5,
        temperature: float = 0.38,
        calibrate: float = 0.0,
    ) -> None:
        super().__init__()
        checks = [
            (grid > 0, f"grid {grid} must be positive"),
            (neighbours >= 1, f"neighbours {neighbours} must be >= 1"),
            (spread > 0, f"spread {spread} must be positive"),
            (0 <= rebalance <= 1, f"rebalance {rebalance} must be in [0, 1]"),
            (temperature > 0, f"temperature {temperature} must be positive"),
            (0 <= calibrate <= 1, f"calibrate {calibrate} must be in [0, 1]"),
        ]
        check_options("chroma_bins", checks)
        self.grid, self.neighbours, self.spread = float(grid), int(neighbours), float(spread)
        self.rebalance, self.temperature = float(rebalance), float(temperature)
        self.calibrate = float(calibrate)
        centres = gamut_bins(self.grid)
        self.register_buffer("centres", centres)  # (Q, 2) (a, b) in Lab units
        self.register_buffer("weights", torch.ones(len(centres)))  # (Q,) rebalancing weights, from data
        self.bins = len(centres)

    def _chroma(self, x: torch.Tensor) -> torch.Tensor:
        """RGB (B, 3, H, W) -> its (a, b) per pixel (B * H * W, 2) in Lab units."""
        from . import colour

        ab = colour.rgb_to_lab(x.float())[:, 1:] * colour.AB_SCALE  # (B, 2, H, W)
        return ab.permute(0, 2, 3, 1).reshape(-1, 2)

    def nearest(self, ab: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
        """The index of the nearest bin for each (a, b) row (P, 2) -> (P,), a chunk at a time."""
        return torch.cat([torch.cdist(part, self.centres).argmin(1) for part in ab.split(chunk)])

    @torch.no_grad()
    def from_data(self, x: torch.Tensor) -> None:
        """Set the rebalancing weights from RGB training images (N, 3, H, W)."""
        counts = torch.zeros(self.bins, dtype=torch.float64, device=self.centres.device)
        for images in x.split(64):
            found = self.nearest(self._chroma(images.to(self.centres.device)))
            counts += torch.bincount(found, minlength=self.bins).to(counts)
        prior = counts / counts.sum().clamp(min=1)
        distance = torch.cdist(self.centres.double(), self.centres.double())  # (Q, Q)
        smooth = torch.exp(-(distance**2) / (2 * self.spread**2))
        prior = smooth @ prior
        prior = prior / prior.sum()
        weights = 1 / ((1 - self.rebalance) * prior + self.rebalance / self.bins)
        self.weights.copy_((weights / (prior * weights).sum()).float())  # expected weight 1

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if params.shape[-3] != 1 + self.bins:
            raise AekitError(
                f"the chroma_bins likelihood got {params.shape[-3]} channels",
                f"it reads the lightness and {self.bins} bin logits",
                "give the network 1 + bins output channels",
            )
        batch, _, height, width = x.shape
        ab = self._chroma(x)  # (P, 2)
        distance, index = torch.cdist(ab, self.centres).topk(self.neighbours, dim=1, largest=False)  # (P, k)
        soft = torch.softmax(-(distance**2) / (2 * self.spread**2), dim=1)  # (P, k)
        logits = params[:, 1:].float().permute(0, 2, 3, 1).reshape(-1, self.bins)  # (P, Q)
        log_p = F.log_softmax(logits, dim=1).gather(1, index)  # (P, k)
        cross_entropy = -(soft * log_p).sum(1) * self.weights[index[:, 0]]  # (P,)
        return cross_entropy.view(batch, height * width).sum(1).to(params.dtype)

    def _rgb(self, lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        from . import colour

        lab = torch.cat([lightness, ab / colour.AB_SCALE], -3).float()
        return colour.lab_to_rgb(lab).clamp(0, 1).to(lightness.dtype)

    def _logits(self, params: torch.Tensor) -> torch.Tensor:
        """The readout's logits (B, Q, H, W), the rebalancing weights ** ``calibrate`` divided out."""
        logits = params[:, 1:].float()
        if self.calibrate:
            logits = logits - self.calibrate * self.weights.log().view(1, -1, 1, 1)
        return logits

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self._logits(params) / self.temperature, dim=1)  # (B, Q, H, W), annealed
        ab = torch.einsum("bqhw,qc->bchw", p, self.centres)  # (B, 2, H, W)
        return self._rgb(params[:, :1], ab)

    def sample(self, params, generator=None):
        logits = self._logits(params).permute(0, 2, 3, 1).reshape(-1, self.bins)
        drawn = torch.multinomial(torch.softmax(logits, 1), 1, generator=generator)[:, 0]
        b, _, h, w = params.shape
        ab = self.centres[drawn].view(b, h, w, 2).permute(0, 3, 1, 2)
        return self._rgb(params[:, :1], ab)
