"""Semantic hashing commands: ``aekit hash build``, ``aekit hash query``, ``aekit hash evaluate``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AekitError
from .base import (
    add_data_arguments,
    add_output,
    add_subcommands,
    arguments,
    command,
    data_description,
    integer,
    load_data,
)

BASELINES = ("lsh", "pca", "itq", "spectral")


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AekitError(f"bad {what} {text!r}", "expected comma-separated integers", "e.g. 16,32,64") from None
    if not values or any(v < 1 for v in values):
        raise AekitError(f"bad {what} {text!r}", "every value must be a positive integer", "e.g. 16,32,64")
    return values


def _load_autoencoder_hasher(run: Path | str, device: str, batch_size: int):
    from ..applications.hashers import AutoencoderHasher
    from ..io import load_model
    from ..tensors import resolve_device

    return AutoencoderHasher(load_model(run, resolve_device(device)), batch_size=batch_size)


def _hasher_from_index(meta: dict[str, Any], extra: dict[str, np.ndarray], args: argparse.Namespace):
    """The hasher that made an index's codes: its saved arrays, or the model run it names."""
    from ..applications.hashers import hasher_from_state

    hasher_meta = meta.get("hasher", {})
    if hasher_meta.get("method") == "autoencoder":
        run = args.model or hasher_meta.get("run")
        if not run or not Path(run).is_dir():
            raise AekitError(
                f"the model run {run} of this index is not there",
                "new inputs must be encoded by the model that built the index",
                "pass its folder with --model RUN",
            )
        return _load_autoencoder_hasher(run, args.device, args.batch_size)
    arrays = {key[7:]: value for key, value in extra.items() if key.startswith("hasher.")}
    return hasher_from_state(arrays, hasher_meta)


def _add_hasher_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("hasher (one of)")
    which = group.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--model", type=Path, metavar="RUN", help="a run of the hashing family (aekit train --family hashing)"
    )
    which.add_argument("--method", choices=BASELINES, help="a baseline fitted on the data: lsh, pca, itq, spectral")
    group.add_argument("--bits", type=integer(1), default=32, help="code length of a baseline (a model has its own)")
    group.add_argument("--seed", type=integer(0), default=0, help="seed of the baseline (random hyperplanes, rotation)")


def _add_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="where a model encodes: auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--batch-size", type=integer(1), default=1024, help="examples encoded at a time")


# ------------------------------------------------------------------------------------------------ #
# build


def _add_build(parser: argparse.ArgumentParser) -> None:
    _add_hasher_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument("--ids", type=Path, metavar="FILE.npy", help="one integer id per row (default: row numbers)")
    add_output(parser, "--out", required=True, metavar="INDEX.npz", help="index file to write")
    _add_device_arguments(parser)


def cmd_build(args: argparse.Namespace) -> int:
    from ..applications.hashers import make_hasher
    from ..hash_index import SemanticHashIndex
    from ..io import save_index

    if args.out.suffix != ".npz":
        raise AekitError(f"--out {args.out} must end in .npz", "an index is one .npz file", "rename it")
    dataset = load_data(args)
    started = time.perf_counter()
    if args.model:
        hasher = _load_autoencoder_hasher(args.model, args.device, args.batch_size)
        hasher_meta: dict[str, Any] = {
            "method": "autoencoder",
            "n_bits": hasher.n_bits,
            "run": str(args.model.resolve()),
        }
        arrays: dict[str, Any] = {}
    else:
        hasher = make_hasher(args.method, args.bits, seed=args.seed).fit(dataset.x)
        state, hasher_meta = hasher.state()
        arrays = {f"hasher.{key}": value for key, value in state.items()}
    codes = hasher.encode(dataset.x)  # (N, K) bool
    ids = None
    if args.ids is not None:
        from ..data.files import load_npy

        ids, _ = load_npy(args.ids)
    index = SemanticHashIndex(hasher.n_bits)
    item_ids = index.add(codes, ids)
    seconds = time.perf_counter() - started
    if dataset.labels is not None:
        arrays["labels"], arrays["label_ids"] = np.asarray(dataset.labels), item_ids
    save_index(index, args.out, arrays, hasher=hasher_meta, data=data_description(args), build_seconds=seconds)
    distinct, largest = _bucket_sizes(codes)
    print(
        f"{len(index)} items, {hasher.n_bits}-bit codes ({hasher_meta['method']}), {distinct} distinct codes, "
        f"largest bucket {largest}, {index.nbytes / len(index):.1f} bytes per item; {seconds:.2f} s"
    )
    print(f"index written to {args.out}")
    return 0


