"""Training, saving and using sequence models: :func:`train_sequence_model` and :class:`Translator`.

A sequence model directory holds ``config.json`` (the model's parts, the settings it was trained
with and the SHA-256 of its two other files), ``model.safetensors`` and ``tokenizer.json`` (the
subword tokenizer, Hugging Face ``tokenizers`` JSON). Nothing is pickled; a tokenizer that does
not belong to the model is refused by its fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batches import seeded_split
from ..config import FORMAT_VERSION, TrainConfig
from ..errors import AekitError
from ..files import ensure_writable_dir, read_json, read_safetensors, sha256_of, write_json, write_safetensors
from ..io import load_state
from .batches import TokenSource, make_batch
from .decoding import translate_ids
from .families import SequenceConfig, build_sequence_model
from .models import SequenceModel, SequenceStep
from .tokenizer import UNK, SubwordTokenizer

CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "config.json", "model.safetensors", "tokenizer.json"
CONFIG_KEY = "sequence_model"

#: sequence models shipped with aekit: name -> what it does
PRETRAINED = {"translate-de-en": "German -> English translation (Transformer, Multi30K captions)"}


def shipped_dir(name: str) -> Path:
    return Path(str(resources.files("aekit") / "weights" / name))


def is_sequence_model_dir(directory: str | Path) -> bool:
    """Whether ``directory`` holds a saved sequence model (rather than an autoencoder)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        return CONFIG_KEY in read_json(path)
    except AekitError:
        return False


def resolve_model_dir(name_or_dir: str | Path) -> Path:
    """A run directory, or the directory of a shipped model named in :data:`PRETRAINED`."""
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    if str(name_or_dir) in PRETRAINED and shipped_dir(str(name_or_dir)).is_dir():
        return shipped_dir(str(name_or_dir))
    raise AekitError(
        f"{name_or_dir} is neither a run directory nor a shipped sequence model",
        f"the shipped ones are {', '.join(PRETRAINED)}",
        "pass the --out directory of aekit train or one of those names",
    )


