"""How close training gets to the machine's matrix-multiply limit.

For the 784-1000-500-250-30 autoencoder (decoder mirrored) this script

1. counts the FLOPs of one training step per example: forward 2*sum(in*out), backward the same
   for the weight gradients plus the input gradients of every layer but the first;
2. measures the machine's sustained rate for exactly those matrix products (torch.mm at the
   step's shapes, forward and backward, in the precision used);
3. trains with aekit's Trainer and reports training FLOP/s as a fraction of that rate,

for each precision (fp32, bf16 autocast), batch size and optionally torch.compile.

    python bench/throughput.py --threads 1 --batch-sizes 128 256 512 --precisions fp32 bf16
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

WIDTHS = [784, 1000, 500, 250, 30, 250, 500, 1000, 784]


def step_flops_per_example(widths: list[int]) -> int:
    pairs = list(itertools.pairwise(widths))
    forward = sum(2 * i * o for i, o in pairs)
    weight_grads = forward
    input_grads = forward - 2 * pairs[0][0] * pairs[0][1]  # the data need no gradient
    return forward + weight_grads + input_grads


def matmul_rate(widths: list[int], batch: int, dtype, seconds: float = 3.0) -> float:
    """Sustained FLOP/s of the step's matrix products at this batch size (torch.mm only)."""
    import torch

    shapes = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        shapes.append(((batch, fan_in), (fan_in, fan_out)))  # forward: x W^T
        shapes.append(((fan_out, batch), (batch, fan_in)))  # weight gradient: dY^T x
        if i > 0:
            shapes.append(((batch, fan_out), (fan_out, fan_in)))  # input gradient: dY W
    operands = [(torch.randn(a, dtype=dtype), torch.randn(b, dtype=dtype)) for a, b in shapes]
    flops = sum(2 * a[0] * a[1] * b[1] for a, b in shapes)
    for a, b in operands:  # warm up
        torch.mm(a, b)
    rounds, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for a, b in operands:
            torch.mm(a, b)
        rounds += 1
    return flops * rounds / (time.perf_counter() - started)


def train_rate(batch: int, precision: str, compile_: bool, samples: int, seed: int) -> dict:
    import torch

    import aekit

    torch.manual_seed(seed)
    x = torch.rand(samples, 784)
    model = aekit.make_model("undercomplete", (784,), 30, hidden=WIDTHS[1:4], activation="elu")
    config = aekit.TrainConfig(
        epochs=2,
        batch_size=batch,
        lr=1e-3,
        val_fraction=0.0,
        precision=precision,
        compile=compile_,
        log_every=10_000,
        seed=seed,
    )
    result = aekit.Trainer(model, config, progress=False).fit(x)
    second_epoch = result.history[-1]["seconds"]  # the first epoch pays warm-up and compilation
    return {"samples_per_second": samples / second_epoch, "first_step_seconds": result.first_step_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="also measure with torch.compile")
    parser.add_argument("--samples", type=int, default=30_000, help="examples per timed epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    torch.set_num_threads(args.threads)
    flops = step_flops_per_example(WIDTHS)
    rows = []
    for precision in args.precisions:
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        for batch in args.batch_sizes:
            limit = matmul_rate(WIDTHS, batch, dtype)
            for compile_ in [False, True] if args.compile else [False]:
                measured = train_rate(batch, precision, compile_, args.samples, args.seed)
                achieved = measured["samples_per_second"] * flops
                row = {
                    "precision": precision,
                    "batch": batch,
                    "compile": compile_,
                    "matmul_gflops": round(limit / 1e9, 1),
                    "train_gflops": round(achieved / 1e9, 1),
                    "fraction": round(achieved / limit, 3),
                    "samples_per_second": round(measured["samples_per_second"]),
                    "first_step_seconds": round(measured["first_step_seconds"], 2),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    record = {
        "benchmark": "throughput",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": args.threads,
        "torch": torch.__version__,
        "model": "-".join(map(str, WIDTHS)),
        "train_flops_per_example": flops,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print("| precision | batch | compile | matmul GFLOP/s | training GFLOP/s | fraction | samples/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['precision']} | {r['batch']} | {r['compile']} | {r['matmul_gflops']} | {r['train_gflops']} | "
            f"{r['fraction']:.0%} | {r['samples_per_second']} |"
        )


if __name__ == "__main__":
    main()
