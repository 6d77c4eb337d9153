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

from .. import colour
from ..errors import AekitError, check_options
from ..registry import Part
from .mlp import _shape, layer_widths, make_activation


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

    Each block is a stride-2 convolution followed by ``convs_per_block - 1`` stride-1 ones at the
    same resolution (more depth at the same size of feature map).

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
        convs_per_block: int = 1,
    ) -> None:
        super().__init__()
        self.in_shape = _image_shape(in_shape, "input shape")
        self.out_shape = _shape(out_shape, "output shape")
        channels = layer_widths(channels, "channel")
        if not channels:
            raise AekitError("the conv encoder needs at least one block", "channels is empty", "give channels")
        extra = layer_widths([convs_per_block], "convs_per_block")[0] - 1
        c, h, w = self.in_shape
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [nn.Conv2d(c, c_out, 3, stride=2, padding=1), make_activation(activation)]
            for _ in range(extra):
                layers += [nn.Conv2d(c_out, c_out, 3, padding=1), make_activation(activation)]
            c = c_out
        self.features = nn.Sequential(*layers)
        h_last, w_last = _spatial_sizes(h, w, len(channels))[-1]
        self.head = nn.Linear(c * h_last * w_last, math.prod(self.out_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature_map = self.features(x)  # (B, C_last, H_last, W_last)
        return self.head(feature_map.flatten(1)).view(x.shape[0], *self.out_shape)


class ConvDecoder(Part):
    """One linear layer to a small feature map, then stride-2 transposed convolutions; with
    ``convs_per_block`` > 1 each is preceded by stride-1 convolutions (the encoder mirrored).

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
        convs_per_block: int = 1,
    ) -> None:
        super().__init__()
        self.in_shape = _shape(in_shape, "input shape")
        self.out_shape = _image_shape(out_shape, "output shape")
        channels = layer_widths(channels, "channel")
        if not channels:
            raise AekitError("the conv decoder needs at least one block", "channels is empty", "give channels")
        extra = layer_widths([convs_per_block], "convs_per_block")[0] - 1
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
            for _ in range(extra):
                layers += [nn.Conv2d(c_in, c_in, 3, padding=1), make_activation(activation)]
            layers.append(nn.ConvTranspose2d(c_in, c_next, 3, stride=2, padding=1, output_padding=padding))
            if block < len(widths) - 1:
                layers.append(make_activation(activation))
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        feature_map = self.head(z.flatten(1)).view(z.shape[0], *self.start_shape)  # (B, C_last, h, w)
        return self.features(feature_map)  # (B, C, H, W)


class RedNet(Part):
    """RED-Net (Mao et al. 2016): convolutions, then as many deconvolutions, with symmetric skips.

    ``depth`` convolutional layers of ``width`` channels encode; ``depth`` mirrored layers decode.
    Every ``skip_every`` layers an encoder feature map is added to its mirror image in the decoder
    before the rectification, which lets the gradient reach the early layers of a deep network and
    carries image detail past the bottleneck. With ``residual`` the input image is added to the
    output, so the network learns the correction (the noise, the lost detail) rather than the
    image; channels the input lacks (the colours of a grey input) are predicted directly and input
    channels beyond the output's (a mask) only inform the prediction.

    ``downscale`` = s folds each s x s block of pixels into channels before the first layer and
    unfolds at the end (as FFDNet does): the network then runs at 1/s^2 of the pixels, s^2 times
    cheaper, with an s times larger receptive field. Any image size works: the input is padded by
    reflection to a multiple of s and the output cropped back.

    The deconvolutions keep the size (stride 1), which makes each one a convolution with a
    flipped kernel; they are built as ``nn.Conv2d``, the faster of the two on CPUs.

    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H, W)`` for any H, W.
    """

    kind = "encoder"
    name = "rednet"

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 5,
        width: int = 64,
        skip_every: int = 2,
        residual: bool = True,
        downscale: int = 1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        checks = [
            (in_channels >= 1 and out_channels >= 1, "channel counts must be >= 1"),
            (depth >= 1, "depth (layers per half) must be >= 1"),
            (width >= 1, "width must be >= 1"),
            (skip_every >= 1, "skip_every must be >= 1"),
            (downscale >= 1, "downscale must be >= 1"),
        ]
        check_options("RED-Net", checks)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.depth, self.skip_every = int(depth), int(skip_every)
        self.residual, self.downscale = bool(residual), int(downscale)
        s2 = self.downscale**2
        self.encoder_layers = nn.ModuleList(
            nn.Conv2d(self.in_channels * s2 if i == 0 else width, width, 3, padding=1) for i in range(depth)
        )
        self.decoder_layers = nn.ModuleList(
            nn.Conv2d(width, self.out_channels * s2 if i == depth - 1 else width, 3, padding=1) for i in range(depth)
        )
        self.activation = make_activation(activation)
        for layer in [*self.encoder_layers, *self.decoder_layers]:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        # the last layer starts at zero: a residual network starts as the identity
        nn.init.zeros_(self.decoder_layers[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width, s = x.shape[-2], x.shape[-1], self.downscale
        h = x
        if s > 1:
            pad = (0, (-width) % s, 0, (-height) % s)
            exporting = torch.compiler.is_exporting()  # symbolic sizes: one graph for every size (>= 8 px)
            if exporting or any(pad):
                h = nn.functional.pad(h, pad, mode="reflect" if exporting or min(height, width) > s else "replicate")
            h = nn.functional.pixel_unshuffle(h, s)  # (B, C s^2, H/s, W/s)
        skips: list[torch.Tensor] = []
        for layer in self.encoder_layers:
            h = self.activation(layer(h))  # (B, width, H/s, W/s)
            skips.append(h)
        for j, layer in enumerate(self.decoder_layers):
            h = layer(h)
            mirror = self.depth - 1 - j  # this output mirrors the encoder's output number `mirror` (0: x)
            if mirror > 0:
                if mirror % self.skip_every == 0:
                    h = h + skips[mirror - 1]
                h = self.activation(h)
        if s > 1:
            h = nn.functional.pixel_shuffle(h, s)[..., :height, :width]  # (B, C_out, H, W)
        if self.residual:
            shared = min(self.in_channels, self.out_channels)
            h = torch.cat([h[:, :shared] + x[:, :shared], h[:, shared:]], 1)
        return h


class IdentityDecoder(Part):
    """g(z) = z: the decoder of a model whose encoder already outputs the image (a RED-Net)."""

    kind = "decoder"
    name = "identity"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z


class ColourDecoder(Part):
    """Converts (B, 3, H, W) from a working colour space (``ycbcr`` or ``lab``, see
    :mod:`aekit.colour`) to RGB; no parameters. A colorizer predicts lightness and chroma, and the
    likelihood scores the RGB image."""

    kind = "decoder"
    name = "colour"

    def __init__(self, space: str = "ycbcr") -> None:
        super().__init__()
        colour._check_space(space)
        self.space = space

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return colour.from_space(z, self.space)