def save_sequence_model(
    model: SequenceModel,
    tokenizer: SubwordTokenizer,
    directory: str | Path,
    settings: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write the model, its tokenizer and their configuration to ``directory``; ``dtype``
    float16/bfloat16 halves the weights file (shipped models)."""
    directory = ensure_writable_dir(directory)
    config = {"format_version": FORMAT_VERSION, CONFIG_KEY: model.config(), "settings": settings or {}}
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    weights = write_safetensors(directory / WEIGHTS_FILE, tensors, {"config": config})
    tokenizer.save(directory / TOKENIZER_FILE)
    checks = {"weights_sha256": sha256_of(weights), "tokenizer_sha256": sha256_of(directory / TOKENIZER_FILE)}
    write_json(directory / CONFIG_FILE, {**config, **checks})
    return directory


def load_sequence_model(
    name_or_dir: str | Path, device: str | torch.device = "cpu", tokenizer: str | Path | None = None
) -> tuple[SequenceModel, SubwordTokenizer, dict[str, Any]]:
    """(model in eval mode, tokenizer, the settings it was trained with) from a model directory or
    a shipped name. ``tokenizer`` replaces the directory's tokenizer file; it must be the one the
    model was trained with."""
    directory = resolve_model_dir(name_or_dir)
    recorded = read_json(directory / CONFIG_FILE, "model configuration")
    if not isinstance(recorded, dict) or CONFIG_KEY not in recorded:
        raise AekitError(
            f"{directory} holds no sequence model",
            f"its {CONFIG_FILE} has no {CONFIG_KEY!r}",
            "pass the directory of a seq2seq or sequence run",
        )
    if recorded.get("format_version") != FORMAT_VERSION:
        raise AekitError(
            f"{directory / CONFIG_FILE} has format version {recorded.get('format_version')!r}",
            f"this aekit reads version {FORMAT_VERSION}",
            "train again",
        )
    config = recorded[CONFIG_KEY]
    model = SequenceModel.from_config(config)
    tokenizer_path = Path(tokenizer) if tokenizer is not None else directory / TOKENIZER_FILE
    vocabulary = SubwordTokenizer.load(tokenizer_path)
    if config.get("tokenizer_fingerprint") and vocabulary.fingerprint != config["tokenizer_fingerprint"]:
        raise AekitError(
            f"tokenizer {tokenizer_path} does not belong to the model in {directory}",
            "its fingerprint differs from the one recorded when the model was trained",
            f"use the {TOKENIZER_FILE} saved beside the model",
        )
    weights = directory / WEIGHTS_FILE
    tensors, _ = read_safetensors(weights)
    expected = recorded.get("weights_sha256")
    if expected is not None and sha256_of(weights) != expected:
        raise AekitError(
            f"weights file {weights} is damaged",
            f"its SHA-256 differs from the one {CONFIG_FILE} recorded",
            "restore it or train again",
        )
    reference = model.state_dict()
    load_state(model, {k: v.to(reference[k].dtype) if k in reference else v for k, v in tensors.items()}, str(weights))
    return model.to(device).eval(), vocabulary, recorded.get("settings", {})


# ------------------------------------------------------------------------------------------------ #
# training


def token_ids(
    tokenizer: SubwordTokenizer, lines: Sequence[str], max_tokens: int, truncate: bool, what: str
) -> list[list[int]]:
    """Subword ids of ``lines`` (no BOS/EOS), at most ``max_tokens - 1`` each (EOS takes one)."""
    try:
        return tokenizer.encode(lines, max_tokens=max_tokens - 1, truncate=truncate)
    except AekitError as error:
        raise AekitError(f"{what}: {error}") from None


def train_sequence_model(
    settings: SequenceConfig,
    train_config: TrainConfig,
    source: Sequence[str],
    target: Sequence[str] | None = None,
    val_source: Sequence[str] | None = None,
    val_target: Sequence[str] | None = None,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    tokenizer: SubwordTokenizer | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
) -> tuple[SequenceModel, SubwordTokenizer, Any]:
    """Train a sequence model through :func:`aekit.train.fit`.

    ``source`` and ``target`` are parallel sentences (``target`` None: an autoencoder family
    reconstructs ``source``). Without validation sentences, ``train_config.val_fraction`` of the
    pairs are held out (seeded). The tokenizer is trained on the training sentences only (both
    sides, one vocabulary) unless given. Returns (model, tokenizer, :class:`~aekit.train.TrainResult`).
    """
    from ..train import fit

    settings.validate()
    train_config = train_config.validate()
    target = source if target is None else target
    if len(source) != len(target):
        raise AekitError(
            f"{len(source)} source but {len(target)} target sentences", "they are pairs", "give as many of each"
        )
    if val_source is None:
        if train_config.val_fraction > 0:
            kept, held = seeded_split(len(source), train_config.val_fraction, train_config.seed)
            kept, held = sorted(kept.tolist()), sorted(held.tolist())
            val_source, val_target = [source[i] for i in held], [target[i] for i in held]
            source, target = [source[i] for i in kept], [target[i] for i in kept]
    elif val_target is None:
        val_target = val_source
    if tokenizer is None:
        tokenizer = SubwordTokenizer.train(
            [*source, *target] if target is not source else source, vocab_size=settings.vocab_size
        )
    limit, cut = settings.max_tokens, settings.truncate
    source_ids = token_ids(tokenizer, source, limit, cut, "training source")
    target_ids = source_ids if target is source else token_ids(tokenizer, target, limit, cut, "training target")
    train_source = TokenSource(source_ids, target_ids, settings.batch_tokens)
    val = None
    if val_source:
        vs = token_ids(tokenizer, val_source, limit, cut, "validation source")
        vt = vs if val_target is val_source else token_ids(tokenizer, val_target, limit, cut, "validation target")
        val = TokenSource(vs, vt, settings.batch_tokens)
    torch.manual_seed(train_config.seed)
    model = build_sequence_model(settings, tokenizer.vocab_size, tokenizer.fingerprint)
    step = SequenceStep(model, penalty_warmup=train_config.penalty_warmup_epochs > 0)
    result = fit(step, train_source, train_config, val, callbacks, run_dir, resume, progress)
    return model.eval(), tokenizer, result


# ------------------------------------------------------------------------------------------------ #
# using a trained model


class Translator:
    """A sequence model with its tokenizer and a decoding rule: strings in, strings out.

    >>> translator = Translator.load("translate-de-en")
    >>> translator(["Ein Hund rennt über die Wiese."])
    ['A dog is running through the grass.']

    ``beam`` 1 decodes greedily; ``length_penalty`` divides a hypothesis' log-probability by
    length ** length_penalty; ``max_len`` caps the output (default: 1.5 x the source + 10 tokens,
    within the model's max_tokens). Sentences longer than the model's ``max_tokens`` are an error
    unless ``truncate`` (the number cut is kept in ``last_truncated``).
    """

    def __init__(
        self,
        model: SequenceModel,
        tokenizer: SubwordTokenizer,
        beam: int = 4,
        length_penalty: float = 1.0,
        max_len: int | None = None,
        truncate: bool = False,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
    ) -> None:
        if model.tokenizer_fingerprint and tokenizer.fingerprint != model.tokenizer_fingerprint:
            raise AekitError(
                "the tokenizer does not belong to the model",
                "their fingerprints differ",
                "use the tokenizer saved beside the model",
            )
        self.model, self.tokenizer = model.to(device).eval(), tokenizer
        self.beam, self.length_penalty, self.max_len, self.truncate = beam, length_penalty, max_len, truncate
        self.batch_size, self.device = batch_size, torch.device(device)
        self.last_truncated = 0

    @classmethod
    def load(cls, name_or_dir: str | Path, **options: Any) -> Translator:
        """From a run directory or a shipped name (see :data:`PRETRAINED`)."""
        model, tokenizer, _ = load_sequence_model(name_or_dir, options.get("device", "cpu"))
        return cls(model, tokenizer, **options)

    def _ids(self, sentences: Sequence[str]) -> list[list[int]]:
        if isinstance(sentences, str):
            raise AekitError(
                "a single string was given", "the translator takes a list of sentences", "wrap it in a list"
            )
        empty = [i + 1 for i, s in enumerate(sentences) if not s.strip()]
        if empty:
            raise AekitError(f"sentence {empty[0]} is empty", "there is nothing to translate", "remove empty lines")
        ids = token_ids(self.tokenizer, sentences, self.model.max_tokens, self.truncate, "input")
        self.last_truncated = getattr(self.tokenizer, "last_truncated", 0) if self.truncate else 0
        return ids

    def _batches(self, ids: list[list[int]]):
        """(positions, TokenBatch) in length order, ``batch_size`` sentences each."""
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            yield chosen, make_batch([ids[i] for i in chosen], [[UNK]] * len(chosen)).to(self.device)  # no target

    @torch.no_grad()
    def __call__(self, sentences: Sequence[str], progress: Any = None) -> list[str]:
        """Translate (or reconstruct) each sentence; ``progress`` (a tqdm bar) is advanced per sentence."""
        ids = self._ids(sentences)
        out: list[str] = [""] * len(ids)
        for chosen, batch in self._batches(ids):
            longest = batch.source.shape[1]
            max_len = self.max_len or min(int(1.5 * longest) + 10, 2 * self.model.max_tokens)
            tokens = translate_ids(self.model, batch.source, batch.source_mask, self.beam, max_len, self.length_penalty)
            for i, text in zip(chosen, self.tokenizer.decode(tokens.cpu()), strict=True):
                out[i] = text
            if progress is not None:
                progress.update(len(chosen))
        return out

    translate = __call__

    def token_ids(self, sentences: Sequence[str]) -> np.ndarray:
        """Token ids (N, S) int64, each sentence ended by EOS and padded with PAD: the input of a
        :class:`~aekit.text.models.SentenceClassifier`."""
        ids = self._ids(sentences)
        return make_batch(ids, [[UNK]] * len(ids)).source.numpy()

    @torch.no_grad()
    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        """Sentence codes (N, K) float32: the fixed code, the posterior mean, or the mean encoder state."""
        ids = self._ids(sentences)
        codes = np.zeros((len(ids), self.model.code_size), np.float32)
        for chosen, batch in self._batches(ids):
            codes[chosen] = self.model.encode(batch.source, batch.source_mask).float().cpu().numpy()
        return codes

    @torch.no_grad()
    def decode_codes(self, codes: np.ndarray | torch.Tensor, max_len: int | None = None) -> list[str]:
        """Sentences decoded (with this translator's beam) from codes (N, K) of a fixed or Gaussian
        code model."""
        z = torch.as_tensor(np.asarray(codes, np.float32), device=self.device)
        if z.ndim != 2 or z.shape[1] != self.model.code_size:
            raise AekitError(
                f"codes of shape {tuple(z.shape)}",
                f"this model's codes are (N, {self.model.code_size})",
                "pass codes from this model's encode",
            )
        wrapper = _FromCodes(self.model, z)
        dummy = torch.zeros(len(z), 1, dtype=torch.long, device=self.device)
        longest = max_len or self.model.max_tokens
        tokens = translate_ids(wrapper, dummy, dummy.bool(), self.beam, longest, self.length_penalty)
        return self.tokenizer.decode(tokens.cpu())

    def interpolate(self, first: str, second: str, steps: int = 5) -> list[str]:
        """Sentences decoded from ``steps`` codes evenly spaced from ``first``'s code to
        ``second``'s (a homotopy, Bowman et al. 2016); the ends are the two reconstructions."""
        if steps < 2:
            raise AekitError(f"steps={steps}", "an interpolation needs both ends", "use steps >= 2")
        a, b = self.encode([first, second])
        weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        return self.decode_codes((1 - weights) * a + weights * b)

    def sample(self, count: int, seed: int = 0) -> list[str]:
        """Sentences decoded from codes drawn from the prior N(0, I) (sequence-vae)."""
        if self.model.code.name != "gaussian":
            raise AekitError(
                "sampling needs a sequence-vae model", "other codes have no prior", "train with --family sequence-vae"
            )
        z = torch.randn(count, self.model.code_size, generator=torch.Generator().manual_seed(seed))
        return self.decode_codes(z)

    @torch.no_grad()
    def nll(self, sources: Sequence[str], targets: Sequence[str]) -> dict[str, float]:
        """Negative log-likelihood of ``targets`` given ``sources`` (the code at its mean): nats per
        token, nats per sentence and perplexity (exp of nats per token)."""
        if len(sources) != len(targets):
            raise AekitError(
                f"{len(sources)} sources but {len(targets)} references", "they are pairs", "give as many of each"
            )
        source_ids, target_ids = self._ids(sources), self._ids(targets)
        total, tokens = 0.0, 0
        for start in range(0, len(source_ids), self.batch_size):
            batch = make_batch(source_ids[start : start + self.batch_size], target_ids[start : start + self.batch_size])
            batch = batch.to(self.device)
            total += float(self.model.sentence_nll(batch).sum())
            tokens += int(batch.weight)
        per_token = total / max(tokens, 1)
        return {
            "nats_per_token": per_token,
            "nats_per_sentence": total / max(len(source_ids), 1),
            "perplexity": float(np.exp(per_token)),
        }


@torch.no_grad()
def importance_sampled_nll(
    translator: Translator, sentences: Sequence[str], samples: int = 100, seed: int = 0
) -> dict[str, float]:
    """-log p(x) of a sentence VAE by importance sampling with ``samples`` draws from q(z|x):
    nats per sentence and per token (EOS counted), the KL(q || p) per sentence, and the active
    units (code units whose posterior mean varies over the sentences with variance > 0.01,
    Burda et al. 2016)."""
    model = translator.model
    if samples < 1:
        raise AekitError(f"samples={samples}", "importance sampling needs at least one draw", "use samples >= 1")
    ids = translator._ids(sentences)
    generator = torch.Generator(device=translator.device).manual_seed(seed)
    total, tokens, kl_total, means = 0.0, 0, 0.0, []
    for start in range(0, len(ids), translator.batch_size):
        chunk = ids[start : start + translator.batch_size]
        batch = make_batch(chunk, chunk).to(translator.device)
        weights = model.log_importance_weights(batch, samples, generator)  # (S, B)
        total -= float((torch.logsumexp(weights, 0) - np.log(samples)).sum())
        tokens += batch.weight
        memory, _ = model.memory(batch.source, batch.source_mask, sample=False)
        kl_total += float(memory.kl.sum())
        means.append(memory.code.float().cpu())
    variance = torch.cat(means).var(0) if len(ids) > 1 else torch.zeros(model.code_size)
    return {
        "is_nll_per_sentence": total / len(ids),
        "is_nll_per_token": total / max(tokens, 1),
        "kl_per_sentence": kl_total / len(ids),
        "active_units": int((variance > 0.01).sum()),
        "importance_samples": samples,
    }


class _FromCodes:
    """The decoding protocol over given codes: ``start`` ignores its (dummy) source."""

    def __init__(self, model: SequenceModel, codes: torch.Tensor) -> None:
        self.model, self.codes = model, codes

    def start(self, source: torch.Tensor, mask: torch.Tensor) -> Any:
        return self.model.start_from_code(self.codes)

    def step(self, state: Any, prefix: torch.Tensor) -> Any:
        return self.model.step(state, prefix)

    def reorder(self, state: Any, index: torch.Tensor) -> Any:
        return self.model.reorder(state, index)


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """sacreBLEU BLEU and chrF of detokenised ``hypotheses`` against one reference each, with the
    metrics' signatures (what a paper should print next to the numbers)."""
    import sacrebleu

    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    refs = [list(references)]
    b, c = bleu.corpus_score(list(hypotheses), refs), chrf.corpus_score(list(hypotheses), refs)
    return {
        "bleu": b.score,
        "chrf": c.score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }
