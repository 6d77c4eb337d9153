"""Sampling, the ex-post code mixture, interpolation, traversals, tangent planes and their figures."""

import io
import math

import numpy as np
import pytest
import scipy.stats
import torch

import aekit
from aekit.applications import generation, manifold
from aekit.plots import code_scatter, image_grids, labelled_images, spectra, tangent_rows


def small(family="vae", **options):
    torch.manual_seed(0)
    return aekit.make_model(family, (1, 6, 5), 3, hidden=[12], **options).eval()


def test_prior_samples_are_seeded_decodings_of_standard_normal_codes():
    model = small()
    codes, images = generation.sample_prior(model, 500, seed=3)
    assert codes.shape == (500, 3) and images.shape == (500, 1, 6, 5)
    assert ((images >= 0) & (images <= 1)).all()  # Bernoulli means
    assert scipy.stats.kstest(codes.ravel(), "norm").pvalue > 0.01
    with torch.no_grad():
        expected = torch.sigmoid(model.decode(torch.as_tensor(codes))).numpy()
    np.testing.assert_allclose(images, expected, rtol=1e-6)
    np.testing.assert_array_equal(generation.sample_prior(model, 500, seed=3)[0], codes)


def test_sampling_a_model_without_a_prior_is_a_clear_error():
    with pytest.raises(aekit.AekitError, match=r"'deterministic' latent has no prior p\(z\).*mixture"):
        generation.sample_prior(small("undercomplete"), 4)
    with pytest.raises(aekit.AekitError, match="at least one"):
        generation.sample_prior(small(), 0)


def mixture_cdf(mixture, direction, t):
    """CDF of the 1-D projection direction . z under the fitted Gaussian mixture."""
    gm = mixture.gaussian_mixture_
    means = gm.means_ @ direction
    stds = np.sqrt(np.einsum("i,kij,j->k", direction, gm.covariances_, direction))
    return sum(w * scipy.stats.norm.cdf(t, m, s) for w, m, s in zip(gm.weights_, means, stds, strict=True))


def test_code_mixture_draws_come_from_the_fitted_mixture():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [4.0, 1.0], [-2.0, 5.0]])
    codes = np.concatenate([rng.normal(c, [0.5, 1.0], (400, 2)) for c in centres])
    mixture = generation.CodeMixture(n_components=3, seed=0).fit(codes)
    draws = mixture.sample(3000, seed=1)
    assert draws.shape == (3000, 2) and draws.dtype == np.float32
    for angle in (0.0, 1.0, 2.0):  # projections of the draws follow the mixture's projected CDF
        direction = np.array([math.cos(angle), math.sin(angle)])
        result = scipy.stats.kstest(draws @ direction, lambda t, d=direction: mixture_cdf(mixture, d, t))
        assert result.pvalue > 0.01, (angle, result)
    gm = mixture.gaussian_mixture_
    mean = gm.weights_ @ gm.means_
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.15)
    # the log density is the mixture's: sum_k w_k N(z; mu_k, Sigma_k)
    density = sum(
        w * scipy.stats.multivariate_normal(m, c).pdf(draws[:5])
        for w, m, c in zip(gm.weights_, gm.means_, gm.covariances_, strict=True)
    )
    np.testing.assert_allclose(mixture.score_samples(draws[:5]), np.log(density), rtol=1e-6)
    np.testing.assert_array_equal(mixture.sample(50, seed=1), mixture.sample(50, seed=1))
    assert not np.array_equal(mixture.sample(50, seed=1), mixture.sample(50, seed=2))


def test_code_mixture_refuses_too_few_codes_or_sampling_before_fit():
    with pytest.raises(aekit.AekitError, match="one example per component"):
        generation.CodeMixture(n_components=10).fit(np.zeros((5, 2)))
    with pytest.raises(aekit.AekitError, match="not fitted"):
        generation.CodeMixture().sample(3)


def test_mixture_sampling_works_for_a_plain_autoencoder(images):
    model = aekit.make_model("undercomplete", (1, 9, 7), 3, hidden=[12]).eval()
    codes, decoded, mixture = generation.sample_mixture(model, images, 20, n_components=2)
    assert codes.shape == (20, 3) and decoded.shape == (20, 1, 9, 7)
    assert mixture.gaussian_mixture_.means_.shape == (2, 3)


