"""Decoding token sequences from any sequence model: greedy search and beam search.

A model takes part through the :class:`Decodable` protocol: ``start`` encodes the source once,
``step`` gives the log-probabilities of the next token after a prefix, and ``reorder`` selects
(or repeats) rows of the decoding state. Both searches are batched: they loop over time steps,
never over sentences, and drop the sentences that are done from the batch (through ``reorder``).

Outputs are token ids (B, L) after BOS: each row ends with EOS, or is cut at ``max_len``, and is
PAD-padded after that. L is the longest row's length (at most ``max_len``). PAD and BOS are never
emitted, whatever log-probability the model gives them.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch

from aekit.errors import AekitError

PAD, BOS, EOS = 0, 2, 3

_NEG_INF = float("-inf")


@runtime_checkable
class Decodable(Protocol):
    """A sequence model the searches can decode from.

    The state is any object the model likes (a cache of hidden states, the encoder memory...);
    the searches only pass it back to ``step`` and ``reorder``.
    """

    def start(self, source: torch.Tensor, source_mask: torch.Tensor) -> Any:
        """Encode once: source ids (B, S) long and mask (B, S) bool (True at tokens) -> state of B rows."""
        ...

    def step(self, state: Any, prefix: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """prefix (B', t) long, starting with BOS -> (log-probabilities of the next token (B', V), new state).

        Called once per time step with the prefix grown by one token; the model may cache what it
        has already read in the state or recompute from the whole prefix.
        """
        ...

    def reorder(self, state: Any, index: torch.Tensor) -> Any:
        """Rows ``index`` (B'',) long of the state: may repeat rows and change their number."""
        ...


def _check_source(source: torch.Tensor, source_mask: torch.Tensor) -> None:
    if source.dim() != 2:
        raise AekitError(f"source has shape {tuple(source.shape)}", "decoding needs token ids (B, S)",
                         "pass a 2-D batch of ids")  # fmt: skip
    if tuple(source_mask.shape) != tuple(source.shape):
        raise AekitError(f"source_mask has shape {tuple(source_mask.shape)}",
                         f"it must match the source's {tuple(source.shape)}",
                         "pass the mask of the same batch (True at tokens)")  # fmt: skip


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AekitError(f"{name} is {value!r}", f"{name} must be an integer >= 1", f"pass e.g. {name}=4")


def _check_length_penalty(length_penalty: Any) -> None:
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, int | float):
        raise AekitError(f"length_penalty is {length_penalty!r}", "it must be a number",
                         "pass e.g. length_penalty=1.0 (0 scores by the raw sum of log-probabilities)")  # fmt: skip
    if not math.isfinite(length_penalty):
        raise AekitError(f"length_penalty is {length_penalty!r}", "it must be finite",
                         "pass e.g. length_penalty=1.0 (0 scores by the raw sum of log-probabilities)")  # fmt: skip


def _next_log_probs(log_probs: Any, rows: int) -> torch.Tensor:
    """The model's step output, checked, as float with PAD and BOS ruled out: (rows, V)."""
    if not isinstance(log_probs, torch.Tensor) or log_probs.dim() != 2 or log_probs.shape[0] != rows:
        shape = tuple(log_probs.shape) if isinstance(log_probs, torch.Tensor) else type(log_probs).__name__
        raise AekitError(f"the model's step returned log-probabilities of shape {shape}",
                         f"decoding needs ({rows}, V), one row per prefix",
                         "return (log_probs (B, V), state) from step")  # fmt: skip
    if log_probs.shape[1] <= EOS:
        raise AekitError(f"the model's vocabulary has {log_probs.shape[1]} tokens",
                         f"it must hold the special tokens PAD={PAD}, BOS={BOS} and EOS={EOS}",
                         "decode with a model over a tokenizer's full vocabulary")  # fmt: skip
    log_probs = log_probs.float()
    specials = torch.tensor([PAD, BOS], device=log_probs.device)
    return log_probs.index_fill(1, specials, _NEG_INF)


