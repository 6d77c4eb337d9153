"""Splicing a dictionary into the network it was trained on: how much of the network's own
performance survives when a layer's output is replaced by its sparse reconstruction.

:func:`loss_recovered` runs the host network three ways with a forward hook on the module: clean,
with the module's output replaced by the dictionary's reconstruction of it, and with it replaced
by zeros (the layer ablated). The share of the ablation's damage the dictionary undoes,
(L_zero - L_sae) / (L_zero - L_clean), is the "loss recovered" of the sparse-autoencoder
literature: 1 when splicing costs nothing, 0 when it is as bad as removing the layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..errors import AekitError
from .collect import activation_rows, find_module


def rows_back(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Rows (N, D) put back in the shape of a module's output ``like``: the inverse of
    :func:`~aekit.sae.collect.activation_rows`."""
    if like.ndim == 2:
        return rows.view_as(like)
    if like.ndim == 3:
        return rows.view(like.shape)
    if like.ndim == 4:
        b, c, h, w = like.shape
        return rows.view(b, h, w, c).permute(0, 3, 1, 2)
    raise AekitError(
        f"an output of shape {tuple(like.shape)}", "rows come from 2-, 3- or 4-D outputs", "hook another module"
    )


class Splice:
    """A context manager replacing the output of ``module`` in ``host`` by ``replace(rows)`` (rows
    (N, D) as :func:`~aekit.sae.collect.activation_rows` reads them, the replacement the same
    shape). A tuple output keeps its other elements."""

    def __init__(self, host: nn.Module, module: str, replace: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.target, self.replace = find_module(host, module), replace
        self.handle = None

    def _hook(self, _module, _inputs, output):
        first = output[0] if isinstance(output, tuple | list) else output
        new = rows_back(self.replace(activation_rows(first)).to(first.dtype), first)
        if isinstance(output, tuple | list):
            return type(output)([new, *output[1:]])
        return new

    def __enter__(self) -> Splice:
        self.handle = self.target.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.handle.remove()


@torch.no_grad()
def loss_recovered(
    host: nn.Module,
    module: str,
    dictionary: nn.Module,
    batches: Iterable[Any],
    loss: Callable[[Any], torch.Tensor],
) -> dict[str, float]:
    """The host's mean loss over ``batches`` (``loss(batch)`` runs the host and returns a scalar,
    e.g. nats per token) clean, with ``module``'s output replaced by ``dictionary``'s
    reconstruction (an aekit autoencoder: the likelihood's mean of its code), and with it zeroed.
    Returns ``{"clean", "spliced", "zero", "recovered"}``, recovered = (zero - spliced) / (zero -
    clean)."""
    host.eval()
    dictionary.eval()

    def reconstruct(rows: torch.Tensor) -> torch.Tensor:
        return dictionary.likelihood.mean(dictionary.decode(dictionary.encode(rows.float())))

    totals = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    count = 0
    for batch in batches:
        totals["clean"] += float(loss(batch))
        with Splice(host, module, reconstruct):
            totals["spliced"] += float(loss(batch))
        with Splice(host, module, torch.zeros_like):
            totals["zero"] += float(loss(batch))
        count += 1
    if count == 0:
        raise AekitError("no batches", "the losses are means over batches", "give at least one batch")
    means = {key: value / count for key, value in totals.items()}
    gap = means["zero"] - means["clean"]
    means["recovered"] = (means["zero"] - means["spliced"]) / gap if gap != 0 else float("nan")
    return means
