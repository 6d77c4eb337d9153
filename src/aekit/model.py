"""The autoencoder: encoder -> latent -> decoder, scored by a likelihood plus weighted penalties.

    loss(x) = NLL(x | g(z)) + sum_k weight_k * penalty_k,   z ~ latent(f(C(x)))

A model whose latent has a prior p(z) also gives importance weights p(x|z) p(z) / q(z|x), from
which the IWAE bound and the importance-sampled log-likelihood are built.

One class serves every family; a family is only a choice of parts (see :mod:`aekit.families`).
"""

from __future__ import annotations

import contextlib
import functools
import operator
from dataclasses import dataclass, field

import torch
from torch import nn

from . import registry
from .config import ModelConfig
from .corruptions import Corruption
from .errors import AekitError
from .latents import GaussianPosterior, Latent
from .likelihoods import Likelihood
from .penalties import Penalty, StepContext


def shape_fits(shape: tuple[int, ...] | torch.Size, expected: tuple[int | None, ...]) -> bool:
    """Whether one example of ``shape`` fits a model of data shape ``expected``; a None dimension
    (a fully convolutional model's height and width) accepts any size."""
    return len(shape) == len(expected) and all(e is None or int(d) == e for d, e in zip(shape, expected, strict=True))


def _learns_from_data(part: nn.Module) -> bool:
    """Whether a part measures a statistic of the training data before training: it has a
    ``from_data(x)`` method, and its ``learns_from_data`` (when it says) is true."""
    return callable(getattr(part, "from_data", None)) and bool(getattr(part, "learns_from_data", True))


