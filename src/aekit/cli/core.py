"""Core commands: train, evaluate, encode, reconstruct, demo, list."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AekitError
from .base import (
    add_data_arguments,
    add_model_use_arguments,
    arguments,
    check_fresh_output,
    command,
    data_description,
    load_data,
    load_run_and_data,
    print_report,
    save_array,
    save_figure,
)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    from ..families import family_names

    group = parser.add_argument_group("model")
    group.add_argument("--family", default="undercomplete", choices=family_names(), help="which autoencoder")
    group.add_argument("--code-size", type=int, default=32, metavar="K", help="code width (bits for hashing)")
    group.add_argument("--network", choices=["mlp", "conv"], help="encoder/decoder network (default mlp)")
    group.add_argument("--hidden", metavar="W1,W2", help="MLP hidden widths, encoder side, e.g. 1000,500,250")
    group.add_argument("--channels", metavar="C1,C2", help="conv channels per stride-2 block, e.g. 32,64")
    group.add_argument("--activation", help="hidden activation: relu, elu, gelu, silu, sigmoid, tanh, identity")
    group.add_argument("--norm", choices=["none", "batch", "layer"], help="MLP hidden-layer normalisation")
    group.add_argument("--likelihood", choices=["gaussian", "bernoulli"], help="output units (default per family)")
    group.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="family option, e.g. noise=gaussian level=0.5 (denoising), sparsity=kl rho=0.05, weight=0.1, beta=4",
    )
    group.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PART.KEY=VALUE",
        dest="overrides",
        help="override any part option after the preset, e.g. latent.noise_std=4 or likelihood.learn_sigma=shared",
    )


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from ..config import TrainConfig

    defaults = TrainConfig()
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, help=f"passes over the data (default {defaults.epochs})")
    group.add_argument("--batch-size", type=int, default=defaults.batch_size)
    group.add_argument("--lr", type=float, default=defaults.lr, help="learning rate")
    group.add_argument("--optimizer", choices=["adam", "adamw"], default=defaults.optimizer)
    group.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    group.add_argument("--lr-schedule", choices=["constant", "cosine"], default=defaults.lr_schedule)
    group.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="held out for validation")
    group.add_argument("--patience", type=int, default=defaults.patience, help="early stopping; 0 = off")
    group.add_argument("--clip-grad-norm", type=float, default=defaults.clip_grad_norm, help="0 = off")
    group.add_argument(
        "--penalty-warmup",
        type=float,
        default=defaults.penalty_warmup_epochs,
        metavar="EPOCHS",
        help="ramp every penalty weight linearly from 0 over these epochs (KL warm-up for a vae); 0 = off",
    )
    group.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default=defaults.precision,
        help="bf16 autocasts the training step's matmuls (faster on CPUs with AVX512-BF16 and on GPUs)",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training loss as one graph, forward and backward (opt-in; the first step compiles)",
    )
    group.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=defaults.channels_last,
        help="NHWC memory layout for conv networks, faster with oneDNN and cuDNN (default: on; MLPs are unaffected)",
    )
    group.add_argument(
        "--flush-denormal",
        action=argparse.BooleanOptionalAction,
        default=defaults.flush_denormal,
        help="flush denormal floats to zero while training: Adam's decaying moments otherwise make x86 CPUs "
        "several times slower (default: on)",
    )
    group.add_argument("--seed", type=int, default=defaults.seed)
    group.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:N or mps")
    group.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, metavar="EPOCHS")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _train_config(args: argparse.Namespace):
    from ..config import TrainConfig

    return TrainConfig(
        epochs=args.epochs or TrainConfig.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        val_fraction=args.val_fraction,
        patience=args.patience,
        clip_grad_norm=args.clip_grad_norm,
        penalty_warmup_epochs=args.penalty_warmup,
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        dynamic_binarization=args.binarize == "dynamic",
        precision=args.precision,
        compile=args.compile,
        channels_last=args.channels_last,
        flush_denormal=args.flush_denormal,
    ).validate()


def _family_options(args: argparse.Namespace) -> dict[str, Any]:
    from ..config import parse_value

    options: dict[str, Any] = {}
    for key in ("network", "activation", "norm", "likelihood"):
        if getattr(args, key):
            options[key] = getattr(args, key)
    for key in ("hidden", "channels"):
        text = getattr(args, key)
        if text is not None:
            try:
                options[key] = [int(v) for v in text.split(",") if v.strip()]
            except ValueError:
                raise AekitError(f"bad --{key} {text!r}", "expected comma-separated integers", "e.g. 512,256") from None
    for item in args.option:
        if "=" not in item:
            raise AekitError(f"bad --option {item!r}", "expected KEY=VALUE", "e.g. -o noise=gaussian")
        key, value = item.split("=", 1)
        options[key.strip()] = parse_value(value)
    return options


def train_run(
    run_dir: Path,
    model,
    x_train: Any,
    x_test: np.ndarray | None,
    train_config,
    progress: bool,
    resume: bool,
    extra: dict[str, Any],
    write: bool = True,
) -> dict[str, Any]:
    """Train, then write model, history, metrics and figures into ``run_dir``; returns the metrics.

    ``x_train`` is an array or a streamed :class:`ArrayFile`; ``write=False`` (the other processes
    of a distributed run) trains without writing anything.
    """

    from ..io import save_model, write_json
    from ..metrics import reconstruction_report
    from ..plots import loss_curve
    from ..train import CHECKPOINT_FILE, Trainer

    trainer = Trainer(model, train_config, run_dir=run_dir if write else None, progress=progress)
    if write and not resume:  # written first, so that an interrupted run can be resumed
        write_json(run_dir / "train.json", {"train": train_config.to_dict(), **extra})
    result = trainer.fit(x_train, resume=run_dir / CHECKPOINT_FILE if resume else None)
    if not write:
        return {}
    write_json(run_dir / "train.json", {"train": train_config.to_dict(), **extra})
    save_model(model, run_dir)
    metrics: dict[str, Any] = {
        "family": model.family,
        "code_size": model.code_size,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "train_seconds": round(result.seconds, 2),
        "samples_per_second": round(result.samples_per_second, 1),
        "device": str(trainer.device),
        "final_train": result.history[-1]["train"],
        "final_val": result.history[-1]["val"],
    }
    if x_test is not None:
        metrics["test"] = reconstruction_report(model, x_test)
    write_json(run_dir / "history.json", result.history)
    write_json(run_dir / "metrics.json", metrics)
    save_figure(loss_curve(result.history, f"{model.family} autoencoder"), run_dir / "loss_curve.png")
    shown = _first_rows(x_test if x_test is not None else x_train, 12)
    save_figure(reconstruction_figure(model, shown, trainer.device), run_dir / "reconstructions.png")
    return metrics


def reconstruction_figure(model, shown: np.ndarray, device):
    """Originals above reconstructions; for a model with a corruption, of the corrupted inputs
    (seeded), shown between them."""
    import torch

    from ..plots import image_rows, reconstruction_grid

    x = torch.as_tensor(shown).to(device)
    with torch.no_grad():
        if model.corruption is None:
            recon = model.reconstruct(x).cpu().numpy()
            return reconstruction_grid(shown, recon, f"{model.family}: reconstructions")
        corrupted = model.corruption.corrupt(x, torch.Generator(device=device).manual_seed(0))
        recon = model.reconstruct(corrupted).cpu().numpy()
    seen = corrupted[:, : x.shape[1]].cpu().numpy()  # without a mask channel
    rows = [shown, seen, recon]
    return image_rows(rows, ["original", "corrupted", "reconstruction"], f"{model.family}: reconstructions")


def _first_rows(x: Any, count: int) -> np.ndarray:
    from ..data.streaming import ArrayFile

    rows = x.read(0, min(count, len(x))) if isinstance(x, ArrayFile) else x[:count]
    return rows.toarray() if hasattr(rows, "toarray") else np.asarray(rows)  # sparse rows: documents


def _add_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, metavar="RUN", help="run folder to write")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out")
    parser.add_argument(
        "--init",
        type=Path,
        metavar="MODEL",
        help="start from the weights of a trained model of the same architecture (fine-tuning, e.g. a blind "
        "denoiser from a fixed-level one)",
    )
    add_data_arguments(parser, required=False)
    parser.add_argument(
        "--stream",
        action="store_true",
        help="stream a .npy file (or a folder of .npy shards) too big for memory, in shuffled chunks",
    )
    patches = parser.add_argument_group("patches (image restoration: denoise, super-resolve, inpaint, colorize)")
    patches.add_argument(
        "--patch-size", type=int, metavar="PIXELS", help="train on random square crops of the images in --data"
    )
    patches.add_argument("--patches", type=int, default=65536, metavar="N", help="how many crops (default 65536)")
    patches.add_argument(
        "--image-mode", choices=["grey", "rgb"], default="grey", help="grey: luma of every image; rgb: colour only"
    )
    parser.add_argument(
        "--test-data",
        metavar="SOURCE",
        help="evaluate on this after training (default: the test split of a named dataset)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes started by torchrun (gloo on CPU, NCCL on GPU)",
    )
    _add_model_arguments(parser)
    _add_train_arguments(parser)


@command(
    "train",
    "train any family on any supported data and write a run folder",
    """examples:
  aekit train --family vae --data fashion-mnist --code-size 16 --epochs 30 --out runs/vae
  aekit train --family denoising -o noise=gaussian -o level=0.5 --data mnist --out runs/dae
  aekit train --family sparse -o sparsity=kl -o rho=0.05 --data x.npy --code-size 64 --out runs/sparse
  aekit train --family contractive --network conv --channels 32,64 --data images/ --out runs/cae
  aekit train --resume --out runs/vae --epochs 50        # continue a run from its checkpoint
  aekit train --stream --data big.npy --family vae --out runs/big    # bigger than memory
  torchrun --standalone --nproc_per_node 4 -m aekit.cli train --distributed --data fashion-mnist \\
      --family vae --batch-size 512 --out runs/ddp      # 4 data-parallel processes, global batch 512