@torch.no_grad()
def greedy_from_state(
    model: Decodable, state: Any, batch_size: int, max_len: int, device: torch.device | str
) -> torch.Tensor:
    """Greedy decoding from a state of ``batch_size`` rows (from ``start`` or any other way) -> ids (B, L) long.

    Each step takes the most probable token; a row is done at EOS. Rows cut at ``max_len`` have no EOS.
    """
    _check_int("max_len", max_len)
    device = torch.device(device)
    out = torch.full((batch_size, max_len), PAD, dtype=torch.long, device=device)  # (B, max_len)
    if batch_size == 0:
        return out[:, :0]
    active = torch.arange(batch_size, device=device)  # (b,) the sentences still decoding
    prefix = torch.full((batch_size, 1), BOS, dtype=torch.long, device=device)  # (b, t)
    steps = 0
    for t in range(max_len):
        log_probs, state = model.step(state, prefix)
        token = _next_log_probs(log_probs, prefix.shape[0]).argmax(1)  # (b,)
        out[active, t] = token
        steps = t + 1
        done = token == EOS
        if not bool(done.any()):
            prefix = torch.cat([prefix, token.unsqueeze(1)], 1)
            continue
        keep = (~done).nonzero().squeeze(1)  # (b',)
        if keep.numel() == 0 or steps == max_len:
            break
        active, prefix = active[keep], torch.cat([prefix[keep], token[keep].unsqueeze(1)], 1)
        state = model.reorder(state, keep)
    return out[:, :steps]


@torch.no_grad()
def greedy(model: Decodable, source: torch.Tensor, source_mask: torch.Tensor, max_len: int) -> torch.Tensor:
    """Greedy decoding: source ids (B, S) long and mask (B, S) bool -> ids (B, L) long, L <= max_len.

    Rows hold the tokens after BOS, end with EOS (or are cut at ``max_len``) and are PAD after it.
    """
    _check_source(source, source_mask)
    _check_int("max_len", max_len)
    if source.shape[0] == 0:
        return torch.zeros((0, 0), dtype=torch.long, device=source.device)
    state = model.start(source, source_mask)
    return greedy_from_state(model, state, source.shape[0], max_len, source.device)


