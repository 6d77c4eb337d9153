"""Hosts: a trained network together with the data it runs over, ready to have one of its modules
read (:func:`~aekit.sae.collect.collect`) and replaced by a dictionary
(:func:`~aekit.sae.splice.loss_recovered`).

A :class:`Host` says how to run the network on a batch, which of the rows a hooked module yields
are real (a sequence's padding is not), what the network's own loss on a batch is, and, for text,
one line of context per kept row for the feature browser. Two constructors build one:

* :func:`sequence_host`: a sequence model (``aekit.text``: a translator or a sentence autoencoder),
  teacher forced over sentence pairs; the loss is nats per target token.
* :func:`array_host`: any module over an array cut into batches; for an aekit
  :class:`~aekit.model.Autoencoder` the loss is its reconstruction NLL in nats per example.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import AekitError


@dataclass
class Host:
    """A network with its data, as :func:`~aekit.sae.collect.collect` and
    :func:`~aekit.sae.splice.loss_recovered` take them.

    * ``model``: the network; hooks attach to its submodules.
    * ``batches``: the data, batch after batch (a list, or any iterable).
    * ``forward(batch)``: runs the network on a batch.
    * ``keep(batch)``: a bool mask over the rows a hooked module yields on the batch (e.g. (B, T)
      for a (B, T, D) output), True at the real ones; None keeps every row.
    * ``loss(batch)``: the network's own loss on a batch, a scalar tensor in ``unit``; None when it
      has none (a torch.export program computes outputs, not a loss).
    * ``contexts(limit=None)``: one line of text per kept row, in the order ``collect`` stores the
      rows (batch after batch, row-major), at most ``limit``; None when the rows have no text.
    * ``description``: what the data are and what a row is; ``unit``: the loss's unit.
    """

    model: nn.Module
    batches: Iterable[Any]
    forward: Callable[[Any], Any]
    keep: Callable[[Any], torch.Tensor] | None = None
    loss: Callable[[Any], torch.Tensor] | None = None
    contexts: Callable[..., list[str]] | None = None
    description: str = ""
    unit: str = ""


def _device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters()), torch.zeros(())).device


def sequence_host(
    model: nn.Module,
    tokenizer: Any,
    sources: Sequence[str],
    targets: Sequence[str] | None,
    module: str,
    batch_size: int = 64,
) -> Host:
    """A sequence model (:class:`~aekit.text.models.SequenceModel`) teacher forced over sentence
    pairs, ``batch_size`` pairs a batch in the order given; sentences longer than the model's
    ``max_tokens`` are cut. For the sentence autoencoders (``model.family`` other than
    ``"seq2seq"``) the targets are the sources (``targets`` is ignored and may be None).

    Rows are the real positions on ``module``'s side. A module under ``encoder`` sees the source
    positions x_1 .. x_m EOS (keep: source != PAD, m + 1 rows a sentence); any other module the
    decoder's inputs BOS y_1 .. y_n at which a token is predicted (keep: target_output != PAD,
    n + 1 rows a sentence: the EOS the shorter sentences of a batch carry as a decoder input
    predicts nothing and is left out). A module whose rows are not (B, S) or (B, T) positions of
    its side fails in :func:`~aekit.sae.collect.collect` with the two counts.

    ``loss(batch)``: -log p(y | x) in nats per target token (EOS counted), the code at its mean.
    ``contexts``: on the target side the target prefix before the position, then the token at it
    in brackets (BOS written <s>): ``"A man in [a]"``; on the source side the whole source sentence
    with the token at the position in brackets (EOS written </s>): ``"Ein [Mann] steht ."``.
    """
    from ..text.batches import make_batch
    from ..text.pipeline import token_ids
    from ..text.tokenizer import EOS, PAD

    translating = getattr(model, "family", "seq2seq") == "seq2seq"
    if not translating:
        targets = sources
    elif targets is None:
        raise AekitError(
            "no target sentences for a seq2seq model",
            "its loss is -log p(target | source) and its decoder reads the target",
            "give the target side (--target-data FILE, or a .tsv of pairs)",
        )
    if len(sources) != len(targets):
        raise AekitError(
            f"{len(sources)} source but {len(targets)} target sentences", "they are pairs", "give as many of each"
        )
    if not len(sources):
        raise AekitError("no sentences", "the host runs over sentences", "give at least one")
    if int(batch_size) < 1:
        raise AekitError(f"batch_size={batch_size}", "it counts sentence pairs", "use 1 or more")
    source_ids = token_ids(tokenizer, sources, model.max_tokens, True, "source")
    target_ids = source_ids if targets is sources else token_ids(tokenizer, targets, model.max_tokens, True, "target")
    for side, ids in (("source", source_ids), ("target", target_ids)):
        empty = [i + 1 for i, row in enumerate(ids) if not row]
        if empty:
            raise AekitError(f"{side} sentence {empty[0]} is empty", "every sentence needs a token", "remove it")
    size = int(batch_size)
    batches = [make_batch(source_ids[i : i + size], target_ids[i : i + size]) for i in range(0, len(source_ids), size)]
    source_side = module.split(".")[0] == "encoder"
    device = _device(model)

    def forward(batch: Any) -> torch.Tensor:
        return model.sentence_nll(batch.to(device))  # (B,) nats

    def keep(batch: Any) -> torch.Tensor:  # (B, S) or (B, T - 1) bool
        return batch.source != PAD if source_side else batch.target_output != PAD

    @torch.no_grad()
    def loss(batch: Any) -> torch.Tensor:  # nats per target token
        return model.sentence_nll(batch.to(device)).sum() / batch.weight

    def contexts(limit: int | None = None) -> list[str]:
        lines: list[str] = []
        for batch in batches:
            mask = keep(batch)
            grid = batch.source if source_side else batch.target_input
            for row, real in zip(grid.tolist(), mask.tolist(), strict=True):
                ids = [token for token, kept in zip(row, real, strict=True) if kept]
                lines.extend(_source_contexts(tokenizer, ids, EOS) if source_side else _target_contexts(tokenizer, ids))
                if limit is not None and len(lines) >= limit:
                    return lines[:limit]
        return lines

    pairs = "sentence pairs" if translating else "sentences"
    if source_side:
        rows = "real source positions (x_1 .. x_m EOS)"
    else:
        rows = "real decoder positions (BOS y_1 .. y_n, each predicting the next token)"
    return Host(
        model, batches, forward, keep, loss, contexts,
        f"{len(source_ids)} {pairs} in {len(batches)} batches; rows: {rows}", "nats per target token (EOS counted)",
    )  # fmt: skip


def _target_contexts(tokenizer: Any, ids: list[int]) -> list[str]:
    """Decoder inputs BOS y_1 .. y_n -> "y_1 .. y_{t-1} [y_t]" per position ("[<s>]" at BOS)."""
    words = ids[1:]
    decoded = tokenizer.decode([words[:t] for t in range(len(words))] + [[token] for token in words])
    prefixes, tokens = decoded[: len(words)], decoded[len(words) :]
    return ["[<s>]", *(f"{prefix} [{token}]".strip() for prefix, token in zip(prefixes, tokens, strict=True))]


def _source_contexts(tokenizer: Any, ids: list[int], eos: int) -> list[str]:
    """Source positions x_1 .. x_m EOS -> the sentence with the token at each in brackets."""
    count = len(ids)
    pieces = tokenizer.decode(  # decoding stops at EOS: ids[t + 1 :] is the rest of the sentence
        [ids[:t] for t in range(count)] + [[token] for token in ids] + [ids[t + 1 :] for t in range(count)]
    )
    before, tokens, after = pieces[:count], pieces[count : 2 * count], pieces[2 * count :]
    lines = []
    for t in range(count):
        token = "</s>" if ids[t] == eos else tokens[t]
        lines.append(" ".join(part for part in (before[t], f"[{token}]", after[t]) if part))
    return lines


def array_host(model: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int, fixed_batch: int | None = None) -> Host:
    """Any module run as ``model(batch)`` over an array ``x`` (N, ...) cut into batches of
    ``batch_size`` examples (float32). ``fixed_batch``: a program exported for one batch size
    takes batches of exactly that size; the last ``N % fixed_batch`` examples are left out.

    ``loss(batch)``: for an aekit :class:`~aekit.model.Autoencoder`, the reconstruction NLL in
    nats per example (``model.loss(batch).nll.mean()``), with its corruption on when it has one
    (a denoiser scores reconstructing the batch from a corrupted copy); the corruption and any
    draw of the latent come from a generator seeded the same (0) at each call, so the clean,
    spliced and zeroed runs of a batch see the same noise. None for other modules."""
    from ..model import Autoencoder

    data = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, np.float32))
    data = data.float()
    size = int(fixed_batch if fixed_batch is not None else batch_size)
    if size < 1:
        raise AekitError(f"batch size {size}", "it counts examples", "use 1 or more")
    usable = len(data) - len(data) % size if fixed_batch is not None else len(data)
    if usable == 0:
        why = f"the program takes batches of exactly {size}" if fixed_batch is not None else "there is nothing to run"
        raise AekitError(f"{len(data)} examples", why, "give more examples")
    batches = [data[start : min(start + size, usable)] for start in range(0, usable, size)]
    device = _device(model)

    def forward(batch: torch.Tensor) -> Any:
        return model(batch.to(device))

    loss = None
    if isinstance(model, Autoencoder):
        noisy = model.corruption is not None

        @torch.no_grad()
        def loss(batch: torch.Tensor) -> torch.Tensor:  # nats per example
            batch = batch.to(device)
            generator = torch.Generator(device=batch.device).manual_seed(0)
            return model.loss(batch, generator=generator, noisy=noisy).nll.mean()

    left = f" (the last {len(data) - usable} left out)" if usable < len(data) else ""
    return Host(
        model, batches, forward, None, loss, None,
        f"{usable} examples in {len(batches)} batches of {size}{left}",
        "nats per example (reconstruction NLL)" if loss is not None else "",
    )  # fmt: skip
