"""Sequence models: a sentence -> encoder -> code -> decoder -> a sentence.

    loss = NLL(y | decoder(code(encoder(C(x))))) [+ KL(q(z|x) || N(0, I))]     nats per target token

Every piece is a registered part (:mod:`aekit.registry`), saved as a name and options:

* ``sequence_encoder``: ``gru`` (bidirectional GRU) or ``transformer``; ids (B, S) -> states
  (B, S, H) and a summary (B, H) of the whole sentence.
* ``sequence_code``: what the decoder may see. ``attention``: every encoder state (no
  bottleneck); ``fixed``: one vector of size K per sentence (the autoencoder bottleneck);
  ``gaussian``: a Gaussian code of size K with a KL term (the sentence VAE).
* ``sequence_decoder``: ``gru`` (a GRU started from, and fed, the fixed code), ``gru-attention``
  (a GRU whose outputs attend to the encoder states with additive scores) or ``transformer``
  (causal self-attention, cross-attention to the states or to the code as one position).
* ``sequence_corruption``: ``tokens`` (word dropout, masking, local shuffles of the input).

:class:`SequenceModel` joins them with a shared token embedding (source and target share one
subword vocabulary; the output layer reuses the embedding matrix) and a categorical likelihood
over tokens that ignores padding. It implements the decoding protocol of
:mod:`aekit.text.decoding` (``start``, ``step``, ``reorder``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import registry
from ..errors import AekitError
from ..latents import GaussianPosterior
from ..model import LossOutput
from .batches import TokenBatch
from .tokenizer import BOS, EOS, PAD, UNK


@dataclass
class Memory:
    """What the decoder conditions on. ``states`` (B, S, H) with ``mask`` (B, S) for attention;
    ``code`` (B, K) for a fixed-size code; ``kl`` (B,) nats for a Gaussian code, and
    ``kl_objective`` (scalar, nats summed over the batch) the KL the training objective charges
    (with free bits, never below the floor)."""

    states: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    code: torch.Tensor | None = None
    kl: torch.Tensor | None = None
    kl_objective: torch.Tensor | None = None

    def index_select(self, index: torch.Tensor) -> Memory:
        pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        return Memory(pick(self.states), pick(self.mask), pick(self.code), pick(self.kl))


def sinusoids(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Sinusoidal position encodings (length, dim) of Vaswani et al. (2017)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


# ------------------------------------------------------------------------------------------------ #
# encoders: embedded tokens (B, S, E) + mask (B, S) -> states (B, S, H), summary (B, H)


class SequenceEncoder(registry.Part):
    kind = "sequence_encoder"
    state_size: int
    summary_size: int


class GRUSequenceEncoder(SequenceEncoder):
    """A bidirectional GRU: states (B, S, 2 * hidden); summary = the last forward and the first
    backward state of the top layer (B, 2 * hidden)."""

    name = "gru"

    def __init__(self, embedding_size: int, hidden: int = 256, layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.rnn = nn.GRU(
            embedding_size, hidden, layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0
        )
        self.state_size = self.summary_size = 2 * hidden

    def forward(self, embedded: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = mask.sum(1).clamp(min=1).cpu()  # (B,)
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        states, last = self.rnn(packed)  # last: (layers * 2, B, hidden)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=embedded.shape[1])
        return states, torch.cat([last[-2], last[-1]], dim=1)  # (B, S, 2h), (B, 2h)


def xavier_matrices(module: nn.Module) -> None:
    """Xavier-uniform weight matrices, as ``torch.nn.Transformer`` initialises its layers (torch's
    per-layer default draws the feed-forward and output projections about half as large)."""
    for parameter in module.parameters():
        if parameter.dim() > 1:
            nn.init.xavier_uniform_(parameter)


class TransformerSequenceEncoder(SequenceEncoder):
    """Transformer encoder layers (pre-norm) over embedded tokens with sinusoidal positions;
    summary = the mean of the states over the real tokens (B, dim)."""

    name = "transformer"

    def __init__(
        self, embedding_size: int, layers: int = 3, heads: int = 4, feedforward: int = 1024, dropout: float = 0.1
    ) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            embedding_size, heads, feedforward, dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(
            layer, layers, norm=nn.LayerNorm(embedding_size), enable_nested_tensor=False
        )
        xavier_matrices(self.layers)
        self.dropout = nn.Dropout(dropout)
        self.state_size = self.summary_size = embedding_size

    def forward(self, embedded: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.dropout(embedded + sinusoids(embedded.shape[1], embedded.shape[2], embedded.device))
        states = self.layers(x, src_key_padding_mask=~mask)  # (B, S, E)
        weights = mask.unsqueeze(-1).to(states.dtype)  # (B, S, 1)
        return states, (states * weights).sum(1) / weights.sum(1).clamp(min=1)


# ------------------------------------------------------------------------------------------------ #
# codes: states (B, S, H), mask, summary (B, H) -> Memory


class SequenceCode(registry.Part):
    kind = "sequence_code"
    code_size: int = 0
    bottleneck = True

    def code_of(self, memory: Memory) -> torch.Tensor:
        """One deterministic vector per sentence (B, K)."""
        assert memory.code is not None
        return memory.code


class AttentionCode(SequenceCode):
    """No bottleneck: the decoder attends to every encoder state. A sentence's code (for
    ``encode``) is the mean of its states."""

    name = "attention"
    bottleneck = False

    def __init__(self, state_size: int) -> None:
        super().__init__()
        self.code_size = state_size

    def forward(self, states, mask, summary, generator=None, sample=True) -> Memory:
        return Memory(states=states, mask=mask)

    def code_of(self, memory: Memory) -> torch.Tensor:
        assert memory.states is not None and memory.mask is not None
        weights = memory.mask.unsqueeze(-1).to(memory.states.dtype)
        return (memory.states * weights).sum(1) / weights.sum(1).clamp(min=1)


class FixedCode(SequenceCode):
    """One vector of ``code_size`` numbers per sentence, a tanh of an affine map of the summary:
    everything the decoder knows of the source passes through it (Cho et al. 2014)."""

    name = "fixed"

    def __init__(self, summary_size: int, code_size: int = 256) -> None:
        super().__init__()
        self.project = nn.Linear(summary_size, code_size)
        self.code_size = code_size

    def forward(self, states, mask, summary, generator=None, sample=True) -> Memory:
        return Memory(code=torch.tanh(self.project(summary)))  # (B, K)


class GaussianCode(SequenceCode):
    """q(z|x) = N(mu, diag sigma^2) of ``code_size`` numbers, with KL(q || N(0, I)) in nats per
    sentence (Bowman et al. 2016). Samples in training, the mean otherwise.

    ``free_bits`` (nats per code dimension, Kingma et al. 2016): the objective charges each
    dimension's batch-mean KL at least this much, so pushing a dimension's KL below it gains
    nothing; a decoder strong enough to ignore the code (posterior collapse) then has no reason to."""

    name = "gaussian"

    def __init__(self, summary_size: int, code_size: int = 32, free_bits: float = 0.0) -> None:
        super().__init__()
        self.project = nn.Linear(summary_size, 2 * code_size)
        self.code_size, self.free_bits = code_size, free_bits

    def posterior(self, summary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance (B, K) each."""
        mean, log_var = self.project(summary).float().chunk(2, dim=-1)
        return mean, log_var.clamp(-12, 8)

    def forward(self, states, mask, summary, generator=None, sample=True) -> Memory:
        mean, log_var = self.posterior(summary)
        q = GaussianPosterior(mean, log_var)
        kl = q.kl_to_standard_normal()  # (B,)
        objective = q.kl_with_free_bits(self.free_bits) * len(kl)  # summed over the batch
        if sample:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
            return Memory(code=mean + (0.5 * log_var).exp() * noise, kl=kl, kl_objective=objective)
        return Memory(code=mean, kl=kl, kl_objective=objective)

    def code_of(self, memory: Memory) -> torch.Tensor:
        assert memory.code is not None
        return memory.code


