"""Figures. Every function returns a ``matplotlib.figure.Figure``; callers decide where to save it.

Figures are built with the object API (no pyplot state), so they work in scripts, servers and
notebooks alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

STYLE = {"figure.dpi": 100, "font.size": 9}


def as_images(x: np.ndarray) -> np.ndarray | None:
    """(N, H, W) grey or (N, H, W, 3) colour images from (N, C, H, W) or (N, D) with D square; else None."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1] in (1, 3):
        images = np.moveaxis(x, 1, -1)
        return images[..., 0] if x.shape[1] == 1 else images
    if x.ndim == 3:
        return x
    flat = x.reshape(len(x), -1)
    side = math.isqrt(flat.shape[1])
    if side * side == flat.shape[1]:
        return flat.reshape(len(x), side, side)
    return None


def loss_curve(history: Sequence[dict[str, Any]], title: str = "Training") -> Figure:
    """Training and validation loss per epoch (nats per example), one panel per loss term.

    A model without penalties has one term (its NLL), shown once.
    """
    terms = list(history[0]["train"])
    if terms == ["loss", "nll"]:
        terms = ["loss"]
    fig = Figure(figsize=(3.2 * len(terms), 2.8), layout="constrained")
    axes = fig.subplots(1, len(terms), squeeze=False)[0]
    epochs = [record["epoch"] for record in history]
    for ax, term in zip(axes, terms, strict=True):
        ax.plot(epochs, [r["train"][term] for r in history], marker="o", ms=3, label="train")
        if history[0].get("val"):
            ax.plot(epochs, [r["val"][term] for r in history], marker="o", ms=3, label="validation")
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("nats per example")
    axes[0].legend()
    fig.suptitle(title)
    return fig


def image_rows(rows: Sequence[np.ndarray], labels: Sequence[str], title: str = "") -> Figure:
    """Rows of images (each (N, ...) like the data) under one another, each row labelled."""
    n = len(rows[0])
    fig = Figure(figsize=(0.9 * n + 0.8, 0.95 * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (row, label) in enumerate(zip(rows, labels, strict=True)):
        images = as_images(row)
        for c in range(n):
            ax = axes[r, c]
            if images is not None:
                ax.imshow(np.clip(images[c], 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:  # not an image: show the vector as a strip
                ax.imshow(np.asarray(row[c]).reshape(1, -1), aspect="auto", cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    return fig


def reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray, title: str = "") -> Figure:
    """Originals above their reconstructions."""
    return image_rows([originals, reconstructions], ["original", "reconstruction"], title)


def restoration_panels(
    degraded: np.ndarray,
    restored: np.ndarray,
    original: np.ndarray | None = None,
    title: str = "",
    labels: Sequence[str] = ("degraded", "restored", "original"),
) -> Figure:
    """Degraded / restored / original images side by side, (H, W) grey or (H, W, 3) colour in [0, 1].

    With an original, each other panel of the original's shape is captioned with its PSNR in dB.
    Images of different sizes (a super-resolution input) are shown at the same displayed size; an
    alpha channel is not shown.
    """
    from .metrics import psnr

    def displayable(image: np.ndarray) -> np.ndarray:
        image = np.clip(np.asarray(image, np.float32), 0, 1)
        if image.ndim == 3 and image.shape[-1] in (2, 4):
            image = image[..., :-1]
        return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image

    panels = [displayable(p) for p in (degraded, restored, original) if p is not None]
    fig = Figure(figsize=(3.3 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for index, (ax, image, label) in enumerate(zip(axes, panels, labels, strict=False)):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        scored = original is not None and index < 2 and image.shape == panels[-1].shape
        ax.set_title(f"{label}  {psnr(panels[-1], image):.2f} dB" if scored else label)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig
