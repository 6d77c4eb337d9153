"""Machine translation on Multi30K (test_2016_flickr): aekit's sequence models, scored by sacreBLEU.

For each model asked for (``--models``), train through ``aekit.train_sequence_model`` on the
training split for at most ``--minutes`` of wall-clock time (validation on ``val`` after every
epoch, the best epoch kept), or evaluate a trained run (``--evaluate RUN``), then score it on
test_2016_flickr with beam search:

* ``attention`` and ``fixed``: seq2seq translation models (every encoder state, or one vector per
  sentence: the autoencoder bottleneck). Parameters, training target tokens per second, wall time,
  BLEU and chrF (sacreBLEU on detokenised output, signatures printed), nats per token, decoding
  sentences per second, and BLEU by source-length bucket (the fixed-size code degrades on long
  sentences, Cho et al. 2014).
* ``sequence``: a sentence autoencoder (one vector of ``code_size`` per sentence) on the sentences
  of one language of the pair (``--ae-language``): reconstruction BLEU, exact reconstructions and
  BLEU by length bucket.
* ``sequence-vae``: a sentence VAE (Bowman et al. 2016) on the same sentences: importance-sampled
  -log p(x) (nats per sentence and per token), KL(q || p), active units, reconstructions, samples
  from the prior and a homotopy between two test sentences; the KL weight ramps from 0 to 1 over
  ``--kl-warmup-epochs``.

    python bench/translation.py --data-dir DATA --threads 2 --pair de-en --minutes 60 \\
        --models attention,fixed --out bench/results/translation_de-en.json
    python bench/translation.py --data-dir DATA --threads 2 --evaluate src/aekit/weights/translate-de-en \\
        --out bench/results/translation_shipped.json

The recipe of every trained model: Transformer, embedding 256, 3 + 3 layers, 8 heads, feed-forward
512, dropout 0.1, label smoothing 0.1, one BPE vocabulary of 8000, batches of ``--batch-tokens``
tokens, Adam ``--lr`` with a cosine schedule over ``--epochs``, gradient norm clipped at 1.
``--save DIR`` keeps every trained model (``DIR/<model>``) for ``aekit translate`` and the gallery.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from common import print_markdown_table, write_record

BUCKETS = ((1, 10), (11, 15), (16, 20), (21, 25), (26, 1000))  # source length in words


def wall_clock_budget(seconds: float):
    """A callback that stops the loop after the first update past ``seconds`` of training (then
    the epoch ends early: validation, the record, the best epoch kept), as the peer's ``--stop budget``."""
    from aekit.callbacks import Callback

    class WallClockBudget(Callback):
        def on_fit_start(self, loop) -> None:
            self.start = time.perf_counter()

        def on_step_start(self, loop) -> None:
            if time.perf_counter() - self.start > seconds and loop.stop_reason is None:
                loop.stop("budget", f"spent the wall-clock budget of {seconds / 60:g} minutes")

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


FAMILIES = {"attention": ("seq2seq", "attention"), "fixed": ("seq2seq", "fixed"),
            "sequence": ("sequence", "fixed"), "sequence-vae": ("sequence-vae", "gaussian")}  # fmt: skip


def train_one(name: str, args, data) -> tuple[object, dict]:
    import aekit

    family, code = FAMILIES[name]
    source, target, val_source, val_target = data
    settings = aekit.SequenceConfig(family=family, code=code, batch_tokens=args.batch_tokens)
    warmup = args.kl_warmup_epochs if family == "sequence-vae" else 0.0
    config = aekit.TrainConfig(
        epochs=args.epochs, lr=args.lr, lr_schedule="cosine", clip_grad_norm=1.0, device="cpu", seed=args.seed,
        penalty_warmup_epochs=warmup,
    )  # fmt: skip
    start = time.perf_counter()
    model, tokenizer, result = aekit.train_sequence_model(
        settings, config, source, target, val_source, val_target,
        callbacks=[wall_clock_budget(args.minutes * 60)], progress=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    trained_tokens = sum(len(ids) + 1 for ids in tokenizer.encode(source if target is None else target))
    trained_tokens *= len(result.history)
    info = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stop_detail": result.stop_detail,
        "train_target_tokens_per_second": round(trained_tokens / seconds, 1),
        "history": result.history,
    }
    if args.save:
        aekit.save_sequence_model(model, tokenizer, args.save / name, settings={"sequence": settings.resolved()})
    return aekit.Translator(model, tokenizer, beam=4), info


