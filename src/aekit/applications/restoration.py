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
    "denoise-sigma25": "grey, Gaussian noise of sigma 25 (of 255)",
    "denoise-blind": "grey, Gaussian noise of any sigma in [0, 50]",
    "super-resolve-x2": "grey / luminance, bicubic shrink by 2",
    "super-resolve-x3": "grey / luminance, bicubic shrink by 3",
    "super-resolve-x4": "grey / luminance, bicubic shrink by 4",
    "inpaint": "grey, holes of any kind (pixels, boxes, strokes) with the mask as input",
    "inpaint-pixels": "grey, scattered missing pixels (30-70 %) with the mask as input",
    "colorize": "RGB from the luminance (YCbCr chroma)",
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


def tiled(
    network: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int = 512,
    overlap: int = 32,
    multiple: int = 1,
) -> torch.Tensor:
    """``network`` (B, C_in, H, W) -> (B, C_out, H, W) applied tile by tile.

    Each ``tile`` x ``tile`` block is computed from the block plus ``overlap`` pixels of context on
    each side (fewer at the image's edges) and only the block is kept. ``multiple``: tile corners
    sit on multiples of it (a network that folds s x s pixels into channels sees the same grid).
    """
    height, width = x.shape[-2:]
    if height <= tile + 2 * overlap and width <= tile + 2 * overlap:
        return network(x)
    tile = max(multiple, tile // multiple * multiple)
    context = math.ceil(overlap / multiple) * multiple
    out: torch.Tensor | None = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            t0, l0 = max(top - context, 0), max(left - context, 0)
            t1, l1 = min(top + tile + context, height), min(left + tile + context, width)
            block = network(x[..., t0:t1, l0:l1])  # (B, C_out, t1 - t0, l1 - l0)
            if out is None:
                out = block.new_empty((*block.shape[:2], height, width))
            bottom, right = min(top + tile, height), min(left + tile, width)
            out[..., top:bottom, left:right] = block[..., top - t0 : bottom - t0, left - l0 : right - l0]
    assert out is not None
    return out


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

    >>> restorer = ImageRestorer.pretrained("denoise-sigma25")          # doctest: +SKIP
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
        observed = self.degradation.observe(tensor, generator)
        return _to_image(observed, 2 if isinstance(self.degradation, Grayscale) else x.ndim)

    @torch.no_grad()
    def restore(self, observed: Any, mask: Any = None, sigma: float | None = None) -> np.ndarray:
        """The restored image, float32 in [0, 1]: (H, W) or (H, W, C) like ``observed``, s times
        larger for super-resolution, (H, W, 3) for colorization. ``mask`` (inpainting, (H, W), True
        or nonzero where a pixel is missing) is required for inpainting; the known pixels come back
        unchanged. ``sigma``: the noise level in grey levels of 255 for a denoiser that takes the
        level as an input (``noise_map``); without it the level is estimated from the image
        (:func:`aekit.metrics.estimate_noise_sigma`). The level used is kept in ``last_sigma``."""
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
        alpha = None
        if x.ndim == 3 and x.shape[-1] in (2, 4):  # the alpha channel is passed through
            x, alpha = x[..., :-1], x[..., -1]
        tensor = _to_tensor(x)  # (1, C, H, W)
        if self.task == "colorize":
            grey = tensor if tensor.shape[1] == 1 else colour.lightness(tensor, self.degradation.space)
            result = self._run(grey)
        elif self.task == "super-resolve":
            result = self._super_resolve(tensor)
        elif self.task == "inpaint":
            keep = torch.from_numpy(~self._mask(mask, x.shape[:2])).float()[None, None]
            fill = self.model.corruption.fill  # pre-fill the holes as in training
            result = self._per_channel(tensor, lambda channels: with_mask(channels * keep, keep, fill))
            result = torch.where(keep > 0, tensor, result)  # the known pixels stay exactly as given
        elif self.level_map:
            from ..metrics import estimate_noise_sigma

            self.last_sigma = float(sigma) if sigma is not None else 255 * estimate_noise_sigma(x)
            level = self.last_sigma / 255
            result = self._per_channel(tensor, lambda channels: with_level_map(channels, level))
        else:
            result = self._per_channel(tensor, lambda channels: channels)
        restored = _to_image(result.clamp(0, 1), 3 if self.task == "colorize" else x.ndim)
        if alpha is not None:
            if self.scale > 1:
                alpha = _to_image(self.degradation.prepare(_to_tensor(alpha), scale=self.scale).clamp(0, 1), 2)
            restored = np.concatenate([np.atleast_3d(restored), alpha[..., None]], -1)
        return restored

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

    def _run(self, network_input: torch.Tensor) -> torch.Tensor:
        """The model on its prepared input (B, C_in, H, W), tile by tile."""
        multiple = getattr(self.model.encoder, "downscale", 1)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

        layout = torch.channels_last if self.channels_last else torch.contiguous_format

        def network(block: torch.Tensor) -> torch.Tensor:
            with autocast:
                block = block.to(self.device).contiguous(memory_format=layout)
                return self.model.reconstruct(block).float().cpu()

        return tiled(network, network_input, self.tile, self.overlap, multiple)

    def _per_channel(self, x: torch.Tensor, make_input: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """A grey model restores the channels of a colour image one by one; a colour model given a
        grey image sees it replicated and returns the mean of its channels."""
        c = x.shape[1]
        if c == self.channels:
            return self._run(make_input(x))
        if self.channels == 1:
            return torch.cat([self._run(make_input(x[:, i : i + 1])) for i in range(c)], 1)
        if c == 1:
            return self._run(make_input(x.expand(-1, self.channels, -1, -1))).mean(1, keepdim=True)
        raise AekitError(f"a {c}-channel image", f"this model restores {self.channels}-channel images", "convert it")

    def _super_resolve(self, small: torch.Tensor) -> torch.Tensor:
        enlarged = self.degradation.prepare(small, scale=self.scale)  # (1, C, sH, sW) bicubic
        if enlarged.shape[1] == self.channels:
            return self._run(enlarged)
        if self.channels == 1 and enlarged.shape[1] == 3:  # the luminance through the model, chroma bicubic
            ycc = colour.rgb_to_ycbcr(enlarged)
            return colour.ycbcr_to_rgb(torch.cat([self._run(ycc[:, :1]), ycc[:, 1:]], 1))
        return self._per_channel(enlarged, lambda channels: channels)


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
