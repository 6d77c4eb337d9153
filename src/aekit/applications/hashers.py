"""Hashers: anything that turns examples into K-bit binary codes, with one interface.

``hasher.fit(x)`` learns from examples x (N, *shape) (the autoencoder hasher is already trained),
``hasher.encode(x)`` returns bool codes (N, K), ``hasher.state()`` / ``Hasher.from_state(...)``
describe a fitted hasher as plain arrays plus JSON (no pickle). Baselines:

=========  ======================================================================================
lsh        random hyperplanes through the data mean: sign((x - mean) @ G), G ~ N(0, 1)
pca        sign of the top-K principal components of the centred data
itq        PCA, then the rotation R minimising the quantisation loss ||B - V R||_F^2
           (Gong and Lazebnik 2011): alternate B = sign(V R) and the Procrustes solution for R
spectral   spectral hashing (Weiss, Torralba and Fergus 2008): thresholded sinusoids along the
           principal directions, the K lowest-frequency modes of a uniform box
=========  ======================================================================================

Inputs are flattened to (N, D); scipy sparse matrices (TF-IDF rows) are read in row batches.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import AekitError

_HASHERS: dict[str, type[Hasher]] = {}


def hasher_names() -> list[str]:
    return sorted(_HASHERS)


def make_hasher(name: str, n_bits: int, seed: int = 0) -> Hasher:
    """An unfitted baseline hasher by name (``lsh``, ``pca``, ``itq``, ``spectral``)."""
    if name not in _HASHERS or name == "autoencoder":
        choices = ", ".join(n for n in hasher_names() if n != "autoencoder")
        raise AekitError(f"unknown hashing method {name!r}", f"the baselines are {choices}", "pick one")
    return _HASHERS[name](n_bits, seed=seed)


def hasher_from_state(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Hasher:
    """Rebuild a fitted hasher from :meth:`Hasher.state`."""
    name = meta.get("method")
    if name not in _HASHERS:
        raise AekitError(f"unknown hashing method {name!r} in a saved hasher", "the file is damaged", "rebuild it")
    return _HASHERS[name].from_state(arrays, meta)


def _rows(x: Any, batch_size: int = 4096):
    """Yield float64 (b, D) blocks of x: dense arrays, tensors or scipy sparse matrices."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    sparse = hasattr(x, "tocsr")
    if sparse:
        x = x.tocsr()
    elif np.asarray(x).ndim < 2:
        raise AekitError(f"data of shape {np.shape(x)}", "hashers need (N, features) or (N, C, H, W)", "reshape")
    for start in range(0, x.shape[0], batch_size):
        block = x[start : start + batch_size]
        block = block.toarray() if sparse else np.asarray(block)
        yield block.reshape(len(block), -1).astype(np.float64)


def _dense(x: Any) -> np.ndarray:
    return np.concatenate(list(_rows(x)))


class Hasher:
    """Base class: ``n_bits`` K; subclasses define ``method``, ``fit``, ``project`` and their state."""

    method: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.method:
            _HASHERS[cls.method] = cls

    def __init__(self, n_bits: int, seed: int = 0) -> None:
        if int(n_bits) < 1:
            raise AekitError(f"n_bits={n_bits}", "a code needs at least one bit", "use >= 1")
        self.n_bits, self.seed = int(n_bits), int(seed)
        self.arrays: dict[str, np.ndarray] = {}

    @property
    def fitted(self) -> bool:
        return bool(self.arrays)

    def fit(self, x: Any) -> Hasher:
        raise NotImplementedError

    def project(self, block: np.ndarray) -> np.ndarray:
        """Real-valued projections (b, K) of a dense block (b, D); the code is their sign."""
        raise NotImplementedError

    def encode(self, x: Any) -> np.ndarray:
        """Bool codes (N, K) of examples x (N, *shape), dense or scipy sparse."""
        if not self.fitted:
            raise AekitError(f"the {self.method} hasher is not fitted", "it has learned nothing yet", "call fit(x)")
        blocks = []
        for block in _rows(x):
            if block.shape[1] != self.arrays["mean"].shape[0]:
                raise AekitError(
                    f"examples have {block.shape[1]} features",
                    f"the {self.method} hasher was fitted on {self.arrays['mean'].shape[0]}",
                    "encode data like its training data",
                )
            blocks.append(self.project(block) > 0)
        return np.concatenate(blocks)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON metadata) that :func:`hasher_from_state` rebuilds this hasher from."""
        return dict(self.arrays), {"method": self.method, "n_bits": self.n_bits, "seed": self.seed}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Hasher:
        hasher = cls(int(meta["n_bits"]), seed=int(meta.get("seed", 0)))
        hasher.arrays = {key: np.asarray(value) for key, value in arrays.items()}
        return hasher

    def _check_bits(self, n_features: int, n_examples: int) -> None:
        if self.n_bits > min(n_features, n_examples):
            raise AekitError(
                f"{self.method} cannot make {self.n_bits} bits from {n_examples} examples of {n_features} features",
                "it needs one principal direction per bit",
                f"use at most {min(n_features, n_examples)} bits, or lsh",
            )


def principal_directions(x: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), top principal directions (D, n_components)) of x (N, D), from the covariance."""
    mean = x.mean(0)
    centred = x - mean
    if x.shape[1] <= 4096:
        covariance = centred.T @ centred / len(x)
        _, vectors = np.linalg.eigh(covariance)
        return mean, vectors[:, ::-1][:, :n_components]
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return mean, vt[:n_components].T


