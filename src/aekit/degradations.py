"""Image degradations: the corruptions whose inverse is an image-restoration task.

Each is a registered corruption (see :mod:`aekit.corruptions`), so a restoration model is a
denoising autoencoder whose corruption is the task's degradation, and the same part damages
images for training, for evaluation and for the ``aekit restore`` command. Images are
``(B, C, H, W)`` tensors in [0, 1]; noise levels are the ``gaussian`` corruption's (``std`` is
sigma / 255 for 8-bit grey levels).

==============  ===========================================================================
``bicubic``     downscale by 2, 3 or 4 with an antialiased bicubic; ``prepare`` upscales back
``inpainting``  holes (random pixels, boxes, text-like strokes); the mask is an extra channel
``grayscale``   keep only the lightness (Y of YCbCr, or L of Lab); the colours are to predict
``jpeg``        a real JPEG encode and decode (Pillow) at a quality drawn per image
==============  ===========================================================================
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import colour
from .corruptions import Corruption
from .errors import AekitError

SCALES = (2, 3, 4)
MASK_KINDS = ("pixels", "boxes", "strokes", "mixed")
FILLS = ("zero", "smooth")


def _range(value: float | Sequence[float], what: str, low: float, high: float) -> tuple[float, float]:
    """A fixed value or a [min, max] range, checked against [low, high]."""
    pair = (float(value), float(value)) if isinstance(value, int | float) else tuple(float(v) for v in value)
    if len(pair) != 2 or not low <= pair[0] <= pair[1] <= high:
        raise AekitError(f"bad {what} {value!r}", f"expected a value or [min, max] within [{low}, {high}]", "fix it")
    return pair  # type: ignore[return-value]


def _uniform(shape: Sequence[int], bounds: tuple[float, float], generator, device) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(tuple(shape), generator=generator, device=device)


def check_scale(scale: int) -> int:
    """``scale`` as an int in {2, 3, 4}, or a one-line error."""
    if isinstance(scale, bool) or not isinstance(scale, int | float) or scale not in SCALES:
        raise AekitError(
            f"scale {scale!r} is not supported",
            f"the super-resolution scales are {', '.join(map(str, SCALES))}",
            "use --scale 2, 3 or 4",
        )
    return int(scale)


def bicubic_resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Antialiased bicubic resampling of (B, C, H, W) to ``size`` (Pillow's ``BICUBIC``, MATLAB's
    ``imresize``: a = -0.5, the kernel stretched by the scale when shrinking)."""
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False, antialias=True)


class Bicubic(Corruption):
    """Super-resolution: x is shrunk by ``scale`` (an antialiased bicubic), then enlarged back.

    ``observe``: (B, C, H, W) -> (B, C, H // s, W // s), the low-resolution image (rows and columns
    beyond a multiple of s are dropped first). ``prepare``: bicubic enlargement by s, to ``size``
    when given (edge rows repeated if ``size`` is not a multiple of s). ``scale`` may be a list, for
    one model of several scales: each batch draws one of them.
    """

    name = "bicubic"

    def __init__(self, scale: int | Sequence[int] = 2) -> None:
        super().__init__()
        scales = [scale] if isinstance(scale, int | float) else list(scale)
        if not scales:
            raise AekitError("no scale given", "super-resolution needs a factor", "use 2, 3 or 4")
        self.scales = [check_scale(s) for s in scales]
        self.scale = self.scales[0]  # the scale used at restoration time unless one is asked for

    def _draw_scale(self, generator: torch.Generator | None, device: torch.device) -> int:
        if len(self.scales) == 1:
            return self.scales[0]
        pick = torch.randint(len(self.scales), (1,), generator=generator, device=device)
        return self.scales[int(pick)]

    def _scale_of(self, observed: torch.Tensor, size: Sequence[int] | None) -> int:
        """The factor that shrank data of ``size`` to the observation (the first scale otherwise)."""
        h, w = observed.shape[-2:]
        for s in self.scales if size else ():
            if size[-2] // s == h and size[-1] // s == w:
                return s
        return self.scale

    def observe(self, x, generator=None, scale: int | None = None):
        s = check_scale(scale) if scale is not None else self._draw_scale(generator, x.device)
        height, width = x.shape[-2] // s, x.shape[-1] // s
        if height < 1 or width < 1:
            raise AekitError(f"an image of {tuple(x.shape[-2:])} pixels", f"is too small to shrink by {s}", "")
        return bicubic_resize(x[..., : height * s, : width * s], (height, width))

    def prepare(self, observed, size=None, scale: int | None = None):
        s = check_scale(scale) if scale is not None else self._scale_of(observed, size)
        height, width = observed.shape[-2] * s, observed.shape[-1] * s
        up = bicubic_resize(observed, (height, width))
        if size:  # the data were not a multiple of s: repeat the edge rows and columns
            up = F.pad(up, (0, size[-1] - width, 0, size[-2] - height), mode="replicate")
        return up