def _bucket_sizes(codes: np.ndarray) -> tuple[int, int]:
    _, counts = np.unique(np.packbits(codes, axis=1), axis=0, return_counts=True)
    return len(counts), int(counts.max())


# ------------------------------------------------------------------------------------------------ #
# query


def _add_query(parser: argparse.ArgumentParser) -> None:
    from ..hash_index import BACKENDS

    parser.add_argument("index", type=Path, metavar="INDEX.npz", help="an index written by aekit hash build")
    which = parser.add_argument_group("queries (one of)").add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, action="append", dest="query_ids", metavar="ID", help="an item of the index")
    which.add_argument("--data", metavar="SOURCE", help="new inputs, encoded by the index's hasher (one query per row)")
    search = parser.add_argument_group("search (default: the 10 nearest)")
    how = search.add_mutually_exclusive_group()
    how.add_argument("--radius", type=integer(0), help="every item within this Hamming distance (inclusive)")
    how.add_argument("-k", "--nearest", type=integer(1), help="the k nearest items by Hamming distance")
    search.add_argument("--backend", default="numpy", choices=BACKENDS, help="numpy, or a faiss index (faiss-cpu)")
    parser.add_argument("--model", type=Path, metavar="RUN", help="the index's model run, if it has moved")
    parser.add_argument("--split", default="test", choices=["train", "test"], help="split of a named --data")
    parser.add_argument("--data-dir", metavar="DIR", help="folder of named datasets; default $AEKIT_DATA_DIR")
    add_output(parser, "--json", metavar="FILE", help="also write the results to this JSON file")
    _add_device_arguments(parser)


def cmd_query(args: argparse.Namespace) -> int:
    from ..data import load_dataset
    from ..io import load_index, write_json

    index, extra, meta = load_index(args.index, backend=args.backend)
    if args.query_ids:
        queries = index.codes_of(args.query_ids)
        names = [f"item {i}" for i in args.query_ids]
    else:
        dataset = load_dataset(args.data, split=args.split, data_dir=args.data_dir, download=False)
        queries = _hasher_from_index(meta, extra, args).encode(dataset.x)
        names = [f"row {i} of {dataset.name}" for i in range(len(queries))]
    label_of = _label_lookup(extra)
    results = []
    for name, code in zip(names, queries, strict=True):
        if args.radius is not None:
            ids, distances = index.radius_search(code, args.radius)
            what = f"{len(ids)} items within distance {args.radius}"
        else:
            ids, distances = index.search(code, args.nearest or 10)
            what = f"{len(ids)} nearest"
        print(f"{name}: {what}")
        print(f"  {'id':>10} {'distance':>8}" + (f" {'label':>8}" if label_of else ""))
        for item, distance in zip(ids.tolist(), distances.tolist(), strict=True):
            print(f"  {item:>10} {distance:>8}" + (f" {label_of(item)!s:>8}" if label_of else ""))
        results.append({"query": name, "ids": ids.tolist(), "distances": distances.tolist()})
    if args.json:
        write_json(args.json, results)
        print(f"written to {args.json}")
    return 0


def _label_lookup(extra: dict[str, np.ndarray]):
    if "labels" not in extra:
        return None
    order = np.argsort(extra["label_ids"])
    sorted_ids, labels = extra["label_ids"][order], extra["labels"][order]
    return lambda item: labels[np.searchsorted(sorted_ids, item)].item()


