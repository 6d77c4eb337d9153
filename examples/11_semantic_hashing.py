"""# 11. Semantic hashing: binary codes, a hash table, the Hamming ball

**Claim.** An autoencoder with a binary code maps similar inputs to codes a few bit flips apart.
The codes then serve as addresses: the items within Hamming distance r of a query are found by
looking up every code obtained by flipping at most r of its bits, with no scan over the database.
How good are such codes against data-independent hashing (LSH, random hyperplanes) and iterative
quantisation (ITQ, a rotated PCA)?

**How it is measured.** Fashion-MNIST: the training images are the database, test images the
queries, relevance is "same class". The `hashing` family (32 bits; noise before a sigmoid in
training, hard bits at inference) against `lsh`, `pca` and `itq` from
`aekit.applications.hashers`, all through `evaluate_hasher`: mean average precision over the whole
Hamming ranking, precision of the 100 nearest, and precision / recall of the Hamming ball of radius
2. Then the autoencoder's codes go into a `SemanticHashIndex`: the radius-2 ball found by bit
flipping is compared with a brute-force scan of all distances, and both are timed.
"""

# %%
from __future__ import annotations

import time

import numpy as np
from _gallery import Run, build, command_line, fashion_mnist, fit, new_figure, style

from aekit.applications import hashers
from aekit.hash_index import SemanticHashIndex, hamming_distances

NAME = "11_semantic_hashing"
BASELINES = ("lsh", "pca", "itq")
METHODS = ("autoencoder", *BASELINES)

LABELS = {
    "bits": "bits per code",
    "database": "database items",
    "queries": "queries",
    **{f"map_{m}": f"{m}: mean average precision (whole ranking)" for m in METHODS},
    **{f"p100_{m}": f"{m}: precision of the 100 nearest" for m in METHODS},
    **{f"pball_{m}": f"{m}: precision within Hamming radius 2" for m in METHODS},
    **{f"rball_{m}": f"{m}: recall within Hamming radius 2" for m in METHODS},
    "ball_matches_scan": "hash-table ball equals the brute-force ball for every query (1 = yes)",
    "ball_items": "autoencoder: mean items in the radius-2 ball",
    "ball_ms": "hash table: radius-2 ball per query (ms)",
    "scan_ms": "brute force: all Hamming distances per query (ms)",
}


def claims(n: dict[str, float]) -> dict[str, bool]:
    return {
        "the autoencoder's codes rank better than random hyperplanes (LSH)": n["map_autoencoder"] > n["map_lsh"],
        "the autoencoder's 100 nearest are more often of the query's class than PCA's or LSH's": n["p100_autoencoder"]
        > max(n["p100_pca"], n["p100_lsh"]),
        "the hash-table ball is exactly the brute-force ball": n["ball_matches_scan"] == 1,
    }


# %% [markdown]
# ## Train the hashing autoencoder, fit the baselines, score them all the same way


# %%
def measure(train, test, tiny: bool, bits: int):
    model = build("hashing", train.data_shape, bits, hidden=[256] if tiny else [512, 256])
    fit(model, train.x, epochs=10 if tiny else 20, batch_size=256 if tiny else 1024, lr=3e-3 if tiny else 1e-3)
    numbers = {"bits": bits, "database": len(train), "queries": len(test)}
    flat_train, flat_test = train.x.reshape(len(train), -1), test.x.reshape(len(test), -1)
    candidates = {"autoencoder": hashers.AutoencoderHasher(model)}
    candidates.update({name: hashers.make_hasher(name, bits, seed=0) for name in BASELINES})
    for name, hasher in candidates.items():
        database_x, query_x = (train.x, test.x) if name == "autoencoder" else (flat_train, flat_test)
        report = hashers.evaluate_hasher(hasher, database_x, train.labels, query_x, test.labels)
        numbers[f"map_{name}"] = report["map"]
        numbers[f"p100_{name}"] = report["precision_at_k"]
        numbers[f"pball_{name}"] = report["precision_radius"]
        numbers[f"rball_{name}"] = report["recall_radius"]
    return numbers, candidates["autoencoder"]


