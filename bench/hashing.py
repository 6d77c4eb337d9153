"""Semantic hashing retrieval: the hashing autoencoder against LSH, PCA hashing, ITQ and spectral hashing.

Protocol (relevance = same label, every method through the same split, encoder and metrics):

* Fashion-MNIST: 1 000 seeded test images query the 60 000 training images (the database).
* MNIST: only the 10 000 test images are available offline: 1 000 seeded queries, the other
  9 000 are the database.

Every method is fitted (trained) on the database images only, without labels. Figures per
method and code length: mAP over the whole Hamming ranking (ties in expectation), precision@100,
precision and recall within Hamming radius 2, fit and encode seconds. A Euclidean ranking of the
raw pixels is reported for reference. ``--bits`` sets the code lengths (16, 32, 64).

    python bench/hashing.py --data-dir DATA --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

from common import machine

BASELINES = ("lsh", "pca", "itq", "spectral")


def load(name: str, data_dir: str | None, n_queries: int, seed: int):
    """(database Dataset, query Dataset) of the protocol above."""
    import aekit
    from aekit.applications.hashers import query_database_split

    test = aekit.load_dataset(name, split="test", data_dir=data_dir, download=False)
    if name == "fashion-mnist":
        database = aekit.load_dataset(name, split="train", data_dir=data_dir, download=False)
        query_rows, _ = query_database_split(len(test), n_queries, seed)
        return database, test.subset(query_rows)
    query_rows, database_rows = query_database_split(len(test), n_queries, seed)
    return test.subset(database_rows), test.subset(query_rows)


def euclidean_map(database, queries, chunk: int = 100) -> float:
    """mAP of the Euclidean ranking of raw pixels (a strict ranking: float distances)."""
    import numpy as np

    from aekit.metrics import tie_group_metrics

    db = database.x.reshape(len(database), -1).astype(np.float32)
    q = queries.x.reshape(len(queries), -1).astype(np.float32)
    db_norms = (db**2).sum(1)
    total = 0.0
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        distances = db_norms[None, :] - 2 * block @ db.T  # (c, N), the query norm does not change ranks
        order = np.argsort(distances, axis=1, kind="stable")
        relevant = database.labels[order] == queries.labels[start : start + chunk, None]
        total += tie_group_metrics(np.ones(relevant.shape), relevant, k=100)["average_precision"].sum()
    return total / len(q)


def train_autoencoder(database, n_bits: int, epochs: int, args) -> tuple[object, dict]:
    import torch

    import aekit

    options = {"network": args.network, "likelihood": "bernoulli"}
    if args.network == "mlp":
        options["hidden"] = [int(v) for v in args.hidden.split(",")]
    else:
        options["channels"] = [int(v) for v in args.channels.split(",")]
    for item in args.option:
        key, value = item.split("=", 1)
        options[key] = json.loads(value)
    torch.manual_seed(args.seed)
    model = aekit.make_model("hashing", database.data_shape, n_bits, **options)
    config = aekit.TrainConfig(
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule="cosine",
        val_fraction=0.0,
        seed=args.seed,
    )
    result = aekit.Trainer(model, config, progress=args.progress).fit(database.x)
    return model, {
        "train_seconds": round(result.seconds, 1),
        "epochs": epochs,
        "final_loss": result.history[-1]["train"],
        "model": model.config.to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir", default=os.environ.get("AEKIT_DATA_DIR"), help="folder with mnist/, fashion-mnist/"
    )
    parser.add_argument("--datasets", default="fashion-mnist,mnist")
    parser.add_argument("--bits", default="16,32,64")
    parser.add_argument("--methods", default=",".join(BASELINES) + ",autoencoder")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    group = parser.add_argument_group("autoencoder")
    group.add_argument("--network", default="mlp", choices=["mlp", "conv"])
    group.add_argument("--hidden", default="512,256")
    group.add_argument("--channels", default="32,64")
    group.add_argument("--epochs", default="fashion-mnist=30,mnist=200", help="per dataset: NAME=EPOCHS,...")
    group.add_argument("--batch-size", type=int, default=1024)
    group.add_argument("--lr", type=float, default=2e-3)
    group.add_argument(
        "-o", "--option", action="append", default=[], help="family option KEY=JSON, e.g. neighbourhood=10"
    )
    group.add_argument("--progress", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hashing.json")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)

    import torch

    from aekit.applications.hashers import AutoencoderHasher, evaluate_hasher, make_hasher

    torch.set_num_threads(args.threads)
    bits = [int(b) for b in args.bits.split(",")]
    methods = args.methods.split(",")
    epochs = {key: int(value) for key, value in (item.split("=") for item in args.epochs.split(","))}
    results = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "settings": {key: str(value) for key, value in vars(args).items() if key != "out"},
        "datasets": {},
    }
    for name in args.datasets.split(","):
        database, queries = load(name, args.data_dir, args.queries, args.seed)
        print(f"{name}: {len(queries)} queries, {len(database)} database items", flush=True)
        rows = []
        started = time.perf_counter()
        reference = euclidean_map(database, queries)
        rows.append({"method": "euclidean (raw pixels)", "bits": None, "map": reference})
        print(f"  euclidean raw pixels: mAP {reference:.4f} ({time.perf_counter() - started:.1f} s)", flush=True)
        for n_bits in bits:
            for method in methods:
                extra = {}
                if method == "autoencoder":
                    model, extra = train_autoencoder(database, n_bits, epochs[name], args)
                    hasher, fit = AutoencoderHasher(model), False
                else:
                    hasher, fit = make_hasher(method, n_bits, seed=args.seed), True
                row = evaluate_hasher(
                    hasher, database.x, database.labels, queries.x, queries.labels, fit=fit, curve=True
                )
                row.update(extra)
                rows.append(row)
                print(
                    f"  {method:<12} {n_bits:>3} bits: mAP {row['map']:.4f}  P@100 {row['precision_at_k']:.4f}  "
                    f"P@r2 {row['precision_radius']:.4f}  R@r2 {row['recall_radius']:.4f}  "
                    f"({row.get('train_seconds', row['fit_seconds'])} s)",
                    flush=True,
                )
        results["datasets"][name] = {"queries": len(queries), "database": len(database), "rows": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