# ------------------------------------------------------------------------------------------------ #
# evaluate


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, default_split="test")
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument(
        "--protocol",
        choices=["train-database", "holdout"],
        help="train-database: queries from the test split, database = the train split (default for "
        "mnist and fashion-mnist); holdout: queries and database from --data --split (default for files)",
    )
    protocol.add_argument("--queries", type=integer(1), default=1000, help="how many seeded queries")
    protocol.add_argument("--seed", type=integer(0), default=0, help="seed of the query choice and of the baselines")
    protocol.add_argument("-k", type=integer(1), default=100, help="precision at k")
    protocol.add_argument(
        "--radius", type=integer(0), default=2, help="precision and recall within this Hamming radius"
    )
    methods = parser.add_argument_group("methods")
    methods.add_argument("--model", type=Path, action="append", default=[], metavar="RUN", help="a hashing run")
    methods.add_argument(
        "--methods", default=",".join(BASELINES), help="baselines, comma-separated (lsh,pca,itq,spectral), or none"
    )
    methods.add_argument("--bits", default="16,32,64", help="code lengths of the baselines, e.g. 16,32,64")
    add_output(parser, "--json", metavar="FILE", help="also write the table to this JSON file")
    _add_device_arguments(parser)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..applications.hashers import evaluate_hasher, make_hasher, query_database_split
    from ..io import write_json

    baselines = [] if args.methods.strip() == "none" else [m.strip() for m in args.methods.split(",") if m.strip()]
    for name in baselines:
        if name not in BASELINES:
            raise AekitError(f"unknown method {name!r}", f"the baselines are {', '.join(BASELINES)}", "fix --methods")
    bits = _int_list(args.bits, "--bits")
    hashers = [_load_autoencoder_hasher(run, args.device, args.batch_size) for run in args.model]
    hashers += [make_hasher(name, k, seed=args.seed) for name in baselines for k in bits]
    if not hashers:
        raise AekitError("nothing to evaluate", "no --model and no --methods", "add --model RUN or --methods itq")
    protocol = args.protocol or ("train-database" if args.data in ("mnist", "fashion-mnist") else "holdout")
    if protocol == "train-database":
        database, test = load_data(args, split="train"), load_data(args, split="test")
        query_rows, _ = query_database_split(len(test), args.queries, args.seed)
        queries = test.subset(query_rows)
    else:
        data = load_data(args)
        query_rows, database_rows = query_database_split(len(data), args.queries, args.seed)
        queries, database = data.subset(query_rows), data.subset(database_rows)
    if database.labels is None:
        raise AekitError(f"{database.name} has no labels", "relevance is 'same label'", "use labelled data")
    print(
        f"{len(queries)} queries against {len(database)} items of {database.name} ({protocol}); relevant = same label"
    )
    header = f"{'method':<12} {'bits':>4} {'mAP':>7} {'P@' + str(args.k):>7} {'P@r' + str(args.radius):>7}"
    print(header + f" {'R@r' + str(args.radius):>7} {'fit s':>7} {'encode s':>8}")
    rows = []
    for hasher in hashers:
        row = evaluate_hasher(
            hasher, database.x, database.labels, queries.x, queries.labels, k=args.k, radius=args.radius
        )
        rows.append(row)
        print(
            f"{row['method']:<12} {row['bits']:>4} {row['map']:7.4f} {row['precision_at_k']:7.4f} "
            f"{row['precision_radius']:7.4f} {row['recall_radius']:7.4f} {row['fit_seconds']:7.2f} "
            f"{row['encode_seconds']:8.2f}"
        )
    if args.json:
        write_json(args.json, {"protocol": protocol, "queries": len(queries), "database": len(database), "rows": rows})
        print(f"written to {args.json}")
    return 0


# ------------------------------------------------------------------------------------------------ #
# the command group


SUBCOMMANDS = {
    "build": (
        cmd_build,
        _add_build,
        "encode a dataset and write a semantic hash index",
        """examples:
  aekit hash build --model runs/hash32 --data fashion-mnist --out fmnist32.npz
  aekit hash build --method itq --bits 64 --data x.npy --ids ids.npy --out itq64.npz""",
    ),
    "query": (
        cmd_query,
        _add_query,
        "find items by Hamming ball or Hamming ranking; prints ids and distances",
        """examples:
  aekit hash query fmnist32.npz --id 17 --radius 2          # every item within 2 bit flips
  aekit hash query fmnist32.npz --id 17 -k 20               # the 20 nearest
  aekit hash query fmnist32.npz --data new.npy -k 5 --backend faiss-flat""",
    ),
    "evaluate": (
        cmd_evaluate,
        _add_evaluate,
        "retrieval quality (mAP, precision@k, precision/recall within a radius) of models and baselines",
        """examples:
  aekit hash evaluate --data fashion-mnist --model runs/hash32 --bits 32
  aekit hash evaluate --data mnist --protocol holdout --split test --methods itq,lsh --bits 16,32,64
  aekit hash evaluate --data docs.npz --model runs/docs64 --methods itq --bits 64 --json table.json""",
    ),
}


def _add_hash(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, "hash_command", SUBCOMMANDS)


@command(
    "hash",
    "semantic hashing: build an index of binary codes, query it, evaluate retrieval",
    """subcommands:
  build      encode a dataset with a hashing model (or a baseline) and write an index
  query      look items up by Hamming ball (--radius) or Hamming ranking (-k)
  evaluate   mAP, precision@100 and precision/recall within radius 2, models and baselines

examples:
  aekit train --family hashing --data fashion-mnist --code-size 32 --out runs/hash32
  aekit hash build --model runs/hash32 --data fashion-mnist --out fmnist32.npz
  aekit hash query fmnist32.npz --id 17 --radius 2
  aekit hash evaluate --data fashion-mnist --model runs/hash32 --bits 32""",
)
@arguments(_add_hash)
def cmd_hash(args: argparse.Namespace) -> int:
    return SUBCOMMANDS[args.hash_command][0](args)
