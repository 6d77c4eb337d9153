"""The generative commands end to end: sample, interpolate, traverse, tangents, and evaluate's IS-NLL."""

import json

import numpy as np
import pytest
from PIL import Image

from aekit.cli import main

from .test_cli import run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """200 embedded images as .npy, a VAE and a plain autoencoder trained on them (2 epochs)."""
    from aekit.data import load_dataset

    folder = tmp_path_factory.mktemp("generative")
    images = (load_dataset("embedded", split="test").x[:200] * 255).astype(np.uint8)
    np.save(folder / "x.npy", images)
    for family in ("vae", "undercomplete"):
        argv = ["train", "--family", family, "--data", folder / "x.npy", "--code-size", "4", "--hidden", "32"]
        argv += ["--epochs", "2", "--out", folder / family, "--no-progress"]
        assert main([str(a) for a in argv]) == 0
    return folder


def test_sample_from_the_prior_and_from_a_code_mixture(runs, tmp_path, capsys):
    code, out, _ = run(
        capsys, "sample", runs / "vae", "--out", tmp_path / "s.png", "-n", "12", "--images-out", tmp_path / "s.npy"
    )
    assert code == 0 and "12 samples" in out
    assert np.load(tmp_path / "s.npy").shape == (12, 1, 28, 28)
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    argv = ["sample", runs / "undercomplete", "--from", "mixture", "--data", runs / "x.npy", "--components", "3"]
    code, out, _ = run(capsys, *argv, "--out", tmp_path / "m.png", "--codes-out", tmp_path / "c.npy")
    assert code == 0 and "3-component mixture on 200 codes" in out
    assert np.load(tmp_path / "c.npy").shape == (64, 4)


def test_sampling_a_plain_autoencoder_from_a_prior_is_a_clear_error(runs, tmp_path, capsys):
    code, _, err = run(capsys, "sample", runs / "undercomplete", "--out", tmp_path / "s.png")
    assert code == 2 and "has no prior" in err and "--from mixture" in err and "Traceback" not in err
    assert not (tmp_path / "s.png").exists()
    code, _, err = run(capsys, "sample", runs / "undercomplete", "--from", "mixture", "--out", tmp_path / "s.png")
    assert code == 2 and "needs data" in err


def test_interpolate_pairs_and_image_files(runs, tmp_path, capsys):
    argv = ["interpolate", runs / "vae", "--data", runs / "x.npy", "--pair", "0,1", "--pair", "2,3"]
    code, out, _ = run(capsys, *argv, "--method", "spherical", "--steps", "5", "--out", tmp_path / "i.png")
    assert code == 0 and "2 interpolations of 5 steps" in out
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.zeros((20, 28), np.uint8)).save(tmp_path / "small.png")
    base = ["interpolate", runs / "undercomplete", "--out", tmp_path / "j.png", "--inputs"]
    assert run(capsys, *base, tmp_path / "a.png", tmp_path / "b.png")[0] == 0
    code, _, err = run(capsys, *base, tmp_path / "a.png", tmp_path / "b.png")
    assert code == 2 and "j.png already exists" in err and "--force" in err  # never replaced by surprise
    code, _, err = run(capsys, *base, tmp_path / "a.png", tmp_path / "small.png", "--force")
    assert code == 2 and "shapes (1, 28, 28) and (1, 20, 28)" in err
    code, _, err = run(
        capsys, "interpolate", runs / "vae", "--data", runs / "x.npy", "--pair", "0,999", "--out", tmp_path / "k.png"
    )
    assert code == 2 and "examples 0 to 199" in err


def test_traverse_and_tangents(runs, tmp_path, capsys):
    code, out, _ = run(
        capsys, "traverse", runs / "vae", "--data", runs / "x.npy", "--units", "0,3", "--out", tmp_path / "t.png"
    )
    assert code == 0 and "2 units" in out
    code, _, err = run(
        capsys, "traverse", runs / "vae", "--data", runs / "x.npy", "--units", "0,9", "--out", tmp_path / "u.png"
    )
    assert code == 2 and "units 0 to 3" in err
    argv = ["tangents", runs / "vae", "--compare", runs / "undercomplete", "--data", runs / "x.npy", "--index", "5"]
    code, out, _ = run(capsys, *argv, "-k", "3", "--out", tmp_path / "g.png", "--json", tmp_path / "g.json")
    assert code == 0 and (tmp_path / "g.png").stat().st_size > 0
    spectra = json.loads((tmp_path / "g.json").read_text())
    assert len(spectra) == 2 and all(len(v) == 4 and v == sorted(v, reverse=True) for v in spectra.values())


def test_evaluate_reports_the_importance_sampled_nll(runs, tmp_path, capsys):
    argv = ["evaluate", runs / "vae", "--data", runs / "x.npy", "--binarize", "static", "--json", tmp_path / "e.json"]
    code, out, _ = run(capsys, *argv, "--importance-samples", "20")
    assert code == 0 and "is_nll" in out and "elbo" in out
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["importance_samples"] == 20 and report["is_nll"] <= -report["elbo"] + 3 * report["is_nll_stderr"] + 1
    code, _, err = run(capsys, "evaluate", runs / "vae", "--data", runs / "x.npy", "--importance-samples", "0")
    assert code == 2 and "--importance-samples: 0 is not allowed: it must be an integer >= 1" in err
    code, _, err = run(
        capsys, "evaluate", runs / "undercomplete", "--data", runs / "x.npy", "--importance-samples", "5"
    )
    assert code == 2 and "has no prior" in err
    code, out, _ = run(capsys, "evaluate", runs / "undercomplete", "--data", runs / "x.npy")
    assert code == 0 and "is_nll" not in out
