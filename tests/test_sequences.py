"""Sequence models: parts, the likelihood, learning through the one loop, save/load, the CLI, DDP."""

import json
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from aekit.cli import main
from aekit.config import TrainConfig
from aekit.errors import AekitError
from aekit.text.batches import TokenSource, make_batch
from aekit.text.decoding import greedy
from aekit.text.families import SequenceConfig, build_sequence_model
from aekit.text.models import SequenceStep, TokenCorruption, token_nll
from aekit.text.pipeline import Translator, load_sequence_model, save_sequence_model, train_sequence_model
from aekit.text.tokenizer import BOS, EOS, PAD, UNK, SubwordTokenizer
from aekit.train import evaluate, fit

WORDS = [
    "the",
    "a",
    "dog",
    "cat",
    "man",
    "woman",
    "runs",
    "sits",
    "on",
    "in",
    "red",
    "blue",
    "big",
    "small",
    "park",
    "street",
]


def sentences(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 7))) for _ in range(count)]


def tiny(family="seq2seq", **options) -> SequenceConfig:
    defaults = dict(
        embedding_size=32,
        feedforward=64,
        layers=1,
        heads=2,
        gru_hidden=32,
        vocab_size=64,
        batch_tokens=256,
        dropout=0.0,
        label_smoothing=0.0,
    )
    return SequenceConfig(family=family, **{**defaults, **options})


ARCHITECTURES = [
    ("seq2seq", "transformer", "attention"),
    ("seq2seq", "transformer", "fixed"),
    ("seq2seq", "gru", "attention"),
    ("seq2seq", "gru", "fixed"),
    ("sequence", "gru", "auto"),
    ("sequence-denoising", "transformer", "auto"),
    ("sequence-vae", "gru", "auto"),
]


@pytest.fixture(scope="module")
def tokenizer():
    return SubwordTokenizer.train(sentences(200), vocab_size=64)


def batch_of(tokenizer, source, target):
    return make_batch(tokenizer.encode(source), tokenizer.encode(target))


def test_token_nll_matches_torch_distributions_categorical():
    logits = torch.randn(2, 5, 11, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[4, 5, 6, EOS, PAD], [7, 8, EOS, PAD, PAD]])
    ours = token_nll(logits, labels)
    reference = -torch.distributions.Categorical(logits=logits).log_prob(labels)
    real = labels != PAD
    torch.testing.assert_close(ours[real], reference[real])
    assert torch.all(ours[~real] == 0)
    # label smoothing e: (1 - e) NLL + e * mean over the vocabulary of -log p
    smoothed = token_nll(logits, labels, 0.1)
    uniform = -torch.log_softmax(logits, -1).mean(-1)
    torch.testing.assert_close(smoothed[real], (0.9 * reference + 0.1 * uniform)[real])


@pytest.mark.parametrize(("family", "architecture", "code"), ARCHITECTURES)
def test_every_architecture_trains_through_the_loop_and_decodes(family, architecture, code, tokenizer):
    config = tiny(family, architecture=architecture, code=code)
    torch.manual_seed(0)
    model = build_sequence_model(config, tokenizer.vocab_size, tokenizer.fingerprint)
    ids = tokenizer.encode(sentences(60))
    source = TokenSource(ids, ids, batch_tokens=256)
    before = evaluate(SequenceStep(model), source)
    after = fit(SequenceStep(model), source, TrainConfig(epochs=3, lr=3e-3), source, progress=False)
    assert after.history[-1]["val"]["nll"] < before["nll"] - 0.3
    model.eval()
    batch = make_batch(ids[:4], ids[:4])
    out = greedy(model, batch.source, batch.source_mask, max_len=12)
    assert out.shape[0] == 4 and out.shape[1] <= 12
    assert not bool(((out == BOS) | (out > tokenizer.vocab_size)).any())
    codes = model.encode(batch.source, batch.source_mask)
    assert codes.shape == (4, model.code_size)


