"""One-class novelty detection on Fashion-MNIST: autoencoder vs PCA vs IsolationForest.

Protocol (as in Ruff et al. 2018 and Golan & El-Yaniv 2018): for each of the 10 classes, train on
the training images of that class only (a seeded 90 %; the other 10 % is held out to set a
threshold), score the 10 000 test images, and measure the AUROC of "not this class" against the
score. Reported: AUROC per class and its mean, and mean +- standard deviation over seeds.

Scores, all fitted on the same 90 % in the same run:

* ``ae``: squared reconstruction error of an MLP autoencoder (784-H-K-H-784);
* ``ae_std``: the same residuals, each pixel's squared error divided by its mean over the training
  images plus ``floor`` times the mean over pixels (a per-pixel Gaussian NLL up to constants: a
  pixel that normal images never use counts more);
* ``pca``, ``pca_std``: the same two scores with PCA at the autoencoder's code size;
* ``pca_best``: plain PCA error at the best of k = 8, 16, 32, 64 in hindsight (chosen on the test
  labels: an upper bound for PCA);
* ``iforest``: scikit-learn's IsolationForest (100 trees), minus its score_samples.

With the threshold at the ``--quantile`` of the held-out normal scores (``ae_std``), it also
reports the share of normal and of anomalous test images flagged.

    python bench/anomaly.py --data-dir DATA --threads 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from common import write_record

METHODS = ("ae", "ae_std", "pca", "pca_std", "pca_best", "iforest")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AEKIT_DATA_DIR"), help="folder with fashion-mnist/")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--code-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--floor", type=float, default=0.05, help="of the mean per-pixel error, added to each")
    parser.add_argument("--quantile", type=float, default=0.99)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "anomaly.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    import aekit
    from aekit.applications.anomaly import AnomalyDetector, reconstruction_errors, residual_scale, scale_from_errors

    torch.set_num_threads(args.threads)
    train = aekit.load_dataset("fashion-mnist", "train", data_dir=args.data_dir, download=False)
    test = aekit.load_dataset("fashion-mnist", "test", data_dir=args.data_dir, download=False)
    flat_test = test.x.reshape(len(test), -1).astype(np.float64)
    started_all = time.perf_counter()
    runs: list[dict] = []
    for seed in args.seeds:
        for cls in args.classes:
            images = train.x[train.labels == cls]
            order = np.random.default_rng(seed).permutation(len(images))
            n_val = len(images) // 10
            x_fit, x_val = images[np.sort(order[n_val:])], images[np.sort(order[:n_val])]
            flat_fit = x_fit.reshape(len(x_fit), -1).astype(np.float64)
            anomalous = test.labels != cls
            record: dict = {"seed": seed, "class": cls, "class_name": train.class_names[cls]}
            record |= {"auroc": {}, "seconds": {}}

            begin = time.perf_counter()
            torch.manual_seed(seed)
            model = aekit.make_model("undercomplete", train.data_shape, args.code_size, hidden=args.hidden)
            config = aekit.TrainConfig(
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                lr_schedule="cosine",
                val_fraction=0.0,
                seed=seed,
                device="cpu",
            )
            aekit.Trainer(model, config, progress=False).fit(x_fit)
            scale = residual_scale(model, x_fit, args.floor)  # (1, 28, 28)
            record["seconds"]["ae"] = time.perf_counter() - begin
            record["auroc"]["ae"] = roc_auc_score(anomalous, reconstruction_errors(model, test.x))
            standardised = reconstruction_errors(model, test.x, scale=scale)
            record["auroc"]["ae_std"] = roc_auc_score(anomalous, standardised)
            detector = AnomalyDetector.calibrate(model, x_val, args.quantile, scale=scale)
            flagged = standardised > detector.threshold
            record["flagged_normal"] = float(flagged[~anomalous].mean())
            record["flagged_anomalous"] = float(flagged[anomalous].mean())

            begin = time.perf_counter()
            pca = PCA(args.code_size, random_state=seed).fit(flat_fit)
            record["seconds"]["pca"] = time.perf_counter() - begin
            residuals = pca.inverse_transform(pca.transform(flat_test)) - flat_test
            fit_residuals = pca.inverse_transform(pca.transform(flat_fit)) - flat_fit
            record["auroc"]["pca"] = roc_auc_score(anomalous, (residuals**2).sum(1))
            pca_scale = scale_from_errors((fit_residuals**2).mean(0), args.floor)
            record["auroc"]["pca_std"] = roc_auc_score(anomalous, (residuals**2 / pca_scale).sum(1))
            by_k = {}
            for k in (8, 16, 32, 64):
                other = PCA(k, random_state=seed).fit(flat_fit)
                other_residuals = other.inverse_transform(other.transform(flat_test)) - flat_test
                by_k[k] = roc_auc_score(anomalous, (other_residuals**2).sum(1))
            best_k = max(by_k, key=by_k.get)
            record["auroc"]["pca_best"], record["pca_best_k"] = by_k[best_k], best_k

            begin = time.perf_counter()
            forest = IsolationForest(n_estimators=100, random_state=seed).fit(flat_fit)
            record["seconds"]["iforest"] = time.perf_counter() - begin
            record["auroc"]["iforest"] = roc_auc_score(anomalous, -forest.score_samples(flat_test))

            record["auroc"] = {k: round(v, 4) for k, v in record["auroc"].items()}
            record["seconds"] = {k: round(v, 2) for k, v in record["seconds"].items()}
            runs.append(record)
            print(json.dumps(record), flush=True)
            write(args, runs, time.perf_counter() - started_all)
    print_table(write(args, runs, time.perf_counter() - started_all), args)


def summarise(runs: list[dict]) -> dict:
    """Per class: mean AUROC over seeds; overall: mean over classes, then mean and std over seeds."""
    classes = sorted({r["class"] for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    per_class = {
        c: {m: float(np.mean([r["auroc"][m] for r in runs if r["class"] == c])) for m in METHODS} for c in classes
    }
    per_seed = {m: [float(np.mean([r["auroc"][m] for r in runs if r["seed"] == s])) for s in seeds] for m in METHODS}
    return {
        "per_class": {c: {m: round(v, 4) for m, v in row.items()} for c, row in per_class.items()},
        "mean": {m: round(float(np.mean(v)), 4) for m, v in per_seed.items()},
        "std_over_seeds": {m: round(float(np.std(v, ddof=1)), 4) if len(v) > 1 else None for m, v in per_seed.items()},
        "flagged_normal": round(float(np.mean([r["flagged_normal"] for r in runs])), 4),
        "flagged_anomalous": round(float(np.mean([r["flagged_anomalous"] for r in runs])), 4),
        "seconds": {m: round(float(np.mean([r["seconds"][m] for r in runs])), 2) for m in ("ae", "pca", "iforest")},
    }


def write(args: argparse.Namespace, runs: list[dict], seconds: float) -> dict:
    summary = summarise(runs)
    write_record(args, "anomaly", seconds, summary=summary, runs=runs)
    return summary


def print_table(summary: dict, args: argparse.Namespace) -> None:
    from aekit.data.idx import CLASS_NAMES

    print("| class | " + " | ".join(METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    for cls, row in summary["per_class"].items():
        print(f"| {cls} {CLASS_NAMES['fashion-mnist'][cls]} | " + " | ".join(f"{row[m]:.3f}" for m in METHODS) + " |")
    cells = []
    for m in METHODS:
        std = summary["std_over_seeds"][m]
        cells.append(f"**{summary['mean'][m]:.4f}**" + (f" ± {std:.4f}" if std is not None else ""))
    print("| mean | " + " | ".join(cells) + " |")
    print(
        f"threshold at the {args.quantile} quantile of held-out normal scores (ae_std): "
        f"{100 * summary['flagged_normal']:.2f} % of normal and {100 * summary['flagged_anomalous']:.2f} % of "
        f"anomalous test images flagged; mean fit seconds {summary['seconds']}"
    )


if __name__ == "__main__":
    main()