def test_slerp_keeps_norms_moves_at_constant_angular_speed_and_hits_the_ends():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)
    b *= np.linalg.norm(a) / np.linalg.norm(b)  # equal norms
    t = np.linspace(0, 1, 9)
    path = generation.slerp(a, b, t)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-10)
    np.testing.assert_allclose(path[[0, -1]], [a, b], atol=1e-12)
    unit = path / np.linalg.norm(path, axis=1, keepdims=True)
    steps = np.arccos(np.clip((unit[:-1] * unit[1:]).sum(1), -1, 1))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-6)
    # unequal norms: the norm moves linearly while the straight segment sags towards the origin
    c = 3 * rng.normal(size=16)
    norms = np.linalg.norm(generation.slerp(a, c, t), axis=1)
    np.testing.assert_allclose(norms, (1 - t) * np.linalg.norm(a) + t * np.linalg.norm(c), rtol=1e-10)
    assert np.linalg.norm(generation.lerp(a, b, np.array([0.5]))) < 0.9 * np.linalg.norm(a)
    with pytest.raises(aekit.AekitError, match="opposite directions"):
        generation.slerp(a, -a, t)


@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_interpolation_between_two_inputs_starts_and_ends_at_their_codes(images, method):
    model = aekit.make_model("vae", (1, 9, 7), 3, hidden=[12]).eval()
    codes, decoded = generation.interpolate(model, images[0], images[1:2], steps=6, method=method)
    assert codes.shape == (6, 3) and decoded.shape == (6, 1, 9, 7)
    with torch.no_grad():
        np.testing.assert_allclose(codes[[0, -1]], model.encode(images[:2]).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(decoded[[0, -1]], model.reconstruct(images[:2]).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, x: generation.interpolate(m, x[0], x[1, :, :8]), r"shapes \(1, 9, 7\) and \(1, 8, 7\)"),
        (lambda m, x: generation.interpolate(m, x[0, :, :8], x[1, :, :8]), "do not fit this model"),
        (lambda m, x: generation.interpolate(m, x[0], x[1], method="cubic"), "unknown interpolation"),
        (lambda m, x: generation.interpolate(m, x[0], x[1], steps=1), "steps >= 2"),
        (lambda m, x: generation.traverse(m, x[0], dims=[3]), "units 0 to 2"),
        (lambda m, x: generation.decode_codes(m, np.zeros((2, 4))), r"decodes \(N, 3\) codes"),
        (lambda m, x: manifold.tangent_plane(m, x[:2]), "single example"),
    ],
)
def test_bad_generation_inputs_are_clear_errors(images, call, match):
    model = aekit.make_model("vae", (1, 9, 7), 3, hidden=[12]).eval()
    with pytest.raises(aekit.AekitError, match=match):
        call(model, images.numpy())