def test_a_fixed_code_is_all_the_decoder_sees(tokenizer):
    torch.manual_seed(0)
    model = build_sequence_model(tiny(code="fixed", code_size=8), tokenizer.vocab_size).eval()
    a = batch_of(tokenizer, ["the dog runs"], ["a cat sits"])
    b = batch_of(tokenizer, ["a red man sits in the park"], ["a cat sits"])
    memory_b, _ = model.memory(b.source, b.source_mask, sample=False)
    state = model.start_from_code(memory_b.code)
    # decoding from b's code alone gives exactly what decoding b gives
    torch.testing.assert_close(
        model.step(state, b.target_input[:, :1])[0],
        model.step(model.start(b.source, b.source_mask), b.target_input[:, :1])[0],
    )
    assert memory_b.code.shape == (1, 8) and memory_b.states is None
    assert a.source.shape != b.source.shape


def test_the_vae_reports_kl_and_warms_it_up(tokenizer):
    torch.manual_seed(0)
    model = build_sequence_model(tiny("sequence-vae", architecture="gru", free_bits=0.0), tokenizer.vocab_size)
    step = SequenceStep(model, penalty_warmup=True)
    batch = batch_of(tokenizer, sentences(8), sentences(8))
    generator = torch.Generator().manual_seed(0)
    step.penalty_scale.fill_(0.0)
    out = step(batch, generator)
    assert out.terms["kl"] > 0
    torch.testing.assert_close(out.total, out.terms["nll"])  # no KL at the start of the warm-up
    step.penalty_scale.fill_(1.0)
    out = step(batch, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.total, out.terms["nll"] + out.terms["kl"])


def test_free_bits_charge_each_code_unit_at_least_its_floor(tokenizer):
    torch.manual_seed(0)
    config = tiny("sequence-vae", architecture="gru", free_bits=50.0, code_size=4)
    model = build_sequence_model(config, tokenizer.vocab_size)
    batch = batch_of(tokenizer, sentences(8), sentences(8))
    out = SequenceStep(model)(batch, torch.Generator().manual_seed(0))
    tokens = (batch.target_output != 0).sum()
    assert out.terms["kl"] * tokens < 4 * 50.0 * 8  # the true KL is far below the floor ...
    torch.testing.assert_close(out.total, out.terms["nll"] + 4 * 50.0 * 8 / tokens)  # ... which is charged
    with pytest.raises(AekitError, match="free_bits"):
        build_sequence_model(tiny("sequence", free_bits=0.5), tokenizer.vocab_size)


def test_importance_weights_average_to_the_elbo_and_bound_it(tokenizer):
    from aekit.text.pipeline import importance_sampled_nll

    torch.manual_seed(0)
    model = build_sequence_model(tiny("sequence-vae", architecture="gru"), tokenizer.vocab_size).eval()
    texts = sentences(6, seed=3)
    batch = batch_of(tokenizer, texts, texts)
    weights = model.log_importance_weights(batch, 2000, torch.Generator().manual_seed(0))  # (S, B)
    # ELBO = E_q[log p(x|z)] - KL(q || p) (analytic KL in the loss): the mean weight estimates it
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        losses = [model.loss(batch, generator) for _ in range(200)]  # z sampled, nats per token
    elbo = -torch.stack([out.terms["nll"] + out.terms["kl"] for out in losses]).mean() * batch.weight
    assert float(weights.mean(0).sum()) == pytest.approx(float(elbo), rel=0.02)
    # log of the mean weight >= mean log weight (Jensen): the IS estimate bounds -ELBO from below
    report = importance_sampled_nll(Translator(model, tokenizer), texts, samples=50)
    assert report["is_nll_per_sentence"] <= -float(weights.mean(0).mean()) + 1e-3
    assert report["kl_per_sentence"] > 0 and 0 <= report["active_units"] <= model.code_size


def test_sequence_autoencoder_features_initialise_a_classifier(tokenizer):
    from aekit.text.models import SentenceClassifier
    from aekit.train import fine_tune

    texts = sentences(300, seed=11)
    labels = np.array([int("dog" in t.split()) for t in texts])
    model, tokenizer, _ = train_sequence_model(
        tiny("sequence", architecture="gru", code_size=16), TrainConfig(epochs=4, lr=5e-3), texts, progress=False
    )
    ids = Translator(model, tokenizer).token_ids(texts)
    assert ids.dtype == np.int64 and ids.shape[0] == 300
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    frozen = SentenceClassifier(model, classes=2, freeze=True)
    fine_tune(frozen, ids[:240], labels[:240], TrainConfig(epochs=1, lr=1e-2), ids[240:], labels[240:])
    for key, value in frozen.encoder.state_dict().items():  # frozen: the features stay as trained
        assert torch.equal(value, before[key])
    classifier = SentenceClassifier(model, classes=2)  # fine-tuned from the autoencoder's encoder
    result = fine_tune(
        classifier, ids[:240], labels[:240], TrainConfig(epochs=15, lr=3e-3, batch_size=16), ids[240:], labels[240:]
    )
    majority = min(labels[240:].mean(), 1 - labels[240:].mean())
    assert result.best_val["error"] < 0.5 * majority
    changed = any(not torch.equal(v, before[k]) for k, v in classifier.encoder.state_dict().items())
    kept = all(torch.equal(v, before[k]) for k, v in model.encoder.state_dict().items())
    assert changed and kept  # fine-tuning changes the classifier's copy, not the autoencoder


