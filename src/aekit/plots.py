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
from matplotlib.ticker import NullFormatter

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


def project_codes(codes: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """2-D points (N, 2) for codes (N, K), and the two axis labels.

    K = 2: the codes themselves. K > 2: their first two principal components (PCA of the codes,
    centred, via SVD), labelled with the share of the codes' variance each keeps. K = 1: the code
    against zero (the caller may spread the points vertically).
    """
    codes = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    if codes.shape[1] == 1:
        return np.column_stack([codes[:, 0], np.zeros(len(codes))]), ("z1", "")
    if codes.shape[1] == 2:
        return codes, ("z1", "z2")
    centred = codes - codes.mean(0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    share = singular**2 / max(float((singular**2).sum()), 1e-300)
    points = centred @ vt[:2].T  # (N, 2)
    return points, (f"PC1 of codes ({100 * share[0]:.0f} % var.)", f"PC2 of codes ({100 * share[1]:.0f} % var.)")


def latent_maps(
    panels: dict[str, np.ndarray],
    labels: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    title: str = "",
    seed: int = 0,
) -> Figure:
    """Side-by-side scatter plots of codes, one panel per entry of ``panels`` (title -> (N, K) codes),
    coloured by ``labels`` (N,) with one shared legend; codes wider than 2 are shown through the
    first two principal components of the codes (see :func:`project_codes`)."""
    if not panels:
        raise ValueError("latent_maps needs at least one panel of codes")
    sizes = {len(codes) for codes in panels.values()}
    if len(sizes) != 1 or (labels is not None and len(labels) not in sizes):
        raise ValueError(f"every panel and the labels must have the same number of points, got {sizes}")
    n = sizes.pop()
    classes = np.unique(labels) if labels is not None else np.array([0])
    colours = _class_colours(len(classes))
    fig = Figure(figsize=(3.6 * len(panels) + 1.6, 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    jitter = np.random.default_rng(seed).uniform(-0.4, 0.4, n)
    for ax, (name, codes) in zip(axes, panels.items(), strict=True):
        points, (xlabel, ylabel) = project_codes(codes)
        if not ylabel:  # one-dimensional codes: spread each class on its own row
            rows = np.searchsorted(classes, labels) if labels is not None else np.zeros(n)
            points = np.column_stack([points[:, 0], rows + jitter])
            ylabel = "class" if labels is not None else ""
        for index, cls in enumerate(classes):
            mask = labels == cls if labels is not None else np.ones(n, bool)
            label = _class_name(cls, class_names)
            ax.scatter(*points[mask].T, s=3, alpha=0.6, color=colours[index], label=label, rasterized=True)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if labels is not None:
        handles, names = axes[0].get_legend_handles_labels()
        legend = fig.legend(handles, names, loc="outside right center", markerscale=4, frameon=False)
        for handle in legend.legend_handles:
            handle.set_alpha(1)
    if title:
        fig.suptitle(title)
    return fig


def tile(images: np.ndarray, columns: int = 8, gap: int = 1) -> np.ndarray:
    """Images (N, H, W) or (N, H, W, 3) in [0, 1] as one mosaic with ``columns`` per row, white gaps."""
    images = np.clip(np.asarray(images, np.float32), 0, 1)
    n, h, w = images.shape[:3]
    rows = math.ceil(n / columns)
    mosaic = np.ones((rows * (h + gap) - gap, columns * (w + gap) - gap, *images.shape[3:]), np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = image
    return mosaic


def image_grids(groups: dict[str, np.ndarray], columns: int = 8, title: str = "") -> Figure:
    """One mosaic per group, side by side, each titled by its key (e.g. samples of several models)."""
    fig = Figure(figsize=(3.2 * len(groups), 3.4), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (label, images) in zip(axes, groups.items(), strict=True):
        shown = as_images(images)
        ax.imshow(tile(shown, columns), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def _class_name(value: Any, names: Sequence[str] | None) -> str:
    """``names[value]`` for an integer label with a name, else the label as text."""
    if names is not None and isinstance(value, (int, np.integer)) and 0 <= int(value) < len(names):
        return str(names[int(value)])
    return str(value)


def _class_colours(count: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20" if count <= 20 else "viridis"]
    if count <= 20:
        return [cmap(i) for i in range(count)]
    return [cmap(i / max(count - 1, 1)) for i in range(count)]


def labelled_images(images: np.ndarray, titles: Sequence[str], title: str = "") -> Figure:
    """One row of images, each with its own title (values in [0, 1])."""
    shown = as_images(images)
    fig = Figure(figsize=(1.1 * len(shown) + 0.4, 1.6), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, image, label in zip(axes, shown, titles, strict=True):
        ax.imshow(np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=7)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def code_scatter(
    groups: dict[str, np.ndarray],
    labels: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    title: str = "",
) -> Figure:
    """Codes (N, K >= 2) of each model, one row per model, one panel per pair of the first three
    units, coloured by class."""
    pairs = [(0, 1), (0, 2), (1, 2)] if min(c.shape[1] for c in groups.values()) >= 3 else [(0, 1)]
    fig = Figure(figsize=(3.0 * len(pairs) + 1.2, 2.8 * len(groups)), layout="constrained")
    axes = fig.subplots(len(groups), len(pairs), squeeze=False)
    for row, (label, codes) in enumerate(groups.items()):
        for col, (i, j) in enumerate(pairs):
            ax = axes[row, col]
            points = ax.scatter(codes[:, i], codes[:, j], c=labels, s=2, cmap="tab10", alpha=0.6, linewidths=0)
            ax.set_xlabel(f"unit {i}")
            ax.set_ylabel(f"unit {j}")
            ax.set_title(label if col == 0 else "")
    if labels is not None:
        ticks = np.unique(labels)
        bar = fig.colorbar(points, ax=axes, ticks=ticks, shrink=0.6)
        if class_names is not None:
            bar.ax.set_yticklabels([class_names[int(t)] for t in ticks], fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def tangent_rows(rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], title: str = "") -> Figure:
    """Per model: the input, its leading tangent directions as images (grey = unchanged, white =
    brighten, black = darken) and the singular values of the code's Jacobian.

    ``rows`` maps a label to (input ``data_shape``, tangent images (k, ...) in [0, 1], singular values).
    """
    k = max(len(images) for _, images, _ in rows.values())
    fig = Figure(figsize=(1.0 * (k + 1) + 2.6, 1.35 * len(rows) + 0.5), layout="constrained")
    grid = fig.add_gridspec(len(rows), k + 4)
    for r, (label, (point, images, singular_values)) in enumerate(rows.items()):
        shown = as_images(np.concatenate([np.asarray(point)[None], images]))
        for c, image in enumerate(shown):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("input" if c == 0 else f"tangent {c}", fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
        ax = fig.add_subplot(grid[r, k + 1 :])
        ax.semilogy(np.arange(1, len(singular_values) + 1), singular_values, marker="o", ms=2)
        ax.yaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels crowd a small panel
        ax.set_title("singular values" if r == 0 else "", fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def spectra(groups: dict[str, np.ndarray], title: str = "") -> Figure:
    """Singular values of the code's Jacobian, each divided by the largest, over many inputs: the
    median (line) and the 10-90 % band per model. ``groups`` maps a label to (N, M) spectra."""
    fig = Figure(figsize=(4.6, 3.2), layout="constrained")
    ax = fig.subplots()
    for label, values in groups.items():
        ratios = np.asarray(values) / np.asarray(values)[:, :1]
        index = np.arange(1, ratios.shape[1] + 1)
        low, median, high = np.percentile(ratios, [10, 50, 90], axis=0)
        ax.semilogy(index, median, label=label)
        ax.fill_between(index, low, high, alpha=0.25)
    ax.set_xlabel("singular value index")
    ax.set_ylabel("sigma_i / sigma_1")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


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


def chain_figure(
    states: np.ndarray, steps: Sequence[int], reference: np.ndarray | None = None, title: str = ""
) -> Figure:
    """A Markov chain's kept states ``states`` (T, C, *data_shape) at ``steps`` (T,).

    Images: on the left, up to 8 chains (rows) at up to 10 kept steps (columns) from first to last;
    on the right, the last state of every chain. Other data: the paths of up to 8 chains and the
    last states of all, in the plane of the data (2-D) or of its first two principal components,
    over ``reference`` examples (grey) when given."""
    states = np.asarray(states, np.float32)
    kept, chains = states.shape[:2]
    images = as_images(states[-1])
    if images is not None and states[0, 0].size >= 16:  # pictures, not points
        columns = np.unique(np.linspace(0, kept - 1, min(kept, 10)).round().astype(int))
        rows = min(chains, 8)
        fig = Figure(figsize=(0.8 * len(columns) + 3.6, 0.8 * rows + 0.9), layout="constrained")
        left, right = fig.subfigures(1, 2, width_ratios=[len(columns), 4.5])
        axes = left.subplots(rows, len(columns), squeeze=False)
        for c, t in enumerate(columns):
            shown = as_images(states[t, :rows])
            for r in range(rows):
                axes[r, c].imshow(np.clip(shown[r], 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
            axes[0, c].set_title(f"step {int(steps[t])}", fontsize=7)
        left.suptitle("chains over time")
        ax = right.subplots()
        ax.imshow(tile(images, min(8, math.ceil(math.sqrt(chains)))), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"last states of {chains} chains")
        ax.set_axis_off()
    else:
        flat = states.reshape(kept * chains, -1)
        pool = (
            flat
            if reference is None
            else np.concatenate([flat, np.asarray(reference, np.float32).reshape(len(reference), -1)])
        )
        points, labels = project_codes(pool)
        paths = points[: kept * chains].reshape(kept, chains, 2)
        fig = Figure(figsize=(5.2, 4.6), layout="constrained")
        ax = fig.subplots()
        if reference is not None:
            ax.scatter(*points[kept * chains :].T, s=2, color="0.75", label="data")
        for c in range(min(chains, 8)):
            ax.plot(*paths[:, c].T, lw=0.6, alpha=0.7)
        ax.scatter(*paths[-1].T, s=5, color="tab:red", label=f"last states of {chains} chains")
        labels = [label.replace("codes", "data").replace("z", "x") for label in labels]  # data, not codes
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        ax.legend(loc="upper right", fontsize=7)
        ax.set_aspect("equal", adjustable="datalim")
    if title:
        fig.suptitle(title)
    return fig
