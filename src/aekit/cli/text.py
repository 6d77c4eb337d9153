"""Sentences on the command line: ``aekit translate``, and the text side of ``train``, ``evaluate``,
``encode`` and ``interpolate`` for the sequence families (seq2seq, sequence, sequence-denoising,
sequence-vae)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import AekitError
from .base import (
    RUN_FILE,
    add_output,
    arguments,
    command,
    complete_error,
    integer,
    print_report,
    run_outcome,
    save_array,
)

TEXT_SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}


def add_text_arguments(parser: argparse.ArgumentParser) -> None:
    """--pair and --target-data: how --data is read when it is text."""
    group = parser.add_argument_group("text (sequence families: --data multi30k, a .txt file, or a .tsv of pairs)")
    group.add_argument(
        "--pair",
        metavar="SRC-TGT",
        default=None,
        help="languages of --data multi30k, e.g. de-en (default: de-en; en-en for the autoencoders)",
    )
    group.add_argument(
        "--target-data",
        metavar="FILE",
        default=None,
        help="the target side of parallel text, line by line with --data (seq2seq)",
    )


def is_text_source(data: str | None) -> bool:
    return data is not None and (data == "multi30k" or Path(data).suffix.lower() in (".txt", ".tsv", ".gz"))


def read_text(args: argparse.Namespace, family: str, split: str) -> tuple[list[str], list[str] | None, str]:
    """(source sentences, target sentences or None for an autoencoder, a name) from the data options."""
    from ..text.corpus import load_multi30k, read_lines, read_parallel

    translating = family == "seq2seq"
    if args.data == "multi30k":
        pair = args.pair or ("de-en" if translating else "en-en")
        if split not in TEXT_SPLITS:
            raise AekitError(f"--split {split} for multi30k", f"its splits are {', '.join(TEXT_SPLITS)}", "pick one")
        source, target = load_multi30k(pair, TEXT_SPLITS[split], args.data_dir, download=not args.no_download)
        name = f"multi30k {pair} {TEXT_SPLITS[split]}"
        if not translating:
            return source, None, name
        return source, target, name
    if args.pair:
        raise AekitError("--pair is given", "it picks the languages of --data multi30k", "drop --pair for files")
    if args.target_data:
        source, target = read_parallel(args.data, args.target_data)
        return source, target if translating else None, f"{args.data} + {args.target_data}"
    if str(args.data).lower().endswith(".tsv"):
        source, target = read_parallel(args.data)
        return source, target if translating else None, str(args.data)
    if translating:
        raise AekitError(
            f"--data {args.data} is one side of the text",
            "seq2seq learns from sentence pairs",
            "add --target-data FILE (same line count) or give a .tsv of pairs",
        )
    return read_lines(args.data), None, str(args.data)


# ------------------------------------------------------------------------------------------------ #
# train


def train_sequences(
    args: argparse.Namespace,
    run_dir: Path,
    checkpoint: Path | None,
    topology: Any,
    record_base: dict,
    train_config: Any,
) -> int:
    """The sequence families' side of ``aekit train``: read text, train through the one loop,
    write the run folder (model + tokenizer.json + records), report BLEU or NLL on the test split."""
    from ..callbacks import Callback
    from ..files import write_json
    from ..plots import loss_curve
    from ..text.families import SequenceConfig
    from ..text.pipeline import TOKENIZER_FILE, Translator, save_sequence_model, train_sequence_model
    from ..text.tokenizer import SubwordTokenizer
    from .base import save_figure, settings_from_args

    explicit = getattr(args, "explicit", set())
    extra = {} if "code_size" in explicit or args.resume else {"code_size": "auto"}
    settings: SequenceConfig = settings_from_args(args, SequenceConfig, **extra)
    source, target, name = read_text(args, settings.family, args.split)
    val_source = val_target = None
    if args.data == "multi30k" and args.split == "train":
        val_source, val_target, _ = read_text(args, settings.family, "val")
    tokenizer = None
    if checkpoint is not None or (args.resume and (run_dir / TOKENIZER_FILE).is_file()):
        tokenizer = SubwordTokenizer.load(run_dir / TOKENIZER_FILE)
    record = {
        **record_base,
        "sequence": settings.to_dict(),
        "text": {"pair": args.pair, "target_data": args.target_data},
    }

    if tokenizer is None:
        tokenizer = SubwordTokenizer.train([*source, *(target or [])], vocab_size=settings.vocab_size)
    trained_with = tokenizer

    class RecordRun(Callback):  # the tokenizer and the records exist before the first epoch ends
        def on_fit_start(self, loop: Any) -> None:
            if topology.is_main:
                trained_with.save(run_dir / TOKENIZER_FILE)
                write_json(run_dir / RUN_FILE, {**record, "result": None})

    if topology.is_main:
        pairs = "pairs" if target is not None else "sentences"
        print(f"{settings.family}: {len(source):,} training {pairs} from {name}; vocabulary {tokenizer.vocab_size:,}")
    model, tokenizer, result = train_sequence_model(
        settings,
        train_config,
        source,
        target,
        val_source,
        val_target if target is not None else None,
        run_dir=run_dir,
        resume=checkpoint,
        tokenizer=tokenizer,
        callbacks=[] if checkpoint is not None else [RecordRun()],
        progress=not args.no_progress,
    )
    if checkpoint is not None and len(result.history) == result.start_epoch:
        raise complete_error(run_dir, result)
    if not topology.is_main:
        return 0
    save_sequence_model(model, tokenizer, run_dir, {"sequence": settings.to_dict(), "train": train_config.to_dict()})
    outcome = run_outcome(result)
    write_json(run_dir / RUN_FILE, {**record, "train": train_config.to_dict(), "result": outcome})
    metrics: dict[str, Any] = {
        "family": settings.family,
        "parameters": sum(p.numel() for p in model.parameters()),
        **outcome,
        "train_seconds": round(result.seconds, 2),
        "best_val": result.best_val,
    }
    if args.data == "multi30k" and args.split == "train":
        test_source, test_target, test_name = read_text(args, settings.family, "test")
        translator = Translator(model, tokenizer, beam=4, truncate=True)
        metrics["test"] = text_report(translator, test_source, test_target or test_source, test_name, progress=False)
        print_report(f"{test_name}:", {k: v for k, v in metrics["test"].items() if not k.endswith("signature")})
    write_json(run_dir / "history.json", result.history)
    write_json(run_dir / "metrics.json", metrics)
    save_figure(loss_curve(result.history, f"{settings.family}: nats per token"), run_dir / "loss_curve.png")
    print(f"stopped: {result.stop_detail}; best epoch {result.best_epoch}")
    print(f"run written to {run_dir}/ (model, tokenizer.json, metrics.json, loss_curve.png)")
    return 0


def text_report(translator: Any, sources: list[str], references: list[str], name: str, progress: bool = True) -> dict:
    """BLEU and chrF (sacreBLEU, detokenised, with signatures) of beam-search outputs against the
    references, plus nats per token, nats per sentence and perplexity of the references."""
    from ..text.pipeline import corpus_scores

    bar = _bar(len(sources), f"decoding {name}", progress)
    hypotheses = translator(sources, progress=bar)
    if bar is not None:
        bar.close()
    return {**corpus_scores(hypotheses, references), **translator.nll(sources, references), "sentences": len(sources)}


def _bar(total: int, what: str, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=what, unit="sentence", file=sys.stderr, leave=False)


def evaluate_text(args: argparse.Namespace) -> int:
    """``aekit evaluate`` on a sequence model: BLEU and chrF for seq2seq (for the autoencoders, of the
    reconstructions), NLL for every family; for sequence-vae also the importance-sampled -log p(x),
    KL and active units."""
    from ..files import write_json
    from ..text.pipeline import Translator

    translator = Translator.load(args.run, beam=args.beam, truncate=args.truncate)
    family = translator.model.family
    source, target, name = read_text(args, family, args.split)
    report = text_report(translator, source, target if target is not None else source, name, progress=True)
    if family == "sequence-vae":  # -log p(x) by importance sampling, KL and active units
        from ..text.pipeline import importance_sampled_nll

        samples = 100 if args.importance_samples is None else args.importance_samples
        report.update(importance_sampled_nll(translator, source, samples=samples, seed=args.seed))
    print(report.pop("bleu_signature"))
    print(report.pop("chrf_signature"))
    print_report(f"{name}, {len(source)} sentences:", report)
    if args.json:
        write_json(args.json, report)
        print(f"written to {args.json}")
    return 0


def encode_text(args: argparse.Namespace) -> int:
    """``aekit encode`` on a sequence model: one code per sentence of --data, to a .npy file."""
    from ..text.pipeline import Translator

    translator = Translator.load(args.run, truncate=args.truncate)
    source, _, name = read_text(args, "sequence", args.split)
    codes = translator.encode(source)
    save_array(codes, args.out)
    print(f"{len(codes)} codes of {codes.shape[1]} numbers from {name} written to {args.out}")
    return 0


def interpolate_text(args: argparse.Namespace) -> int:
    """``aekit interpolate RUN --sentences A B``: the sentences decoded along the path between codes."""
    from ..files import atomic_write_text
    from ..text.pipeline import Translator

    translator = Translator.load(args.run, beam=1)
    lines = translator.interpolate(args.sentences[0], args.sentences[1], max(args.steps, 2))
    shown = [f"{i / (len(lines) - 1):4.2f}  {line}" for i, line in enumerate(lines)]
    print("\n".join(shown))
    atomic_write_text(args.out, "".join(line + "\n" for line in lines))
    print(f"{len(lines)} sentences written to {args.out}")
    return 0


# ------------------------------------------------------------------------------------------------ #
# translate


def _add_translate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="RUN_OR_NAME", help="a seq2seq run folder or a shipped model (translate-de-en)"
    )
    parser.add_argument(
        "input", nargs="?", type=Path, metavar="FILE", help="sentences, one a line, UTF-8 (default: standard input)"
    )
    add_output(parser, "--out", metavar="FILE", help="write the translations here (default: standard output)")
    parser.add_argument("--beam", type=integer(1), default=4, help="beam width; 1 decodes greedily")
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="hypotheses are ranked by log p / length ** this (0: raw log p)",
    )
    parser.add_argument(
        "--max-len", type=integer(1), default=None, help="longest output in tokens (default: 1.5 x the source + 10)"
    )
    parser.add_argument(
        "--truncate",
        action="store_true",
        help="cut sentences longer than the model's max_tokens (and say how many) instead of failing",
    )
    parser.add_argument("--batch-size", type=integer(1), default=64, help="sentences decoded at a time")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (shown for files)")


@command(
    "translate",
    "translate sentences (one a line) with a seq2seq run or a shipped model; beam search",
    """examples:
  echo "Ein Hund rennt über die Wiese." | aekit translate translate-de-en
  aekit translate translate-de-en sentences.de --out sentences.en
  aekit translate runs/de-en test.de --beam 8 --length-penalty 0.6

