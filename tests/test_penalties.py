"""Penalties against torch.func.jacrev, finite differences and closed forms from scipy."""

import numpy as np
import pytest
import scipy.special
import torch
from torch.func import jacrev

import aekit
from aekit.penalties import L1Activity, StepContext


def context(model, x, generator=None):
    x_input = x.detach().requires_grad_(True)
    h = model.encoder(x_input)
    z, q = model.latent(h, stochastic=False)
    params = model.decoder(z)
    return StepContext(
        x, x_input, h, z, q, params, model.likelihood.nll(params, x), model.latent.mean, generator,
        encoder_weight=getattr(model.encoder, "affine_weight", None),
    )  # fmt: skip


def jacobian_frobenius(model, x):
    """||d code / d x||_F^2 per example, from torch.func.jacrev (B,)."""

    def code(single):
        return model.latent.mean(model.encoder(single[None]))[0]

    return torch.stack([jacrev(code)(example).pow(2).sum() for example in x])


def test_exact_contractive_penalty_equals_jacrev():
    torch.manual_seed(0)
    model = aekit.make_model("contractive", (1, 5, 4), 6, hidden=[])
    penalty = model.penalties[0]
    assert penalty._exact and not penalty.needs_input_grad
    x = torch.rand(7, 1, 5, 4)
    expected = jacobian_frobenius(model, x).mean()
    torch.testing.assert_close(penalty(context(model, x)), expected, rtol=1e-5, atol=1e-6)


def test_jacrev_agrees_with_finite_differences():
    torch.manual_seed(0)
    model = aekit.make_model("contractive", (6,), 3, hidden=[5]).double()
    x = torch.rand(1, 6, dtype=torch.float64)
    step = 1e-6
    columns = []
    for i in range(6):
        delta = torch.zeros_like(x)
        delta[0, i] = step
        plus = model.latent.mean(model.encoder(x + delta))
        minus = model.latent.mean(model.encoder(x - delta))
        columns.append(((plus - minus) / (2 * step))[0])
    finite = torch.stack(columns, 1).pow(2).sum()
    torch.testing.assert_close(jacobian_frobenius(model, x)[0], finite, rtol=1e-6, atol=1e-9)


def test_projection_estimator_is_unbiased_for_a_deep_encoder():
    torch.manual_seed(0)
    model = aekit.make_model("contractive", (1, 5, 4), 4, hidden=[8], estimator="projection")
    penalty = model.penalties[0]
    assert penalty.needs_input_grad
    x = torch.rand(16, 1, 5, 4)
    expected = jacobian_frobenius(model, x).mean()
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([penalty(context(model, x, generator)).detach() for _ in range(2000)])
    standard_error = draws.std() / np.sqrt(len(draws))
    assert abs(draws.mean() - expected) < 4 * standard_error
    assert abs(draws.mean() - expected) / expected < 0.03


def test_projection_estimator_equals_exact_form_in_expectation_on_one_layer():
    torch.manual_seed(0)
    exact_model = aekit.make_model("contractive", (10,), 4, hidden=[], estimator="exact")
    projected = aekit.make_model("contractive", (10,), 4, hidden=[], estimator="projection")
    projected.load_state_dict(exact_model.state_dict())
    x = torch.rand(32, 10)
    exact = exact_model.penalties[0](context(exact_model, x))
    generator = torch.Generator().manual_seed(1)
    draws = torch.stack([projected.penalties[0](context(projected, x, generator)).detach() for _ in range(2000)])
    assert abs(draws.mean() - exact) / exact < 0.03


def test_contractive_penalty_trains_through_the_model():
    torch.manual_seed(0)
    model = aekit.make_model("contractive", (1, 5, 4), 3, hidden=[8], weight=1.0)
    out = model.train().loss(torch.rand(4, 1, 5, 4))
    out.total.backward()
    first = model.encoder.linear_layers[0].weight.grad
    assert first is not None and torch.isfinite(first).all() and first.abs().sum() > 0


def test_l1_activity_is_the_mean_l1_norm_of_the_code():
    torch.manual_seed(0)
    model = aekit.make_model("sparse", (6,), 4, hidden=[5], sparsity="l1")
    x = torch.rand(9, 6)
    ctx = context(model, x)
    expected = torch.relu(model.encoder(x)).abs().sum(1).mean()
    torch.testing.assert_close(model.penalties[0](ctx), expected)


def test_kl_sparsity_equals_bernoulli_relative_entropy():
    torch.manual_seed(0)
    model = aekit.make_model("sparse", (6,), 4, hidden=[5], sparsity="kl", rho=0.1)
    x = torch.rand(9, 6)
    rho_hat = torch.sigmoid(model.encoder(x)).mean(0).detach().numpy().astype(np.float64)
    expected = (scipy.special.rel_entr(0.1, rho_hat) + scipy.special.rel_entr(0.9, 1 - rho_hat)).sum()
    assert model.penalties[0](context(model, x)).item() == pytest.approx(expected, rel=1e-5)


def test_kl_penalty_is_the_mean_analytic_kl_and_weight_is_beta():
    torch.manual_seed(0)
    model = aekit.make_model("vae", (6,), 2, hidden=[5], beta=4.0)
    x = torch.rand(9, 6)
    ctx = context(model, x)
    torch.testing.assert_close(model.penalties[0](ctx), ctx.posterior.kl_to_standard_normal().mean())
    out = model.train().loss(x)
    assert model.penalties[0].weight == 4.0
    torch.testing.assert_close(out.total, out.terms["nll"] + out.terms["kl"])


def test_negative_weights_and_bad_rho_are_refused():
    with pytest.raises(aekit.AekitError, match="negative"):
        aekit.make_model("sparse", (6,), 2, weight=-1.0)
    with pytest.raises(aekit.AekitError, match="outside"):
        aekit.make_model("sparse", (6,), 2, sparsity="kl", rho=1.5)


def test_l1_of_a_code_marked_non_negative_equals_the_absolute_values():
    h = torch.randn(6, 5, requires_grad=True)
    penalty = L1Activity()
    marked = h.relu()
    marked.nonnegative = True  # the dictionary latents say so of their codes
    ctx = StepContext(None, None, h, marked, None, None, None, None)
    ctx._code = marked
    value = penalty(ctx)
    (grad,) = torch.autograd.grad(value, h)
    torch.testing.assert_close(value, h.relu().abs().sum(1).mean())
    (expected,) = torch.autograd.grad(h.relu().abs().sum(1).mean(), h)
    torch.testing.assert_close(grad, expected)
