"""Commands for what codes are used for: latent maps, anomaly scores, classifiers on pretrained encoders."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from ..errors import AekitError
from .base import (
    add_data_arguments,
    add_output,
    add_settings,
    arguments,
    command,
    integer,
    load_data,
    load_run_and_data,
    save_array,
    save_figure,
    settings_from_args,
)

# ------------------------------------------------------------------------------------------------ #
# aekit plot latent


def _add_plot(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("figure", choices=["latent"], help="latent: 2-D maps of the codes, coloured by label")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run or model folders, one panel each")
    add_data_arguments(parser, default_split="test")
    add_output(parser, "--out", required=True, metavar="FILE.png", help="figure to write")
    parser.add_argument(
        "--max-points", type=integer(1), default=5000, help="a seeded random subset of this many examples"
    )
    parser.add_argument("--no-pca", action="store_true", help="leave out the PCA panel of the data")
    parser.add_argument("--seed", type=integer(0), default=0, help="which examples are drawn")
    parser.add_argument("--batch-size", type=integer(1), default=1024, help="examples computed at a time")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")


@command(
    "plot",
    "figures of trained models; `plot latent` maps the codes of each run in 2-D, coloured by label",
    """How codes become 2-D points: a code of 2 units is drawn as it is; a wider code through its
first two principal components (a PCA of the codes themselves, the axes give the share of the codes'
variance each keeps); a 1-unit code against the label. The first panel is PCA of the data (2
components of the flattened examples) unless --no-pca.

examples:
  aekit train --family undercomplete --code-size 2 --data fashion-mnist --out runs/ae2
  aekit train --family vae --code-size 2 --data fashion-mnist --out runs/vae2
  aekit plot latent runs/ae2 runs/vae2 --data fashion-mnist --split test --out latent.png
  aekit plot latent runs/ae32 --data my.npz --max-points 2000 --no-pca --out latent32.png""",
)
@arguments(_add_plot)
def cmd_plot(args: argparse.Namespace) -> int:
    import torch

    from ..io import load_model
    from ..plots import latent_maps
    from ..tensors import apply_batched, resolve_device

    if args.max_points < 1:
        raise AekitError(f"--max-points {args.max_points}", "at least one point is needed", "use 1 or more")
    device = resolve_device(args.device)
    models = [(run, load_model(run, device)) for run in args.runs]
    dataset = load_data(args)
    for run, model in models:
        if dataset.data_shape != model.data_shape:
            raise AekitError(
                f"the data have examples of shape {dataset.data_shape}",
                f"the model in {run} was trained on {model.data_shape}",
                "use data like its training data",
            )
    if len(dataset) > args.max_points:
        dataset = dataset.subset(np.sort(np.random.default_rng(args.seed).choice(len(dataset), args.max_points, False)))
    panels: dict[str, np.ndarray] = {}
    if not args.no_pca:
        from sklearn.decomposition import PCA

        panels["PCA of the data (2 components)"] = PCA(2, random_state=args.seed).fit_transform(
            dataset.x.reshape(len(dataset), -1)
        )
    x = torch.as_tensor(dataset.x)
    for run, model in models:
        codes = apply_batched(model.encode, x, args.batch_size, device).numpy()
        panels[f"{run.name}: {model.family}, code {model.code_size}"] = codes
    figure = latent_maps(panels, dataset.labels, dataset.class_names, f"{dataset.name}, {len(dataset)} examples")
    save_figure(figure, args.out)
    print(f"latent map of {len(panels)} panel(s), {len(dataset)} points, written to {args.out}")
    return 0


# ------------------------------------------------------------------------------------------------ #
# aekit anomaly


def _add_anomaly(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="RUN", help="a model trained on normal data only")
    add_data_arguments(parser, default_split="test")
    group = parser.add_argument_group("threshold (optional)")
    choice = group.add_mutually_exclusive_group()
    choice.add_argument(
        "--calibrate",
        metavar="SOURCE",
        help="held-out normal data (its train split if a dataset name); the threshold is a quantile of their errors",
    )
    choice.add_argument("--threshold", type=float, help="a squared-error threshold chosen earlier")
    group.add_argument("--quantile", type=float, default=0.99, help="with --calibrate: flag 1 - this of normal data")
    parser.add_argument(
        "--standardize",
        metavar="SOURCE",
        help="normal data (e.g. the training data; train split of a dataset name) whose mean squared error per "
        "feature divides each feature's error: a pixel normal data never use then counts more",
    )
    parser.add_argument("--floor", type=float, default=0.05, help="with --standardize: added to each feature's "
                        "mean error, as a fraction of their average")  # fmt: skip
    parser.add_argument(
        "--normal-class",
        metavar="C1,C2",
        help="labels of normal examples: keeps only those in labelled --calibrate data; reports the AUROC on --data",
    )
    add_output(parser, "--out", metavar="FILE", help=".csv (index,score[,anomaly][,label]) or .npy")
    parser.add_argument("--batch-size", type=integer(1), default=1024, help="examples computed at a time")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")


@command(
    "anomaly",
    "novelty scores (squared reconstruction error) of a dataset; flags above a threshold set on normal data",
    """A model trained on normal examples reconstructs them well and anything else worse: the score of