def test_token_corruption_keeps_sentences_well_formed():
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, EOS], [11, 12, EOS, PAD, PAD, PAD, PAD]])
    corruption = TokenCorruption(drop=0.3, mask=0.3, shuffle=2)
    for seed in range(20):
        out = corruption(ids, torch.Generator().manual_seed(seed))
        for row, original in zip(out, ids, strict=True):
            tokens = row[row != PAD].tolist()
            assert tokens[-1] == EOS and tokens.count(EOS) == 1 and len(tokens) >= 2
            kept = [t for t in tokens[:-1] if t != UNK]
            assert set(kept) <= set(original.tolist())
            assert (row != PAD).tolist() == sorted((row != PAD).tolist(), reverse=True)  # padding at the end
    shuffle_only = TokenCorruption(drop=0.0, mask=0.0, shuffle=1)
    out = shuffle_only(ids, torch.Generator().manual_seed(3))
    for position, token in enumerate(out[0, :-1].tolist()):
        assert abs(ids[0].tolist().index(token) - position) <= 1  # moved at most one place
    again = corruption(ids, torch.Generator().manual_seed(5))
    assert torch.equal(again, corruption(ids, torch.Generator().manual_seed(5)))


def test_a_small_translator_learns_a_word_mapping(tmp_path):
    # target = the source's words mapped one to one and reversed: attention must learn alignment
    mapping = {w: w.upper() for w in WORDS}
    source = sentences(400, seed=1)
    target = [" ".join(mapping[w] for w in reversed(s.split())) for s in source]
    config = tiny(architecture="gru", vocab_size=80, batch_tokens=512)
    model, tokenizer, _ = train_sequence_model(
        config, TrainConfig(epochs=40, lr=5e-3, seed=0), source, target, progress=False
    )
    translator = Translator(model, tokenizer, beam=2)
    test = sentences(20, seed=2)
    expected = [" ".join(mapping[w] for w in reversed(s.split())) for s in test]
    correct = sum(out == ref for out, ref in zip(translator(test), expected, strict=True))
    assert correct >= 14, translator(test)[:3]
    # saved and loaded (fp16 storage), it translates the same
    save_sequence_model(model, tokenizer, tmp_path / "m", dtype=torch.float16)
    loaded = Translator.load(tmp_path / "m", beam=2)
    assert sum(a == b for a, b in zip(loaded(test), translator(test), strict=True)) >= 18


def test_save_load_round_trip_and_refusals(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = build_sequence_model(tiny(), tokenizer.vocab_size, tokenizer.fingerprint).eval()
    save_sequence_model(model, tokenizer, tmp_path / "m")
    loaded, loaded_tokenizer, _ = load_sequence_model(tmp_path / "m")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    assert loaded_tokenizer.fingerprint == tokenizer.fingerprint
    other = SubwordTokenizer.train([*sentences(100, seed=9), "zebra xylophone"], vocab_size=70)
    other.save(tmp_path / "other.json")
    with pytest.raises(AekitError, match="does not belong to the model"):
        load_sequence_model(tmp_path / "m", tokenizer=tmp_path / "other.json")
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100:] = bytes(100)
    weights.write_bytes(bytes(data))
    with pytest.raises(AekitError, match="damaged"):
        load_sequence_model(tmp_path / "m")
    with pytest.raises(AekitError, match="neither a run directory nor a shipped"):
        load_sequence_model(tmp_path / "missing")


