"""Unsupervised pretraining of a classifier, after Rifai et al. (2011), "Contractive auto-encoders".

Protocol: one hidden layer of 1000 sigmoid units is pretrained as an autoencoder (cross-entropy
reconstruction, i.e. a Bernoulli likelihood on grey values in [0, 1]) of four kinds:

* ``ae``: plain autoencoder (the contractive one without its penalty),
* ``sparse``: + weight * sum_j KL(rho || mean activation of unit j),
* ``denoising``: the encoder sees the image with a fraction of pixels set to 0 (masking noise),
* ``contractive``: + weight * ||d code / d x||_F^2 (exact closed form for one sigmoid layer),

and ``none``: the same network randomly initialised. Each encoder becomes the first layer of a
784-1000-10 classifier (softmax output) that is then fine-tuned on the labels (all weights train),
keeping the epoch with the lowest validation error. Reported: test error (%) per family, mean and
standard deviation over seeds, in two regimes: all training labels, and few labels (the
autoencoders are still pretrained on every training image, labels unused; the classifier sees
only ``--labels`` of them). In the few-label regime the frozen encoder with a trained softmax
("frozen") is also reported, a direct probe of the features.

Data: Fashion-MNIST (60 000 training images: a fixed seeded split of 50 000 train / 10 000
validation; the official 10 000 test images) and MNIST with the data available here: its training
images are not, so the 10 000 MNIST *test* images are split once, with a fixed seed, into 6 000
train / 1 000 validation / 3 000 test. The paper's MNIST numbers (50 000 training images) are
CAE 1.14 %, DAE 1.18 %, AE 1.78 % test error; with 6 000 training images errors are higher.

    python bench/pretraining.py --data-dir DATA --threads 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from common import write_record

FAMILIES = ("none", "ae", "sparse", "denoising", "contractive")
SPLIT_SEED = 20110628  # the one fixed seed of every train/validation/test split


def load_splits(name: str, data_dir: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "val", "test"}: (x (N, 1, 28, 28) float32 in [0, 1], labels (N,))."""
    import aekit

    rng = np.random.default_rng(SPLIT_SEED)
    if name == "fashion-mnist":
        train = aekit.load_dataset(name, "train", data_dir=data_dir, download=False)
        test = aekit.load_dataset(name, "test", data_dir=data_dir, download=False)
        order = rng.permutation(len(train))
        val, rest = order[:10_000], order[10_000:]
        return {
            "train": (train.x[rest], train.labels[rest]),
            "val": (train.x[val], train.labels[val]),
            "test": (test.x, test.labels),
        }
    if name == "mnist":  # only the 10 000 test images exist here
        data = aekit.load_dataset(name, "test", data_dir=data_dir, download=False)
        order = rng.permutation(len(data))
        parts = {"train": order[:6000], "val": order[6000:7000], "test": order[7000:]}
        return {key: (data.x[index], data.labels[index]) for key, index in parts.items()}
    raise SystemExit(f"unknown dataset {name}")


