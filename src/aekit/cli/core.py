"""Core commands: evaluate, encode, reconstruct, demo, list (train is in :mod:`aekit.cli.training`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AekitError
from .base import (
    add_model_use_arguments,
    add_output,
    arguments,
    check_fresh_output,
    command,
    integer,
    load_run_and_data,
    print_report,
    save_array,
    save_figure,
)
from .training import train_run

# ------------------------------------------------------------------------------------------------ #
# using a trained model


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    add_model_use_arguments(parser)
    parser.add_argument("--seed", type=integer(0), default=0, help="seed of the latent samples (ELBO, IS-NLL)")
    parser.add_argument(
        "--importance-samples",
        type=integer(1),
        metavar="K",
        help="samples per example of the importance-sampled -log p(x) (models with a Gaussian latent; "
        "default 100, 5000 for published comparisons; each example costs K decoder passes)",
    )
    add_output(parser, "--json", metavar="FILE", help="also write the figures to this JSON file")
    _add_text_use(parser)


def _add_text_use(parser: argparse.ArgumentParser) -> None:
    """Options for sequence models (the RUN of a seq2seq or sequence family)."""
    from .text import add_text_arguments

    add_text_arguments(parser)
    parser.add_argument("--beam", type=integer(1), default=4, help="beam width of the decoding scored by BLEU")
    parser.add_argument("--truncate", action="store_true", help="cut sentences longer than the model's max_tokens")


@command(
    "evaluate",
    "reconstruction error; for a VAE the ELBO and importance-sampled -log p(x), nats per example; for a sparse "
    "dictionary its variance unexplained, L0, dead and dense latents and shrinkage",
    """examples:
  aekit evaluate runs/vae --data fashion-mnist --split test
  aekit evaluate runs/vae --data mnist --split test --binarize static --importance-samples 5000
  aekit evaluate runs/ae --data test.npy --json metrics.json
  aekit evaluate runs/de-en --data multi30k --pair de-en --split test     # BLEU, chrF, nats per token
  aekit evaluate runs/de-en --data test.de --target-data test.en
  aekit evaluate runs/sae --data held_out_activations.npy                 # fvu, l0, dead, dense, shrinkage

For binary (Bernoulli) models trained with --binarize dynamic, score binary data: --binarize static
draws one seeded binarisation of the test images, the usual protocol for likelihoods.""",
)
@arguments(_add_evaluate)
def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..io import write_json
    from ..metrics import importance_sampled_nll, reconstruction_report
    from ..text.pipeline import is_sequence_model_dir

    if is_sequence_model_dir(args.run):
        from .text import evaluate_text

        return evaluate_text(args)
    model, dataset = load_run_and_data(args)
    report = reconstruction_report(model, dataset.x, batch_size=args.batch_size, seed=args.seed)
    if "dead_latents" in model.latent.abilities:  # a sparse dictionary: its own measures
        from ..metrics import dictionary_report

        report |= dictionary_report(model, dataset.x, batch_size=args.batch_size)
    samples = args.importance_samples
    if samples is None and model.latent.has_prior:
        samples = 100
    if samples is not None:
        nll = importance_sampled_nll(
            model, dataset.x, samples, batch_size=args.batch_size, seed=args.seed, progress=samples >= 1000
        )
        report["is_nll"] = float(nll.mean())
        report["is_nll_stderr"] = float(nll.std(ddof=1) / np.sqrt(len(nll))) if len(nll) > 1 else 0.0
        report["importance_samples"] = samples
    print_report(f"{dataset.name}, {len(dataset)} examples:", report)
    if args.json:
        write_json(args.json, report)
        print(f"written to {args.json}")
    return 0


def _add_encode(parser: argparse.ArgumentParser) -> None:
    add_model_use_arguments(parser)
    add_output(parser, "--out", required=True, metavar="FILE.npy", help="codes (N, K) float32")
    add_output(parser, "--labels-out", metavar="FILE.npy", help="also write the labels, if any")
    _add_text_use(parser)


@command(
    "encode",
    "write the codes of a dataset to a .npy file (posterior means; bits for hashing)",
    """examples:
  aekit encode runs/vae --data fashion-mnist --split test --out codes.npy --labels-out labels.npy
  aekit encode runs/sentences --data sentences.txt --out codes.npy   # one code per sentence
  aekit hash build --method itq --bits 32 --data codes.npy --out index.npz   # hash sentence codes""",
)
@arguments(_add_encode)
def cmd_encode(args: argparse.Namespace) -> int:
    from ..text.pipeline import is_sequence_model_dir

    if is_sequence_model_dir(args.run):
        from .text import encode_text

        return encode_text(args)

    from ..tensors import apply_batched, as_tensor

    model, dataset = load_run_and_data(args)
    device = next(model.parameters()).device
    codes = apply_batched(model.encode, as_tensor(dataset.x), args.batch_size, device).numpy()
    save_array(codes.astype(np.float32), args.out)
    print(f"{codes.shape[0]} codes of size {codes.shape[1]} written to {args.out}")
    if args.labels_out:
        if dataset.labels is None:
            raise AekitError(f"{dataset.name} has no labels", "there is nothing to write", "drop --labels-out")
        save_array(dataset.labels, args.labels_out)
        print(f"labels written to {args.labels_out}")
    return 0


def _add_reconstruct(parser: argparse.ArgumentParser) -> None:
    add_model_use_arguments(parser)
    add_output(parser, "--out", required=True, metavar="FILE.png", help="figure to write")
    parser.add_argument("-n", "--count", type=integer(1), default=12, help="how many examples")
    parser.add_argument("--seed", type=integer(0), default=0, help="which examples (seeded random choice)")


