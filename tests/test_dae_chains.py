"""The stochastic view of denoising autoencoders: the score check, the Markov chain, walk-back
training, and the Frechet and Parzen measures of samples."""

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

import aekit
from aekit.applications.generation import denoising_chain, denoising_field
from aekit.cli import main
from aekit.errors import AekitError
from aekit.metrics import frechet_distance, log_density_gradient, parzen_log_likelihood, score_alignment
from aekit.steps import AutoencoderStep

from .test_cli import run


def dae(std=0.3, likelihood="gaussian", shape=(2,), seed=0, hidden=(16,)):
    torch.manual_seed(seed)
    config = aekit.family_config("denoising", shape, 8, noise="gaussian", level=std, hidden=list(hidden))
    config.likelihood = {"name": likelihood} if isinstance(likelihood, str) else likelihood
    return aekit.Autoencoder.from_config(config)


# ------------------------------------------------------------------------------------------------ #
# the score check


def test_log_density_gradient_matches_the_closed_form_and_finite_differences():
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.tensor([0.3, 0.7], dtype=torch.float64)),
        torch.distributions.Independent(
            torch.distributions.Normal(torch.tensor([[0.0, 1.0], [2.0, -1.0]], dtype=torch.float64), 0.5), 1
        ),
    )
    points = np.random.default_rng(0).normal(size=(6, 2))
    gradient = log_density_gradient(mixture.log_prob, points)
    step = 1e-6
    for d in range(2):
        shift = np.zeros(2)
        shift[d] = step
        log_p = lambda x: mixture.log_prob(torch.as_tensor(x)).numpy()  # noqa: E731
        numeric = (log_p(points + shift) - log_p(points - shift)) / (2 * step)
        np.testing.assert_allclose(gradient[:, d], numeric, rtol=1e-5, atol=1e-7)


def test_score_check_is_exact_for_the_optimal_denoiser_of_a_gaussian():
    # x ~ N(mu, s^2 I), x~ = x + sigma eps: E[x | x~] = mu + s^2 / (s^2 + sigma^2) (x~ - mu), so the
    # optimal field r(x~) - x~ = sigma^2 grad log p_sigma(x~) with p_sigma = N(mu, (s^2 + sigma^2) I)
    rng = np.random.default_rng(1)
    mu, s, sigma = np.array([1.0, -2.0, 0.5]), 0.7, 0.3
    noisy = mu + np.sqrt(s**2 + sigma**2) * rng.normal(size=(500, 3))
    optimal = mu + s**2 / (s**2 + sigma**2) * (noisy - mu)
    p_sigma = torch.distributions.MultivariateNormal(
        torch.as_tensor(mu), (s**2 + sigma**2) * torch.eye(3, dtype=torch.float64)
    )
    score = sigma**2 * log_density_gradient(p_sigma.log_prob, noisy)
    exact = score_alignment(optimal - noisy, score)
    assert exact["cosine"] == pytest.approx(1.0, abs=1e-12)
    assert exact["relative_error"] == pytest.approx(0.0, abs=1e-12)
    # a field of the right size pointing elsewhere is caught, and so is a right direction at half length
    rotated = (optimal - noisy)[:, [1, 2, 0]]
    assert score_alignment(rotated, score)["cosine"] < 0.5
    assert score_alignment(0.5 * (optimal - noisy), score) == pytest.approx({"cosine": 1.0, "relative_error": 0.5})
    weights = np.r_[np.ones(250), np.zeros(250)]
    half = score_alignment(rotated, score, weights)
    assert half == pytest.approx(score_alignment(rotated[:250], score[:250]))


def test_a_trained_dae_field_points_along_the_score_of_a_gaussian():
    rng = np.random.default_rng(2)
    s, sigma = 1.0, 0.3
    x = (s * rng.normal(size=(4000, 2))).astype(np.float32)
    model = dae(std=sigma, hidden=[64])
    config = aekit.TrainConfig(epochs=40, batch_size=64, lr=3e-3, lr_schedule="cosine", seed=0)
    aekit.Trainer(model, config, progress=False).fit(x)
    noisy = x[:1000] + sigma * rng.normal(size=(1000, 2)).astype(np.float32)
    p_sigma = torch.distributions.MultivariateNormal(
        torch.zeros(2, dtype=torch.float64), (s**2 + sigma**2) * torch.eye(2, dtype=torch.float64)
    )
    found = score_alignment(denoising_field(model, noisy), sigma**2 * log_density_gradient(p_sigma.log_prob, noisy))
    assert found["cosine"] > 0.95 and found["relative_error"] < 0.4


