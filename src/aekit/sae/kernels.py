"""The arithmetic of a sparse dictionary step, done at the cost of its non-zeros.

A dictionary of K latents over D numbers with k active per example does B * K * D multiply-adds in
each of its dense matrix products, but only the encoder's forward product needs all of them: the
decoder reads k latents per example, and the gradients that reach both weight matrices are zero
outside the active latents. These functions give the same values and gradients as the dense
products (to rounding); the dictionary decoder falls back to the dense product when more than
``DENSE_ABOVE`` of a code's entries are listed.

Only the encoder's product stays dense: its gradient is zero outside the active latents too, but
finding them again costs as much as the product on a CPU.

* :func:`row_topk`: the k largest entries of each row, exact; ``torch.topk`` runs over the k
  blocks of each row with the largest maxima only (4.4-4.8 ms against 5.7-5.8 ms over the whole
  row for k = 12 of 512, 1 024 rows, one CPU thread: ``bench/sae_kernels.py``).
* :func:`active_entries` and :func:`decode_entries`: z W^T for a code z (B, K) whose possibly
  non-zero entries are listed (``z.active_entries``, the flat positions b * K + j grouped by row,
  which the dictionary latents attach to the codes they return): each example reads only its
  listed columns of W (D, K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: the share of non-zero entries above which the dense product is the faster one
DENSE_ABOVE = 0.1


def row_topk(h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, index), each (B, k): the k largest entries of each row of h (B, K), largest first,
    as ``h.topk(k, dim=1)`` gives them (ties may pick other indices). ``values`` are gathered from
    h, so gradients reach h at the chosen entries.

    Rows are cut into blocks; the k blocks with the largest maxima hold the row's k largest entries
    (an entry among them is >= the k-th largest value >= the k-th largest block maximum, so its
    block's maximum is too), and ``torch.topk`` runs over those k blocks only."""
    batch, width = h.shape
    block = 1 << max(0, (width // (4 * k)).bit_length() - 1)  # a power of two: >= 4k blocks per row
    blocks = width // block
    if block < 2 or blocks * block != width:
        values, index = h.topk(k, dim=1)
        return values, index
    with torch.no_grad():
        grouped = h.detach().view(batch, blocks, block)
        best = grouped.amax(2).topk(k, dim=1, sorted=False).indices  # (B, k) blocks
        candidates = grouped.gather(1, best[:, :, None].expand(-1, -1, block)).view(batch, k * block)
        chosen = candidates.topk(k, dim=1).indices  # (B, k) among the k * block candidates
        index = best.gather(1, chosen // block) * block + chosen % block  # (B, k) columns of h
    return h.gather(1, index), index


def active_entries(index: torch.Tensor, values: torch.Tensor, width: int) -> torch.Tensor:
    """The flat positions b * width + j (nnz,), grouped by row, of a code's positive entries, from
    the columns ``index`` a selection chose and their ``values`` (both (B, k)), or from flat
    positions and values (both (n,)) for a selection over the whole batch."""
    if index.ndim == 2:  # row by row already
        index = (torch.arange(len(index), device=index.device)[:, None] * width + index).flatten()
        return index[values.detach().flatten() > 0]
    return index[values.detach() > 0].sort().values


class _DecodeEntries(torch.autograd.Function):
    """sum over an example's entries of value * column: (values (nnz,), columns (nnz,), rows
    (nnz,), offsets (B,), atoms (K, D)) -> (B, D); the backward reads the same entries."""

    @staticmethod
    def forward(ctx, values, columns, rows, offsets, atoms):
        ctx.save_for_backward(values, columns, rows, atoms)
        return F.embedding_bag(columns, atoms, offsets, mode="sum", per_sample_weights=values)

    @staticmethod
    def backward(ctx, grad):  # grad (B, D)
        values, columns, rows, atoms = ctx.saved_tensors
        picked = grad.contiguous().index_select(0, rows)  # (nnz, D); an expanded grad is slow to index
        grad_values = (picked * atoms.index_select(0, columns)).sum(1)  # (nnz,)
        grad_atoms = torch.zeros_like(atoms).index_add_(0, columns, picked * values[:, None])  # (K, D)
        return grad_values, None, None, None, grad_atoms


def decode_entries(z: torch.Tensor, entries: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """z W^T (B, D) for a code z (B, K) non-zero only at ``entries`` (flat positions b * K + j,
    grouped by row) and a dictionary W (D, K): each example sums its active columns (an embedding
    bag), so the cost is nnz * D instead of B * K * D, forward and backward. Gradients reach z at
    its entries and W at its active columns; elsewhere z's gradient is left 0, which is exact when
    z came from a selection (its own gradient is zero off the selection)."""
    batch, width = z.shape
    rows, columns = entries // width, entries % width  # (nnz,) each
    counts = torch.bincount(rows, minlength=batch)  # (B,)
    offsets = counts.cumsum(0) - counts  # (B,): where each example's entries start
    values = z.reshape(-1).index_select(0, entries)  # (nnz,)
    return _DecodeEntries.apply(values, columns, rows, offsets, weight.T.contiguous())
