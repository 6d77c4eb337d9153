"""Step functions: how a model kind plugs into the one training loop (:func:`aekit.train.fit`).

A step is an ``nn.Module`` whose ``forward(batch, generator)`` returns the training loss of one
batch as a :class:`~aekit.model.LossOutput` (scalar ``total``, named ``terms``, nats), drawing every
random number from ``generator``; ``evaluate(batch, generator)`` returns the terms to report on
held-out data (the module is then in eval mode, under ``no_grad``). The loop owns the rest:
batching, the optimiser, DDP, compile, autocast, channels_last, validation, stopping, checkpoints.

* :class:`AutoencoderStep`: an :class:`~aekit.model.Autoencoder`'s ``loss``.
* :class:`ClassifierStep`: cross-entropy of any logits network on :class:`~aekit.batches.Labelled`
  batches (fine-tuning a pretrained encoder); ``evaluate`` adds the error rate.

A new model kind (a translation model, a sparse dictionary) adds its step here or beside its model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .batches import Labelled
from .model import Autoencoder, LossOutput
from .tensors import dense_batch


def augmented(x: torch.Tensor, augment: str, generator: torch.Generator | None) -> torch.Tensor:
    """x (B, ..., W) with ``augment`` applied: ``hflip`` mirrors a random half of the examples
    along the last axis; ``none`` returns x."""
    if augment == "hflip":
        mirror = torch.rand(len(x), generator=generator, device=x.device) < 0.5  # (B,)
        return torch.where(mirror.view(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)
    return x


class AutoencoderStep(nn.Module):
    """The autoencoder objective: mean NLL plus weighted penalties, nats per example.

    ``augment="hflip"`` mirrors a random half of each training batch of images left to right.
    ``dynamic_binarization`` draws x ~ Bernoulli(x) anew for every batch. ``penalty_scale`` (a
    buffer the warm-up callback fills in place, so a compiled step never recompiles) multiplies
    every penalty weight during training; held-out data are scored at full weight, unaugmented.

    ``walkback`` = K > 0 (a model with a corruption; Bengio et al. 2013, "Generalized Denoising
    Auto-Encoders as Generative Models", walk-back training) also trains on the corruptions of the
    model's own chain: x~_0 = C(x), then x*_k ~ P(x | x~_(k-1)) (the reconstruction distribution's
    draw, :meth:`~aekit.likelihoods.Likelihood.draw`: its mean for a fixed-sigma Gaussian; no
    gradient) and x~_k = C(x*_k), each x~_k scored against the clean x. The loss is the mean over
    the K + 1 pairs, so the chain's spurious places far from the data are visited and
    pulled back. Held-out data are scored on the plain pairs (comparable across K).
    """

    def __init__(
        self,
        model: Autoencoder,
        dynamic_binarization: bool = False,
        penalty_warmup: bool = False,
        augment: str = "none",
        walkback: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.dynamic_binarization = dynamic_binarization
        self.penalty_warmup = penalty_warmup
        self.augment = augment
        self.walkback = int(walkback)
        self.register_buffer("penalty_scale", torch.ones(()), persistent=False)

    def _input(self, x: Any, generator: torch.Generator | None) -> torch.Tensor:
        x = dense_batch(x)  # (B, *data_shape)
        return torch.bernoulli(x, generator=generator) if self.dynamic_binarization else x

    def forward(self, x: Any, generator: torch.Generator | None = None) -> LossOutput:
        x = augmented(self._input(x, generator), self.augment, generator)
        scale = self.penalty_scale if self.penalty_warmup else 1.0  # no kernel when nothing ramps
        if not self.walkback:
            return self.model.loss(x, generator=generator, penalty_scale=scale)
        inputs = self.walkback_inputs(x, generator)  # K + 1 of (B, *input_shape)
        targets = x.expand(len(inputs), *x.shape).flatten(0, 1)  # ((K + 1) B, *data_shape)
        return self.model.loss(targets, generator=generator, penalty_scale=scale, corrupted=torch.cat(inputs))

    @torch.no_grad()
    def walkback_inputs(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """The encoder inputs of one walk-back from clean x (B, *data_shape): [x~_0, ..., x~_K], each
        (B, *input_shape), x~_0 = C(x) and x~_k = C(x*_k) with x*_k ~ P(x | x~_(k-1))."""
        model = self.model
        inputs = [model.corruption.corrupt(x, generator)]
        for _ in range(self.walkback):
            drawn = model.likelihood.draw(model.decode(model.encode(inputs[-1])), generator)  # (B, *data_shape)
            inputs.append(model.corruption.corrupt(drawn.to(x.dtype), generator))
        return inputs

    def evaluate(self, x: Any, generator: torch.Generator | None = None) -> LossOutput:
        # corruption and latent noise stay on (seeded): the objective the loop minimises
        return self.model.loss(self._input(x, generator), generator=generator, noisy=True)

    def describe(self) -> dict[str, Any]:
        """What must not change when a run resumes: the model's configuration."""
        return self.model.config.to_dict()

    @torch.no_grad()
    def preview(self, x: torch.Tensor) -> torch.Tensor | None:
        """Images for loggers: originals, the corrupted inputs (if any) and the reconstructions of
        a few examples x (N, C, H, W), stacked (rows * N, C, H, W) in [0, 1]; None for data that
        are not images of 1 or 3 channels."""
        x = dense_batch(x)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            return None
        was_training = self.model.training
        self.model.eval()
        rows = [x]
        seen = x
        if self.model.corruption is not None:
            seen = self.model.corruption.corrupt(x, torch.Generator(device=x.device).manual_seed(0))
            rows.append(seen[:, : x.shape[1]])  # without a mask channel
        rows.append(self.model.reconstruct(seen))
        self.model.train(was_training)
        return torch.cat(rows).float().clamp(0, 1).cpu()


class ClassifierStep(nn.Module):
    """Cross-entropy (nats per example) of ``network`` (x -> logits (B, C)) on labelled batches;
    ``augment`` as for :class:`AutoencoderStep`, on the training batches only."""

    def __init__(self, network: nn.Module, augment: str = "none") -> None:
        super().__init__()
        self.network = network
        self.augment = augment

    def forward(self, batch: Labelled, generator: torch.Generator | None = None) -> LossOutput:
        logits = self.network(augmented(dense_batch(batch.x), self.augment, generator))  # (B, C)
        loss = F.cross_entropy(logits.float(), batch.y)
        return LossOutput(total=loss, terms={"cross_entropy": loss})

    def evaluate(self, batch: Labelled, generator: torch.Generator | None = None) -> LossOutput:
        logits = self.network(dense_batch(batch.x)).float()  # (B, C)
        loss = F.cross_entropy(logits, batch.y)
        error = (logits.argmax(1) != batch.y).float().mean()
        return LossOutput(total=loss, terms={"cross_entropy": loss, "error": error})

    def describe(self) -> dict[str, Any]:
        return {"classifier": type(self.network).__name__}
