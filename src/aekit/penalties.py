"""Penalties: the regularisers added to the reconstruction NLL.

A penalty returns an unweighted scalar (already averaged over the batch); the model multiplies it
by ``penalty.weight`` and adds it to the loss. Penalties see tensors, never the model: everything
one step produced is in a :class:`StepContext`, and what a penalty needs from the model's parts is
declared (``requires``: abilities of the latent and encoder, see :mod:`aekit.latents`) and checked
when the model is built. ``needs_input_grad`` tells the model to make the encoder's input require
gradients (the projection contractive penalty differentiates the code by it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from .errors import AekitError
from .latents import GaussianPosterior
from .registry import Part


@dataclass
class StepContext:
    """What one forward pass of the training step produced; penalties read from it.

    ``x`` is the clean target (B, ...), ``x_input`` what the encoder saw (corrupted, maybe with
    ``requires_grad``), ``h`` the encoder output (B, H), ``z`` the decoder input (B, K), ``params``
    the decoder output, ``nll`` the reconstruction NLL per example (B,) in nats. ``code_of`` maps
    h to the noise-free, differentiable code (the latent's ``mean``). ``encoder_weight`` is W (K, D)
    when the encoder is one affine map, else None. ``log_weights(S)`` gives the importance weights
    log p(x|z_s) + log p(z_s) - log q(z_s|x) (S, B) for a latent with a prior, else it is None.
    For a sparse dictionary: ``dead`` (K,) bool marks the latents silent for too long,
    ``decode_directions(z)`` is what codes (B, K) add to the reconstruction without its bias, and
    ``active(h)`` is H(h - theta) (B, K) with straight-through gradients; None elsewhere.
    ``nll_of(params, x)`` is the likelihood's NLL (B,) nats, for a penalty that scores another
    reconstruction in the same units as the loss.
    """

    x: torch.Tensor
    x_input: torch.Tensor
    h: torch.Tensor
    z: torch.Tensor
    posterior: GaussianPosterior | None
    params: torch.Tensor
    nll: torch.Tensor
    code_of: Callable[[torch.Tensor], torch.Tensor]
    generator: torch.Generator | None = None
    encoder_weight: torch.Tensor | None = None
    log_weights: Callable[[int], torch.Tensor] | None = None
    dead: torch.Tensor | None = None
    decode_directions: Callable[[torch.Tensor], torch.Tensor] | None = None
    active: Callable[[torch.Tensor], torch.Tensor] | None = None
    nll_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    _code: torch.Tensor | None = field(default=None, init=False, repr=False)

    @property
    def code(self) -> torch.Tensor:
        """The noise-free, differentiable code (B, K) that activity penalties act on, computed once
        (a plain attribute, not functools.cached_property, whose lock torch.compile cannot trace)."""
        if self._code is None:
            self._code = self.code_of(self.h)
        return self._code


class Penalty(Part):
    """Base class of penalties: ``weight`` multiplies the value, ``name`` labels it in logs.

    ``requires`` names the abilities the model must have (of its latent, or ``"affine_encoder"``);
    ``excludes`` maps the penalties that must not be used together with this one to the reason.
    """

    kind = "penalty"
    needs_input_grad = False
    requires: ClassVar[frozenset[str]] = frozenset()
    excludes: ClassVar[dict[str, str]] = {}

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        if weight < 0:
            raise AekitError(
                f"penalty weight {weight} is negative", "a negative weight rewards the penalty", "use >= 0"
            )
        self.weight = float(weight)

    def bind(self, abilities: frozenset[str]) -> None:
        """Adapt to a model whose parts have ``abilities`` (called once, when the model is built)."""

    def forward(self, ctx: StepContext) -> torch.Tensor:
        raise NotImplementedError


class L1Activity(Penalty):
    """Mean over the batch of ||code||_1: the negative log of a Laplace prior on the code, up to scale."""

    name = "l1"

    def forward(self, ctx: StepContext) -> torch.Tensor:
        code = ctx.code
        values = getattr(code, "active_values", None)  # a code that lists its possibly non-zero entries
        if values is not None:
            return values.abs().sum() / len(code)
        if getattr(code, "nonnegative", False):  # a code that says so (the dictionaries'): |z| = z
            return code.sum() / len(code)
        return code.abs().sum(1).mean()


class KLSparsity(Penalty):
    """sum_j KL(rho || rho_hat_j), rho_hat_j the mean activation of code unit j over the batch.

    Needs codes in (0, 1): use a deterministic latent with a sigmoid activation.
    """

    name = "kl_sparsity"
    requires = frozenset({"sigmoid_code"})

    def __init__(self, weight: float = 1.0, rho: float = 0.05) -> None:
        super().__init__(weight)
        if not 0 < rho < 1:
            raise AekitError(f"target activation rho={rho} is outside (0, 1)", "it is a mean activation", "fix it")
        self.rho = float(rho)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        rho_hat = ctx.code.mean(0).clamp(1e-6, 1 - 1e-6)  # (K,)
        rho = self.rho
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
        return kl.sum()


class Contractive(Penalty):
    """||d code / d x||_F^2 averaged over the batch (Rifai et al. 2011).

    ``estimator="exact"``: the closed form for a one-layer sigmoid encoder,
    sum_j (c_j (1 - c_j))^2 ||W_j||^2, no extra backward pass.
    ``estimator="projection"``: the unbiased estimate E_v ||J^T v||^2 with v ~ N(0, I_K), one
    vector-Jacobian product per projection; works for any encoder.
    ``estimator="auto"``: exact when the encoder is one linear layer under a sigmoid code.
    """

    name = "contractive"

    def __init__(self, weight: float = 0.1, estimator: str = "auto", projections: int = 1) -> None:
        super().__init__(weight)
        if estimator not in ("auto", "exact", "projection"):
            raise AekitError(f"unknown estimator {estimator!r}", "choices: auto, exact, projection", "pick one")
        if projections < 1:
            raise AekitError(f"projections={projections}", "the estimate needs at least one", "use >= 1")
        self.estimator = estimator
        self.projections = int(projections)
        self._exact = estimator == "exact"

    @property
    def needs_input_grad(self) -> bool:  # type: ignore[override]
        return not self._exact

    def bind(self, abilities: frozenset[str]) -> None:
        exact_possible = {"affine_encoder", "sigmoid_code"} <= abilities
        if self.estimator == "exact" and not exact_possible:
            raise AekitError(
                "the exact contractive penalty needs a one-layer sigmoid encoder",
                "the closed form holds only for code = sigmoid(W x + b)",
                "use estimator='projection' (unbiased, any encoder) or hidden=() with a sigmoid code",
            )
        self._exact = self.estimator == "exact" or (self.estimator == "auto" and exact_possible)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        if self._exact:
            assert ctx.encoder_weight is not None
            code = ctx.code  # (B, K)
            row_norms = ctx.encoder_weight.pow(2).sum(1)  # (K,) = ||W_j||^2
            return ((code * (1 - code)).pow(2) * row_norms).sum(1).mean()
        if not ctx.x_input.requires_grad:
            raise AekitError(
                "the projection contractive penalty needs the encoder input to require gradients",
                "it differentiates the code with respect to the input",
                "compute it through Autoencoder.loss, which sets this up",
            )
        code = ctx.code
        total = code.new_zeros(())
        for _ in range(self.projections):
            v = torch.randn(code.shape, generator=ctx.generator, device=code.device, dtype=code.dtype)
            (vjp,) = torch.autograd.grad(code, ctx.x_input, grad_outputs=v, create_graph=True)  # (B, ...)
            total = total + vjp.pow(2).flatten(1).sum(1).mean()
        return total / self.projections


class KLDivergence(Penalty):
    """KL(q(z|x) || N(0, I)) in nats per example, averaged over the batch; ``weight`` is beta.

    ``free_bits`` (nats per code unit, Kingma et al. 2016): each unit's KL, averaged over the
    batch, counts as at least ``free_bits``, so units below it get no push towards the prior and
    stay in use (fewer collapsed units). 0 gives the plain ELBO.
    """

    name = "kl"
    requires = frozenset({"prior"})

    def __init__(self, weight: float = 1.0, free_bits: float = 0.0) -> None:
        super().__init__(weight)
        if free_bits < 0:
            raise AekitError(f"free_bits {free_bits} is negative", "it is a KL floor in nats per unit", "use >= 0")
        self.free_bits = float(free_bits)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        assert ctx.posterior is not None
        return ctx.posterior.kl_with_free_bits(self.free_bits)


class ImportanceWeighted(Penalty):
    """The IWAE objective (Burda et al. 2016) in place of the KL term: with it the loss is

        nll + iwae = -log (1/S) sum_s p(x|z_s) p(z_s) / q(z_s|x),   z_s ~ q(z|x),

    a bound on -log p(x) that is tighter than the ELBO's for ``samples`` S > 1. The term is that
    bound minus the model's one-sample reconstruction NLL, so it can be negative; averaged over the
    batch, nats per example. Costs S extra decoder passes per step. ``weight`` other than 1 (or a
    warm-up) mixes the bound with the plain reconstruction NLL.
    """

    name = "iwae"
    requires = frozenset({"prior"})
    excludes: ClassVar[dict[str, str]] = {"kl": "the importance weights already contain the KL term"}

    def __init__(self, weight: float = 1.0, samples: int = 5) -> None:
        super().__init__(weight)
        if int(samples) < 1:
            raise AekitError(f"{samples} importance samples", "the bound needs at least one", "use samples >= 1")
        self.samples = int(samples)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        assert ctx.log_weights is not None
        log_w = ctx.log_weights(self.samples)  # (S, B)
        bound_nll = math.log(self.samples) - torch.logsumexp(log_w, 0)  # (B,) -IWAE_S, nats
        return (bound_nll - ctx.nll).mean()  # ctx.nll: the loss's own reconstruction term


class BitBalance(Penalty):
    """Balanced, decorrelated bits: each bit splits the batch in half and no two bits repeat each other.

    With u = 2 sigmoid(h) - 1 (B, K), the code mapped to (-1, 1), the value is
    ``mean_k (mean_b u_bk)^2 + decorrelation * ||U^T U / B - I||_F^2 / K^2``: a relaxation of the
    two constraints of spectral hashing. An unbalanced bit separates few items (a bit that is always
    1 separates none) and correlated bits repeat each other.
    """

    name = "bit_balance"
    requires = frozenset({"bits"})

    def __init__(self, weight: float = 1.0, decorrelation: float = 1.0) -> None:
        super().__init__(weight)
        if decorrelation < 0:
            raise AekitError(f"decorrelation {decorrelation} is negative", "it weighs a squared norm", "use >= 0")
        self.decorrelation = float(decorrelation)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        u = 2.0 * ctx.code - 1.0  # (B, K) in (-1, 1)
        n, k = u.shape
        balance = u.mean(0).pow(2).mean()
        if self.decorrelation == 0:
            return balance
        gram = u.T @ u / n  # (K, K); its diagonal is near 1 for saturated codes
        eye = torch.eye(k, device=u.device, dtype=u.dtype)
        return balance + self.decorrelation * (gram - eye).pow(2).sum() / k**2


class Neighbourhood(Penalty):
    """Neighbours in the input share bits: each example's bits are pulled towards those of its
    ``neighbours`` nearest examples in the batch (Euclidean distance between the clean inputs).

    The value is the cross-entropy, in nats summed over the K bits, of the bit probabilities
    sigmoid(h_j) of a neighbour j under those of the example i, averaged over the pairs (i, j):
    ``mean_{i, j in kNN(i)} sum_k BCE(h_ik, sigmoid(h_jk))``. On logits it keeps a gradient when
    the bits are saturated (a squared difference of sigmoids would not), and it pulls the codes of
    a neighbourhood graph together as spectral and anchor-graph hashing do; the reconstruction and
    ``bit_balance`` keep the codes from collapsing. Larger batches give truer neighbours.
    """

    name = "neighbourhood"
    requires = frozenset({"bits"})

    def __init__(self, weight: float = 1.0, neighbours: int = 5) -> None:
        super().__init__(weight)
        if int(neighbours) < 1:
            raise AekitError(f"neighbours={neighbours}", "each example needs at least one neighbour", "use >= 1")
        self.neighbours = int(neighbours)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        logits = ctx.h  # (B, K): the binary latent's pre-activations
        n = len(logits)
        k = min(self.neighbours, n - 1)
        if k < 1:
            return logits.new_zeros(())
        nearest = nearest_in_batch(ctx.x, k)  # (B, k)
        targets = torch.sigmoid(logits)[nearest]  # (B, k, K)
        pairs = F.binary_cross_entropy_with_logits(logits[:, None, :].expand_as(targets), targets, reduction="none")
        return pairs.sum(-1).mean()


@torch.no_grad()
def nearest_in_batch(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, k) of each example's k nearest other examples of the batch x (B, ...), Euclidean."""
    flat = x.flatten(1).float()  # (B, D)
    squared = flat.pow(2).sum(1)
    distances = squared[:, None] + squared[None, :] - 2.0 * flat @ flat.T  # (B, B)
    distances.fill_diagonal_(float("inf"))
    return distances.topk(k, dim=1, largest=False).indices
