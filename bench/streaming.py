"""Training on data bigger than memory: one epoch over a synthetic .npy file streamed in chunks.

Writes a synthetic uint8 dataset of ``--gigabytes`` (rows of 784 pixels: blurred blobs, so there
is something to learn), trains one epoch of a small MLP autoencoder on it with the streamed path,
records peak resident memory (ru_maxrss) and throughput, then trains the same model on an
in-memory subset for comparison. Each measurement runs in its own child process so that the peak
memory of one does not hide the other's.

    python bench/streaming.py --gigabytes 10 --folder /tmp/aekit-stream --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from common import machine

ROW = 784


def write_dataset(path: Path, rows: int, seed: int, block: int = 8192) -> float:
    """A .npy of ``rows`` x 784 uint8, written block by block (never all in memory); seconds."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(28), np.arange(28), indexing="ij"), -1).reshape(1, ROW, 2)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, ROW))
    for start in range(0, rows, block):
        n = min(block, rows - start)
        centres = rng.uniform(6, 22, (n, 1, 2))
        width = rng.uniform(2, 6, (n, 1))
        blob = np.exp(-((grid - centres) ** 2).sum(-1) / (2 * width**2))
        out[start : start + n] = (255 * blob).astype(np.uint8)
    out.flush()
    del out
    return time.perf_counter() - started


def peak_rss_mb() -> int:
    """This process's peak resident memory (VmHWM). Unlike ru_maxrss it is not inherited from the
    parent through fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(mode: str, path: str, rows: int, batch: int, threads: int, seed: int) -> dict:
    """Runs in a child process: train one epoch, report throughput and peak memory."""
    import torch

    import aekit
    from aekit.data.streaming import ArrayFile

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = aekit.make_model("undercomplete", (ROW,), 16, hidden=[128], activation="elu")
    config = aekit.TrainConfig(epochs=1, batch_size=batch, lr=1e-3, val_fraction=0.0, seed=seed, log_every=200)
    # the streamed file, or its first rows read into memory as float32
    data = ArrayFile(path) if mode == "stream" else ArrayFile(path).read(0, rows)
    result = aekit.Trainer(model, config, progress=mode == "stream").fit(data)
    return {
        "mode": mode,
        "rows": len(data),
        "seconds": round(result.seconds, 1),
        "samples_per_second": round(result.samples_per_second),
        "final_loss": round(result.history[-1]["train"]["loss"], 3),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=10.0)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/aekit-stream"))
    parser.add_argument("--subset-rows", type=int, default=500_000, help="rows of the in-memory comparison")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the synthetic file")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ROWS"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "streaming.json")
    args = parser.parse_args()
    path = args.folder / "synthetic.npy"
    if args.child:
        result = measure(args.child[0], str(path), int(args.child[1]), args.batch_size, args.threads, args.seed)
        print("RESULT " + json.dumps(result))
        return

    rows = int(args.gigabytes * 1e9 // ROW)
    args.folder.mkdir(parents=True, exist_ok=True)
    write_seconds = write_dataset(path, rows, args.seed) if not path.exists() else 0.0
    size_gb = path.stat().st_size / 1e9
    results = []
    for mode, count in (("stream", rows), ("memory", args.subset_rows)):
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        done = subprocess.run(
            [sys.executable, __file__, "--folder", str(args.folder), "--batch-size", str(args.batch_size),
             "--threads", str(args.threads), "--seed", str(args.seed), "--child", mode, str(count)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT ") :]))
        print(results[-1], flush=True)
    record = {
        "benchmark": "streaming",
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": args.threads,
        "file_gb": round(size_gb, 2),
        "rows": rows,
        "write_seconds": round(write_seconds, 1),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    if not args.keep:
        path.unlink()
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
