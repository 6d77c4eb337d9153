"""Convolutional encoder and decoder for images of any size.

Each block halves the height and width (stride 2, ``ceil`` rounding); the decoder mirrors the
encoder and picks each transposed convolution's ``output_padding`` so that the output has exactly
the input's size, odd sizes included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import AekitError
from ..registry import Part
from .mlp import _shape, make_activation


def _image_shape(value: Sequence[int], what: str) -> tuple[int, int, int]:
    shape = _shape(value, what)
    if len(shape) != 3:
        raise AekitError(
            f"the conv network needs (channels, height, width) images, got {what} {shape}",
            "it convolves over two spatial axes",
            "reshape the data to (N, C, H, W) or use the 'mlp' network",
        )
    return shape  # type: ignore[return-value]


def _spatial_sizes(height: int, width: int, blocks: int) -> list[tuple[int, int]]:
    sizes = [(height, width)]
    for _ in range(blocks):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


class ConvEncoder(Part):
    """Strided 3x3 convolutions, then one linear layer to the code width.

    Shapes: ``(B, C, H, W) -> (B, *out_shape)``; after ``len(channels)`` blocks the feature map is
    ``(channels[-1], ceil(H / 2**n), ceil(W / 2**n))``.
    """

    kind = "encoder"
    name = "conv"

    def __init__(
        self,
        in_shape: Sequence[int],
        out_shape: int | Sequence[int],
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.in_shape = _image_shape(in_shape, "input shape")
        self.out_shape = _shape(out_shape, "output shape")
        if not channels:
            raise AekitError("the conv encoder needs at least one block", "channels is empty", "give channels")
        c, h, w = self.in_shape
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [nn.Conv2d(c, int(c_out), 3, stride=2, padding=1), make_activation(activation)]
            c = int(c_out)
        self.features = nn.Sequential(*layers)
        h_last, w_last = _spatial_sizes(h, w, len(channels))[-1]
        self.head = nn.Linear(c * h_last * w_last, math.prod(self.out_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature_map = self.features(x)  # (B, C_last, H_last, W_last)
        return self.head(feature_map.flatten(1)).view(x.shape[0], *self.out_shape)


class ConvDecoder(Part):
    """One linear layer to a small feature map, then stride-2 transposed convolutions.

    Shapes: ``(B, *in_shape) -> (B, C, H, W)``; the output has no activation (logits or means).
    """

    kind = "decoder"
    name = "conv"

    def __init__(
        self,
        in_shape: int | Sequence[int],
        out_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.in_shape = _shape(in_shape, "input shape")
        self.out_shape = _image_shape(out_shape, "output shape")
        if not channels:
            raise AekitError("the conv decoder needs at least one block", "channels is empty", "give channels")
        c_out, h, w = self.out_shape
        sizes = _spatial_sizes(h, w, len(channels))
        widths = [int(c) for c in reversed(channels)]  # deepest first
        self.start_shape = (widths[0], *sizes[-1])
        self.head = nn.Sequential(
            nn.Linear(math.prod(self.in_shape), math.prod(self.start_shape)), make_activation(activation)
        )
        layers: list[nn.Module] = []
        targets = [*widths[1:], c_out]
        for block, (c_in, c_next) in enumerate(zip(widths, targets, strict=True)):
            (h_in, w_in), (h_target, w_target) = sizes[-1 - block], sizes[-2 - block]
            # (h_in - 1) * 2 - 2 + 3 + pad = h_target  ->  pad in {0, 1}
            padding = (h_target - 2 * h_in + 1, w_target - 2 * w_in + 1)
            layers.append(nn.ConvTranspose2d(c_in, c_next, 3, stride=2, padding=1, output_padding=padding))
            if block < len(widths) - 1:
                layers.append(make_activation(activation))
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        feature_map = self.head(z.flatten(1)).view(z.shape[0], *self.start_shape)  # (B, C_last, h, w)
        return self.features(feature_map)  # (B, C, H, W)
