"""The faults found by trying every README command and about 100 bad inputs, one test each:
resume that a user can trust, nothing overwritten by surprise, inputs checked where they enter,
and a one-line error (exit 2) for every bad input."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import aekit
from aekit.callbacks import CHECKPOINT_FILE, read_checkpoint_meta

from .test_cli import run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def images(tmp_path):
    """200 seeded 8-bit 1x8x8 images in a .npy file."""
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (200, 1, 8, 8), dtype=np.uint8))
    return path


def train(capsys, images, out, *more):
    argv = ["train", "--data", images, "--hidden", "16", "--code-size", "4", "--out", out, "--no-progress", *more]
    return run(capsys, *argv)


def one_line_error(code, err, *fragments):
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


# ------------------------------------------------------------------------------------------------ #
# resume


def test_the_readme_sequence_train_then_resume_to_more_epochs(images, tmp_path, capsys):
    run_dir = tmp_path / "vae"
    assert train(capsys, images, run_dir, "--family", "vae", "--epochs", "2")[0] == 0
    code, _, err = run(capsys, "train", "--resume", "--out", run_dir, "--epochs", "4", "--no-progress")
    assert code == 0, err
    record = json.loads((run_dir / "train.json").read_text())
    assert record["train"]["epochs"] == 4 and record["result"]["epochs_run"] == 4
    assert len(json.loads((run_dir / "history.json").read_text())) == 4
    assert read_checkpoint_meta(run_dir / CHECKPOINT_FILE)["epoch"] == 4


def test_resume_to_fewer_epochs_than_done_is_refused_and_the_record_stays_true(images, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(capsys, images, run_dir, "--epochs", "3")
    before = (run_dir / "train.json").read_bytes()
    code, _, err = run(capsys, "train", "--resume", "--out", run_dir, "--epochs", "2")
    one_line_error(code, err, "--epochs 2 would end before", "has trained 3 epochs")
    code, _, err = run(capsys, "train", "--resume", "--out", run_dir, "--no-progress")
    one_line_error(code, err, "is complete", "give --epochs above 3")
    assert (run_dir / "train.json").read_bytes() == before


def test_resume_refuses_options_that_contradict_the_run_and_lists_them(images, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(capsys, images, run_dir, "--epochs", "2")
    other = tmp_path / "other.npy"
    np.save(other, np.zeros((10, 1, 8, 8), np.uint8))
    argv = ["train", "--resume", "--out", run_dir, "--epochs", "3", "--family", "vae", "--data", other, "--lr", "0.1"]
    code, _, err = run(capsys, *argv)
    one_line_error(code, err, "--family vae (the run: undercomplete)", "--lr 0.1 (the run: 0.001)", "--data")
    code, _, err = run(capsys, "train", "--resume", "--out", run_dir, "--epochs", "3", "--hidden", "8")
    one_line_error(code, err, "--hidden 8 (the run: 16)")
    # the same values, and what may change, are fine
    argv = ["train", "--resume", "--out", run_dir, "--epochs", "3", "--hidden", "16", "--log-every", "5"]
    assert run(capsys, *argv, "--no-progress")[0] == 0


def test_a_run_killed_before_its_first_checkpoint_starts_again_from_its_record(images, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(capsys, images, run_dir, "--epochs", "2")
    (run_dir / CHECKPOINT_FILE).unlink()  # as if killed during the first epoch
    code, out, err = run(capsys, "train", "--resume", "--out", run_dir, "--no-progress")
    assert code == 0 and "has no checkpoint" in out and "training it from the start" in out, err
    assert json.loads((run_dir / "train.json").read_text())["result"]["epochs_run"] == 2
    code, _, err = train(capsys, images, run_dir, "--epochs", "2")  # without --resume: say what to do
    one_line_error(code, err, "holds a run already", "--resume", "--force")


def test_temporary_files_of_an_interrupted_write_are_removed_at_the_next_start(images, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(capsys, images, run_dir, "--epochs", "1")
    stale = run_dir / ".model.safetensors.abc123.tmp"
    stale.write_bytes(b"half")
    code, out, _ = run(capsys, "train", "--resume", "--out", run_dir, "--epochs", "2", "--no-progress")
    assert code == 0 and not stale.exists() and "left by an interrupted write" in out


def test_every_run_folder_is_resumable_with_its_optimiser_state(images, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(capsys, images, run_dir, "--epochs", "1", "--checkpoint-every", "0")
    tensors, meta = aekit.io.read_safetensors(run_dir / CHECKPOINT_FILE)
    assert any(key.startswith("optimizer.") for key in tensors) and meta["epoch"] == 1


# ------------------------------------------------------------------------------------------------ #
# nothing overwritten by surprise


def test_no_command_writes_onto_its_input_or_replaces_a_file_without_force(images, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(capsys, images, run_dir, "--epochs", "1")
    before = images.read_bytes()
    one_line_error(*run(capsys, "encode", run_dir, "--data", images, "--out", images)[::2], "is also an input")
    one_line_error(*run(capsys, "encode", run_dir, "--data", images, "--out", images, "--force")[::2], "also an input")
    assert images.read_bytes() == before
    for argv in (
        ["encode", run_dir, "--data", images, "--out", tmp_path / "codes.npy"],
        ["reconstruct", run_dir, "--data", images, "--out", tmp_path / "r.png"],
        ["evaluate", run_dir, "--data", images, "--json", tmp_path / "e.json"],
    ):
        assert run(capsys, *argv)[0] == 0
        written = Path(argv[-1])
        first = written.read_bytes()
        code, _, err = run(capsys, *argv)
        one_line_error(code, err, "already exists", "--force")
        assert written.read_bytes() == first
        assert run(capsys, *argv, "--force")[0] == 0


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_are_written_with_the_process_umask(images, tmp_path, capsys, umask):
    previous = os.umask(umask)
    try:
        train(capsys, images, tmp_path / "run", "--epochs", "1")
    finally:
        os.umask(previous)
    for path in (tmp_path / "run").iterdir():
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path.name


def test_rerunning_the_demo_does_not_suggest_resume(tmp_path, capsys):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "metrics.json").write_text("{}")
    code, _, err = run(capsys, "demo", "--out", tmp_path / "demo", "--epochs", "1", "--no-progress")
    one_line_error(code, err, "already holds files", "--force")
    assert "--resume" not in err


# ------------------------------------------------------------------------------------------------ #
# inputs checked where they enter


@pytest.mark.parametrize(
    "options, fragments",
    [
        (["--epochs", "0"], ["--epochs: 0 is not allowed"]),
        (["--hidden", "0"], ["--hidden: 0 is not allowed"]),
        (["--hidden", "-5"], ["--hidden: -5 is not allowed"]),
        (["--code-size", "0"], ["--code-size: 0 is not allowed"]),
        (["--batch-size", "-1"], ["--batch-size: -1 is not allowed"]),
        (["--val-fraction", "1"], ["--val-fraction: 1 is not allowed", "< 1"]),
        (["-o", "foo=1"], ["no option foo", "its options are code_activation"]),
        (["--family", "denoising", "-o", "level=abc"], ["level='abc' is not a number"]),
        (["--family", "vae", "--likelihood", "bernoulli", "--scale", "none"], ["outside"]),
    ],
)
def test_bad_training_inputs_are_one_line_errors(images, tmp_path, capsys, options, fragments):
    if fragments == ["outside"]:
        np.save(images, np.random.default_rng(0).normal(size=(50, 1, 8, 8)).astype(np.float32))
        fragments = ["has values in", "bernoulli likelihood scores data in [0, 1]"]
    code, _, err = train(capsys, images, tmp_path / "run", *options)
    one_line_error(code, err, *fragments)
    assert not (tmp_path / "run").exists()  # a refused run leaves nothing behind


def test_complex_data_are_refused(tmp_path, capsys):
    np.save(tmp_path / "z.npy", np.ones((20, 4), np.complex64))
    code, _, err = train(capsys, tmp_path / "z.npy", tmp_path / "run")
    one_line_error(code, err, "complex numbers", "imaginary parts")
    with pytest.raises(aekit.AekitError, match="complex"):
        aekit.Trainer(aekit.make_model("undercomplete", (4,), 2)).fit(np.ones((20, 4), np.complex64))


def test_what_scale_auto_did_is_printed_and_recorded(images, tmp_path, capsys):
    code, out, _ = train(capsys, images, tmp_path / "run", "--epochs", "1")
    assert code == 0 and "data values: uint8 divided by 255 (scale auto)" in out
    assert json.loads((tmp_path / "run" / "train.json").read_text())["scaling"] == "uint8 divided by 255 (scale auto)"


def test_a_damaged_weights_file_is_named(images, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(capsys, images, run_dir, "--epochs", "1")
    weights = run_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1000:] = os.urandom(1000)  # inside the tensors: the header stays readable
    weights.write_bytes(bytes(data))
    code, _, err = run(capsys, "evaluate", run_dir, "--data", images)
    one_line_error(code, err, f"weights file {weights} is damaged", "SHA-256")
    with pytest.raises(aekit.AekitError, match="is damaged"):
        aekit.load_model(run_dir)


def test_hash_queries_check_k_and_the_index_file(images, tmp_path, capsys):
    index = tmp_path / "index.npz"
    assert run(capsys, "hash", "build", "--method", "lsh", "--bits", "8", "--data", images, "--out", index)[0] == 0
    one_line_error(*run(capsys, "hash", "query", index, "--id", "1", "-k", "0")[::2], "-k/--nearest: 0 is not allowed")
    codes = tmp_path / "codes.npy"
    np.save(codes, np.ones((5, 8), np.float32))
    one_line_error(*run(capsys, "hash", "query", codes, "--id", "1")[::2], "not an aekit file")


def test_the_readme_test_command_prints_the_pytest_summary_line():
    """-q twice (README and addopts) hides pytest's summary line; once keeps it."""
    found = re.search(r'^addopts = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    addopts = found.group(1) if found else ""
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "python -m pytest" in line)
    assert (command.count(" -q") + addopts.count("-q")) <= 1
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()


def test_evaluating_data_outside_the_likelihood_domain_is_refused(tmp_path, capsys):
    aekit.save_model(aekit.make_model("vae", (6,), 2, hidden=[4], likelihood="bernoulli"), tmp_path / "run")
    np.save(tmp_path / "x.npy", np.full((10, 6), 3.0, np.float32))
    code, _, err = run(capsys, "evaluate", tmp_path / "run", "--data", tmp_path / "x.npy", "--scale", "none")
    one_line_error(code, err, "the data has values in [3, 3]", "bernoulli likelihood scores data in [0, 1]")
