"""How close training gets to the machine's matrix-multiply limit.

For the 784-1000-500-250-30 autoencoder (decoder mirrored) this script

1. counts the FLOPs of one training step per example: forward 2*sum(in*out), backward the same
   for the weight gradients plus the input gradients of every layer but the first;
2. measures the machine's sustained rate for exactly those matrix products (torch.mm at the
   step's shapes, forward and backward, in the precision used);
3. trains with aekit's Trainer and reports training FLOP/s as a fraction of that rate,

for each precision (fp32, bf16 autocast), batch size and optionally torch.compile. Both rates are
also taken by this process's CPU clock, which other jobs time-sharing the cores do not inflate.
``--profile STEPS`` adds the top ops of STEPS training steps (torch.profiler) per precision.
``--max-autotune`` adds a compiled run whose matrix products Inductor autotunes among the backends
of ``--gemm-backends`` (its C++ GEMM templates, which fuse bias and activation into the product,
and ATen's kernels), measured in the same run as the default compile.

    python bench/throughput.py --threads 1 --batch-sizes 128 256 512 --precisions fp32 bf16 --profile 30
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from datetime import date
from pathlib import Path

from common import machine, print_markdown_table

WIDTHS = [784, 1000, 500, 250, 30, 250, 500, 1000, 784]


def step_flops_per_example(widths: list[int]) -> int:
    pairs = list(itertools.pairwise(widths))
    forward = sum(2 * i * o for i, o in pairs)
    weight_grads = forward
    input_grads = forward - 2 * pairs[0][0] * pairs[0][1]  # the data need no gradient
    return forward + weight_grads + input_grads


def matmul_rate(widths: list[int], batch: int, dtype, seconds: float = 3.0) -> tuple[float, float]:
    """Sustained FLOP/s of the step's matrix products at this batch size (torch.mm only), by the
    wall clock and by this process's CPU clock (the latter is robust to other jobs time-sharing
    the cores)."""
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
    rounds, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        for a, b in operands:
            torch.mm(a, b)
        rounds += 1
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return flops * rounds / wall, flops * rounds / cpu


def _fit(
    batch: int,
    precision: str,
    compile_: bool,
    samples: int,
    seed: int,
    epochs: int,
    activation: str,
    autotune_backends: str | None = None,
):
    """A fresh 784-1000-500-250-30 AE trained ``epochs`` epochs on uniform noise; (result, CPU seconds).
    ``autotune_backends`` (e.g. ``"CPP,ATEN"``): compile with Inductor's max-autotune over these."""
    import contextlib

    import torch
    import torch._inductor.config as inductor_config

    import aekit

    torch.manual_seed(seed)
    x = torch.rand(samples, 784)
    model = aekit.make_model("undercomplete", (784,), 30, hidden=WIDTHS[1:4], activation=activation)
    config = aekit.TrainConfig(
        epochs=epochs,
        batch_size=batch,
        lr=1e-3,
        val_fraction=0.0,
        precision=precision,
        compile=compile_,
        log_every=10_000,
        seed=seed,
    )
    autotune = (
        inductor_config.patch(max_autotune=True, max_autotune_gemm_backends=autotune_backends)
        if autotune_backends
        else contextlib.nullcontext()
    )
    cpu_started = time.process_time()
    with autotune:  # compilation happens at the first step, inside fit
        result = aekit.Trainer(model, config, progress=False).fit(x)
    return result, time.process_time() - cpu_started


def train_rate(
    batch: int,
    precision: str,
    compile_: bool,
    samples: int,
    seed: int,
    activation: str,
    autotune_backends: str | None = None,
) -> dict:
    """Steady-state training speed after a warm-up run (which pays allocation and compilation;
    its first step is the reported compile time): the wall time of the second epoch of a 2-epoch
    run, and the CPU time of an epoch as the difference between a 2-epoch and a 1-epoch run."""
    run = (batch, precision, compile_, samples, seed)
    warm, _ = _fit(*run, 1, activation, autotune_backends)
    _, one_cpu = _fit(*run, 1, activation, autotune_backends)
    two, two_cpu = _fit(*run, 2, activation, autotune_backends)
    return {
        "samples_per_second": samples / two.history[-1]["seconds"],
        "samples_per_cpu_second": samples / max(two_cpu - one_cpu, 1e-9),
        "first_step_seconds": warm.first_step_seconds,
    }


