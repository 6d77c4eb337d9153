"""Sparse dictionaries: the TopK, BatchTopK and JumpReLU activations, the unit-norm dictionary,
AuxK, the synthetic ground truth and the measures of recovery."""

import numpy as np
import pytest
import torch

import aekit
from aekit.data.synthetic import sparse_features
from aekit.errors import AekitError
from aekit.metrics import dictionary_report, feature_recovery
from aekit.sae.parts import BatchTopK, JumpReLU, TopK, geometric_median
from aekit.steps import AutoencoderStep

from .conftest import DICTIONARY_CASES, case_id


def test_topk_keeps_exactly_k_largest_and_relus_them():
    h = torch.randn(6, 20, generator=torch.Generator().manual_seed(0))
    z = TopK(20, k=4).activate(h)
    assert ((z != 0).sum(1) <= 4).all()
    top = h.topk(4, dim=1)
    expected = torch.zeros_like(h).scatter(1, top.indices, top.values.relu())
    torch.testing.assert_close(z, expected)
    positive = h.abs() + 0.1  # all positive: exactly k survive
    assert ((TopK(20, k=4).activate(positive) != 0).sum(1) == 4).all()


def test_batchtopk_inference_threshold_reproduces_the_batch_selection():
    latent = BatchTopK(30, k=3).train()
    h = torch.randn(8, 30, generator=torch.Generator().manual_seed(1)).abs() + 0.01
    trained, _ = latent(h)
    assert int((trained != 0).sum()) == 3 * 8  # k per example on average, over the batch
    assert latent.threshold == trained[trained > 0].min()
    latent.eval()
    inferred, _ = latent(h)
    torch.testing.assert_close(inferred, trained)  # the same selection from the threshold alone
    # later batches move the threshold by the momentum
    latent.train()
    latent(h * 2)
    assert latent.threshold == pytest.approx(
        0.99 * float(trained[trained > 0].min()) + 0.01 * 2 * float(trained[trained > 0].min())
    )


