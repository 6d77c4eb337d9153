"""Peer benchmark: JoeyNMT 2.3 trains the Transformer recipe of bench/translation.py on Multi30K De->En.

Runs in its own virtualenv (JoeyNMT pins nothing that aekit needs, and aekit is not imported here):

    python -m venv /work/bench-venv
    /work/bench-venv/bin/pip install torch==2.13.0          # first: the CPU build, no CUDA wheels
    /work/bench-venv/bin/pip install joeynmt==2.3.0 importlib_metadata
    # (joeynmt 2.3.0 imports importlib_metadata without declaring it; sacrebleu, sentencepiece and
    #  subword-nmt come with joeynmt)

    /work/bench-venv/bin/python bench/peer_joeynmt.py --threads 2 --minutes 60 \\
        --out bench/results/peer_joeynmt_de-en.json

Steps: (1) one joint sentencepiece BPE vocabulary of 8000 pieces trained on the training split's
source and target sides (the specials <unk> <pad> <s> </s> among the 8000), written as JoeyNMT's
vocabulary file and used for both languages; (2) a JoeyNMT YAML config (written to
``WORK/config.yaml``); (3) JoeyNMT's own TrainManager trains it until the wall-clock budget is
spent; (4) the best checkpoint (by validation perplexity) is loaded back from disk and decodes
test_2016_flickr with beam 4; sacreBLEU scores the detokenised output against the raw references
(BLEU and chrF, default settings, as aekit.text.pipeline.corpus_scores); (5) a JSON record.

The wall-clock budget: JoeyNMT has no time limit option, only ``epochs`` and ``updates``. The
script builds JoeyNMT's TrainManager itself (what ``joeynmt.training.train`` does) and wraps two of
its methods on that instance: after the budget is spent it sets ``stats.is_max_update``, the flag
JoeyNMT's own ``updates`` limit sets, so the loop leaves through its normal exit, which saves the
current weights as a checkpoint (``latest.ckpt``) and closes the logs. ``--stop epoch`` (default,
as bench/translation.py) checks the clock after each validation, which comes
every epoch's worth of updates (JoeyNMT validates every N updates, not at epoch ends: N is the
updates of one epoch counted beforehand, rounded to a multiple of the logging interval), so
training ends at the first validation after the budget; ``--stop budget`` ends
after the first update past the budget and then validates that final state once, so that
``best.ckpt`` is chosen among all validated states (smoke tests).

The cosine schedule: JoeyNMT has none. ``--schedule cosine`` (default) hands the trainer a
scheduler written against JoeyNMT's own scheduler interface (``joeynmt.builders.BaseScheduler``,
stepped after every update and saved in the checkpoints): the rate of aekit's cosine, from lr down
to 1 % of it, ``lr * (0.01 + 0.99 * (1 + cos(pi * step / total)) / 2)``, over ``--epochs`` epochs
of updates (the updates of one epoch counted beforehand by JoeyNMT's own token batching rule on
the sentencepiece lengths). ``--schedule constant`` is stock JoeyNMT (no scheduler).

What the recipe mirrors exactly: Transformer encoder and decoder of 3 layers, embedding and model
size 256, 8 heads, feed-forward 512, ReLU, pre-norm layers with a final layer norm, sinusoidal
positions, embeddings scaled by sqrt(256), dropout 0.1 (embeddings and layers), label smoothing
0.1, one vocabulary of 8000 for both sides, source and target embeddings tied and tied to the
output layer, Adam (0.9, 0.999) lr 5e-4, loss summed over target tokens and divided by their
number, gradient norm clipped at 1, batches of 2048 tokens counted as JoeyNMT and aekit both count
them (sentences x the longer side of the longest pair, padding included), validation once per
epoch, the checkpoint with the best validation perplexity tested, beam 4, sentences of at most 100
subword tokens.

Deviations from aekit's recipe (JoeyNMT offers no setting for them; they are listed in the JSON
record too, under ``deviations``):

* Tokenizer: sentencepiece BPE (normalisation ``nfkc``, character coverage 1.0) instead of Hugging
  Face ``tokenizers`` BPE (NFKC, Metaspace, min_frequency 2): the same kind of vocabulary and size,
  not the same merges; nats per token of the two toolkits count different tokens.
* Batching: JoeyNMT's token batches are drawn in random order with no length bucketing, and a
  batch closes at the first sentence that reaches 2048 (it may pass it by one sentence); aekit
  buckets sentences of similar length, staying within 2048. With the same budget JoeyNMT's batches
  hold fewer real tokens (more padding) and an epoch takes more updates.
* Label smoothing: JoeyNMT spreads 0.1 over the vocabulary less 2 entries with the pad entry zeroed
  and computes a KL divergence; aekit uses torch's cross_entropy(label_smoothing=0.1), which spreads
  it over all entries. JoeyNMT's validation perplexity is that smoothed loss' exp (the test nats per
  token below are computed without smoothing).
* Initialisation: JoeyNMT's Xavier-uniform for every weight matrix, zero biases; embeddings
  normal(0, 256^-0.5) as aekit's (set in the config). aekit leaves torch's defaults for the
  Transformer layers.
* Output layer: JoeyNMT's tied softmax has no bias and no dropout before it; aekit's tied output
  layer has a bias and applies dropout to the decoder features first.
* Validation: JoeyNMT's validation also decodes the dev set greedily (it cannot be turned off);
  aekit's only computes the loss. Its time is counted in the training wall time, as aekit's is, and
  reported separately.
* Beam search: JoeyNMT's length penalty is GNMT's ((5 + length) / 6) ** alpha (alpha 1.0 here);
  aekit's divides by length ** 1.0. JoeyNMT's output limit is 1.5 x the longest source of the
  batch; aekit's 1.5 x + 10. JoeyNMT decodes test batches of 64 sentences in file order, aekit's
  Translator sorts them by length first.
* Sentences longer than 100 tokens are dropped from JoeyNMT's training data, where aekit refuses
  them (Multi30K has none).
* Budget: with ``--stop epoch`` both stop at the first epoch end after the budget; the budget
  starts when JoeyNMT's training loop starts (aekit's at its loop start too), and the reported
  training seconds cover vocabulary training, data loading, model building and the loop, as
  bench/translation.py's do.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

BUCKETS = ((1, 10), (11, 15), (16, 20), (21, 25), (26, 1000))  # source length in words, as translation.py
SPLITS = ("train", "val", "test_2016_flickr")
DEFAULT_DATA = Path("/work/bench-data/multi30k")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"

DEVIATIONS = [
    "tokenizer: sentencepiece BPE (nfkc, character coverage 1.0), 8000 pieces joint, vs Hugging Face BPE "
    "(NFKC, Metaspace, min_frequency 2)",
    "batching: random order, no length bucketing, a batch closes once sentences x longest >= 2048 (aekit: "
    "length buckets within 2048)",
    "label smoothing: KL to a target spreading 0.1 over V-2 entries, pad zeroed (aekit: torch cross_entropy "
    "label_smoothing over V)",
    "initialisation: Xavier-uniform weight matrices, zero biases (aekit: torch defaults); embeddings "
    "normal(0, 256^-0.5) in both",
    "tied output layer without bias and without dropout before it (aekit: bias, dropout on decoder features)",
    "validation decodes the dev set greedily as well as scoring it (aekit: loss only)",
    "beam search: GNMT length penalty ((5+len)/6)^1.0 (aekit: len^1.0); max output 1.5 x longest source "
    "(aekit: 1.5 x + 10); test batches of 64 in file order (aekit: sorted by length)",
    "cosine schedule patched in through JoeyNMT's scheduler interface (JoeyNMT has none) unless --schedule constant",
    "training sentences over 100 tokens dropped (aekit: an error; Multi30K has none)",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA,
        help="Multi30K as {train,val,test_2016_flickr}.{de,en}, plain or .gz "
        f"(default {DEFAULT_DATA}, else {SHARED_DATA})",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("/tmp/peer_joeynmt"),
        help="vocabulary, config, checkpoints and logs (replaced on each run)",
    )
    parser.add_argument("--pair", default="de-en")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock training budget")
    parser.add_argument(
        "--stop",
        choices=("epoch", "budget"),
        default="epoch",
        help="epoch: at the first epoch end after the budget (as bench/translation.py); "
        "budget: at the first update after it, then one last validation",
    )
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the cosine schedule")
    parser.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    parser.add_argument("--limit", type=int, default=0, help="use only this many training pairs (a smoke test)")
    parser.add_argument(
        "--eval-limit",
        type=int,
        default=0,
        help="use only the first N pairs of val and test_2016_flickr (a smoke test)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("bench/results/peer_joeynmt.json"))
    return parser.parse_args()  # fmt: skip


def plain_corpus(data_dir: Path, work: Path, pair: tuple[str, str], limit: int, eval_limit: int) -> Path:
    """A folder with plain {split}.{lang} files for JoeyNMT: the files of ``data_dir`` where they
    are plain text (linked), decompressed where only .gz exist; the training split cut to ``limit``
    pairs, val and test to ``eval_limit`` (0: whole)."""
    if not any((data_dir / f"train.{pair[0]}{ext}").exists() for ext in ("", ".gz")) and data_dir == DEFAULT_DATA:
        data_dir = SHARED_DATA
    out = work / "data"
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        for lang in pair:
            plain, packed, dest = data_dir / f"{split}.{lang}", data_dir / f"{split}.{lang}.gz", out / f"{split}.{lang}"
            cut = limit if split == "train" else eval_limit
            if plain.exists():
                text = plain.read_text(encoding="utf-8") if cut else None
            elif packed.exists():
                with gzip.open(packed, "rt", encoding="utf-8") as f:
                    text = f.read()
            else:
                raise SystemExit(f"{plain} (or .gz) not found: pass --data-dir with Multi30K")
            if text is None:
                dest.symlink_to(plain.resolve())
                continue
            if cut:
                text = "".join(text.splitlines(keepends=True)[:cut])
            dest.write_text(text, encoding="utf-8")
    return out


def train_vocabulary(data: Path, work: Path, pair: tuple[str, str], threads: int, seed: int) -> tuple[Path, Path]:
    """One sentencepiece BPE model of 8000 pieces on both training sides, ids as JoeyNMT's specials
    (<unk> 0, <pad> 1, <s> 2, </s> 3); JoeyNMT's vocabulary file lists every piece in id order."""
    import sentencepiece as spm

    prefix = work / "spm_joint8000"
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        input=",".join(str(data / f"train.{lang}") for lang in pair), model_prefix=str(prefix),
        model_type="bpe", vocab_size=8000, character_coverage=1.0, normalization_rule_name="nfkc",
        unk_id=0, pad_id=1, bos_id=2, eos_id=3, unk_piece="<unk>", pad_piece="<pad>", bos_piece="<s>",
        eos_piece="</s>", num_threads=threads, minloglevel=2,
    )  # fmt: skip
    processor = spm.SentencePieceProcessor(model_file=f"{prefix}.model")
    vocab = work / "vocab.txt"
    vocab.write_text("".join(processor.id_to_piece(i) + "\n" for i in range(processor.get_piece_size())), "utf-8")
    return Path(f"{prefix}.model"), vocab


