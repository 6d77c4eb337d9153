"""Datasets: the embedded default, MNIST-style idx files, arrays, CSV tables and image folders.

:func:`load_dataset` returns a :class:`Dataset` whose ``x`` is float32 (N, *data_shape) scaled to
[0, 1] by default, ready for training; labels are kept when the source has them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AekitError
from .files import load_csv, load_image_folder, load_npy, load_npz, read_image
from .idx import CLASS_NAMES, DATASETS, load_embedded, load_idx

NAMED = ("embedded", "mnist", "fashion-mnist")
SCALES = ("auto", "none", "minmax")
BINARIZE = ("none", "threshold", "static")


@dataclass
class Dataset:
    """Examples ``x`` (N, *data_shape) float32, optional integer ``labels`` (N,), and where they came from.

    ``x`` is a scipy sparse CSR matrix (N, D) when the source is one (TF-IDF vectors saved with
    ``scipy.sparse.save_npz``); training and encoding densify it one batch at a time.
    """

    x: np.ndarray
    labels: np.ndarray | None = None
    name: str = ""
    class_names: list[str] | None = field(default=None)
    scaling: str = ""  # what loading did to the values, in words (e.g. "uint8 divided by 255")

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]  # also for scipy sparse matrices, whose len() is ambiguous

    def subset(self, index: np.ndarray) -> Dataset:
        labels = None if self.labels is None else self.labels[index]
        return Dataset(self.x[index], labels, self.name, self.class_names, self.scaling)

    def split(self, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
        """A seeded random split: (the rest, ``fraction`` of the examples)."""
        order = np.random.default_rng(seed).permutation(len(self))
        n_held = round(fraction * len(self))
        return self.subset(np.sort(order[n_held:])), self.subset(np.sort(order[:n_held]))


def load_dataset(
    source: str | Path,
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = True,
    scale: str = "auto",
    binarize: str = "none",
    seed: int = 0,
    label_column: str | int | None = None,
) -> Dataset:
    """Load a named dataset (``embedded``, ``mnist``, ``fashion-mnist``) or a file/folder of data.

    A folder holds images, or ``.npy`` shards (read whole, in name order: collected activations).
    ``split``: ``train`` or ``test`` for named datasets. ``scale``: ``auto`` divides integer data by
    its type's maximum (255 for 8-bit) and leaves floats alone, ``minmax`` maps the whole dataset to
    [0, 1], ``none`` keeps values. ``binarize``: ``threshold`` (x > 0.5), ``static`` (one seeded
    Bernoulli draw, fixed for the whole run); dynamic binarisation is a training option.
    """
    if scale not in SCALES:
        raise AekitError(f"unknown scale {scale!r}", f"the choices are {', '.join(SCALES)}", "pick one")
    if binarize not in BINARIZE:
        raise AekitError(f"unknown binarize {binarize!r}", f"the choices are {', '.join(BINARIZE)}", "pick one")
    raw, labels, name, classes = _load_raw(source, split, data_dir, download, label_column)
    x, scaling = _sparse_to_float(raw, scale, name) if hasattr(raw, "tocsr") else _to_float(raw, scale, name)
    if binarize != "none" and hasattr(x, "tocsr"):
        raise AekitError(f"{name} is sparse", "binarising is for pixel data", "drop --binarize")
    if binarize == "threshold":
        x = (x > 0.5).astype(np.float32)
    elif binarize == "static":
        x = (np.random.default_rng(seed).random(x.shape, dtype=np.float32) < x).astype(np.float32)
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != x.shape[0]:
            raise AekitError(
                f"{name}: {len(labels)} labels for {x.shape[0]} examples", "they must match", "fix the file"
            )
    return Dataset(x, labels, name, classes, scaling)


def _load_raw(source, split, data_dir, download, label_column):
    text = str(source)
    if text in NAMED:
        if split not in ("train", "test"):
            raise AekitError(f"unknown split {split!r}", "the splits are train and test", "pick one")
        if text == "embedded":
            if split != "test":
                raise AekitError(
                    "the embedded dataset has only a test split",
                    "it is the 10 000-image Fashion-MNIST test set shipped with aekit",
                    "use --split test, or --data fashion-mnist for the training set",
                )
            images, labels = load_embedded()
            return images[:, None], labels, "embedded (Fashion-MNIST test set)", CLASS_NAMES["fashion-mnist"]
        images = load_idx(text, f"{split}-images", data_dir, download)
        labels = load_idx(text, f"{split}-labels", data_dir, download)
        return images[:, None], labels, f"{text} ({split})", CLASS_NAMES[text]
    path = Path(source)
    if not path.exists():
        raise AekitError(
            f"data {text!r} not found",
            f"it is neither a file or folder nor a dataset name ({', '.join(NAMED)})",
            "check the path or the name",
        )
    if path.is_dir():
        if any(path.glob("*.npy")):  # a folder of .npy shards (aekit sae collect writes one), read whole
            from .streaming import ArrayFile

            shards = ArrayFile(path, scale="none")
            return shards.read_raw(0, len(shards)), None, str(path), None
        images, labels, classes = load_image_folder(path)
        return images, labels, str(path), classes
    suffix = path.suffix.lower()
    loaders = {".npy": load_npy, ".npz": load_npz, ".csv": lambda p: load_csv(p, label_column)}
    if suffix in loaders:
        array, labels = loaders[suffix](path)
        return array, labels, str(path), None
    if suffix in {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}:
        image = read_image(path)
        image = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
        return image[None], None, str(path), None
    raise AekitError(
        f"unsupported data file {path.name}",
        "aekit reads .npy, .npz, .csv, images and folders of images",
        "convert the data to one of those",
    )


def _sparse_to_float(raw, scale: str, name: str):
    """A scipy sparse matrix as float32 CSR, scaled like dense data (``minmax`` keeps zeros at 0)."""
    if raw.ndim != 2 or raw.shape[0] == 0 or raw.shape[1] == 0:
        raise AekitError(f"{name} is empty or not a matrix (shape {raw.shape})", "there is nothing to learn from", "")
    integer = np.issubdtype(raw.dtype, np.integer)
    x = raw.tocsr().astype(np.float32)
    if not np.isfinite(x.data).all():
        raise AekitError(f"{name} contains NaN or infinite values", "they cannot be trained on", "clean them")
    if scale == "minmax" or (scale == "auto" and integer and x.data.size and x.data.min() >= 0 and x.max() <= 255):
        high = float(x.max())
        if x.data.size and x.data.min() < 0:
            raise AekitError(f"{name} has negative entries", "minmax scaling of sparse data keeps 0 at 0", "")
        x = x / high if high > 0 else x
        return x.tocsr(), f"{raw.dtype} divided by its maximum {high:g} (scale {scale})"
    return x.tocsr(), f"{raw.dtype} kept as it is (scale {scale})"


def _to_float(raw: np.ndarray, scale: str, name: str) -> tuple[np.ndarray, str]:
    """float32 values and what was done to them, in words."""
    array = np.asarray(raw)
    if np.iscomplexobj(array):
        raise AekitError(
            f"{name} holds complex numbers (dtype {array.dtype})",
            "casting them to real values would drop their imaginary parts",
            "pass the real and imaginary parts as separate features",
        )
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise AekitError(f"{name} is not numeric (dtype {array.dtype})", "features must be numbers", "convert it")
    if array.ndim < 2:
        raise AekitError(
            f"{name} has shape {array.shape}",
            "data need one row per example: (N, features) or (N, C, H, W)",
            "reshape it, e.g. x.reshape(-1, 1) for a single feature",
        )
    if len(array) == 0 or array[0].size == 0:
        raise AekitError(f"{name} is empty (shape {array.shape})", "there is nothing to learn from", "check the data")
    x = array.astype(np.float32)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise AekitError(f"{name} contains {bad} NaN or infinite values", "they cannot be trained on", "clean them")
    if scale == "auto" and np.issubdtype(array.dtype, np.integer):
        # 8- and 16-bit pixels map to [0, 1]; other integers only when they look like 8-bit pixels
        if array.dtype in (np.uint8, np.uint16):
            x /= float(np.iinfo(array.dtype).max)
            return x, f"{array.dtype} divided by {np.iinfo(array.dtype).max} (scale auto)"
        if x.min() >= 0 and x.max() <= 255:
            x /= 255.0
            return x, f"{array.dtype} in [0, 255] divided by 255 (scale auto)"
    elif scale == "minmax":
        low, high = float(x.min()), float(x.max())
        x = (x - low) / (high - low) if high > low else np.zeros_like(x)
        return x, f"{array.dtype} mapped from [{low:g}, {high:g}] to [0, 1] (scale minmax)"
    return x, f"{array.dtype} kept as it is, values in [{float(x.min()):g}, {float(x.max()):g}] (scale {scale})"


__all__ = [
    "BINARIZE",
    "DATASETS",
    "NAMED",
    "SCALES",
    "Dataset",
    "load_dataset",
    "load_embedded",
    "load_idx",
]
