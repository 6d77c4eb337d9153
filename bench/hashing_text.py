"""Semantic hashing of documents: TF-IDF vectors (scipy sparse) of Python's own docstrings.

No text corpus can be downloaded here, so the documents are the docstrings (at least
``--min-words`` words) of the functions, classes and modules of the largest packages of the
Python standard library installed on this machine, read with ``ast`` (nothing is imported); a
document's label is its package (``email``, ``asyncio``, ``logging``, ...), and a retrieved
document is relevant when it comes from the same package. The TF-IDF matrix stays sparse: the
autoencoder trains on it batch by batch, the baselines read it in row blocks. The autoencoder
scores its reconstruction with the multinomial (softmax over the vocabulary) likelihood; a
document's NLL is about 25 nats, so the penalty weights are lower than for images.

Protocol: a seeded ``--queries`` documents query the rest; every method is fitted on the rest.

    python bench/hashing_text.py --threads 2
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sysconfig
import time
from datetime import date
from pathlib import Path

BASELINES = ("lsh", "pca", "itq", "spectral")


def docstrings(packages: int, min_words: int) -> tuple[list[str], list[str]]:
    """(documents, package names) from the ``packages`` stdlib packages with the most docstrings."""
    root = Path(sysconfig.get_paths()["stdlib"])
    corpus: dict[str, list[str]] = {}
    for package in sorted(p for p in root.iterdir() if (p / "__init__.py").is_file()):
        texts = []
        for source in sorted(package.rglob("*.py")):
            if "test" in source.parts or "tests" in source.parts:
                continue
            try:
                tree = ast.parse(source.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
                    text = ast.get_docstring(node)
                    if text and len(text.split()) >= min_words:
                        texts.append(text)
        corpus[package.name] = texts
    largest = sorted(corpus, key=lambda name: -len(corpus[name]))[:packages]
    documents = [text for name in largest for text in corpus[name]]
    labels = [name for name in largest for _ in corpus[name]]
    return documents, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", type=int, default=10)
    parser.add_argument("--min-words", type=int, default=10)
    parser.add_argument("--vocabulary", type=int, default=4000, help="most frequent terms kept")
    parser.add_argument("--bits", default="16,32,64")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", default="512,256")
    parser.add_argument("--likelihood", default="multinomial", choices=["multinomial", "bernoulli", "gaussian"])
    parser.add_argument("--balance", type=float, default=10.0, help="bit_balance weight (a document NLL is ~25 nats)")
    parser.add_argument("--neighbourhood", type=float, default=0.3, help="neighbourhood weight")
    parser.add_argument("-o", "--option", action="append", default=[], help="family option KEY=JSON")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hashing_text.json")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)

    import numpy as np
    import torch
    from sklearn.feature_extraction.text import TfidfVectorizer

    import aekit
    from aekit.applications.hashers import AutoencoderHasher, evaluate_hasher, make_hasher, query_database_split

    torch.set_num_threads(args.threads)
    documents, names = docstrings(args.packages, args.min_words)
    classes = sorted(set(names))
    labels = np.array([classes.index(name) for name in names])
    vectorizer = TfidfVectorizer(max_features=args.vocabulary, sublinear_tf=True, stop_words="english", min_df=2)
    tfidf = vectorizer.fit_transform(documents).astype(np.float32).tocsr()  # (N, V) sparse, rows of unit norm
    query_rows, database_rows = query_database_split(tfidf.shape[0], args.queries, args.seed)
    database, queries = tfidf[database_rows], tfidf[query_rows]
    print(
        f"{tfidf.shape[0]} docstrings of {len(classes)} packages, {tfidf.shape[1]} terms, "
        f"{tfidf.nnz / tfidf.shape[0]:.1f} non-zeros per document; {len(query_rows)} queries",
        flush=True,
    )
    options = {
        "hidden": [int(v) for v in args.hidden.split(",")],
        "likelihood": args.likelihood,
        "balance": args.balance,
        "neighbourhood": args.neighbourhood,
    }
    for item in args.option:
        key, value = item.split("=", 1)
        options[key] = json.loads(value)
    rows = []
    for n_bits in [int(b) for b in args.bits.split(",")]:
        for method in (*BASELINES, "autoencoder"):
            extra = {}
            if method == "autoencoder":
                torch.manual_seed(args.seed)
                model = aekit.make_model("hashing", (tfidf.shape[1],), n_bits, **options)
                config = aekit.TrainConfig(
                    epochs=args.epochs, batch_size=args.batch_size, lr=2e-3, lr_schedule="cosine", val_fraction=0.0
                )
                started = time.perf_counter()
                aekit.Trainer(model, config, progress=False).fit(database)  # scipy sparse, densified per batch
                extra = {"train_seconds": round(time.perf_counter() - started, 1)}
                hasher, fit = AutoencoderHasher(model), False
            else:
                hasher, fit = make_hasher(method, n_bits, seed=args.seed), True
            row = evaluate_hasher(
                hasher, database, labels[database_rows], queries, labels[query_rows], fit=fit, k=args.queries // 10
            )
            row.update(extra)
            rows.append(row)
            print(
                f"{method:<12} {n_bits:>3} bits: mAP {row['map']:.4f}  P@{args.queries // 10} "
                f"{row['precision_at_k']:.4f}  P@r2 {row['precision_radius']:.4f}  R@r2 {row['recall_radius']:.4f}",
                flush=True,
            )
    result = {
        "date": date.today().isoformat(),
        "threads": args.threads,
        "corpus": {
            "documents": int(tfidf.shape[0]),
            "terms": int(tfidf.shape[1]),
            "packages": classes,
            "python": sysconfig.get_python_version(),
        },
        "settings": {key: str(value) for key, value in vars(args).items() if key != "out"},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
