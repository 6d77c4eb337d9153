"""aekit's sparse dictionaries against SAELens's, side by side on data with known features.

Same vectors (``aekit.data.synthetic.sparse_features``: ``--features`` true directions in
``--dim`` dimensions, Zipfian rates and magnitudes, correlated groups of 4), same order, same
batch size, learning rate and cosine decay (to 1 % of the rate), same threads, same measures
(aekit's ``dictionary_report`` and ``feature_recovery`` on 20 000 held-out vectors, and
SAELens's own Hungarian-matched MCC on the same decoders). Each library normalises the inputs
its own way to a mean squared norm of ``--dim`` (SAELens: ``expected_average_only_in``) and keeps
its other defaults (SAELens: decoder rows initialised at norm 0.1, gradient clipping at 1, AuxK
coefficient 1; aekit: unit-norm columns, AuxK off unless a latent is dead, weight 1/32).

Architectures: TopK and BatchTopK at k = ``--k``; JumpReLU and the L1 code ("standard") over a
sweep of their sparsity weights (the weights mean different things in the two libraries, so each
gets its own sweep and the rows are compared at the L0 they reach). Speed: training samples per
second, wall clock around each library's whole fit (statistics, training loop, no data
generation); with ``--rounds N`` both libraries run N times, their order alternating, and each
row's speed is the median of its N runs (all kept), its other measures those of the first run
(the runs are seeded: ``same_dictionary_every_round`` checks it). Each library runs in a process
of its own (the data made again from the same seed), as its users get it: aekit's loop asks glibc
to keep freed memory for reuse (``aekit.tensors.keep_freed_memory``), SAELens does not;
``--saelens-kept-memory`` also runs SAELens's TopK with glibc told the same through its environment.

Runs in a bench environment holding both (``pip install sae-lens`` beside aekit, torch pinned);
SAELens is never a dependency of aekit.

    OMP_NUM_THREADS=1 python bench/sae_peers.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from common import write_record

os.environ.setdefault("TQDM_DISABLE", "1")  # SAELens's trainer draws a bar per run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=2048, help="true features (default: 2048)")
    parser.add_argument("--dim", type=int, default=128, help="dimensions they are superposed in (default: 128)")
    parser.add_argument("--width", type=int, default=512, help="dictionary latents (default: 512)")
    parser.add_argument("--mean-active", type=float, default=12, help="features firing per vector (default: 12)")
    parser.add_argument("--k", type=int, default=12, help="TopK / BatchTopK active latents (default: 12)")
    parser.add_argument("--samples", type=int, default=2_000_000, help="training vectors, one pass (default: 2M)")
    parser.add_argument("--batch-size", type=int, default=1024, help="(default: 1024)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--architectures", default="topk,batchtopk,jumprelu,l1", help="(default: %(default)s)")
    parser.add_argument("--aekit-jumprelu", default="0.1,0.3,1", help="aekit l0_weight (default: %(default)s)")
    parser.add_argument("--saelens-jumprelu", default="0.3,1,3", help="SAELens l0_coefficient (default: %(default)s)")
    parser.add_argument("--aekit-jumprelu-start", type=float, help="aekit's starting thresholds (default: its own)")
    parser.add_argument("--saelens-jumprelu-start", type=float, help="SAELens's starting thresholds (default: its own)")
    parser.add_argument("--aekit-l1", default="0.3,1,3", help="aekit L1 weight sweep (default: %(default)s)")
    parser.add_argument("--saelens-l1", default="1,3,10", help="SAELens l1_coefficient sweep (default: %(default)s)")
    parser.add_argument("--aekit-sae-l1", default="0.3,1,3", help="aekit sae-l1 l1_weight sweep (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data and initialisation (default: 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both libraries (default: 1)")
    parser.add_argument("--saelens-kept-memory", action="store_true", help="also SAELens TopK, freed memory kept")
    parser.add_argument("--library", choices=["aekit", "saelens"], help="run one library only (set by the driver)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of both libraries, order alternating; speeds: median (default: 1)"
    )
    parser.add_argument("--cache", help="folder keeping the vectors between the processes (default: made in each)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sae_peers.json")
    args = parser.parse_args()

    if args.library is None:
        drive(args)
        return
    import sae_lens
    import torch
    from sae_lens.synthetic.evals import mean_correlation_coefficient

    import aekit
    from aekit.metrics import dictionary_report, feature_recovery

    torch.set_num_threads(args.threads)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the optimiser's first use imports torch._dynamo
    started = time.perf_counter()
    settings = {"features": args.features, "dim": args.dim, "mean_active": args.mean_active, "group_size": 4}
    train_x, test_x, directions = vectors(args, settings)
    print(f"data: {len(train_x):,} training vectors of {args.dim}, {args.features} features", flush=True)

    class Peer(torch.nn.Module):
        """A trained SAELens SAE seen through the interface aekit's measures read."""

        def __init__(self, sae) -> None:
            super().__init__()
            self.sae, self.code_size = sae, sae.cfg.d_sae
            self.likelihood = type("Identity", (), {"mean": staticmethod(lambda v: v)})()

        def encode(self, v: torch.Tensor) -> torch.Tensor:
            return self.sae.encode(v)

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return self.sae.decode(z)

    def measure(model, learned: torch.Tensor, seconds: float) -> dict:
        row = {"samples_per_second": round(args.samples / seconds), "seconds": round(seconds, 1)}
        with torch.no_grad():
            row |= {k: round(v, 4) for k, v in dictionary_report(model, test_x).items()}
            row |= {k: round(v, 4) for k, v in feature_recovery(directions, learned).items()}
            row["mcc_hungarian"] = round(mean_correlation_coefficient(learned.float(), directions.float()), 4)
        row["explained_variance"] = round(1 - row["fvu"], 4)
        return row

    def run_aekit(family: str, **options) -> dict:
        torch.manual_seed(args.seed)
        if family == "sparse":  # the course's L1 code: one linear layer each way, ReLU code
            model = aekit.make_model(family, (args.dim,), args.width, hidden=[], likelihood="gaussian", **options)
        else:
            model = aekit.make_model(family, (args.dim,), args.width, **options)
        config = aekit.TrainConfig(
            epochs=1, batch_size=args.batch_size, lr=args.lr, lr_schedule="cosine", seed=args.seed, val_fraction=0.0,
            checkpoint_every=0,
        )  # fmt: skip
        begun = time.perf_counter()
        aekit.Trainer(model, config, progress=False).fit(train_x)
        seconds = time.perf_counter() - begun
        weight = model.decoder.linear_layers[0].weight if family == "sparse" else model.decoder.weight  # (D, K)
        return measure(model, weight.detach().T, seconds)

    def run_saelens(architecture: str, **options) -> dict:
        from sae_lens.config import LoggingConfig, SAETrainerConfig
        from sae_lens.training.sae_trainer import SAETrainer

        configs = {
            "topk": (sae_lens.TopKTrainingSAEConfig, sae_lens.TopKTrainingSAE),
            "batchtopk": (sae_lens.BatchTopKTrainingSAEConfig, sae_lens.BatchTopKTrainingSAE),
            "jumprelu": (sae_lens.JumpReLUTrainingSAEConfig, sae_lens.JumpReLUTrainingSAE),
            "standard": (sae_lens.StandardTrainingSAEConfig, sae_lens.StandardTrainingSAE),
        }
        config_class, sae_class = configs[architecture]
        torch.manual_seed(args.seed)
        sae = sae_class(
            config_class(d_in=args.dim, d_sae=args.width, normalize_activations="expected_average_only_in", **options)
        )
        trainer_config = SAETrainerConfig(
            total_training_samples=args.samples, train_batch_size_samples=args.batch_size, lr=args.lr,
            lr_end=args.lr / 100, lr_scheduler_name="cosineannealing", device="cpu", n_batches_for_norm_estimate=100,
            logger=LoggingConfig(log_to_wandb=False),
        )  # fmt: skip
        with warnings.catch_warnings():  # a read-only memory map, never written
            warnings.simplefilter("ignore", UserWarning)
            data = torch.as_tensor(train_x)

        def batches():
            while True:  # in order, as many passes as the trainer asks for (statistics, then training)
                for start in range(0, len(data) - args.batch_size + 1, args.batch_size):
                    yield data[start : start + args.batch_size]

        begun = time.perf_counter()
        SAETrainer(cfg=trainer_config, sae=sae, data_provider=batches()).fit()
        seconds = time.perf_counter() - begun
        sae.eval()
        return measure(Peer(sae), sae.W_dec.detach(), seconds)

    rows: dict[str, dict] = {}

    def record(name: str, row: dict) -> None:
        rows[name] = row
        shown = {k: row[k] for k in ("l0", "explained_variance", "mcc", "mcc_hungarian", "f1", "dead", "shrinkage")}
        print(f"  {name}: {shown}, {row['samples_per_second']:,} samples/s", flush=True)

    wanted = args.architectures.split(",")
    ours = args.library == "aekit"
    start = args.aekit_jumprelu_start if ours else args.saelens_jumprelu_start
    from_start = "" if start is None else f", thresholds from {start:g}"
    for architecture in ("topk", "batchtopk"):
        if architecture in wanted and ours:
            record(f"aekit sae-{architecture} k={args.k}", run_aekit(f"sae-{architecture}", k=args.k))
        elif architecture in wanted:
            kept = " (freed memory kept)" if os.environ.get("MALLOC_MMAP_THRESHOLD_") else ""
            record(f"SAELens {architecture} k={args.k}{kept}", run_saelens(architecture, k=args.k))
    if "jumprelu" in wanted and ours:
        for weight in [float(w) for w in args.aekit_jumprelu.split(",")]:
            record(
                f"aekit sae-jumprelu l0_weight={weight}{from_start}",
                run_aekit("sae-jumprelu", l0_weight=weight, **({} if start is None else {"threshold": start})),
            )
    elif "jumprelu" in wanted:
        for weight in [float(w) for w in args.saelens_jumprelu.split(",")]:
            record(
                f"SAELens jumprelu l0_coefficient={weight}{from_start}",
                run_saelens(
                    "jumprelu", l0_coefficient=weight, **({} if start is None else {"jumprelu_init_threshold": start})
                ),
            )
    if "l1" in wanted and ours:
        for weight in [float(w) for w in args.aekit_l1.split(",") if w]:
            record(f"aekit sparse (L1) weight={weight}", run_aekit("sparse", sparsity="l1", weight=weight))
        for weight in [float(w) for w in args.aekit_sae_l1.split(",") if w]:
            record(f"aekit sae-l1 l1_weight={weight}", run_aekit("sae-l1", l1_weight=weight))
    elif "l1" in wanted:
        for weight in [float(w) for w in args.saelens_l1.split(",")]:
            record(f"SAELens standard l1_coefficient={weight}", run_saelens("standard", l1_coefficient=weight))
    versions = {"aekit": aekit.__version__, "sae_lens": sae_lens.__version__}
    write_record(args, "sae_peers", time.perf_counter() - started, data=settings, versions=versions, rows=rows)


