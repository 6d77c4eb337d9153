"""Sequence families: presets that pick the parts of a :class:`~aekit.text.models.SequenceModel`.

=====================  ==============================================  =========================
family                 what it learns                                  code (default)
=====================  ==============================================  =========================
``seq2seq``            translation: source sentence -> target sentence  attention (or fixed)
``sequence``           reconstructs its input (Dai and Le 2015)         fixed, K numbers
``sequence-denoising`` reconstructs its input from C(x~|x): word         fixed
                       dropout, masking, local shuffles
``sequence-vae``       Gaussian code, KL warm-up, word dropout in the   gaussian, K numbers
                       decoder (Bowman et al. 2016)
=====================  ==============================================  =========================

:class:`SequenceConfig` declares every option once (:func:`aekit.config.setting`): ``aekit train``
exposes them and ``config.json`` records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import AUTO, Settings, setting
from ..errors import AekitError
from .models import (
    AttentionCode,
    AttentionGRUDecoder,
    FixedCode,
    GaussianCode,
    GRUCodeDecoder,
    GRUSequenceEncoder,
    SequenceModel,
    TokenCorruption,
    TransformerSequenceDecoder,
    TransformerSequenceEncoder,
)

SEQUENCE_FAMILIES = {
    "seq2seq": "translation: an encoder reads the source sentence, a decoder writes the target",
    "sequence": "sequence autoencoder: reconstructs its input sentence through a fixed-size code",
    "sequence-denoising": "sequence autoencoder that reconstructs sentences from corrupted copies",
    "sequence-vae": "sentence VAE: a Gaussian code with KL warm-up and decoder word dropout",
}


def is_sequence_family(name: str) -> bool:
    """Whether ``name`` is one of :data:`SEQUENCE_FAMILIES` (trained on text, not arrays)."""
    return name in SEQUENCE_FAMILIES


@dataclass
class SequenceConfig(Settings):
    """The short form of a sequence model: a family, an architecture and its sizes."""

    family: str = setting("seq2seq", "sequence family", choices=tuple(SEQUENCE_FAMILIES))
    architecture: str = setting(
        "transformer",
        "encoder and decoder: transformer, or gru (bidirectional GRU encoder)",
        choices=("transformer", "gru"),
    )
    code: str = setting(
        AUTO,
        "what the decoder sees: attention (every encoder state) or fixed (one vector per sentence); "
        "auto: attention for seq2seq, fixed for the autoencoders, gaussian for sequence-vae",
        choices=(AUTO, "attention", "fixed", "gaussian"),
    )
    code_size: int | str = setting(
        AUTO, "size K of a fixed or gaussian code; auto: 256, or 32 for sequence-vae", minimum=1, auto=True
    )
    embedding_size: int = setting(256, "token embedding and transformer width", minimum=8)
    gru_hidden: int = setting(256, "GRU hidden units per direction of the encoder (gru architecture)", minimum=1)
    layers: int = setting(3, "transformer layers in the encoder and in the decoder (gru: 1 layer)", minimum=1)
    heads: int = setting(8, "attention heads (transformer); must divide embedding_size", minimum=1)
    feedforward: int = setting(512, "transformer feed-forward width", minimum=1)
    dropout: float = setting(0.1, "dropout on embeddings, layers and outputs", minimum=0.0, below=1.0)
    label_smoothing: float = setting(0.1, "label smoothing of the training targets", minimum=0.0, below=1.0)
    vocab_size: int = setting(8000, "subword vocabulary (one BPE tokenizer for source and target)", minimum=16)
    max_tokens: int = setting(
        100, "longest sentence in subword tokens; longer ones are an error unless truncate", minimum=2
    )
    truncate: bool = setting(False, "cut sentences longer than max_tokens (the count is reported) instead of failing")
    batch_tokens: int = setting(2048, "tokens per batch (sentences are bucketed by length)", minimum=16)
    word_dropout: float | str = setting(
        AUTO,
        "decoder word dropout (input tokens replaced by <unk>); auto: 0.25 for sequence-vae, else 0",
        minimum=0.0,
        below=1.0,
        auto=True,
    )
    corrupt_drop: float = setting(0.1, "sequence-denoising: probability of deleting a token", minimum=0.0, below=1.0)
    corrupt_mask: float = setting(0.1, "sequence-denoising: probability of masking a token", minimum=0.0, below=1.0)
    corrupt_shuffle: int = setting(3, "sequence-denoising: how far a token may move", minimum=0)
    kl_weight: float = setting(1.0, "sequence-vae: weight of the KL term (after warm-up)", minimum=0.0)
    free_bits: float | str = setting(
        AUTO,
        "sequence-vae: KL floor per code dimension in nats (free bits: the code keeps at least "
        "free_bits * code_size nats); auto: 0.25 for sequence-vae",
        minimum=0.0,
        auto=True,
    )

    def resolved(self) -> dict[str, Any]:
        """The preset's choices with every ``auto`` decided."""
        vae = self.family == "sequence-vae"
        code = self.code
        if code == AUTO:
            code = "gaussian" if vae else "attention" if self.family == "seq2seq" else "fixed"
        if vae and code != "gaussian":
            raise AekitError(f"sequence-vae with code={code}", "the VAE's code is Gaussian", "leave code at auto")
        if not vae and code == "gaussian":
            raise AekitError(
                "code=gaussian outside sequence-vae", "a Gaussian code needs its KL term", "use --family sequence-vae"
            )
        code_size = self.code_size if self.code_size != AUTO else (32 if vae else 256)
        word_dropout = self.word_dropout if self.word_dropout != AUTO else (0.25 if vae else 0.0)
        if self.architecture == "transformer" and self.embedding_size % self.heads:
            raise AekitError(
                f"embedding_size {self.embedding_size} is not a multiple of heads {self.heads}",
                "each head takes an equal share",
                "change one of them",
            )
        free_bits = self.free_bits if self.free_bits != AUTO else (0.25 if vae else 0.0)
        if free_bits and not vae:
            raise AekitError(
                f"free_bits={free_bits} outside sequence-vae", "only a Gaussian code has a KL", "leave it at auto"
            )
        return {
            "code": code,
            "code_size": int(code_size),
            "word_dropout": float(word_dropout),
            "free_bits": float(free_bits),
        }