an example is its squared reconstruction error (summed over pixels or features); with --standardize
each feature's error is first divided by its mean over normal data. With --calibrate the threshold
is the --quantile of the scores of held-out normal data, so about 1 - quantile of normal examples
are flagged.

examples:
  aekit train --family undercomplete --code-size 16 --data fashion-mnist --classes 0 --out runs/tshirts
  aekit anomaly runs/tshirts --data fashion-mnist --split test --normal-class 0 --out scores.csv
  aekit anomaly runs/tshirts --data fashion-mnist --split test --normal-class 0 --standardize fashion-mnist
  aekit anomaly runs/tshirts --data new.npy --calibrate normal_val.npy --quantile 0.99 --out flags.csv
  aekit anomaly runs/tshirts --data new.npy --threshold 31.5 --out flags.csv""",
)
@arguments(_add_anomaly)
def cmd_anomaly(args: argparse.Namespace) -> int:
    from ..applications.anomaly import AnomalyDetector, reconstruction_errors, residual_scale

    if args.normal_class and args.classes:
        raise AekitError("--normal-class and --classes", "the AUROC needs every class of --data", "drop --classes")
    model, dataset = load_run_and_data(args)
    scale = None
    if args.standardize:
        reference = _normal_data(args, args.standardize)
        scale = residual_scale(model, reference.x, args.floor, args.batch_size)
        print(f"each feature's squared error divided by its mean over {len(reference)} normal examples")
    scores = reconstruction_errors(model, dataset.x, args.batch_size, scale=scale)
    threshold = args.threshold
    if args.calibrate:
        normal = _normal_data(args, args.calibrate)
        detector = AnomalyDetector.calibrate(model, normal.x, args.quantile, scale=scale, batch_size=args.batch_size)
        threshold = detector.threshold
        print(f"threshold {threshold:.4f}: the {args.quantile} quantile of {len(normal)} normal examples' scores")
    print(f"{dataset.name}: {len(scores)} scores, median {np.median(scores):.4f}, max {scores.max():.4f}")
    flags = scores > threshold if threshold is not None else None
    if flags is not None:
        print(f"  {int(flags.sum())} of {len(flags)} flagged ({100 * flags.mean():.2f} %) above {threshold:.4f}")
    if args.normal_class:
        from sklearn.metrics import roc_auc_score

        if dataset.labels is None:
            raise AekitError("--normal-class needs labels", f"{dataset.name} has none", "drop --normal-class")
        wanted = [c.strip() for c in args.normal_class.split(",")]
        anomalous = ~np.isin(dataset.labels.astype(str), wanted)
        if anomalous.all() or not anomalous.any():
            raise AekitError(
                f"--normal-class {args.normal_class}", "the AUROC needs normal and anomalous examples", "fix it"
            )
        print(f"  AUROC {roc_auc_score(anomalous, scores):.4f} (normal: labels {', '.join(wanted)})")
    if args.out:
        _write_scores(args.out, scores, flags, dataset.labels)
        print(f"written to {args.out}")
    return 0


def _normal_data(args: argparse.Namespace, source: str):
    """Normal examples from ``source`` (its train split if a dataset name); labelled data keep only
    the --normal-class examples."""
    from .base import keep_classes

    normal = load_data(args, source=source, split="train")
    return keep_classes(normal, args.normal_class) if normal.labels is not None else normal


def _write_scores(path: Path, scores: np.ndarray, flags: np.ndarray | None, labels: np.ndarray | None) -> None:
    if path.suffix == ".npy":
        save_array(scores, path)
        return
    if path.suffix != ".csv":
        raise AekitError(f"output {path} must end in .csv or .npy", "scores are written as a table or array", "rename")
    from ..io import atomic_write_text

    columns = {"index": np.arange(len(scores)), "score": scores}
    if flags is not None:
        columns["anomaly"] = flags.astype(int)
    if labels is not None:
        columns["label"] = labels
    buffer = io.StringIO()
    buffer.write(",".join(columns) + "\n")
    for row in zip(*columns.values(), strict=True):
        buffer.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + "\n")
    atomic_write_text(path, buffer.getvalue())


# ------------------------------------------------------------------------------------------------ #
# aekit finetune


def _add_finetune(parser: argparse.ArgumentParser) -> None:
    from ..config import TrainConfig

    parser.add_argument("run", type=Path, metavar="RUN", help="the pretrained autoencoder (run or model folder)")
    add_data_arguments(parser, default_split="train")
    parser.add_argument(
        "--test-data", metavar="SOURCE", help="labelled test data (default: a named dataset's test split)"
    )
    parser.add_argument(
        "--labels", type=integer(1), metavar="N", help="train on a seeded subset of N labelled examples"
    )
    parser.add_argument("--freeze", action="store_true", help="keep the encoder fixed, train only the head")
    parser.add_argument("--hidden", metavar="W1,W2", default="", help="hidden widths of the head (default: none)")
    parser.add_argument("--compare-random", action="store_true", help="also train the same network from random weights")
    training = parser.add_argument_group("training (the same loop and settings as aekit train)")
    add_settings(training, TrainConfig, skip=("checkpoint_every", "logger"))
    add_output(parser, "--json", metavar="FILE", help="also write the error rates to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


@command(
    "finetune",
    "train a classifier whose first layers are a run's encoder (frozen or fine-tuned); report its error",
    """The classifier is the autoencoder's encoder (its noise-free code) followed by a head: softmax
