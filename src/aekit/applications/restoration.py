"""Image restoration with a trained model: denoising, super-resolution, inpainting, colorization,
JPEG artefact removal.

A restoration model is an :class:`~aekit.model.Autoencoder` whose encoder is a RED-Net and whose
corruption is the degradation it undoes (see :mod:`aekit.degradations`). :class:`ImageRestorer`
pairs it with a degradation and works on plain arrays: ``(H, W)`` grey or ``(H, W, C)`` colour
images, uint8, uint16 or float in [0, 1]; results are float32 in [0, 1].

Large images are restored in tiles: each tile is run with ``overlap`` pixels of context on every
side and only its centre is kept, so the result equals whole-image inference wherever the context
covers the network's receptive field, and memory stays bounded by the tile size.

How a model of one channel meets a colour image: denoising and inpainting restore each channel
separately; super-resolution restores the luminance (Y) and enlarges the chroma bicubically, as
is usual. A colorizer accepts grey or colour input (it keeps only the lightness).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import colour
from ..corruptions import Corruption, GaussianNoise, with_level_map
from ..degradations import JPEG, Bicubic, Grayscale, Inpainting, with_mask
from ..errors import AekitError
from ..io import load_model
from ..model import Autoencoder
from ..tensors import to_channels_last

TASKS = {
    "gaussian": "denoise",
    "bicubic": "super-resolve",
    "inpainting": "inpaint",
    "grayscale": "colorize",
    "jpeg": "deblock",
}

PRETRAINED = {
    "denoise": "grey, Gaussian noise of any sigma in [0, 75] (of 255), the level given or estimated",
    "denoise-colour": "RGB, Gaussian noise of any sigma in [0, 75] (of 255), the level given or estimated",
    "deblock": "grey, JPEG artefacts of any quality in [10, 40]",
    "deblock-colour": "RGB, JPEG artefacts of any quality in [10, 40]",
    "super-resolve-x2": "grey / luminance, bicubic shrink by 2",
    "super-resolve-x3": "grey / luminance, bicubic shrink by 3",
    "super-resolve-x4": "grey / luminance, bicubic shrink by 4",
    "inpaint": "grey, holes of any kind (pixels, boxes, strokes) with the mask as input",
    "inpaint-pixels": "grey, scattered missing pixels (30-70 %) with the mask as input",
    "colorize": "RGB from the lightness: a distribution over Lab chroma bins per pixel, annealed-mean readout",
}


def pretrained_names() -> list[str]:
    """The names of the weights shipped with aekit that are installed."""
    return [name for name in PRETRAINED if weights_dir(name).is_dir()]


def inpainting_model_for(missing: Any) -> str:
    """The shipped inpainter suited to a mask (H, W), True where pixels are missing.

    ``inpaint-pixels`` when the holes are scattered pixels, ``inpaint`` when they are regions
    (boxes, strokes, scratches). The test: the share of missing pixels whose eight neighbours are
    all missing too. It is 0.4 % for 50 % random pixels and 17 % at 80 %; 88 % for a 32 x 32 box,
    about a third for 3-pixel strokes. Below 25 % the holes count as scattered.
    """
    missing = np.asarray(missing, dtype=bool)
    if missing.ndim != 2:
        raise AekitError(f"a mask of shape {missing.shape} is not (H, W)", "masks are (H, W)", "pass one channel")
    if not missing.any():
        return "inpaint"
    from scipy import ndimage

    inner = ndimage.binary_erosion(missing, structure=np.ones((3, 3), bool))  # all eight neighbours missing
    return "inpaint-pixels" if inner.sum() < 0.25 * missing.sum() else "inpaint"


def weights_dir(name: str) -> Path:
    """The folder of a shipped model (config.json + model.safetensors)."""
    return Path(str(resources.files("aekit") / "weights" / name))


def task_of(model: Autoencoder) -> str:
    """``denoise``, ``super-resolve``, ``inpaint``, ``colorize`` or ``deblock``, from the model's corruption."""
    name = getattr(model.corruption, "name", None)
    if name not in TASKS:
        raise AekitError(
            f"this model (family {model.family!r}) is not a restoration model",
            f"its corruption is {name!r}; restoration needs one of {', '.join(TASKS)}",
            "train one with aekit train --family denoise|super-resolve|inpaint|colorize|deblock",
        )
    return TASKS[name]