def build_sequence_model(config: SequenceConfig, vocab_size: int, tokenizer_fingerprint: str = "") -> SequenceModel:
    """The model a :class:`SequenceConfig` describes, over a vocabulary of ``vocab_size`` tokens."""
    config.validate()
    choice = config.resolved()
    e, gru = config.embedding_size, config.architecture == "gru"
    if gru:
        encoder = GRUSequenceEncoder(e, config.gru_hidden, 1, config.dropout)
    else:
        encoder = TransformerSequenceEncoder(e, config.layers, config.heads, config.feedforward, config.dropout)
    if choice["code"] == "attention":
        code = AttentionCode(encoder.state_size)
    elif choice["code"] == "fixed":
        code = FixedCode(encoder.summary_size, choice["code_size"])
    else:
        code = GaussianCode(encoder.summary_size, choice["code_size"], choice["free_bits"])
    attends = choice["code"] == "attention"
    if gru and attends:
        decoder = AttentionGRUDecoder(
            e, encoder.state_size, encoder.summary_size, 2 * config.gru_hidden, 1, config.gru_hidden, config.dropout
        )
    elif gru:
        decoder = GRUCodeDecoder(e, choice["code_size"], 2 * config.gru_hidden, 1, config.dropout)
    else:
        decoder = TransformerSequenceDecoder(
            e, 0 if attends else choice["code_size"], config.layers, config.heads, config.feedforward, config.dropout
        )
    corruption = None
    if config.family == "sequence-denoising":
        corruption = TokenCorruption(config.corrupt_drop, config.corrupt_mask, config.corrupt_shuffle)
    return SequenceModel(
        vocab_size=vocab_size,
        embedding_size=e,
        encoder=encoder,
        code=code,
        decoder=decoder,
        corruption=corruption,
        dropout=config.dropout,
        label_smoothing=config.label_smoothing,
        decoder_word_dropout=choice["word_dropout"],
        kl_weight=config.kl_weight,
        max_tokens=config.max_tokens,
        family=config.family,
        tokenizer_fingerprint=tokenizer_fingerprint,
    )