def test_score_alignment_refuses_mismatched_inputs():
    with pytest.raises(AekitError):
        score_alignment(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(AekitError, match="weights"):
        score_alignment(np.ones((3, 2)), np.ones((3, 2)), weights=np.zeros(3))


# ------------------------------------------------------------------------------------------------ #
# the chain


def test_the_chain_keeps_shapes_and_seeds():
    model = dae()
    start = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    chain = denoising_chain(model, start, steps=20, burn_in=5, thin=3, seed=4)
    assert chain.states.shape == (5, 5, 2) and chain.states.dtype == np.float32
    assert chain.steps.tolist() == [8, 11, 14, 17, 20]
    assert chain.samples.shape == (5, 2)
    again = denoising_chain(model, start, steps=20, burn_in=5, thin=3, seed=4)
    np.testing.assert_array_equal(chain.states, again.states)
    other = denoising_chain(model, start, steps=20, burn_in=5, thin=3, seed=5)
    assert not np.allclose(chain.states, other.states)
    images = dae(shape=(1, 4, 4), likelihood="bernoulli")
    chain = denoising_chain(images, np.full((3, 1, 4, 4), 0.5, np.float32), steps=4)
    assert chain.states.shape == (4, 3, 1, 4, 4) and set(np.unique(chain.states)) <= {0.0, 1.0}


def test_one_chain_move_is_corruption_then_the_reconstruction_draw():
    model = dae(likelihood={"name": "gaussian", "learn_sigma": "shared"}).eval()
    start = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    chain = denoising_chain(model, start, steps=1, seed=9)
    generator = torch.Generator().manual_seed(9)
    with torch.no_grad():
        corrupted = model.corruption.corrupt(torch.as_tensor(start), generator)
        expected = model.likelihood.sample(model.decode(model.encode(corrupted)), generator)
    np.testing.assert_allclose(chain.samples, expected.numpy(), rtol=1e-6)
    # a fixed-sigma Gaussian's spread is a convention of the loss: auto reads its mean
    fixed = dae()
    mean_chain = denoising_chain(fixed, start, steps=1, seed=9)
    generator = torch.Generator().manual_seed(9)
    with torch.no_grad():
        expected = fixed.reconstruct(fixed.corruption.corrupt(torch.as_tensor(start), generator))
    np.testing.assert_allclose(mean_chain.samples, expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"steps": 0}, "0 steps"),
        ({"steps": 5, "burn_in": 5}, "burn-in 5"),
        ({"steps": 5, "thin": 0}, "thinning 0"),
        ({"steps": 5, "draw": "mode"}, "unknown draw"),
    ],
)
def test_bad_chain_settings_are_clear_errors(options, match):
    with pytest.raises(AekitError, match=match):
        denoising_chain(dae(), np.zeros((2, 2), np.float32), **options)


def test_a_chain_needs_a_corruption_and_starts_shaped_like_the_data():
    plain = aekit.make_model("undercomplete", (2,), 1, hidden=[8])
    with pytest.raises(AekitError, match="without a corruption"):
        denoising_chain(plain, np.zeros((2, 2), np.float32), steps=2)
    with pytest.raises(AekitError, match="chain starts of shape"):
        denoising_chain(dae(), np.zeros((2, 3), np.float32), steps=2)


# ------------------------------------------------------------------------------------------------ #
# walk-back


