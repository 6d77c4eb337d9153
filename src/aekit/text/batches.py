"""Token batches for the training loop: padded (source, target) id tensors, bucketed by length.

A :class:`TokenBatch` is a batch in the sense of :mod:`aekit.batches` (``len``, indexing by a slice,
``to(device)``). Its source rows are ``x_1 .. x_m EOS`` and its target rows ``BOS y_1 .. y_n EOS``,
both padded with PAD on the right; the decoder reads ``target_input`` (BOS y_1 .. y_n) and predicts
``target_output`` (y_1 .. y_n EOS).

A :class:`TokenSource` is a source in that sense: its batches hold sentences of similar length, as
many as fit a budget of tokens (sentences x longest row), so that little of a batch is padding.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import AekitError
from .tokenizer import BOS, EOS, PAD


@dataclass
class TokenBatch:
    """Sentence pairs as token ids: ``source`` (B, S) and ``target`` (B, T), int64, PAD-padded."""

    source: torch.Tensor  # (B, S): x_1 .. x_m EOS PAD ..
    target: torch.Tensor  # (B, T): BOS y_1 .. y_n EOS PAD ..

    @property
    def source_mask(self) -> torch.Tensor:
        """(B, S) bool: True at real source tokens (EOS included), False at padding."""
        return self.source != PAD

    @property
    def target_input(self) -> torch.Tensor:
        """(B, T - 1): what the decoder reads, BOS y_1 .. y_n (then padding)."""
        return self.target[:, :-1]

    @property
    def target_output(self) -> torch.Tensor:
        """(B, T - 1): what the decoder predicts, y_1 .. y_n EOS (then padding)."""
        return self.target[:, 1:]

    @property
    def weight(self) -> int:
        """Number of tokens the decoder predicts (non-PAD entries of ``target_output``)."""
        return int((self.target_output != PAD).sum())

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: Any) -> TokenBatch:
        """The sentences at ``index`` (a slice, an int, or indices), columns trimmed to the longest of them."""
        n = len(self)
        if isinstance(index, slice) and range(*index.indices(n)) == range(n):
            return self
        try:
            row = operator.index(index)
        except TypeError:
            pass
        else:
            if not -n <= row < n:
                raise IndexError(f"sentence {row} of a batch of {n}")
            row %= n
            index = slice(row, row + 1)
        source, target = self.source[index], self.target[index]
        if len(source):
            lengths = torch.stack([(source != PAD).sum(1).max(), (target != PAD).sum(1).max()]).tolist()
            source, target = source[:, : lengths[0]], target[:, : lengths[1]]
        return TokenBatch(source, target)

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(self.source.to(device), self.target.to(device))


def _check_pairs(source_ids: Sequence[Sequence[int]], target_ids: Sequence[Sequence[int]]) -> None:
    if len(source_ids) != len(target_ids):
        raise AekitError(
            f"{len(source_ids)} source sentences and {len(target_ids)} target sentences",
            "each source sentence needs its target",
            "pass aligned lists",
        )
    if not source_ids:
        raise AekitError("no sentences", "a batch needs at least one sentence pair", "pass some")
    for side, sentences in (("source", source_ids), ("target", target_ids)):
        for index, ids in enumerate(sentences):
            if len(ids) == 0:
                raise AekitError(
                    f"{side} sentence {index + 1} has no tokens",
                    "every sentence needs at least one token",
                    "drop empty sentences before tokenizing",
                )


def make_batch(source_ids: Sequence[Sequence[int]], target_ids: Sequence[Sequence[int]]) -> TokenBatch:
    """A :class:`TokenBatch` of token ids (no specials): sources get EOS, targets BOS and EOS, then PAD."""
    _check_pairs(source_ids, target_ids)
    sources = [[*ids, EOS] for ids in source_ids]
    targets = [[BOS, *ids, EOS] for ids in target_ids]
    width_s, width_t = max(map(len, sources)), max(map(len, targets))
    return TokenBatch(
        torch.tensor([row + [PAD] * (width_s - len(row)) for row in sources], dtype=torch.long),
        torch.tensor([row + [PAD] * (width_t - len(row)) for row in targets], dtype=torch.long),
    )


class _Rows:
    """Sentences of token ids stored end to end in one tensor; a batch of them is one gather."""

    def __init__(self, rows: list[list[int]], device: torch.device | str) -> None:
        self.lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))  # (N,) on the CPU
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(self.lengths.sum()))
        offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.flat = torch.from_numpy(flat).to(device)  # (sum of lengths,)
        self.offsets = torch.from_numpy(offsets).to(device)  # (N,)
        self.device_lengths = torch.from_numpy(self.lengths).to(device)  # (N,)

    def gather(self, index: np.ndarray, device_index: torch.Tensor) -> torch.Tensor:
        """(len(index), longest) int64: the rows at ``index``, PAD-padded on the right."""
        positions = torch.arange(int(self.lengths[index].max()), device=self.flat.device)  # (L,)
        valid = positions < self.device_lengths[device_index, None]  # (b, L)
        where = (self.offsets[device_index, None] + positions).clamp_(max=len(self.flat) - 1)  # (b, L)
        return torch.where(valid, self.flat[where], PAD)


class TokenSource:
    """Sentence pairs as token ids, served in batches of similar length within a token budget.

    A batch holds as many sentences as keep (sentences) x (longest row, source with EOS or target
    with BOS and EOS) within ``batch_tokens``; a sentence longer than the budget is a batch of its
    own. The token budget, not a number of sentences, sets the batch size: the ``batch_size``
    argument of :meth:`epoch` and :meth:`in_order` is accepted for the training loop and ignored.
    The ids live on ``device``; a batch is gathered there.
    """

    def __init__(
        self,
        source_ids: Sequence[Sequence[int]],
        target_ids: Sequence[Sequence[int]],
        batch_tokens: int = 4096,
        device: torch.device | str = "cpu",
    ) -> None:
        _check_pairs(source_ids, target_ids)
        if not isinstance(batch_tokens, int) or batch_tokens < 1:
            raise AekitError(f"batch_tokens={batch_tokens} is not a positive number of tokens", "", "use e.g. 4096")
        self.batch_tokens, self.device = batch_tokens, torch.device(device)
        self._source = _Rows([[*ids, EOS] for ids in source_ids], self.device)
        self._target = _Rows([[BOS, *ids, EOS] for ids in target_ids], self.device)
        for side, rows in (("source", self._source), ("target", self._target)):
            if rows.flat.numel() and int(rows.flat.min()) < 0:
                raise AekitError(f"a {side} sentence holds a negative token id", "ids are 0 and up", "check them")
            pads = rows.flat == PAD
            if bool(pads.any()):
                sentence = int(np.searchsorted(np.cumsum(rows.lengths), int(pads.nonzero()[0, 0]), side="right"))
                raise AekitError(
                    f"{side} sentence {sentence + 1} holds the padding id {PAD}",
                    "padding marks the end of a sentence in a batch",
                    "encode sentences with SubwordTokenizer.encode, which never gives PAD",
                )
        self._cost = np.maximum(self._source.lengths, self._target.lengths)  # (N,) tokens of the longer row
        self._bounds = self._cut(np.sort(self._cost, kind="stable"))

    def _cut(self, costs: np.ndarray) -> list[tuple[int, int]]:
        """(start, stop) of each batch along ascending ``costs``: greedily as many as fit the budget."""
        bounds, start = [], 0
        for i, cost in enumerate(costs.tolist()):
            if i > start and (i - start + 1) * cost > self.batch_tokens:
                bounds.append((start, i))
                start = i
        bounds.append((start, len(costs)))
        return bounds

    def __len__(self) -> int:
        """Number of sentence pairs."""
        return len(self._cost)

    @property
    def tokens(self) -> int:
        """Target tokens the decoder predicts in one epoch (y_1 .. y_n and EOS of every sentence)."""
        return int(self._target.lengths.sum()) - len(self)

    def steps_per_epoch(self) -> int:
        """Number of batches :meth:`epoch` and :meth:`in_order` yield (the same for every seed)."""
        return len(self._bounds)

    def batch_indices(self, seed: int | None = None) -> list[np.ndarray]:
        """The sentence indices of each batch, in the order :meth:`epoch` (``seed``) or :meth:`in_order`
        (``seed`` None) yields them: sorted by length, ties broken at random from the seed."""
        if seed is None:
            order = np.argsort(self._cost, kind="stable")
            return [order[start:stop] for start, stop in self._bounds]
        rng = np.random.default_rng(seed)
        order = np.lexsort((rng.random(len(self)), self._cost))
        return [order[start:stop] for start, stop in (self._bounds[b] for b in rng.permutation(len(self._bounds)))]

    def _gather(self, index: np.ndarray) -> TokenBatch:
        device_index = torch.from_numpy(index).to(self.device)
        return TokenBatch(self._source.gather(index, device_index), self._target.gather(index, device_index))

    def epoch(self, batch_size: int, seed: int) -> Iterator[TokenBatch]:
        """The batches of one epoch: sentences sorted by length (ties in a random order), cut into
        batches of at most ``batch_tokens``, the batches shuffled; all drawn from ``seed``.
        ``batch_size`` is ignored: the token budget sets the batch size."""
        for index in self.batch_indices(seed):
            yield self._gather(index)

    def in_order(self, batch_size: int) -> Iterator[TokenBatch]:
        """The batches from the shortest sentences to the longest, the same every time (validation);
        ``batch_size`` is ignored. :meth:`batch_indices` gives the sentences of each."""
        for index in self.batch_indices(None):
            yield self._gather(index)
