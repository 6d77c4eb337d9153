"""Semantic hashing: bit packing, the index against brute force (numpy and faiss), the baselines,
the retrieval metrics against brute force and scikit-learn, persistence and every bad input."""

import itertools
import pickle

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

import aekit
from aekit.applications.hashers import (
    AutoencoderHasher,
    ITQHasher,
    evaluate_hasher,
    hasher_from_state,
    make_hasher,
    query_database_split,
)
from aekit.hash_index import (
    BACKENDS,
    SemanticHashIndex,
    flip_masks,
    hamming_distances,
    pack_bits,
    unpack_bits,
)
from aekit.io import load_index, save_index
from aekit.metrics import hamming_retrieval_report, tie_group_metrics

try:
    import faiss  # noqa: F401

    HAVE_FAISS = True
except ImportError:
    HAVE_FAISS = False

BACKEND_PARAMS = [
    pytest.param(b, marks=pytest.mark.skipif(b != "numpy" and not HAVE_FAISS, reason="faiss-cpu not installed"))
    for b in BACKENDS
]


def clustered_codes(n, n_bits, seed=0, clusters=20, flip=0.03):
    """Codes that share or nearly share their cluster's code, so balls are not empty."""
    rng = np.random.default_rng(seed)
    centres = rng.random((clusters, n_bits)) < 0.5
    return centres[rng.integers(0, clusters, n)] ^ (rng.random((n, n_bits)) < flip)


def brute_distances(a, b):
    return (a[:, None, :] != b[None, :, :]).sum(-1)


# ------------------------------------------------------------------------------------------------ #
# bits


