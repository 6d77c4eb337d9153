"""The semantic hashing figure of docs/hashing.md, drawn from a run of bench/hashing.py.

Top row, per dataset: mAP over the whole Hamming ranking against the code length, every method,
with the Euclidean ranking of raw pixels as a dashed line. Bottom row: the precision-recall
curve of Hamming-ball lookup at ``--curve-bits`` bits, one point per radius 0, 1, 2, ...
(pooled over the queries; radius 2 is marked). Nothing is trained or measured here: the numbers
are those of ``bench/results/hashing.json``.

    python bench/hashing_figures.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STYLE = {
    "autoencoder": ("tab:red", "o"),
    "itq": ("tab:blue", "s"),
    "lsh": ("tab:green", "^"),
    "pca": ("tab:orange", "v"),
    "spectral": ("tab:purple", "D"),
}


def retrieval_figure(results: dict, curve_bits: int):
    """matplotlib Figure: mAP vs bits (top) and precision-recall over Hamming radii (bottom) per dataset."""
    from matplotlib.figure import Figure

    datasets = list(results["datasets"])
    fig = Figure(figsize=(4.4 * len(datasets), 7.0), layout="constrained")
    axes = fig.subplots(2, len(datasets), squeeze=False)
    for column, name in enumerate(datasets):
        table = results["datasets"][name]
        rows = table["rows"]
        top, bottom = axes[0, column], axes[1, column]
        for method, (colour, marker) in STYLE.items():
            mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["bits"])
            if not mine:
                continue
            label = "hashing autoencoder" if method == "autoencoder" else method
            top.plot([r["bits"] for r in mine], [r["map"] for r in mine], marker=marker, color=colour, label=label)
            at = [r for r in mine if r["bits"] == curve_bits and "precision_curve" in r]
            if at:
                precision, recall = at[0]["precision_curve"], at[0]["recall_curve"]
                bottom.plot(recall, precision, marker=marker, ms=3, color=colour, label=label)
                bottom.plot(recall[2], precision[2], marker=marker, ms=9, mfc="none", color=colour)
        euclidean = [r["map"] for r in rows if r["method"].startswith("euclidean")]
        if euclidean:
            top.axhline(euclidean[0], ls="--", color="grey", label="Euclidean, raw pixels")
        top.set_xscale("log", base=2)
        bits = sorted({r["bits"] for r in rows if r["bits"]})
        top.set_xticks(bits, [str(b) for b in bits])
        top.set_xlabel("bits")
        top.set_ylabel("mAP (whole Hamming ranking)")
        top.set_title(f"{name}: {table['queries']} queries, {table['database']} items", fontsize=9)
        top.grid(alpha=0.3)
        bottom.set_xscale("log")
        bottom.set_xlabel("recall within Hamming radius r (log scale)")
        bottom.set_ylabel("precision within radius r")
        bottom.set_title(f"{name}, {curve_bits} bits: r = 0, 1, 2, ... (circle: r = 2)", fontsize=9)
        bottom.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].legend(fontsize=8)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "hashing.json")
    parser.add_argument("--curve-bits", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "hashing_retrieval.png")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    retrieval_figure(results, args.curve_bits).savefig(args.out, dpi=90)
    print(f"written to {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
