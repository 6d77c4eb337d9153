"""What the sparse-dictionary arithmetic and the kept freed memory each save, on one CPU thread.

* selection: ``torch.topk`` against ``aekit.sae.kernels.row_topk`` on a (1024, ``--width``)
  matrix of pre-activations, k = ``--k`` (milliseconds per call, median of ``--repeats``), with
  the allocator as it starts and again after ``keep_freed_memory``; likewise the decoder
  backward's dot products of 1024 * k listed entries (128 numbers each), written with tensor
  operations, with torch's embedding-bag backward and with ``aekit.sae.kernels.entry_dots``; the
  listing of a ReLU code's positive entries (4k per row), ``nonzero`` of the floats against
  ``aekit.sae.kernels.positive_positions``;
* BatchTopK's selection of the 1024 * k largest entries of the whole (1024, ``--width``) matrix:
  ``torch.topk`` over all of it against ``aekit.sae.kernels.batch_topk`` given the cut of a
  batch like it (another draw of the same distribution, as the last training batch is);
* a weight gradient of a dictionary step, the sum per latent of the rows of a (1024, 128) matrix
  at the listed entries weighted by their gradients: an index_add of the (nnz, 128) weighted rows
  against the embedding bag over the entries grouped by latent (``by_column``'s sort included),
  and that grouping's sort of the entries' latents (``torch.argsort``, and ``_sort_latents``:
  int16 keys padded to the length torch sorts by radix);
* a training step of ``sae-topk`` and of ``sae-batchtopk`` (batch 1024 of 128 numbers,
  ``--width`` latents, k = ``--k``: loss, backward, Adam, renormalised columns), milliseconds per
  step over 100 steps after 10 warm-up steps, each in a fresh process: with glibc's allocator as
  it starts, and with ``aekit.tensors.keep_freed_memory`` called first (what aekit's training
  loop does on a CPU);
* steps whose code is dense (more than a tenth of it within reach, so no listed arithmetic):
  ``sae-jumprelu`` with thresholds from 0.5 and ``sae-l1`` at its start, and steps whose code is
  listed: ``sae-jumprelu`` with thresholds from 2 (about 3 % within reach) and ``sae-topk``; freed
  memory kept, each ``--step-runs`` times in fresh processes (minimum and median), interleaved
  with the same steps of the aekit in ``--baseline`` (another checkout's ``src``) when given, so
  that both meet the machine's slow spells alike.

    OMP_NUM_THREADS=1 python bench/sae_kernels.py --threads 1 [--baseline ../other-checkout/src]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import write_record

STEP_PROGRAM = """
import json, sys, time, torch, aekit
from aekit.tensors import keep_freed_memory
width, threads, keep, family = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
options = json.loads(sys.argv[5])
torch.set_num_threads(threads)
kept = keep_freed_memory() if keep else False
x = torch.randn(8192, 128, generator=torch.Generator().manual_seed(0))
model = aekit.make_model(family, (128,), width, **options)
model.fit_data_statistics(x)
model.train()
optimizer = torch.optim.Adam(model.parameters(), 1e-3)
def step(batch):
    model.loss(batch).total.backward()
    optimizer.step()
    optimizer.zero_grad()
    model.decoder.after_optimizer_step()
for i in range(10):
    step(x[(i % 8) * 1024 : (i % 8 + 1) * 1024])
started = time.perf_counter()
for i in range(100):
    step(x[(i % 8) * 1024 : (i % 8 + 1) * 1024])
