"""Does ``--epochs auto`` fit the data? The default undercomplete autoencoder (code size 30, every
other setting at its default) against the best that tuning the training length and schedule finds.

Two protocols: Fashion-MNIST (fit on the 60 000 training images, score the 10 000 test images)
and MNIST's test images split 9 000 fit / 1 000 scored (seed 0; ``BASELINES.md``'s PCA protocol).
Scored: squared error per scored image (summed over the 784 pixels in [0, 1]); PCA-30 fitted on
the same images in the same run.

* ``auto``: ``aekit train --family undercomplete --code-size 30`` with the defaults: epochs auto
  (patience auto, max_steps 50 000), lr 1e-3 halved on plateaus (lr_schedule auto), batch 128,
  10 % of the fit images held out.
* ``auto-constant``: the same with ``lr_schedule=constant`` (the schedule before it was auto).
* the tuned optimum: the lowest test error over (a) a constant-lr run of ``--long`` epochs scored
  after every epoch (the best number of epochs, read off the test set: an oracle), and (b) cosine
  runs of each length in ``--cosine``. The same held-out 10 % and best-epoch restore as the defaults.

    python bench/training_length.py --data-dir DATA --threads 1 --dataset mnist
    python bench/training_length.py --data-dir DATA --threads 1 --dataset fashion-mnist --long 120 \\
        --cosine 30,60,120
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import machine, print_markdown_table, write_record


def load(name: str, data_dir: str):
    import aekit

    if name == "mnist":
        data = aekit.load_dataset("mnist", split="test", data_dir=data_dir, download=False)
        fit, scored = data.split(0.1, seed=0)  # 9 000 / 1 000
        return fit.x, scored.x
    train = aekit.load_dataset("fashion-mnist", split="train", data_dir=data_dir, download=False)
    test = aekit.load_dataset("fashion-mnist", split="test", data_dir=data_dir, download=False)
    return train.x, test.x


def train_once(x_fit, x_test, settings: dict, per_epoch: bool) -> dict:
    """One run of the default undercomplete autoencoder with ``settings`` changed."""
    import torch

    import aekit
    from aekit.callbacks import Callback

    torch.manual_seed(0)
    model = aekit.FamilyConfig(family="undercomplete", code_size=30).build(x_fit.shape[1:])
    model = aekit.Autoencoder.from_config(model)
    scores: list[float] = []

    class ScoreEveryEpoch(Callback):
        def on_epoch_end(self, loop, record):
            scores.append(aekit.reconstruction_report(model, x_test)["squared_error"])
            model.train()

    callbacks = [ScoreEveryEpoch()] if per_epoch else []
    config = aekit.TrainConfig(**settings)
    started = time.perf_counter()
    result = aekit.Trainer(model, config, progress=False, callbacks=callbacks).fit(x_fit)
    seconds = time.perf_counter() - started
    final = aekit.reconstruction_report(model, x_test)["squared_error"]
    return {
        "settings": settings,
        "test_se": final,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "steps": result.steps,
        "stop_reason": result.stop_reason,
        "stop_detail": result.stop_detail,
        "seconds": round(seconds, 1),
        "test_se_by_epoch": scores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AEKIT_DATA_DIR"), help="folder with the datasets")
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--long", type=int, default=300, help="epochs of the constant-lr run scored every epoch")
    parser.add_argument("--cosine", default="50,100,200", help="lengths in epochs of the cosine runs")
    parser.add_argument("--skip", default="", help="comma-separated runs to leave out (auto-constant, long, cosine)")
    parser.add_argument("--out", type=Path, help="JSON record (default bench/results/training_length_DATASET.json)")
    args = parser.parse_args()
    args.out = args.out or Path(__file__).parent / "results" / f"training_length_{args.dataset}.json"
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    from sklearn.decomposition import PCA

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    x_fit, x_test = load(args.dataset, args.data_dir)
    flat_fit, flat_test = x_fit.reshape(len(x_fit), -1), x_test.reshape(len(x_test), -1)
    pca = PCA(30, svd_solver="full", random_state=0).fit(flat_fit)
    pca_se = float(((pca.inverse_transform(pca.transform(flat_test)) - flat_test) ** 2).sum(1).mean())
    skip = set(args.skip.split(",")) - {""}

    runs = {"auto": train_once(x_fit, x_test, {}, per_epoch=False)}
    print("auto", runs["auto"]["test_se"], runs["auto"]["stop_detail"], flush=True)
    if "auto-constant" not in skip:
        runs["auto-constant"] = train_once(x_fit, x_test, {"lr_schedule": "constant"}, per_epoch=False)
        print("auto-constant", runs["auto-constant"]["test_se"], flush=True)
    candidates = []
    if "long" not in skip:
        runs["constant-long"] = train_once(x_fit, x_test, {"epochs": args.long, "restore_best": False}, True)
        by_epoch = runs["constant-long"]["test_se_by_epoch"]
        best = min(range(len(by_epoch)), key=by_epoch.__getitem__)
        candidates.append((by_epoch[best], f"constant lr, {best + 1} epochs (oracle over 1..{args.long})"))
        print("constant-long", by_epoch[best], best + 1, flush=True)
    if "cosine" not in skip:
        for length in (int(v) for v in args.cosine.split(",")):
            run = train_once(x_fit, x_test, {"epochs": length, "lr_schedule": "cosine"}, per_epoch=False)
            runs[f"cosine-{length}"] = run
            candidates.append((run["test_se"], f"cosine, {length} epochs"))
            print(f"cosine-{length}", run["test_se"], flush=True)
    tuned_se, tuned_how = min(candidates) if candidates else (float("nan"), "none")
    summary = {
        "dataset": args.dataset,
        "pca30_se": pca_se,
        "tuned_se": tuned_se,
        "tuned_how": tuned_how,
        **{f"{name}_se": run["test_se"] for name, run in runs.items() if name.startswith("auto")},
        **{f"{name}_over_tuned": run["test_se"] / tuned_se for name, run in runs.items() if name.startswith("auto")},
    }
    write_record(args, "training_length", time.perf_counter() - started, summary=summary, runs=runs)
    print(f"\n{args.dataset}, {machine()}, {args.threads} thread(s); PCA-30 {pca_se:.3f}")
    rows = [
        [name, f"{run['test_se']:.3f}", run["epochs_run"], run["steps"], run["stop_reason"], f"{run['seconds']:.0f}"]
        for name, run in runs.items()
    ]
    print_markdown_table(["run", "test SE", "epochs", "steps", "stopped by", "seconds"], rows)
    print(f"tuned optimum {tuned_se:.3f} ({tuned_how}); auto / tuned = {summary['auto_over_tuned']:.3f}")


if __name__ == "__main__":
    main()
