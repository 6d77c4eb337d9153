"""Sparse dictionaries on data with known features: do they find them, at what sparsity, how fast?

* synthetic: ``aekit.data.synthetic.sparse_features``: ``--features`` true directions (seeded
  Gaussian, unit norm) in ``--dim`` dimensions, firing with Zipfian rates (``--mean-active`` per
  vector on average), magnitudes falling with rarity, in correlated groups of 4 (a shared gate open
  half the time). ``--samples`` vectors for training (one pass unless ``--epochs``), 20 000 more
  held out for the measures. Dictionaries of ``--width`` latents: ``sae-topk`` and
  ``sae-batchtopk`` at k = the mean number of active features, ``sae-jumprelu`` over a sweep of
  its L0 weight (and once with the paper's starting thresholds), and the course's L1 sparse
  autoencoder (family ``sparse``: one linear layer each way, ReLU code, L1 on the code) and the L1
  dictionary (``sae-l1``) over sweeps of their weights. Measured on the held-out vectors
  (``aekit.metrics.dictionary_report`` and ``feature_recovery``): fraction of variance unexplained,
  L0, dead and dense latents, shrinkage, and the mean maximum |cosine| (MCC) between the true
  directions and the learned ones with the F1 of recovery at |cosine| >= 0.9; training samples
  per second. Same threads, same data, same batches for every model.

    python bench/sae.py --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import add_clip_option, write_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=1024, help="true features (default: 1024)")
    parser.add_argument("--dim", type=int, default=128, help="dimensions they are superposed in (default: 128)")
    parser.add_argument("--width", type=int, default=1024, help="dictionary latents (default: 1024)")
    parser.add_argument("--mean-active", type=float, default=12, help="features firing per vector (default: 12)")
    parser.add_argument("--samples", type=int, default=2_000_000, help="training vectors (default: 2 000 000)")
    parser.add_argument("--epochs", type=int, default=1, help="passes over them (default: 1)")
    parser.add_argument("--batch-size", type=int, default=1024, help="(default: 1024)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--jumprelu-l0", default="0.1,0.3,1", help="L0 weights swept (default: %(default)s)")
    parser.add_argument("--l1", default="0.1,0.3,1,3", help="L1 weights swept (default: %(default)s)")
    parser.add_argument("--sae-l1", default="0.3,1,3", help="sae-l1 weights swept (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data and initialisation (default: 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    add_clip_option(parser)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sae.json")
    args = parser.parse_args()

    import torch

    import aekit
    from aekit.data.synthetic import sparse_features
    from aekit.metrics import dictionary_report, feature_recovery

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    settings = {"features": args.features, "dim": args.dim, "mean_active": args.mean_active, "group_size": 4}
    x, directions, _ = sparse_features(args.samples + 20000, seed=args.seed, with_activations=False, **settings)
    train_x, test_x = x[: args.samples].numpy(), x[args.samples :].numpy()
    print(f"data: {len(train_x)} training vectors of {args.dim}, {args.features} features", flush=True)

    def run(name: str, family: str, **options) -> dict:
        torch.manual_seed(args.seed)
        if family == "sparse":
            model = aekit.make_model(family, (args.dim,), args.width, hidden=[], likelihood="gaussian", **options)
            learned = lambda: model.decoder.linear_layers[0].weight.detach().T  # noqa: E731  (K, D)
        else:
            model = aekit.make_model(family, (args.dim,), args.width, **options)
            learned = lambda: model.decoder.weight.detach().T  # noqa: E731
        config = aekit.TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_schedule="cosine", seed=args.seed,
            val_fraction=0.0, checkpoint_every=0, clip_grad_norm=args.clip_grad_norm,
        )  # fmt: skip
        result = aekit.Trainer(model, config, progress=False).fit(train_x)
        row = {"family": family, **options, "samples_per_second": round(result.samples_per_second)}
        row |= {k: round(v, 4) for k, v in dictionary_report(model, test_x).items()}
        row |= {k: round(v, 4) for k, v in feature_recovery(directions, learned()).items()}
        print(f"  {name}: {row}", flush=True)
        return row

    k = round(args.mean_active)
    rows = {
        f"sae-topk k={k}": run("topk", "sae-topk", k=k),
        f"sae-batchtopk k={k}": run("batchtopk", "sae-batchtopk", k=k),
    }
    for weight in [float(w) for w in args.jumprelu_l0.split(",")]:
        rows[f"sae-jumprelu l0_weight={weight}"] = run("jumprelu", "sae-jumprelu", l0_weight=weight)
    # the paper's starting thresholds (0.001, kernel 0.001) against aekit's (1, 0.05), same L0 weight
    rows["sae-jumprelu l0_weight=0.3, threshold 0.001, bandwidth 0.001"] = run(
        "jumprelu-paper-init", "sae-jumprelu", l0_weight=0.3, threshold=0.001, bandwidth=0.001
    )
    for weight in [float(w) for w in args.l1.split(",")]:
        rows[f"sparse (L1) weight={weight}"] = run("l1", "sparse", sparsity="l1", weight=weight)
    for weight in [float(w) for w in args.sae_l1.split(",") if w]:
        rows[f"sae-l1 l1_weight={weight}"] = run("sae-l1", "sae-l1", l1_weight=weight)
    write_record(args, "sae", time.perf_counter() - started, data=settings, rows=rows)
    print(np.round(time.perf_counter() - started), "s")


if __name__ == "__main__":
    main()