# %% [markdown]
# ## The hash table: a Hamming ball by bit flipping, against a scan


# %%
def hash_table(numbers, ae_hasher, train, test):
    database, queries = ae_hasher.encode(train.x), ae_hasher.encode(test.x)
    index = SemanticHashIndex(n_bits=database.shape[1])
    index.add(database)
    started = time.perf_counter()
    balls = [index.radius_search(code, 2)[0] for code in queries]
    ball_seconds = time.perf_counter() - started
    started = time.perf_counter()
    distances = hamming_distances(queries, database)  # (Q, N)
    scanned = [np.flatnonzero(row <= 2) for row in distances]
    scan_seconds = time.perf_counter() - started
    numbers["ball_matches_scan"] = int(all(np.array_equal(np.sort(a), b) for a, b in zip(balls, scanned, strict=True)))
    numbers["ball_items"] = float(np.mean([len(ball) for ball in balls]))
    numbers["ball_ms"] = 1000 * ball_seconds / len(queries)
    numbers["scan_ms"] = 1000 * scan_seconds / len(queries)
    return balls, database


# %% [markdown]
# ## The figure: the scores, and what one query's Hamming ball holds


# %%
def draw(numbers, balls, database, train, test):
    side = test.data_shape[-1]
    query = next((i for i, ball in enumerate(balls) if len(ball) >= 9), 0)
    with style():
        fig = new_figure(10, 3.4)
        left, right = fig.subfigures(1, 2, width_ratios=[1, 1.2])
        ax = left.subplots()
        x = np.arange(3)
        for i, method in enumerate(METHODS):
            values = [numbers[f"{metric}_{method}"] for metric in ("map", "p100", "pball")]
            ax.bar(x + (i - 1.5) * 0.2, values, width=0.2, label=method)
        ax.set_xticks(x, ["mAP", "precision@100", "precision, radius 2"])
        ax.set_ylim(0, 1)
        ax.set_title(f"{numbers['bits']}-bit codes, relevance = same class")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
        axes = right.subplots(2, 5)
        shown = [test.x[query], *train.x[balls[query][:9]]]
        for k, (axis, image) in enumerate(zip(axes.ravel(), shown, strict=False)):
            axis.imshow(image.reshape(side, side), cmap="gray", vmin=0, vmax=1)
            axis.set_title("query" if k == 0 else f"id {balls[query][k - 1]}", fontsize=7)
        for axis in axes.ravel():
            axis.set_xticks([])
            axis.set_yticks([])
        right.suptitle(f"a query and items of its radius-2 Hamming ball ({len(balls[query])} in all)")
    return fig


# %%
def answer(n: dict[str, float]) -> str:
    scores = "; ".join(
        f"{m}: mAP {n[f'map_{m}']:.3f}, precision@100 {n[f'p100_{m}']:.3f}, radius-2 precision "
        f"{n[f'pball_{m}']:.3f} / recall {n[f'rball_{m}']:.4f}"
        for m in METHODS
    )
    return (
        f"{n['bits']}-bit codes, {n['database']} database items, {n['queries']} queries. {scores}. "
        f"The radius-2 ball found in the hash table by flipping bits is exactly the one a scan of all "
        f"distances finds ({'every' if n['ball_matches_scan'] else 'NOT every'} query), holding "
        f"{n['ball_items']:.0f} items on average; it took {n['ball_ms']:.3f} ms per query against "
        f"{n['scan_ms']:.3f} ms for the scan."
    )


def main(size: str = "full", out_dir=None, data_dir=None) -> dict:
    run = Run(NAME, size, out_dir)
    train, test, data = fashion_mnist(
        2000 if run.tiny else 30000, 200 if run.tiny else 1000, data_dir, run.tiny, pool=2 if run.tiny else 1
    )
    numbers, ae_hasher = measure(train, test, run.tiny, bits=16 if run.tiny else 32)
    balls, database = hash_table(numbers, ae_hasher, train, test)
    return run.finish(draw(numbers, balls, database, train, test), numbers, LABELS, claims, answer, data)


# %%
if __name__ == "__main__":
    command_line(main, __doc__.splitlines()[0])
