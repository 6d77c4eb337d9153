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
    """

    def __init__(
        self,
        model: Autoencoder,
        dynamic_binarization: bool = False,
        penalty_warmup: bool = False,
        augment: str = "none",
    ) -> None:
        super().__init__()
        self.model = model
        self.dynamic_binarization = dynamic_binarization
        self.penalty_warmup = penalty_warmup
        self.augment = augment
        self.register_buffer("penalty_scale", torch.ones(()), persistent=False)

    def _input(self, x: Any, generator: torch.Generator | None) -> torch.Tensor:
        x = dense_batch(x)  # (B, *data_shape)
        return torch.bernoulli(x, generator=generator) if self.dynamic_binarization else x

    def forward(self, x: Any, generator: torch.Generator | None = None) -> LossOutput:
        x = augmented(self._input(x, generator), self.augment, generator)
        scale = self.penalty_scale if self.penalty_warmup else 1.0  # no kernel when nothing ramps
        return self.model.loss(x, generator=generator, penalty_scale=scale)

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