@pytest.mark.parametrize("n_bits", [1, 7, 8, 13, 64, 65, 256])
def test_pack_unpack_round_trip(n_bits, rng):
    bits = rng.random((50, n_bits)) < 0.5
    packed = pack_bits(bits)
    assert packed.dtype == np.uint8 and packed.shape == (50, -(-n_bits // 8))
    assert np.array_equal(unpack_bits(packed, n_bits), bits)
    # the layout is faiss' and numpy's little-endian one: bit j is bit j % 8 of byte j // 8
    assert np.array_equal(packed, np.packbits(bits, axis=1, bitorder="little"))


@pytest.mark.parametrize("n_bits", [5, 64, 100, 256])
def test_hamming_distance_is_a_brute_force_count(n_bits, rng):
    a, b = rng.random((17, n_bits)) < 0.5, rng.random((40, n_bits)) < 0.3
    assert np.array_equal(hamming_distances(a, b, chunk=5), brute_distances(a, b))


def test_flip_masks_enumerate_the_ball():
    masks = flip_masks(10, 2)
    assert len(masks) == 1 + 10 + 45 == len(set(masks.tolist()))
    assert max(bin(int(m)).count("1") for m in masks) == 2 and int(masks.max()) < 2**10


# ------------------------------------------------------------------------------------------------ #
# the index against brute force


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("n_bits", [8, 32, 64, 100, 256])
def test_radius_search_returns_exactly_the_brute_force_set(backend, n_bits):
    codes = clustered_codes(600, n_bits, seed=n_bits)
    ids = np.arange(600) * 3 + 5
    index = SemanticHashIndex(n_bits, backend)
    index.add(codes, ids)
    distances = brute_distances(codes[:6], codes)
    for q in range(6):
        for radius in (0, 1, 2, 3):
            found, found_distances = index.radius_search(codes[q], radius)
            expected = np.flatnonzero(distances[q] <= radius)
            order = np.lexsort((ids[expected], distances[q, expected]))
            assert np.array_equal(found, ids[expected][order])
            assert np.array_equal(found_distances, distances[q, expected][order])
        assert np.array_equal(index.lookup(codes[q]), np.sort(ids[distances[q] == 0]))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("n_bits", [16, 64, 130])
def test_k_nearest_is_the_brute_force_ranking_with_ties_by_id(backend, n_bits):
    codes = clustered_codes(500, n_bits, seed=1)
    ids = np.random.default_rng(2).permutation(500) + 1000
    index = SemanticHashIndex(n_bits, backend)
    index.add(codes, ids)
    distances = brute_distances(codes[:5], codes)
    for q in range(5):
        for k in (1, 10, 77, 500):
            found, found_distances = index.search(codes[q], k)
            order = np.lexsort((ids, distances[q]))[:k]
            assert np.array_equal(found, ids[order]) and np.array_equal(found_distances, distances[q, order])


def test_the_probing_and_scanning_paths_agree():
    codes = clustered_codes(40, 64, seed=3)  # 40 items: radius 2 scans (2 081 probes > items)
    small = SemanticHashIndex(64)
    small.add(codes)
    large = SemanticHashIndex(64)  # 40 000 items: radius 2 probes
    large.add(np.concatenate([codes, clustered_codes(39_960, 64, seed=4)]))
    for q in range(5):
        in_small, _ = small.radius_search(codes[q], 2)
        in_large, _ = large.radius_search(codes[q], 2)
        assert np.array_equal(in_small, in_large[in_large < 40])


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_remove_and_add_keep_every_query_exact(backend):
    codes = clustered_codes(300, 64, seed=5)
    index = SemanticHashIndex(64, backend)
    index.add(codes[:200])
    index.add(codes[200:])  # ids continue at 200
    assert np.array_equal(np.sort(index.ids), np.arange(300))
    assert index.remove(np.arange(0, 300, 3)) == 100 and len(index) == 200
    kept = np.setdiff1d(np.arange(300), np.arange(0, 300, 3))
    distances = brute_distances(codes[1:2], codes[kept])[0]
    found, _ = index.radius_search(codes[1], 3)
    assert np.array_equal(found, kept[np.lexsort((kept, distances))][: (distances <= 3).sum()])
    found, _ = index.search(codes[1], 20)
    assert np.array_equal(found, kept[np.lexsort((kept, distances))][:20])
    assert np.array_equal(index.codes_of([5, 1]), codes[[5, 1]])


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_index_save_load_round_trip_without_pickle(backend, tmp_path, monkeypatch):
    codes = clustered_codes(120, 40, seed=6)
    index = SemanticHashIndex(40)
    index.add(codes, np.arange(120) * 7)
    labels = np.arange(120) % 4
    save_index(index, tmp_path / "index.npz", {"labels": labels}, note="test")

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded, extra, meta = load_index(tmp_path / "index.npz", backend=backend)
    assert meta["note"] == "test" and np.array_equal(extra["labels"], labels)
    assert np.array_equal(np.sort(loaded.ids), np.sort(index.ids))
    assert np.array_equal(loaded.codes_of(index.ids), index.codes_of(index.ids))
    for q in range(3):
        for a, b in zip(loaded.search(codes[q], 15), index.search(codes[q], 15), strict=True):
            assert np.array_equal(a, b)


def test_a_damaged_index_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(aekit.AekitError, match="damaged or not an aekit file"):
        load_index(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", __meta__=np.array('{"format": "x"}'), codes=np.zeros((1, 1), np.uint8))
    with pytest.raises(aekit.AekitError, match="not a semantic hash index"):
        load_index(tmp_path / "other.npz")


def test_bad_inputs_give_clear_errors():
    empty = SemanticHashIndex(16)
    with pytest.raises(aekit.AekitError, match="the index is empty"):
        empty.search(np.zeros(16), 3)
    index = SemanticHashIndex(16)
    index.add(np.eye(16)[:4])
    with pytest.raises(aekit.AekitError, match=r"have 8 bits.*holds 16-bit codes"):
        index.radius_search(np.zeros(8), 1)
    with pytest.raises(aekit.AekitError, match="have 8 bits"):
        index.add(np.zeros((2, 8)))
    with pytest.raises(aekit.AekitError, match=r"radius 17 is outside 0..16"):
        index.radius_search(np.zeros(16), 17)
    with pytest.raises(aekit.AekitError, match="not binary"):
        index.lookup(np.full(16, 0.3))
    with pytest.raises(aekit.AekitError, match="id 2 is not unique"):
        index.add(np.zeros((1, 16)), [2])
    with pytest.raises(aekit.AekitError, match="id 99 is not in the index"):
        index.remove([99])
    with pytest.raises(aekit.AekitError, match="k=0"):
        index.search(np.zeros(16), 0)
    with pytest.raises(aekit.AekitError, match="unknown backend"):
        SemanticHashIndex(16, "annoy")


def test_a_model_without_a_binary_latent_is_refused():
    vae = aekit.make_model("vae", (1, 9, 7), 4, hidden=[8])
    with pytest.raises(aekit.AekitError, match=r"not binary.*semantic hashing needs a code of bits"):
        AutoencoderHasher(vae)


# ------------------------------------------------------------------------------------------------ #
# baselines


def test_itq_rotation_is_orthogonal_and_its_quantisation_loss_decreases(rng):
    x = rng.standard_normal((400, 30)) @ rng.standard_normal((30, 30))
    itq = ITQHasher(12, seed=0, iterations=30).fit(x)
    directions = itq.arrays["directions"]  # orthonormal PCA directions times the rotation
    assert np.allclose(directions.T @ directions, np.eye(12), atol=1e-10)
    losses = np.array(itq.loss_history)
    assert np.all(np.diff(losses) <= 1e-9 * losses[0]) and losses[-1] < losses[0]
    # the rotation is what ITQ adds to PCA: the PCA directions themselves are spanned
    pca = make_hasher("pca", 12).fit(x).arrays["directions"]
    assert np.allclose(np.abs(np.linalg.svd(pca.T @ directions, compute_uv=False)), 1, atol=1e-8)


@pytest.mark.parametrize("method", ["lsh", "pca", "itq", "spectral"])
def test_baselines_fit_encode_save_and_read_sparse_input(method, rng):
    import scipy.sparse as sp

    x = sp.random(200, 50, density=0.1, format="csr", random_state=0, dtype=np.float64)
    hasher = make_hasher(method, 8, seed=1).fit(x)
    codes = hasher.encode(x)
    assert codes.shape == (200, 8) and codes.dtype == bool
    assert np.array_equal(make_hasher(method, 8, seed=1).fit(x.toarray()).encode(x.toarray()), codes)
    rebuilt = hasher_from_state(*hasher.state())
    assert np.array_equal(rebuilt.encode(x), codes)
    if method != "lsh":  # balanced-ish: projections of centred data
        assert 0.15 < codes.mean() < 0.85
    with pytest.raises(aekit.AekitError, match="examples have 40 features"):
        hasher.encode(np.zeros((3, 40)))


def test_too_many_bits_for_pca_is_a_clear_error():
    with pytest.raises(aekit.AekitError, match="cannot make 20 bits from 10 examples"):
        make_hasher("itq", 20).fit(np.random.default_rng(0).random((10, 30)))


# ------------------------------------------------------------------------------------------------ #
# retrieval metrics


def test_tie_aware_metrics_are_the_mean_over_every_tie_order(rng):
    for _ in range(25):
        n = 7
        distance = rng.integers(0, 3, n)
        relevant = rng.random(n) < 0.5
        aps, precisions = [], []
        for permutation in itertools.permutations(range(n)):
            order = np.array(permutation)
            if np.any(np.diff(distance[order]) < 0):
                continue  # not a ranking by distance
            hits = relevant[order]
            positions = np.flatnonzero(hits)
            aps.append((np.cumsum(hits)[positions] / (positions + 1)).mean() if len(positions) else 0.0)
            precisions.append(hits[:3].mean())
        counts = np.bincount(distance, minlength=3)[None]
        hits = np.bincount(distance[relevant], minlength=3)[None]
        metrics = tie_group_metrics(counts, hits, k=3)
        assert metrics["average_precision"][0] == pytest.approx(np.mean(aps), abs=1e-12)
        assert metrics["precision_at_k"][0] == pytest.approx(np.mean(precisions), abs=1e-12)


def test_without_ties_average_precision_is_scikit_learns(rng):
    relevant = rng.random((5, 60)) < 0.3
    counts = np.ones((5, 60))  # every item its own group: a strict ranking
    metrics = tie_group_metrics(counts, relevant.astype(float), k=10)
    for q in range(5):
        scores = -np.arange(60)  # rank order
        assert metrics["average_precision"][q] == pytest.approx(average_precision_score(relevant[q], scores))
        assert metrics["precision_at_k"][q] == pytest.approx(relevant[q, :10].mean())


def test_hamming_retrieval_report_against_brute_force(rng):
    database = clustered_codes(300, 12, seed=7, clusters=6, flip=0.1)
    queries = clustered_codes(20, 12, seed=8, clusters=6, flip=0.1)
    database_labels, query_labels = rng.integers(0, 3, 300), rng.integers(0, 3, 20)
    report = hamming_retrieval_report(queries, database, query_labels, database_labels, k=25, radius=2, chunk=7)
    distances = brute_distances(queries, database)
    aps, p_k, p_r, r_r, empty = [], [], [], [], []
    for q in range(20):
        relevant = database_labels == query_labels[q]
        counts = np.bincount(distances[q], minlength=13)[None]
        hits = np.bincount(distances[q][relevant], minlength=13)[None]
        metrics = tie_group_metrics(counts, hits, k=25)
        aps.append(metrics["average_precision"][0])
        p_k.append(metrics["precision_at_k"][0])
        inside = distances[q] <= 2
        p_r.append(relevant[inside].mean() if inside.any() else 0.0)
        r_r.append(relevant[inside].sum() / relevant.sum())
        empty.append(not inside.any())
    assert report["map"] == pytest.approx(np.mean(aps))
    assert report["precision_at_k"] == pytest.approx(np.mean(p_k))
    assert report["precision_radius"] == pytest.approx(np.mean(p_r))
    assert report["recall_radius"] == pytest.approx(np.mean(r_r))
    assert report["empty_radius"] == pytest.approx(np.mean(empty))


def test_precision_recall_curve_over_radii_against_brute_force(rng):
    database = clustered_codes(200, 10, seed=3, clusters=5, flip=0.1)
    queries = clustered_codes(15, 10, seed=4, clusters=5, flip=0.1)
    database_labels, query_labels = rng.integers(0, 3, 200), rng.integers(0, 3, 15)
    report = hamming_retrieval_report(queries, database, query_labels, database_labels, chunk=4, curve=True)
    distances = brute_distances(queries, database)
    relevant = query_labels[:, None] == database_labels[None, :]  # (Q, N)
    for r in range(11):
        inside = distances <= r
        found = inside.sum()
        expected_precision = (inside & relevant).sum() / found if found else 0.0
        assert report["precision_curve"][r] == pytest.approx(expected_precision)
        assert report["recall_curve"][r] == pytest.approx((inside & relevant).sum() / relevant.sum())
    assert report["recall_curve"][-1] == pytest.approx(1.0)
    assert "precision_curve" not in hamming_retrieval_report(queries, database, query_labels, database_labels)


def test_codes_equal_to_the_labels_retrieve_perfectly():
    labels = np.repeat(np.arange(4), 25)
    codes = np.eye(4, dtype=bool)[labels]
    report = hamming_retrieval_report(codes[::5], codes, labels[::5], labels, k=10, radius=1)  # classes 2 apart
    assert report["map"] == pytest.approx(1.0) and report["precision_at_k"] == pytest.approx(1.0)
    assert report["precision_radius"] == pytest.approx(1.0) and report["recall_radius"] == pytest.approx(1.0)


def test_query_database_split_is_seeded_and_disjoint():
    queries, database = query_database_split(100, 10, seed=3)
    again, _ = query_database_split(100, 10, seed=3)
    assert np.array_equal(queries, again) and len(np.intersect1d(queries, database)) == 0
    assert len(queries) + len(database) == 100
    with pytest.raises(aekit.AekitError, match="100 queries from 100 examples"):
        query_database_split(100, 100)


# ------------------------------------------------------------------------------------------------ #
# the hashing family: 8 to 256 bits, MLP and conv, dense and sparse input


@pytest.mark.parametrize(
    ("n_bits", "options"),
    [(8, {"hidden": [16]}), (256, {"hidden": [16]}), (8, {"network": "conv", "channels": [4, 8]}), (256, {})],
)
def test_hashing_family_trains_and_gives_bits(n_bits, options, images):
    torch.manual_seed(0)
    model = aekit.make_model("hashing", images.shape[1:], n_bits, **options)
    aekit.Trainer(model, aekit.TrainConfig(epochs=1, batch_size=32), progress=False).fit(images)
    codes = AutoencoderHasher(model).encode(images)
    assert codes.shape == (64, n_bits) and codes.dtype == bool
    bits = model.encode(images)
    assert set(torch.unique(bits).tolist()) <= {0.0, 1.0}


def test_binary_latent_flips_bits_with_the_given_probability():
    latent = aekit.registry.build("latent", {"name": "binary", "code_size": 64, "flip_probability": 0.2})
    h = torch.full((500, 64), 30.0)  # saturated: without flips every unit would be 1
    z, _ = latent(h, generator=torch.Generator().manual_seed(0), stochastic=True)
    assert (z < 0.5).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert torch.equal(latent(h, stochastic=False)[0], torch.ones(500, 64))
    with pytest.raises(aekit.AekitError, match=r"flip_probability 0.5"):
        aekit.registry.build("latent", {"name": "binary", "code_size": 4, "flip_probability": 0.5})


def test_sparse_input_trains_and_encodes_like_its_dense_copy():
    import scipy.sparse as sp

    x = sp.random(300, 80, density=0.05, format="csr", random_state=1, dtype=np.float32)
    torch.manual_seed(0)
    sparse_model = aekit.make_model("hashing", (80,), 16, hidden=[32])
    torch.manual_seed(0)
    dense_model = aekit.make_model("hashing", (80,), 16, hidden=[32])
    config = aekit.TrainConfig(epochs=2, batch_size=50, seed=3)
    sparse_result = aekit.Trainer(sparse_model, config, progress=False).fit(x)
    dense_result = aekit.Trainer(dense_model, config, progress=False).fit(x.toarray())
    assert sparse_result.history[-1]["train"]["loss"] == pytest.approx(dense_result.history[-1]["train"]["loss"])
    assert np.array_equal(AutoencoderHasher(sparse_model).encode(x), AutoencoderHasher(dense_model).encode(x.toarray()))


def test_evaluate_hasher_reports_every_figure(rng):
    x = rng.random((300, 20))
    labels = (x[:, 0] > 0.5).astype(int)
    queries, database = query_database_split(300, 30)
    row = evaluate_hasher(make_hasher("itq", 8), x[database], labels[database], x[queries], labels[queries], k=10)
    for key in ("map", "precision_at_k", "precision_radius", "recall_radius", "fit_seconds", "encode_seconds"):
        assert key in row
    assert row["method"] == "itq" and row["bits"] == 8 and 0.5 < row["map"] <= 1


# ------------------------------------------------------------------------------------------------ #
# the hashing penalties against explicit loops


@torch.no_grad()
def _context(model, x):
    from aekit.penalties import StepContext

    h = model.encoder(x)
    z, posterior = model.latent(h, stochastic=False)
    params = model.decoder(z)
    return StepContext(x, x, h, z, posterior, params, model.likelihood.nll(params, x), model.latent.mean)


def test_bit_balance_and_neighbourhood_against_loops():
    torch.manual_seed(0)
    model = aekit.make_model("hashing", (6,), 4, hidden=[8])
    x = torch.rand(10, 6)
    ctx = _context(model, x)
    balance = aekit.registry.build("penalty", {"name": "bit_balance", "decorrelation": 0.5})
    u = 2 * torch.sigmoid(ctx.h) - 1
    expected = sum(float(u[:, j].mean()) ** 2 for j in range(4)) / 4
    expected += 0.5 * sum((float((u[:, a] * u[:, b]).mean()) - (a == b)) ** 2 for a in range(4) for b in range(4)) / 16
    assert float(balance(ctx)) == pytest.approx(expected, rel=1e-5)

    neighbourhood = aekit.registry.build("penalty", {"name": "neighbourhood", "neighbours": 2})
    total = 0.0
    for i in range(10):
        distances = [(float(((x[i] - x[j]) ** 2).sum()), j) for j in range(10) if j != i]
        for _, j in sorted(distances)[:2]:
            p = torch.sigmoid(ctx.h[j])
            log_q, log_1mq = torch.nn.functional.logsigmoid(ctx.h[i]), torch.nn.functional.logsigmoid(-ctx.h[i])
            total += float(-(p * log_q + (1 - p) * log_1mq).sum())
    assert float(neighbourhood(ctx)) == pytest.approx(total / 20, rel=1e-5)


def test_hashing_penalties_need_a_binary_latent():
    with pytest.raises(aekit.AekitError, match="the neighbourhood penalty needs a latent with a code of bits"):
        config = aekit.family_config("undercomplete", (6,), 3, hidden=[8])
        config.penalties = [{"name": "neighbourhood"}]
        aekit.Autoencoder.from_config(config)


# ------------------------------------------------------------------------------------------------ #
# the command line


@pytest.fixture(scope="module")
def hash_run(tmp_path_factory):
    """200 labelled embedded images (.npz), a 16-bit hashing run trained on them (1 epoch)."""
    from aekit.cli import main
    from aekit.data import load_dataset

    folder = tmp_path_factory.mktemp("hash")
    data = load_dataset("embedded", split="test")
    np.savez(folder / "x.npz", x=(data.x[:200] * 255).astype(np.uint8), y=data.labels[:200])
    code = main(
        [
            *("train", "--family", "hashing", "--data", str(folder / "x.npz"), "--code-size", "16", "--hidden", "32"),
            *("--epochs", "1", "--batch-size", "64", "--out", str(folder / "run"), "--no-progress"),
        ]
    )
    assert code == 0
    return folder


def run_cli(capsys, *argv):
    from .test_cli import run

    return run(capsys, *argv)


def test_cli_build_query_evaluate(hash_run, capsys):
    index_file = hash_run / "index.npz"
    code, out, _ = run_cli(
        capsys, "hash", "build", "--model", hash_run / "run", "--data", hash_run / "x.npz", "--out", index_file
    )
    assert code == 0 and "200 items, 16-bit codes (autoencoder)" in out
    index, extra, _ = load_index(index_file)
    assert len(index) == 200 and np.array_equal(np.sort(extra["label_ids"]), np.arange(200))

    code, out, _ = run_cli(capsys, "hash", "query", index_file, "--id", 5, "--radius", 1)
    ids, distances = index.radius_search(index.codes_of([5])[0], 1)
    lines = [line.split() for line in out.splitlines()[2:]]
    assert code == 0 and [int(line[0]) for line in lines] == ids.tolist()
    assert [int(line[1]) for line in lines] == distances.tolist()

    np.save(hash_run / "new.npy", (np.load(hash_run / "x.npz")["x"][:2]))
    code, out, _ = run_cli(capsys, "hash", "query", index_file, "--data", hash_run / "new.npy", "-k", 3)
    assert code == 0 and out.count("3 nearest") == 2

    code, out, _ = run_cli(
        capsys, "hash", "evaluate", "--data", hash_run / "x.npz", "--model", hash_run / "run",
        "--methods", "itq,lsh", "--bits", "8", "--queries", 20, "--json", hash_run / "table.json",
    )  # fmt: skip
    assert code == 0 and "autoencoder" in out and "itq" in out
    table = __import__("json").loads((hash_run / "table.json").read_text())
    assert [row["method"] for row in table["rows"]] == ["autoencoder", "itq", "lsh"]
    assert table["queries"] == 20 and table["database"] == 180


def test_cli_baseline_index_encodes_new_inputs(hash_run, capsys):
    index_file = hash_run / "itq.npz"
    code, _, _ = run_cli(
        capsys, "hash", "build", "--method", "itq", "--bits", 24, "--data", hash_run / "x.npz", "--out", index_file
    )
    assert code == 0
    np.save(hash_run / "one.npy", np.load(hash_run / "x.npz")["x"][7:8])
    code, out, _ = run_cli(capsys, "hash", "query", index_file, "--data", hash_run / "one.npy", "-k", 1)
    assert code == 0 and out.splitlines()[2].split()[:2] == ["7", "0"]  # the item itself, distance 0


def test_cli_bad_inputs_exit_2_with_one_line(hash_run, capsys):
    index_file = hash_run / "bad-inputs.npz"
    run_cli(capsys, "hash", "build", "--method", "lsh", "--bits", 8, "--data", hash_run / "x.npz", "--out", index_file)
    cases = [
        (("hash", "query", index_file, "--id", 0, "--radius", 9), "radius 9 is outside 0..8"),
        (("hash", "query", index_file, "--id", 999), "id 999 is not in the index"),
        (("hash", "query", hash_run / "missing.npz", "--id", 0), "does not exist"),
        (("hash", "build", "--method", "lsh", "--data", hash_run / "x.npz", "--out", index_file), "already exists"),
        (("hash", "evaluate", "--data", hash_run / "x.npz", "--methods", "none"), "nothing to evaluate"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
    vae = aekit.make_model("vae", (1, 28, 28), 4, hidden=[8])
    aekit.save_model(vae, hash_run / "vae")
    code, _, err = run_cli(
        capsys, "hash", "build", "--model", hash_run / "vae", "--data", hash_run / "x.npz", "--out", hash_run / "v.npz"
    )
    assert code == 2 and "not binary" in err


def test_multinomial_likelihood_against_torch_distributions():
    torch.manual_seed(0)
    likelihood = aekit.registry.build("likelihood", {"name": "multinomial", "draws": 30})
    logits = torch.randn(4, 7)
    counts = torch.distributions.Multinomial(12, logits=logits).sample()
    reference = torch.distributions.Multinomial(12, logits=logits).log_prob(counts)
    coefficient = torch.lgamma(torch.tensor(13.0)) - torch.lgamma(counts + 1).sum(1)
    assert torch.allclose(likelihood.nll(logits, counts), -(reference - coefficient), atol=1e-5)
    assert torch.allclose(likelihood.mean(logits).sum(1), torch.ones(4))
    assert torch.equal(likelihood.sample(logits).sum(1), torch.full((4,), 30.0))
