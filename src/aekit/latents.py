"""Latents: what sits between the encoder's output ``h`` and the decoder's input ``z``.

Every latent answers three questions about ``h`` (B, H):

* ``latent(h)`` -> ``(z, posterior_or_None)``: the code the decoder sees. Stochastic in training
  (a reparameterised Gaussian sample, or noise injected before a sigmoid), deterministic in
  ``eval()`` (the posterior mean, or hard bits).
* ``latent.mean(h)``: the differentiable, noise-free code that penalties act on (B, K).
* ``latent.code(h)``: the deterministic code that ``Autoencoder.encode`` returns (B, K).

What else a latent can do is declared in ``latent.abilities``, a set of names that penalties,
metrics and applications ask for instead of testing classes:

* ``"prior"``: a prior p(z) and a posterior q(z|x): ``posterior(h)``, ``prior_sample(n)`` and
  ``prior_log_prob(z)``, what sampling and likelihood estimates need (the Gaussian latent).
* ``"sigmoid_code"``: ``mean(h) = sigmoid(h)``, codes in (0, 1) (KL sparsity, the exact
  contractive penalty, bit balance).
* ``"bits"``: ``code(h)`` is hard bits (semantic hashing).

A latent without an ability says so clearly when asked for it (:meth:`Latent.require`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import AekitError
from .nets.mlp import make_activation
from .registry import Part


@dataclass
class GaussianPosterior:
    """Diagonal Gaussian q(z|x) = N(mean, exp(logvar)); both tensors are (B, K)."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None, samples: int | None = None) -> torch.Tensor:
        """Reparameterised sample ``mean + std * eps``: (B, K), or (S, B, K) for ``samples=S``.

        Gradients flow to both parameters.
        """
        shape = self.mean.shape if samples is None else (samples, *self.mean.shape)
        eps = torch.randn(shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) summed over the K dimensions, in nats; z is (..., B, K), result (..., B)."""
        return -0.5 * (((z - self.mean) ** 2) * torch.exp(-self.logvar) + self.logvar + math.log(2 * math.pi)).sum(-1)

    def kl_per_unit(self) -> torch.Tensor:
        """Analytic KL(q(z|x) || N(0, I)) of each code unit, nats (B, K)."""
        return 0.5 * (self.mean.pow(2) + torch.exp(self.logvar) - 1.0 - self.logvar)

    def kl_to_standard_normal(self) -> torch.Tensor:
        """Analytic KL(q(z|x) || N(0, I)) in nats per example (B,)."""
        return self.kl_per_unit().sum(-1)

    def kl_with_free_bits(self, free_bits: float) -> torch.Tensor:
        """The KL the objective charges, nats per example (scalar): each unit's batch-mean KL,
        counted as at least ``free_bits`` (Kingma et al. 2016); 0 gives the batch-mean KL."""
        return self.kl_per_unit().mean(0).clamp(min=free_bits).sum()


class Latent(Part):
    """Base class: ``code_size`` is K, the width of z; ``in_features`` is H, what the encoder emits."""

    kind = "latent"
    # whether the z of a training step is the noise-free code itself (mean(h)), so penalties on the
    # code read z instead of computing it again
    code_is_output: bool = False

    def __init__(self, code_size: int) -> None:
        super().__init__()
        if int(code_size) < 1:
            raise AekitError(f"code size {code_size} is too small", "a code needs at least one unit", "use >= 1")
        self.code_size = int(code_size)

    @property
    def in_features(self) -> int:
        return self.code_size

    def forward(
        self, h: torch.Tensor, generator: torch.Generator | None = None, stochastic: bool | None = None
    ) -> tuple[torch.Tensor, GaussianPosterior | None]:
        raise NotImplementedError

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def code(self, h: torch.Tensor) -> torch.Tensor:
        return self.mean(h)

    @property
    def abilities(self) -> frozenset[str]:
        """What this latent can do beyond ``forward``/``mean``/``code``: see the module docstring."""
        return frozenset()

    @property
    def has_prior(self) -> bool:
        """Whether ``posterior``, ``prior_sample`` and ``prior_log_prob`` exist."""
        return "prior" in self.abilities

    def require(self, ability: str, needed_by: str) -> None:
        """Raise a one-line error naming ``needed_by`` unless this latent has ``ability``."""
        if ability not in self.abilities:
            raise AekitError(
                f"{needed_by} needs a latent with {ABILITY_HINTS[ability][0]}",
                f"the {self.name!r} latent has {', '.join(sorted(self.abilities)) or 'no declared abilities'}",
                ABILITY_HINTS[ability][1],
            )

    def posterior(self, h: torch.Tensor) -> GaussianPosterior:
        """q(z|x) for encoder outputs h (B, H)."""
        raise self._no_prior()

    def prior_sample(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """n codes z ~ p(z): (n, K)."""
        raise self._no_prior()

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over the K dimensions, nats: z (..., K) -> (...)."""
        raise self._no_prior()

    def require_prior(self) -> None:
        """Raise a clear error unless this latent has a prior p(z) and a posterior q(z|x)."""
        if not self.has_prior:
            raise self._no_prior()

    def _no_prior(self) -> AekitError:
        return AekitError(
            f"the {self.name!r} latent has no prior p(z)",
            "only a Gaussian latent (the vae family) defines p(z) and q(z|x)",
            "train a vae, or sample from a Gaussian mixture fitted on the codes (aekit sample --from mixture)",
        )

    def _stochastic(self, stochastic: bool | None) -> bool:
        return self.training if stochastic is None else stochastic


