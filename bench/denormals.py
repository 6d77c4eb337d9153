"""What flushing denormal floats to zero is worth: aekit's Trainer with ``flush_denormal`` on and off.

Adam's first moment of a weight whose gradient stops (an input pixel that is 0 in every later
batch) shrinks by beta1 = 0.9 per step into the denormal range (below 1.18e-38 in float32) and
then stays at the smallest denormal, 1.4e-45. x86 CPUs handle an operation on a denormal operand
with a microcode assist, on some CPUs (Intel's in particular) at a large cost.

Two measurements, each in fresh child processes that alternate between the settings:

* ``adam``: one fused Adam step (torch's ``_fused_adam_``) over 1 083 696 float32 weights, the
  size of the peers benchmark's autoencoder, with a third of the first moments denormal, flushing
  off and on; milliseconds per step, median of ``--adam-steps`` steps.
* ``train``: the peers benchmark's models (``vae``, ``ae``: 784-512-256-32 and back, ReLU) trained
  by aekit's ``Trainer`` on the 60 000 Fashion-MNIST training images for ``--epochs`` epochs,
  flushing off and on; seconds of every epoch, the final training loss and a SHA-256 of the
  trained weights (equal digests: flushing did not change a single bit of the weights).

    python bench/denormals.py --data-dir /work/shared/data --threads 1 --out bench/results/denormals.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

from common import print_markdown_table, report_from_child, run_in_child, write_record

ADAM_WEIGHTS = 1_083_696  # 784*512 + 512*256 + 256*32 and back, with biases


def adam_child(spec: dict) -> dict:
    import torch

    from aekit.tensors import denormals_flushed

    torch.manual_seed(spec["seed"])
    weights = torch.nn.Parameter(torch.randn(ADAM_WEIGHTS))
    weights.grad = torch.randn(ADAM_WEIGHTS) * 1e-3
    weights.grad[: ADAM_WEIGHTS // 3] = 0.0  # weights whose gradient stopped
    optimizer = torch.optim.Adam([weights], lr=1e-3, fused=True)
    optimizer.step()  # creates the state
    state = optimizer.state[weights]
    state["exp_avg"][: ADAM_WEIGHTS // 3] = 1.4e-45  # where such moments end up
    state["exp_avg_sq"].uniform_(1e-7, 1e-6)
    times = []
    with denormals_flushed(spec["flush"]):  # on every thread, as the trainer does
        for _ in range(spec["adam_steps"]):
            started = time.perf_counter()
            optimizer.step()
            times.append(time.perf_counter() - started)
    return {**spec, "ms_per_step": round(statistics.median(times) * 1e3, 3)}


def train_child(spec: dict) -> dict:
    import torch

    import aekit
    from aekit.data import load_dataset

    x = torch.from_numpy(load_dataset("fashion-mnist", "train", data_dir=spec["data_dir"]).x).reshape(-1, 784)
    torch.manual_seed(spec["seed"])
    family = "vae" if spec["model"] == "vae" else "undercomplete"
    model = aekit.make_model(family, (784,), 32, hidden=[512, 256], activation="relu")
    config = aekit.TrainConfig(
        epochs=spec["epochs"], batch_size=spec["batch"], val_fraction=0.0, precision=spec["precision"],
        seed=spec["seed"], flush_denormal=spec["flush"],
    )  # fmt: skip
    result = aekit.Trainer(model, config, progress=False).fit(x)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.numpy().tobytes())
    return {
        **spec,
        "threads_used": torch.get_num_threads(),
        "epoch_seconds": [round(h["seconds"], 3) for h in result.history],
        "final_train_loss": result.history[-1]["train"]["loss"],
        "weights_sha256": digest.hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AEKIT_DATA_DIR"), help="holds fashion-mnist/")
    parser.add_argument("--models", nargs="+", default=["ae", "vae"], choices=["ae", "vae"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--adam-steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "denormals.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        report_from_child(adam_child(spec) if spec["kind"] == "adam" else train_child(spec))
        return
    if args.data_dir is None:
        parser.error("pass --data-dir or set AEKIT_DATA_DIR (the folder that holds fashion-mnist/)")

    started, load_start = time.perf_counter(), os.getloadavg()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    common = {"seed": args.seed, "threads": args.threads}
    order = [{"kind": "adam", "flush": f, "adam_steps": args.adam_steps, **common} for f in (False, True)] * 3
    for repeat in range(args.repeats):
        for model in args.models:
            for batch in args.batch_sizes:
                for precision in args.precisions:
                    for flush in (False, True):
                        order.append(
                            {
                                "kind": "train", "model": model, "batch": batch, "precision": precision,
                                "flush": flush, "epochs": args.epochs, "repeat": repeat, "data_dir": args.data_dir,
                                **common,
                            }
                        )  # fmt: skip
    rows = []
    for index, spec in enumerate(order):
        rows.append(run_in_child(__file__, spec, env))
        r = rows[-1]
        what = "adam" if r["kind"] == "adam" else f"{r['model']} b{r['batch']} {r['precision']}"
        shown = r.get("ms_per_step", r.get("epoch_seconds"))
        print(f"[{index + 1}/{len(order)}] {what} flush={r['flush']}: {shown}", flush=True)

    adam = {f: statistics.median(r["ms_per_step"] for r in rows if r["kind"] == "adam" and r["flush"] == f)
            for f in (False, True)}  # fmt: skip
    summary = []
    trained = [r for r in rows if r["kind"] == "train"]
    for key in sorted({(r["model"], r["batch"], r["precision"]) for r in trained}):
        runs = {f: [r for r in trained if (r["model"], r["batch"], r["precision"]) == key and r["flush"] == f]
                for f in (False, True)}  # fmt: skip
        per_epoch = {f: [statistics.median(e) for e in zip(*(r["epoch_seconds"] for r in runs[f]), strict=True)]
                     for f in (False, True)}  # fmt: skip
        same = {r["weights_sha256"] for r in runs[False]} == {r["weights_sha256"] for r in runs[True]}
        summary.append(
            {
                "model": key[0], "batch": key[1], "precision": key[2],
                "epoch_seconds_off": [round(s, 2) for s in per_epoch[False]],
                "epoch_seconds_on": [round(s, 2) for s in per_epoch[True]],
                "speedup_total": round(sum(per_epoch[False]) / sum(per_epoch[True]), 2),
                "speedup_last_epoch": round(per_epoch[False][-1] / per_epoch[True][-1], 2),
                "identical_weights": same,
            }
        )  # fmt: skip
    write_record(
        args,
        "denormals",
        time.perf_counter() - started,
        command="python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        load_average_start=[round(v, 2) for v in load_start],
        load_average_end=[round(v, 2) for v in os.getloadavg()],
        adam_ms_per_step={"flush_off": adam[False], "flush_on": adam[True]},
        runs=rows,
        summary=summary,
    )
    print(f"fused Adam step, {ADAM_WEIGHTS} weights, a third of the moments denormal: "
          f"{adam[False]:.2f} ms unflushed, {adam[True]:.2f} ms flushed")  # fmt: skip
    print_markdown_table(
        ["model", "batch", "precision", "s/epoch, flush off", "s/epoch, flush on", "x (5 epochs)", "x (last)",
         "same weights"],
        [[e["model"], e["batch"], e["precision"], " / ".join(map(str, e["epoch_seconds_off"])),
          " / ".join(map(str, e["epoch_seconds_on"])), f"{e['speedup_total']:.2f}", f"{e['speedup_last_epoch']:.2f}",
          "yes" if e["identical_weights"] else "no"] for e in summary],
    )  # fmt: skip


if __name__ == "__main__":
    main()
