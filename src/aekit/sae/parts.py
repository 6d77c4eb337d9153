"""The parts of a sparse dictionary (a sparse autoencoder of today's kind) over vectors of D numbers.

* encoder ``dictionary``: h = W_enc (s x - c) + b_enc (B, K): the input scaled by s so that its
  mean squared norm is D and centred by c (the data's mean or geometric median, times s), both
  learnt from the training data before training (``from_data``); W_enc starts as W_dec's
  transpose (both parts draw the same matrix from ``init_seed``).
* decoder ``dictionary``: x^ = (W_dec z + b_dec) / s, in the data's units; the K columns of W_dec
  (D, K) are the dictionary's directions, kept at unit norm: the component of each column's
  gradient along the column is removed as the gradient is computed, and the columns are
  renormalised after every optimiser step (:meth:`DictionaryDecoder.after_optimizer_step`, which
  the training loop calls). b_dec starts at c.
* latents: ``relu`` (max(h, 0), for an L1 penalty to make sparse), ``topk`` (the k largest
  pre-activations of each example, ReLU'd; Gao et al. 2024),
  ``batchtopk`` (the k * B largest of the whole batch in training, and in inference every
  pre-activation at or above a threshold estimated from the training batches: Bussmann et al.
  2024), ``jumprelu`` (z = h where h > theta_j, a learnt threshold per latent, trained by
  straight-through estimators; Rajamanoharan et al. 2024). Each counts the examples since each
  latent last fired (``dead_window``: a latent silent for longer is dead), and lists on its
  code the entries that can be non-zero (``z.active_entries``), so that the decoder multiplies
  only those (:mod:`aekit.sae.kernels`).
* penalties: ``auxk`` (reconstruct the detached residual x - x^ from the ``aux_k`` largest
  pre-activations of the dead latents: the gradient revives them; zero when none is dead) and
  ``l0`` (the number of active latents, its gradient reaching the thresholds straight through).
* likelihood: a Gaussian whose sigma is the data's root mean square per dimension (1 / s), so
  the squared error is counted in the normalised units and the penalties' weights (l0, L1, AuxK)
  mean the same for activations of any scale.

Shapes: data (B, D); h and z (B, K), K the dictionary's width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import AekitError, check_options
from ..latents import Latent
from ..penalties import Penalty, StepContext
from ..registry import Part
from .kernels import (
    batch_topk,
    decode_entries,
    dense_above,
    listed_code,
    listed_firing,
    listed_linear,
    listed_values,
    positive_positions,
    row_topk,
    selected_code,
    split_entries,
)


def initial_directions(dim: int, width: int, seed: int) -> torch.Tensor:
    """The dictionary both parts start from: (D, K), unit-norm columns of a seeded Gaussian matrix."""
    generator = torch.Generator().manual_seed(int(seed))
    directions = torch.randn(dim, width, generator=generator)
    return directions / directions.norm(dim=0, keepdim=True)


def geometric_median(x: torch.Tensor, iterations: int = 50) -> torch.Tensor:
    """The point (D,) minimising the summed Euclidean distance to the rows of x (N, D), by
    Weiszfeld's iterations from the mean: robust to a few huge activations, unlike the mean."""
    median = x.mean(0)
    for _ in range(iterations):
        weights = 1 / (x - median).norm(dim=1).clamp(min=1e-8)  # (N,)
        median = (weights[:, None] * x).sum(0) / weights.sum()
    return median