def as_unit_image(image: Any, what: str = "image") -> np.ndarray:
    """(H, W) or (H, W, C) float32 in [0, 1] from uint8, uint16 or float pixels."""
    array = np.asarray(image)
    if (
        array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[-1] not in (1, 2, 3, 4))
        or min(array.shape[:2]) < 1
    ):
        raise AekitError(f"{what} has shape {array.shape}", "expected (H, W) or (H, W, C) with C <= 4", "fix it")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise AekitError(f"{what} has dtype {array.dtype} or non-finite values", "", "use uint8, uint16 or floats")
    return array.astype(np.float32)


Box = tuple[int, int, int, int]  # (top, left, bottom, right) in pixels, bottom and right excluded
BlockFunction = Callable[[Box], torch.Tensor]  # an outer box -> its restored block (1, C, h, w)


def tile_boxes(height: int, width: int, tile: int = 512, overlap: int = 32, multiple: int = 1) -> list[tuple[Box, Box]]:
    """The tiles of a ``height`` x ``width`` image as (inner, outer) boxes: each ``tile`` x ``tile``
    inner block (the pixels a tile contributes) inside its outer block (the block plus ``overlap``
    pixels of context on each side, fewer at the image's edges). Corners sit on multiples of
    ``multiple``. A single tile when the image fits in tile + 2 overlap."""
    if height <= tile + 2 * overlap and width <= tile + 2 * overlap:
        return [((0, 0, height, width), (0, 0, height, width))]
    tile = max(multiple, tile // multiple * multiple)
    context = math.ceil(overlap / multiple) * multiple
    boxes = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            outer = (
                max(top - context, 0),
                max(left - context, 0),
                min(bottom + context, height),
                min(right + context, width),
            )
            boxes.append(((top, left, bottom, right), outer))
    return boxes


def tiled(
    network: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int = 512,
    overlap: int = 32,
    multiple: int = 1,
) -> torch.Tensor:
    """``network`` (B, C_in, H, W) -> (B, C_out, H, W) applied tile by tile (see :func:`tile_boxes`):
    each tile is computed from its block plus context and only the block is kept."""
    boxes = tile_boxes(*x.shape[-2:], tile, overlap, multiple)
    if len(boxes) == 1:
        return network(x)
    out: torch.Tensor | None = None
    for (top, left, bottom, right), (t0, l0, t1, l1) in boxes:
        block = network(x[..., t0:t1, l0:l1])  # (B, C_out, t1 - t0, l1 - l0)
        if out is None:
            out = block.new_empty((*block.shape[:2], *x.shape[-2:]))
        out[..., top:bottom, left:right] = block[..., top - t0 : bottom - t0, left - l0 : right - l0]
    assert out is not None
    return out


OUTPUT_TYPES = (np.float32, np.uint8, np.uint16)


class ImageRestorer:
    """A trained restoration model and a degradation: ``degrade`` an image, ``restore`` it.

    ``model``: a restoration :class:`Autoencoder` (``ImageRestorer.pretrained(name)`` or
    ``ImageRestorer.load(folder)`` for one's own). ``degradation``: what :meth:`degrade` applies
    (default: the model's corruption; a blind denoiser's default is sigma 25, an inpainter's is 50 %
    missing pixels). ``tile``/``overlap``: tiled inference in pixels of the network's input.
    ``precision``: ``fp32`` or ``bf16`` (autocast: about 2x as fast on CPUs with AVX512-BF16,
    3.8x with AMX, for about 0.01 dB of PSNR).
    ``channels_last``: run the convolutions in the NHWC layout, which oneDNN (and cuDNN) compute
    faster; the model's weights are converted in place.

    >>> restorer = ImageRestorer.pretrained("denoise")                  # doctest: +SKIP
    >>> noisy = restorer.degrade(clean, seed=0)                          # doctest: +SKIP
    >>> restored = restorer(noisy)                                       # doctest: +SKIP
    """

    def __init__(
        self,
        model: Autoencoder,
        degradation: Corruption | None = None,
        tile: int = 512,
        overlap: int = 32,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        channels_last: bool = True,
    ) -> None:
        self.task = task_of(model)
        if precision not in ("fp32", "bf16"):
            raise AekitError(f"unknown precision {precision!r}", "the choices are fp32, bf16", "pick one")
        if tile < 16 or overlap < 0:
            raise AekitError(f"tile {tile} / overlap {overlap}", "tiles need >= 16 pixels, overlap >= 0", "fix them")
        self.model = model.to(device).eval()
        self.channels_last = channels_last and to_channels_last(self.model)  # bench/RESULTS.md, "Image restoration"
        if not self.channels_last:
            self.model.to(memory_format=torch.contiguous_format)
        self.device = torch.device(device)
        self.degradation = degradation if degradation is not None else _default_degradation(model.corruption)
        self.tile, self.overlap, self.precision = int(tile), int(overlap), precision
        self.channels = int(model.data_shape[0])
        # a denoiser told the noise level through an input channel (FFDNet); the last level used
        self.level_map = isinstance(model.corruption, GaussianNoise) and model.corruption.level_map
        self.last_sigma: float | None = None
        self.scale = self.degradation.scale if isinstance(self.degradation, Bicubic) else 1
        trained = getattr(model.corruption, "scales", [self.scale])
        if self.scale not in trained:
            raise AekitError(
                f"this super-resolution model was trained for x{'/x'.join(map(str, trained))}, not x{self.scale}",
                "a model restores the detail of the shrink it learned",
                f"use a x{self.scale} model",
            )

    @classmethod
    def pretrained(cls, name: str, **options: Any) -> ImageRestorer:
        """One of the models shipped with aekit (see :data:`PRETRAINED`)."""
        if name not in pretrained_names():
            raise AekitError(
                f"no shipped model {name!r}",
                f"the shipped models are {', '.join(pretrained_names()) or 'none'}",
                "pick one, or load your own with ImageRestorer.load(folder)",
            )
        return cls(load_model(weights_dir(name)), **options)

    @classmethod
    def load(cls, directory: str | Path, **options: Any) -> ImageRestorer:
        """A model trained with ``aekit train --family denoise|super-resolve|inpaint|colorize|deblock``."""
        return cls(load_model(directory), **options)

    # -------------------------------------------------------------------------------------------- #

    def random_mask(self, height: int, width: int, seed: int = 0) -> np.ndarray:
        """A boolean (H, W) mask of the inpainting degradation, True where a pixel is missing."""
        if not isinstance(self.degradation, Inpainting):
            raise AekitError(f"a {self.task} model takes no mask", "masks are for inpainting", "drop the mask")
        keep = self.degradation.mask((1, height, width), torch.Generator().manual_seed(seed))
        return keep[0, 0].numpy() == 0

    def degrade(self, image: Any, seed: int = 0, mask: Any = None) -> np.ndarray:
        """The observation a restorer starts from: noisy, shrunk by the scale, with holes (pixels
        of ``mask`` or of a seeded random mask set to 0), or grey. Shape like ``image`` except for
        super-resolution (H // s, W // s) and colorization (H, W); JPEG-compressed for deblocking."""
        x = as_unit_image(image)
        tensor = _to_tensor(x)  # (1, C, H, W)
        generator = torch.Generator().manual_seed(seed)
        if isinstance(self.degradation, Inpainting):
            missing = self.random_mask(*x.shape[:2], seed=seed) if mask is None else self._mask(mask, x.shape[:2])
            return _to_image(tensor * torch.from_numpy(~missing).float(), x.ndim)
        if mask is not None:
            raise AekitError(f"a {self.task} model takes no mask", "masks are for inpainting", "drop the mask")
        if isinstance(self.degradation, Grayscale):  # what a user would give: a grey photo
            return _to_image(colour.grey_photo(tensor[:, :3], self.degradation.space), 2)
        return _to_image(self.degradation.observe(tensor, generator), x.ndim)

    @torch.no_grad()
    def restore(
        self,
        observed: Any,
        mask: Any = None,
        sigma: float | None = None,
        dtype: Any = np.float32,
        progress: bool = False,
    ) -> np.ndarray:
        """The restored image, float32 in [0, 1]: (H, W) or (H, W, C) like ``observed``, s times
        larger for super-resolution, (H, W, 3) for colorization. ``mask`` (inpainting, (H, W), True
        or nonzero where a pixel is missing) is required for inpainting; the known pixels come back
        unchanged. ``sigma``: the noise level in grey levels of 255 for a denoiser that takes the
        level as an input (``noise_map``); without it the level is estimated from the image
        (:func:`aekit.metrics.estimate_noise_sigma`). The level used is kept in ``last_sigma``.

        The image is computed tile by tile and written straight into the result, so memory beyond
        the input and the result stays bounded by the tile size; ``dtype`` uint8 or uint16 stores
        the result rounded to 8 or 16 bits (a quarter or half of float32's memory). ``progress``
        shows a bar over the tiles when restoring takes more than 2 seconds."""
        x = as_unit_image(observed, "observed image")
        if sigma is not None and not self.level_map:
            raise AekitError(
                f"a noise level for a {self.task} model without a level input",
                "only a denoiser trained with noise_map takes one",
                "drop the level, or use such a model",
            )
        if sigma is not None and not 0 <= sigma <= 255:
            raise AekitError(f"noise level {sigma}", "levels are grey levels of 255, in [0, 255]", "fix it")
        if (mask is None) == (self.task == "inpaint"):
            raise AekitError(
                f"{'no' if mask is None else 'a'} mask for a {self.task} model",
                "inpainting needs the mask of the missing pixels, the other tasks take none",
                "give the mask" if mask is None else "drop the mask",
            )
        dtype = np.dtype(dtype)
        if dtype not in [np.dtype(t) for t in OUTPUT_TYPES]:
            raise AekitError(f"output dtype {dtype}", "restored images are float32, uint8 or uint16", "pick one")
        alpha = None
        if x.ndim == 3 and x.shape[-1] in (2, 4):  # the alpha channel is passed through
            x, alpha = x[..., :-1], x[..., -1]
        tensor = _to_tensor(x)  # (1, C, H, W)
        scale = self.scale if self.task == "super-resolve" else 1
        channels = 3 if self.task == "colorize" else tensor.shape[1]
        out = np.empty((x.shape[0] * scale, x.shape[1] * scale, channels + (alpha is not None)), dtype)
        passes = self._passes(tensor, mask, sigma)  # (output channels, box -> (1, c, h, w) float)
        if alpha is not None:
            alpha_tensor = _to_tensor(alpha)
            passes.append((slice(channels, channels + 1), self._alpha_block(alpha_tensor, scale)))
        multiple = math.lcm(getattr(self.model.encoder, "downscale", 1), scale)
        boxes = tile_boxes(out.shape[0], out.shape[1], self.tile, self.overlap, multiple)
        total = len(boxes) * len(passes)
        bar = tqdm(total=total, desc=f"{self.task}: tiles", unit="tile", delay=2, disable=not progress or total < 2)
        for where, block_of in passes:
            for inner, outer in boxes:
                _store(out, where, inner, outer, block_of(outer))
                bar.update()
        bar.close()
        if alpha is None and x.ndim == 2 and self.task != "colorize":
            return out[..., 0]
        return out

    __call__ = restore

    # -------------------------------------------------------------------------------------------- #

    def _mask(self, mask: Any, size: tuple[int, int]) -> np.ndarray:
        missing = np.asarray(mask)
        if missing.ndim == 3:
            missing = missing[..., :3].max(-1)  # a colour mask image: any channel set
        if missing.shape != tuple(size):
            raise AekitError(
                f"the mask is {missing.shape[1]} x {missing.shape[0]} pixels and the image {size[1]} x {size[0]}",
                "a mask marks the missing pixels of its image",
                "give a mask of the image's size",
            )
        return missing.astype(bool)

    def _network(self, block: torch.Tensor) -> torch.Tensor:
        """The model on one prepared input block (B, C_in, h, w) -> (B, C_out, h, w), float32 on the CPU."""
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            block = block.to(self.device).contiguous(memory_format=layout)
            return self.model.reconstruct(block).float().cpu()

    def _per_channel(self, x: torch.Tensor, make_input: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """A block (1, C, h, w) through the model: a grey model restores the channels of a colour image
        one by one; a colour model given a grey image sees it replicated and returns the mean of its
        channels."""
        c = x.shape[1]
        if c == self.channels:
            return self._network(make_input(x))
        if self.channels == 1:
            return torch.cat([self._network(make_input(x[:, i : i + 1])) for i in range(c)], 1)
        if c == 1:
            return self._network(make_input(x.expand(-1, self.channels, -1, -1))).mean(1, keepdim=True)
        raise AekitError(f"a {c}-channel image", f"this model restores {self.channels}-channel images", "convert it")

    def _passes(
        self, x: torch.Tensor, mask: Any, sigma: float | None
    ) -> list[tuple[slice, Callable[[Box], torch.Tensor]]]:
        """How to compute the restored image block by block: (output channels, outer box in output
        pixels -> the restored block (1, c, h, w), float)."""
        channels = slice(0, 3 if self.task == "colorize" else x.shape[1])

        def crop(tensor: torch.Tensor, box: Box) -> torch.Tensor:
            return tensor[..., box[0] : box[2], box[1] : box[3]]

        if self.task == "super-resolve":
            return [(channels, lambda box: self._super_resolve_block(x, box))]
        if self.task == "colorize":
            # a grey photo holds gamma-encoded grey levels: as R = G = B, its lightness in the model's space
            # (Y for YCbCr is the grey itself; Lab's L* is not)
            grey = colour.lightness(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x, self.degradation.space)
            return [(channels, lambda box: self._network(crop(grey, box)))]
        if self.task == "inpaint":  # the hole fill looks far (coarse scales): prepared on the whole image
            keep = torch.from_numpy(~self._mask(mask, tuple(x.shape[-2:]))).float()[None, None]
            fill = self.model.corruption.fill  # pre-fill the holes as in training
            if x.shape[1] != self.channels and self.channels != 1:
                raise AekitError(f"a {x.shape[1]}-channel image", f"this model restores {self.channels}", "convert it")
            groups = [x] if x.shape[1] == self.channels else [x[:, i : i + 1] for i in range(x.shape[1])]
            found = []
            for i, group in enumerate(groups):
                prepared = with_mask(group * keep, keep, fill)  # (1, C + 1, H, W)
                where = channels if len(groups) == 1 else slice(i, i + 1)

                def block(box: Box, group=group, prepared=prepared) -> torch.Tensor:
                    known = crop(keep, box) > 0  # the known pixels stay exactly as given
                    return torch.where(known, crop(group, box), self._network(crop(prepared, box)))

                found.append((where, block))
            return found
        if self.level_map:
            from ..metrics import estimate_noise_sigma

            self.last_sigma = float(sigma) if sigma is not None else 255 * estimate_noise_sigma(_to_image(x, 3))
            level = self.last_sigma / 255
            return [(channels, lambda box: self._per_channel(crop(x, box), lambda c: with_level_map(c, level)))]
        return [(channels, lambda box: self._per_channel(crop(x, box), lambda c: c))]

    def _super_resolve_block(self, small: torch.Tensor, box: Box) -> torch.Tensor:
        """The restored block ``box`` (output pixels, corners on multiples of the scale) of the
        enlarged image, from the small image's pixels under it plus 2 on each side (bicubic's reach)."""
        s, (h, w) = self.scale, small.shape[-2:]
        t0, l0, t1, l1 = box
        a0, b0 = max(t0 // s - 2, 0), max(l0 // s - 2, 0)
        a1, b1 = min(-(-t1 // s) + 2, h), min(-(-l1 // s) + 2, w)
        enlarged = self.degradation.prepare(small[..., a0:a1, b0:b1], scale=s)  # (1, C, s (a1 - a0), ...)
        enlarged = enlarged[..., t0 - a0 * s : t1 - a0 * s, l0 - b0 * s : l1 - b0 * s]
        if self.channels == 1 and enlarged.shape[1] == 3:  # the luminance through the model, chroma bicubic
            ycc = colour.rgb_to_ycbcr(enlarged)
            return colour.ycbcr_to_rgb(torch.cat([self._network(ycc[:, :1]), ycc[:, 1:]], 1))
        return self._per_channel(enlarged, lambda channels: channels)

    def _alpha_block(self, alpha: torch.Tensor, scale: int) -> Callable[[Box], torch.Tensor]:
        """Blocks of the alpha channel (1, 1, H, W): as given, or enlarged bicubically."""
        if scale == 1:
            return lambda box: alpha[..., box[0] : box[2], box[1] : box[3]]
        s, (h, w) = scale, alpha.shape[-2:]

        def block(box: Box) -> torch.Tensor:
            t0, l0, t1, l1 = box
            a0, b0 = max(t0 // s - 2, 0), max(l0 // s - 2, 0)
            a1, b1 = min(-(-t1 // s) + 2, h), min(-(-l1 // s) + 2, w)
            enlarged = self.degradation.prepare(alpha[..., a0:a1, b0:b1], scale=s)
            return enlarged[..., t0 - a0 * s : t1 - a0 * s, l0 - b0 * s : l1 - b0 * s]

        return block


def _store(out: np.ndarray, channels: slice, inner: Box, outer: Box, block: torch.Tensor) -> None:
    """Write the inner part of a restored block (1, c, h, w) (clamped to [0, 1], rounded for integer
    outputs) into ``out`` (H, W, C)."""
    top, left, bottom, right = inner
    t0, l0 = outer[:2]
    values = block[0, :, top - t0 : bottom - t0, left - l0 : right - l0].clamp(0, 1).permute(1, 2, 0).numpy()
    if out.dtype != np.float32:
        values = np.round(values * np.iinfo(out.dtype).max).astype(out.dtype)
    out[top:bottom, left:right, channels] = values


def _default_degradation(corruption: Corruption | None) -> Corruption:
    """The model's own corruption, with a fixed level where it was trained on a range."""
    if isinstance(corruption, GaussianNoise) and corruption.max_std is not None:
        return GaussianNoise(std=25 / 255)
    if isinstance(corruption, Inpainting) and (corruption.kind != "pixels" or corruption.rate[0] != corruption.rate[1]):
        return Inpainting("pixels", rate=0.5)
    if isinstance(corruption, Bicubic) and len(corruption.scales) > 1:
        return Bicubic(corruption.scales[0])
    if isinstance(corruption, JPEG) and corruption.quality[0] != corruption.quality[1]:
        return JPEG(min(max(20, corruption.quality[0]), corruption.quality[1]))
    assert corruption is not None
    return corruption


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) -> (1, C, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(np.atleast_3d(image).transpose(2, 0, 1)))[None]


def _to_image(tensor: torch.Tensor, ndim: int) -> np.ndarray:
    """(1, C, H, W) -> (H, W) when ``ndim`` is 2 and C is 1, else (H, W, C); float32."""
    image = tensor[0].permute(1, 2, 0).numpy().astype(np.float32)
    return image[..., 0] if ndim == 2 and image.shape[-1] == 1 else image
