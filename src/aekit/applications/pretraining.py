"""Unsupervised pretraining: a classifier whose first layers are a trained autoencoder's encoder.

    logits = head(code(x)),   code(x) = latent.mean(encoder(x))   (the noise-free code, (B, K))

The encoder and latent are copied from the autoencoder, so the classifier starts from exactly the
learned features; ``freeze=True`` keeps them fixed (a probe of the representation), otherwise they
are fine-tuned with the head on the labels. Built from an *untrained* autoencoder the same network
is the "no pretraining" baseline. It trains through the one loop: :func:`aekit.train.fine_tune`
(cross-entropy, validation error for early stopping and best-weight restore); nothing here trains
or writes files.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import AekitError
from ..model import Autoencoder
from ..nets.mlp import MLP
from ..tensors import apply_batched, as_tensor


class EncoderClassifier(nn.Module):
    """x (B, *data_shape) -> logits (B, n_classes) through an autoencoder's encoder and a new head.

    ``hidden`` adds layers between the code and the output (the head is an MLP); ``freeze`` stops
    gradients into the encoder and latent and keeps them in eval mode, so a frozen encoder stays
    bit-for-bit what the autoencoder learned.
    """

    def __init__(
        self,
        encoder: nn.Module,
        latent: nn.Module,
        code_size: int,
        n_classes: int,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        freeze: bool = False,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise AekitError(f"{n_classes} class", "a classifier needs at least 2 classes", "check the labels")
        self.encoder = encoder
        self.latent = latent
        self.head = MLP([code_size], [n_classes], hidden=list(hidden), activation=activation)
        self.freeze = bool(freeze)
        for parameter in [*encoder.parameters(), *latent.parameters()]:
            parameter.requires_grad_(not self.freeze)

    @classmethod
    def from_autoencoder(
        cls,
        model: Autoencoder,
        n_classes: int,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        freeze: bool = False,
    ) -> EncoderClassifier:
        """Copy ``model``'s encoder and latent (the autoencoder itself is left untouched)."""
        encoder, latent = copy.deepcopy(model.encoder), copy.deepcopy(model.latent)
        return cls(encoder, latent, model.code_size, n_classes, hidden, activation, freeze)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The differentiable, noise-free code (B, K)."""
        return self.latent.mean(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.code(x))  # (B, n_classes) logits

    def train(self, mode: bool = True) -> EncoderClassifier:
        super().train(mode)
        if self.freeze:  # batch-norm statistics of a frozen encoder must not move either
            self.encoder.eval()
            self.latent.eval()
        return self


def predict_logits(classifier: nn.Module, x: Any, batch_size: int = 1024) -> torch.Tensor:
    """Logits (N, n_classes) on the CPU, computed in eval mode on the classifier's device."""
    parameter = next(classifier.parameters())
    classifier.eval()
    return apply_batched(classifier, as_tensor(x, dtype=parameter.dtype), batch_size, parameter.device)


def error_rate(classifier: nn.Module, x: Any, y: Any, batch_size: int = 1024) -> float:
    """Fraction of examples whose most probable class is not their label."""
    predicted = predict_logits(classifier, x, batch_size).argmax(1)
    return float(
        (predicted != torch.tensor(np.asarray(y), dtype=torch.long)).float().mean()
    )  # a copy: y may be read-only