regression, or an MLP with --hidden. Without --freeze every weight trains on the labels. With
--labels N only N labelled examples are used, the usual setting where pretraining pays off.

examples:
  aekit train --family denoising --data fashion-mnist --code-size 256 --out runs/dae
  aekit finetune runs/dae --data fashion-mnist --labels 1000 --compare-random
  aekit finetune runs/dae --data fashion-mnist --freeze --hidden 128 --json probe.json""",
)
@arguments(_add_finetune)
def cmd_finetune(args: argparse.Namespace) -> int:
    import torch

    from ..applications.pretraining import EncoderClassifier, error_rate
    from ..config import TrainConfig
    from ..io import write_json
    from ..train import fine_tune

    model, dataset = load_run_and_data(args)
    if dataset.labels is None:
        raise AekitError(f"{dataset.name} has no labels", "a classifier learns from labels", "use labelled data")
    test = None
    if args.test_data:
        test = load_data(args, source=args.test_data, split="test")
    elif args.data in ("mnist", "fashion-mnist") and args.split == "train":
        test = load_data(args, split="test")
    classes, y = np.unique(dataset.labels, return_inverse=True)
    x = dataset.x
    if args.labels is not None:
        if not 1 <= args.labels <= len(x):
            raise AekitError(f"--labels {args.labels}", f"the data have {len(x)} examples", f"use 1..{len(x)}")
        keep = np.sort(np.random.default_rng(args.seed).choice(len(x), args.labels, replace=False))
        x, y = x[keep], y[keep]
    try:
        hidden = [int(v) for v in args.hidden.split(",") if v.strip()]
    except ValueError:
        raise AekitError(f"bad --hidden {args.hidden!r}", "expected comma-separated integers", "e.g. 128") from None
    config = settings_from_args(args, TrainConfig)
    starts = {"pretrained": model}
    if args.compare_random:
        from ..model import Autoencoder

        torch.manual_seed(args.seed)
        starts["random"] = Autoencoder.from_config(model.config)
    report: dict[str, dict] = {}
    for name, start in starts.items():
        torch.manual_seed(args.seed)
        network = EncoderClassifier.from_autoencoder(start, len(classes), hidden, freeze=args.freeze)
        result = fine_tune(network, x, y, config, progress=not args.no_progress)
        best_error = result.best_val["error"] if result.best_val is not None else None
        report[name] = {"val_error": best_error, "best_epoch": result.best_epoch}
        if test is not None:
            if test.labels is None:
                raise AekitError(f"{test.name} has no labels", "the test error needs them", "use labelled test data")
            known = np.isin(test.labels, classes)
            y_test = np.searchsorted(classes, test.labels[known])
            report[name]["test_error"] = error_rate(network, test.x[known], y_test)
        shown = ", ".join(
            f"{k} {100 * v:.2f} %" for k, v in report[name].items() if k.endswith("error") and v is not None
        )
        print(f"{name} encoder{' (frozen)' if args.freeze else ''}, {len(x)} labelled examples: {shown}")
    if args.json:
        write_json(args.json, {"labelled_examples": len(x), "freeze": args.freeze, "hidden": hidden, **report})
        print(f"written to {args.json}")
    return 0
