"""What every benchmark record carries: date, machine, threads, versions, settings, wall time."""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import date
from pathlib import Path
from typing import Any


def machine() -> str:
    """The CPU model name (as lscpu gives it) and the number of cores."""
    model = platform.processor() or platform.platform()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


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