class LSHHasher(Hasher):
    """Random hyperplanes through the mean: bit k = [(x - mean) . g_k > 0], g_k ~ N(0, I) (seeded)."""

    method = "lsh"

    def fit(self, x: Any) -> LSHHasher:
        x = _dense(x)
        directions = np.random.default_rng(self.seed).standard_normal((x.shape[1], self.n_bits))
        self.arrays = {"mean": x.mean(0), "directions": directions}
        return self

    def project(self, block):
        return (block - self.arrays["mean"]) @ self.arrays["directions"]


class PCAHasher(Hasher):
    """Sign of the top-K principal components of the centred data."""

    method = "pca"

    def fit(self, x: Any) -> PCAHasher:
        x = _dense(x)
        self._check_bits(x.shape[1], len(x))
        mean, directions = principal_directions(x, self.n_bits)
        self.arrays = {"mean": mean, "directions": directions}
        return self

    def project(self, block):
        return (block - self.arrays["mean"]) @ self.arrays["directions"]


class ITQHasher(Hasher):
    """Iterative quantisation: PCA to K dimensions, then a rotation that makes the signs lose little.

    ``fit`` alternates B = sign(V R) and R = argmin_{R orthogonal} ||B - V R||_F (Procrustes:
    R = U W^T from the SVD U S W^T of V^T B), starting from a seeded random rotation. Each step
    cannot increase the quantisation loss ||B - V R||_F^2, recorded in ``loss_history``.
    """

    method = "itq"

    def __init__(self, n_bits: int, seed: int = 0, iterations: int = 50) -> None:
        super().__init__(n_bits, seed)
        self.iterations = int(iterations)
        self.loss_history: list[float] = []

    def fit(self, x: Any) -> ITQHasher:
        x = _dense(x)
        self._check_bits(x.shape[1], len(x))
        mean, directions = principal_directions(x, self.n_bits)
        projected = (x - mean) @ directions  # (N, K)
        gaussian = np.random.default_rng(self.seed).standard_normal((self.n_bits, self.n_bits))
        rotation, _ = np.linalg.qr(gaussian)
        self.loss_history = []
        for _ in range(self.iterations):
            rotated = projected @ rotation
            codes = np.where(rotated >= 0, 1.0, -1.0)  # (N, K) in {-1, 1}
            self.loss_history.append(float(((codes - rotated) ** 2).sum()))
            u, _, wt = np.linalg.svd(projected.T @ codes)
            rotation = u @ wt
        self.arrays = {"mean": mean, "directions": directions @ rotation}
        return self

    def project(self, block):
        return (block - self.arrays["mean"]) @ self.arrays["directions"]


class SpectralHasher(Hasher):
    """Spectral hashing: bit k = sign(sin(pi/2 + m_k pi (v_{d_k} - a_{d_k}) / (b_{d_k} - a_{d_k}))).

    v are the top principal components, [a, b] their range on the training data; the K modes
    (d_k, m_k) are those with the smallest eigenvalues (m pi / (b_d - a_d))^2 of the 1-D Laplacian
    on a uniform box, i.e. the lowest frequencies along the widest directions.
    """

    method = "spectral"

    def fit(self, x: Any) -> SpectralHasher:
        x = _dense(x)
        n_directions = min(self.n_bits, x.shape[1], len(x))
        mean, directions = principal_directions(x, n_directions)
        projected = (x - mean) @ directions  # (N, P)
        low, high = projected.min(0) - 1e-9, projected.max(0) + 1e-9
        width = high - low
        max_mode = math.ceil((self.n_bits + 1) * width.max() / width.min())
        modes = np.arange(1, max_mode + 1)  # (M,)
        eigenvalues = (modes[None, :] / width[:, None]) ** 2  # (P, M), up to pi^2
        best = np.argsort(eigenvalues, axis=None, kind="stable")[: self.n_bits]
        dimension, mode = np.unravel_index(best, eigenvalues.shape)
        self.arrays = {
            "mean": mean,
            "directions": directions,
            "low": low,
            "width": width,
            "dimension": dimension.astype(np.int64),
            "frequency": modes[mode].astype(np.float64),
        }
        return self

    def project(self, block):
        a = self.arrays
        v = (block - a["mean"]) @ a["directions"]  # (b, P)
        d = a["dimension"]
        phase = a["frequency"] * np.pi * (v[:, d] - a["low"][d]) / a["width"][d]
        return np.sin(np.pi / 2 + phase)