def model_config(family: str, args: argparse.Namespace):
    """One sigmoid layer of ``args.units`` units each way from 784 inputs, Bernoulli output."""
    import aekit

    common = {"hidden": [], "likelihood": "bernoulli"}
    shape, units = (1, 28, 28), args.units
    if family in ("none", "ae"):
        config = aekit.family_config("contractive", shape, units, **common)
        config.penalties, config.family = [], "autoencoder"  # the same network without the penalty
        return config
    if family == "sparse":
        options = {"sparsity": "kl", "rho": args.rho, "weight": args.sparse_weight}
        return aekit.family_config("sparse", shape, units, **options, **common)
    if family == "denoising":
        return aekit.family_config(
            "denoising", shape, units, noise="masking", level=args.masking, code_activation="sigmoid", **common
        )
    if family == "contractive":
        return aekit.family_config("contractive", shape, units, weight=args.cae_weight, estimator="exact", **common)
    raise ValueError(family)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AEKIT_DATA_DIR"), help="has mnist/, fashion-mnist/")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--units", type=int, default=1000, help="hidden units (the paper: 1000)")
    parser.add_argument("--pretrain-epochs", type=int, nargs=2, default=[30, 10], metavar=("MNIST", "FASHION"))
    parser.add_argument("--finetune-epochs", type=int, nargs=2, default=[100, 20], metavar=("MNIST", "FASHION"))
    parser.add_argument("--few-epochs", type=int, default=100, help="fine-tuning epochs with few labels")
    parser.add_argument("--labels", type=int, default=1000, help="labelled examples in the few-label regime")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam, pretraining and fine-tuning (cosine decay)")
    parser.add_argument("--cae-weight", type=float, default=0.1)
    parser.add_argument("--sparse-weight", type=float, default=0.1)
    parser.add_argument("--rho", type=float, default=0.05)
    parser.add_argument("--masking", type=float, default=0.25, help="fraction of pixels zeroed (denoising)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pretraining.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    import aekit
    from aekit.applications.pretraining import EncoderClassifier, error_rate
    from aekit.train import fine_tune

    torch.set_num_threads(args.threads)
    started_all = time.perf_counter()
    runs: list[dict] = []
    for dataset in args.datasets:
        splits = load_splits(dataset, args.data_dir)
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits["train"], splits["val"], splits["test"]
        pretrain_epochs = args.pretrain_epochs[0 if dataset == "mnist" else 1]
        finetune_epochs = args.finetune_epochs[0 if dataset == "mnist" else 1]
        print(f"{dataset}: train {len(x_train)}, val {len(x_val)}, test {len(x_test)}", flush=True)
        for seed in args.seeds:
            few = np.sort(np.random.default_rng(seed).choice(len(x_train), args.labels, replace=False))
            for family in FAMILIES:
                torch.manual_seed(seed)
                model = aekit.Autoencoder.from_config(model_config(family, args))
                pretrain_seconds = 0.0
                if family != "none":
                    config = aekit.TrainConfig(
                        epochs=pretrain_epochs,
                        batch_size=args.batch_size,
                        lr=args.lr,
                        lr_schedule="cosine",
                        val_fraction=0.0,
                        seed=seed,
                        device="cpu",
                    )
                    result = aekit.Trainer(model, config, progress=False).fit(x_train, x_val)
                    pretrain_seconds = result.seconds
                val_nll = aekit.reconstruction_report(model, x_val)["nll"]
                regimes = [("all labels", x_train, y_train, finetune_epochs, False)]
                regimes += [(f"{args.labels} labels", x_train[few], y_train[few], args.few_epochs, False)]
                regimes += [(f"{args.labels} labels, frozen", x_train[few], y_train[few], args.few_epochs, True)]
                for regime, x, y, epochs, freeze in regimes:
                    if freeze and family == "none":
                        continue  # a frozen random layer is not a pretrained representation
                    torch.manual_seed(seed)
                    classifier = EncoderClassifier.from_autoencoder(model, 10, freeze=freeze)
                    config = aekit.TrainConfig(
                        epochs=epochs,
                        batch_size=args.batch_size,
                        lr=args.lr,
                        lr_schedule="cosine",
                        seed=seed,
                        device="cpu",
                    )
                    tuned = fine_tune(classifier, x, y, config, x_val, y_val)
                    record = {
                        "dataset": dataset,
                        "regime": regime,
                        "family": family,
                        "seed": seed,
                        "test_error_percent": round(100 * error_rate(classifier, x_test, y_test), 3),
                        "val_error_percent": round(100 * tuned.best_val["error"], 3),
                        "best_epoch": tuned.best_epoch,
                        "pretrain_val_nll": round(val_nll, 2),
                        "pretrain_seconds": round(pretrain_seconds, 1),
                        "finetune_seconds": round(tuned.seconds, 1),
                    }
                    runs.append(record)
                    print(json.dumps(record), flush=True)
                    write(args, runs, time.perf_counter() - started_all)
    summary = write(args, runs, time.perf_counter() - started_all)
    print_table(summary)


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and standard deviation (ddof=1) of the test error over seeds, per dataset/regime/family."""
    groups: dict[tuple, list[float]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["regime"], run["family"]), []).append(run["test_error_percent"])
    return [
        {
            "dataset": dataset,
            "regime": regime,
            "family": family,
            "seeds": len(errors),
            "mean": round(float(np.mean(errors)), 2),
            "std": round(float(np.std(errors, ddof=1)), 2) if len(errors) > 1 else None,
        }
        for (dataset, regime, family), errors in groups.items()
    ]


def write(args: argparse.Namespace, runs: list[dict], seconds: float) -> list[dict]:
    summary = summarise(runs)
    write_record(args, "pretraining", seconds, summary=summary, runs=runs)
    return summary


def print_table(summary: list[dict]) -> None:
    print("| dataset | regime | " + " | ".join(FAMILIES) + " |")
    print("|---|---|" + "---|" * len(FAMILIES))
    keys = sorted({(s["dataset"], s["regime"]) for s in summary}, key=str)
    for dataset, regime in keys:
        cells = []
        for family in FAMILIES:
            match = [s for s in summary if (s["dataset"], s["regime"], s["family"]) == (dataset, regime, family)]
            cells.append(f"{match[0]['mean']:.2f} ± {match[0]['std'] or 0:.2f}" if match else "")
        print(f"| {dataset} | {regime} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
