"""Speed and memory of the semantic hash index: 1 000 000 synthetic 64-bit codes, numpy vs faiss.

The codes are clustered like real hashing codes (many items share or nearly share a code):
``--clusters`` random centres, each item its centre with every bit flipped with probability
``--flip`` (about 2 bits of 64). Queries are the codes of seeded random items. Per backend:

* build: seconds to add every item; memory: bytes per item of the codes and of the ids (numpy
  table) and of faiss' own structures (its serialized size; a faiss backend keeps the numpy
  table as well).
* lookup of one exact code, Hamming-ball search of radius 2 and the top-100 Hamming ranking:
  median and 90th percentile per query, one query at a time, and the mean number of results.
* brute force: the radius-2 ball found by scanning every code (XOR + popcount of the whole
  table) instead of flipping bits, on the numpy table.

The load averages before and after are recorded: on a shared machine timings drift with them.

Every backend's results are checked against the numpy path. One query is timed at a time, so
``--threads`` only matters to faiss (its OpenMP pool) and is recorded with the figures.

    python bench/hash_speed.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

from common import machine


def timed(function, queries):
    """(per-query seconds as an array, results) of ``function`` over the queries, one at a time."""
    import numpy as np

    seconds, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(function(query))
        seconds.append(time.perf_counter() - started)
    return np.array(seconds), results


def brute_force_ball(index, code, radius: int):
    """Ids within ``radius`` of ``code`` by scanning every stored code (XOR + popcount), no table."""
    import numpy as np

    from aekit.hash_index import _popcount, to_words

    distances = _popcount(index._words ^ to_words(code[None])[0])  # (N,)
    return index._ids[np.flatnonzero(distances <= radius)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=50_000)
    parser.add_argument("--flip", type=float, default=0.03, help="per-bit flip probability around each centre")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--radius", type=int, default=2)
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--backends", default="numpy,faiss-flat,faiss-hash,faiss-multihash")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hash_speed.json")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)

    import numpy as np
    import psutil

    from aekit.hash_index import SemanticHashIndex

    try:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    except ImportError:
        faiss = None

    rng = np.random.default_rng(args.seed)
    centres = rng.random((args.clusters, args.bits)) < 0.5
    codes = centres[rng.integers(0, args.clusters, args.items)] ^ (rng.random((args.items, args.bits)) < args.flip)
    ids = rng.permutation(args.items).astype(np.int64) + 10_000_000  # ids unrelated to positions
    queries = codes[rng.choice(args.items, args.queries, replace=False)]
    process = psutil.Process()

    load_before = os.getloadavg()
    rows, reference = [], None
    for backend in args.backends.split(","):
        if backend.startswith("faiss") and faiss is None:
            print(f"{backend}: faiss is not installed, skipped")
            continue
        rss_before = process.memory_info().rss
        started = time.perf_counter()
        index = SemanticHashIndex(args.bits, backend)
        index.add(codes, ids)
        if index._faiss is not None:
            index._faiss._ensure(index)
        build_seconds = time.perf_counter() - started
        rss_growth = process.memory_info().rss - rss_before

        faiss_bytes = 0
        if index._faiss is not None:
            faiss_bytes = int(faiss.serialize_index_binary(index._faiss.index).nbytes)

        lookup_s, lookups = timed(index.lookup, queries)
        radius_s, balls = timed(lambda q, index=index: index.radius_search(q, args.radius), queries)
        top_s, tops = timed(lambda q, index=index: index.search(q, args.k), queries)
        if reference is None:
            reference = (lookups, balls, tops)
        agree = all(np.array_equal(a, b) for a, b in zip(lookups, reference[0], strict=True)) and all(
            np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
            for mine, theirs in ((balls, reference[1]), (tops, reference[2]))
            for a, b in zip(mine, theirs, strict=True)
        )
        row = {
            "backend": backend,
            "items": len(index),
            "bits": args.bits,
            "build_seconds": round(build_seconds, 3),
            "code_bytes_per_item": index._words.nbytes / len(index),
            "id_bytes_per_item": index._ids.nbytes / len(index),
            "faiss_bytes_per_item": round(faiss_bytes / len(index), 1),
            "rss_growth_bytes_per_item": round(rss_growth / len(index), 1),
            "lookup_ms_median": round(1e3 * float(np.median(lookup_s)), 4),
            "radius_ms_median": round(1e3 * float(np.median(radius_s)), 4),
            "radius_ms_p90": round(1e3 * float(np.percentile(radius_s, 90)), 4),
            "radius_results_mean": float(np.mean([len(b[0]) for b in balls])),
            "top_k_ms_median": round(1e3 * float(np.median(top_s)), 3),
            "top_k_ms_p90": round(1e3 * float(np.percentile(top_s, 90)), 3),
            "agrees_with_numpy": bool(agree),
        }
        if backend == "numpy":
            scan_s, scans = timed(lambda q, index=index: brute_force_ball(index, q, args.radius), queries)
            row["scan_radius_ms_median"] = round(1e3 * float(np.median(scan_s)), 3)
            row["scan_radius_ms_p90"] = round(1e3 * float(np.percentile(scan_s, 90)), 3)
            row["scan_agrees"] = all(
                np.array_equal(np.sort(a), np.sort(b[0])) for a, b in zip(scans, balls, strict=True)
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
        del index

    result = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "numpy": np.__version__,
        "faiss": getattr(faiss, "__version__", None),
        "settings": {key: value for key, value in vars(args).items() if key != "out"},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