@torch.no_grad()
def beam_search_from_state(
    model: Decodable,
    state: Any,
    batch_size: int,
    beam: int = 4,
    max_len: int = 100,
    length_penalty: float = 1.0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Beam search from a state of ``batch_size`` rows (from ``start`` or any other way) -> ids (B, L) long.

    See :func:`beam_search`; ``state`` is repeated ``beam`` times here through ``reorder``.
    """
    _check_int("beam", beam)
    _check_int("max_len", max_len)
    _check_length_penalty(length_penalty)
    device = torch.device(device)
    out = torch.full((batch_size, max_len), PAD, dtype=torch.long, device=device)  # (B, max_len)
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)  # (B,) of the chosen hypotheses
    if batch_size == 0:
        return out[:, :0]
    k = beam
    within = torch.arange(k, device=device)  # (k,)
    state = model.reorder(state, torch.arange(batch_size, device=device).repeat_interleave(k))
    active = torch.arange(batch_size, device=device)  # (b,) the sentences still decoding
    # per hypothesis (b, k): raw sum of log-probabilities, generated tokens (EOS included), finished.
    # One live hypothesis per sentence at first: the others are -inf, so no hypothesis is found twice.
    score = torch.full((batch_size, k), _NEG_INF, device=device)
    score[:, 0] = 0.0
    length = torch.zeros((batch_size, k), dtype=torch.long, device=device)
    finished = torch.zeros((batch_size, k), dtype=torch.bool, device=device)
    prefix = torch.full((batch_size * k, 1), BOS, dtype=torch.long, device=device)  # (b * k, t)
    for t in range(max_len):
        log_probs, state = model.step(state, prefix)
        log_probs = _next_log_probs(log_probs, prefix.shape[0])
        b, vocab = active.shape[0], log_probs.shape[1]
        candidate = score.unsqueeze(-1) + log_probs.view(b, k, vocab)  # (b, k, V) raw sums
        # a finished hypothesis stays as it is: one candidate, itself followed by PAD
        frozen = torch.full_like(candidate, _NEG_INF)
        frozen[..., PAD] = score
        candidate = torch.where(finished.unsqueeze(-1), frozen, candidate)
        if length_penalty != 0:  # rank by the length-normalised score; lengths are >= 1 here
            grown = (length + (~finished).long()).unsqueeze(-1)  # (b, k, 1)
            key = candidate / grown.to(candidate.dtype).pow(length_penalty)
        else:
            key = candidate
        key, flat = key.view(b, k * vocab).topk(k, dim=1)  # (b, k) best first
        origin, token = flat // vocab, flat % vocab  # (b, k) hypothesis extended, token appended
        score = candidate.view(b, k * vocab).gather(1, flat)
        was_finished = finished.gather(1, origin)
        length = length.gather(1, origin) + (~was_finished).long()
        finished = was_finished | (token == EOS)
        rows = (torch.arange(b, device=device).unsqueeze(1) * k + origin).view(-1)  # (b * k,)
        prefix = torch.cat([prefix[rows], token.view(-1, 1)], 1)
        live = ~finished & (score > _NEG_INF)  # (b, k) hypotheses that may still grow
        if t + 1 == max_len:
            done = torch.ones(b, dtype=torch.bool, device=device)
        elif length_penalty <= 0:
            # growing never raises a score here (log-probabilities <= 0, the divisor does not shrink):
            # a sentence is done once its best hypothesis (column 0) is finished
            done = ~live[:, 0]
        else:
            done = ~live.any(1)
        if bool(done.any()):
            ended = done.nonzero().squeeze(1)  # (d,)
            out[active[ended], : t + 1] = prefix[ended * k, 1:]  # column 0 is the best hypothesis
            lengths[active[ended]] = length[ended, 0]
            keep = (~done).nonzero().squeeze(1)  # (b',)
            if keep.numel() == 0:
                break
            active, score, length, finished = active[keep], score[keep], length[keep], finished[keep]
            kept_rows = (keep.unsqueeze(1) * k + within).view(-1)  # (b' * k,)
            rows, prefix = rows[kept_rows], prefix[kept_rows]
        state = model.reorder(state, rows)
    return out[:, : int(lengths.max())]


@torch.no_grad()
def beam_search(
    model: Decodable,
    source: torch.Tensor,
    source_mask: torch.Tensor,
    beam: int = 4,
    max_len: int = 100,
    length_penalty: float = 1.0,
) -> torch.Tensor:
    """Beam search: source ids (B, S) long and mask (B, S) bool -> the best hypothesis per sentence (B, L) long.

    ``beam`` hypotheses per sentence (B * beam rows) are kept, ranked by
    ``sum log p / length ** length_penalty``, where length counts the generated tokens, EOS
    included (``length_penalty=0``: the raw sum). A hypothesis is finished at EOS (it then stops
    growing and keeps its score) or at ``max_len`` tokens without EOS. With ``length_penalty <= 0``
    a sentence stops once its best hypothesis is finished (no other can beat it any more); with
    ``length_penalty > 0`` once all its hypotheses are finished. ``beam=1`` is greedy decoding.

    Rows hold the tokens after BOS, end with EOS (or are cut at ``max_len``) and are PAD after it.
    """
    _check_source(source, source_mask)
    _check_int("beam", beam)
    _check_int("max_len", max_len)
    _check_length_penalty(length_penalty)
    if source.shape[0] == 0:
        return torch.zeros((0, 0), dtype=torch.long, device=source.device)
    state = model.start(source, source_mask)
    return beam_search_from_state(model, state, source.shape[0], beam, max_len, length_penalty, source.device)


@torch.no_grad()
def translate_ids(
    model: Decodable,
    source: torch.Tensor,
    source_mask: torch.Tensor,
    beam: int = 4,
    max_len: int = 100,
    length_penalty: float = 1.0,
) -> torch.Tensor:
    """Decode source ids (B, S) long with mask (B, S) bool -> ids (B, L) long.

    :func:`greedy` for ``beam=1`` (``length_penalty`` plays no part there), else :func:`beam_search`.
    """
    _check_int("beam", beam)
    if beam == 1:
        _check_length_penalty(length_penalty)
        return greedy(model, source, source_mask, max_len)
    return beam_search(model, source, source_mask, beam, max_len, length_penalty)
