"""User data from files: .npy, .npz, .csv and folders of PNG/JPEG images."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import AekitError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def load_npy(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        return np.load(path, allow_pickle=False), None
    except ValueError as error:
        raise AekitError(f"{path} cannot be read as a numeric .npy array", str(error), "save a numeric array") from None
    except (OSError, EOFError) as error:
        raise AekitError(f"{path} is not a readable .npy file", str(error), "check the file") from None


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Features under ``x``/``X``/``data`` (or the only array), labels under ``y``/``labels``.

    A file written by ``scipy.sparse.save_npz`` (keys ``data``, ``indices``, ``indptr``, ``shape``,
    ``format``) is read as a sparse matrix; labels may sit next to it under ``y`` or ``labels``.
    """
    try:
        archive = np.load(path, allow_pickle=False)
        keys = list(archive.keys())
        if {"data", "indices", "indptr", "shape", "format"} <= set(keys):
            return _sparse_from_archive(archive, path), next((archive[k] for k in ("y", "labels") if k in keys), None)
        feature_key = next((k for k in ("x", "X", "data", "images") if k in keys), keys[0] if len(keys) == 1 else None)
        if feature_key is None:
            raise AekitError(
                f"{path} holds arrays {keys} and none is named x, X, data or images",
                "aekit cannot tell which are the features",
                "save the features as 'x' (and labels as 'y')",
            )
        label_key = next((k for k in ("y", "labels", "targets") if k in keys), None)
        return archive[feature_key], (archive[label_key] if label_key else None)
    except ValueError as error:
        if isinstance(error, AekitError):
            raise
        raise AekitError(f"{path} cannot be read as numeric arrays", str(error), "save numeric arrays") from None
    except (OSError, EOFError) as error:
        raise AekitError(f"{path} is not a readable .npz file", str(error), "check the file") from None


def _sparse_from_archive(archive, path: Path):
    import scipy.sparse as sp

    kind = archive["format"].item()
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    makers = {"csr": sp.csr_matrix, "csc": sp.csc_matrix}
    if kind not in makers:
        raise AekitError(f"{path} holds a sparse matrix in {kind!r} format", "aekit reads csr and csc", "save as csr")
    shape = tuple(int(v) for v in archive["shape"])
    return makers[kind]((archive["data"], archive["indices"], archive["indptr"]), shape=shape).tocsr()


def load_csv(path: Path, label_column: str | int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A numeric table; a first row that is not numeric is taken as the header."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if not rows:
        raise AekitError(f"{path} is empty", "a CSV needs at least one row of numbers", "check the file")
    header = None
    if not _is_numeric_row(rows[0]):
        header, rows = rows[0], rows[1:]
    label_index = None
    if label_column is not None:
        if isinstance(label_column, int) or str(label_column).lstrip("-").isdigit():
            label_index = int(label_column)
        elif header and label_column in header:
            label_index = header.index(label_column)
        else:
            raise AekitError(f"no column {label_column!r} in {path}", f"the header is {header}", "name a column")
    values = []
    for line, row in enumerate(rows, start=2 if header else 1):
        try:
            values.append([float(cell) for cell in row])
        except ValueError:
            bad = next(cell for cell in row if not _is_number(cell))
            raise AekitError(
                f"{path} line {line} holds the non-numeric value {bad!r}",
                "every feature must be a number",
                "clean the file or drop the column",
            ) from None
    widths = {len(v) for v in values}
    if len(widths) > 1:
        raise AekitError(f"{path} has rows of different lengths {sorted(widths)}", "a table is rectangular", "fix it")
    table = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if label_index is None:
        return table, None
    labels = table[:, label_index]
    return np.delete(table, label_index, axis=1), labels


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _is_numeric_row(row: list[str]) -> bool:
    return all(_is_number(cell) for cell in row)


def read_image(path: Path) -> np.ndarray:
    """One image as uint8/uint16 (H, W) or (H, W, C); a damaged file is a clear error.

    16-bit colour PNGs (which Pillow reduces to 8 bits) are read with pypng at full depth.
    """
    from PIL import Image, UnidentifiedImageError

    if _is_16_bit_colour_png(path):
        return _read_png_16(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("P", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(image).astype(np.uint16)
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise AekitError(f"cannot read image {path}", str(error), "check that the file is a complete image") from None


def _is_16_bit_colour_png(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            header = handle.read(26)
    except OSError:
        return False
    # signature, IHDR length and type, width, height, then bit depth (byte 24) and colour type (25)
    return header[:8] == b"\x89PNG\r\n\x1a\n" and len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6)


def _read_png_16(path: Path) -> np.ndarray:
    import png

    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        image = np.vstack([np.asarray(row, np.uint16) for row in rows])
    except (png.Error, OSError, ValueError, EOFError) as error:
        raise AekitError(f"cannot read image {path}", str(error), "check that the file is a complete image") from None
    return image.reshape(height, width, info["planes"])


def load_image_folder(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Every image in a folder, or in its sub-folders (one per class, giving labels).

    Returns (N, C, H, W) uint8/uint16 images, labels or None, class names or None. All images must
    have the same size and number of channels.
    """
    subfolders = sorted(p for p in path.iterdir() if p.is_dir())
    if subfolders:
        files, labels = [], []
        for label, folder in enumerate(subfolders):
            found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            files += found
            labels += [label] * len(found)
        classes: list[str] | None = [p.name for p in subfolders]
    else:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        labels, classes = [], None
    if not files:
        raise AekitError(f"no images in {path}", f"looked for {', '.join(sorted(IMAGE_SUFFIXES))}", "check the folder")
    images = []
    for file in files:
        image = read_image(file)
        image = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)  # (C, H, W)
        if images and image.shape != images[0].shape:
            raise AekitError(
                f"{file} has shape {image.shape}, {files[0]} has {images[0].shape}",
                "all images of a dataset must have the same size and channels",
                "resize or convert them first",
            )
        images.append(image)
    return np.stack(images), (np.asarray(labels) if labels else None), classes
