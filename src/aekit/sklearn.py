"""scikit-learn estimators over aekit autoencoders, for flat data X (n_samples, n_features).

* :class:`AutoencoderTransformer`: codes as features. ``fit``, ``transform`` (codes,
  (n_samples, code_size)), ``inverse_transform`` (reconstructions), ``score_samples`` (minus the
  squared reconstruction error per sample), ``score`` (their mean), ``get_feature_names_out``.
* :class:`AutoencoderOutlierDetector`: novelty detection by reconstruction error, with a threshold
  set at a quantile of the errors on held-out normal data.
* :class:`AutoencoderClassifier`: a classifier whose first layers are a trained encoder, frozen
  or fine-tuned on the labels (unsupervised pretraining).

They follow scikit-learn's conventions: constructor arguments are stored as given and checked in
``fit``, the network is built and trained in ``fit``, fitted state ends in ``_``, ``random_state``
makes fitting repeatable, and ``transform``/``predict`` are deterministic (posterior means, hard
bits, no corruption). Inputs are numpy arrays, lists or pandas frames; NaN or infinite values, a
wrong number of features and an unfitted estimator raise ``ValueError`` and ``NotFittedError``.

>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> pipe = make_pipeline(StandardScaler(), AutoencoderTransformer(code_size=2, hidden=(64,)))
>>> codes = pipe.fit_transform(X)                                    # doctest: +SKIP

Images given as flat rows can use a convolutional network with ``input_shape=(1, 28, 28)`` and
``network="conv"``. Features on very different scales should be standardised first (a
``StandardScaler`` in a ``Pipeline``), as for PCA.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    OutlierMixin,
    TransformerMixin,
    clone,
)
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .applications.anomaly import quantile_threshold, reconstruction_errors, residual_scale
from .applications.pretraining import EncoderClassifier, predict_logits
from .config import TrainConfig, settings_of
from .errors import AekitError
from .families import FamilyConfig
from .model import Autoencoder
from .tensors import apply_batched
from .train import Trainer, fine_tune

__all__ = ["AutoencoderClassifier", "AutoencoderOutlierDetector", "AutoencoderTransformer"]

_FLOATS = (np.float64, np.float32)


def _estimator_settings(cls: type) -> list[tuple[str, Any]]:
    """(name, default) of the fields of a settings dataclass that the estimators expose; a
    mutable default (a dict) becomes None, as scikit-learn wants."""
    fields = [f for f in settings_of(cls) if f.metadata.get("estimator", True)]
    return [(f.name, None if f.default is dataclasses.MISSING else f.default) for f in fields]


MODEL_PARAMETERS = _estimator_settings(FamilyConfig)  # family, code_size, network options, family_options
TRAIN_PARAMETERS = _estimator_settings(TrainConfig)  # epochs, batch_size, lr, ... (the seed is random_state)


def _constructor(*positional: tuple[str, Any], keyword: Sequence[tuple[str, Any]]) -> Any:
    """An ``__init__`` that stores each parameter verbatim (scikit-learn's rule), with a real
    signature so that ``get_params``, ``clone`` and ``repr`` see every parameter."""
    kinds = inspect.Parameter
    parameters = [kinds("self", kinds.POSITIONAL_OR_KEYWORD)]
    parameters += [kinds(name, kinds.POSITIONAL_OR_KEYWORD, default=default) for name, default in positional]
    parameters += [kinds(name, kinds.KEYWORD_ONLY, default=default) for name, default in keyword]
    signature = inspect.Signature(parameters)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


def _seed(random_state: Any) -> int:
    """A torch seed from scikit-learn's ``random_state`` (None, an int or a RandomState)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _float64_copy(network: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of a fitted network, in eval mode, for inference.

    float32 matrix products can differ in the last bit with the number of rows in the batch; in
    float64 a sample's output does not visibly depend on which other samples share its batch.
    (MPS has no float64; there the float32 network is used.)
    """
    network = copy.deepcopy(network).eval()
    return network if next(network.parameters()).device.type == "mps" else network.double()


def _check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise AekitError(f"{name}={value!r}", f"it must be an integer >= {minimum}", f"set {name} to one")
    return int(value)


def _train_config(estimator: Any, seed: int) -> TrainConfig:
    """A validated TrainConfig from an estimator's training parameters and a seed."""
    return TrainConfig(**{name: getattr(estimator, name) for name, _ in TRAIN_PARAMETERS}, seed=seed).validate()


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """An aekit autoencoder as a scikit-learn transformer: X (n_samples, n_features) -> codes.

    Parameters
    ----------
    family, code_size, network, hidden, channels, activation, norm, likelihood, family_options
        The model, exactly as :class:`aekit.FamilyConfig` describes it (same names, defaults and
        allowed values; ``aekit train --help`` shows them): e.g. ``family="vae"``,
        ``code_size=16``, ``hidden=(64,)``, ``likelihood="bernoulli"``,
        ``family_options={"noise": "gaussian", "level": 0.3}`` for ``denoising``. An unset
        network option keeps the family's default.
    input_shape : tuple of int or None
        Shape of one example when the flat rows are images, e.g. ``(1, 28, 28)`` for a ``conv``
        network; None treats a row as a vector of n_features.
    epochs, max_steps, patience, batch_size, lr, optimizer, ...
        Every field of :class:`aekit.TrainConfig` but ``seed``, ``checkpoint_every`` and ``logger``:
        how to train, with the same names, defaults and allowed values as ``aekit train``:
        ``epochs="auto"`` trains until the loss on a held-out ``val_fraction`` of X stops
        improving and keeps the best epoch's weights.
    random_state : None, int or numpy RandomState
        Seeds initialisation, the validation split, shuffling and training noise.
    verbose : bool
        Show a progress bar while fitting.

    Attributes
    ----------
    model_ : aekit.Autoencoder
        The trained network (in eval mode).
    history_ : list of dict
        Per-epoch training (and validation) losses in nats per example.
    n_iter_ : int
        Epochs run.
    stop_reason_ : str
        Why training stopped: ``epochs``, ``budget`` or ``patience``.
    n_features_in_, feature_names_in_ : as in scikit-learn.
    """

    __init__ = _constructor(
        *MODEL_PARAMETERS[:2],
        keyword=[
            *MODEL_PARAMETERS[2:],
            ("input_shape", None),
            *TRAIN_PARAMETERS,
            ("random_state", None),
            ("verbose", False),
        ],
    )

    # -------------------------------------------------------------------------------------------- #

    def fit(self, X: Any, y: Any = None) -> AutoencoderTransformer:
        """Build the network for X's width and train it on X (n_samples, n_features); y is ignored."""
        X = validate_data(self, X, dtype=_FLOATS)
        seed = _seed(self.random_state)
        config = self._model_config(X.shape[1])
        train_config = _train_config(self, seed)
        with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching global state
            torch.manual_seed(seed)
            model = Autoencoder.from_config(config)
        result = Trainer(model, train_config, progress=bool(self.verbose)).fit(self._as_model_input(X))
        self.model_ = model.eval()
        self.history_ = result.history
        self.n_iter_ = len(result.history)
        self.stop_reason_ = result.stop_reason
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Codes (n_samples, code_size) float32: posterior means (vae), hard bits (hashing)."""
        x = self._validate_fitted(X)
        return self._apply(_float64_copy(self.model_).encode, x).numpy()

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Reconstructions (n_samples, n_features) float32 from codes X (n_samples, code_size):
        the likelihood's mean (probabilities for ``bernoulli``)."""
        check_is_fitted(self)
        codes = check_array(X, dtype=_FLOATS)
        if codes.shape[1] != self.model_.code_size:
            raise ValueError(
                f"X has {codes.shape[1]} features, but inverse_transform expects codes of "
                f"{self.model_.code_size} features (the code_size); pass the output of transform"
            )

        model = _float64_copy(self.model_)

        def decode(z: torch.Tensor) -> torch.Tensor:
            return model.likelihood.mean(model.decode(z))  # (B, *data_shape)

        return self._apply(decode, torch.tensor(codes, dtype=torch.float64)).numpy()

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the squared reconstruction error of each sample (n_samples,) float64, summed over
        features: higher is more typical of the training data."""
        return -self._reconstruction_errors(self._validate_fitted(X))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean of :meth:`score_samples`: minus the mean squared reconstruction error per sample."""
        return float(np.mean(self.score_samples(X)))

    @property
    def _n_features_out(self) -> int:
        return self.model_.code_size

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # codes come out in float32, the precision the network is trained in, whatever the input dtype
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -------------------------------------------------------------------------------------------- #

    def _model_config(self, n_features: int):
        values = {name: getattr(self, name) for name, _ in MODEL_PARAMETERS}
        values = {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}
        values["family_options"] = dict(values["family_options"] or {})
        shape = self._data_shape(n_features)
        try:
            return FamilyConfig(**values).build(shape)
        except AekitError as error:
            raise AekitError(
                f"cannot build a {self.family!r} autoencoder with code_size={self.code_size} for X with "
                f"{n_features} feature(s)",
                str(error),
            ) from None

    def _data_shape(self, n_features: int) -> list[int]:
        if self.input_shape is None:
            return [n_features]
        shape = [int(d) for d in self.input_shape]
        if int(np.prod(shape)) != n_features:
            raise AekitError(
                f"input_shape={tuple(shape)} holds {int(np.prod(shape))} values but X has {n_features} features",
                "each row must reshape to one example",
                "fix input_shape or leave it None",
            )
        return shape

    def _as_model_input(self, X: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Validated rows (n, n_features) -> tensor (n, *data_shape), always a copy."""
        return torch.tensor(X, dtype=dtype).reshape(len(X), *self._data_shape(X.shape[1]))

    def _validate_fitted(self, X: Any) -> torch.Tensor:
        """Checked rows as a float64 tensor (n, *data_shape) for the float64 inference copy."""
        check_is_fitted(self)
        return self._as_model_input(validate_data(self, X, reset=False, dtype=_FLOATS), torch.float64)

    def _reconstruction_errors(self, x: torch.Tensor, scale: np.ndarray | None = None) -> np.ndarray:
        """Squared errors (n,) of model inputs x (n, *data_shape), each dimension divided by ``scale``."""
        return reconstruction_errors(_float64_copy(self.model_), x, self._batch_size(), scale=scale)

    def _batch_size(self) -> int:
        return max(int(self.batch_size), 1024)

    def _apply(self, function, x: torch.Tensor) -> torch.Tensor:
        """``function`` over x in batches on the model's device; (n, features) float32 on the CPU."""
        device = next(self.model_.parameters()).device
        return apply_batched(function, x, self._batch_size(), device).flatten(1).float()


def _fitted_autoencoder(autoencoder: Any, X: np.ndarray, seed: int) -> Any:
    """``autoencoder`` itself when already fitted (e.g. wrapped in sklearn.frozen.FrozenEstimator),
    else a clone of it (a default AutoencoderTransformer when None) fitted on X, seeded with
    ``seed`` unless it has a random_state of its own."""
    if autoencoder is None:
        autoencoder = AutoencoderTransformer()
    try:
        check_is_fitted(autoencoder)
    except NotFittedError:
        autoencoder = clone(autoencoder)
        if autoencoder.random_state is None:
            autoencoder.set_params(random_state=seed)
        return autoencoder.fit(X)
    if autoencoder.n_features_in_ != X.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features, but the fitted autoencoder expects {autoencoder.n_features_in_}"
        )
    return autoencoder


class AutoencoderOutlierDetector(OutlierMixin, BaseEstimator):
    """Novelty detection by reconstruction error, the threshold set on held-out normal data.

    ``fit`` trains the autoencoder on normal data, then sets ``threshold_`` to the ``quantile`` of
    the reconstruction errors of validation data the autoencoder never saw: ``X_val`` when given,
    else a seeded ``validation_fraction`` of X. About ``1 - quantile`` of normal samples are then
    flagged.

    The error of a sample is its squared reconstruction error summed over features; with
    ``standardize`` each feature's squared error is first divided by ``scale_``, that feature's
    mean squared error on the training samples plus ``floor`` times the average over features (a
    per-feature Gaussian negative log-likelihood up to constants: a feature normal data always
    reconstruct well counts more when it is wrong). On Fashion-MNIST one-class this raises the
    mean AUROC by about 0.01 (see bench/RESULTS.md).

    ``score_samples`` is minus that error (lower is more abnormal), ``decision_function`` is
    ``score_samples - offset_`` with ``offset_ = -threshold_`` (negative for outliers), and
    ``predict`` returns -1 for outliers and 1 for inliers, as scikit-learn's outlier detectors do.

    Parameters
    ----------
    autoencoder : AutoencoderTransformer or None
        The autoencoder to train (cloned in ``fit``); an already fitted one (for example wrapped
        in ``sklearn.frozen.FrozenEstimator``) is used as it is. None: ``AutoencoderTransformer()``.
    quantile : float in (0, 1]
        Quantile of the validation errors used as the threshold.
    validation_fraction : float in (0, 1)
        Share of X held out for the threshold when ``X_val`` is not given to ``fit``.
    standardize : bool
        Divide each feature's squared error by its scale (see above).
    floor : float > 0
        With ``standardize``: added to every feature's mean squared error, as a fraction of
        their average, so that no feature's weight is unbounded.
    random_state : None, int or RandomState
        Seeds the validation split (and the autoencoder when its own random_state is None).
    """

    def __init__(
        self,
        autoencoder: AutoencoderTransformer | None = None,
        *,
        quantile: float = 0.99,
        validation_fraction: float = 0.2,
        standardize: bool = True,
        floor: float = 0.05,
        random_state: Any = None,
    ) -> None:
        self.autoencoder = autoencoder
        self.quantile = quantile
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.floor = floor
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None, *, X_val: Any = None) -> AutoencoderOutlierDetector:
        """Train on normal samples X; set the threshold on ``X_val`` or a held-out part of X."""
        X = validate_data(self, X, dtype=_FLOATS)
        rng = check_random_state(self.random_state)
        if not 0 < float(self.quantile) <= 1:
            raise AekitError(f"quantile={self.quantile}", "it must lie in (0, 1]", "e.g. 0.99")
        if X_val is None:
            if not 0 < float(self.validation_fraction) < 1:
                raise AekitError(f"validation_fraction={self.validation_fraction}", "it must lie in (0, 1)", "e.g. 0.2")
            order = rng.permutation(len(X))
            n_val = int(np.ceil(self.validation_fraction * len(X)))
            if n_val >= len(X):
                raise ValueError(
                    f"{len(X)} sample(s) cannot be split into training and validation data; pass more samples or X_val"
                )
            X, X_val = X[np.sort(order[n_val:])], X[np.sort(order[:n_val])]
        else:
            X_val = check_array(X_val, dtype=_FLOATS)
            if X_val.shape[1] != X.shape[1]:
                raise ValueError(f"X_val has {X_val.shape[1]} features, but X has {X.shape[1]}")
        self.autoencoder_ = autoencoder = _fitted_autoencoder(self.autoencoder, X, _seed(rng))
        self.scale_ = None
        if self.standardize:
            model = _float64_copy(autoencoder.model_)
            self.scale_ = residual_scale(model, autoencoder._as_model_input(X, torch.float64), float(self.floor))
        self.validation_errors_ = self._errors(X_val)
        self.threshold_ = quantile_threshold(self.validation_errors_, float(self.quantile))
        self.offset_ = -self.threshold_
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the squared reconstruction error (n_samples,): the lower, the more abnormal."""
        check_is_fitted(self)
        return -self._errors(validate_data(self, X, reset=False, dtype=_FLOATS))

    def decision_function(self, X: Any) -> np.ndarray:
        """``threshold_`` minus the squared error (n_samples,): negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """-1 for outliers (error above ``threshold_``), 1 for inliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    @property
    def n_iter_(self) -> int:
        return self.autoencoder_.n_iter_

    def _errors(self, X: np.ndarray) -> np.ndarray:
        """(Standardised) squared reconstruction errors (n,) of checked rows X."""
        x = self.autoencoder_._as_model_input(X, torch.float64)
        return self.autoencoder_._reconstruction_errors(x, self.scale_)


class AutoencoderClassifier(ClassifierMixin, BaseEstimator):
    """A classifier whose first layers are an autoencoder's encoder (unsupervised pretraining).

    ``fit(X, y)`` trains the autoencoder on X (plus ``X_unlabeled`` when given: the many images
    without labels) unless it is already fitted, copies its encoder, adds a head (``hidden``
    layers and a softmax output) and trains on the labels with cross-entropy. ``freeze=True`` keeps
    the encoder as the autoencoder learned it and trains only the head; otherwise it is fine-tuned.

    Parameters
    ----------
    autoencoder : AutoencoderTransformer or None
        The autoencoder to pretrain (cloned in ``fit``), or a fitted one (for example wrapped in
        ``sklearn.frozen.FrozenEstimator``) used as it is. None: ``AutoencoderTransformer()``.
    freeze : bool
        Train only the head on top of a fixed encoder.
    hidden : tuple of int
        Widths of the head's hidden layers; () is a softmax regression on the code.
    activation : str
        The head's hidden activation.
    epochs, max_steps, patience, batch_size, lr, ..., random_state, verbose
        As for :class:`AutoencoderTransformer`, for the supervised training (the same loop); the
        validation error rate (ties broken by the cross-entropy) picks the best epoch.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
    autoencoder_ : the fitted autoencoder
    network_ : aekit.applications.pretraining.EncoderClassifier
    history_ : per-epoch training and validation terms: cross-entropy (nats per sample), error rate
    n_iter_ : epochs run
    """

    __init__ = _constructor(
        ("autoencoder", None),
        keyword=[
            ("freeze", False), ("hidden", ()), ("activation", "relu"), *TRAIN_PARAMETERS,
            ("random_state", None), ("verbose", False),
        ],
    )  # fmt: skip

    def fit(self, X: Any, y: Any, *, X_unlabeled: Any = None) -> AutoencoderClassifier:
        """Pretrain on X (and ``X_unlabeled``), then train the classifier on (X, y)."""
        X, y = validate_data(self, X, y, dtype=_FLOATS)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class ({self.classes_[0]!r}); a classifier needs at least 2 classes")
        seed = _seed(self.random_state)
        train_config = _train_config(self, seed)
        X_pretrain = X
        if X_unlabeled is not None:
            X_unlabeled = check_array(X_unlabeled, dtype=_FLOATS)
            if X_unlabeled.shape[1] != X.shape[1]:
                raise ValueError(f"X_unlabeled has {X_unlabeled.shape[1]} features, but X has {X.shape[1]}")
            X_pretrain = np.concatenate([X, X_unlabeled])
        self.autoencoder_ = _fitted_autoencoder(self.autoencoder, X_pretrain, seed)
        hidden = [_check_positive_int(width, "hidden width") for width in self.hidden]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = EncoderClassifier.from_autoencoder(
                self.autoencoder_.model_, len(self.classes_), hidden, self.activation, bool(self.freeze)
            )
        x = self.autoencoder_._as_model_input(X)
        result = fine_tune(network, x, y_index, train_config, progress=bool(self.verbose))
        self.network_ = network
        self.history_ = result.history
        self.n_iter_ = len(result.history)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities (n_samples, n_classes) float64."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOATS)
        x = self.autoencoder_._as_model_input(X, torch.float64)
        logits = predict_logits(_float64_copy(self.network_), x)  # (n, n_classes)
        return torch.log_softmax(logits, dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample (n_samples,)."""
        log_proba = self.predict_log_proba(X)
        return self.classes_[np.argmax(log_proba, axis=1)]