def updates_per_epoch(data: Path, spm_model: Path, pair: tuple[str, str], batch_tokens: int, seed: int) -> int:
    """The number of batches JoeyNMT's TokenBatchSampler makes of one shuffled epoch (its rule,
    applied to the sentencepiece lengths; the count hardly depends on the shuffle)."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(spm_model))
    sides = [(data / f"train.{lang}").read_text(encoding="utf-8").splitlines() for lang in pair]
    lengths = [(len(a), len(b)) for a, b in zip(*(processor.encode(s) for s in sides), strict=True)]
    lengths = [(s, t) for s, t in lengths if 0 < s <= 100 and t <= 100]
    random.Random(seed).shuffle(lengths)
    batches, size, longest = 0, 0, 0
    for s, t in lengths:
        size, longest = size + 1, max(longest, s + 1, t + 1)
        if longest * size >= batch_tokens:
            batches, size, longest = batches + 1, 0, 0
    return batches + (size > 0)


def joeynmt_config(args, data: Path, spm_model: Path, vocab: Path, validation_freq: int, logging_freq: int) -> dict:
    src, trg = args.pair.split("-")
    side = {
        "level": "bpe",
        "lowercase": False,
        "normalize": False,
        "max_length": 100,
        "min_length": 1,
        "voc_file": str(vocab),
        "tokenizer_type": "sentencepiece",
        "tokenizer_cfg": {"model_file": str(spm_model)},
    }
    stack = {
        "type": "transformer",
        "num_layers": 3,
        "num_heads": 8,
        "hidden_size": 256,
        "ff_size": 512,
        "dropout": 0.1,
        "layer_norm": "pre",
        "activation": "relu",
        "embeddings": {"embedding_dim": 256, "scale": True, "dropout": 0.1},
    }
    return {
        "name": f"multi30k_{src}{trg}_transformer_peer",
        "joeynmt_version": "2.3.0",
        "model_dir": str(args.work_dir / "model"),
        "use_cuda": False,
        "fp16": False,
        "random_seed": args.seed,
        "data": {
            "train": str(data / "train"), "dev": str(data / "val"), "test": str(data / "test_2016_flickr"),
            "dataset_type": "plain", "src": {"lang": src, **side}, "trg": {"lang": trg, **side},
            "special_symbols": {"unk_token": "<unk>", "unk_id": 0, "pad_token": "<pad>", "pad_id": 1,
                                "bos_token": "<s>", "bos_id": 2, "eos_token": "</s>", "eos_id": 3},
        },
        "testing": {
            "n_best": 1, "beam_size": 4, "beam_alpha": 1.0, "batch_size": 64, "batch_type": "sentence",
            "max_output_length": -1, "eval_metrics": ["bleu"], "sacrebleu_cfg": {"tokenize": "13a"},
        },
        "training": {
            "optimizer": "adam", "adam_betas": [0.9, 0.999], "learning_rate": 5.0e-4,
            "learning_rate_min": 1.0e-12,  # JoeyNMT stops below it; the cosine floor is 5e-6
            "scheduling": None,  # the cosine scheduler is handed in by this script (--schedule cosine)
            "weight_decay": 0.0, "clip_grad_norm": 1.0, "loss": "crossentropy", "label_smoothing": 0.1,
            "normalization": "tokens", "batch_size": 2048, "batch_type": "token", "batch_multiplier": 1,
            "epochs": 10_000,  # the wall-clock budget ends training
            "early_stopping_metric": "ppl", "validation_freq": validation_freq, "logging_freq": logging_freq,
            "keep_best_ckpts": 1, "shuffle": True, "overwrite": True, "print_valid_sents": [0],
        },
        "model": {
            "initializer": "xavier_uniform", "init_gain": 1.0, "bias_initializer": "zeros",
            "embed_initializer": "normal", "embed_init_weight": 256**-0.5,
            "tied_embeddings": True, "tied_softmax": True, "encoder": dict(stack), "decoder": dict(stack),
        },
    }  # fmt: skip


def cosine_scheduler(optimizer, lr: float, total: int):
    """aekit's cosine (lr to 1 % of it over ``total`` updates) in JoeyNMT's scheduler interface."""
    from joeynmt.builders import BaseScheduler

    class CosineScheduler(BaseScheduler):
        def __init__(self) -> None:
            super().__init__(optimizer)
            self.lr, self.total = lr, total

        def _compute_rate(self) -> float:  # self._step: updates done so far
            return self.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(self._step / self.total, 1.0))))

        def state_dict(self):
            return {**super().state_dict(), "lr": self.lr, "total": self.total}

        def __repr__(self) -> str:
            return f"CosineScheduler(lr={self.lr}, total={self.total})"

    return CosineScheduler()


def train(args, cfg: dict, total_updates: int) -> dict:
    """JoeyNMT's ``training.train`` without its test, with a wall-clock budget; returns timings."""
    import joeynmt.training as jt
    from joeynmt.config import parse_global_args, set_validation_args
    from joeynmt.helpers import make_model_dir
    from joeynmt.helpers_for_ddp import get_logger
    from joeynmt.prediction import prepare

    model_dir = Path(cfg["model_dir"])
    make_model_dir(model_dir, overwrite=True)
    get_logger("", log_file=str(model_dir / "train.log"))
    jt.log_config(cfg)
    if args.schedule == "cosine":
        jt.build_scheduler = lambda cfg, optimizer, **_: (cosine_scheduler(optimizer, cfg["learning_rate"],
                                                                           total_updates), "step")  # fmt: skip
    parsed = parse_global_args(cfg, rank=0, mode="train")
    model, train_data, dev_data, _ = prepare(parsed, rank=0, mode="train")
    trainer = jt.TrainManager(
        model=model, model_dir=parsed.model_dir, device=parsed.device, n_gpu=parsed.n_gpu, rank=0,
        num_workers=parsed.num_workers, autocast=parsed.autocast, seed=parsed.seed, train_args=parsed.train,
        dev_args=set_validation_args(parsed.test),
    )  # fmt: skip
    budget, clock = args.minutes * 60, {"validation": 0.0, "validations": 0, "validated_step": -1, "stop": ""}
    train_step, validate = trainer._train_step, trainer._validate

    def over_budget() -> bool:
        if time.perf_counter() - clock["start"] > budget and not trainer.stats.is_max_update:
            trainer.stats.is_max_update = True  # JoeyNMT's own `updates` limit flag: the loop exits normally
            clock["stop"] = f"spent the wall-clock budget of {args.minutes:g} minutes"
        return trainer.stats.is_max_update

    def timed_validate(valid_data) -> None:
        start = time.perf_counter()
        validate(valid_data)
        clock["validation"] += time.perf_counter() - start
        clock["validations"] += 1
        clock["validated_step"] = trainer.stats.steps
        if args.stop == "epoch":
            over_budget()

    def budgeted_train_step(batch):
        out = train_step(batch)
        if args.stop == "budget":
            over_budget()
        return out

    trainer._train_step, trainer._validate = budgeted_train_step, timed_validate
    clock["start"] = time.perf_counter()
    trainer.train_and_validate(train_data=train_data, valid_data=dev_data)
    if clock["validated_step"] != trainer.stats.steps:  # the final weights have not been validated
        from torch.utils.tensorboard import SummaryWriter

        trainer.tb_writer = SummaryWriter(log_dir=str(model_dir / "tensorboard"))  # the loop closed its own
        trainer._validate(dev_data)  # the timed wrapper
        trainer.tb_writer.close()
    loop_seconds = time.perf_counter() - clock["start"]
    return {
        "model": model,
        "parameters": sum(p.numel() for p in model.parameters()),
        "loop_seconds": loop_seconds,
        "validation_seconds": clock["validation"],
        "validations": clock["validations"],
        "updates": trainer.stats.steps,
        "epochs_run": trainer.stats.epochs,
        "train_target_tokens": trainer.stats.total_tokens,
        "best_update": trainer.stats.best_ckpt_iter,
        "best_validation_ppl_smoothed": trainer.stats.best_ckpt_score,
        "stop_detail": (clock["stop"] or "JoeyNMT stopped by itself") + f", after update {trainer.stats.steps}",
        "final_lr": trainer.optimizer.param_groups[0]["lr"],
    }


