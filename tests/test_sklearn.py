"""The estimators the way scikit-learn users work: pipelines, grid search, clone, pandas, errors."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aekit.applications.pretraining import EncoderClassifier, error_rate, predict_logits
from aekit.config import TrainConfig
from aekit.sklearn import AutoencoderClassifier, AutoencoderOutlierDetector, AutoencoderTransformer
from aekit.train import fine_tune


def blobs(n=240, dim=6, seed=0):
    """Three Gaussian clusters in ``dim`` dimensions, labels 0..2."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(3, dim))
    labels = rng.integers(0, 3, n)
    return centres[labels] + rng.normal(size=(n, dim)), labels


def small(**options):
    defaults = {"code_size": 2, "hidden": (16,), "epochs": 5, "batch_size": 32, "random_state": 0}
    return AutoencoderTransformer(**{**defaults, **options})


def test_transform_is_deterministic_and_fitting_is_repeatable():
    x, _ = blobs()
    for family in ("undercomplete", "vae", "denoising", "hashing"):
        first = small(family=family, likelihood="gaussian").fit(x)  # real values: not a bernoulli's
        np.testing.assert_array_equal(first.transform(x), first.transform(x))
        np.testing.assert_array_equal(first.score_samples(x), first.score_samples(x))
        again = small(family=family, likelihood="gaussian").fit(x)
        np.testing.assert_array_equal(first.transform(x), again.transform(x))
    codes = first.transform(x)  # hashing: hard bits
    assert codes.dtype == np.float32 and set(np.unique(codes)) <= {0.0, 1.0}


def test_linear_autoencoder_reconstructs_like_pca():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 8)) @ np.diag([3, 2, 1, 0.3, 0.2, 0.1, 0.1, 0.1]) + rng.normal(size=8)
    estimator = AutoencoderTransformer(
        "linear", 2, epochs=60, batch_size=50, lr=3e-2, lr_schedule="cosine", val_fraction=0.0, random_state=0
    ).fit(x)
    pca = PCA(2).fit(x)
    pca_error = ((pca.inverse_transform(pca.transform(x)) - x) ** 2).sum(1).mean()
    assert -estimator.score(x) == pytest.approx(pca_error, rel=0.02)
    # score_samples is minus the squared error of inverse_transform(transform(x))
    reconstruction = estimator.inverse_transform(estimator.transform(x))
    assert reconstruction.shape == x.shape
    np.testing.assert_allclose(-estimator.score_samples(x), ((reconstruction - x) ** 2).sum(1), rtol=1e-4)


def test_pipeline_grid_search_and_clone():
    x, y = blobs()
    pipe = make_pipeline(StandardScaler(), small(code_size=3), LogisticRegression())
    pipe.fit(x, y)
    assert pipe.score(x, y) > 0.9
    rng = np.random.default_rng(0)
    on_a_plane = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 6)) + 0.05 * rng.normal(size=(200, 6))
    grid = {"autoencodertransformer__code_size": [1, 3]}
    linear = small(family="linear", hidden=None, epochs=30, lr=1e-2)
    search = GridSearchCV(make_pipeline(StandardScaler(), linear), grid, cv=2)
    search.fit(on_a_plane)  # scored by the transformer's score: minus the reconstruction error
    assert search.best_params_ == {"autoencodertransformer__code_size": 3}
    fitted = small(family_options={"code_activation": "tanh"}).fit(x)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "model_")
    assert copy.get_params()["family_options"] is not fitted.family_options  # a deep copy


def test_pandas_in_and_out():
    x, _ = blobs()
    frame = pd.DataFrame(x, columns=[f"sensor_{i}" for i in range(x.shape[1])])
    estimator = small().set_output(transform="pandas").fit(frame)
    assert list(estimator.feature_names_in_) == list(frame.columns)
    codes = estimator.transform(frame)
    assert isinstance(codes, pd.DataFrame)
    assert list(codes.columns) == ["autoencodertransformer0", "autoencodertransformer1"]
    np.testing.assert_array_equal(codes.to_numpy(), small().fit(x).transform(x))


def test_bad_inputs_raise_what_scikit_learn_users_expect():
    x, _ = blobs()
    with pytest.raises(NotFittedError):
        small().transform(x)
    estimator = small().fit(x)
    with pytest.raises(ValueError, match="X has 4 features, but AutoencoderTransformer is expecting 6"):
        estimator.transform(x[:, :4])
    broken = x.copy()
    broken[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        small().fit(broken)
    with pytest.raises(ValueError, match="NaN"):
        estimator.transform(broken)
    with pytest.raises(ValueError, match="expects codes of 2 features"):
        estimator.inverse_transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="family='nope' is not allowed: it must be one of colorize"):
        small(family="nope").fit(x)
    with pytest.raises(ValueError, match=r"epochs=0 is not allowed: it must be an integer >= 1 or auto"):
        small(epochs=0).fit(x)
    with pytest.raises(ValueError, match=r"batch_size=0 is not allowed"):
        small(batch_size=0).fit(x)
    with pytest.raises(
        ValueError, match=r"lr_schedule=.fast. is not allowed: it must be one of auto, constant, cosine"
    ):
        small(lr_schedule="fast").fit(x)