class Inpainting(Corruption):
    """Holes: missing pixels are filled and a mask channel (1 = known, 0 = missing) is appended.

    ``kind``: ``pixels`` (each pixel missing with probability ``rate``, a value or [min, max] drawn
    per image), ``boxes`` (``boxes`` rectangles per image with sides in ``box_size``), ``strokes``
    (``strokes`` random polylines, like scribbled text, ``stroke_width`` pixels wide rounded to an odd
    number), or ``mixed``
    (each image draws one of the three). All pixels of a location go missing together.

    ``fill``: what the network sees in a hole, ``zero`` or ``smooth`` (see :func:`smooth_fill`:
    the known pixels' mask-weighted local mean, from coarser scales where no pixel is near). A
    residual network given a smooth fill starts from a fair interpolation and learns the correction.

    Shapes: ``observe`` (B, C, H, W) -> (B, C + 1, H, W).
    """

    name = "inpainting"

    def __init__(
        self,
        kind: str = "pixels",
        rate: float | Sequence[float] = 0.5,
        boxes: int | Sequence[int] = 8,
        box_size: int | Sequence[int] = 32,
        strokes: int | Sequence[int] = 8,
        stroke_width: float | Sequence[float] = 3.0,
        fill: str = "zero",
    ) -> None:
        super().__init__()
        if kind not in MASK_KINDS:
            raise AekitError(f"unknown mask kind {kind!r}", f"the choices are {', '.join(MASK_KINDS)}", "pick one")
        if fill not in FILLS:
            raise AekitError(f"unknown hole fill {fill!r}", f"the choices are {', '.join(FILLS)}", "pick one")
        self.kind, self.fill = kind, fill
        self.rate = _range(rate, "rate", 0.0, 1.0)
        self.boxes = tuple(int(v) for v in _range(boxes, "boxes", 0, 1e6))
        self.box_size = _range(box_size, "box_size", 1, 1e6)
        self.strokes = tuple(int(v) for v in _range(strokes, "strokes", 0, 1e6))
        self.stroke_width = _range(stroke_width, "stroke_width", 0.5, 1e6)

    def out_shape(self, data_shape: Sequence[int]) -> tuple[int, ...]:
        return (data_shape[0] + 1, *data_shape[1:])

    def observe(self, x, generator=None):
        return with_mask(x, self.mask((len(x), *x.shape[-2:]), generator, x.device), self.fill)

    def mask(
        self, shape: Sequence[int], generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """A (B, 1, H, W) float mask for ``shape`` = (B, H, W): 1 where the pixel is known."""
        if self.kind == "mixed":
            masks = torch.stack([self._missing(kind, shape, generator, device) for kind in MASK_KINDS[:3]])
            pick = torch.randint(3, (shape[0],), generator=generator, device=device)
            missing = masks[pick, torch.arange(shape[0], device=device)]  # (B, H, W)
        else:
            missing = self._missing(self.kind, shape, generator, device)
        return (~missing).float().unsqueeze(1)

    def _missing(self, kind: str, shape: Sequence[int], generator, device) -> torch.Tensor:
        """Boolean (B, H, W), True where a pixel is missing."""
        batch, height, width = shape
        if kind == "pixels":
            rate = _uniform((batch, 1, 1), self.rate, generator, device)
            return torch.rand((batch, height, width), generator=generator, device=device) < rate
        rows = torch.arange(height, device=device, dtype=torch.float32)
        cols = torch.arange(width, device=device, dtype=torch.float32)
        if kind == "boxes":
            most = self.boxes[1]
            count = torch.randint(self.boxes[0], most + 1, (batch, 1), generator=generator, device=device)
            active = torch.arange(most, device=device) < count  # (B, K): the first `count` boxes exist
            sides = _uniform((2, batch, most), self.box_size, generator, device).round()
            tops = torch.rand((batch, most), generator=generator, device=device) * (height - sides[0]).clamp(min=0)
            lefts = torch.rand((batch, most), generator=generator, device=device) * (width - sides[1]).clamp(min=0)
            tops, lefts = tops.floor(), lefts.floor()
            in_rows = (rows >= tops[..., None]) & (rows < (tops + sides[0])[..., None])  # (B, K, H)
            in_cols = (cols >= lefts[..., None]) & (cols < (lefts + sides[1])[..., None])  # (B, K, W)
            inside = in_rows[..., :, None] & in_cols[..., None, :] & active[..., None, None]  # (B, K, H, W)
            return inside.any(1)
        return self._strokes(batch, rows, cols, generator, device)

    def _strokes(self, batch, rows, cols, generator, device) -> torch.Tensor:
        """Polylines of 4 segments turning by up to 90 degrees, like hand-written strokes: points
        sampled every half pixel along them are drawn, then thickened to the stroke's width."""
        height, width, most, segments = len(rows), len(cols), self.strokes[1], 4
        count = torch.randint(self.strokes[0], most + 1, (batch, 1), generator=generator, device=device)
        active = torch.arange(most, device=device) < count  # (B, K)
        size = float(max(height, width))
        extent = torch.tensor([height, width], device=device, dtype=torch.float32)
        start = torch.rand((batch, most, 1, 2), generator=generator, device=device) * extent
        heading = 2 * math.pi * torch.rand((batch, most, 1), generator=generator, device=device)
        turns = (torch.rand((batch, most, segments), generator=generator, device=device) - 0.5) * math.pi
        angles = heading + turns.cumsum(-1)  # (B, K, S)
        lengths = size * (0.03 + 0.1 * torch.rand((batch, most, segments), generator=generator, device=device))
        steps = torch.stack([angles.sin(), angles.cos()], -1) * lengths[..., None]  # (B, K, S, 2)
        ends = torch.cat([start, start + steps.cumsum(2)], 2)  # (B, K, S + 1, 2)
        t = torch.linspace(0, 1, math.ceil(0.26 * size) + 2, device=device)  # half-pixel spacing
        points = ends[:, :, :-1, None] + t[:, None] * (ends[:, :, 1:] - ends[:, :, :-1])[:, :, :, None]
        index = points.round().long()  # (B, K, S, T, 2)
        valid = (index >= 0).all(-1) & (index < extent.long()).all(-1) & active[:, :, None, None]
        flat = torch.where(valid, index[..., 0] * width + index[..., 1], height * width).view(batch, -1)
        canvas = torch.zeros((batch, height * width + 1), device=device)
        canvas.scatter_(1, flat, 1.0)  # the last column collects the points outside the image
        canvas = canvas[:, :-1].view(batch, 1, height, width)
        # thickness: one odd width per image, drawn by a max filter of that size
        widths = _uniform((batch,), self.stroke_width, generator, device)
        widths = (2 * ((widths - 1) / 2).round() + 1).long()
        missing = torch.zeros((batch, height, width), dtype=torch.bool, device=device)
        for k in widths.unique().tolist():
            chosen = widths == k
            thick = F.max_pool2d(canvas[chosen], k, stride=1, padding=k // 2)
            missing[chosen] = thick[:, 0] > 0
        return missing


def with_mask(x: torch.Tensor, keep: torch.Tensor, fill: str = "zero") -> torch.Tensor:
    """The inpainting network's input: x (B, C, H, W) with its holes zeroed (``fill`` = ``zero``)
    or filled by :func:`smooth_fill` (``smooth``), and the mask (B, 1, H, W), 1 where known."""
    if keep.shape[-2:] != x.shape[-2:]:
        raise AekitError(
            f"the mask is {tuple(keep.shape[-2:])} pixels and the image {tuple(x.shape[-2:])}",
            "a mask marks the missing pixels of its image",
            "give a mask of the image's size",
        )
    keep = keep.to(x.dtype).expand(len(x), 1, *x.shape[-2:])
    filled = smooth_fill(x, keep) if fill == "smooth" else x * keep
    return torch.cat([filled, keep], 1)


def smooth_fill(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) with its holes (``keep`` (B, 1, H, W) = 0) filled, known pixels unchanged.

    A hole with a known pixel among its 8 neighbours gets their mean weighted by a 3 x 3 tent
    (a normalised convolution); the others get the same fill computed at half the resolution and
    enlarged bilinearly, recursively (a pull-push pyramid), so boxes of any size are filled
    smoothly from their borders. Cost: about 4/3 of one 3 x 3 convolution of the image. An image
    with no known pixel is filled with 0.5.
    """
    keep = (keep > 0).to(x.dtype)
    tent = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    kernel = (tent[:, None] * tent[None, :]).expand(x.shape[1] + 1, 1, 3, 3)
    both = F.conv2d(F.pad(torch.cat([x * keep, keep], 1), (1, 1, 1, 1)), kernel, groups=x.shape[1] + 1)
    total, weight = both[:, :-1], both[:, -1:]  # weighted sums of the known neighbours and of their weights
    near = weight > 0
    local = total / weight.clamp_min(1e-12)
    if not bool(near.all()):
        if min(x.shape[-2:]) <= 1:
            coarse = torch.full_like(x, 0.5)
        else:  # the holes with no known neighbour: the same fill at half the resolution
            coarse = smooth_fill(local[..., ::2, ::2], near[..., ::2, ::2])
            coarse = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        local = torch.where(near, local, coarse)
    return torch.where(keep > 0, x, local)


class Grayscale(Corruption):
    """Colorization: only the lightness of an RGB image is kept (Y of YCbCr, or L / 100 of Lab).

    Shapes: ``observe`` (B, 3, H, W) -> (B, 1, H, W).
    """

    name = "grayscale"

    def __init__(self, space: str = "ycbcr") -> None:
        super().__init__()
        colour._check_space(space)
        self.space = space

    def out_shape(self, data_shape: Sequence[int]) -> tuple[int, ...]:
        return (1, *data_shape[1:])

    def observe(self, x, generator=None):
        if x.shape[1] != 3:
            raise AekitError(f"colorization needs RGB images, got {x.shape[1]} channel(s)", "", "give RGB images")
        return colour.lightness(x, self.space)


class JPEG(Corruption):
    """JPEG artefacts: each image goes through a real JPEG encode and decode (Pillow, 4:2:0 chroma
    subsampling for colour, as cameras and browsers write) at a quality drawn uniformly from the
    integers in ``quality`` (a value or [min, max], 1-95). Pixels are rounded to 8 bits first, as a
    JPEG file holds them.

    Shapes: ``observe`` (B, C, H, W) -> (B, C, H, W), C 1 (grey) or 3 (RGB).
    """

    name = "jpeg"

    def __init__(self, quality: int | Sequence[int] = (10, 40)) -> None:
        super().__init__()
        low, high = _range(quality, "quality", 1, 95)
        if low != int(low) or high != int(high):
            raise AekitError(f"JPEG quality {quality}", "qualities are whole numbers", "use integers in 1-95")
        self.quality = (int(low), int(high))

    def draw_quality(self, count: int, generator: torch.Generator | None = None) -> list[int]:
        """``count`` qualities drawn uniformly from the range."""
        low, high = self.quality
        return torch.randint(low, high + 1, (count,), generator=generator).tolist()

    def observe(self, x, generator=None, quality: int | None = None):
        if x.shape[1] not in (1, 3):
            raise AekitError(f"JPEG needs grey or RGB images, got {x.shape[1]} channel(s)", "", "give 1 or 3 channels")
        qualities = [quality] * len(x) if quality is not None else self.draw_quality(len(x), generator)
        pixels = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        decoded = [jpeg_roundtrip(image, q) for image, q in zip(pixels, qualities, strict=True)]
        out = torch.from_numpy(np.stack(decoded)).to(x.device, torch.float32) / 255  # (B, H, W, C)
        return out.permute(0, 3, 1, 2).contiguous()


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 (H, W, C), C 1 or 3 -> the same image written as JPEG at ``quality`` and read back."""
    from PIL import Image

    grey = image.shape[-1] == 1
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if grey else image, "L" if grey else "RGB").save(
        buffer, format="JPEG", quality=int(quality), subsampling=0 if grey else 2
    )
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L" if grey else "RGB"))
    return decoded[..., None] if grey else decoded
