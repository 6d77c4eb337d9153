"""What each training setting buys: threads, OpenMP's wait policy, bfloat16 and channels_last.

Three workloads, each trained by aekit's ``Trainer`` on uniform noise (speed does not depend on
the values; the noise is fixed by the seed):

* ``mlp``: the peers benchmark's autoencoder, 784-512-256-32 -> 256-512-784, ReLU, batch 128
  and 256 (``--mlp-batch-sizes``);
* ``conv``: the ``conv`` network of the ``undercomplete`` family on 1 x 28 x 28 images (two
  strided 3 x 3 blocks of 32 and 64 channels, a 32-d code), batch 128;
* ``rednet``: the ``denoise`` preset (the RED-Net of the shipped denoisers: 10 3 x 3 conv layers
  of width 64 at half resolution) on 1 x 40 x 40 patches, batch 16.

Settings crossed: threads (``--threads``, 1 and 2 by default), precision (fp32, bf16 autocast),
and for the two conv workloads the NHWC memory layout (``channels_last``). With more than one
thread, OpenMP's default wait policy (worker threads spin while they wait for work) is compared
with ``OMP_WAIT_POLICY=PASSIVE`` (they sleep). The thread settings only take effect before torch
starts, so every run is a fresh child process with its environment set; runs alternate between
the configurations, one round per repeat, so that machine drift hits all alike.

Each run trains two epochs and times the second (the first builds oneDNN's kernels): samples/s by
the wall clock and per CPU-second (the process's CPU time: with 2 threads a run can use 2 CPU
seconds per second). The table gives medians over the repeats and each row's speed relative to
the same workload and precision at 1 thread, contiguous layout (the median of the ratios within
each repeat, and their range).

    python bench/settings.py --repeats 3 --out bench/results/settings.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from common import print_markdown_table, report_from_child, run_in_child, write_record

WORKLOADS = {
    # name: (family, data shape, build options, examples per epoch)
    "mlp": ("undercomplete", (784,), {"hidden": [512, 256], "activation": "relu"}, 20_000),
    "conv": ("undercomplete", (1, 28, 28), {"network": "conv", "activation": "relu"}, 6_400),
    "rednet": ("denoise", (1, 40, 40), {}, 640),
}
CONV_BATCH = {"conv": 128, "rednet": 16}


def child(spec: dict) -> dict:
    """One run in this fresh process: train two epochs, time the second."""
    import torch

    import aekit

    family, shape, options, examples = WORKLOADS[spec["workload"]]
    torch.manual_seed(spec["seed"])
    model = aekit.make_model(family, shape, 32, **options)
    x = torch.rand(examples, *shape)
    config = aekit.TrainConfig(
        epochs=2,
        batch_size=spec["batch"],
        lr=1e-3,
        val_fraction=0.0,
        precision=spec["precision"],
        channels_last=spec["channels_last"],
        seed=spec["seed"],
    )
    trainer = aekit.Trainer(model, config)
    trainer.progress = False
    timed = trainer.fit(x).history[1]
    return {
        **spec,
        "threads_used": torch.get_num_threads(),
        "samples_per_second": round(examples / timed["seconds"], 1),
        "samples_per_cpu_second": round(examples / timed["cpu_seconds"], 1),
    }


def configurations(args: argparse.Namespace) -> list[dict]:
    """Every (workload, batch, precision, layout, threads, wait policy) to run once per repeat."""
    runs = []
    for workload in args.workloads:
        batches = args.mlp_batch_sizes if workload == "mlp" else [CONV_BATCH[workload]]
        layouts = [False] if workload == "mlp" else [False, True]
        for batch in batches:
            for precision in args.precisions:
                for channels_last in layouts:
                    for threads in args.threads:
                        for policy in ["default"] if threads == 1 else ["default", "passive"]:
                            runs.append(
                                {
                                    "workload": workload, "batch": batch, "precision": precision,
                                    "channels_last": channels_last, "threads": threads, "wait_policy": policy,
                                }
                            )  # fmt: skip
    return runs


def summarise(rows: list[dict]) -> list[dict]:
    """Medians over repeats per configuration, and the speed relative to the same workload,
    batch and precision at 1 thread with the contiguous layout: the median over repeats of the
    ratio within each repeat (whose runs ran minutes apart), which cancels the machine's drift."""
    keys = ("workload", "batch", "precision", "channels_last", "threads", "wait_policy")
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)

    def baseline(row: dict) -> dict:
        return next(
            r
            for r in rows
            if (r["workload"], r["batch"], r["precision"], r["repeat"])
            == (row["workload"], row["batch"], row["precision"], row["repeat"])
            and r["threads"] == 1
            and not r["channels_last"]
        )

    table = []
    for key, runs in groups.items():
        entry = dict(zip(keys, key, strict=True))
        entry["samples_per_second"] = statistics.median(r["samples_per_second"] for r in runs)
        entry["samples_per_cpu_second"] = statistics.median(r["samples_per_cpu_second"] for r in runs)
        ratios = [r["samples_per_second"] / baseline(r)["samples_per_second"] for r in runs]
        entry["speed_vs_1_thread_contiguous"] = round(statistics.median(ratios), 2)
        entry["speed_ratio_range"] = [round(min(ratios), 2), round(max(ratios), 2)]
        entry["repeats"] = len(runs)
        table.append(entry)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--mlp-batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "settings.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report_from_child(child(json.loads(args.child)))
        return

    started = time.perf_counter()
    load_start = os.getloadavg()
    order = configurations(args)
    rows = []
    for repeat in range(args.repeats):
        for index, spec in enumerate(order):
            spec = {**spec, "repeat": repeat, "seed": args.seed}
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            env.update({"OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"])})
            if spec["wait_policy"] == "passive":
                env["OMP_WAIT_POLICY"] = "PASSIVE"
            rows.append(run_in_child(__file__, spec, env))
            r = rows[-1]
            print(
                f"[{repeat * len(order) + index + 1}/{len(order) * args.repeats}] {r['workload']} b{r['batch']} "
                f"{r['precision']} {'NHWC' if r['channels_last'] else 'NCHW'} {r['threads']} thread(s) "
                f"{r['wait_policy']}: {r['samples_per_second']:.0f} samples/s",
                flush=True,
            )
    table = summarise(rows)
    write_record(
        args,
        "settings",
        time.perf_counter() - started,
        command="python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        load_average_start=[round(v, 2) for v in load_start],
        load_average_end=[round(v, 2) for v in os.getloadavg()],
        runs=rows,
        summary=table,
    )
    header = ["workload", "batch", "precision", "layout", "threads", "OMP wait", "samples/s", "samples/CPU-s"]
    print_markdown_table(
        [*header, "x 1 thread", "range"],
        [
            [
                e["workload"], e["batch"], e["precision"], "channels_last" if e["channels_last"] else "contiguous",
                e["threads"], e["wait_policy"], f"{e['samples_per_second']:,.0f}".replace(",", " "),
                f"{e['samples_per_cpu_second']:,.0f}".replace(",", " "), f"{e['speed_vs_1_thread_contiguous']:.2f}",
                "{:.2f}-{:.2f}".format(*e["speed_ratio_range"]),
            ]
            for e in table
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