def test_images_as_rows_with_a_convolutional_network():
    x = np.random.default_rng(0).random((40, 64))
    estimator = small(network="conv", input_shape=(1, 8, 8), family_options={"channels": [4]}, epochs=1).fit(x)
    assert estimator.transform(x).shape == (40, 2)
    assert estimator.inverse_transform(estimator.transform(x)).shape == (40, 64)
    with pytest.raises(ValueError, match="input_shape"):
        small(input_shape=(1, 7, 7)).fit(x)


def test_outlier_threshold_is_the_stated_quantile_of_validation_errors():
    rng = np.random.default_rng(0)
    x, x_val = rng.normal(size=(300, 6)), rng.normal(size=(200, 6))
    plain = AutoencoderOutlierDetector(small(epochs=10), quantile=0.9, standardize=False).fit(x, X_val=x_val)
    errors = -plain.autoencoder_.score_samples(x_val)  # the transformer's plain squared errors
    assert plain.threshold_ == pytest.approx(np.quantile(errors, 0.9))
    assert np.mean(plain.predict(x_val) == -1) == pytest.approx(0.1, abs=0.005)
    far = rng.normal(size=(20, 6)) + 8.0  # far from the training data: all flagged
    assert (plain.predict(far) == -1).all()
    np.testing.assert_allclose(plain.decision_function(x_val), plain.threshold_ - errors)
    # standardised: each feature's squared error over its mean on the training data (+ 5 % floor)
    detector = AutoencoderOutlierDetector(small(epochs=10), quantile=0.9).fit(x, X_val=x_val)
    autoencoder = detector.autoencoder_
    residuals = autoencoder.inverse_transform(autoencoder.transform(x)) - x
    scale = (residuals**2).mean(0) + 0.05 * (residuals**2).mean()
    np.testing.assert_allclose(detector.scale_, scale, rtol=1e-4)
    val_residuals = autoencoder.inverse_transform(autoencoder.transform(x_val)) - x_val
    np.testing.assert_allclose(-detector.score_samples(x_val), (val_residuals**2 / scale).sum(1), rtol=1e-4)
    assert detector.threshold_ == pytest.approx(np.quantile(detector.validation_errors_, 0.9))
    assert np.mean(detector.predict(x_val) == -1) == pytest.approx(0.1, abs=0.005)
    # without X_val a seeded 20 % of X is held out, and never trained on
    held_out = AutoencoderOutlierDetector(small(), validation_fraction=0.2, random_state=0).fit(x)
    assert len(held_out.validation_errors_) == 60
    assert held_out.threshold_ == pytest.approx(np.quantile(held_out.validation_errors_, 0.99))


def test_pretrained_classifier_starts_from_the_encoder_and_frozen_stays_frozen():
    x, y = blobs()
    autoencoder = small(family="contractive", code_size=8, hidden=()).fit(x)
    model = autoencoder.model_
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    for freeze in (True, False):
        torch.manual_seed(0)
        network = EncoderClassifier.from_autoencoder(model, 3, hidden=(8,), freeze=freeze)
        for key, value in network.encoder.state_dict().items():
            torch.testing.assert_close(value, before[key], rtol=0, atol=0)
        config = TrainConfig(epochs=5, batch_size=32, lr=1e-2, val_fraction=0.2)
        fine_tune(network, torch.tensor(x, dtype=torch.float32), y, config)
        moved = [not torch.equal(v, before[k]) for k, v in network.encoder.state_dict().items()]
        assert not any(moved) if freeze else all(moved)
    for key, value in model.encoder.state_dict().items():  # the autoencoder itself is untouched
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_read_only_labels_are_accepted_without_warnings():
    """Labels of a memory-mapped dataset are read-only arrays: training on them and measuring the
    error rate must neither warn nor share memory, and the rate is the brute-force count."""
    x, y = blobs()
    y = y.astype(np.int64)
    y.flags.writeable = False
    model = small(family="contractive", code_size=8, hidden=()).fit(x).model_
    network = EncoderClassifier.from_autoencoder(model, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine_tune(network, x, y, TrainConfig(epochs=2, batch_size=32, val_fraction=0.2))
        rate = error_rate(network, x, y)
    predicted = predict_logits(network, x).argmax(1).numpy()
    assert rate == pytest.approx(np.mean(predicted != y))


def test_classifier_estimator_pretrains_on_unlabelled_data_or_uses_a_fitted_autoencoder():
    x, y = blobs(n=300)
    options = {"epochs": 60, "batch_size": 32, "lr": 1e-2, "random_state": 0}
    classifier = AutoencoderClassifier(small(family="sparse", code_size=8), **options)
    classifier.fit(x[:100], y[:100], X_unlabeled=x[100:])
    assert classifier.autoencoder_.n_features_in_ == 6 and classifier.score(x[100:], y[100:]) > 0.9
    proba = classifier.predict_proba(x)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    fitted = small(family="sparse", code_size=8).fit(x)
    frozen = AutoencoderClassifier(FrozenEstimator(fitted), freeze=True, **options).fit(x[:100], y[:100])
    assert frozen.autoencoder_.estimator is fitted  # used as it is, not refitted
    head_only = frozen.network_.encoder.state_dict()
    for key, value in fitted.model_.encoder.state_dict().items():
        torch.testing.assert_close(head_only[key], value, rtol=0, atol=0)
    labels = np.array(["cat", "dog", "emu"])[y]
    assert set(AutoencoderClassifier(small(), **options).fit(x, labels).predict(x)) <= set(labels)