def profile_steps(
    batch: int, precision: str, compile_: bool, steps: int, seed: int, activation: str, rows: int = 15
) -> list[dict]:
    """The ops that take the time in ``steps`` training steps of aekit's Trainer (torch.profiler),
    after a warm-up epoch; self CPU time per op, largest first. The training data's finiteness
    check (``aten::eq``, ``ne``, ``abs``, ``all``) and the synthetic data (``aten::uniform_``) are
    outside the steps: divide them by the steps they are shown per."""
    from torch.profiler import ProfilerActivity, profile

    _fit(batch, precision, compile_, batch * steps, seed, 1, activation)  # warm-up: allocator, kernels
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _fit(batch, precision, compile_, batch * steps, seed, 1, activation)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {
            "op": e.key,
            "self_cpu_ms_per_step": round(e.self_cpu_time_total / 1000 / steps, 3),
            "share": round(e.self_cpu_time_total / total, 3),
            "calls_per_step": round(e.count / steps, 1),
        }
        for e in events[:rows]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="also measure with torch.compile")
    parser.add_argument(
        "--max-autotune",
        action="store_true",
        help="also measure a compiled run whose matrix products Inductor autotunes",
    )
    parser.add_argument(
        "--gemm-backends",
        default="CPP,ATEN",
        help="--max-autotune's candidates: CPP (Inductor's C++ GEMM templates), ATEN, or both (default)",
    )
    parser.add_argument("--samples", type=int, default=30_000, help="examples per timed epoch")
    parser.add_argument("--activation", default="relu", help="hidden activation (relu, elu, gelu, ...)")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS", help="also profile STEPS training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    args = parser.parse_args()
    if not set(args.gemm_backends.upper().split(",")) <= {"CPP", "ATEN"}:
        parser.error(f"--gemm-backends {args.gemm_backends!r}: give CPP, ATEN or CPP,ATEN")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    torch.set_num_threads(args.threads)
    # (compile, autotune backends) of each measured run
    runs = [(False, None)] + [(True, None)] * args.compile + [(True, args.gemm_backends)] * args.max_autotune
    flops = step_flops_per_example(WIDTHS)
    rows = []
    load_start = os.getloadavg()
    for precision in args.precisions:
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        for batch in args.batch_sizes:
            limit, cpu_limit = matmul_rate(WIDTHS, batch, dtype)
            for compile_, autotune_backends in runs:
                measured = train_rate(
                    batch, precision, compile_, args.samples, args.seed, args.activation, autotune_backends
                )
                achieved = measured["samples_per_second"] * flops
                cpu_achieved = measured["samples_per_cpu_second"] * flops
                row = {
                    "precision": precision,
                    "batch": batch,
                    "compile": compile_,
                    "max_autotune": autotune_backends is not None,
                    "matmul_gflops": round(limit / 1e9, 1),
                    "train_gflops": round(achieved / 1e9, 1),
                    "fraction": round(achieved / limit, 3),
                    "matmul_gflops_cpu_clock": round(cpu_limit / 1e9, 1),
                    "train_gflops_cpu_clock": round(cpu_achieved / 1e9, 1),
                    "fraction_cpu_clock": round(cpu_achieved / cpu_limit, 3),
                    "samples_per_second": round(measured["samples_per_second"]),
                    "first_step_seconds": round(measured["first_step_seconds"], 2),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    profiles = {}
    if args.profile:
        batch = max(args.batch_sizes)
        for precision in args.precisions:
            for compile_ in [False, True] if args.compile else [False]:
                name = f"{precision}, batch {batch}" + (", compile" if compile_ else "")
                profiles[name] = profile_steps(batch, precision, compile_, args.profile, args.seed, args.activation)
                print(f"profile {name}:", json.dumps(profiles[name][:8]))
    record = {
        "benchmark": "throughput",
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "model": "-".join(map(str, WIDTHS)),
        "activation": args.activation,
        "gemm_backends": args.gemm_backends if args.max_autotune else None,
        "train_flops_per_example": flops,
        "load_average_start": [round(v, 2) for v in load_start],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "rows": rows,
        "profiles": profiles,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    header = ["precision", "batch", "compile", "max-autotune", "matmul GFLOP/s", "training GFLOP/s", "fraction"]
    header += ["CPU-clock fraction", "samples/s", "first step s"]
    keys = ["precision", "batch", "compile", "max_autotune", "matmul_gflops", "train_gflops", "fraction"]
    keys += ["fraction_cpu_clock", "samples_per_second", "first_step_seconds"]
    formats = {"fraction": ".0%", "fraction_cpu_clock": ".0%"}
    print_markdown_table(header, [[format(r[k], formats.get(k, "")) for k in keys] for r in rows])


if __name__ == "__main__":
    main()