# ------------------------------------------------------------------------------------------------ #
# decoders: memory + embedded target inputs (B, T, E) -> output features (B, T, E); incremental
# decoding keeps a state per sentence


class SequenceDecoder(registry.Part):
    kind = "sequence_decoder"
    needs_states = False  # whether the decoder attends to encoder states (no bottleneck)
    recurrent = True  # whether step() carries a hidden state, or recomputes from the prefix


class GRUCodeDecoder(SequenceDecoder):
    """A GRU started from the code, which is also fed at every step next to the previous token
    (Cho et al. 2014); outputs are projected to the embedding size."""

    name = "gru"

    def __init__(
        self, embedding_size: int, code_size: int, hidden: int = 512, layers: int = 1, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.initial = nn.Linear(code_size, hidden * layers)
        self.rnn = nn.GRU(
            embedding_size + code_size, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.out = nn.Linear(hidden + code_size + embedding_size, embedding_size)
        self.dropout = nn.Dropout(dropout)
        self.layers, self.hidden = layers, hidden

    def initial_state(self, memory: Memory) -> torch.Tensor:
        assert memory.code is not None, "the gru decoder needs a fixed-size code"
        h = torch.tanh(self.initial(memory.code))  # (B, layers * hidden)
        return h.view(len(h), self.layers, self.hidden).transpose(0, 1).contiguous()  # (layers, B, hidden)

    def forward(self, memory: Memory, embedded: torch.Tensor, hidden: torch.Tensor | None = None):
        """embedded (B, T, E) -> features (B, T, E), last hidden state (layers, B, hidden)."""
        hidden = self.initial_state(memory) if hidden is None else hidden
        code = memory.code.unsqueeze(1).expand(-1, embedded.shape[1], -1)  # (B, T, K)
        outputs, hidden = self.rnn(torch.cat([embedded, code], -1), hidden)  # (B, T, hidden)
        features = self.out(self.dropout(torch.cat([outputs, code, embedded], -1)))
        return features, hidden


class AttentionGRUDecoder(SequenceDecoder):
    """A GRU over the target tokens whose every output attends to the encoder states with
    additive scores v . tanh(W s_t + U h_j) (Bahdanau et al. 2015, scored after the GRU step as in
    Luong et al. 2015 so that training runs the GRU over the whole sentence at once)."""

    name = "gru-attention"
    needs_states = True

    def __init__(
        self,
        embedding_size: int,
        state_size: int,
        summary_size: int,
        hidden: int = 512,
        layers: int = 1,
        attention_size: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.initial = nn.Linear(summary_size, hidden * layers)
        self.rnn = nn.GRU(embedding_size, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.query = nn.Linear(hidden, attention_size, bias=False)
        self.key = nn.Linear(state_size, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)
        self.out = nn.Linear(hidden + state_size + embedding_size, embedding_size)
        self.dropout = nn.Dropout(dropout)
        self.layers, self.hidden = layers, hidden

    def initial_state(self, memory: Memory, summary: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.initial(summary))
        return h.view(len(h), self.layers, self.hidden).transpose(0, 1).contiguous()

    def forward(self, memory: Memory, embedded: torch.Tensor, hidden: torch.Tensor):
        assert memory.states is not None and memory.mask is not None
        outputs, hidden = self.rnn(embedded, hidden)  # (B, T, hidden)
        keys = self.key(memory.states)  # (B, S, A)
        scores = self.score(torch.tanh(self.query(outputs).unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)  # (B, T, S)
        scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        context = torch.softmax(scores.float(), -1).to(outputs.dtype) @ memory.states  # (B, T, H)
        return self.out(self.dropout(torch.cat([outputs, context, embedded], -1))), hidden


class TransformerSequenceDecoder(SequenceDecoder):
    """Transformer decoder layers (pre-norm): causal self-attention over the target prefix and
    cross-attention to the encoder states, or to the fixed code as a single position."""

    name = "transformer"
    needs_states = True
    recurrent = False

    def __init__(
        self,
        embedding_size: int,
        code_size: int = 0,
        layers: int = 3,
        heads: int = 4,
        feedforward: int = 1024,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layer = nn.TransformerDecoderLayer(
            embedding_size, heads, feedforward, dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerDecoder(layer, layers, norm=nn.LayerNorm(embedding_size))
        xavier_matrices(self.layers)
        self.from_code = nn.Linear(code_size, embedding_size) if code_size else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, memory: Memory, embedded: torch.Tensor, hidden: Any = None):
        if memory.states is not None:
            keys, key_mask = memory.states, memory.mask
        else:  # a fixed-size code: one position to attend to
            assert self.from_code is not None and memory.code is not None
            keys, key_mask = self.from_code(memory.code).unsqueeze(1), None
        length = embedded.shape[1]
        x = self.dropout(embedded + sinusoids(length, embedded.shape[2], embedded.device))
        causal = torch.triu(torch.full((length, length), float("-inf"), device=x.device), diagonal=1)
        features = self.layers(
            x,
            keys,
            tgt_mask=causal,
            tgt_is_causal=True,
            memory_key_padding_mask=None if key_mask is None else ~key_mask,
        )
        return features, None


# ------------------------------------------------------------------------------------------------ #
# corruption of the input sentence (the denoising sequence autoencoder's C(x~|x))


class TokenCorruption(registry.Part):
    """Word dropout (delete a token with probability ``drop``), masking (replace one with UNK with
    probability ``mask``) and local shuffles (each token moves at most ``shuffle`` places; Lample et
    al. 2018). ids (B, S) PAD-padded, EOS-terminated -> corrupted ids (B, S'), same conventions."""

    kind = "sequence_corruption"
    name = "tokens"

    def __init__(self, drop: float = 0.1, mask: float = 0.1, shuffle: int = 3) -> None:
        super().__init__()
        for label, p in (("drop", drop), ("mask", mask)):
            if not 0 <= p < 1:
                raise AekitError(f"{label}={p} is not a probability below 1", "it is a per-token rate", "use [0, 1)")
        if shuffle < 0:
            raise AekitError(f"shuffle={shuffle} is negative", "it is how far a token may move", "use >= 0")
        self.drop, self.mask, self.shuffle = drop, mask, shuffle

    def forward(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        words = (ids != PAD) & (ids != EOS)  # (B, S) the tokens that may change
        if self.shuffle > 0:  # sort positions by index + U(0, shuffle + 1)
            keys = torch.arange(ids.shape[1], device=ids.device, dtype=torch.float32).expand(ids.shape).clone()
            noise = torch.rand(ids.shape, generator=generator, device=ids.device) * (self.shuffle + 1)
            keys = torch.where(words, keys + noise, keys + 1e6 * (~words))  # specials stay at the end
            ids = ids.gather(1, torch.argsort(keys, dim=1, stable=True))
            words = (ids != PAD) & (ids != EOS)
        if self.mask > 0:
            masked = (torch.rand(ids.shape, generator=generator, device=ids.device) < self.mask) & words
            ids = ids.masked_fill(masked, UNK)
        if self.drop > 0:
            keep = ~((torch.rand(ids.shape, generator=generator, device=ids.device) < self.drop) & words)
            keep &= ids != PAD
            keep[:, 0] |= words[:, 0] & ~(keep & words).any(1)  # never a sentence without words
            order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept tokens first, in order
            ids = ids.gather(1, order).masked_fill(~keep.gather(1, order), PAD)
            ids = ids[:, : max(int(keep.sum(1).max()), 1)]
        return ids


# ------------------------------------------------------------------------------------------------ #
# the model


def token_nll(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Categorical negative log-likelihood per target position (B, T), nats; 0 at PAD labels.
    With ``label_smoothing`` e the target is (1 - e) one-hot + e uniform (training only)."""
    flat = F.cross_entropy(
        logits.float().flatten(0, 1),
        labels.flatten(),
        ignore_index=PAD,
        reduction="none",
        label_smoothing=label_smoothing,
    )
    return flat.view(labels.shape)


class SequenceModel(nn.Module):
    """Shared embedding -> encoder -> code -> decoder -> tied output layer, with a categorical
    likelihood over the shared subword vocabulary.

    * ``loss(batch)``: nats per target token (NLL, plus the weighted KL of a Gaussian code).
    * ``encode(source, mask)`` (B, S) -> codes (B, K).
    * ``decode_code(code)``: a decoding start state from codes alone (bottleneck codes only).
    * ``start`` / ``step`` / ``reorder``: the protocol greedy and beam search decode with.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        encoder: SequenceEncoder,
        code: SequenceCode,
        decoder: SequenceDecoder,
        corruption: TokenCorruption | None = None,
        dropout: float = 0.1,
        label_smoothing: float = 0.0,
        decoder_word_dropout: float = 0.0,
        kl_weight: float = 1.0,
        max_tokens: int = 128,
        family: str = "seq2seq",
        tokenizer_fingerprint: str = "",
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=PAD)
        nn.init.normal_(self.embedding.weight, std=embedding_size**-0.5)
        with torch.no_grad():
            self.embedding.weight[PAD].zero_()
        self.encoder, self.code, self.decoder, self.corruption = encoder, code, decoder, corruption
        if decoder.needs_states and not isinstance(decoder, TransformerSequenceDecoder) and code.bottleneck:
            raise AekitError(
                f"the {decoder.name} decoder attends to encoder states, but the {code.name} code keeps one vector",
                "attention needs every state",
                "use the attention code, or the gru or transformer decoder",
            )
        if not code.bottleneck and not decoder.needs_states:
            raise AekitError(
                f"the {decoder.name} decoder reads a fixed-size code, but the attention code gives states",
                "it has no attention",
                "use a fixed or gaussian code, or the gru-attention or transformer decoder",
            )
        self.dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.vocab_size, self.embedding_size = vocab_size, embedding_size
        self.label_smoothing, self.decoder_word_dropout, self.kl_weight = (
            label_smoothing,
            decoder_word_dropout,
            kl_weight,
        )
        self.max_tokens, self.family, self.tokenizer_fingerprint = max_tokens, family, tokenizer_fingerprint
        self.register_buffer("penalty_scale", torch.ones(()), persistent=False)

    # -- configuration ------------------------------------------------------------------------ #

    def config(self) -> dict[str, Any]:
        """Everything that rebuilds this model (JSON)."""
        return {
            "family": self.family,
            "vocab_size": self.vocab_size,
            "embedding_size": self.embedding_size,
            "encoder": self.encoder.spec(),
            "code": self.code.spec(),
            "decoder": self.decoder.spec(),
            "corruption": self.corruption.spec() if self.corruption is not None else None,
            "dropout": self.dropout.p,
            "label_smoothing": self.label_smoothing,
            "decoder_word_dropout": self.decoder_word_dropout,
            "kl_weight": self.kl_weight,
            "max_tokens": self.max_tokens,
            "tokenizer_fingerprint": self.tokenizer_fingerprint,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SequenceModel:
        parts = {
            "encoder": registry.build("sequence_encoder", config["encoder"]),
            "code": registry.build("sequence_code", config["code"]),
            "decoder": registry.build("sequence_decoder", config["decoder"]),
            "corruption": registry.build("sequence_corruption", config["corruption"]) if config["corruption"] else None,
        }
        rest = {k: v for k, v in config.items() if k not in parts}
        return cls(**rest, **parts)

    @property
    def code_size(self) -> int:
        return self.code.code_size

    # -- pieces ---------------------------------------------------------------------------------- #

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> (B, T, E), scaled by sqrt(E) as the tied output layer expects."""
        return self.embedding(ids) * math.sqrt(self.embedding_size)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Decoder features (B, T, E) -> logits over the vocabulary (B, T, V), tied to the embedding."""
        return F.linear(self.dropout(features), self.embedding.weight, self.bias)

    def memory(self, source: torch.Tensor, mask: torch.Tensor, generator=None, sample: bool = True):
        """(B, S) ids and mask -> (Memory, summary (B, H))."""
        states, summary = self.encoder(self.dropout(self.embed(source)), mask)
        return self.code(states, mask, summary, generator=generator, sample=sample), summary

    def _hidden(self, memory: Memory, summary: torch.Tensor) -> Any:
        if isinstance(self.decoder, AttentionGRUDecoder):
            return self.decoder.initial_state(memory, summary)
        return None

    def features(self, memory: Memory, summary: torch.Tensor, target_input: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: target inputs (B, T) -> decoder features (B, T, E)."""
        features, _ = self.decoder(memory, self.dropout(self.embed(target_input)), self._hidden(memory, summary))
        return features

    # -- the objective ---------------------------------------------------------------------------- #

    def loss(
        self, batch: TokenBatch, generator: torch.Generator | None = None, penalty_scale: Any = 1.0, noisy: bool = True
    ) -> LossOutput:
        """Nats per target token: the categorical NLL (label-smoothed in training) plus, for a
        Gaussian code, ``kl_weight * penalty_scale`` times the KL spread over the sentence's tokens.
        ``terms["nll"]`` is the unsmoothed NLL per token, ``terms["kl"]`` the KL per token."""
        source, mask = batch.source, batch.source_mask
        if self.corruption is not None and noisy:
            source = self.corruption(source, generator)
            mask = source != PAD
        memory, summary = self.memory(source, mask, generator, sample=noisy)
        target_input = batch.target_input  # (B, T)
        if self.decoder_word_dropout > 0 and self.training:  # Bowman et al.: the decoder must lean on the code
            drop = torch.rand(target_input.shape, generator=generator, device=target_input.device)
            drop = (drop < self.decoder_word_dropout) & (target_input != PAD) & (target_input != BOS)
            target_input = target_input.masked_fill(drop, UNK)
        logits = self.logits(self.features(memory, summary, target_input))  # (B, T, V)
        labels = batch.target_output  # (B, T)
        tokens = (labels != PAD).sum().clamp(min=1)
        smoothing = self.label_smoothing if self.training else 0.0
        nll_sum = token_nll(logits, labels, smoothing).sum()
        terms = {"nll": nll_sum / tokens if smoothing == 0 else token_nll(logits.detach(), labels).sum() / tokens}
        total = nll_sum / tokens
        if memory.kl is not None:
            kl = memory.kl.sum() / tokens
            terms["kl"] = kl
            charged = kl if memory.kl_objective is None else memory.kl_objective / tokens
            total = total + self.kl_weight * penalty_scale * charged
        return LossOutput(total=total, terms=terms)

    @torch.no_grad()
    def sentence_nll(self, batch: TokenBatch) -> torch.Tensor:
        """-log p(y | x) per sentence (B,), nats, with the code at its mean (deterministic)."""
        memory, summary = self.memory(batch.source, batch.source_mask, sample=False)
        logits = self.logits(self.features(memory, summary, batch.target_input))
        return token_nll(logits, batch.target_output).sum(1)

    @torch.no_grad()
    def log_importance_weights(self, batch: TokenBatch, samples: int, generator: torch.Generator | None = None):
        """(S, B) log p(y | z_s) + log p(z_s) - log q(z_s | x), z_s ~ q(z | x), nats: a Gaussian
        code's importance weights; logsumexp over S minus log S estimates log p(y) (Burda et al. 2016)."""
        if not isinstance(self.code, GaussianCode):
            raise AekitError(
                f"the {self.code.name} code has no prior",
                "importance sampling needs a Gaussian code",
                "use a sequence-vae model",
            )
        _, summary = self.encoder(self.embed(batch.source), batch.source_mask)
        mean, log_var = self.code.posterior(summary)  # (B, K) each
        std = (0.5 * log_var).exp()
        prior = torch.distributions.Normal(0.0, 1.0)
        weights = []
        for _ in range(samples):
            z = mean + std * torch.randn(mean.shape, generator=generator, device=mean.device)
            log_q = torch.distributions.Normal(mean, std).log_prob(z).sum(-1)
            memory = Memory(code=z)
            logits = self.logits(self.features(memory, summary, batch.target_input))
            log_likelihood = -token_nll(logits, batch.target_output).sum(1)
            weights.append(log_likelihood + prior.log_prob(z).sum(-1) - log_q)
        return torch.stack(weights)

    @torch.no_grad()
    def encode(self, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentence codes (B, K): the fixed code, the posterior mean, or the mean encoder state."""
        memory, _ = self.memory(source, mask, sample=False)
        return self.code_of(memory)

    def code_of(self, memory: Memory) -> torch.Tensor:
        return self.code.code_of(memory)

    # -- the decoding protocol (aekit.text.decoding) --------------------------------------------- #

    def start(self, source: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
        memory, summary = self.memory(source, mask, sample=False)
        return {"memory": memory, "hidden": self._hidden(memory, summary), "fed": 0}

    def start_from_code(self, code: torch.Tensor) -> dict[str, Any]:
        """A decoding state from codes (B, K) alone: sampling and interpolation of a bottleneck model."""
        if not self.code.bottleneck:
            raise AekitError(
                "this model has no fixed-size code",
                "its decoder attends to every encoder state",
                "decode from codes with a fixed or gaussian code model",
            )
        return {"memory": Memory(code=code), "hidden": None, "fed": 0}

    def step(self, state: dict[str, Any], prefix: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        """prefix (B, t) starting with BOS -> log-probabilities of the next token (B, V), new state."""
        memory = state["memory"]
        if self.decoder.recurrent:  # feed only the tokens not fed yet (one per call)
            new = prefix[:, state["fed"] :]
            features, hidden = self.decoder(memory, self.embed(new), state["hidden"])
            state = {"memory": memory, "hidden": hidden, "fed": prefix.shape[1]}
        else:
            features, _ = self.decoder(memory, self.embed(prefix))
        logits = self.logits(features[:, -1:]).squeeze(1).float()  # (B, V)
        logits[:, PAD] = float("-inf")
        logits[:, BOS] = float("-inf")
        return torch.log_softmax(logits, -1), state

    def reorder(self, state: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
        hidden = state["hidden"]
        return {
            "memory": state["memory"].index_select(index),
            "hidden": None if hidden is None else hidden.index_select(1, index),
            "fed": state["fed"],
        }


class SentenceClassifier(nn.Module):
    """A trained sequence model's embedding, encoder and code, then a linear head: logits (B, C)
    from PAD-padded token ids (B, S) (ids may arrive as floats: they are rounded to integers). The
    autoencoder's features (copied) initialise a supervised network; ``freeze`` keeps them fixed and
    trains the head only. Train it with :func:`aekit.train.fine_tune`."""

    def __init__(self, model: SequenceModel, classes: int, freeze: bool = False) -> None:
        super().__init__()
        if classes < 2:
            raise AekitError(f"classes={classes}", "a classifier needs at least two classes", "pass classes >= 2")
        # copies: training the classifier leaves the autoencoder as it was
        self.embedding, self.encoder, self.code = (
            copy.deepcopy(m) for m in (model.embedding, model.encoder, model.code)
        )
        self.scale = math.sqrt(model.embedding_size)
        self.head = nn.Linear(model.code_size, classes)
        if freeze:
            for part in (self.embedding, self.encoder, self.code):
                part.requires_grad_(False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.round().long() if ids.is_floating_point() else ids
        mask = ids != PAD
        longest = max(int(mask.sum(1).max()), 1)
        ids, mask = ids[:, :longest], mask[:, :longest]  # (B, S') without columns of padding only
        states, summary = self.encoder(self.embedding(ids) * self.scale, mask)
        memory = self.code(states, mask, summary, sample=False)
        return self.head(self.code.code_of(memory))  # (B, C)


class SequenceStep(nn.Module):
    """The step of :func:`aekit.train.fit` for sequence models: :meth:`SequenceModel.loss` on
    :class:`~aekit.text.batches.TokenBatch` batches, nats per target token. The loop weights each
    batch by its target tokens (``batch.weight``). ``penalty_scale`` ramps the KL (warm-up)."""

    def __init__(self, model: SequenceModel, penalty_warmup: bool = False) -> None:
        super().__init__()
        self.model = model
        self.penalty_warmup = penalty_warmup
        self.register_buffer("penalty_scale", torch.ones(()), persistent=False)

    def forward(self, batch: TokenBatch, generator: torch.Generator | None = None) -> LossOutput:
        scale = self.penalty_scale if self.penalty_warmup else 1.0
        return self.model.loss(batch, generator, penalty_scale=scale)

    def evaluate(self, batch: TokenBatch, generator: torch.Generator | None = None) -> LossOutput:
        return self.model.loss(batch, generator)  # seeded corruption and code samples: the objective

    def describe(self) -> dict[str, Any]:
        """What must not change when a run resumes: the model's configuration."""
        return self.model.config()
