"""PCA, a linear autoencoder and a deep autoencoder against code size, on linear and curved data.

One run measures, for code sizes 1, 2, 4, 8, 16, 32, 64, the held-out reconstruction error
(squared error per example, summed over dimensions, and the fraction of the test variance left
unexplained) and the fit time of

* PCA (scikit-learn, default solver),
* the linear autoencoder (one linear layer each way, squared error, Adam),
* a deep autoencoder (ELU MLP, same loss and optimiser),

on four datasets:

* ``linear``: 128-D points on a 32-D linear subspace (variances 4 down to 0.5) plus isotropic
  noise of standard deviation 0.1;
* ``swiss-roll`` and ``s-curve``: scikit-learn's 3-D manifolds (2 intrinsic dimensions),
  standardised and lifted to 128-D by a fixed random map x = cos(W p + b) (W ~ N(0, 1)), which
  bends the 2-D sheet through many directions;
* ``fashion-mnist``: a seeded subset of the training images (``--fashion-train``, default 10 000)
  and the 10 000 test images, 784-D.

For the linear autoencoder it also reports the largest principal angle between its decoder's
column space and PCA's subspace (only where PCA's subspace is well defined: code sizes up to the
32 signal dimensions of ``linear``, and for Fashion-MNIST the leading components), and how error
and angle converge with training (separate runs of 1..N epochs on ``linear`` at code size 8).

    python bench/pca_vs_autoencoder.py --data-dir DATA --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from common import write_record

CODE_SIZES = (1, 2, 4, 8, 16, 32, 64)
LIFTED = 128  # dimension of the synthetic data


def synthetic(name: str, n: int, seed: int) -> np.ndarray:
    """(n, 128) float32 points of the named synthetic dataset; the map is fixed by ``seed``."""
    from sklearn.datasets import make_s_curve, make_swiss_roll

    rng = np.random.default_rng(seed)
    if name == "linear":
        basis, _ = np.linalg.qr(rng.normal(size=(LIFTED, 32)))  # (128, 32) orthonormal
        scales = np.sqrt(np.linspace(4.0, 0.5, 32))
        sample = np.random.default_rng(seed + n)
        x = (sample.normal(size=(n, 32)) * scales) @ basis.T + 0.1 * sample.normal(size=(n, LIFTED))
        return x.astype(np.float32)
    make = {"swiss-roll": make_swiss_roll, "s-curve": make_s_curve}[name]
    points, _ = make(n, noise=0.0, random_state=seed + n)
    points = (points - points.mean(0)) / points.std(0)  # (n, 3) standardised
    weights, phases = rng.normal(size=(3, LIFTED)), rng.uniform(0, 2 * np.pi, LIFTED)
    return np.cos(points @ weights + phases).astype(np.float32)


def load(name: str, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    if name == "fashion-mnist":
        import aekit

        train = aekit.load_dataset(name, "train", data_dir=args.data_dir, download=False).x
        test = aekit.load_dataset(name, "test", data_dir=args.data_dir, download=False).x
        keep = np.sort(np.random.default_rng(args.seed).choice(len(train), args.fashion_train, replace=False))
        return train[keep].reshape(len(keep), -1), test.reshape(len(test), -1)
    return synthetic(name, args.synthetic_train, args.seed), synthetic(name, args.synthetic_test, args.seed)


def fit_autoencoder(kind: str, x: np.ndarray, code: int, epochs: int, args: argparse.Namespace):
    import torch

    import aekit

    torch.manual_seed(args.seed)
    if kind == "linear":
        model = aekit.make_model("linear", (x.shape[1],), code)
        lr = args.linear_lr[int(x.shape[1] > LIFTED)]  # the synthetic sets are 128-D, Fashion-MNIST 784-D
    else:
        hidden = [512, 256] if x.shape[1] > LIFTED else [256, 128]
        model = aekit.make_model("undercomplete", (x.shape[1],), code, hidden=hidden, activation="elu")
        lr = args.deep_lr
    config = aekit.TrainConfig(
        epochs=epochs,
        batch_size=args.batch_size,
        lr=lr,
        lr_schedule="cosine",
        val_fraction=0.0,
        seed=args.seed,
        device="cpu",
    )
    result = aekit.Trainer(model, config, progress=False).fit(x)
    return model, result.seconds


def well_defined_subspace(name: str, code: int) -> bool:
    """Whether PCA's k-dimensional subspace is a fair target for the linear AE: not where ``linear``
    has only isotropic noise left (k > 32), nor on the synthetic manifolds, whose spectra have
    near-equal eigenvalues at many k (the subspace is then not unique)."""
    return (name == "linear" and code <= 32) or name == "fashion-mnist"


def squared_error(reconstruction: np.ndarray, x: np.ndarray) -> float:
    return float(((reconstruction - x) ** 2).sum(1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AEKIT_DATA_DIR"), help="folder with fashion-mnist/")
    parser.add_argument("--datasets", nargs="+", default=["linear", "swiss-roll", "s-curve", "fashion-mnist"])
    parser.add_argument("--code-sizes", type=int, nargs="+", default=list(CODE_SIZES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic-train", type=int, default=5000)
    parser.add_argument("--synthetic-test", type=int, default=2000)
    parser.add_argument("--fashion-train", type=int, default=10_000)
    parser.add_argument("--linear-epochs", type=int, nargs=2, default=[100, 60], metavar=("SYNTHETIC", "FASHION"))
    parser.add_argument("--deep-epochs", type=int, nargs=2, default=[200, 40], metavar=("SYNTHETIC", "FASHION"))
    parser.add_argument("--batch-size", type=int, default=128, help="both autoencoders, Adam with cosine decay")
    parser.add_argument("--linear-lr", type=float, nargs=2, default=[3e-2, 1e-2], metavar=("SYNTHETIC", "FASHION"))
    parser.add_argument("--deep-lr", type=float, default=1e-3)
    parser.add_argument("--convergence-epochs", type=int, nargs="+", default=[1, 2, 5, 10, 20, 50, 100])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pca_vs_autoencoder.json")
    parser.add_argument("--figure", type=Path, default=Path(__file__).parents[1] / "docs" / "figures")
    parser.add_argument(
        "--redraw",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="only draw the figure and table from saved results; a later file's datasets replace an earlier one's",
    )
    args = parser.parse_args()
    if args.redraw:
        rows, convergence = merge_records(args.redraw)
        save_figure(plot(rows, convergence), args.figure)
        print_table(rows)
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch
    from sklearn.decomposition import PCA

    import aekit

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows: list[dict] = []
    for name in args.datasets:
        x_train, x_test = load(name, args)
        total_variance = float(x_test.var(0).sum())
        fashion = name == "fashion-mnist"
        print(f"{name}: train {x_train.shape}, test {x_test.shape}, test variance {total_variance:.3f}", flush=True)
        for code in args.code_sizes:
            row: dict = {"dataset": name, "code_size": code}
            begin = time.perf_counter()
            pca = PCA(code, random_state=args.seed).fit(x_train)
            row["pca_seconds"] = time.perf_counter() - begin
            row["pca_error"] = squared_error(pca.inverse_transform(pca.transform(x_test)), x_test)
            for kind in ("linear", "deep"):
                epochs = (args.linear_epochs if kind == "linear" else args.deep_epochs)[int(fashion)]
                model, seconds = fit_autoencoder(kind, x_train, code, epochs, args)
                with torch.no_grad():
                    recon = model.reconstruct(torch.as_tensor(x_test)).numpy()
                row[f"{kind}_error"] = squared_error(recon, x_test)
                row[f"{kind}_seconds"] = seconds
                if kind == "linear" and well_defined_subspace(name, code):
                    decoder = model.decoder.linear_layers[0].weight.detach().double().numpy()  # (D, k)
                    row["linear_max_angle_deg"] = float(aekit.principal_angles(decoder, pca.components_.T).max())
            for key in ("pca", "linear", "deep"):
                row[f"{key}_unexplained"] = row[f"{key}_error"] / total_variance
            row = {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}
            rows.append(row)
            print(json.dumps(row), flush=True)

    convergence = []
    if "linear" in args.datasets:
        x_train, _ = load("linear", args)
        pca = PCA(8, random_state=args.seed).fit(x_train)
        pca_train_error = squared_error(pca.inverse_transform(pca.transform(x_train)), x_train)
        for epochs in args.convergence_epochs:
            model, seconds = fit_autoencoder("linear", x_train, 8, epochs, args)
            with torch.no_grad():
                recon = model.reconstruct(torch.as_tensor(x_train)).numpy()
            decoder = model.decoder.linear_layers[0].weight.detach().double().numpy()
            convergence.append(
                {
                    "epochs": epochs,
                    "error_ratio_to_pca": round(squared_error(recon, x_train) / pca_train_error, 5),
                    "max_angle_deg": round(float(aekit.principal_angles(decoder, pca.components_.T).max()), 4),
                    "seconds": round(seconds, 2),
                }
            )
            print(json.dumps(convergence[-1]), flush=True)

    write_record(args, "pca_vs_autoencoder", time.perf_counter() - started, rows=rows, convergence=convergence)
    save_figure(plot(rows, convergence), args.figure)
    print_table(rows)


def merge_records(paths: list[Path]) -> tuple[list[dict], list[dict]]:
    """Rows and convergence points of saved records; a later record's datasets replace earlier ones."""
    rows: dict[str, list[dict]] = {}
    convergence: list[dict] = []
    for path in paths:
        record = json.loads(path.read_text())
        for dataset in dict.fromkeys(row["dataset"] for row in record["rows"]):
            rows[dataset] = [row for row in record["rows"] if row["dataset"] == dataset]
        convergence = record["convergence"] or convergence
    return [row for dataset_rows in rows.values() for row in dataset_rows], convergence


