"""Deep autoencoder vs PCA at a 30-dimensional code on Fashion-MNIST (60k train / 10k test).

The MLP is Hinton & Salakhutdinov's (2006) 784-1000-500-250-30 (decoder mirrored); they report
squared error per MNIST test image of 3.00 for it against 13.87 for PCA-30 (ratio 0.22).
``--network conv`` trains the convolutional encoder/decoder instead (``--channels``,
``--convs-per-block``). PCA-30 is fitted in the same run. Reported: squared error per test image
(sum over the 784 pixels in [0, 1]) for both, their ratio, training wall time, threads and peak
memory.

    python bench/reconstruction.py --data-dir DATA --threads 2
    python bench/reconstruction.py --data-dir DATA --threads 2 --network conv --channels 32,64,128 \
        --convs-per-block 2 --epochs 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from datetime import date
from pathlib import Path

from common import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AEKIT_DATA_DIR"), help="folder with fashion-mnist/")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--activation", default="elu")
    parser.add_argument("--norm", default="none")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--network", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--hidden", default="1000,500,250", help="MLP widths")
    parser.add_argument("--channels", default="32,64,128", help="conv channels per stride-2 block")
    parser.add_argument("--convs-per-block", type=int, default=1)
    parser.add_argument("--val-fraction", type=float, default=0.0, help="held out to pick the best epoch")
    parser.add_argument("--augment", default="none", choices=["none", "hflip"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "reconstruction.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch
    from sklearn.decomposition import PCA

    import aekit

    torch.set_num_threads(args.threads)
    train = aekit.load_dataset("fashion-mnist", split="train", data_dir=args.data_dir, download=False)
    test = aekit.load_dataset("fashion-mnist", split="test", data_dir=args.data_dir, download=False)
    flat_train, flat_test = train.x.reshape(len(train), -1), test.x.reshape(len(test), -1)

    started = time.perf_counter()
    pca = PCA(30, svd_solver="full", random_state=args.seed).fit(flat_train)
    pca_seconds = time.perf_counter() - started
    pca_error = float(((pca.inverse_transform(pca.transform(flat_test)) - flat_test) ** 2).sum(1).mean())

    torch.manual_seed(args.seed)
    widths = {"mlp": {"hidden": [int(v) for v in args.hidden.split(",")], "norm": args.norm}}
    widths["conv"] = {"channels": [int(v) for v in args.channels.split(",")], "convs_per_block": args.convs_per_block}
    model = aekit.make_model(
        "undercomplete", train.data_shape, 30, network=args.network, activation=args.activation, **widths[args.network]
    )
    config = aekit.TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule="cosine",
        val_fraction=args.val_fraction,
        augment=args.augment,
        weight_decay=args.weight_decay,
        optimizer="adamw" if args.weight_decay else "adam",
        precision=args.precision,
        seed=args.seed,
    )
    result = aekit.Trainer(model, config, progress=True).fit(train.x)
    ae_error = aekit.reconstruction_report(model, test.x)["squared_error"]
    ae_train_error = aekit.reconstruction_report(model, train.x[:10000])["squared_error"]

    record = {
        "benchmark": "reconstruction",
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "settings": vars(args) | {"out": str(args.out)},
        "pca30_squared_error": round(pca_error, 3),
        "pca30_fit_seconds": round(pca_seconds, 2),
        "ae_squared_error": round(ae_error, 3),
        "ae_train_squared_error_10k": round(ae_train_error, 3),
        "ratio": round(ae_error / pca_error, 4),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(result.seconds, 1),
        "samples_per_second": round(result.samples_per_second),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "history": [{"epoch": r["epoch"], "loss": round(r["train"]["loss"], 3)} for r in result.history],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "history"}, indent=2))
    print(
        f"| {record['date']} | {args.threads} | PCA-30 {pca_error:.2f} | AE {ae_error:.2f} | ratio "
        f"{record['ratio']:.3f} | {record['train_seconds']:.0f} s | {record['peak_rss_mb']} MB |"
    )


if __name__ == "__main__":
    main()