def test_traversal_changes_one_unit_per_row(images):
    model = aekit.make_model("vae", (1, 9, 7), 3, hidden=[12]).eval()
    codes, decoded = generation.traverse(model, images[0], dims=[0, 2], offsets=[-1, 0, 1], scale=[2, 2, 0.5])
    assert codes.shape == (2, 3, 3) and decoded.shape == (2, 3, 1, 9, 7)
    centre = model.encode(images[:1]).detach().numpy()[0]
    np.testing.assert_allclose(codes[0, :, 0], centre[0] + np.array([-2, 0, 2]), rtol=1e-6)
    np.testing.assert_allclose(codes[1, :, 2], centre[2] + np.array([-0.5, 0, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(codes[0, :, 1:], np.broadcast_to(centre[1:], (3, 2)), rtol=1e-6)


# ------------------------------------------------------------------------------------------------ #
# tangent planes


def test_jacobian_and_tangent_directions_match_finite_differences():
    torch.manual_seed(0)
    model = aekit.make_model("contractive", (1, 6, 5), 4, hidden=[10], activation="tanh").double().eval()
    x = torch.rand(1, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def code(v):
        with torch.no_grad():
            return model.latent.mean(model.encoder(v.reshape(1, 1, 6, 5)))[0]

    jacobian = manifold.encoder_jacobian(model, x)  # (4, 30)
    eps = 1e-6
    eye = torch.eye(30, dtype=torch.float64)
    finite = torch.stack([(code(x.flatten() + eps * e) - code(x.flatten() - eps * e)) / (2 * eps) for e in eye], 1)
    torch.testing.assert_close(jacobian, finite, rtol=1e-6, atol=1e-9)
    plane = manifold.tangent_plane(model, x, k=2)
    for sigma, direction in zip(plane.singular_values[:2], plane.directions, strict=True):
        v = torch.as_tensor(direction, dtype=torch.float64).flatten()
        moved = (code(x.flatten() + eps * v) - code(x.flatten() - eps * v)) / (2 * eps)  # = J v
        assert math.isclose(float(moved.norm()), float(sigma), rel_tol=1e-5)
    assert np.isclose(np.linalg.norm(plane.directions.reshape(2, -1), axis=1), 1).all()


def smooth_image():
    r, c = np.mgrid[0:14, 0:14]
    return np.exp(-((r - 5) ** 2 + (c - 4) ** 2) / 5.0) + 0.7 * np.exp(-((r - 8) ** 2 + (c - 10) ** 2) / 3.0)


def test_contractive_autoencoder_recovers_the_tangent_of_vertical_translation():
    image = smooth_image()
    x = manifold.vertical_translations(image, np.random.default_rng(0).uniform(-3, 3, 200))
    t0, eps = 0.3, 1e-2
    ends = manifold.vertical_translations(image, [t0 + eps, t0 - eps])
    derivative = ((ends[0] - ends[1]) / (2 * eps)).ravel()  # d image / d shift, finite difference
    derivative /= np.linalg.norm(derivative)
    point = manifold.vertical_translations(image, [t0])[0]
    cosines = {}
    for family, options in [("contractive", {"weight": 0.1}), ("undercomplete", {"code_activation": "sigmoid"})]:
        torch.manual_seed(0)
        model = aekit.make_model(family, (1, 14, 14), 16, hidden=[], **options)
        config = aekit.TrainConfig(epochs=60, batch_size=20, lr=1e-2, val_fraction=0.0)
        aekit.Trainer(model, config, progress=False).fit(x)
        leading = manifold.tangent_plane(model, point, k=1).directions[0].ravel()
        cosines[family] = abs(float(leading @ derivative))
    assert cosines["contractive"] > 0.95, cosines
    assert cosines["undercomplete"] < 0.5, cosines  # without the penalty the encoder is not tangent-only


def test_tangent_images_are_grey_where_nothing_changes():
    directions = np.zeros((2, 1, 3, 3))
    directions[0, 0, 1, 1], directions[1, 0, 0, 0] = 2.0, -0.5
    shown = manifold.as_tangent_images(directions)
    assert shown[0, 0, 1, 1] == 1.0 and shown[1, 0, 0, 0] == 0.0
    assert shown[0, 0, 0, 0] == 0.5 and shown[1, 0, 2, 2] == 0.5


def test_figures_render(images):
    model = aekit.make_model("contractive", (1, 9, 7), 3, hidden=[]).eval()
    plane = manifold.tangent_plane(model, images[0], k=3)
    x = images.numpy()
    labels = np.arange(len(x)) % 4
    figures = [
        image_grids({"a": x[:16], "b": x[16:32]}, columns=4, title="samples"),
        labelled_images(x[:3], ["one", "two", "three"]),
        code_scatter({"AE": np.random.default_rng(0).normal(size=(64, 3)), "VAE": x[:, 0, 0, :3]}, labels, "abcd"),
        tangent_rows({"cae": (x[0], manifold.as_tangent_images(plane.directions), plane.singular_values)}),
        spectra({"cae": np.abs(np.random.default_rng(0).normal(size=(10, 5))) + 0.1}),
    ]
    for figure in figures:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue()[:4] == b"\x89PNG"