# ability -> (what it is, how to get a latent that has it), for the errors of Latent.require
ABILITY_HINTS = {
    "prior": ("a prior p(z) and a posterior q(z|x)", 'use {"name": "gaussian"} (the vae family)'),
    "sigmoid_code": ("codes in (0, 1)", 'use {"name": "deterministic", "activation": "sigmoid"}'),
    "bits": ("a code of bits", 'use {"name": "binary"} (the hashing family)'),
    "dead_latents": ("counts of dead latents", "use a sparse dictionary activation (the sae-* families)"),
    "thresholds": ("learnt thresholds", 'use {"name": "jumprelu"} (the sae-jumprelu family)'),
}


class DeterministicLatent(Latent):
    """z = activation(h). ``sigmoid`` gives the bounded codes of sparse (KL) and contractive AEs."""

    name = "deterministic"

    def __init__(self, code_size: int, activation: str = "identity") -> None:
        super().__init__(code_size)
        self.activation_name = activation
        self.activation = make_activation(activation)

    @property
    def abilities(self) -> frozenset[str]:
        return frozenset({"sigmoid_code"}) if self.activation_name == "sigmoid" else frozenset()

    def forward(self, h, generator=None, stochastic=None):
        return self.activation(h), None

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        return self.activation(h)


class GaussianLatent(Latent):
    """h = [mean, logvar] (B, 2K); z is a reparameterised sample in training, the mean in eval.

    The encoder emits the log-variance directly: it is unconstrained, and exp() of it is always a
    valid variance, unlike a raw output squared or logged.
    """

    name = "gaussian"

    @property
    def abilities(self) -> frozenset[str]:
        return frozenset({"prior"})  # p(z) = N(0, I)

    @property
    def in_features(self) -> int:
        return 2 * self.code_size

    def prior_sample(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        return torch.randn((n, self.code_size), generator=generator, device=device)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)

    def posterior(self, h: torch.Tensor) -> GaussianPosterior:
        mean, logvar = h.chunk(2, dim=-1)  # (B, K) each
        return GaussianPosterior(mean, logvar.clamp(-30.0, 20.0))

    def forward(self, h, generator=None, stochastic=None):
        q = self.posterior(h)
        z = q.sample(generator) if self._stochastic(stochastic) else q.mean
        return z, q

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        return h[..., : self.code_size]


class BinaryLatent(Latent):
    """Binary codes for semantic hashing: z = sigmoid(h + noise) in training, bits (h > 0) in eval.

    The Gaussian noise (std ``noise_std``) injected before the sigmoid only leaves the decoder a
    usable signal when |h| is large, so training drives the code units to saturation and the
    thresholded bits lose little.

    ``flip_probability`` p also flips each training code unit (z -> 1 - z) with probability p, as a
    noisy channel would. The decoder must then map codes a few bit flips apart to similar outputs,
    so the encoder gives similar inputs codes a small Hamming distance apart (a noisy channel
    orders a vector quantiser's codebook topologically; Luttrell 1989). That order is what
    Hamming-ball and Hamming-ranking retrieval rely on.
    """

    name = "binary"

    def __init__(self, code_size: int, noise_std: float = 3.0, flip_probability: float = 0.0) -> None:
        super().__init__(code_size)
        if noise_std < 0:
            raise AekitError(f"noise_std {noise_std} is negative", "it is a standard deviation", "use >= 0")
        if not 0 <= flip_probability < 0.5:
            raise AekitError(
                f"flip_probability {flip_probability} is outside [0, 0.5)", "at 0.5 a bit carries nothing", "lower it"
            )
        self.noise_std = float(noise_std)
        self.flip_probability = float(flip_probability)

    @property
    def abilities(self) -> frozenset[str]:
        return frozenset({"sigmoid_code", "bits"})

    def forward(self, h, generator=None, stochastic=None):
        if not self._stochastic(stochastic):
            return self.code(h), None
        noise = torch.randn(h.shape, generator=generator, device=h.device, dtype=h.dtype)
        z = torch.sigmoid(h + self.noise_std * noise)  # (B, K)
        if self.flip_probability > 0:
            uniform = torch.rand(h.shape, generator=generator, device=h.device, dtype=h.dtype)
            flips = (uniform < self.flip_probability).to(h.dtype)
            z = z + flips * (1.0 - 2.0 * z)  # z or 1 - z; the gradient changes sign with the flip
        return z, None

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(h)

    def code(self, h: torch.Tensor) -> torch.Tensor:
        return (h > 0).to(h.dtype)


class IdentityLatent(Latent):
    """z = h, of any shape: for image-to-image models whose "code" is the restored image itself.

    It has no fixed width (``code_size`` is None): a fully convolutional encoder's output grows
    with the image.
    """

    name = "identity"

    def __init__(self) -> None:
        Part.__init__(self)
        self.code_size = None  # type: ignore[assignment]

    def forward(self, h, generator=None, stochastic=None):
        return h, None

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        return h