The run folder holds config.json + model.safetensors (the model), train.json, history.json,
metrics.json, loss_curve.png, reconstructions.png and checkpoint.safetensors (--checkpoint-every).""",
)
@arguments(_add_train)
def cmd_train(args: argparse.Namespace) -> int:
    from .. import distributed

    topology = distributed.init_from_env() if args.distributed else distributed.Topology()
    try:
        return _train(args, topology)
    finally:
        if args.distributed:
            distributed.shutdown()


def _train(args: argparse.Namespace, topology) -> int:
    import torch

    from ..config import FORMAT_VERSION, ModelConfig, TrainConfig, apply_overrides
    from ..data.streaming import ArrayFile
    from ..families import family_config
    from ..io import load_model, load_state, read_json, read_model_config, write_json
    from ..model import Autoencoder

    run_dir: Path = args.out
    if args.resume:
        saved = read_json(run_dir / "train.json", "run description")
        for key, value in saved["data"].items():
            setattr(args, key, value)
        train_config = TrainConfig.from_dict({**saved["train"], "epochs": args.epochs or saved["train"]["epochs"]})
        train_config.validate()
        if saved["train"].get("dynamic_binarization"):
            args.binarize = "dynamic"
        extra = {key: value for key, value in saved.items() if key != "train"}
    else:
        if not args.data:
            raise AekitError("no training data", "--data is required unless --resume is given", "add --data SOURCE")
        if topology.is_main:
            check_fresh_output(run_dir, args.force)
        train_config = _train_config(args)
        extra = {"data": data_description(args), "test_data": args.test_data, "family": args.family}
        if getattr(args, "init", None) is not None:
            extra["init"] = str(args.init)
    if getattr(args, "patch_size", None):
        from ..data.patches import load_patches

        x_train = load_patches(args.data, args.patch_size, args.patches, args.image_mode, seed=train_config.seed)
        data_shape, name = x_train.shape[1:], f"{args.patches} random {args.patch_size}-pixel crops of {args.data}"
    elif getattr(args, "stream", False):
        x_train: Any = ArrayFile(args.data, scale="none" if args.scale == "none" else "auto")
        data_shape, name = x_train.example_shape, f"{args.data} (streamed)"
    else:
        dataset = load_data(args)
        x_train, data_shape, name = dataset.x, dataset.data_shape, dataset.name
    test = None
    if args.test_data:
        test = load_data(args, source=args.test_data, split="test").x
    elif args.data in ("mnist", "fashion-mnist") and args.split == "train":
        test = load_data(args, split="test").x
    if args.resume:
        config = read_model_config(run_dir)
    else:
        config = family_config(args.family, data_shape, args.code_size, **_family_options(args))
        if args.overrides:
            config = ModelConfig.from_dict(apply_overrides(config.to_dict(), args.overrides))
    torch.manual_seed(train_config.seed)
    model = Autoencoder.from_config(config)
    if getattr(args, "init", None) is not None and not args.resume:
        load_state(model, load_model(args.init).state_dict(), f"--init {args.init}")
    if topology.is_main:
        if not args.resume:
            write_json(run_dir / "config.json", {"format_version": FORMAT_VERSION, "model": model.config.to_dict()})
        n_params = sum(p.numel() for p in model.parameters())
        processes = f", {topology.world} processes" if topology.distributed else ""
        print(f"{model.family} autoencoder, {n_params:,} parameters, data {name} {tuple(x_train.shape)}{processes}")
    metrics = train_run(
        run_dir, model, x_train, test, train_config, not args.no_progress, args.resume, extra, topology.is_main
    )
    if topology.is_main:
        if "test" in metrics:
            print_report("test set:", metrics["test"])
        print(f"run written to {run_dir}/ (model, metrics.json, loss_curve.png, reconstructions.png)")
    return 0


# ------------------------------------------------------------------------------------------------ #
# using a trained model


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    add_model_use_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent samples (ELBO, IS-NLL)")
    parser.add_argument(
        "--importance-samples",
        type=int,
        metavar="K",
        help="samples per example of the importance-sampled -log p(x) (models with a Gaussian latent; "
        "default 100, 5000 for published comparisons; each example costs K decoder passes)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to this JSON file")


@command(
    "evaluate",
    "reconstruction error and, for a VAE, the ELBO and importance-sampled -log p(x), nats per example",
    """examples:
  aekit evaluate runs/vae --data fashion-mnist --split test
  aekit evaluate runs/vae --data mnist --split test --binarize static --importance-samples 5000
  aekit evaluate runs/ae --data test.npy --json metrics.json

