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
* where a C compiler is at hand, the compiled loops (``aekit.sae.native``) on the same entries:
  the decoder's product (against torch's embedding bag), its backward (the entries' dot products
  and the dictionary's gradient, against ``entry_dots`` and the by-latent embedding bag), the
  encoder's weight and bias gradients, the listing of a ReLU code's positive entries, and the
  dense product of the code for scale;
* steps whose code is dense (half of it within reach: ``sae-jumprelu`` with thresholds from 0.5,
  ``sae-l1`` at its start) and steps whose code is listed (``sae-jumprelu`` with thresholds from 2,
  about 3 % within reach, and ``sae-topk``); freed memory kept, each ``--step-runs`` times in
  fresh processes (minimum and median), interleaved with the same steps with the compiled loops
  off (``AEKIT_NATIVE=0``: torch's operators) and of the aekit in ``--baseline`` (another
  checkout's ``src``) when given, so that all meet the machine's slow spells alike;
* where the listed path stops paying: steps of ``sae-l1`` codes of L0 about 45-85 of 512 (a
  sharper encoder with a negative bias) and of ``sae-jumprelu`` from thresholds 1.2, 0.9 and 0.7, each
  with every batch listed and with every batch dense (the compiled loops), interleaved
  (``listed_against_dense``: the share of the code active, minimum and median ms per step), which
  sets ``aekit.sae.kernels.COMPILED_DENSE_ABOVE``.

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
setup = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
torch.set_num_threads(threads)
kept = keep_freed_memory() if keep else False
x = torch.randn(8192, 128, generator=torch.Generator().manual_seed(0))
model = aekit.make_model(family, (128,), width, **options)
model.fit_data_statistics(x)
if "encoder_bias" in setup:  # a sharper encoder and a negative bias: a ReLU code with a chosen L0
    with torch.no_grad():
        model.encoder.weight.mul_(10)
        model.encoder.bias.fill_(setup["encoder_bias"])
if "dense_above" in setup:  # where the listed path hands over to the dense products
    import aekit.sae.kernels as kernels
    kernels.COMPILED_DENSE_ABOVE = kernels.DENSE_ABOVE = setup["dense_above"]
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
ms = (time.perf_counter() - started) * 10
with torch.no_grad():
    l0 = float(model.loss(x[:1024]).metrics["active"])
from aekit.sae import native
print(json.dumps({"ms_per_step": ms, "freed_memory_kept": kept, "l0": l0, "compiled": native.available()}))
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
    import torch.nn.functional as F

    from aekit.sae import native
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

    # the same entries for the compiled loops: flat positions grouped by row (k per row)
    entries = (rows * args.width + columns).contiguous()
    flat_code = torch.zeros(1024 * args.width).index_put_((entries,), weights).view(1024, args.width)
    x_rows = torch.randn(1024, 128, generator=generator)

    def compiled_rows() -> dict:
        if not native.available():
            return {}
        return {
            "decoder product, embedding bag ms": median_ms(
                lambda: F.embedding_bag(columns, atoms, offsets, mode="sum", per_sample_weights=weights)
            ),
            "decoder product, compiled ms": median_ms(
                lambda: native.columns_into_rows(entries, weights, args.width, atoms, torch.zeros(1024, 128))
            ),
            "decoder backward (dots and dictionary gradient), torch operators ms": median_ms(
                lambda: (
                    entry_dots(grad, atoms, columns, rows, offsets),
                    _sum_by_column(grad, weights, columns.clone(), rows, args.width),
                )
            ),
            "decoder backward (dots and dictionary gradient), compiled ms": median_ms(
                lambda: native.rows_with_columns(
                    entries, args.width, grad, atoms, weights, torch.zeros(args.width, 128)
                )
            ),
            "encoder weight and bias gradients, compiled ms": median_ms(
                lambda: native.rows_with_columns(
                    entries, args.width, x_rows, None, weights, torch.zeros(args.width, 128), torch.zeros(args.width)
                )
            ),
            "positive entries of a ReLU code, compiled ms": median_ms(lambda: native.list_nonzero(code, code.numel())),
            "dense product of the code, for scale ms": median_ms(lambda: flat_code @ atoms),
        }

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
        } | compiled_rows()
    print(selection, flush=True)

    def step_ms(family: str, options: dict, keep: str, source: str | None = None, setup: dict | None = None) -> dict:
        """One step program in a fresh process; ``source``: another checkout's src folder to import,
        or "torch operators" (this checkout with its compiled loops off)."""
        command = [sys.executable, "-c", STEP_PROGRAM, str(args.width), str(args.threads), keep, family]
        command += [json.dumps(options), json.dumps(setup or {})]
        environment = None
        if source == "torch operators":
            environment = {**os.environ, "AEKIT_NATIVE": "0"}
        elif source:
            environment = {**os.environ, "PYTHONPATH": source}
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
    sources = {"this checkout": None}
    if native.available():
        sources["this checkout, torch operators (AEKIT_NATIVE=0)"] = "torch operators"
    if args.baseline:
        sources[f"baseline {args.baseline}"] = str(args.baseline)
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
    # where the listed path stops paying: sae-l1 codes of chosen L0 (encoder bias) and sae-jumprelu
    # thresholds, each step listed throughout and dense throughout, compiled loops, interleaved
    crossover = {}
    cases = [("sae-l1", {"l1_weight": 1.0}, {"encoder_bias": b}) for b in (-1.2, -1.0, -0.8, -0.65, -0.5)]
    cases += [("sae-jumprelu", {"l0_weight": 0.1, "threshold": t}, {}) for t in (1.2, 0.9, 0.7)]
    for family, options, setup in cases if native.available() else []:
        runs: dict[str, list[float]] = {"listed": [], "dense": []}
        l0 = None
        for _ in range(args.step_runs):
            for path, share in (("listed", 1.0), ("dense", 0.0)):
                result = step_ms(family, options, "1", None, {**setup, "dense_above": share})
                runs[path].append(round(result["ms_per_step"], 2))
                l0 = round(result["l0"], 1)
        name = f"{family} {options} {setup}"
        crossover[name] = {"l0": l0, "share of the code active": round(l0 / args.width, 3)}
        for path, times in runs.items():
            crossover[name][f"{path} min ms"] = min(times)
            crossover[name][f"{path} median ms"] = round(float(np.median(times)), 2)
        print(f"  {name}: {crossover[name]}", flush=True)
    write_record(
        args,
        "sae_kernels",
        time.perf_counter() - started,
        selection=selection,
        steps=steps,
        interleaved_steps=interleaved,
        compiled_loops=native.available(),
        listed_against_dense=crossover,
    )


if __name__ == "__main__":
    main()