def joeynmt_logged_tokens_per_second(log: Path) -> float | None:
    """The mean of JoeyNMT's own 'Tokens per Sec' log lines (training time between log lines)."""
    values = [float(line.split("Tokens per Sec:")[1].split(",")[0]) for line in log.read_text().splitlines()
              if "Tokens per Sec:" in line]  # fmt: skip
    return round(sum(values) / len(values), 1) if values else None


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """As aekit.text.pipeline.corpus_scores: sacreBLEU's default BLEU and chrF, with signatures."""
    import sacrebleu

    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    b, c = bleu.corpus_score(hypotheses, [references]), chrf.corpus_score(hypotheses, [references])
    return {"bleu": b.score, "chrf": c.score, "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}  # fmt: skip


def evaluate(args, cfg: dict, data: Path) -> dict:
    """Load best.ckpt from disk, decode the test set with beam 4 (timed), score it; nats per token
    of the references without label smoothing."""
    import torch
    from joeynmt.config import parse_global_args
    from joeynmt.prediction import predict, prepare

    src, trg = args.pair.split("-")
    cfg = json.loads(json.dumps(cfg))  # prepare() edits it
    cfg["testing"]["load_model"] = str(Path(cfg["model_dir"]) / "best.ckpt")
    parsed = parse_global_args(cfg, rank=0, mode="test")
    model, _, _, test_data = prepare(parsed, rank=0, mode="test")  # torch.load of the checkpoint
    checkpoint = Path(cfg["model_dir"]) / "best.ckpt"
    sources = (data / f"test_2016_flickr.{src}").read_text(encoding="utf-8").splitlines()
    references = (data / f"test_2016_flickr.{trg}").read_text(encoding="utf-8").splitlines()
    common = {"model": model, "data": test_data, "device": parsed.device, "n_gpu": 0, "rank": 0,
              "num_workers": 0, "normalization": "tokens", "autocast": parsed.autocast}  # fmt: skip
    start = time.perf_counter()
    _, _, hypotheses, *_ = predict(compute_loss=False, args=parsed.test, **common)
    seconds = time.perf_counter() - start
    model.loss_function = ("crossentropy", 0.0)  # exact nats: NLL summed over target tokens (EOS included)
    model.eval()
    total_nats, total_tokens = 0.0, 0
    batches = test_data.make_iter(
        batch_size=64,
        batch_type="sentence",
        shuffle=False,
        seed=0,
        num_workers=0,
        eos_index=model.eos_index,
        pad_index=model.pad_index,
        device=parsed.device,
    )
    with torch.no_grad():
        for batch in batches:
            batch_loss, *_ = model(return_type="loss", **vars(batch))
            total_nats, total_tokens = total_nats + float(batch_loss), total_tokens + int(batch.ntokens)
    sentences = len(sources)
    assert len(hypotheses) == sentences == len(references), (len(hypotheses), sentences, len(references))
    by_length = {}
    for low, high in BUCKETS:
        chosen = [i for i, s in enumerate(sources) if low <= len(s.split()) <= high]
        if chosen:
            bucket = corpus_scores([hypotheses[i] for i in chosen], [references[i] for i in chosen])
            name = f"{low}-{high if high < 1000 else ''}"
            by_length[name] = {"sentences": len(chosen), "bleu": round(bucket["bleu"], 2)}
    (Path(cfg["model_dir"]) / f"best.hyps.test_2016_flickr.{trg}").write_text("\n".join(hypotheses) + "\n", "utf-8")
    return {
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in corpus_scores(hypotheses, references).items()},
        "nats_per_token": round(total_nats / total_tokens, 4),
        "nats_per_sentence": round(total_nats / sentences, 4),
        "perplexity": round(math.exp(total_nats / total_tokens), 4),
        "test_target_tokens": total_tokens,
        "decode_sentences_per_second": round(sentences / seconds, 1),
        "decode_seconds": round(seconds, 1),
        "decode_beam": parsed.test.beam_size,
        "checkpoint": str(checkpoint.resolve()),
        "by_length": by_length,
        "examples": [{"source": s, "output": h, "reference": r} for s, h, r in
                     zip(sources[:5], hypotheses[:5], references[:5], strict=True)],
        "test_set": "test_2016_flickr" + (f" (first {args.eval_limit})" if args.eval_limit else ""),
        "torch_threads": torch.get_num_threads(),
    }  # fmt: skip