def save_figure(figure, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    figure.savefig(folder / "pca_vs_autoencoder.png", dpi=110)


def plot(rows: list[dict], convergence: list[dict]):
    """Top row: test variance left unexplained against code size, one panel per dataset, and the
    linear AE's convergence to PCA. Bottom row: fit times."""
    from matplotlib.figure import Figure

    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    columns = len(datasets) + (1 if convergence else 0)
    figure = Figure(figsize=(3.3 * columns, 6.2), layout="constrained")
    axes = figure.subplots(2, columns, squeeze=False)
    styles = {"pca": ("PCA", "o", "-"), "linear": ("linear AE", "x", "--"), "deep": ("deep AE", "s", "-")}
    for column, name in enumerate(datasets):
        mine = [row for row in rows if row["dataset"] == name]
        codes = [r["code_size"] for r in mine]
        for key, (label, marker, line) in styles.items():
            axes[0, column].plot(codes, [r[f"{key}_unexplained"] for r in mine], line, marker=marker, ms=4, label=label)
            axes[1, column].plot(codes, [r[f"{key}_seconds"] for r in mine], line, marker=marker, ms=4, label=label)
        axes[0, column].set_title(name)
        for ax in axes[:, column]:
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("code size")
            ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("test variance left unexplained")
    axes[1, 0].set_ylabel("fit time (s, 1 thread)")
    axes[0, 0].legend()
    if convergence:
        ax = axes[0, -1]
        epochs = [c["epochs"] for c in convergence]
        ax.plot(epochs, [c["error_ratio_to_pca"] - 1 for c in convergence], "o-", ms=4, label="train error / PCA's - 1")
        ax.plot(epochs, [c["max_angle_deg"] for c in convergence], "s-", ms=4, label="largest angle to PCA (deg)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training epochs")
        ax.set_title("linear AE -> PCA (linear, code 8)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        axes[1, -1].set_axis_off()
    return figure


def print_table(rows: list[dict]) -> None:
    print("| data | code | PCA error | linear AE | deep AE | PCA s | linear AE s | deep AE s | angle deg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['code_size']} | {r['pca_error']:.4g} | {r['linear_error']:.4g} | "
            f"{r['deep_error']:.4g} | {r['pca_seconds']:.3f} | {r['linear_seconds']:.1f} | {r['deep_seconds']:.1f} | "
            f"{angle(r)} |"
        )


def angle(row: dict) -> str:
    return f"{row['linear_max_angle_deg']:.2f}" if "linear_max_angle_deg" in row else "-"


if __name__ == "__main__":
    main()
