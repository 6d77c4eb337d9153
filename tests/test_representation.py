"""Latent maps, anomaly scores and their commands."""

import io
import json

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

import aekit
from aekit.applications.anomaly import AnomalyDetector, quantile_threshold, reconstruction_errors
from aekit.cli import main
from aekit.plots import latent_maps, project_codes

from .test_cli import run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """400 embedded images (labels kept) and two tiny runs trained on them: an AE and a VAE."""
    folder = tmp_path_factory.mktemp("representation")
    data = aekit.load_dataset("embedded", split="test")
    np.savez(folder / "x.npz", x=data.x[:400], y=data.labels[:400])
    for family, code in (("undercomplete", 2), ("vae", 5)):
        argv = ["train", "--family", family, "--code-size", code, "--hidden", 32, "--epochs", 1]
        argv += ["--data", folder / "x.npz", "--out", folder / family, "--no-progress"]
        assert main([str(a) for a in argv]) == 0
    return folder


def test_project_codes_is_pca_of_the_codes():
    codes = np.random.default_rng(0).normal(size=(200, 6)) * [5, 3, 1, 1, 1, 1]
    points, labels = project_codes(codes)
    expected = PCA(2).fit_transform(codes)
    np.testing.assert_allclose(np.abs(points), np.abs(expected), atol=1e-9)  # up to the sign of each axis
    assert labels[0].startswith("PC1 of codes")
    two = codes[:, :2]
    np.testing.assert_array_equal(project_codes(two)[0], two)


def test_latent_maps_render_for_any_code_width():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    panels = {"one": rng.normal(size=(90, 1)), "two": rng.normal(size=(90, 2)), "wide": rng.normal(size=(90, 7))}
    figure = latent_maps(panels, labels, ["cat", "dog", "emu"], title="test")
    assert len(figure.axes) == 3
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["cat", "dog", "emu"]
    figure.savefig(io.BytesIO(), format="png")
    latent_maps({"unlabelled": rng.normal(size=(90, 3))}).savefig(io.BytesIO(), format="png")
    with pytest.raises(ValueError, match="same number of points"):
        latent_maps({"a": rng.normal(size=(5, 2)), "b": rng.normal(size=(6, 2))})


def test_plot_latent_command(runs, tmp_path, capsys):
    out = tmp_path / "latent.png"
    code, printed, _ = run(
        capsys, "plot", "latent", runs / "undercomplete", runs / "vae", "--data", runs / "x.npz", "--out", out
    )
    assert code == 0 and "3 panel(s), 400 points" in printed
    assert out.read_bytes()[:4] == b"\x89PNG"
    np.save(tmp_path / "wrong.npy", np.zeros((10, 5), np.float32))
    code, _, err = run(
        capsys, "plot", "latent", runs / "vae", "--data", tmp_path / "wrong.npy", "--out", tmp_path / "wrong.png"
    )
    assert code == 2 and "was trained on (1, 28, 28)" in err


def test_detector_threshold_is_the_quantile_of_normal_errors(runs):
    model = aekit.load_model(runs / "undercomplete")
    x = aekit.load_dataset(runs / "x.npz").x
    errors = reconstruction_errors(model, x)
    manual = (model.reconstruct(torch.as_tensor(x)).detach() - torch.as_tensor(x)).pow(2).flatten(1).sum(1)
    np.testing.assert_allclose(errors, manual.numpy(), rtol=1e-5)
    detector = AnomalyDetector.calibrate(model, x[:200], quantile=0.9)
    assert detector.threshold == pytest.approx(np.quantile(errors[:200], 0.9))
    assert detector.predict(x[:200]).mean() == pytest.approx(0.1, abs=0.005)
    with pytest.raises(ValueError, match="quantile"):
        quantile_threshold(errors, 1.5)


def test_anomaly_command(runs, tmp_path, capsys):
    data = np.load(runs / "x.npz")
    normal = data["x"][data["y"] == 0]
    np.save(tmp_path / "normal.npy", normal)
    out = tmp_path / "scores.csv"
    argv = ["anomaly", runs / "undercomplete", "--data", runs / "x.npz", "--calibrate", tmp_path / "normal.npy"]
    code, printed, _ = run(capsys, *argv, "--quantile", 0.95, "--normal-class", 0, "--out", out)
    assert code == 0 and "AUROC" in printed
    table = np.genfromtxt(out, delimiter=",", names=True)
    assert list(table.dtype.names) == ["index", "score", "anomaly", "label"]
    model = aekit.load_model(runs / "undercomplete")
    np.testing.assert_allclose(table["score"], reconstruction_errors(model, data["x"]), rtol=1e-5)
    threshold = np.quantile(reconstruction_errors(model, normal), 0.95)
    np.testing.assert_array_equal(table["anomaly"], table["score"] > threshold)
    auroc = roc_auc_score(table["label"] != 0, table["score"])
    assert f"AUROC {auroc:.4f}" in printed
    code, _, err = run(capsys, "anomaly", runs / "undercomplete", "--data", runs / "x.npz", "--out", tmp_path / "s.txt")
    assert code == 2 and ".csv or .npy" in err


def test_classes_option_keeps_one_class(runs, tmp_path, capsys):
    argv = ["train", "--family", "undercomplete", "--code-size", 2, "--hidden", 8, "--epochs", 1, "--no-progress"]
    code, printed, _ = run(capsys, *argv, "--data", runs / "x.npz", "--classes", "0", "--out", tmp_path / "one")
    n_zero = int((np.load(runs / "x.npz")["y"] == 0).sum())
    assert code == 0 and f"({n_zero}, 1, 28, 28)" in printed
    code, _, err = run(capsys, *argv, "--data", runs / "x.npz", "--classes", "42", "--out", tmp_path / "none")
    assert code == 2 and "no example has a label in ['42']" in err


def test_finetune_command_reports_pretrained_and_random_starts(runs, tmp_path, capsys):
    argv = ["finetune", runs / "undercomplete", "--data", runs / "x.npz", "--labels", 200, "--epochs", 2]
    code, printed, _ = run(capsys, *argv, "--compare-random", "--no-progress", "--json", tmp_path / "f.json")
    assert code == 0 and "pretrained encoder, 200 labelled examples" in printed and "random encoder" in printed
    report = json.loads((tmp_path / "f.json").read_text())
    assert report["labelled_examples"] == 200 and 0 <= report["pretrained"]["val_error"] <= 1
    code, _, err = run(capsys, "finetune", runs / "undercomplete", "--data", runs / "x.npz", "--labels", 10**6)
    assert code == 2 and "--labels 1000000" in err
