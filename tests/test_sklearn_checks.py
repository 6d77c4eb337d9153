"""scikit-learn's own contract checks on the aekit estimators (tiny networks, few epochs)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from aekit.sklearn import AutoencoderClassifier, AutoencoderOutlierDetector, AutoencoderTransformer


def tiny_autoencoder(**options):
    return AutoencoderTransformer(code_size=1, hidden=(8,), epochs=3, batch_size=32, **options)


ESTIMATORS = [
    tiny_autoencoder(),
    tiny_autoencoder(family="vae", likelihood="gaussian"),
    AutoencoderOutlierDetector(tiny_autoencoder(), quantile=0.9),
    AutoencoderClassifier(
        AutoencoderTransformer("contractive", code_size=8, hidden=(), epochs=3, batch_size=32),
        epochs=40,
        batch_size=32,
        lr=1e-2,
    ),
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_contract(estimator, check):
    check(estimator)