def test_translator_input_errors(tokenizer):
    model = build_sequence_model(tiny(max_tokens=5), tokenizer.vocab_size, tokenizer.fingerprint)
    translator = Translator(model, tokenizer, beam=1)
    with pytest.raises(AekitError, match="sentence 2 is empty"):
        translator(["the dog", " "])
    with pytest.raises(AekitError, match=r"limit|longer|max"):
        translator(["the dog runs in the big red park on the street"])
    cut = Translator(model, tokenizer, beam=1, truncate=True)
    assert len(cut(["the dog runs in the big red park on the street"])) == 1
    assert cut.last_truncated == 1
    with pytest.raises(AekitError, match="list of sentences"):
        translator("the dog")


# ------------------------------------------------------------------------------------------------ #
# the CLI end to end on a corpus made here


@pytest.fixture
def corpus(tmp_path):
    source = sentences(120, seed=4)
    target = [s.upper() for s in source]
    (tmp_path / "train.src").write_text("".join(s + "\n" for s in source), encoding="utf-8")
    (tmp_path / "train.tgt").write_text("".join(s + "\n" for s in target), encoding="utf-8")
    return tmp_path


SMALL = [
    "--embedding-size",
    "16",
    "--feedforward",
    "32",
    "--layers",
    "1",
    "--heads",
    "2",
    "--vocab-size",
    "60",
    "--batch-tokens",
    "256",
    "--no-progress",
]


