"""Machine translation on Multi30K (test_2016_flickr): aekit's sequence models, scored by sacreBLEU.

For each model asked for (``--models``), train through ``aekit.train_sequence_model`` on the
training split for at most ``--minutes`` of wall-clock time (validation on ``val`` after every
epoch, the best epoch kept), or evaluate a trained run (``--evaluate RUN``), then translate
test_2016_flickr with beam search and report: parameters, training target tokens per second, wall
time, BLEU and chrF (sacreBLEU on detokenised output, signatures printed), nats per token, decoding
sentences per second, and BLEU by source-length bucket (the fixed-size code degrades on long
sentences, Cho et al. 2014). A sentence autoencoder (``sequence``) is scored by exact
reconstructions and BLEU by length bucket; a sentence VAE by importance-sampled -log p(x), KL and
active units.

    python bench/translation.py --data-dir DATA --threads 2 --pair de-en --minutes 60 \\
        --models attention,fixed --out bench/results/translation_de-en.json
    python bench/translation.py --data-dir DATA --threads 2 --evaluate src/aekit/weights/translate-de-en \\
        --out bench/results/translation_shipped.json

The recipe of every trained model: Transformer, embedding 256, 3 + 3 layers, 8 heads, feed-forward
512, dropout 0.1, label smoothing 0.1, one BPE vocabulary of 8000, batches of 2048 tokens, Adam lr
5e-4 with a cosine schedule over ``--epochs``, gradient norm clipped at 1.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import print_markdown_table, write_record

BUCKETS = ((1, 10), (11, 15), (16, 20), (21, 25), (26, 1000))  # source length in words


def wall_clock_budget(seconds: float):
    """A callback that stops the loop at the end of the first epoch ending after ``seconds``."""
    from aekit.callbacks import Callback

    class WallClockBudget(Callback):
        def on_fit_start(self, loop) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, loop, record) -> None:
            if time.perf_counter() - self.start > seconds and loop.stop_reason is None:
                loop.stop("budget", f"spent the wall-clock budget of {seconds / 60:.0f} minutes")

    return WallClockBudget()


def bucketed_bleu(hypotheses, references, sources) -> dict[str, dict]:
    from aekit.text.pipeline import corpus_scores

    out = {}
    for low, high in BUCKETS:
        chosen = [i for i, s in enumerate(sources) if low <= len(s.split()) <= high]
        if chosen:
            scores = corpus_scores([hypotheses[i] for i in chosen], [references[i] for i in chosen])
            out[f"{low}-{high if high < 1000 else ''}"] = {"sentences": len(chosen), "bleu": round(scores["bleu"], 2)}
    return out


def score(translator, sources, references, name: str) -> dict:
    from aekit.text.pipeline import corpus_scores

    start = time.perf_counter()
    hypotheses = translator(sources)
    seconds = time.perf_counter() - start
    scores = corpus_scores(hypotheses, references)
    return {
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in scores.items()},
        **{k: round(v, 4) for k, v in translator.nll(sources, references).items()},
        "decode_sentences_per_second": round(len(sources) / seconds, 1),
        "decode_beam": translator.beam,
        "by_length": bucketed_bleu(hypotheses, references, sources),
        "examples": [{"source": s, "output": h, "reference": r} for s, h, r in
                     zip(sources[:5], hypotheses[:5], references[:5], strict=True)],
        "test_set": name,
    }  # fmt: skip


def train_one(code: str, family: str, args, data) -> tuple[object, dict]:
    import aekit

    source, target, val_source, val_target = data
    settings = aekit.SequenceConfig(family=family, code=code)
    config = aekit.TrainConfig(epochs=args.epochs, lr=5e-4, lr_schedule="cosine", clip_grad_norm=1.0, device="cpu")
    start = time.perf_counter()
    model, tokenizer, result = aekit.train_sequence_model(
        settings, config, source, target, val_source, val_target,
        callbacks=[wall_clock_budget(args.minutes * 60)], progress=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    trained_tokens = sum(len(ids) + 1 for ids in tokenizer.encode(target)) * len(result.history)
    info = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stop_detail": result.stop_detail,
        "train_target_tokens_per_second": round(trained_tokens / seconds, 1),
        "history": result.history,
    }
    return aekit.Translator(model, tokenizer, beam=4), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pair", default="de-en")
    parser.add_argument("--models", default="attention,fixed", help="codes of seq2seq models to train")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock training budget per model")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the cosine schedule")
    parser.add_argument("--limit", type=int, default=0, help="use only this many training pairs (a smoke test)")
    parser.add_argument("--evaluate", default=None, help="score this trained run or shipped name instead")
    parser.add_argument("--skip-test", action="store_true", help="measure training speed only (no decoding)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/translation.json"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    import aekit
    from aekit.text.corpus import load_multi30k

    test_source, test_target = load_multi30k(args.pair, "test_2016_flickr", args.data_dir)
    start = time.perf_counter()
    runs = {}
    if args.evaluate:
        translator = aekit.Translator.load(args.evaluate, beam=4)
        parameters = sum(p.numel() for p in translator.model.parameters())
        runs[str(args.evaluate)] = {"parameters": parameters, **score(translator, test_source, test_target, "test")}
    else:
        source, target = load_multi30k(args.pair, "train", args.data_dir)
        val_source, val_target = load_multi30k(args.pair, "val", args.data_dir)
        if args.limit:
            source, target = source[: args.limit], target[: args.limit]
        if args.skip_test:  # a speed measurement: validation on 100 sentences only
            val_source, val_target = val_source[:100], val_target[:100]
        for code in args.models.split(","):
            translator, info = train_one(code, "seq2seq", args, (source, target, val_source, val_target))
            if args.skip_test:
                runs[f"seq2seq-{code}"] = info
                print(f"seq2seq-{code}: {info['train_target_tokens_per_second']} target tokens/s")
                continue
            runs[f"seq2seq-{code}"] = {**info, **score(translator, test_source, test_target, "test")}
            print(runs[f"seq2seq-{code}"]["bleu_signature"])
    if not args.skip_test:
        rows = [[name, f"{r['parameters']:,}", r.get("train_target_tokens_per_second", ""), r["bleu"], r["chrf"],
                 r["nats_per_token"], r["decode_sentences_per_second"]] for name, r in runs.items()]  # fmt: skip
        header = ["model", "parameters", "train tokens/s", "BLEU", "chrF", "nats/token", "decode sent/s"]
        print_markdown_table(header, rows)
        for name, r in runs.items():
            print(name, "BLEU by source length:", r["by_length"])
    write_record(args, "translation", time.perf_counter() - start, runs=runs)


if __name__ == "__main__":
    main()
