"""A byte-pair-encoding subword tokenizer (Hugging Face ``tokenizers``), saved as JSON, never pickled.

Text is NFKC-normalised and split at spaces, each word marked by a leading ``▁`` (Metaspace), so
that ``decode(encode(s)) == s`` for text with single spaces between words (after NFKC); case is
kept. Characters never seen in training become ``<unk>``. The four special tokens have fixed ids:
:data:`PAD` 0, :data:`UNK` 1, :data:`BOS` 2, :data:`EOS` 3; their spellings in a sentence (``<s>``)
are ordinary text, not special tokens.

``fingerprint`` (the sha256 of the canonical JSON) names a tokenizer, so that a model can record
which one its token ids belong to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from ..errors import AekitError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")  # in the order of their ids
MIN_VOCAB_SIZE = 16
_METASPACE = {"replacement": "▁", "prepend_scheme": "always", "split": True}


def _canonical(text: str) -> str:
    """The JSON ``text`` with sorted keys and no spaces: equal tokenizers give equal strings."""
    return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class SubwordTokenizer:
    """Sentences <-> lists of token ids, by a BPE vocabulary learnt with :meth:`train`."""

    def __init__(self, tokenizer: Tokenizer, source: str = "the tokenizer") -> None:
        for token_id, token in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(token) != token_id:
                found = tokenizer.token_to_id(token)
                raise AekitError(
                    f"{source} has {token} at id {found}" if found is not None else f"{source} lacks {token}",
                    f"aekit needs the special tokens {', '.join(SPECIAL_TOKENS)} at ids 0-3",
                    "use a tokenizer trained with SubwordTokenizer.train",
                )
        tokenizer.encode_special_tokens = True  # "<s>" typed in a sentence is text, not BOS
        self._tokenizer = tokenizer
        self.last_truncated = 0  # sentences cut by the last encode(..., truncate=True)

    @classmethod
    def train(cls, lines: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2) -> SubwordTokenizer:
        """Learn a vocabulary of at most ``vocab_size`` tokens (the 4 specials included) from sentences;
        merges must occur at least ``min_frequency`` times. A small corpus may give a smaller vocabulary."""
        if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
            raise AekitError(
                f"vocab_size={vocab_size} is too small",
                "a vocabulary holds the 4 special tokens and the characters of the text",
                f"use vocab_size >= {MIN_VOCAB_SIZE} (thousands for real text)",
            )
        if not isinstance(min_frequency, int) or min_frequency < 1:
            raise AekitError(f"min_frequency={min_frequency} is not a positive count", "", "use 1 or more")
        tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS[UNK]))
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(**_METASPACE)
        tokenizer.decoder = decoders.Metaspace(**_METASPACE)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS), show_progress=False
        )
        counted = [0]

        def sentences() -> Iterator[str]:
            for line in lines:
                counted[0] += 1
                yield line

        tokenizer.train_from_iterator(sentences(), trainer)
        if counted[0] == 0:
            raise AekitError("no sentences to train the tokenizer on", "the corpus is empty", "pass some text")
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        """Number of token ids, the specials included: ids are 0 .. vocab_size - 1."""
        return self._tokenizer.get_vocab_size()

    def encode(self, lines: Sequence[str], max_tokens: int | None = None, truncate: bool = False) -> list[list[int]]:
        """Token ids of each sentence, without BOS or EOS. A sentence longer than ``max_tokens`` is an
        error, or, with ``truncate``, is cut to its first ``max_tokens`` tokens (``last_truncated``
        counts the sentences cut)."""
        if isinstance(lines, str):
            raise AekitError("encode takes a list of sentences, not one string", "", "pass [sentence]")
        if max_tokens is not None and max_tokens < 1:
            raise AekitError(f"max_tokens={max_tokens} leaves no room for a token", "", "use 1 or more, or None")
        encoded = [e.ids for e in self._tokenizer.encode_batch_fast(list(lines), add_special_tokens=False)]
        self.last_truncated = 0
        if max_tokens is None:
            return encoded
        for index, ids in enumerate(encoded):
            if len(ids) <= max_tokens:
                continue
            if not truncate:
                raise AekitError(
                    f"sentence {index + 1} has {len(ids)} tokens, more than max_tokens={max_tokens}",
                    "sentences are not cut unless asked",
                    "pass truncate=True to cut long sentences, or raise max_tokens",
                )
            encoded[index] = ids[:max_tokens]
            self.last_truncated += 1
        return encoded

    def decode(self, ids: Sequence[Sequence[int]] | torch.Tensor) -> list[str]:
        """Sentences from token ids (B, T): each read up to its first EOS, PAD and BOS dropped, UNK
        written ``<unk>``."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 2:
                raise AekitError(
                    f"decode got a tensor of shape {tuple(ids.shape)}", "it takes (sentences, tokens)", "add a dim"
                )
            ids = ids.tolist()
        size, kept = self.vocab_size, []
        for index, sentence in enumerate(ids):
            tokens = []
            for token in sentence:
                token = int(token)
                if token == EOS:
                    break
                if token in (PAD, BOS):
                    continue
                if not 0 <= token < size:
                    raise AekitError(
                        f"sentence {index + 1} holds token id {token}",
                        f"this tokenizer's ids are 0 .. {size - 1}",
                        "decode with the tokenizer the model was trained with",
                    )
                tokens.append(token)
            kept.append(tokens)
        return self._tokenizer.decode_batch(kept, skip_special_tokens=False)

    def to_json(self) -> str:
        """The tokenizer as canonical JSON text (sorted keys, no spaces): what :meth:`save` writes."""
        return _canonical(self._tokenizer.to_str())

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of :meth:`to_json`: equal for equal tokenizers, whichever file they came from."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer's JSON to ``path`` (atomically)."""
        from ..files import atomic_write_text

        return atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SubwordTokenizer:
        """A tokenizer saved by :meth:`save` (or a ``tokenizers`` JSON file with the four specials at ids 0-3)."""
        path = Path(path)
        if not path.is_file():
            raise AekitError(f"tokenizer file {path} does not exist", "nothing to load", "check the path")
        try:
            tokenizer = Tokenizer.from_str(path.read_text(encoding="utf-8"))
        except Exception as error:  # tokenizers raises a bare Exception for a file it cannot read
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise AekitError(
                f"{path} is not a tokenizer file", reason, "point at the tokenizer.json a training run saved"
            ) from None
        return cls(tokenizer, f"tokenizer file {path}")

    def __repr__(self) -> str:
        return f"SubwordTokenizer(vocab_size={self.vocab_size}, fingerprint={self.fingerprint[:12]})"