def score_autoencoder(translator, sentences, name: str) -> dict:
    """Reconstruction of ``sentences`` through the code (beam 4); for a VAE also importance-sampled
    -log p(x), KL, active units, prior samples and a homotopy."""
    from aekit.text.pipeline import corpus_scores, importance_sampled_nll

    start = time.perf_counter()
    outputs = translator(sentences)
    seconds = time.perf_counter() - start
    scores = corpus_scores(outputs, sentences)
    record = {
        "reconstruction_bleu": round(scores["bleu"], 2),
        "reconstruction_chrf": round(scores["chrf"], 2),
        "bleu_signature": scores["bleu_signature"],
        "exact_reconstructions": round(np.mean([o == s for o, s in zip(outputs, sentences, strict=True)]), 4),
        "decode_sentences_per_second": round(len(sentences) / seconds, 1),
        "by_length": bucketed_bleu(outputs, sentences, sentences),
        "examples": [{"input": s, "output": o} for s, o in zip(sentences[:5], outputs[:5], strict=True)],
        "test_set": name,
    }
    if translator.model.family == "sequence-vae":
        record.update({k: round(v, 4) if isinstance(v, float) else v
                       for k, v in importance_sampled_nll(translator, sentences, samples=100).items()})  # fmt: skip
        record["samples"] = translator.sample(8, seed=0)
        record["homotopy"] = translator.interpolate(sentences[0], sentences[3], steps=7)
    else:
        record.update({k: round(v, 4) for k, v in translator.nll(sentences, sentences).items()})
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pair", default="de-en")
    parser.add_argument(
        "--models", default="attention,fixed", help=f"models to train, from {', '.join(FAMILIES)} (comma-separated)"
    )
    parser.add_argument("--ae-language", default="en", help="the language of the pair the autoencoders read")
    parser.add_argument("--batch-tokens", type=int, default=2048, help="tokens per training batch")
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam's peak learning rate")
    parser.add_argument("--kl-warmup-epochs", type=float, default=1.0, help="sequence-vae: KL weight ramp 0 -> 1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None, help="keep every trained model in SAVE/<model>")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock training budget per model")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the cosine schedule")
    parser.add_argument("--limit", type=int, default=0, help="use only this many training pairs (a smoke test)")
    parser.add_argument("--test-limit", type=int, default=0, help="score only this many test sentences (a smoke test)")
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
    if args.test_limit:
        test_source, test_target = test_source[: args.test_limit], test_target[: args.test_limit]
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
        side = args.pair.split("-").index(args.ae_language)  # the autoencoders' language
        for name in args.models.split(","):
            if name not in FAMILIES:
                parser.error(f"unknown model {name!r}; choose from {', '.join(FAMILIES)}")
            translation = FAMILIES[name][0] == "seq2seq"
            data = (source, target, val_source, val_target)
            if not translation:
                data = (data[side], None, data[2 + side], None)
            translator, info = train_one(name, args, data)
            if args.skip_test:
                runs[name] = info
                print(f"{name}: {info['train_target_tokens_per_second']} target tokens/s")
            elif translation:
                runs[name] = {**info, **score(translator, test_source, test_target, "test")}
            else:
                tests = (test_source, test_target)[side]
                runs[name] = {**info, **score_autoencoder(translator, tests, f"test ({args.ae_language})")}
            print(name, {k: v for k, v in runs[name].items() if k not in ("history", "examples")})
    translations = {name: r for name, r in runs.items() if "bleu" in r}
    if translations:
        rows = [[name, f"{r['parameters']:,}", r.get("train_target_tokens_per_second", ""), r["bleu"], r["chrf"],
                 r["nats_per_token"], r["decode_sentences_per_second"]]
                for name, r in translations.items()]  # fmt: skip
        header = ["model", "parameters", "train tokens/s", "BLEU", "chrF", "nats/token", "decode sent/s"]
        print_markdown_table(header, rows)
        for name, r in translations.items():
            print(name, "BLEU by source length:", r["by_length"])
    write_record(args, "translation", time.perf_counter() - start, runs=runs)


if __name__ == "__main__":
    main()
