"""Likelihoods and the Gaussian posterior against torch.distributions."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from aekit.latents import GaussianPosterior
from aekit.likelihoods import BernoulliLikelihood, GaussianLikelihood


def test_gaussian_nll_with_fixed_sigma_equals_normal_log_prob():
    torch.manual_seed(0)
    params, x = torch.randn(5, 2, 3, 4), torch.randn(5, 2, 3, 4)
    likelihood = GaussianLikelihood(sigma=0.7)
    expected = -Normal(params, 0.7).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(likelihood.nll(params, x), expected)


@pytest.mark.parametrize("learn_sigma", ["shared", "per_dimension"])
def test_gaussian_nll_with_learned_sigma_equals_normal_log_prob(learn_sigma):
    torch.manual_seed(0)
    params, x = torch.randn(5, 12), torch.randn(5, 12)
    likelihood = GaussianLikelihood(sigma=0.5, learn_sigma=learn_sigma, data_shape=[12])
    with torch.no_grad():
        likelihood.log_sigma.copy_(torch.randn_like(likelihood.log_sigma) * 0.3)
    sigma = likelihood.log_sigma.exp()
    expected = -Normal(params, sigma.expand_as(x)).log_prob(x).sum(1)
    torch.testing.assert_close(likelihood.nll(params, x), expected)
    likelihood.nll(params, x).sum().backward()
    assert likelihood.log_sigma.grad is not None and likelihood.log_sigma.grad.abs().sum() > 0


def test_learned_sigma_never_goes_below_its_floor():
    likelihood = GaussianLikelihood(learn_sigma="shared", min_sigma=1e-2)
    with torch.no_grad():
        likelihood.log_sigma.fill_(-50.0)
    x = torch.zeros(2, 3)
    expected = -Normal(0.0, 1e-2).log_prob(torch.zeros(2, 3)).sum(1)
    torch.testing.assert_close(likelihood.nll(x, x), expected)


def test_bernoulli_nll_equals_bernoulli_log_prob_on_logits():
    torch.manual_seed(0)
    logits = torch.randn(6, 1, 4, 4) * 5
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.4))
    expected = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(BernoulliLikelihood().nll(logits, x), expected)


def test_bernoulli_nll_is_finite_for_confident_logits():
    logits = torch.tensor([[200.0, -200.0]])
    nll = BernoulliLikelihood().nll(logits, torch.tensor([[0.0, 1.0]]))
    assert torch.isfinite(nll).all() and nll.item() == pytest.approx(400.0)


def test_means_and_samples():
    torch.manual_seed(0)
    logits = torch.randn(2000, 3)
    bern = BernoulliLikelihood()
    torch.testing.assert_close(bern.mean(logits), torch.sigmoid(logits))
    samples = bern.sample(logits.expand(50, 2000, 3).reshape(-1, 3))
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    gauss = GaussianLikelihood(sigma=0.5)
    draws = gauss.sample(torch.zeros(20000, 2), torch.Generator().manual_seed(0))
    assert draws.std().item() == pytest.approx(0.5, rel=0.02)


def test_analytic_kl_equals_torch_distributions_and_monte_carlo():
    torch.manual_seed(0)
    mean, logvar = torch.randn(4, 3), torch.randn(4, 3)
    q = GaussianPosterior(mean, logvar)
    prior = Normal(torch.zeros(4, 3), torch.ones(4, 3))
    exact = kl_divergence(Normal(mean, (0.5 * logvar).exp()), prior).sum(1)
    torch.testing.assert_close(q.kl_to_standard_normal(), exact)
    draws = torch.stack([q.sample(torch.Generator().manual_seed(i)) for i in range(20000)])  # (S, B, K)
    monte_carlo = (q.log_prob(draws) - prior.log_prob(draws).sum(-1)).mean(0)
    torch.testing.assert_close(monte_carlo, exact, atol=0.05, rtol=0.03)


def test_posterior_log_prob_equals_normal_and_sampling_is_reparameterised():
    mean = torch.randn(3, 2, requires_grad=True)
    logvar = torch.randn(3, 2, requires_grad=True)
    q = GaussianPosterior(mean, logvar)
    z = q.sample(torch.Generator().manual_seed(0))
    expected = Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(q.log_prob(z), expected)
    z.sum().backward()
    assert mean.grad is not None and logvar.grad is not None and logvar.grad.abs().sum() > 0
    assert math.isclose(float(mean.grad.sum()), 6.0)


@pytest.mark.parametrize("likelihood", [BernoulliLikelihood(), GaussianLikelihood(sigma=0.3)], ids=["bern", "gauss"])
def test_nll_broadcasts_many_decodings_of_one_batch(likelihood):
    torch.manual_seed(0)
    params, x = torch.randn(3, 4, 1, 2, 5), torch.rand(4, 1, 2, 5).round()  # (S, B, *data_shape), (B, ...)
    expected = torch.stack([likelihood.nll(p, x) for p in params])  # (S, B)
    torch.testing.assert_close(likelihood.nll(params, x), expected)
