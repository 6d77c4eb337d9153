"""The aekit command line end to end on the embedded data, and every bad input of the core issue."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from aekit.cli import main


def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``aekit ARGV``, usage errors included (argparse exits)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """A .npy of 300 embedded Fashion-MNIST images, and a trained run on it (2 epochs)."""
    from aekit.data import load_dataset

    folder = tmp_path_factory.mktemp("cli")
    images = (load_dataset("embedded", split="test").x[:300] * 255).astype(np.uint8)
    np.save(folder / "x.npy", images)
    code = main(
        [
            "train",
            "--family",
            "vae",
            "--data",
            str(folder / "x.npy"),
            "--code-size",
            "4",
            "--hidden",
            "32",
            "--epochs",
            "2",
            "--checkpoint-every",
            "1",
            "--out",
            str(folder / "run"),
            "--no-progress",
        ]
    )
    assert code == 0
    return folder


def test_demo_writes_metrics_curve_and_grid(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--epochs", "1", "--out", tmp_path / "demo", "--no-progress")
    assert code == 0
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["test"]["squared_error"] > 0 and metrics["pca"]["squared_error"] > 0
    for name in ("loss_curve.png", "reconstructions.png", "model.safetensors", "config.json"):
        assert (tmp_path / "demo" / name).stat().st_size > 0
        assert name in out or name == "config.json"


def test_train_run_folder_and_commands_on_it(small_data, tmp_path, capsys):
    run_dir = small_data / "run"
    for name in (
        "config.json",
        "model.safetensors",
        "train.json",
        "history.json",
        "metrics.json",
        "loss_curve.png",
        "reconstructions.png",
        "checkpoint.safetensors",
    ):
        assert (run_dir / name).is_file(), name
    code, out, _ = run(capsys, "evaluate", run_dir, "--data", small_data / "x.npy", "--json", tmp_path / "m.json")
    assert code == 0 and "elbo" in out and "squared_error" in out
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["elbo"] < 0 < report["squared_error"]
    code, out, _ = run(capsys, "encode", run_dir, "--data", small_data / "x.npy", "--out", tmp_path / "codes.npy")
    assert code == 0 and np.load(tmp_path / "codes.npy").shape == (300, 4)
    code, out, _ = run(
        capsys, "reconstruct", run_dir, "--data", small_data / "x.npy", "--out", tmp_path / "r.png", "-n", "5"
    )
    assert code == 0 and (tmp_path / "r.png").stat().st_size > 0


def test_resume_continues_a_run(small_data, capsys):
    run_dir = small_data / "run"
    code, _out, _ = run(capsys, "train", "--resume", "--out", run_dir, "--epochs", "3", "--no-progress")
    assert code == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_list_and_help(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "contractive" in out and "salt_and_pepper" in out
    for command in ("train", "demo", "evaluate", "encode", "reconstruct"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert "examples:" in capsys.readouterr().out or command == "list"


def bad(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aekit "), err
    return lines[0]


def test_bad_inputs_exit_2_with_one_line(small_data, tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.zeros(10))
    np.save(tmp_path / "nan.npy", np.full((4, 3), np.nan))
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    (tmp_path / "words.csv").write_text("a,b\n1,2\nx,3\n")
    np.save(tmp_path / "wide.npy", np.zeros((8, 30, 30), np.uint8))
    common = ["--epochs", "1", "--no-progress"]
    out = tmp_path / "o"
    assert "has shape (10,)" in bad(capsys, "train", "--data", tmp_path / "flat.npy", "--out", out / "1", *common)
    assert "NaN" in bad(capsys, "train", "--data", tmp_path / "nan.npy", "--out", out / "2", *common)
    assert "empty" in bad(capsys, "train", "--data", tmp_path / "empty.npy", "--out", out / "3", *common)
    assert "non-numeric" in bad(capsys, "train", "--data", tmp_path / "words.csv", "--out", out / "4", *common)
    np.save(tmp_path / "three.npy", np.random.default_rng(0).random((20, 3)))
    assert "not smaller than the input size 3" in bad(
        capsys,
        "train",
        "--family",
        "linear",
        "--code-size",
        "3",
        "--data",
        tmp_path / "three.npy",
        "--out",
        out / "6",
        *common,
    )
    assert "the registered latents are" in bad(
        capsys,
        "train",
        "--data",
        tmp_path / "three.npy",
        "--code-size",
        "2",
        "--set",
        "latent.name=nope",
        "--out",
        out / "7",
        *common,
    )
    assert "examples of shape (30, 30)" in bad(capsys, "evaluate", small_data / "run", "--data", tmp_path / "wide.npy")


def test_missing_dataset_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AEKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path / "cache"))
    line = bad(
        capsys,
        "train",
        "--data",
        "mnist",
        "--data-dir",
        tmp_path,
        "--no-download",
        "--out",
        tmp_path / "o",
        "--epochs",
        "1",
    )
    assert "not found" in line and "--data-dir" in line


def test_damaged_or_foreign_model_files(small_data, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(small_data / "run", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert "damaged or truncated" in bad(capsys, "evaluate", broken, "--data", small_data / "x.npy")
    foreign = tmp_path / "foreign"
    shutil.copytree(small_data / "run", foreign)
    config = json.loads((foreign / "config.json").read_text())
    config["model"]["latent"]["code_size"] = 5
    config["model"]["encoder"]["out_shape"] = [10]
    config["model"]["decoder"]["in_shape"] = [5]
    (foreign / "config.json").write_text(json.dumps(config))
    assert "another configuration" in bad(capsys, "evaluate", foreign, "--data", small_data / "x.npy")
    # a checkpoint from another configuration refuses to resume, and the run is left as it was
    before = {p.name: p.read_bytes() for p in foreign.iterdir()}
    assert "another model configuration" in bad(capsys, "train", "--resume", "--out", foreign, "--no-progress")
    assert {p.name: p.read_bytes() for p in foreign.iterdir() if p.name in before} == before


def test_existing_and_unwritable_outputs_are_refused_and_left_intact(small_data, tmp_path, capsys):
    run_dir = small_data / "run"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    line = bad(capsys, "train", "--data", small_data / "x.npy", "--out", run_dir, "--epochs", "1")
    assert "holds a run already" in line and "--resume" in line
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = bad(capsys, "train", "--data", small_data / "x.npy", "--out", blocker / "run", "--epochs", "1")
    assert "cannot write to" in line or "is a file" in line
    line = bad(capsys, "encode", run_dir, "--data", small_data / "x.npy", "--out", blocker / "codes.npy")
    assert "cannot write to" in line


def test_console_script_exit_code(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "aekit.cli", "evaluate", str(tmp_path / "none"), "--data", "embedded"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr


def test_output_into_a_closed_pipe_is_not_an_error():
    # `aekit hash query ... | head`: the reader leaves early; no traceback, exit status 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "aekit.cli", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    process.stdout.close()  # before the command writes anything
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--family", "nope", "--data", "embedded", "--out", "x"], "--family: 'nope' is not one of colorize"),
        (["train", "--epochs", "many"], "--epochs: 'many' is not allowed: it must be an integer >= 1 or auto"),
        (["train", "--batch-size", "0"], "--batch-size: 0 is not allowed: it must be an integer >= 1"),
        (["train", "--hidden", "-5"], "--hidden: -5 is not allowed: it must be a list of integers, each >= 1"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "--help" in err