For binary (Bernoulli) models trained with --binarize dynamic, score binary data: --binarize static
draws one seeded binarisation of the test images, the usual protocol for likelihoods.""",
)
@arguments(_add_evaluate)
def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..io import write_json
    from ..metrics import importance_sampled_nll, reconstruction_report

    model, dataset = load_run_and_data(args)
    report = reconstruction_report(model, dataset.x, batch_size=args.batch_size, seed=args.seed)
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
    parser.add_argument("--out", required=True, type=Path, metavar="FILE.npy", help="codes (N, K) float32")
    parser.add_argument("--labels-out", type=Path, metavar="FILE.npy", help="also write the labels, if any")


@command(
    "encode",
    "write the codes of a dataset to a .npy file (posterior means; bits for hashing)",
    """examples:
  aekit encode runs/vae --data fashion-mnist --split test --out codes.npy --labels-out labels.npy""",
)
@arguments(_add_encode)
def cmd_encode(args: argparse.Namespace) -> int:

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
    parser.add_argument("--out", required=True, type=Path, metavar="FILE.png", help="figure to write")
    parser.add_argument("-n", "--count", type=int, default=12, help="how many examples")
    parser.add_argument("--seed", type=int, default=0, help="which examples (seeded random choice)")


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

    parser.add_argument("--out", type=Path, default=Path("aekit-demo"), metavar="DIR", help="where to write")
    parser.add_argument("--family", default="undercomplete", choices=family_names())
    parser.add_argument("--code-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an earlier demo in --out")
    parser.add_argument("--no-progress", action="store_true")


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

    check_fresh_output(args.out, args.force)
    dataset = load_dataset("embedded", split="test")
    train, test = dataset.split(0.1, seed=args.seed)
    torch.manual_seed(args.seed)
    model = make_model(args.family, dataset.data_shape, args.code_size)
    config = TrainConfig(epochs=args.epochs, batch_size=128, lr=2e-3, lr_schedule="cosine", seed=args.seed)
    print(
        f"training a {args.family} autoencoder (code size {args.code_size}) on {len(train)} embedded "
        f"Fashion-MNIST images; {len(test)} held out"
    )
    extra = {"data": {"data": "embedded", "split": "test", "held_out": 0.1, "seed": args.seed}}
    metrics = train_run(args.out, model, train.x, test.x, config, not args.no_progress, False, extra)
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


@command("list", "the families, their options, and every registered part")
def cmd_list(args: argparse.Namespace) -> int:
    import inspect

    from .. import families, registry

    print("families (aekit train --family NAME, options with -o KEY=VALUE):")
    for name in families.family_names():
        function = families._PRESETS[name]
        options = [p for p in inspect.signature(function).parameters if p not in ("data_shape", "code_size", "net")]
        doc = (function.__doc__ or "").strip().splitlines()[0]
        print(f"  {name:<14} {doc}")
        if options:
            print(f"  {'':<14} options: {', '.join(options)}")
    print("  the other families also take: network, hidden, norm, channels, activation, likelihood")
    print("\nparts (for --set and config.json):")
    for kind in registry.KINDS:
        print(f"  {kind:<11} {', '.join(registry.names(kind))}")
    from ..applications.restoration import PRETRAINED, pretrained_names

    print("\nshipped restoration models (aekit restore --task ...; ImageRestorer.pretrained(NAME)):")
    for name in pretrained_names():
        print(f"  {name:<18} {PRETRAINED[name]}")
    return 0