class AutoencoderHasher(Hasher):
    """The bits of a trained autoencoder with a binary latent (the hashing family); nothing to fit."""

    method = "autoencoder"

    def __init__(self, model: Any, batch_size: int = 1024) -> None:
        if "bits" not in model.latent.abilities:
            raise AekitError(
                f"the model's latent is {model.latent.spec()['name']!r}, not binary",
                "semantic hashing needs a code of bits",
                "train a model of the hashing family (aekit train --family hashing)",
            )
        super().__init__(model.code_size)
        self.model, self.batch_size = model, int(batch_size)

    @property
    def fitted(self) -> bool:
        return True

    def fit(self, x: Any) -> AutoencoderHasher:
        return self

    @torch.no_grad()
    def encode(self, x: Any) -> np.ndarray:
        model = self.model.eval()
        device = next(model.parameters()).device
        shape = model.data_shape
        blocks = []
        for block in _rows(x, self.batch_size):
            if block.shape[1] != math.prod(shape):
                raise AekitError(
                    f"examples have {block.shape[1]} features",
                    f"the model was trained on examples of shape {shape}",
                    "encode data like its training data",
                )
            tensor = torch.as_tensor(block, dtype=torch.float32, device=device).view(len(block), *shape)
            blocks.append(model.encode(tensor).cpu().numpy() > 0.5)
        return np.concatenate(blocks)

    def state(self):
        raise AekitError(
            "an autoencoder hasher is saved as its model", "its state is the run folder", "use aekit.save_model"
        )


# ------------------------------------------------------------------------------------------------ #
# the retrieval harness: every method through the same split, encoder and metrics


def query_database_split(n_examples: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (query rows (n_queries,), database rows (rest, sorted)) of one set of examples."""
    if not 0 < n_queries < n_examples:
        raise AekitError(
            f"{n_queries} queries from {n_examples} examples",
            "queries and database must both be non-empty",
            f"use between 1 and {n_examples - 1} queries",
        )
    queries = np.random.default_rng(seed).choice(n_examples, n_queries, replace=False)
    database = np.setdiff1d(np.arange(n_examples), queries)
    return queries, database


def evaluate_hasher(
    hasher: Hasher,
    database_x: Any,
    database_labels: np.ndarray,
    query_x: Any,
    query_labels: np.ndarray,
    fit: bool = True,
    k: int = 100,
    radius: int = 2,
    curve: bool = False,
) -> dict[str, Any]:
    """Fit ``hasher`` on the database (unsupervised), encode both sides, and score the ranking.

    Returns :func:`aekit.metrics.hamming_retrieval_report`'s figures (with the precision-recall
    curve over Hamming radii when ``curve``) plus ``method``, ``bits``, ``fit_seconds`` and
    ``encode_seconds`` (the database and the queries).
    """
    import time

    from ..metrics import hamming_retrieval_report

    if database_labels is None or query_labels is None:
        raise AekitError("the data have no labels", "relevance is 'same label'", "use labelled data")
    started = time.perf_counter()
    if fit:
        hasher.fit(database_x)
    fitted = time.perf_counter()
    database_codes = hasher.encode(database_x)
    query_codes = hasher.encode(query_x)
    encoded = time.perf_counter()
    report = hamming_retrieval_report(
        query_codes, database_codes, query_labels, database_labels, k=k, radius=radius, curve=curve
    )
    return {
        "method": hasher.method,
        "bits": hasher.n_bits,
        **report,
        "fit_seconds": round(fitted - started, 3),
        "encode_seconds": round(encoded - fitted, 3),
        "max_bit_imbalance": float(np.abs(database_codes.mean(0) - 0.5).max()),
    }