Empty lines are an error (say which); so are sentences longer than the model's max_tokens unless
--truncate, which cuts them and reports how many were cut.""",
)
@arguments(_add_translate)
def cmd_translate(args: argparse.Namespace) -> int:
    from ..files import atomic_write_text
    from ..tensors import resolve_device
    from ..text.corpus import read_lines
    from ..text.pipeline import Translator

    translator = Translator.load(
        args.model,
        beam=args.beam,
        length_penalty=args.length_penalty,
        max_len=args.max_len,
        truncate=args.truncate,
        batch_size=args.batch_size,
        device=resolve_device(args.device),
    )
    if args.input is not None:
        sentences = read_lines(args.input)
    else:
        data = sys.stdin.buffer.read()
        sentences = _stdin_lines(data)
    bar = _bar(len(sentences), "translating", args.input is not None and not args.no_progress)
    output = translator(sentences, progress=bar)
    if bar is not None:
        bar.close()
    if translator.last_truncated:
        print(
            f"{translator.last_truncated} sentences were cut to {translator.model.max_tokens} tokens", file=sys.stderr
        )
    text = "".join(line + "\n" for line in output)
    if args.out is not None:
        atomic_write_text(args.out, text)
        print(f"{len(output)} translations written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _stdin_lines(data: bytes) -> list[str]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise AekitError(
                f"line {number} of standard input is not UTF-8",
                "sentences are read as UTF-8",
                "convert the text to UTF-8 (e.g. iconv -t UTF-8)",
            ) from None
        if not line:
            raise AekitError(
                f"line {number} of standard input is empty", "there is nothing to translate", "remove empty lines"
            )
        out.append(line)
    if not out:
        raise AekitError("no sentences on standard input", "nothing to translate", "pipe sentences, one a line")
    return out
