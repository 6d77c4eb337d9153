"""Importance-sampled log-likelihood, the IWAE objective, free bits and KL warm-up.

The oracle is probabilistic PCA built from aekit parts: a linear decoder z -> W z + mu with a fixed
Gaussian likelihood and z ~ N(0, I) has p(x) = N(mu, W W^T + sigma^2 I) exactly. With orthogonal
columns in W the exact posterior is a diagonal Gaussian that a linear encoder can represent, and
then every importance weight equals p(x).
"""

import itertools
import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import aekit
from aekit import registry
from aekit.latents import GaussianLatent
from aekit.likelihoods import GaussianLikelihood
from aekit.metrics import importance_sampled_nll
from aekit.model import Autoencoder
from aekit.penalties import ImportanceWeighted

D, K, SIGMA = 6, 2, 0.5


def ppca(exact_posterior=True, penalties=()):
    """(model, oracle): a pPCA model from aekit parts and its exact marginal N(mu, W W^T + sigma^2 I)."""
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(D, K, generator=g))  # (D, K) orthonormal columns
    s = torch.tensor([2.0, 1.0])
    w, mu = u * s, torch.randn(D, generator=g)
    encoder = registry.build("encoder", {"name": "mlp", "in_shape": [D], "out_shape": [2 * K], "hidden": []})
    decoder = registry.build("decoder", {"name": "mlp", "in_shape": [K], "out_shape": [D], "hidden": []})
    model = Autoencoder(encoder, GaussianLatent(K), decoder, GaussianLikelihood(sigma=SIGMA), list(penalties))
    posterior_var = SIGMA**2 / (s**2 + SIGMA**2)  # (K,)
    to_mean = (s / (s**2 + SIGMA**2))[:, None] * u.T  # (K, D): E[z|x] = to_mean (x - mu)
    if not exact_posterior:  # a worse proposal: shrunk means, wider variances
        to_mean, posterior_var = 0.6 * to_mean, 3.0 * posterior_var
    with torch.no_grad():
        decoder.linear_layers[0].weight.copy_(w)
        decoder.linear_layers[0].bias.copy_(mu)
        layer = encoder.linear_layers[0]
        layer.weight.zero_()
        layer.weight[:K] = to_mean
        layer.bias[:K] = -to_mean @ mu
        layer.bias[K:] = posterior_var.log()
    oracle = MultivariateNormal(mu, w @ w.T + SIGMA**2 * torch.eye(D))
    return model.eval(), oracle


@pytest.fixture(scope="module")
def data():
    _, oracle = ppca()
    torch.manual_seed(1)
    return oracle.sample((300,))


def test_exact_posterior_gives_the_exact_log_likelihood_for_any_k_and_chunking(data):
    model, oracle = ppca()
    exact = -oracle.log_prob(data).numpy()
    for samples, max_rows in [(1, 32768), (7, 32768), (7, 90), (50, 7)]:
        estimate = importance_sampled_nll(model, data, samples, batch_size=64, max_rows=max_rows)
        assert estimate.shape == (len(data),)
        np.testing.assert_allclose(estimate, exact, rtol=1e-5, atol=1e-4)


def test_estimate_tightens_with_k_and_reaches_the_exact_value(data):
    model, oracle = ppca(exact_posterior=False)
    exact = float(-oracle.log_prob(data).mean())
    means = {k: importance_sampled_nll(model, data, k, seed=3).mean() for k in (1, 10, 100, 3000)}
    gaps = [means[k] - exact for k in (1, 10, 100, 3000)]
    assert gaps[0] > 0.3  # the one-sample bound is loose for this proposal
    assert all(a > b for a, b in itertools.pairwise(gaps)), gaps
    assert abs(gaps[-1]) < 0.01, gaps


def test_iwae_objective_is_the_bound_and_equals_minus_log_p_with_the_exact_posterior(data):
    model, oracle = ppca(penalties=[ImportanceWeighted(samples=4)])
    model.requires_grad_(False)
    out = model.loss(data[:50], generator=torch.Generator().manual_seed(0), noisy=True)
    assert set(out.terms) == {"nll", "iwae"}
    assert math.isclose(float(out.total), float(-oracle.log_prob(data[:50]).mean()), rel_tol=1e-5)
    # with a poor proposal the objective is -log mean_s w_s of the model's own weights
    model, _ = ppca(exact_posterior=False, penalties=[ImportanceWeighted(samples=4)])
    model.requires_grad_(False)
    out = model.loss(data[:50], generator=torch.Generator().manual_seed(5), noisy=True)
    g = torch.Generator().manual_seed(5)
    q = model.latent.posterior(model.encoder(data[:50]))
    q.sample(g)  # the loss's own one-sample reconstruction draw comes first
    log_w = model.log_importance_weights(data[:50], 4, g, posterior=q)
    assert math.isclose(float(out.total), float((math.log(4) - torch.logsumexp(log_w, 0)).mean()), rel_tol=1e-5)