def _statistics(x: torch.Tensor, centre: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The scale s (a number: the data's mean squared norm becomes D) and the centre c (D,) in the
    scaled units, from a sample x (N, D)."""
    x = x.flatten(1).double()
    scale = math.sqrt(x.shape[1] / max(float(x.square().sum(1).mean()), 1e-30))
    middle = x.mean(0) if centre == "mean" else geometric_median(x)
    return torch.tensor(scale), (middle * scale)


class _Statistics(Part):
    """The data statistics both dictionary parts hold: ``scale`` s and ``centre`` c (scaled units)."""

    def _init_statistics(self, dim: int, centre: str) -> None:
        check_options(self.name, [(centre in ("mean", "median"), f"centre {centre!r} must be mean or median")])
        self.centre_kind = centre
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("centre", torch.zeros(dim))

    @torch.no_grad()
    def from_data(self, x: torch.Tensor) -> None:
        scale, centre = _statistics(x, self.centre_kind)
        self.scale.copy_(scale)
        self.centre.copy_(centre)


class DictionaryEncoder(_Statistics):
    """h = W_enc (s x - c) + b_enc: (B, D) -> (B, K). ``dim`` D, ``width`` K; W_enc starts as
    ``init_scale`` times the decoder's transpose (a small start lets an L1 code find its sparsity
    gently: measured in bench/sae_peers.py)."""

    kind = "encoder"
    name = "dictionary"

    def __init__(self, dim: int, width: int, init_seed: int = 0, centre: str = "mean", init_scale: float = 1.0) -> None:
        super().__init__()
        check_options(
            "dictionary",
            [
                (int(dim) >= 1 and int(width) >= 1, f"dim {dim} and width {width} must be >= 1"),
                (init_scale > 0, f"init_scale {init_scale} must be positive"),
            ],
        )
        self._init_statistics(int(dim), centre)
        start = initial_directions(int(dim), int(width), init_seed).T * float(init_scale)
        self.weight = nn.Parameter(start.contiguous())  # (K, D)
        self.bias = nn.Parameter(torch.zeros(int(width)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x.flatten(1) * self.scale - self.centre  # (B, D), mean squared norm about D
        return listed_linear(centred, self.weight, self.bias)  # (B, K); see listed_values


class DictionaryDecoder(_Statistics):
    """x^ = (W_dec z + b_dec) / s: (B, K) -> (B, D), unit-norm columns of W_dec (D, K).

    ``gradient_clip``: the global gradient norm a dictionary's training steps are clipped to when
    the training settings leave it to the model (``clip_grad_norm="auto"``), as SAELens clips;
    unclipped, the same dictionaries explain less variance at the same L0 and find fewer features
    (bench/sae_peers.py, bench/RESULTS.md)."""

    kind = "decoder"
    name = "dictionary"
    gradient_clip = 1.0

    def __init__(self, dim: int, width: int, init_seed: int = 0, centre: str = "mean") -> None:
        super().__init__()
        check_options("dictionary", [(int(dim) >= 1 and int(width) >= 1, f"dim {dim} and width {width} must be >= 1")])
        self._init_statistics(int(dim), centre)
        self.weight = nn.Parameter(initial_directions(int(dim), int(width), init_seed))  # (D, K)
        self.bias = nn.Parameter(torch.zeros(int(dim)))
        self.weight.register_hook(self._tangent)

    @torch.no_grad()
    def from_data(self, x: torch.Tensor) -> None:
        super().from_data(x)
        self.bias.copy_(self.centre)  # the reconstruction of an all-zero code: the data's centre

    def _tangent(self, grad: torch.Tensor) -> torch.Tensor:
        """The gradient without its component along each (unit) column: a step then turns the
        column instead of scaling it, which the norm constraint would undo."""
        w = self.weight.detach()
        return grad - w * (grad * w).sum(0, keepdim=True)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Put every column back on the unit sphere (called by the training loop after each step)."""
        self.weight.div_(self.weight.norm(dim=0, keepdim=True).clamp(min=1e-12))

    def directions(self, z: torch.Tensor) -> torch.Tensor:
        """What the codes z (B, K) add to the reconstruction, without the bias: W_dec z / s (B, D).
        A code that lists where it can be non-zero (``z.active_entries``: flat positions b * K + j
        grouped by row, outside which the code is zero and its gradient unused; the dictionary
        latents attach them) is decoded from those entries alone."""
        entries = getattr(z, "active_entries", None)
        if entries is not None and z.ndim == 2 and len(entries) <= dense_above(z) * z.numel():
            return decode_entries(z, entries, self.weight) / self.scale
        return z @ self.weight.T / self.scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.directions(z) + self.bias / self.scale  # (B, D), the data's units


# ------------------------------------------------------------------------------------------------ #
# activations


class SparseActivation(Latent):
    """Base of the dictionary activations: z = activation(h), non-negative, the same in training
    and inference except where a subclass says. ``since_fired`` (K,) counts the training examples
    since each latent was last non-zero; ``dead`` is where that exceeds ``dead_window``."""

    code_is_output = True
    _listed_last = False  # whether the last batch's code was sparse enough to list

    def __init__(self, code_size: int, dead_window: int = 1_000_000) -> None:
        super().__init__(code_size)
        check_options(self.name, [(int(dead_window) >= 1, f"dead_window {dead_window} must be >= 1")])
        self.dead_window = int(dead_window)
        self.register_buffer("since_fired", torch.zeros(self.code_size, dtype=torch.long))

    def list_positive(self, positive: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(entries, count): the flat positions (n,) of the positive entries of a non-negative
        (B, K) tensor, row by row, and their count (a float tensor); entries None when they are
        more than ``dense_above`` of it (the dense products are then the faster ones). They are
        counted before they are listed only when the last batch's were too many: listing costs
        several counts, most of all for a dense tensor."""
        limit = dense_above(positive) * positive.numel()
        if not self._listed_last:
            count = positive.sign().sum()  # (a float sum of 0/1 signs: exact below 2^24 entries)
            if float(count) > limit:
                return None, count
        entries = positive_positions(positive, limit)
        self._listed_last = entries is not None
        if entries is None:
            return None, positive.sign().sum()
        return entries, positive.new_tensor(float(len(entries)))

    @property
    def abilities(self) -> frozenset[str]:
        return frozenset({"dead_latents"})

    @property
    def dead(self) -> torch.Tensor:
        """(K,) bool: latents silent for more than ``dead_window`` training examples."""
        return self.since_fired > self.dead_window

    def activate(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, h, generator=None, stochastic=None):
        z = self.activate(h)  # (B, K)
        z.nonnegative = True  # so |z| = z: an L1 penalty skips the absolute value and its gradient
        entries = getattr(z, "active_entries", None)
        if self.training:
            with torch.no_grad():
                self.since_fired += len(h)
                # the codes are non-negative: a column fired where its maximum is > 0 ((K,) mask)
                fired = z.detach().amax(0) > 0 if entries is None else listed_firing(z)
                self.since_fired.masked_fill_(fired, 0)
        return z, None

    @torch.no_grad()
    def active_count(self, z: torch.Tensor) -> torch.Tensor:
        """The number of non-zero entries of the code z (B, K) (a float tensor, L0 summed over the
        batch), counted among the entries it lists when it lists them."""
        counted = getattr(z, "nonzero_total", None)  # counted by the latent already
        if counted is not None:
            return counted
        steps = getattr(z, "active_steps", None)  # 0/1 where a latent with thresholds fires
        if steps is not None:
            return steps.detach().sum()
        listed = getattr(z, "active_values", None)
        if listed is None:
            entries = getattr(z, "active_entries", None)
            listed = z if entries is None else z.reshape(-1).index_select(0, entries)
        # non-negative: the signs are the 0/1 indicators (a float sum, exact below 2^24 entries;
        # (z != 0).sum() and count_nonzero cast to int64 first, several times slower)
        return listed.detach().sign().sum()

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        return self.activate(h)


class TopK(SparseActivation):
    """The k largest pre-activations of each example, through a ReLU; the others 0."""

    name = "topk"

    def __init__(self, code_size: int, k: int = 32, dead_window: int = 1_000_000) -> None:
        super().__init__(code_size, dead_window)
        check_options("topk", [(1 <= int(k) <= self.code_size, f"k {k} must be in [1, width {self.code_size}]")])
        self.k = int(k)

    def activate(self, h: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            index = row_topk(h.detach(), self.k)[1]  # (B, k) columns
        return selected_code(h, index)  # the positive ones listed: the decoder reads only these


class ReLUCode(SparseActivation):
    """z = max(h, 0): the code of an L1-penalised dictionary (the penalty sets how many fire)."""

    name = "relu"

    def activate(self, h: torch.Tensor) -> torch.Tensor:
        z = h.relu()
        if h.ndim != 2:
            return z
        with torch.no_grad():  # where z is zero its gradient is too: only the positive entries matter
            entries, count = self.list_positive(z.detach())
        if entries is None:
            z.nonzero_total = count  # what the training step reports as L0, counted once
            return z  # the dense product is the faster one: no list
        z.active_entries = entries
        z.active_values = listed_values(h, entries)  # positive: there the ReLU is the identity
        return z


class BatchTopK(SparseActivation):
    """Training: the k * B largest pre-activations of the whole batch (ReLU'd), so examples share a
    budget of k active latents on average. Inference: every pre-activation >= ``threshold``, the
    running mean (``momentum``) of the smallest value a training batch kept."""

    name = "batchtopk"

    def __init__(self, code_size: int, k: int = 32, momentum: float = 0.01, dead_window: int = 1_000_000) -> None:
        super().__init__(code_size, dead_window)
        check_options(
            "batchtopk",
            [
                (1 <= int(k) <= self.code_size, f"k {k} must be in [1, width {self.code_size}]"),
                (0 < momentum <= 1, f"momentum {momentum} must be in (0, 1]"),
            ],
        )
        self.k, self.momentum = int(k), float(momentum)
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        self._last_cut: float | None = None  # the last training batch's smallest selected value

    def batch_selection(self, h: torch.Tensor) -> torch.Tensor:
        """The training-time code: the k * B largest entries of h (B, K), ReLU'd."""
        with torch.no_grad():
            flat = h.detach().flatten()
            values, index = batch_topk(flat, min(self.k * len(h), flat.numel()), self._last_cut)  # (n,) each
            if len(values):
                self._last_cut = float(values.min())  # the next batch's guess of its cut
        return selected_code(h, index)  # the positive ones listed: the decoder reads only these

    def activate(self, h: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return torch.where((h >= self.threshold) & (h > 0), h, torch.zeros_like(h))
        z = self.batch_selection(h)
        with torch.no_grad():
            kept = z.active_values.detach()  # the positive entries
            if kept.numel():
                smallest = kept.min()
                first = self.batches_seen == 0
                self.threshold.copy_(torch.where(first, smallest, torch.lerp(self.threshold, smallest, self.momentum)))
                self.batches_seen += 1
        return z


class _JumpReLU(torch.autograd.Function):
    """(z, steps): z = h * H(h - theta) and steps = H(h - theta), both like h, for h (B, K) with
    theta (K,), or for listed entries h (n,) with their latents' thresholds theta (n,).
    Gradients (Rajamanoharan et al. 2024): to h where the unit is on (through z); to theta by the
    rectangle kernel of width ``bandwidth``, where |h - theta| < bandwidth / 2: -theta / bandwidth
    through z and -1 / bandwidth through steps (the L0 count's straight-through estimator).

    One function for both, and the kernel's few entries found in the forward pass (while h is in
    the cache) and kept as positions, so that the backward reads only those: on a CPU a step's
    full passes over (B, K) tensors, boolean masks most of all, cost about as much as its matrix
    products (a step's speed before and after: bench/RESULTS.md)."""

    @staticmethod
    def forward(ctx, h, theta, bandwidth):
        gap = h - theta  # like h
        steps = (gap > 0).to(h.dtype)  # 0/1, like h
        near = torch.nonzero(gap.abs_() < bandwidth / 2, as_tuple=True)  # the kernel's reach: positions
        ctx.save_for_backward(theta, steps, *near)
        ctx.bandwidth = bandwidth
        ctx.set_materialize_grads(False)  # an output nothing reads gets no gradient: None, not zeros
        return h * steps, steps

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad, grad_steps):
        theta, steps, *positions = ctx.saved_tensors
        near = tuple(positions)  # an index per axis of h
        grad_h = grad * steps if grad is not None and ctx.needs_input_grad[0] else None
        grad_theta = None
        if ctx.needs_input_grad[1]:
            latent = near[-1]  # theta runs along h's last axis
            # -(theta * grad + grad_steps) / bandwidth at the entries within reach, summed per threshold
            through = grad[near] * theta.index_select(0, latent) if grad is not None else theta.new_zeros(len(latent))
            if grad_steps is not None:
                through = through + grad_steps[near]
            grad_theta = theta.new_zeros(theta.shape).index_add_(0, latent, through) * (-1 / ctx.bandwidth)
        return grad_h, grad_theta, None


class JumpReLU(SparseActivation):
    """z_j = h_j where h_j > theta_j, else 0; theta (K,) learnt (kept positive through its log),
    starting at ``threshold``; ``bandwidth`` is the straight-through kernel's width."""

    name = "jumprelu"

    def __init__(
        self, code_size: int, threshold: float = 0.001, bandwidth: float = 0.001, dead_window: int = 1_000_000
    ) -> None:
        super().__init__(code_size, dead_window)
        check_options("jumprelu", [(threshold > 0 and bandwidth > 0, "threshold and bandwidth must be positive")])
        self.bandwidth = float(bandwidth)
        self.log_threshold = nn.Parameter(torch.full((self.code_size,), math.log(threshold)))

    @property
    def abilities(self) -> frozenset[str]:
        return frozenset({"dead_latents", "thresholds"})

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()  # (K,)

    def activate(self, h: torch.Tensor) -> torch.Tensor:
        """z (B, K), with the L0 count's terms ``z.active_steps`` (H(h - theta), straight through
        to theta). Below the kernel's reach (h <= theta - bandwidth / 2) z is zero and neither h
        nor theta gets a gradient, so z, its gradients and the steps ((n,)) are computed at the
        entries within reach only (``z.active_entries``), unless they are more than
        ``dense_above`` of h (then the steps are (B, K))."""
        threshold = self.threshold  # (K,)
        entries = None
        if h.ndim == 2:
            with torch.no_grad():  # within reach: h > theta - bandwidth / 2, where the gap is positive
                gap = torch.sub(h.detach(), threshold.detach() - self.bandwidth / 2).relu_()  # (B, K)
                entries = self.list_positive(gap)[0]  # (n,) row-major, so grouped by row
                del gap
        if entries is None:  # the dense products are the faster ones: no list
            z, steps = _JumpReLU.apply(h, threshold, self.bandwidth)  # (B, K) each
            z.active_steps = steps
            return z
        pre = listed_values(h, entries)  # (n,)
        latents = split_entries(entries, h.shape[1])[1]  # (n,), kept for the decoder
        theta = threshold.index_select(0, latents)  # (n,) each entry's latent's threshold
        values, steps = _JumpReLU.apply(pre, theta, self.bandwidth)  # (n,) each
        # all the entries within reach, the zeros among them too: their gradient moves the thresholds
        z = listed_code(h, entries, values)
        z.active_steps = steps
        return z

    def active(self, h: torch.Tensor) -> torch.Tensor:
        """H(h - theta) (B, K), its gradient reaching theta straight through."""
        return _JumpReLU.apply(h, self.threshold, self.bandwidth)[1]


# ------------------------------------------------------------------------------------------------ #
# penalties


class AuxK(Penalty):
    """The auxiliary loss that revives dead latents (Gao et al. 2024): how badly the ``aux_k``
    largest pre-activations of the dead latents (ReLU'd, through the dictionary without its bias)
    reconstruct the detached residual e = x - x^, scored like the reconstruction itself (the
    likelihood's NLL of e given that reconstruction, less its NLL given e: for the dictionaries'
    Gaussian, half the squared error in units of the data's scale), mean over the batch, nats.
    Zero when no latent is dead."""

    name = "auxk"
    requires = frozenset({"dead_latents"})

    def __init__(self, weight: float = 1 / 16, aux_k: int = 256) -> None:
        super().__init__(weight)
        check_options("auxk", [(int(aux_k) >= 1, f"aux_k {aux_k} must be >= 1")])
        self.aux_k = int(aux_k)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        dead, directions = ctx.dead, ctx.decode_directions
        if dead is None or directions is None or ctx.nll_of is None:
            raise AekitError("the auxk penalty", "it needs a dictionary decoder and dead-latent counts", "use sae-*")
        count = int(dead.sum())
        if count == 0:
            return ctx.h.new_zeros(())
        residual = (ctx.x.flatten(1) - ctx.params.flatten(1)).detach()  # (B, D)
        with torch.no_grad():  # only the dead compete
            pre = torch.where(dead, ctx.h.detach(), torch.full_like(ctx.h, -torch.inf))  # (B, K)
            index = row_topk(pre, min(self.aux_k, count))[1]  # (B, aux_k) columns
        z = selected_code(ctx.h, index)
        shape = (-1, *ctx.x.shape[1:])
        floor = ctx.nll_of(residual.view(shape), residual.view(shape))  # (B,) the NLL of a perfect one
        return (ctx.nll_of(directions(z).view(shape), residual.view(shape)) - floor).mean()


class L0(Penalty):
    """The number of active latents per example, mean over the batch; its gradient reaches each
    latent's threshold straight through (JumpReLU's sparsity penalty)."""

    name = "l0"
    requires = frozenset({"thresholds"})

    def forward(self, ctx: StepContext) -> torch.Tensor:
        if ctx.active is None:
            raise AekitError("the l0 penalty", "it needs a latent with thresholds", "use sae-jumprelu")
        steps = getattr(ctx.z, "active_steps", None)  # H(h - theta) at the code's listed entries, or all
        if steps is not None:
            return steps.sum() / len(ctx.z)
        return ctx.active(ctx.h).sum(1).mean()