print(json.dumps({"ms_per_step": (time.perf_counter() - started) * 10, "freed_memory_kept": kept}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=512, help="latents (default: 512)")
    parser.add_argument("--k", type=int, default=12, help="active latents (default: 12)")
    parser.add_argument("--repeats", type=int, default=50, help="selection timings (default: 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--step-runs", type=int, default=5, help="fresh processes per interleaved step (default: 5)")
    parser.add_argument("--baseline", type=Path, help="another checkout's src folder, its steps timed too")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sae_kernels.json")
    args = parser.parse_args()

    import numpy as np
    import torch

    from aekit.sae.kernels import (
        _sort_latents,
        _sum_by_column,
        batch_topk,
        entry_dots,
        positive_positions,
        row_topk,
    )
    from aekit.tensors import keep_freed_memory

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    h = torch.randn(1024, args.width, generator=torch.Generator().manual_seed(0))

    def median_ms(function) -> float:
        function()
        times = []
        for _ in range(args.repeats):
            begun = time.perf_counter()
            function()
            times.append((time.perf_counter() - begun) * 1e3)
        return round(float(np.median(times)), 3)

    # the decoder's backward: one dot product per listed entry (the code's k per row)
    generator = torch.Generator().manual_seed(1)
    columns = torch.rand(1024, args.width, generator=generator).topk(args.k, dim=1).indices.reshape(-1)
    rows = torch.arange(1024).repeat_interleave(args.k)
    offsets = torch.arange(0, 1024 * args.k, args.k)
    grad, atoms = torch.randn(1024, 128, generator=generator), torch.randn(args.width, 128, generator=generator)
    weights = torch.randn(len(columns), generator=generator)  # (nnz,) the entries' gradients
    other = torch.randn(1024, args.width, generator=generator).view(-1)  # another batch: its cut is the guess
    cut = float(other.topk(1024 * args.k).values[-1])
    code = (h - h.view(-1).kthvalue(h.numel() - 1024 * 4 * args.k).values).relu()  # 4k positive per row on average

    selection = {}
    for when in ("allocator as it starts", "freed memory kept"):
        if when == "freed memory kept":
            keep_freed_memory()
        selection[when] = {
            "torch.topk ms": median_ms(lambda: h.topk(args.k, dim=1)),
            "row_topk ms": median_ms(lambda: row_topk(h, args.k)),
            "entry dots, tensor operations ms": median_ms(
                lambda: (grad.index_select(0, rows) * atoms.index_select(0, columns)).sum(1)
            ),
            "entry dots, embedding-bag backward ms": median_ms(
                lambda: torch.ops.aten._embedding_bag_per_sample_weights_backward(
                    grad, atoms, columns, offsets, rows, 0, -1
                )
            ),
            "entry dots, entry_dots ms": median_ms(lambda: entry_dots(grad, atoms, columns, rows, offsets)),
            "positive entries of a ReLU code, nonzero ms": median_ms(lambda: code.view(-1).nonzero()),
            "positive entries of a ReLU code, positive_positions ms": median_ms(lambda: positive_positions(code)),
            "batch selection, torch.topk ms": median_ms(lambda: h.view(-1).topk(1024 * args.k, sorted=False)),
            "batch selection, batch_topk ms": median_ms(lambda: batch_topk(h.view(-1), 1024 * args.k, cut)),
            "weight gradient, index_add ms": median_ms(
                lambda: torch.zeros_like(atoms).index_add_(0, columns, grad.index_select(0, rows) * weights[:, None])
            ),
            "grouping by latent, torch.argsort ms": median_ms(lambda: columns.argsort()),
            "grouping by latent, _sort_latents ms": median_ms(lambda: _sort_latents(columns, args.width)),
            "weight gradient, by_column embedding bag ms": median_ms(
                lambda: _sum_by_column(grad, weights, columns.clone(), rows, args.width)  # a fresh sort each call
            ),
        }
    print(selection, flush=True)

    def step_ms(family: str, options: dict, keep: str, source: str | None = None) -> dict:
        """One step program in a fresh process; ``source``: another checkout's src folder to import."""
        command = [sys.executable, "-c", STEP_PROGRAM, str(args.width), str(args.threads), keep, family]
        command.append(json.dumps(options))
        environment = {**os.environ, "PYTHONPATH": source} if source else None
        run = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
        return json.loads(run.stdout)

    steps = {}
    for family in ("sae-topk", "sae-batchtopk"):
        for keep in ("0", "1"):
            result = step_ms(family, {"k": args.k}, keep)
            name = f"{family}, " + ("freed memory kept" if result["freed_memory_kept"] else "allocator as it starts")
            steps[name] = round(result["ms_per_step"], 2)
            print(f"  {name}: {steps[name]} ms per step", flush=True)
    # steps whose code is dense (more than a tenth within reach: the element-wise passes over (B, K)
    # and the dense products) and steps whose code is listed (JumpReLU from thresholds 2: about 3 %
    # of h ~ N(0, 1) within reach; TopK), against the baseline's when given
    timed = [
        ("sae-jumprelu", {"l0_weight": 0.1, "threshold": 0.5}),
        ("sae-l1", {"l1_weight": 1.0}),
        ("sae-jumprelu", {"l0_weight": 0.1, "threshold": 2.0}),
        ("sae-topk", {"k": args.k}),
    ]
    sources = {"this checkout": None} | ({f"baseline {args.baseline}": str(args.baseline)} if args.baseline else {})
    timings: dict[str, list[float]] = {}
    for _ in range(args.step_runs):  # the libraries interleaved, so that a slow spell of the machine hits both
        for family, options in timed:
            for label, source in sources.items():
                ms = step_ms(family, options, "1", source)["ms_per_step"]
                timings.setdefault(f"{family} {options}, {label}", []).append(round(ms, 2))
    interleaved = {
        name: {"min ms": min(t), "median ms": round(float(np.median(t)), 2), "runs": t} for name, t in timings.items()
    }
    for name, row in interleaved.items():
        print(f"  {name}: min {row['min ms']} ms, median {row['median ms']} ms per step", flush=True)
    write_record(
        args,
        "sae_kernels",
        time.perf_counter() - started,
        selection=selection,
        steps=steps,
        interleaved_steps=interleaved,
    )


if __name__ == "__main__":
    main()
