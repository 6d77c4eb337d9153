"""Training patches for image restoration: random crops of a folder of images of any sizes.

Crops are drawn with numpy in one vectorised gather per image, then flipped and rotated (the eight
symmetries of the square, each equally likely) in one operation per symmetry; the result is one
array ready for the in-memory trainer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AekitError
from .files import IMAGE_SUFFIXES, read_image

MODES = ("grey", "rgb")


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16 (or float) pixels -> float32 in [0, 1], same shape."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535
    return image.astype(np.float32)


def read_images(source: str | Path, mode: str = "grey") -> list[np.ndarray]:
    """Every image of a folder (or one file) as float32 (C, H, W) in [0, 1].

    ``mode``: ``grey`` turns colour images into BT.601 luma (C = 1); ``rgb`` keeps colour images
    (C = 3) and skips grey ones, which hold no colour to learn. An alpha channel is dropped.
    """
    if mode not in MODES:
        raise AekitError(f"unknown image mode {mode!r}", f"the choices are {', '.join(MODES)}", "pick one")
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        files = [path]
    else:
        raise AekitError(f"images {source!r} not found", "no such file or folder", "check the path")
    images = []
    for file in files:
        image = to_unit_float(read_image(file))
        image = image[..., None] if image.ndim == 2 else image[..., :3] if image.shape[-1] == 4 else image
        if image.shape[-1] == 2:  # grey + alpha
            image = image[..., :1]
        if mode == "grey" and image.shape[-1] == 3:
            image = image @ np.array([0.299, 0.587, 0.114], np.float32)[:, None]
        if mode == "rgb" and image.shape[-1] != 3:
            continue
        images.append(np.ascontiguousarray(np.moveaxis(image, -1, 0)))
    if not images:
        raise AekitError(f"no {mode} images in {source}", f"looked for {', '.join(sorted(IMAGE_SUFFIXES))}", "check it")
    return images


def extract_patches(images: list[np.ndarray], size: int, count: int, seed: int = 0, augment: bool = True) -> np.ndarray:
    """``count`` random ``size`` x ``size`` crops, (count, C, size, size) float32.

    Each image contributes in proportion to the number of crop positions it has, so every position
    of the collection is equally likely; ``augment`` applies a random flip/rotation to each crop.
    """
    if size < 1 or count < 1:
        raise AekitError(f"patch size {size} / count {count}", "both must be positive", "fix them")
    positions = np.array([max(im.shape[1] - size + 1, 0) * max(im.shape[2] - size + 1, 0) for im in images], float)
    if positions.sum() == 0:
        raise AekitError(f"no image is {size} x {size} pixels or larger", "crops must fit", "use a smaller size")
    rng = np.random.default_rng(seed)
    per_image = rng.multinomial(count, positions / positions.sum())
    patches = np.empty((count, images[0].shape[0], size, size), np.float32)
    filled = 0
    for image, n in zip(images, per_image, strict=True):
        if n == 0:
            continue
        tops = rng.integers(0, image.shape[1] - size + 1, n)
        lefts = rng.integers(0, image.shape[2] - size + 1, n)
        windows = np.lib.stride_tricks.sliding_window_view(image, (size, size), axis=(1, 2))  # (C, H', W', s, s)
        patches[filled : filled + n] = np.moveaxis(windows[:, tops, lefts], 0, 1)  # (n, C, s, s)
        filled += n
    patches = patches[rng.permutation(count)]
    if augment:
        symmetry = rng.integers(0, 8, count)
        for code in range(1, 8):
            chosen = symmetry == code
            turned = np.rot90(patches[chosen], code % 4, axes=(2, 3))
            patches[chosen] = turned[..., ::-1] if code >= 4 else turned
    return patches


def load_patches(
    source: str | Path, size: int, count: int, mode: str = "grey", seed: int = 0, augment: bool = True
) -> np.ndarray:
    """:func:`read_images` then :func:`extract_patches`: (count, C, size, size) float32 in [0, 1]."""
    return extract_patches(read_images(source, mode), size, count, seed, augment)