def main() -> None:
    args = parse_args()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    import torch
    import yaml

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from importlib.metadata import version

    from common import print_markdown_table, write_record

    pair = tuple(args.pair.split("-"))
    start = time.perf_counter()
    if args.work_dir.exists():
        shutil.rmtree(args.work_dir)
    args.work_dir.mkdir(parents=True)
    data = plain_corpus(args.data_dir, args.work_dir, pair, args.limit, args.eval_limit)
    train_start = time.perf_counter()
    spm_model, vocab = train_vocabulary(data, args.work_dir, pair, args.threads, args.seed)
    per_epoch = updates_per_epoch(data, spm_model, pair, 2048, args.seed)
    logging_freq = max(1, min(100, per_epoch // 10))
    validation_freq = max(logging_freq, round(per_epoch / logging_freq) * logging_freq)  # a multiple, ~1 epoch
    cfg = joeynmt_config(args, data, spm_model, vocab, validation_freq, logging_freq)
    (args.work_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    schedule = f"cosine over {args.epochs * per_epoch} updates" if args.schedule == "cosine" else "constant lr"
    print(f"config: {args.work_dir / 'config.yaml'}; about {per_epoch} updates an epoch, validation every "
          f"{validation_freq}; {schedule}", flush=True)  # fmt: skip
    trained = train(args, json.loads(json.dumps(cfg)), args.epochs * per_epoch)
    train_seconds = time.perf_counter() - train_start
    trained.pop("model")
    tokens, loop, validation = trained["train_target_tokens"], trained["loop_seconds"], trained["validation_seconds"]
    info = {
        "toolkit": f"joeynmt {version('joeynmt')}",
        "parameters": trained["parameters"],
        "train_seconds": round(train_seconds, 1),
        "loop_seconds": round(loop, 1),
        "validation_seconds": round(validation, 1),
        "validations": trained["validations"],
        "updates": trained["updates"],
        "updates_per_epoch_estimate": per_epoch,
        "epochs_run": trained["epochs_run"],
        "best_update": trained["best_update"],
        "best_validation_ppl_smoothed": round(trained["best_validation_ppl_smoothed"], 4),
        "stop_detail": trained["stop_detail"],
        "final_lr": trained["final_lr"],
        "schedule": args.schedule,
        "train_target_tokens": tokens,
        # as bench/translation.py: target tokens trained / every second of training (vocabulary,
        # data, model, loop and validations)
        "train_target_tokens_per_second": round(tokens / train_seconds, 1),
        "train_target_tokens_per_second_without_validation": round(tokens / max(loop - validation, 1e-9), 1),
        "train_target_tokens_per_second_joeynmt_log": joeynmt_logged_tokens_per_second(
            Path(cfg["model_dir"]) / "train.log"
        ),
    }
    runs = {"joeynmt-transformer": {**info, **evaluate(args, cfg, data)}}
    r = runs["joeynmt-transformer"]
    print(r["bleu_signature"])
    print(r["chrf_signature"])
    print_markdown_table(
        ["model", "parameters", "train tokens/s", "BLEU", "chrF", "nats/token", "decode sent/s"],
        [["joeynmt-transformer", f"{r['parameters']:,}", r["train_target_tokens_per_second"], r["bleu"], r["chrf"],
          r["nats_per_token"], r["decode_sentences_per_second"]]],
    )  # fmt: skip
    print("BLEU by source length:", r["by_length"])
    write_record(args, "peer_joeynmt", time.perf_counter() - start, runs=runs, deviations=DEVIATIONS,
                 joeynmt_config=cfg, joeynmt_version=version("joeynmt"))  # fmt: skip


if __name__ == "__main__":
    main()