def test_cli_train_translate_evaluate_resume(corpus, capsys, monkeypatch):
    run = corpus / "run"
    argv = [
        "train",
        "--family",
        "seq2seq",
        "--data",
        str(corpus / "train.src"),
        "--target-data",
        str(corpus / "train.tgt"),
        "--epochs",
        "2",
        "--out",
        str(run),
        *SMALL,
    ]
    assert main(argv) == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train.json", "checkpoint.safetensors"):
        assert (run / name).is_file()
    record = json.loads((run / "train.json").read_text())
    assert record["sequence"]["family"] == "seq2seq" and record["result"]["epochs_run"] == 2
    assert main(["train", "--resume", "--out", str(run), "--epochs", "3", "--no-progress"]) == 0
    assert json.loads((run / "train.json").read_text())["result"]["epochs_run"] == 3
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--epochs", "4", "--vocab-size", "99"]) == 2
    assert "--vocab-size 99 (the run: 60)" in capsys.readouterr().err
    # translate from a file to --out, then from standard input
    out = corpus / "out.txt"
    assert (
        main(["translate", str(run), str(corpus / "train.src"), "--out", str(out), "--beam", "2", "--no-progress"]) == 0
    )
    assert len(out.read_text(encoding="utf-8").splitlines()) == 120
    assert main(["translate", str(run), str(corpus / "train.src"), "--out", str(out)]) == 2  # not overwritten
    capsys.readouterr()
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"the dog runs\na cat\n")))
    assert main(["translate", str(run)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert (
        main(
            [
                "evaluate",
                str(run),
                "--data",
                str(corpus / "train.src"),
                "--target-data",
                str(corpus / "train.tgt"),
                "--beam",
                "1",
                "--json",
                str(corpus / "m.json"),
            ]
        )
        == 0
    )
    report = json.loads((corpus / "m.json").read_text())
    assert {"bleu", "chrf", "nats_per_token", "perplexity"} <= set(report)
    assert report["perplexity"] == pytest.approx(np.exp(report["nats_per_token"]), rel=1e-6)


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        (
            lambda d: (d / "a.txt").write_text("one\ntwo\n") and (d / "b.txt").write_text("one\n"),
            ["train", "--family", "seq2seq", "--data", "{d}/a.txt", "--target-data", "{d}/b.txt"],
            "line 2",
        ),
        (
            lambda d: (d / "a.txt").write_bytes(b"fine\nok\n\xff\xfe bad\n"),
            ["train", "--family", "sequence", "--data", "{d}/a.txt"],
            "line 3",
        ),
        (
            lambda d: (d / "a.txt").write_text("one\n\nthree\n"),
            ["train", "--family", "sequence", "--data", "{d}/a.txt"],
            "line 2",
        ),
        (
            lambda d: (d / "a.txt").write_text("one\ntwo\n"),
            ["train", "--family", "seq2seq", "--data", "{d}/a.txt"],
            "--target-data",
        ),
        (lambda d: None, ["translate", "{d}/nothing"], "neither a run directory"),
        (
            lambda d: (d / "a.txt").write_text("one\ntwo\n"),
            ["train", "--family", "sequence-vae", "--data", "{d}/a.txt", "-o", "architecture=gru"],
            "--architecture",
        ),
    ],
)
def test_cli_bad_text_input_is_one_line_and_exit_2(tmp_path, capsys, setup, argv, message):
    setup(tmp_path)
    argv = [a.format(d=tmp_path) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run"), *SMALL]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_cli_sentence_vae_interpolates_and_encodes(corpus, capsys):
    run = corpus / "svae"
    assert (
        main(
            [
                "train",
                "--family",
                "sequence-vae",
                "--architecture",
                "gru",
                "--gru-hidden",
                "16",
                "--data",
                str(corpus / "train.src"),
                "--epochs",
                "1",
                "--out",
                str(run),
                *SMALL,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "interpolate",
                str(run),
                "--sentences",
                "the dog runs",
                "a cat sits",
                "--steps",
                "4",
                "--out",
                str(corpus / "path.txt"),
            ]
        )
        == 0
    )
    assert len((corpus / "path.txt").read_text(encoding="utf-8").splitlines()) == 4
    capsys.readouterr()
    report = corpus / "svae.json"
    assert main(["evaluate", str(run), "--data", str(corpus / "train.src"), "--importance-samples", "5",
                 "--json", str(report)]) == 0  # fmt: skip
    measured = json.loads(report.read_text())
    assert measured["importance_samples"] == 5 and 0 <= measured["active_units"] <= 32
    assert measured["kl_per_sentence"] >= 0 and measured["is_nll_per_token"] > 0
    assert "KL(q(z|x) || p(z))" in capsys.readouterr().out
    assert main(["encode", str(run), "--data", str(corpus / "train.src"), "--out", str(corpus / "codes.npy")]) == 0
    assert np.load(corpus / "codes.npy").shape == (120, 32)
    index = corpus / "index.npz"  # semantic hashing of the sentence codes
    assert main(["hash", "build", "--method", "itq", "--bits", "8", "--data", str(corpus / "codes.npy"),
                 "--out", str(index)]) == 0  # fmt: skip
    assert main(["hash", "query", str(index), "--id", "0", "-k", "3"]) == 0


# ------------------------------------------------------------------------------------------------ #
# data-parallel: 2 gloo processes match one process with the same global batch


def _ddp_data():
    source = sentences(48, seed=7)
    tokenizer = SubwordTokenizer.train(source, vocab_size=64)
    ids = tokenizer.encode(source)
    return tokenizer, TokenSource(ids, ids, batch_tokens=128)


def _ddp_model(tokenizer):
    torch.manual_seed(0)
    # GRUs: every parameter has a gradient (attention's key biases have none, and Adam would turn
    # their rounding noise into differences between the runs)
    return build_sequence_model(tiny("sequence", architecture="gru", code_size=8), tokenizer.vocab_size)


DDP_CONFIG = {"epochs": 2, "lr": 3e-3, "seed": 1, "device": "cpu"}


def _ddp_worker(rank: int, world: int, folder: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world)
    try:
        tokenizer, source = _ddp_data()
        model = _ddp_model(tokenizer)
        fit(SequenceStep(model), source, TrainConfig(**DDP_CONFIG), progress=False)
        if rank == 0:
            torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{folder}/rank0.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_seq2seq_over_two_gloo_processes_matches_one_process(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    state = torch.load(tmp_path / "rank0.pt")
    tokenizer, source = _ddp_data()
    single = _ddp_model(tokenizer)
    fit(SequenceStep(single), source, TrainConfig(**DDP_CONFIG), progress=False)
    for key, value in single.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ #
# the shipped translator


def test_shipped_german_english_translator_works_offline(capsys, monkeypatch):
    import io

    from aekit.text.pipeline import shipped_dir

    folder = shipped_dir("translate-de-en")
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size <= 16 * 2**20, f"the shipped model and tokenizer take {size / 2**20:.1f} MB"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("Ein Hund rennt über die Wiese.\n".encode())))
    assert main(["translate", "translate-de-en"]) == 0
    english = capsys.readouterr().out.strip().lower()
    assert "dog" in english and "ein" not in english.split()
