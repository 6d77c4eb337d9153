"""What every benchmark record carries: date, machine, threads, versions, settings, wall time."""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import date
from pathlib import Path
from typing import Any

# CPU features that decide bfloat16 matmul speed: AMX tiles (several times AVX512's rate), AVX512-BF16
MATMUL_FEATURES = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


def machine() -> str:
    """The CPU model name (as lscpu gives it), the number of cores and its bf16 matmul features."""
    model, flags = platform.processor() or platform.platform(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not flags:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    features = [name for flag, name in MATMUL_FEATURES.items() if flag in flags]
    return f"{model}, {os.cpu_count()} cores" + (f", {' + '.join(features)}" if features else "")


def write_record(args: argparse.Namespace, name: str, seconds: float, **results: Any) -> dict[str, Any]:
    """Write ``{benchmark, date, machine, threads, torch, settings, wall_seconds, **results}`` as JSON
    to ``args.out``; returns the record."""
    import torch

    record = {
        "benchmark": name,
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "wall_seconds": round(seconds, 1),
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    return record


def print_markdown_table(header: list[str], rows: list[list[Any]]) -> None:
    """Print a Markdown table: one ``header`` row, then ``rows`` of already formatted cells."""
    print("| " + " | ".join(header) + " |")
    print("|---" * len(header) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def run_in_child(script: str, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Run ``script --child JSON(spec)`` in a fresh Python process with ``env`` and return the
    dict it printed on its ``RESULT`` line; a failed run stops the benchmark with its output."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, script, "--child", json.dumps(spec)], env=env, capture_output=True, text=True
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"run {spec} failed with exit status {done.returncode}")
    return json.loads(lines[-1][len("RESULT ") :])


def report_from_child(result: dict[str, Any]) -> None:
    """The child's side of :func:`run_in_child`: print ``result`` on the ``RESULT`` line."""
    print("RESULT " + json.dumps(result), flush=True)


def add_clip_option(parser: argparse.ArgumentParser) -> None:
    """``--clip-grad-norm``: a dictionary benchmark's gradient clip, ``auto`` (aekit's default: 1 for
    the dictionaries) or a number (0 = off), passed to ``aekit.TrainConfig``."""
    parser.add_argument(
        "--clip-grad-norm", type=lambda v: v if v == "auto" else float(v), default="auto",
        help="the dictionaries' gradient clip: auto (aekit's default: 1 for them) or a number, 0 = off (default: auto)",
    )  # fmt: skip