@dataclass
class LossOutput:
    """The loss of one batch: ``total`` (scalar, what is minimised, the sum of ``terms``), each term
    (scalars) and the reconstruction NLL per example (B,), all in nats; ``metrics``: scalars
    reported beside the loss and not part of it (a dictionary's active and dead latents)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    nll: torch.Tensor | None = None
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class Autoencoder(nn.Module):
    """Encoder, latent, decoder and likelihood, with optional penalties and corruption.

    * ``encode(x)`` (B, *data_shape) -> (B, K): deterministic (posterior mean or hard bits).
    * ``decode(z)`` (B, K) -> (B, *data_shape): distribution parameters (logits or means).
    * ``forward(x)``: ``decode`` of the latent sample in training, of the code in eval; never
      corrupts and never computes a loss.
    * ``loss(x)``: the training objective, see :meth:`loss`.
    * ``log_importance_weights(x, S)`` (S, B): log p(x|z_s) + log p(z_s) - log q(z_s|x), nats.
    """

    def __init__(
        self,
        encoder: nn.Module,
        latent: Latent,
        decoder: nn.Module,
        likelihood: Likelihood,
        penalties: list[Penalty] | tuple[Penalty, ...] = (),
        corruption: Corruption | None = None,
        data_shape: tuple[int, ...] | list[int] | None = None,
        family: str = "custom",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.latent = latent
        self.decoder = decoder
        self.likelihood = likelihood
        self.penalties = nn.ModuleList(penalties)
        self.corruption = corruption
        shape = data_shape if data_shape is not None else getattr(decoder, "out_shape", None)
        if shape is None:
            raise AekitError("unknown data shape", "the decoder does not say what it outputs", "pass data_shape")
        self.data_shape = tuple(None if d is None else int(d) for d in shape)  # None: any size
        self.family = family
        names = [p.name for p in penalties]
        if len(set(names)) != len(names):
            raise AekitError(f"penalties {names} repeat a name", "each term is logged by name", "use each once")
        abilities = self.abilities
        for penalty in penalties:
            for ability in sorted(penalty.requires - abilities):
                latent.require(ability, f"the {penalty.name} penalty")
            for other, reason in penalty.excludes.items():
                if other in names:
                    clash = f"the {penalty.name} and {other} penalties are both present"
                    raise AekitError(clash, reason, f"drop the {other} penalty")
            penalty.bind(abilities)

    @property
    def abilities(self) -> frozenset[str]:
        """The latent's abilities, plus ``"affine_encoder"`` when the encoder is one affine map."""
        affine = getattr(self.encoder, "affine_weight", None) is not None
        return self.latent.abilities | ({"affine_encoder"} if affine else frozenset())

    @classmethod
    def from_config(cls, config: ModelConfig) -> Autoencoder:
        """Build every part from its ``{"name": ..., **kwargs}`` description."""
        return cls(
            encoder=registry.build("encoder", config.encoder),
            latent=registry.build("latent", config.latent),
            decoder=registry.build("decoder", config.decoder),
            likelihood=registry.build("likelihood", config.likelihood),
            penalties=[registry.build("penalty", p) for p in config.penalties],
            corruption=registry.build("corruption", config.corruption) if config.corruption else None,
            data_shape=config.data_shape,
            family=config.family,
        )

    @property
    def config(self) -> ModelConfig:
        """The configuration that rebuilds this model (every part must be a registered part)."""
        for name, part in [("encoder", self.encoder), ("decoder", self.decoder)]:
            if not isinstance(part, registry.Part):
                raise AekitError(
                    f"the {name} {type(part).__name__} cannot be saved",
                    "only registered parts can be described by a name and options",
                    "subclass aekit.registry.Part with kind and name",
                )
        return ModelConfig(
            data_shape=list(self.data_shape),
            encoder=self.encoder.spec(),
            latent=self.latent.spec(),
            decoder=self.decoder.spec(),
            likelihood=self.likelihood.spec(),
            penalties=[p.spec() for p in self.penalties],
            corruption=self.corruption.spec() if self.corruption is not None else None,
            family=self.family,
        )

    @property
    def code_size(self) -> int:
        return self.latent.code_size

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """What ``encode`` takes: the data shape, or what the corruption makes of it (an image
        plus its mask channel for inpainting, its lightness for colorization)."""
        return self.data_shape if self.corruption is None else tuple(self.corruption.out_shape(self.data_shape))

    # ----------------------------------------------------------------------------------------- #

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic code (B, K): posterior mean for a Gaussian latent, hard bits for a binary one.

        x is (B, *input_shape): for a restoration model, the degraded image the corruption prepares.
        """
        self._check_input(x, self.input_shape)
        return self.latent.code(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Distribution parameters (B, *data_shape) for codes z (B, K)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x, self.input_shape)
        z, _ = self.latent(self.encoder(x))
        return self.decoder(z)

    @property
    def learns_data_statistics(self) -> bool:
        """Whether a part computes a statistic of the training data before training."""
        return any(_learns_from_data(part) for part in self.children())

    @torch.no_grad()
    def fit_data_statistics(self, x: torch.Tensor) -> list[str]:
        """Before training: every part that learns a statistic of the training data (a
        ``from_data(x)`` method, e.g. the colour bins' rebalancing weights) sees the sample ``x``
        (N, *data_shape). The statistics are buffers, saved with the weights. Returns the parts' names."""
        seen = []
        for name, part in self.named_children():
            if _learns_from_data(part):
                part.from_data(x)
                seen.append(name)
        return seen

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The likelihood's mean at the decoded code, shaped like x (probabilities for Bernoulli)."""
        return self.likelihood.mean(self.decode(self.encode(x)))

    def loss(
        self,
        x: torch.Tensor,
        target: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        noisy: bool | None = None,
        penalty_scale: float | torch.Tensor = 1.0,
        corrupted: torch.Tensor | None = None,
    ) -> LossOutput:
        """The objective for a batch x (B, *data_shape): mean NLL plus weighted penalties, nats/example.

        ``target`` defaults to x (the clean image the reconstruction is scored against).
        ``noisy`` (default: ``self.training``) turns on the corruption and the latent's noise; all
        random draws come from ``generator``. ``penalty_scale`` multiplies every penalty weight
        (the trainer's warm-up ramps it from 0 to 1). ``corrupted`` (B, *input_shape) is the
        encoder's input when it was corrupted elsewhere (walk-back feeds corrupted chain states).
        """
        self._check_input(x)
        target = x if target is None else target
        noisy = self.training if noisy is None else noisy
        if generator is None and not noisy:
            # estimators that draw (random projections) stay repeatable on the noise-free path
            generator = torch.Generator(device=x.device).manual_seed(0)
        if corrupted is not None:
            self._check_input(corrupted, self.input_shape)
            x_input = corrupted
        else:
            x_input = self.corruption(x, generator) if (noisy and self.corruption is not None) else x
        needs_grad = any(p.needs_input_grad for p in self.penalties)
        grad_mode = torch.enable_grad() if needs_grad else contextlib.nullcontext()
        with grad_mode:
            if needs_grad:
                x_input = x_input.detach().requires_grad_(True)
            h = self.encoder(x_input)  # (B, H)
            z, posterior = self.latent(h, generator=generator, stochastic=noisy)  # (B, K)
            params = self.decoder(z)  # (B, *data_shape)
            nll = self.likelihood.nll(params, target)  # (B,)
            terms = {"nll": nll.mean()}
            log_weights = None
            if posterior is not None and self.latent.has_prior:  # (S) -> (S, B), reusing q(z|x)
                log_weights = functools.partial(
                    self.log_importance_weights, target, generator=generator, posterior=posterior
                )
            ctx = StepContext(
                target, x_input, h, z, posterior, params, nll, self.latent.mean, generator,
                encoder_weight=getattr(self.encoder, "affine_weight", None), log_weights=log_weights,
                dead=getattr(self.latent, "dead", None), decode_directions=getattr(self.decoder, "directions", None),
                active=getattr(self.latent, "active", None), nll_of=self.likelihood.nll,
            )  # fmt: skip
            if getattr(self.latent, "code_is_output", False):  # no second pass for the code
                ctx._code = z
            for penalty in self.penalties:
                terms[penalty.name] = penalty_scale * penalty.weight * penalty(ctx)
            total = functools.reduce(operator.add, terms.values())  # no kernel for a lone term
        metrics = {}
        if ctx.dead is not None:  # a sparse dictionary: reported beside the loss, not part of it
            metrics["active"] = self.latent.active_count(z) / len(z)  # L0, latents per example
            metrics["dead_fraction"] = ctx.dead.float().mean()
        return LossOutput(total=total, terms=terms, nll=nll, metrics=metrics)

    def log_importance_weights(
        self,
        x: torch.Tensor,
        samples: int,
        generator: torch.Generator | None = None,
        posterior: GaussianPosterior | None = None,
    ) -> torch.Tensor:
        """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x) for S draws z_s ~ q(z|x): (S, B) nats.

        mean_s w_s is an unbiased estimate of p(x), so ``log mean_s w_s`` is a lower bound of
        log p(x) that tightens as S grows (Burda et al. 2016); S = 1 gives a one-sample ELBO.
        ``posterior`` (q(z|x) already computed, e.g. from a corrupted input) skips the encoder;
        x (B, *data_shape) is then only the target. Differentiable; needs a latent with a prior.
        """
        if int(samples) < 1:
            raise AekitError(
                f"{samples} importance samples", "the estimate needs at least one sample of z", "use K >= 1"
            )
        self.latent.require_prior()
        self._check_input(x)
        q = posterior if posterior is not None else self.latent.posterior(self.encoder(x))
        z = q.sample(generator, samples)  # (S, B, K)
        params = self.decoder(z.flatten(0, 1)).view(samples, *x.shape)  # (S, B, *data_shape)
        log_px_given_z = -self.likelihood.nll(params, x)  # (S, B), x broadcast over the samples
        return log_px_given_z + self.latent.prior_log_prob(z) - q.log_prob(z)

    def _check_input(self, x: torch.Tensor, expected: tuple[int | None, ...] | None = None) -> None:
        expected = self.data_shape if expected is None else expected
        if not isinstance(x, torch.Tensor):
            raise AekitError(f"expected a torch.Tensor, got {type(x).__name__}", "", "convert with torch.as_tensor")
        if not shape_fits(x.shape[1:], expected):
            raise AekitError(
                f"input of shape {tuple(x.shape)} does not fit this model",
                f"it expects (batch, {', '.join('any' if d is None else str(d) for d in expected)})",
                "reshape the data or train a model for this shape",
            )