@command(
    "reconstruct",
    "a PNG grid of originals above their reconstructions",
    """examples:
  aekit reconstruct runs/vae --data fashion-mnist --out recon.png -n 16""",
)
@arguments(_add_reconstruct)
def cmd_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from ..plots import reconstruction_grid

    if args.count < 1:
        raise AekitError(f"--count {args.count}", "at least one example is needed", "use -n 1 or more")
    model, dataset = load_run_and_data(args)
    count = min(args.count, len(dataset))
    index = np.sort(np.random.default_rng(args.seed).choice(len(dataset), count, replace=False))
    originals = dataset.x[index]
    with torch.no_grad():
        recon = model.reconstruct(torch.as_tensor(originals).to(next(model.parameters()).device)).cpu().numpy()
    save_figure(reconstruction_grid(originals, recon, f"{model.family} autoencoder"), args.out)
    print(f"{count} reconstructions written to {args.out}")
    return 0


# ------------------------------------------------------------------------------------------------ #
# demo and discovery


def _add_demo(parser: argparse.ArgumentParser) -> None:
    from ..families import family_names

    parser.add_argument("--out", type=Path, default=Path("aekit-demo"), metavar="DIR", help="the folder to write")
    parser.add_argument("--family", default="undercomplete", choices=family_names(), help="which autoencoder")
    parser.add_argument("--code-size", type=_positive_int, default=32, metavar="K", help="code width")
    parser.add_argument("--epochs", type=_positive_int, default=20, metavar="N", help="passes over the images")
    parser.add_argument("--seed", type=integer(0), default=0, help="seeds the split, initialisation and shuffling")
    parser.add_argument("--force", action="store_true", help="replace an earlier demo in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


@command(
    "demo",
    "train a small autoencoder on the embedded Fashion-MNIST test set (no network), compare with PCA",
    """examples:
  aekit demo                       # writes aekit-demo/: metrics.json, loss_curve.png, reconstructions.png
  aekit demo --family vae --code-size 16 --out vae-demo""",
)
@arguments(_add_demo)
def cmd_demo(args: argparse.Namespace) -> int:
    import torch
    from sklearn.decomposition import PCA

    from ..config import TrainConfig
    from ..data import load_dataset
    from ..families import make_model
    from ..io import write_json

    check_fresh_output(args.out, args.force, resumable=False)
    dataset = load_dataset("embedded", split="test")
    train, test = dataset.split(0.1, seed=args.seed)
    torch.manual_seed(args.seed)
    model = make_model(args.family, dataset.data_shape, args.code_size)
    config = TrainConfig(epochs=args.epochs, batch_size=128, lr=2e-3, lr_schedule="cosine", seed=args.seed)
    print(
        f"training a {args.family} autoencoder (code size {args.code_size}) on {len(train)} embedded "
        f"Fashion-MNIST images; {len(test)} held out"
    )
    record = {
        "model": {"family": args.family, "code_size": args.code_size},
        "data": {"data": "embedded", "split": "test", "held_out": 0.1, "seed": args.seed},
        "scaling": dataset.scaling,
    }
    metrics = train_run(args.out, model, train.x, test.x, config, not args.no_progress, None, record)
    started = time.perf_counter()
    flat_train, flat_test = train.x.reshape(len(train), -1), test.x.reshape(len(test), -1)
    pca = PCA(args.code_size, random_state=args.seed).fit(flat_train)
    pca_error = float(((pca.inverse_transform(pca.transform(flat_test)) - flat_test) ** 2).sum(1).mean())
    metrics["pca"] = {"squared_error": pca_error, "fit_seconds": round(time.perf_counter() - started, 2)}
    metrics["ratio_to_pca"] = metrics["test"]["squared_error"] / pca_error
    write_json(args.out / "metrics.json", metrics)
    print_report(f"held-out images ({len(test)}):", metrics["test"])
    print(
        f"  PCA with {args.code_size} components: squared error {pca_error:.4f} per example "
        f"(autoencoder / PCA = {metrics['ratio_to_pca']:.3f})"
    )
    for name in ("metrics.json", "loss_curve.png", "reconstructions.png", "model.safetensors"):
        print(f"wrote {args.out / name}")
    return 0


def _shown_default(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return "unset" if value is None else str(value)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


@command("list", "the families, their options, and every registered part")
def cmd_list(args: argparse.Namespace) -> int:
    from .. import families, registry
    from ..families import NETWORK_OPTIONS

    print("families (aekit train --family NAME, options with -o KEY=VALUE, defaults after =):")
    network = set(NETWORK_OPTIONS)
    for name in families.family_names():
        options = families.family_options(name)
        own = [f"{key}={_shown_default(value)}" for key, value in options.items() if key not in network]
        print(f"  {name:<14} {families.family_summary(name)}")
        if own:
            print(f"  {'':<14} options: {', '.join(own)}")
        if network & set(options):
            print(f"  {'':<14} and the network options {', '.join(k for k in options if k in network)}")
    from ..text.families import SEQUENCE_FAMILIES

    print("\nsequence families (text; options in `aekit train --help` under sequence models):")
    for name, summary in SEQUENCE_FAMILIES.items():
        print(f"  {name:<18} {summary}")
    print("\nparts (for --set and config.json):")
    for kind in registry.KINDS:
        print(f"  {kind:<19} {', '.join(registry.names(kind))}")
    from ..applications.restoration import PRETRAINED, pretrained_names

    print("\nshipped restoration models (aekit restore --task ...; ImageRestorer.pretrained(NAME)):")
    for name in pretrained_names():
        print(f"  {name:<18} {PRETRAINED[name]}")
    return 0