def test_jumprelu_gradients_reach_the_thresholds_straight_through():
    latent = JumpReLU(3, threshold=1.0, bandwidth=0.5)
    h = torch.tensor([[1.1, 0.9, 3.0], [0.5, 1.2, 0.95]], requires_grad=True)
    z = latent.activate(h)
    torch.testing.assert_close(z.detach(), torch.tensor([[1.1, 0.0, 3.0], [0.0, 1.2, 0.0]]))
    z.sum().backward()
    theta = 1.0  # rectangle kernel: -theta / bandwidth for |h - theta| < bandwidth / 2
    near = torch.tensor([1.0, 2.0, 1.0])  # entries within 0.25 of the threshold, per latent
    expected = near * (-theta / 0.5) * theta  # d theta / d log theta = theta
    torch.testing.assert_close(latent.log_threshold.grad, expected)
    torch.testing.assert_close(h.grad, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    latent.log_threshold.grad = None
    latent.active(h.detach()).sum().backward()  # the L0 count: -1 / bandwidth near the jump
    torch.testing.assert_close(latent.log_threshold.grad, near * (-1 / 0.5))
    latent.log_threshold.grad = None
    z = latent.activate(h.detach())  # the code and its steps, as the L0 penalty reads them: both kernels
    (z.sum() + z.active_steps.sum()).backward()
    torch.testing.assert_close(latent.log_threshold.grad, expected + near * (-1 / 0.5))
    torch.testing.assert_close(z.active_steps, (z != 0).float())


def synthetic(n=4000, seed=0):
    x, directions, activations = sparse_features(n, features=64, dim=16, mean_active=3, seed=seed)
    return x.numpy(), directions, activations


def test_dictionary_columns_stay_unit_norm_and_the_encoder_starts_as_their_transpose():
    model = aekit.make_model("sae-topk", (16,), 64, k=3, seed=5)
    torch.testing.assert_close(model.encoder.weight, model.decoder.weight.T)
    x, _, _ = synthetic()
    model.fit_data_statistics(torch.as_tensor(x))
    step = AutoencoderStep(model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    loss = step(torch.as_tensor(x[:256]))
    loss.total.backward()
    w, grad = model.decoder.weight.detach(), model.decoder.weight.grad
    torch.testing.assert_close((grad * w).sum(0), torch.zeros(64), atol=1e-5, rtol=0)  # no radial component
    optimizer.step()
    model.decoder.after_optimizer_step()
    torch.testing.assert_close(model.decoder.weight.norm(dim=0), torch.ones(64))
    # and through the training loop
    aekit.Trainer(model, aekit.TrainConfig(epochs=1, batch_size=128, lr=0.05), progress=False).fit(x)
    torch.testing.assert_close(model.decoder.weight.norm(dim=0), torch.ones(64))


def test_data_statistics_scale_to_mean_squared_norm_d_and_centre_the_decoder():
    x, _, _ = synthetic()
    model = aekit.make_model("sae-topk", (16,), 64, k=3)
    model.fit_data_statistics(torch.as_tensor(x))
    scaled = torch.as_tensor(x).double() * model.encoder.scale.double()
    assert float(scaled.square().sum(1).mean()) == pytest.approx(16.0, rel=1e-5)
    torch.testing.assert_close(model.decoder.bias.double(), scaled.mean(0), rtol=1e-5, atol=1e-6)
    # an all-zero code reconstructs the data's mean
    torch.testing.assert_close(
        model.decode(torch.zeros(1, 64))[0].double(),
        scaled.mean(0) / scaled.new_tensor(float(model.encoder.scale)),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize(("family", "options"), [("sae-jumprelu", {"l0_weight": 0.3}), ("sae-l1", {"l1_weight": 1.0})])
def test_penalty_weights_mean_the_same_at_every_data_scale(family, options):
    """The reconstruction is scored in units of the data's own scale (sigma = its root mean
    square per dimension), so data 1 000 times larger trains the same dictionary, and the NLL
    differs by exactly D log 1000 nats per example."""
    x, _, _ = synthetic(2048)
    runs = []
    for factor in (1.0, 1000.0):
        model = aekit.make_model(family, (16,), 64, **options)
        config = aekit.TrainConfig(epochs=2, batch_size=128, lr=0.01, seed=0, val_fraction=0.0)
        aekit.Trainer(model, config, progress=False).fit(x * factor)
        model.eval()
        with torch.no_grad():
            loss = model.loss(torch.as_tensor(x[:256] * factor))
        runs.append((model, dictionary_report(model, torch.as_tensor(x[:512] * factor)), loss))
    (small, small_report, small_loss), (large, large_report, large_loss) = runs
    assert 1 < small_report["l0"] < 60  # the penalty is neither off nor everything
    assert large_report["l0"] == pytest.approx(small_report["l0"], rel=0.02)
    cosines = (large.decoder.weight * small.decoder.weight).sum(0)  # (K,) unit columns, one by one
    assert float(cosines.min()) > 0.99  # the same directions, to the rounding the two scales differ by
    assert float(large.likelihood.log_sigma - small.likelihood.log_sigma) == pytest.approx(np.log(1000), rel=1e-5)
    torch.testing.assert_close(
        large_loss.nll - small_loss.nll, torch.full((256,), 16 * np.log(1000)), rtol=1e-4, atol=1e-2
    )


def test_geometric_median_ignores_a_far_outlier():
    points = torch.cat(
        [torch.randn(99, 3, generator=torch.Generator().manual_seed(0)) * 0.1, torch.full((1, 3), 1000.0)]
    )
    assert float(geometric_median(points.double()).norm()) < 0.1
    assert float(points.mean(0).norm()) > 10


def test_auxk_is_zero_without_dead_latents_and_revives_them_otherwise():
    model = aekit.make_model("sae-topk", (16,), 64, k=3, aux_k=8, dead_window=100)
    x = torch.as_tensor(synthetic()[0][:64])
    model.fit_data_statistics(x)
    model.train()
    out = model.loss(x)
    assert float(out.terms["auxk"]) == 0.0 and float(out.metrics["dead_fraction"]) == 0.0
    model.latent.since_fired[:32] = 1000  # half the latents silent for longer than the window
    out = model.loss(x)
    assert float(out.metrics["dead_fraction"]) > 0 and float(out.terms["auxk"]) > 0
    out.total.backward()
    dead_rows = model.encoder.weight.grad[:32].abs().sum()
    assert float(dead_rows) > 0  # the dead latents' encoder rows learn from the residual


def test_penalties_need_their_latents():
    with pytest.raises(AekitError, match="dead latents"):
        aekit.Autoencoder.from_config(
            aekit.ModelConfig(
                data_shape=[4], encoder={"name": "mlp", "in_shape": [4], "out_shape": [3]},
                latent={"name": "deterministic", "code_size": 3},
                decoder={"name": "mlp", "in_shape": [3], "out_shape": [4]},
                likelihood={"name": "gaussian"}, penalties=[{"name": "auxk"}],
            )
        )  # fmt: skip
    with pytest.raises(AekitError, match="flatten"):
        aekit.make_model("sae-topk", (1, 4, 4), 8)
    with pytest.raises(AekitError, match="k 90"):
        aekit.make_model("sae-topk", (16,), 64, k=90)


def test_feature_recovery_is_one_on_a_known_dictionary_and_drops_for_random_directions():
    _, directions, _ = synthetic()
    shuffled = directions[torch.randperm(64, generator=torch.Generator().manual_seed(0))] * -2.0
    found = feature_recovery(directions, shuffled)
    assert found == pytest.approx({"mcc": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0})
    half = feature_recovery(directions, directions[:32])
    assert half["recall"] == 0.5 and half["precision"] == 1.0 and half["f1"] == pytest.approx(2 / 3)
    random = feature_recovery(directions, torch.randn(64, 16, generator=torch.Generator().manual_seed(1)))
    assert random["mcc"] < 0.9 and random["f1"] < 0.2


def test_sparse_features_follow_their_settings():
    x, directions, activations = sparse_features(20000, features=100, dim=20, mean_active=4, exponent=1.0, seed=3)
    assert x.shape == (20000, 20) and directions.shape == (100, 20) and activations.shape == (20000, 100)
    torch.testing.assert_close(directions.norm(dim=1), torch.ones(100))
    torch.testing.assert_close(x, activations @ directions)
    assert float((activations > 0).sum(1).float().mean()) == pytest.approx(4, rel=0.05)
    rates = (activations > 0).float().mean(0)
    assert rates[0] > 5 * rates[-1]  # Zipf: the first features fire far more often
    first = activations[:, 0][activations[:, 0] > 0]  # (1 + |N(0, 1)|) * 1: mean 1 + sqrt(2 / pi)
    assert float(first.mean()) == pytest.approx(1 + np.sqrt(2 / np.pi), rel=0.02) and float(first.min()) >= 1
    again = sparse_features(20000, features=100, dim=20, mean_active=4, exponent=1.0, seed=3, chunk=999)
    torch.testing.assert_close(again[1], directions)  # the seed fixes the directions, whatever the chunks
    grouped = sparse_features(20000, features=100, dim=20, mean_active=4, group_size=4, group_rate=0.3, seed=3)[2] > 0
    together = (grouped[:, 0] & grouped[:, 1]).float().mean()
    assert together > 1.5 * grouped[:, 0].float().mean() * grouped[:, 1].float().mean()  # correlated within a group


@pytest.mark.parametrize("family, options", [("sae-topk", {"k": 3}), ("sae-batchtopk", {"k": 3})])
def test_a_trained_dictionary_recovers_superposed_features(family, options):
    x, directions, _ = synthetic(n=8000)
    torch.manual_seed(0)
    model = aekit.make_model(family, (16,), 64, **options)
    config = aekit.TrainConfig(epochs=30, batch_size=128, lr=3e-3, lr_schedule="cosine", seed=0)
    result = aekit.Trainer(model, config, progress=False).fit(x)
    assert result.history[-1]["train"]["active"] == pytest.approx(3, abs=0.5)
    report = dictionary_report(model, x)
    assert report["fvu"] < 0.2 and report["l0"] == pytest.approx(3, abs=0.6)
    trained = feature_recovery(directions, model.decoder.weight.detach().T)["mcc"]
    untrained = aekit.make_model(family, (16,), 64, **options)
    assert trained > 0.75 and trained > feature_recovery(directions, untrained.decoder.weight.detach().T)["mcc"] + 0.1


def test_dictionary_report_counts_dead_dense_and_shrinkage():
    x, _, _ = synthetic(n=500)
    model = aekit.make_model("sae-topk", (16,), 64, k=3)
    model.fit_data_statistics(torch.as_tensor(x))
    report = dictionary_report(model, x)
    code = model.encode(torch.as_tensor(x)).detach().numpy()
    recon = model.decode(torch.as_tensor(code)).detach().numpy()
    assert report["l0"] == pytest.approx((code != 0).sum(1).mean())
    assert report["dead"] == pytest.approx(((code != 0).sum(0) == 0).mean())
    assert report["dense"] == pytest.approx(((code != 0).mean(0) > 0.1).mean())
    fvu = ((recon - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert report["fvu"] == pytest.approx(fvu, rel=1e-4)
    norms = np.linalg.norm(x, axis=1)
    shrink = (np.linalg.norm(recon, axis=1)[norms > 0] / norms[norms > 0]).mean()
    assert report["shrinkage"] == pytest.approx(shrink, rel=1e-4)


# ------------------------------------------------------------------------------------------------ #
# collecting activations


class Host(torch.nn.Module):
    """A small network with a middle layer to hook: vectors, sequences or feature maps."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first = torch.nn.Linear(5, 7)
        self.middle = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(7, 6))
        self.last = torch.nn.Linear(6, 2)

    def forward(self, x):
        return self.last(self.middle(self.first(x)))


def test_hooks_collect_exactly_the_modules_outputs(tmp_path):
    from aekit.sae import collect

    host = Host()
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(1))
    stored = collect(host, "middle", x, tmp_path / "acts", batch_size=64, shard_rows=100, progress=False)
    expected = host.middle(host.first(x)).detach().numpy()
    assert len(stored) == 300 and stored.shape == (300, 6)
    np.testing.assert_allclose(stored.read(0, 300), expected, rtol=1e-6)
    assert sorted(p.name for p in (tmp_path / "acts").glob("*.npy")) == [f"activations-0000{i}.npy" for i in range(3)]
    # sequences give a row per kept position; training reads the folder as a stream
    tokens = torch.randn(4, 9, 5, generator=torch.Generator().manual_seed(2))
    mask = torch.arange(9)[None, :] < torch.tensor([9, 3, 5, 1])[:, None]  # (B, T): real tokens
    kept = collect(host, "middle.1", [tokens], tmp_path / "seq", keep=lambda _: mask, progress=False)
    np.testing.assert_allclose(
        kept.read(0, len(kept)), host.middle(host.first(tokens))[mask].detach().numpy(), rtol=1e-6
    )
    assert len(kept) == 18


def test_collect_refuses_unknown_modules_and_full_folders(tmp_path):
    from aekit.sae import collect

    with pytest.raises(AekitError, match=r"no module 'middle\.7'"):
        collect(Host(), "middle.7", torch.zeros(4, 5), tmp_path / "a", progress=False)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "mine.txt").write_text("keep")
    with pytest.raises(AekitError, match="not empty"):
        collect(Host(), "middle", torch.zeros(4, 5), tmp_path / "b", progress=False)
    assert (tmp_path / "b" / "mine.txt").read_text() == "keep"


def test_a_dictionary_trains_on_collected_activations(tmp_path):
    from aekit.sae import collect

    host = Host()
    stored = collect(host, "middle", torch.randn(2000, 5), tmp_path / "acts", shard_rows=512, progress=False)
    model = aekit.make_model("sae-topk", (6,), 24, k=2)
    result = aekit.Trainer(model, aekit.TrainConfig(epochs=2, batch_size=128), progress=False).fit(stored)
    assert result.steps > 0 and result.history[-1]["train"]["active"] == pytest.approx(2, abs=0.01)


def test_train_and_evaluate_a_dictionary_from_the_command_line(tmp_path, capsys):
    from aekit.cli import main

    from .test_cli import run

    np.save(tmp_path / "acts.npy", synthetic(n=2000)[0])
    argv = ["train", "--family", "sae-topk", "-o", "k=3", "-o", "width=64", "--data", tmp_path / "acts.npy"]
    assert main([str(a) for a in [*argv, "--epochs", "2", "--out", tmp_path / "sae", "--no-progress"]]) == 0
    code, out, err = run(capsys, "evaluate", tmp_path / "sae", "--data", tmp_path / "acts.npy")
    assert code == 0, err
    assert "fvu" in out and "active latents per example" in out and "shrinkage" in out


class Exact(torch.nn.Module):
    """A dictionary that reconstructs its input exactly."""

    def __init__(self):
        super().__init__()
        self.likelihood = aekit.likelihoods.GaussianLikelihood()

    def encode(self, rows):
        return rows

    def decode(self, rows):
        return rows


def test_the_splice_equals_the_host_when_the_replacement_is_the_identity():
    from aekit.sae import Splice, activation_rows, loss_recovered, rows_back

    host = Host()
    x = torch.randn(10, 5, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        clean = host(x)
        with Splice(host, "middle", lambda rows: rows):
            torch.testing.assert_close(host(x), clean)
        with Splice(host, "middle", torch.zeros_like):
            torch.testing.assert_close(host(x), host.last(torch.zeros(10, 6)))
    maps = torch.randn(2, 3, 4, 5)  # a feature map survives the trip through rows
    torch.testing.assert_close(rows_back(activation_rows(maps), maps), maps)

    batches = [torch.randn(8, 5, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    target = [host(b).detach() + 0.1 for b in batches]
    losses = dict(zip(map(id, batches), target, strict=True))
    measured = loss_recovered(host, "middle", Exact(), batches, lambda b: ((host(b) - losses[id(b)]) ** 2).mean())
    assert measured["spliced"] == pytest.approx(measured["clean"]) and measured["recovered"] == pytest.approx(1.0)
    assert measured["zero"] > measured["clean"]


# ------------------------------------------------------------------------------------------------ #
# the family contract, on vectors


@pytest.mark.parametrize("case", DICTIONARY_CASES, ids=case_id)
def test_dictionary_families_keep_the_family_contract(case):
    family, options = case
    x = torch.as_tensor(synthetic(n=256)[0])
    torch.manual_seed(0)
    model = aekit.make_model(family, (16,), 12, **options)
    assert model.encode(x[:5]).shape == (5, 12 if "expansion" not in options else 32)
    assert model.reconstruct(x[:5]).shape == (5, 16)
    out = model.train().loss(x[:32])
    assert set(out.terms) == {"nll", *(p.name for p in model.penalties)}
    torch.testing.assert_close(out.total, sum(out.terms.values()))
    assert set(out.metrics) == {"active", "dead_fraction"}
    config = aekit.TrainConfig(epochs=20, batch_size=32, lr=3e-3, val_fraction=0.0, seed=0)
    before = aekit.Trainer(model, config, progress=False).evaluate(x)["nll"]
    aekit.Trainer(model, config, progress=False).fit(x)
    after = aekit.Trainer(model, config, progress=False).evaluate(x)["nll"]
    assert after < before
    model.eval()
    assert torch.equal(model.encode(x[:8]), model.encode(x[:8]))
    rebuilt = aekit.Autoencoder.from_config(aekit.ModelConfig.from_dict(model.config.to_dict()))
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt.eval().reconstruct(x[:8]), model.reconstruct(x[:8]))


# ------------------------------------------------------------------------------------------------ #
# the feature browser


def test_the_feature_browser_renders_latents_with_their_top_examples(tmp_path):
    import json

    from aekit.data import load_dataset
    from aekit.sae import write_report

    from .test_docs_browser import chromium, images_on

    images = load_dataset("embedded", split="test").x[:400]  # (400, 1, 28, 28)
    flat = images.reshape(400, -1)
    torch.manual_seed(0)
    model = aekit.make_model("sae-topk", (784,), 24, k=3)
    aekit.Trainer(model, aekit.TrainConfig(epochs=2, batch_size=64, val_fraction=0.0), progress=False).fit(flat)
    page = write_report(model, flat, tmp_path / "report", images=images, direction_shape=(28, 28), latents=10, top=4)
    text = page.read_text()
    assert text.count('class="latent"') == 10 and "<script" not in text
    record = json.loads((tmp_path / "report" / "latents.json").read_text())
    codes = model.encode(torch.as_tensor(flat)).detach().numpy()
    first = record[0]
    assert first["rate"] == pytest.approx((codes != 0).mean(0).max())  # the most often active comes first
    column = codes[:, first["latent"]]
    assert first["top_rows"] == np.argsort(-column, kind="stable")[:4].tolist()
    np.testing.assert_allclose(first["top_values"], np.sort(column)[::-1][:4], rtol=1e-6)
    contexts = write_report(model, flat, tmp_path / "text", contexts=[f"<example {i}>" for i in range(400)], latents=3)
    assert "&lt;example" in contexts.read_text()  # text is escaped
    with pytest.raises(AekitError, match="3 images for 400 examples"):
        write_report(model, flat, tmp_path / "bad", images=images[:3])
    if chromium() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    rendered = images_on(tmp_path / "report", "/index.html")
    assert len(rendered) == 10 * 5  # 4 examples and the decoder direction per latent
    assert all(img["width"] > 0 and img["height"] > 0 for img in rendered)


def test_collect_and_report_from_the_command_line(tmp_path, capsys):
    from aekit.cli import main

    from .test_cli import run

    argv = ["train", "--family", "undercomplete", "--data", "embedded", "--split", "test", "--code-size", "4"]
    assert main([*argv, "--hidden", "16", "--epochs", "1", "--out", str(tmp_path / "ae"), "--no-progress"]) == 0
    code, out, _ = run(capsys, "sae", "collect", tmp_path / "ae", "--list-modules")
    assert code == 0 and "encoder.layers.1" in out
    argv = ["sae", "collect", tmp_path / "ae", "--module", "encoder.layers.1", "--data", "embedded", "--split", "test"]
    code, out, err = run(capsys, *argv, "--max-rows", "3000", "--out", tmp_path / "acts")
    assert code == 0, err
    assert "3000 rows of 16 activations" in out
    code, _, err = run(capsys, *argv, "--out", tmp_path / "acts")
    assert code == 2 and "not empty" in err and "Traceback" not in err
    code, _, err = run(
        capsys,
        "sae",
        "collect",
        tmp_path / "ae",
        "--module",
        "nope",
        "--data",
        "embedded",
        "--split",
        "test",
        "--out",
        tmp_path / "x",
    )
    assert code == 2 and "no module 'nope'" in err
    train = ["train", "--family", "sae-topk", "-o", "k=2", "-o", "width=32", "--data", tmp_path / "acts", "--stream"]
    assert main([str(a) for a in [*train, "--epochs", "1", "--out", tmp_path / "sae", "--no-progress"]]) == 0
    first = tmp_path / "acts" / "activations-00000.npy"
    code, out, err = run(capsys, "sae", "report", tmp_path / "sae", "--data", first, "--out", tmp_path / "report")
    assert code == 0, err
    assert (tmp_path / "report" / "index.html").read_text().count('class="latent"') > 0
    code, _, err = run(
        capsys, "sae", "report", tmp_path / "sae", "--data", first, "--direction-shape", "5,5", "--out", tmp_path / "r2"
    )
    assert code == 2 and "directions have 16 values" in err


def test_collect_from_a_torch_export_program(tmp_path, capsys):
    from .test_cli import run

    host = Host()
    x = torch.randn(10, 5, generator=torch.Generator().manual_seed(4))
    torch.export.save(torch.export.export(host, (x[:4],)), tmp_path / "host.pt2")  # a fixed batch of 4
    np.save(tmp_path / "x.npy", x.numpy())
    code, out, _ = run(capsys, "sae", "collect", tmp_path / "host.pt2", "--list-modules")
    assert code == 0 and "middle.1" in out
    argv = ["sae", "collect", tmp_path / "host.pt2", "--module", "middle", "--data", tmp_path / "x.npy"]
    code, out, err = run(capsys, *argv, "--out", tmp_path / "acts")
    assert code == 0, err
    assert "the last 2 examples are not run" in out and "8 rows of 6 activations" in out
    stored = np.load(tmp_path / "acts" / "activations-00000.npy")
    np.testing.assert_allclose(stored, host.middle(host.first(x[:8])).detach().numpy(), rtol=1e-5, atol=1e-6)
    torch.jit.save(torch.jit.script(host), tmp_path / "host.pt")
    code, _, err = run(capsys, "sae", "collect", tmp_path / "host.pt", "--list-modules")
    assert code == 2 and "TorchScript modules take no new hooks" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ #
# hosts: a sequence model, an aekit autoencoder; aekit sae recovered


@pytest.fixture(scope="module")
def tiny_translator(tmp_path_factory):
    """A tiny untrained seq2seq Transformer saved as a run folder, and 40 sentence pairs as files."""
    from aekit.text.families import build_sequence_model
    from aekit.text.pipeline import save_sequence_model
    from aekit.text.tokenizer import SubwordTokenizer

    from .test_sequences import sentences, tiny

    folder = tmp_path_factory.mktemp("translator")
    source = sentences(40, seed=5)
    target = [" ".join(reversed(s.split())) for s in source]
    tokenizer = SubwordTokenizer.train(sentences(200), vocab_size=64)
    torch.manual_seed(0)
    model = build_sequence_model(tiny(), tokenizer.vocab_size, tokenizer.fingerprint)
    save_sequence_model(model, tokenizer, folder / "model")
    (folder / "train.src").write_text("".join(s + "\n" for s in source), encoding="utf-8")
    (folder / "train.tgt").write_text("".join(s + "\n" for s in target), encoding="utf-8")
    return folder, tokenizer, source, target


def test_collect_from_a_sequence_model_keeps_the_real_positions_of_the_hooked_side(tiny_translator, tmp_path, capsys):
    import json

    from .test_cli import run

    folder, tokenizer, source, target = tiny_translator
    data = ["--data", folder / "train.src", "--target-data", folder / "train.tgt", "--batch-size", "16"]
    code, out, err = run(
        capsys,
        "sae",
        "collect",
        folder / "model",
        "--module",
        "decoder.layers.layers.0",
        *data,
        "--out",
        tmp_path / "dec",
    )
    assert code == 0, err
    positions = sum(len(ids) + 1 for ids in tokenizer.encode(target))  # BOS y_1 .. y_n: a prediction each
    record = json.loads((tmp_path / "dec" / "collection.json").read_text())
    assert record["rows"] == positions and record["width"] == 32
    assert record["model"] == str((folder / "model").resolve()) and record["module"] == "decoder.layers.layers.0"
    assert record["data"] == str((folder / "train.src").resolve()) and record["contexts"] == "contexts.txt"
    contexts = (tmp_path / "dec" / "contexts.txt").read_text(encoding="utf-8").splitlines()
    assert len(contexts) == positions and f"{positions} rows of 32" in out
    ids = tokenizer.encode(target[:1])[0]
    one, two = tokenizer.decode([ids[:1], ids[1:2]])
    assert contexts[0] == "[<s>]" and contexts[1] == f"[{one}]" and contexts[2] == f"{one} [{two}]".strip()
    # the encoder's side: source positions, EOS included
    code, _, err = run(
        capsys, "sae", "collect", folder / "model", "--module", "encoder.layers", *data, "--max-rows", "50",
        "--out", tmp_path / "enc",
    )  # fmt: skip
    assert code == 0, err
    sources = sum(len(ids) + 1 for ids in tokenizer.encode(source))
    code, _, err = run(
        capsys, "sae", "collect", folder / "model", "--module", "encoder.layers", *data, "--out", tmp_path / "all"
    )
    assert json.loads((tmp_path / "all" / "collection.json").read_text())["rows"] == sources
    contexts = (tmp_path / "enc" / "contexts.txt").read_text(encoding="utf-8").splitlines()
    assert len(contexts) == 50 and len(np.load(tmp_path / "enc" / "activations-00000.npy")) == 50
    ids = tokenizer.encode(source[:1])[0]
    one, rest, whole = tokenizer.decode([ids[:1], ids[1:], ids])
    assert contexts[0] == f"[{one}] {rest}" and contexts[len(ids)] == f"{whole} [</s>]" and whole == source[0]


def test_collect_refuses_a_keep_mask_of_another_size(tmp_path):
    from aekit.sae import collect

    tokens = torch.randn(4, 9, 5)
    with pytest.raises(AekitError, match="keep marks 32 rows of a batch but 'middle' yields 36"):
        collect(Host(), "middle", [tokens], tmp_path / "a", keep=lambda _: torch.ones(4, 8, dtype=torch.bool))


def test_a_sequence_host_measures_nats_per_target_token(tiny_translator):
    from aekit.sae import loss_recovered, sequence_host
    from aekit.text.pipeline import load_sequence_model

    folder, _, source, target = tiny_translator
    model, tokenizer, _ = load_sequence_model(folder / "model")
    host = sequence_host(model, tokenizer, source, target, "decoder.layers.layers.0", batch_size=16)
    assert len(host.batches) == 3 and "40 sentence pairs" in host.description
    batch = host.batches[0]
    expected = float(model.sentence_nll(batch).sum()) / batch.weight
    assert float(host.loss(batch)) == pytest.approx(expected)
    assert int(host.keep(batch).sum()) == batch.weight  # one row per predicted token
    measured = loss_recovered(model, "decoder.layers.layers.0", Exact(), host.batches, host.loss)
    assert measured["spliced"] == measured["clean"] and measured["recovered"] == 1.0
    with pytest.raises(AekitError, match="no target sentences"):
        sequence_host(model, tokenizer, source, None, "decoder")


def test_an_autoencoder_host_sees_the_same_corruption_in_every_run():
    from aekit.sae import array_host, loss_recovered

    torch.manual_seed(0)
    model = aekit.make_model("denoising", (16,), 4, hidden=[8], noise="gaussian")
    x = synthetic(n=100)[0]
    host = array_host(model, x, batch_size=32)
    assert len(host.batches) == 4 and host.keep is None and host.contexts is None
    batch = host.batches[0]
    assert float(host.loss(batch)) == float(host.loss(batch))  # the noise is seeded the same at each call
    other = model.loss(batch, generator=torch.Generator().manual_seed(1), noisy=True).nll.mean().detach()
    assert float(other) != float(host.loss(batch))  # and there is noise
    measured = loss_recovered(model, "encoder.layers.1", Exact(), host.batches, host.loss)
    assert measured["spliced"] == measured["clean"] and measured["recovered"] == 1.0
    assert measured["zero"] != measured["clean"]
    assert array_host(Host(), x[:, :5], 8).loss is None  # a plain module has no loss


def test_loss_recovered_from_the_command_line(tmp_path, capsys):
    import json

    from aekit.cli import main

    from .test_cli import bad, run

    argv = ["train", "--family", "undercomplete", "--data", "embedded", "--split", "test", "--code-size", "4"]
    assert main([*argv, "--hidden", "16", "--epochs", "2", "--out", str(tmp_path / "ae"), "--no-progress"]) == 0
    argv = ["sae", "collect", tmp_path / "ae", "--module", "encoder.layers.1", "--data", "embedded", "--split", "test"]
    assert run(capsys, *argv, "--max-rows", "2000", "--out", tmp_path / "acts")[0] == 0
    train = ["train", "--family", "sae-topk", "-o", "k=4", "-o", "width=64", "--data", tmp_path / "acts", "--stream"]
    assert main([str(a) for a in [*train, "--epochs", "3", "--out", tmp_path / "sae", "--no-progress"]]) == 0
    # --model, --module and --data come from the activations' collection.json
    code, out, err = run(
        capsys, "sae", "recovered", tmp_path / "sae", "--max-batches", "2", "--json", tmp_path / "r.json"
    )
    assert code == 0, err
    figures = json.loads((tmp_path / "r.json").read_text())
    assert figures["module"] == "encoder.layers.1" and figures["batches"] == 2 and figures["split"] == "test"
    assert all(np.isfinite(figures[key]) for key in ("clean", "spliced", "zero", "recovered"))
    assert figures["zero"] > figures["clean"] and figures["recovered"] < 1.0 + 1e-6
    assert "nats per example" in out and "recovered" in out
    code, out, err = run(capsys, "evaluate", tmp_path / "sae", "--data", tmp_path / "acts")  # a folder of shards
    assert code == 0 and "2000 examples" in out, err
    # bad inputs: one line each
    assert "reads rows of 16 numbers but encoder.layers.2 of" in bad(
        capsys, "sae", "recovered", tmp_path / "sae", "--module", "encoder.layers.2", "--max-batches", "1"
    )
    np.save(tmp_path / "rows.npy", synthetic(n=300)[0])
    lone = ["train", "--family", "sae-topk", "-o", "k=2", "-o", "width=32", "--data", tmp_path / "rows.npy"]
    assert main([str(a) for a in [*lone, "--epochs", "1", "--out", tmp_path / "lone", "--no-progress"]]) == 0
    assert "--model and --module missing" in bad(capsys, "sae", "recovered", tmp_path / "lone", "--data", "embedded")
    host = Host()
    torch.export.save(torch.export.export(host, (torch.zeros(4, 5),)), tmp_path / "host.pt2")
    message = bad(capsys, "sae", "recovered", tmp_path / "sae", "--model", tmp_path / "host.pt2", "--module", "middle")
    assert "torch.export program" in message and "no loss" in message


def test_recovered_on_a_sequence_host_from_the_command_line(tiny_translator, tmp_path, capsys):
    from aekit.cli import main

    from .test_cli import bad, run

    folder, *_ = tiny_translator
    data = ["--data", folder / "train.src", "--target-data", folder / "train.tgt"]
    argv = ["sae", "collect", folder / "model", "--module", "decoder.layers.layers.0", *data]
    assert run(capsys, *argv, "--out", tmp_path / "acts")[0] == 0
    train = ["train", "--family", "sae-topk", "-o", "k=4", "-o", "expansion=2", "--data", tmp_path / "acts", "--stream"]
    assert main([str(a) for a in [*train, "--epochs", "2", "--out", tmp_path / "sae", "--no-progress"]]) == 0
    code, out, err = run(capsys, "sae", "recovered", tmp_path / "sae")
    assert code == 0, err
    assert "nats per target token" in out and "train.src" in out
    assert "a sequence model reads sentences" in bad(
        capsys, "sae", "recovered", tmp_path / "sae", "--data", "embedded", "--split", "test"
    )
    assert "add --target-data" in bad(capsys, "sae", "recovered", tmp_path / "sae", "--data", folder / "train.src")