def vectors(args: argparse.Namespace, settings: dict):
    """(training vectors (N, dim) as a numpy array, possibly memory-mapped; 20 000 held-out vectors
    and the true directions as tensors), made from the seed, or read from ``--cache`` when it holds
    them for these settings (it is written there the first time)."""
    import torch

    from aekit.data.synthetic import sparse_features

    key = {**settings, "samples": args.samples, "seed": args.seed}
    cache = Path(args.cache) if args.cache else None
    if cache is not None and (cache / "key.json").is_file() and json.loads((cache / "key.json").read_text()) == key:
        train = np.load(cache / "train.npy", mmap_mode="r")
        return train, torch.as_tensor(np.load(cache / "test.npy")), torch.as_tensor(np.load(cache / "directions.npy"))
    x, directions, _ = sparse_features(args.samples + 20000, seed=args.seed, with_activations=False, **settings)
    train, test = x[: args.samples].numpy(), x[args.samples :]
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        for name, array in (("train", train), ("test", test.numpy()), ("directions", directions.numpy())):
            np.save(cache / f"{name}.npy", array)
        (cache / "key.json").write_text(json.dumps(key))
        del x, train
        train = np.load(cache / "train.npy", mmap_mode="r")
    return train, test, directions


def drive(args: argparse.Namespace) -> None:
    """Each library in a process of its own, one after the other; the records merged into ``args.out``."""
    started = time.perf_counter()
    if args.cache:  # made once, read memory-mapped by each library's process
        settings = {"features": args.features, "dim": args.dim, "mean_active": args.mean_active, "group_size": 4}
        vectors(args, settings)
    parts = []
    runs = [("aekit", args.architectures, {}), ("saelens", args.architectures, {})]
    if args.saelens_kept_memory:
        kept = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
        runs.append(("saelens", "topk", kept))
    for round_ in range(args.rounds):  # the libraries' order alternates, so that slow spells hit both
        for index, (library, architectures, environment) in enumerate(runs if round_ % 2 == 0 else runs[::-1]):
            out = args.out.with_name(f"{args.out.stem}-{round_}-{index}-{library}.json")
            command = [sys.executable, __file__, "--library", library, "--architectures", architectures]
            command += ["--out", str(out)]
            kept_back = ("library", "architectures", "out", "saelens_kept_memory", "rounds")
            for name, value in vars(args).items():
                if name not in kept_back and value is not None:
                    command += [f"--{name.replace('_', '-')}", str(value)]
            subprocess.run(command, check=True, env={**os.environ, **environment})
            parts.append(json.loads(out.read_text()))
            out.unlink()
    rounds: dict[str, list[dict]] = {}
    for part in parts:
        for name, row in part["rows"].items():
            rounds.setdefault(name, []).append(row)
    rows = {}
    for name, runs_of_row in rounds.items():
        row = dict(runs_of_row[0])  # the measures of the dictionary: the same in every round (seeded)
        if len(runs_of_row) > 1:
            speeds = [r["samples_per_second"] for r in runs_of_row]
            row["samples_per_second"] = round(float(np.median(speeds)))
            row["seconds"] = round(float(np.median([r["seconds"] for r in runs_of_row])), 1)
            row["samples_per_second_rounds"] = speeds
            row["same_dictionary_every_round"] = all(
                r["l0"] == row["l0"] and r["explained_variance"] == row["explained_variance"] for r in runs_of_row
            )
        rows[name] = row
    write_record(
        args, "sae_peers", time.perf_counter() - started, data=parts[0]["data"], versions=parts[-1]["versions"],
        rows=rows,
    )  # fmt: skip
    print(f"{len(rows)} rows written to {args.out}; {np.round(time.perf_counter() - started)} s")


if __name__ == "__main__":
    main()