def test_walkback_trains_on_corruptions_of_the_models_own_draws():
    model = dae(likelihood={"name": "gaussian", "learn_sigma": "shared"})
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32))
    step = AutoencoderStep(model, walkback=2).train()
    inputs = step.walkback_inputs(x, torch.Generator().manual_seed(3))
    assert len(inputs) == 3 and all(i.shape == x.shape for i in inputs)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        first = model.corruption.corrupt(x, generator)
        drawn = model.likelihood.sample(model.decode(model.encode(first)), generator)
        second = model.corruption.corrupt(drawn, generator)
    torch.testing.assert_close(inputs[0], first)
    torch.testing.assert_close(inputs[1], second)
    # the loss is the mean over the three pairs, each scored against the clean x
    loss = step(x, torch.Generator().manual_seed(3))
    pairs = [model.loss(x, corrupted=i, noisy=True, generator=torch.Generator().manual_seed(0)) for i in inputs]
    torch.testing.assert_close(loss.terms["nll"], torch.stack([p.terms["nll"] for p in pairs]).mean())
    # without walk-back the step is the plain objective on C(x)
    plain = AutoencoderStep(model).train()(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(plain.terms["nll"], pairs[0].terms["nll"])


def test_walkback_needs_a_corruption():
    plain = aekit.make_model("undercomplete", (2,), 1, hidden=[8])
    x = np.zeros((20, 2), np.float32)
    with pytest.raises(AekitError, match="without a corruption"):
        aekit.Trainer(plain, aekit.TrainConfig(epochs=1, walkback=1), progress=False).fit(x)
    walked = aekit.Trainer(dae(), aekit.TrainConfig(epochs=1, walkback=2, batch_size=8), progress=False).fit(x + 1)
    assert walked.steps > 0


# ------------------------------------------------------------------------------------------------ #
# sample measures


def test_frechet_distance_of_shifted_and_equal_features():
    a = np.random.default_rng(0).normal(size=(400, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + np.array([1.0, 2.0, 0.0])) == pytest.approx(5.0, abs=1e-6)
    b = 2 * (a - a.mean(0)) + a.mean(0)  # same mean, covariance x4: tr(C + 4C - 2 * 2C) = tr(C)
    assert frechet_distance(a, b) == pytest.approx(np.trace(np.cov(a, rowvar=False)), rel=1e-6)


def test_parzen_log_likelihood_is_the_kernel_mixture_and_picks_its_bandwidth_on_validation():
    rng = np.random.default_rng(0)
    samples, held_out, validation = rng.normal(size=(300, 2)), rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    found = parzen_log_likelihood(samples, held_out, validation, bandwidths=[0.3])
    kernels = scipy.stats.norm.logpdf(held_out[:, None, :] - samples[None], scale=0.3).sum(-1)
    expected = (scipy.special.logsumexp(kernels, axis=1) - np.log(len(samples))).mean()
    assert found == pytest.approx({"log_likelihood": expected, "bandwidth": 0.3})
    picked = parzen_log_likelihood(samples, held_out, validation, bandwidths=[0.01, 0.4, 5.0])
    assert picked["bandwidth"] == 0.4


# ------------------------------------------------------------------------------------------------ #
# the command line


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from aekit.data import load_dataset

    folder = tmp_path_factory.mktemp("chains")
    images = (load_dataset("embedded", split="test").x[:200] * 255).astype(np.uint8)
    np.save(folder / "x.npy", images)
    for family in ("denoising", "undercomplete"):
        argv = ["train", "--family", family, "--data", folder / "x.npy", "--code-size", "4", "--hidden", "32"]
        argv += ["--epochs", "1", "--out", folder / family, "--no-progress"]
        assert main([str(a) for a in argv]) == 0
    return folder


def test_sample_from_the_chain_writes_a_figure_and_the_last_states(runs, tmp_path, capsys):
    argv = ["sample", runs / "denoising", "--from", "chain", "--steps", "6", "--burn-in", "2", "--thin", "2"]
    code, out, err = run(capsys, *argv, "--chains", "5", "--data", runs / "x.npy", "--out", tmp_path / "c.png")
    assert code == 0, err
    assert "5 chains of 6 moves" in out
    assert np.load(tmp_path / "c.npy").shape == (5, 1, 28, 28)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    # the samples file is never replaced without --force
    code, _, err = run(capsys, *argv, "--data", runs / "x.npy", "--out", tmp_path / "d.png")
    assert code == 0
    code, _, err = run(capsys, *argv, "--data", runs / "x.npy", "--out", tmp_path / "c.png", "--force")
    assert code == 0
    (tmp_path / "e.npy").write_bytes(b"mine")
    code, _, err = run(capsys, *argv, "--out", tmp_path / "e.png")
    assert code == 2 and "e.npy exists" in err and (tmp_path / "e.npy").read_bytes() == b"mine"


def test_sample_from_the_chain_of_a_model_without_corruption_is_a_clear_error(runs, tmp_path, capsys):
    code, _, err = run(capsys, "sample", runs / "undercomplete", "--from", "chain", "--out", tmp_path / "c.png")
    assert code == 2 and "--from chain" in err and "Traceback" not in err
    assert not (tmp_path / "c.png").exists()
    argv = ["sample", runs / "denoising", "--from", "chain", "--steps", "5", "--burn-in", "5"]
    code, _, err = run(capsys, *argv, "--out", tmp_path / "c.png")
    assert code == 2 and "--burn-in 5" in err
