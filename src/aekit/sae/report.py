"""A feature browser: one static HTML page describing what each latent of a dictionary responds to.

:func:`write_report` encodes examples with the dictionary and writes ``index.html`` (no scripts,
no external files: images are inline PNGs, histograms inline SVG) with, per latent: its firing
rate, the histogram of its non-zero activations, its top-activating examples (as images when
``images`` are given, as text when ``contexts`` are, else as example numbers), and its decoder
direction drawn as an image when ``direction_shape`` says how.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AekitError
from ..model import Autoencoder
from ..tensors import as_tensor

STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
.latent{border:1px solid #ccc;border-radius:6px;padding:.6em;margin:.6em 0;display:flex;gap:1em;flex-wrap:wrap}
.meta{min-width:14em}.top{display:flex;gap:.4em;flex-wrap:wrap;align-items:flex-start}
.top figure{margin:0;text-align:center;font-size:.75em}.top img,.direction img{image-rendering:pixelated}
.context{font-family:monospace;font-size:.8em;max-width:40em}"""


def _png(image: np.ndarray, size: int = 56) -> str:
    """An (H, W) or (H, W, 3) array in [0, 1] (or any range, for directions: scaled to it) as a
    base64 PNG data URI, enlarged to about ``size`` pixels."""
    from PIL import Image

    image = np.asarray(image, np.float64)
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 1:  # a direction: its own range, zero at mid-grey when it has both signs
        bound = max(abs(low), abs(high), 1e-12)
        image = 0.5 + 0.5 * image / bound
    pixels = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    scale = max(1, size // max(pixels.size))
    pixels = pixels.resize((pixels.width * scale, pixels.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _as_picture(example: np.ndarray) -> np.ndarray:
    """(C, H, W) with C 1 or 3, or (H, W), as (H, W) or (H, W, 3)."""
    example = np.asarray(example)
    if example.ndim == 3 and example.shape[0] in (1, 3):
        example = np.moveaxis(example, 0, -1)
        return example[..., 0] if example.shape[-1] == 1 else example
    if example.ndim == 2:
        return example
    raise AekitError(f"an image of shape {example.shape}", "pictures are (C, H, W) or (H, W)", "pass images like that")


def _histogram_svg(values: np.ndarray, bins: int = 20, width: int = 180, height: int = 50) -> str:
    if len(values) == 0:
        return "<em>never active</em>"
    counts, edges = np.histogram(values, bins=bins)
    peak = max(int(counts.max()), 1)
    bar = width / bins
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - height * c / peak:.1f}" width="{bar - 1:.1f}" '
        f'height="{height * c / peak:.1f}" fill="#4a78b5"/>'
        for i, c in enumerate(counts)
    )
    return (
        f'<svg width="{width}" height="{height + 14}" role="img" aria-label="activation histogram">{rects}'
        f'<text x="0" y="{height + 12}" font-size="10">{edges[0]:.3g}</text>'
        f'<text x="{width}" y="{height + 12}" font-size="10" text-anchor="end">{edges[-1]:.3g}</text></svg>'
    )


@torch.no_grad()
def top_activations(model: Autoencoder, x: Any, top: int = 8, batch_size: int = 4096) -> dict[str, np.ndarray]:
    """For each latent of ``model`` over examples x (N, ...): ``rate`` (K,) the share of examples
    where it is non-zero, ``values`` and ``rows`` (K, top) its largest activations and the examples
    they come from (largest first; rows -1 where it fired fewer times), and ``active`` the list of
    each latent's non-zero activations (for histograms)."""
    model.eval()
    device = next(model.parameters()).device
    x = as_tensor(x).float()
    k = model.code_size
    best_values = torch.full((k, top), -torch.inf)
    best_rows = torch.full((k, top), -1, dtype=torch.long)
    fired = torch.zeros(k)
    active: list[list[np.ndarray]] = [[] for _ in range(k)]
    for start in range(0, len(x), batch_size):
        code = model.encode(x[start : start + batch_size].to(device)).float().cpu()  # (b, K)
        fired += (code != 0).sum(0)
        rows = torch.arange(start, start + len(code)).expand(k, -1)  # (K, b)
        values = torch.where(code != 0, code, torch.full_like(code, -torch.inf)).T  # (K, b)
        merged_values = torch.cat([best_values, values], 1)
        merged_rows = torch.cat([best_rows, rows], 1)
        kept = merged_values.topk(top, dim=1)
        best_values, best_rows = kept.values, merged_rows.gather(1, kept.indices)
        for j in torch.nonzero((code != 0).any(0)).flatten().tolist():
            active[j].append(code[:, j][code[:, j] != 0].numpy())
    best_rows[torch.isinf(best_values)] = -1
    return {
        "rate": (fired / max(len(x), 1)).numpy(),
        "values": best_values.numpy(),
        "rows": best_rows.numpy(),
        "active": [np.concatenate(a) if a else np.zeros(0) for a in active],
    }


def write_report(
    model: Autoencoder,
    x: Any,
    out_dir: str | Path,
    images: Any = None,
    contexts: Sequence[str] | None = None,
    direction_shape: Sequence[int] | None = None,
    directions: Any = None,
    latents: int = 100,
    top: int = 8,
    title: str = "Sparse dictionary",
) -> Path:
    """Write ``out_dir/index.html`` describing the ``latents`` most often firing latents of
    ``model`` over examples x (N, D); ``out_dir/latents.json`` holds the same numbers. ``images``
    (N, C, H, W) or (N, H, W) show the top examples as pictures, ``contexts`` (N strings) as text;
    ``direction_shape`` (e.g. (28, 28)) draws each latent's decoder direction, or its row of
    ``directions`` (K, ...) when given (e.g. the direction mapped back to pixels through the
    network's first layer). Returns the page."""
    x = as_tensor(x).float()
    if images is not None and len(images) != len(x):
        raise AekitError(f"{len(images)} images for {len(x)} examples", "one picture per example", "align them")
    if contexts is not None and len(contexts) != len(x):
        raise AekitError(f"{len(contexts)} contexts for {len(x)} examples", "one text per example", "align them")
    found = top_activations(model, x, top)
    order = np.argsort(-found["rate"], kind="stable")[: int(latents)]
    if directions is None:
        weight = getattr(model.decoder, "weight", None)
        directions = weight.detach().T.cpu() if weight is not None and weight.ndim == 2 else None  # (K, D)
    directions = None if directions is None else np.asarray(directions)
    if directions is not None and len(directions) != model.code_size:
        raise AekitError(f"{len(directions)} directions", f"the dictionary has {model.code_size} latents", "one each")
    cards, record = [], []
    for j in order:
        rows = [int(r) for r in found["rows"][j] if r >= 0]
        values = [float(v) for v, r in zip(found["values"][j], found["rows"][j], strict=True) if r >= 0]
        shown = []
        for row, value in zip(rows, values, strict=True):
            if images is not None:
                body = f'<img src="{_png(_as_picture(np.asarray(images[row])))}" alt="example {row}">'
            elif contexts is not None:
                body = f'<div class="context">{html.escape(contexts[row])}</div>'
            else:
                body = f"example {row}"
            shown.append(f"<figure>{body}<figcaption>{value:.3g}</figcaption></figure>")
        direction = ""
        if directions is not None and direction_shape is not None:
            picture = directions[j].reshape(tuple(direction_shape))
            direction = f'<div class="direction"><img src="{_png(picture, 84)}" alt="decoder direction"></div>'
        cards.append(
            f'<section class="latent" id="latent-{j}"><div class="meta"><h3>latent {j}</h3>'
            f"<p>fires on {100 * found['rate'][j]:.2f} % of examples</p>{_histogram_svg(found['active'][j])}"
            f'</div>{direction}<div class="top">{"".join(shown)}</div></section>'
        )
        record.append({"latent": int(j), "rate": float(found["rate"][j]), "top_rows": rows, "top_values": values})
    dead = int((found["rate"] == 0).sum())
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{len(x)} examples, {model.code_size} latents ({dead} never active); the {len(order)} most often "
        f"active below, each with its {top} strongest examples.</p>{''.join(cards)}</body></html>"
    )
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latents.json").write_text(json.dumps(record, indent=1) + "\n")
    path = folder / "index.html"
    path.write_text(page)
    return path