def test_iwae_training_lowers_the_bound():
    g = torch.Generator().manual_seed(0)
    prototypes = (torch.rand(4, 1, 6, 5, generator=g) > 0.5).float()
    flips = (torch.rand(128, 1, 6, 5, generator=g) < 0.05).float()
    x = (prototypes[torch.arange(128) % 4] - flips).abs()  # 4 patterns, 5 % of the bits flipped
    torch.manual_seed(0)
    model = aekit.make_model("vae", (1, 6, 5), 3, hidden=[16], importance_samples=5)
    assert [p.spec() for p in model.penalties] == [{"name": "iwae", "weight": 1.0, "samples": 5}]
    before = importance_sampled_nll(model, x, 50).mean()
    aekit.Trainer(model, aekit.TrainConfig(epochs=20, batch_size=32, lr=3e-3), progress=False).fit(x)
    assert importance_sampled_nll(model, x, 50).mean() < before - 1.0


def test_free_bits_floor_each_units_batch_mean_kl():
    torch.manual_seed(0)
    model = aekit.make_model("vae", (8,), 4, hidden=[], likelihood="gaussian", free_bits=0.3)
    x = torch.randn(32, 8)
    with torch.no_grad():
        q = model.latent.posterior(model.encoder(x))
        per_unit = kl_divergence(Normal(q.mean, q.std), Normal(0.0, 1.0)).mean(0)  # (K,)
        out = model.loss(x, noisy=True, generator=torch.Generator().manual_seed(0))
    assert math.isclose(float(out.terms["kl"]), float(per_unit.clamp(min=0.3).sum()), rel_tol=1e-5)
    assert float(per_unit.min()) < 0.3  # the floor is active for some unit
    plain = aekit.make_model("vae", (8,), 4, hidden=[], likelihood="gaussian")
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        plain_kl = plain.loss(x, noisy=True, generator=torch.Generator().manual_seed(0)).terms["kl"]
    assert math.isclose(float(plain_kl), float(per_unit.sum()), rel_tol=1e-5)


def test_kl_warmup_ramps_the_penalty_weights_step_by_step():
    x = torch.rand(80, 1, 6, 5, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = aekit.make_model("vae", (1, 6, 5), 3, hidden=[8])
    config = aekit.TrainConfig(epochs=3, batch_size=16, val_fraction=0.0, penalty_warmup_epochs=2)
    seen = []
    original = model.loss

    def recording(*args, **kwargs):
        if model.training:
            seen.append(float(kwargs["penalty_scale"]))  # a buffer filled in place: read it now
        return original(*args, **kwargs)

    model.loss = recording
    aekit.Trainer(model, config, progress=False).fit(x)
    assert seen == pytest.approx([min(1.0, step / 10) for step in range(15)])  # 5 steps an epoch, ramp over 10


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: importance_sampled_nll(ppca()[0], torch.zeros(3, D), 0), "at least one sample"),
        (lambda: ppca()[0].log_importance_weights(torch.zeros(3, D), -2), "at least one sample"),
        (lambda: importance_sampled_nll(aekit.make_model("undercomplete", (8,), 2), torch.zeros(3, 8)), "no prior"),
        (lambda: aekit.make_model("hashing", (8,), 2).latent.prior_sample(4), "has no prior"),
        (lambda: aekit.make_model("vae", (8,), 2, importance_samples=3, free_bits=0.1), "do not combine"),
        (lambda: registry.build("penalty", {"name": "iwae", "samples": 0}), "at least one"),
        (lambda: registry.build("penalty", {"name": "kl", "free_bits": -1}), "negative"),
        (lambda: aekit.TrainConfig(penalty_warmup_epochs=-1).validate(), "penalty_warmup_epochs"),
    ],
)
def test_bad_inputs_are_clear_errors(build, match):
    with pytest.raises(aekit.AekitError, match=match):
        build()


def test_iwae_refuses_a_kl_penalty_or_a_latent_without_prior():
    config = aekit.family_config("vae", (8,), 2)
    config.penalties = [{"name": "kl"}, {"name": "iwae"}]
    with pytest.raises(aekit.AekitError, match="already contain the KL"):
        aekit.Autoencoder.from_config(config)
    config = aekit.family_config("undercomplete", (8,), 2)
    config.penalties = [{"name": "iwae"}]
    with pytest.raises(aekit.AekitError, match="needs a latent with a prior"):
        aekit.Autoencoder.from_config(config)
