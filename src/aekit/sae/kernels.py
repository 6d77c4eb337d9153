"""The arithmetic of a sparse dictionary step, done at the cost of its non-zeros.

A dictionary of K latents over D numbers with k active per example does B * K * D multiply-adds in
each of its dense matrix products, but only the encoder's forward product needs all of them: the
decoder reads k latents per example, and the gradients that reach both weight matrices are zero
outside the active latents. These functions give the same values and gradients as the dense
products (to rounding); the dictionary decoder falls back to the dense product when more than
:func:`dense_above` of a code's entries are listed.

The loops over listed entries run compiled (:mod:`aekit.sae.native`: one pass per product over
the entries, no sort) where a C compiler is at hand, else as torch operators.

The encoder's forward product stays dense (the selection needs every pre-activation), but the
gradient of the values a latent reads from it at listed entries goes straight to the encoder's
weights, bias and input, at the cost of those entries (:func:`listed_linear`,
:func:`listed_values`): the (B, K) gradient of the pre-activations is never formed.

* :func:`row_topk`: the k largest entries of each row, exact; ``torch.topk`` runs over the k
  groups of each row with the largest maxima only (figures in ``bench/sae_kernels.py``).
* :func:`active_entries`, :func:`listed_code` and :func:`decode_entries`: z W^T for a code z
  (B, K) whose possibly non-zero entries are listed (``z.active_entries``, the flat positions
  b * K + j grouped by row, and ``z.active_values``, which the dictionary latents attach to the
  codes they return): each example reads only its listed columns of W (D, K).
* :func:`entry_dots`: one dot product per listed entry, in the decoder's backward (torch's
  sampled matrix product over the entries' pattern).
* :func:`by_column`: the listed entries grouped by latent, so that both weight gradients (a sum,
  per latent, of its entries' rows) are embedding bags too, without (nnz, D) temporaries.
* :func:`listed_linear` and :func:`listed_values`: the encoder's x W^T + b (B, K), and values read
  from it at listed entries whose backward forms the gradients of W, b and x from those entries.
* :func:`positive_positions`: the flat positions of the positive entries of a (B, K) tensor.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from aekit.sae import native

#: the share of non-zero entries above which the dense product is the faster one, with torch's
#: operators for the listed arithmetic and with the compiled loops (bench/sae_kernels.py: listed
#: sae-l1 steps faster than dense up to 13 % of the code active, level at 16 %; the benchmark's
#: sweep stops there, short of the 20 % chosen)
DENSE_ABOVE = 0.1
COMPILED_DENSE_ABOVE = 0.2


def dense_above(code: torch.Tensor) -> float:
    """The share of a code's (B, K) entries above which its dense products are the faster ones:
    ``COMPILED_DENSE_ABOVE`` where the compiled loops run on it, else ``DENSE_ABOVE``."""
    return COMPILED_DENSE_ABOVE if native.usable(code) else DENSE_ABOVE


# torch's own backward of an embedding bag's per-entry weights: one dot product per entry, without
# the (nnz, D) temporaries of the same sum written with tensor operations (bench/sae_kernels.py);
# a private operator, so looked up, not assumed
_ENTRY_DOTS = getattr(torch.ops.aten, "_embedding_bag_per_sample_weights_backward", None)


def row_topk(h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, index), each (B, k): the k largest entries of each row of h (B, K), largest first,
    as ``h.topk(k, dim=1)`` gives them (ties may pick other indices). ``values`` are gathered from
    h, so gradients reach h at the chosen entries.

    The columns are split into groups; the k groups with the largest maxima hold the row's k
    largest entries (an entry among them is >= the k-th largest value >= the k-th largest group
    maximum, so its group's maximum is too), and ``torch.topk`` runs over those k groups only.
    Group g is the columns g, g + G, g + 2G, ... (G groups): their maxima reduce over a
    non-contiguous axis, which vectorises along the contiguous one."""
    batch, width = h.shape
    size = 1 << max(0, (width // (4 * k)).bit_length() - 1)  # a power of two: >= 4k groups per row
    groups = width // size
    if size < 2 or groups * size != width:
        values, index = h.topk(k, dim=1)
        return values, index
    with torch.no_grad():
        flat = h.detach().reshape(-1)
        best = flat.view(batch, size, groups).amax(1).topk(k, dim=1, sorted=False).indices  # (B, k) groups
        strides = torch.arange(0, width, groups, device=h.device)  # (size,) a group's columns less its own
        columns = (best[:, :, None] + strides).view(batch, k * size)  # (B, k * size) the candidates' columns
        rows = torch.arange(0, batch * width, width, device=h.device)[:, None]  # (B, 1) each row's start
        candidates = flat.index_select(0, (columns + rows).view(-1)).view(batch, k * size)
        index = columns.gather(1, candidates.topk(k, dim=1).indices)  # (B, k) columns of h, largest first
    return h.gather(1, index), index


def batch_topk(flat: torch.Tensor, n: int, near: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, index), each (n,), index ascending: the n largest entries of ``flat`` (N,), as
    ``flat.topk(n)`` chooses them (ties may pick other indices); ``values`` are gathered from
    flat, so gradients reach it at the chosen entries.

    ``near``, a guess of the n-th largest value (the last batch's, for a selection made every
    step), lets ``torch.topk`` run over the entries above a value a little below it only, once
    their count shows that they hold the n largest (at most 8 n of them); a guess too high or too
    low costs a count and the full selection."""
    values, index = flat.detach(), None
    for margin in (0.05, 0.5) if near is not None and 0 < n < flat.numel() else ():
        lower = near - margin * max(abs(near), 1e-3)
        above = values >= lower  # (N,) mask
        count = int(above.sum())
        if count > 8 * n:
            break  # far too many: the full selection is the faster one
        if count >= n:
            candidates = above.nonzero().view(-1)  # (count,)
            chosen = values.index_select(0, candidates).topk(n, sorted=False).indices
            keep = torch.zeros_like(above[:count]).index_fill_(0, chosen, True)
            index = candidates[keep]  # ascending, as nonzero lists them
            break
    if index is None:
        index = values.topk(n, sorted=False).indices.sort().values
    return flat.index_select(0, index), index


def _positive(index: torch.Tensor, values: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat positions (nnz,) grouped by row, their values (nnz,), differentiable) of a selection's
    positive entries."""
    if index.ndim == 2:  # row by row already
        index = (torch.arange(len(index), device=index.device)[:, None] * width + index).flatten()
        values = values.flatten()
        keep = values.detach() > 0
        return index[keep], values[keep]
    keep = values.detach() > 0
    index, values = index[keep], values[keep]
    if len(index) > 1 and not bool((index[1:] > index[:-1]).all()):  # group by row
        order = index.sort()
        index, values = order.values, values.index_select(0, order.indices)
    return index, values


def active_entries(index: torch.Tensor, values: torch.Tensor, width: int) -> torch.Tensor:
    """The flat positions b * width + j (nnz,), grouped by row, of a code's positive entries, from
    the columns ``index`` a selection chose and their ``values`` (both (B, k)), or from flat
    positions and values (both (n,)) for a selection over the whole batch."""
    return _positive(index, values, width)[0]


def listed_code(h: torch.Tensor, entries: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
    """The code z (B, K), shaped like h: zero except ``values`` (n,) at ``entries`` (flat
    positions b * K + j, (n,), grouped by row, each once), by default h's own values there
    (:func:`listed_values`). The list is attached for the decoder (``z.active_entries``,
    ``z.active_values``, differentiable, so the decoder's gradient reaches the values without
    passing through the dense z); z must not be changed in place afterwards."""
    if values is None:
        values = listed_values(h, entries)
    z = h.new_zeros(h.numel()).index_put_((entries,), values).view_as(h)  # in place: no copy of (B, K)
    z.active_entries, z.active_values = entries, values
    return z


def selected_code(h: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The code of a selection: h's positive entries among those ``index`` chose (the columns of
    each row, (B, k), or flat positions (n,)), the others 0, as :func:`listed_code` returns it.
    Equal to scattering the selection's ReLU'd values into zeros, with its gradient reaching h
    (and the encoder, :func:`listed_values`) at the positive entries only."""
    with torch.no_grad():
        chosen = h.detach().gather(1, index) if index.ndim == 2 else h.detach().reshape(-1).index_select(0, index)
        entries = active_entries(index, chosen, h.shape[1])
    return listed_code(h, entries)


def listed_firing(z: torch.Tensor) -> torch.Tensor:
    """(K,) bool: the latents of a non-negative code z (B, K) that are positive somewhere among the
    entries it lists (``z.active_entries``), read from ``z.active_values`` when it has them: a sum
    per latent of its listed values (their latents come from :func:`split_entries`, shared with
    the decoder)."""
    values = getattr(z, "active_values", None)
    if values is None:
        values = z.detach().reshape(-1).index_select(0, z.active_entries)
    values = values.detach().to(z.dtype).contiguous()
    if native.usable(values):
        sums = values.new_zeros(z.shape[1])
        native.rows_with_columns(z.active_entries, z.shape[1], None, weights=values, sums=sums)
        return sums > 0
    columns = split_entries(z.active_entries, z.shape[1])[1]  # (n,)
    return z.new_zeros(z.shape[1]).index_add_(0, columns, values) > 0


class _DecodeEntries(torch.autograd.Function):
    """sum over an example's entries of value * column: (values (nnz,), columns (nnz,), rows
    (nnz,), offsets (B,), atoms (K, D)) -> (B, D); the backward reads the same entries."""

    @staticmethod
    def forward(ctx, values, columns, rows, offsets, atoms):
        ctx.save_for_backward(values, columns, rows, offsets, atoms)
        return F.embedding_bag(columns, atoms, offsets, mode="sum", per_sample_weights=values)

    @staticmethod
    def backward(ctx, grad):  # grad (B, D)
        values, columns, rows, offsets, atoms = ctx.saved_tensors
        grad = grad.contiguous()  # an expanded grad is slow to index
        grad_values = entry_dots(grad, atoms, columns, rows, offsets)  # (nnz,)
        grad_atoms = _sum_by_column(grad, values, columns, rows, len(atoms))  # (K, D)
        return grad_values, None, None, None, grad_atoms


class _DecodeCompiled(torch.autograd.Function):
    """:class:`_DecodeEntries` by the compiled loops (:mod:`aekit.sae.native`): (values (nnz,),
    entries (nnz,), atoms (K, D), batch B) -> (B, D), one pass over the entries per product."""

    @staticmethod
    def forward(ctx, values, entries, atoms, batch):
        ctx.save_for_backward(values, entries, atoms)
        out = atoms.new_zeros(batch, atoms.shape[1])  # (B, D)
        return native.columns_into_rows(entries, values.detach(), len(atoms), atoms, out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # grad (B, D)
        values, entries, atoms = ctx.saved_tensors
        grad = grad.contiguous()
        grad_atoms = torch.zeros_like(atoms) if ctx.needs_input_grad[2] else None  # (K, D)
        grad_values = native.rows_with_columns(  # (nnz,), or None
            entries, len(atoms), grad, atoms if ctx.needs_input_grad[0] else None, values.detach(), grad_atoms
        )
        return grad_values, None, grad_atoms, None


def by_column(columns: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(order (nnz,), starts (width,)): the entries' positions sorted by their ``columns`` (nnz,)
    and where each column's run starts in that order. Kept on ``columns``, which the decoder and
    the encoder's gradient share, so a step sorts once."""
    cached = getattr(columns, "_by_column", None)
    if cached is None or len(cached[1]) != width:
        order = _sort_latents(columns, width)
        counts = torch.bincount(columns, minlength=width)  # (width,)
        cached = columns._by_column = (order, counts.cumsum(0) - counts)
    return cached


# torch sorts a 1-D integer tensor by radix from this many entries on (at::internal::GRAIN_SIZE);
# below, by comparisons, 2-5x slower for the few thousand to 32 767 entries of a step's list
_RADIX_FROM = 32768


def _sort_latents(columns: torch.Tensor, width: int) -> torch.Tensor:
    """The order (nnz,) that groups entries by their latent ``columns`` (nnz,), each < width. Short
    lists are padded with ``width`` (which sorts last) up to the length torch sorts by radix: for
    12 288 entries 0.3 ms instead of 0.7 (bench/sae_kernels.py)."""
    narrow = torch.int16 if width < torch.iinfo(torch.int16).max else torch.int32
    keys = columns.to(narrow)
    if _RADIX_FROM // 4 <= len(keys) < _RADIX_FROM:
        keys = torch.cat([keys, keys.new_full((_RADIX_FROM - len(keys),), width)])
    return keys.argsort(stable=True)[: len(columns)]


def _sum_by_column(table: torch.Tensor, weights: torch.Tensor, columns: torch.Tensor, rows: torch.Tensor, width: int):
    """(width, D): for each column j, the sum over the entries i in column j of weights[i] *
    table[rows[i]]; table (B, D), weights, columns and rows (nnz,). One embedding bag per column."""
    order, starts = by_column(columns, width)
    return F.embedding_bag(
        rows.index_select(0, order), table, starts, mode="sum", per_sample_weights=weights.index_select(0, order)
    )


def entry_dots(
    grad: torch.Tensor, atoms: torch.Tensor, columns: torch.Tensor, rows: torch.Tensor, offsets: torch.Tensor
):
    """(nnz,): grad[rows[i]] . atoms[columns[i]] for each listed entry i; grad (B, D), atoms (K, D),
    ``offsets`` (B,) where each row's entries start (rows grouped). On a CPU, torch's sampled
    matrix product over the entries' pattern (1.6-1.7x faster than the embedding-bag backward's dot
    products, bench/sae_kernels.py), else that backward, else gathered rows."""
    if grad.device.type == "cpu" and grad.dtype == atoms.dtype:
        try:
            ends = torch.cat([offsets, offsets.new_full((1,), len(columns))])  # (B + 1,) CSR row pointers
            with warnings.catch_warnings():  # torch says once that its CSR tensors are in beta
                warnings.simplefilter("ignore", UserWarning)
                pattern = torch.sparse_csr_tensor(ends, columns, grad.new_zeros(len(columns)), (len(grad), len(atoms)))
                return torch.sparse.sampled_addmm(pattern, grad, atoms.T, beta=0.0).values()
        except (RuntimeError, NotImplementedError):  # a build without it
            pass
        if _ENTRY_DOTS is not None:
            try:
                return _ENTRY_DOTS(grad, atoms, columns, offsets, rows, 0, -1)  # mode 0: sum; no padding
            except RuntimeError:  # a torch whose private operator takes other arguments
                pass
    return (grad.index_select(0, rows) * atoms.index_select(0, columns)).sum(1)


def decode_entries(z: torch.Tensor, entries: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """z W^T (B, D) for a code z (B, K) non-zero only at ``entries`` (flat positions b * K + j,
    grouped by row) and a dictionary W (D, K): each example sums its active columns (an embedding
    bag), so the cost is nnz * D instead of B * K * D, forward and backward. Gradients reach z at
    its entries and W at its active columns; elsewhere z's gradient is left 0, which is exact when
    z came from a selection (its own gradient is zero off the selection)."""
    batch, width = z.shape
    values = getattr(z, "active_values", None)  # (nnz,), attached with the entries by a selection
    if values is None or values.shape != entries.shape:
        values = z.reshape(-1).index_select(0, entries)
    atoms = weight.T.contiguous()  # (K, D): a latent's column as a row
    if native.usable(values, atoms):
        return _DecodeCompiled.apply(values.contiguous(), entries, atoms, batch)
    rows, columns = split_entries(entries, width)  # (nnz,) each
    counts = torch.bincount(rows, minlength=batch)  # (B,)
    offsets = counts.cumsum(0) - counts  # (B,): where each example's entries start
    return _DecodeEntries.apply(values, columns, rows, offsets, atoms)


def split_entries(entries: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns), each (nnz,), of flat positions b * width + j; kept on ``entries`` so the
    decoder and the encoder's gradient share them (and :func:`by_column`'s grouping)."""
    cached = getattr(entries, "_rows_columns", None)
    if cached is None or cached[0] != width:
        cached = entries._rows_columns = (width, entries // width, entries % width)
    return cached[1], cached[2]


def listed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """h = x W^T + b (B, K) for x (B, D), weight (K, D), bias (K,), as ``F.linear`` gives it,
    remembering its inputs (``h.linear_inputs``) so that values read from h at listed entries
    (:func:`listed_values`) send their gradient to W, b and x directly."""
    h = F.linear(x, weight, bias)
    if x.ndim == 2 and torch.is_grad_enabled() and (weight.requires_grad or bias.requires_grad):
        h.linear_inputs = (x, weight, bias)
    return h


class _ListedValues(torch.autograd.Function):
    """h at listed entries: (h (B, K) detached, entries (n,), x (B, D), weight (K, D), bias (K,))
    -> (n,), for h = x W^T + b; the backward forms the gradients of x, W and b from the n entries."""

    @staticmethod
    def forward(ctx, h, entries, x, weight, bias):
        ctx.save_for_backward(entries, x, weight)
        ctx.width = h.shape[1]
        return h.reshape(-1).index_select(0, entries)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # grad (n,)
        entries, x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        if native.usable(grad, x, weight):
            return (None, None, *_linear_gradients_compiled(ctx, grad, entries, x, weight))
        rows, columns = split_entries(entries, ctx.width)  # (n,) each
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[2]:  # sum over a row's entries of grad * W's row: an embedding bag
            counts = torch.bincount(rows, minlength=len(x))  # (B,)
            grad_x = F.embedding_bag(columns, weight, counts.cumsum(0) - counts, mode="sum", per_sample_weights=grad)
        if ctx.needs_input_grad[3]:
            grad_weight = _sum_by_column(x, grad, columns, rows, ctx.width)  # (K, D)
        if ctx.needs_input_grad[4]:
            grad_bias = grad.new_zeros(ctx.width).index_add_(0, columns, grad)  # (K,)
        return None, None, grad_x, grad_weight, grad_bias


def _linear_gradients_compiled(ctx, grad, entries, x, weight):
    """:class:`_ListedValues`' gradients of x (B, D), W (K, D) and b (K,), by the compiled loops."""
    width = ctx.width
    grad_x = grad_weight = grad_bias = None
    if ctx.needs_input_grad[2]:
        grad_x = native.columns_into_rows(entries, grad, width, weight, torch.zeros_like(x))
    if ctx.needs_input_grad[3]:
        grad_weight = torch.zeros_like(weight)
    if ctx.needs_input_grad[4]:
        grad_bias = grad.new_zeros(width)
    if grad_weight is not None or grad_bias is not None:
        native.rows_with_columns(entries, width, x, weights=grad, out=grad_weight, sums=grad_bias)
    return grad_x, grad_weight, grad_bias


def listed_values(h: torch.Tensor, entries: torch.Tensor) -> torch.Tensor:
    """h's values (n,) at ``entries`` (flat positions b * K + j, (n,), grouped by row, each once)
    of h (B, K), differentiable. When h came from :func:`listed_linear`, their gradient goes to
    its weights, bias and input at the cost of the n entries (a sum of x's rows per latent)
    instead of through h's (B, K) gradient and a dense product; any other reader of h still
    gives h its gradient as usual, and autograd adds the two."""
    inputs = getattr(h, "linear_inputs", None)
    if inputs is None or not torch.is_grad_enabled() or h.ndim != 2:
        return h.reshape(-1).index_select(0, entries)
    return _ListedValues.apply(h.detach(), entries, *inputs)


def positive_positions(values: torch.Tensor, limit: float | None = None) -> torch.Tensor | None:
    """The flat positions (n,), ascending, of the entries of a non-negative float32 tensor that
    are not +0.0 (a -0.0 is listed too, which only lists a zero), or None when they are more than
    ``limit``. By the compiled loops where they run (which stop at the limit), else read as 32-bit
    integers, whose ``nonzero`` is 1.5-2x faster than the floats' (bench/sae_kernels.py)."""
    flat = values.detach().reshape(-1)
    if native.usable(flat):
        return native.list_nonzero(flat, flat.numel() if limit is None else int(limit))
    if flat.dtype == torch.float32:
        flat = flat.view(torch.int32)
    entries = flat.nonzero().view(-1)
    return None if limit is not None and len(entries) > limit else entries
