"""Measures: reconstruction error, likelihood bounds and estimates, subspace angles, Hamming retrieval,
image quality (PSNR, SSIM, colourfulness, chroma accuracy), and for generative models the score
check of a denoising field, the Frechet distance and the Parzen-window log-likelihood of samples.

Units are stated per function: squared error summed over data dimensions per example, nats per
example, degrees.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg
import scipy.ndimage
import torch
from tqdm.auto import tqdm

from .errors import AekitError
from .model import Autoencoder
from .tensors import as_tensor, dense_batch


@torch.no_grad()
def reconstruction_report(
    model: Autoencoder, x: Any, batch_size: int = 1024, seed: int = 0, device: str | torch.device | None = None
) -> dict[str, float]:
    """Test-set figures for a trained model, averaged over the examples of x (N, *data_shape).

    * ``squared_error``: sum over data dimensions of (x - reconstruction)^2, per example.
    * ``mse``: the same divided by the number of data dimensions.
    * ``nll``: -log p(x | decoder(encode(x))) in nats per example (the deterministic code).
    * ``elbo`` (Gaussian latents): E_q[log p(x|z)] - KL(q || N(0, I)), nats per example, one
      reparameterised sample per example from a generator seeded with ``seed``.
    """
    device = device or next(model.parameters()).device
    x = as_tensor(x)
    model.likelihood.check_data(x, "the data")  # an NLL outside its domain means nothing
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    totals: dict[str, float] = {}
    for start in range(0, len(x), batch_size):
        batch = dense_batch(x[start : start + batch_size].to(device))
        params = model.decode(model.encode(batch))
        batch_terms = {
            "squared_error": (model.likelihood.mean(params) - batch).pow(2).flatten(1).sum(1),
            "nll": model.likelihood.nll(params, batch),
        }
        if model.latent.has_prior:
            q = model.latent.posterior(model.encoder(batch))
            sampled = model.likelihood.nll(model.decode(q.sample(generator)), batch)
            batch_terms["elbo"] = -(sampled + q.kl_to_standard_normal())
        for key, value in batch_terms.items():
            totals[key] = totals.get(key, 0.0) + float(value.sum())
    report = {key: value / len(x) for key, value in totals.items()}
    report["mse"] = report["squared_error"] / int(np.prod(x.shape[1:]))
    return report


@torch.no_grad()
def importance_sampled_nll(
    model: Autoencoder,
    x: Any,
    samples: int = 5000,
    batch_size: int = 1024,
    max_rows: int = 32768,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """-log p(x) for each example of x (N, *data_shape), in nats, by importance sampling: (N,).

        -log p(x) ~= -log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x),  K = ``samples``

    the IWAE bound of Burda et al. (2016): in expectation an upper bound of -log p(x) that
    decreases as K grows and reaches it as K -> infinity; K = 1 is a one-sample ELBO. Works for any
    model whose latent has a prior (Gaussian). Examples go in batches of ``batch_size`` and the K
    samples in chunks, so the decoder never sees more than ``max_rows`` (examples x samples) rows
    at once: memory stays bounded for K in the thousands. Draws come from a generator seeded with
    ``seed``.
    """
    if int(samples) < 1:
        raise AekitError(f"{samples} importance samples", "the estimate needs at least one sample", "use K >= 1")
    if int(batch_size) < 1 or int(max_rows) < 1:
        raise AekitError(f"batch_size {batch_size} / max_rows {max_rows}", "both must be positive", "use >= 1")
    model.latent.require_prior()
    samples, device = int(samples), device or next(model.parameters()).device
    x = as_tensor(x)
    model.likelihood.check_data(x, "the data")  # an NLL outside its domain means nothing
    batch_size = min(int(batch_size), int(max_rows))
    chunk = max(1, min(samples, int(max_rows) // min(batch_size, len(x))))  # samples per decoder call
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    nll = []
    for start in tqdm(range(0, len(x), batch_size), disable=not progress, desc=f"IS-NLL, K={samples}", unit="batch"):
        batch = x[start : start + batch_size].to(device)  # (B, *data_shape)
        q = model.latent.posterior(model.encoder(batch))  # (B, K) mean and log-variance
        log_sum = torch.full((len(batch),), -math.inf, device=device)  # log sum_k w_k so far
        for done in range(0, samples, chunk):
            log_w = model.log_importance_weights(batch, min(chunk, samples - done), generator, posterior=q)
            log_sum = torch.logaddexp(log_sum, torch.logsumexp(log_w, 0))  # (B,)
        nll.append((math.log(samples) - log_sum).cpu())
    model.train(was_training)
    return torch.cat(nll).double().numpy()


@torch.no_grad()
def active_units(model: Autoencoder, x: Any, threshold: float = 0.01, batch_size: int = 1024) -> int:
    """How many code units the data use: Var over examples of E_q[z_u | x] above ``threshold``.

    The measure of Burda et al. (2016): a unit whose posterior mean does not vary with x carries
    no information (its posterior collapsed to the prior). Needs a Gaussian latent.
    """
    model.latent.require_prior()
    device = next(model.parameters()).device
    x = as_tensor(x)
    was_training = model.training
    model.eval()
    means = torch.cat([model.encode(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return int((means.double().var(0) > threshold).sum())


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees between the column spaces of a (D, k) and b (D, l), largest first."""
    return np.degrees(scipy.linalg.subspace_angles(np.asarray(a, np.float64), np.asarray(b, np.float64)))


# ------------------------------------------------------------------------------------------------ #
# retrieval with binary codes


def tie_group_metrics(counts: np.ndarray, relevant: np.ndarray, k: int = 100) -> dict[str, np.ndarray]:
    """Average precision and precision@k of rankings made of tie groups, per query.

    ``counts`` (Q, L): items in each tie group, groups in rank order (for Hamming ranking, group d
    holds the items at distance d); ``relevant`` (Q, L): how many of them are relevant. Items tied
    at one distance come in random order, and each figure is its expectation over that order
    (McFee and Lanckriet 2011), so no tie-breaking rule favours a method. A query with no relevant
    item has average precision 0. Returns ``average_precision`` (Q,) and ``precision_at_k`` (Q,).
    """
    counts = np.asarray(counts, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=np.float64)
    total = int(counts[0].sum())
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, total + 1))])  # H(n) = sum_{m <= n} 1/m
    before = np.cumsum(counts, 1) - counts  # (Q, L) items ranked above each group
    relevant_before = np.cumsum(relevant, 1) - relevant
    end = (before + counts).astype(np.int64)
    h_sum = harmonic[end] - harmonic[before.astype(np.int64)]  # sum over the group's positions j of 1/j
    # E[precision at position j | item j relevant] = (R_< + 1 + (j - N_< - 1)(r - 1)/(n - 1)) / j
    others = np.divide(relevant - 1, counts - 1, out=np.zeros_like(counts), where=counts > 1)
    offset_sum = counts - (before + 1) * h_sum  # sum over positions j of (j - N_< - 1) / j
    share = np.divide(relevant, counts, out=np.zeros_like(counts), where=counts > 0)
    contribution = share * ((relevant_before + 1) * h_sum + others * offset_sum)
    n_relevant = relevant.sum(1)
    average_precision = np.divide(contribution.sum(1), n_relevant, out=np.zeros(len(counts)), where=n_relevant > 0)
    k = min(int(k), total)
    inside = np.clip(k - before, 0, counts)  # how many of each group fall in the top k
    precision_at_k = (inside * share).sum(1) / k
    return {"average_precision": average_precision, "precision_at_k": precision_at_k}


def hamming_retrieval_report(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    k: int = 100,
    radius: int = 2,
    chunk: int = 100,
    curve: bool = False,
) -> dict[str, Any]:
    """Retrieval quality of binary codes, relevance = same label, averaged over the queries.

    Codes are (Q, K) and (N, K) 0/1 arrays. Every query ranks the whole database by Hamming
    distance (ties in expectation, see :func:`tie_group_metrics`):

    * ``map``: mean average precision over the whole ranking.
    * ``precision_at_k``: fraction of relevant items among the k nearest (``k`` = 100).
    * ``precision_radius`` / ``recall_radius``: precision and recall of the items within Hamming
      distance ``radius`` (inclusive; 2 by default); a query that finds nothing has precision 0.
    * ``empty_radius``: the fraction of queries that find nothing within the radius.
    * with ``curve=True``, ``precision_curve`` and ``recall_curve``: lists of K + 1 floats, entry r
      for the Hamming ball of radius r (the precision-recall curve of hash lookup), pooled over
      the queries: relevant items found / items found, and / relevant items (precision is 0 where
      no query finds anything).
    """
    from .hash_index import hamming_distances

    query_labels, database_labels = np.asarray(query_labels), np.asarray(database_labels)
    n_bits = np.asarray(query_codes).shape[-1]
    levels = n_bits + 1
    sums = {"map": 0.0, "precision_at_k": 0.0, "precision_radius": 0.0, "recall_radius": 0.0, "empty_radius": 0.0}
    n_queries = len(query_labels)
    found_by_radius, relevant_by_radius, n_relevant = np.zeros(levels), np.zeros(levels), 0.0
    for start in range(0, n_queries, chunk):
        distances = hamming_distances(query_codes[start : start + chunk], database_codes)  # (c, N)
        same = query_labels[start : start + chunk, None] == database_labels[None, :]  # (c, N)
        rows = np.arange(len(distances))[:, None] * levels
        counts = np.bincount((rows + distances).ravel(), minlength=len(distances) * levels).reshape(-1, levels)
        hits = np.bincount((rows + distances)[same], minlength=len(distances) * levels).reshape(-1, levels)
        ranked = tie_group_metrics(counts, hits, k)
        found = counts[:, : radius + 1].sum(1)
        found_relevant = hits[:, : radius + 1].sum(1)
        sums["map"] += ranked["average_precision"].sum()
        sums["precision_at_k"] += ranked["precision_at_k"].sum()
        sums["precision_radius"] += np.divide(found_relevant, found, out=np.zeros(len(found)), where=found > 0).sum()
        all_relevant = hits.sum(1)
        sums["recall_radius"] += np.divide(
            found_relevant, all_relevant, out=np.zeros(len(found)), where=all_relevant > 0
        ).sum()
        sums["empty_radius"] += (found == 0).sum()
        found_by_radius += counts.cumsum(1).sum(0)  # (levels,) items within each radius, all queries
        relevant_by_radius += hits.cumsum(1).sum(0)
        n_relevant += all_relevant.sum()
    report: dict[str, Any] = {key: float(value / n_queries) for key, value in sums.items()}
    if curve:
        precision = np.divide(relevant_by_radius, found_by_radius, out=np.zeros(levels), where=found_by_radius > 0)
        report["precision_curve"] = precision.tolist()
        report["recall_curve"] = (relevant_by_radius / max(n_relevant, 1.0)).tolist()
    return report


# ------------------------------------------------------------------------------------------------ #
# sparse dictionaries


def feature_recovery(true_directions: Any, learned_directions: Any, threshold: float = 0.9) -> dict[str, float]:
    """How well learned directions (K, D) recover known ones (F, D), both one direction per row
    (any norm): ``mcc``, the mean over the true features of their largest absolute cosine with a
    learned direction (the mean maximum correlation; 1 = every feature found); and ``precision``,
    ``recall``, ``f1`` of the matching at ``threshold``: a true feature is recovered when some learned
    direction has |cosine| >= threshold with it, a learned direction is correct when it has that with
    some true feature."""
    truth = torch.as_tensor(np.asarray(true_directions), dtype=torch.float64)
    learned = torch.as_tensor(np.asarray(learned_directions), dtype=torch.float64)
    if truth.ndim != 2 or learned.ndim != 2 or truth.shape[1] != learned.shape[1]:
        raise AekitError(
            f"directions of shapes {tuple(truth.shape)} and {tuple(learned.shape)}",
            "both are one direction per row in the same space",
            "pass (F, D) and (K, D)",
        )
    cosine = (_unit_rows(truth) @ _unit_rows(learned).T).abs()  # (F, K)
    recall = float((cosine.max(1).values >= threshold).double().mean())
    precision = float((cosine.max(0).values >= threshold).double().mean())
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"mcc": float(cosine.max(1).values.mean()), "precision": precision, "recall": recall, "f1": f1}


def _unit_rows(rows: torch.Tensor) -> torch.Tensor:
    """Each row of (N, D) divided by its norm."""
    return rows / rows.norm(dim=1, keepdim=True).clamp(min=1e-300)


@torch.no_grad()
def dictionary_report(model: Autoencoder, x: Any, batch_size: int = 4096, dense_rate: float = 0.1) -> dict[str, float]:
    """The measures of a sparse dictionary (or any autoencoder with a code) on examples x (N, D):
    ``fvu``, the fraction of variance unexplained (summed squared error over the summed squared
    deviation from the data's mean); ``l0``, non-zero code units per example; ``dead`` and ``dense``,
    the shares of units that never fire on x and that fire on more than ``dense_rate`` of it;
    ``shrinkage``, the mean of ||x^|| / ||x|| over the non-zero examples (below 1: the code shrinks
    what it reconstructs, as an L1 penalty does)."""
    model.eval()
    device = next(model.parameters()).device
    x = as_tensor(x).float()
    mean = x.flatten(1).double().mean(0)  # (D,)
    squared_error = deviation = l0 = shrinkage = 0.0
    nonzero = 0
    fired = torch.zeros(model.code_size, dtype=torch.float64)
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]  # (b, *data_shape)
        code = model.encode(batch.to(device))  # (b, K)
        recon = model.likelihood.mean(model.decode(code)).flatten(1).double().cpu()  # (b, D)
        flat = batch.flatten(1).double()
        squared_error += float((recon - flat).square().sum())
        deviation += float((flat - mean).square().sum())
        active = (code != 0).cpu()
        l0 += float(active.sum())
        fired += active.sum(0).double()
        norms = flat.norm(dim=1)  # (b,); an all-zero example has no scale to shrink
        shrinkage += float((recon.norm(dim=1)[norms > 0] / norms[norms > 0]).sum())
        nonzero += int((norms > 0).sum())
    n, rate = len(x), fired / len(x)
    return {
        "fvu": squared_error / max(deviation, 1e-300),
        "l0": l0 / n,
        "dead": float((rate == 0).double().mean()),
        "dense": float((rate > dense_rate).double().mean()),
        "shrinkage": shrinkage / max(nonzero, 1),
    }


# ------------------------------------------------------------------------------------------------ #
# generative models: what a denoising field estimates, and how close samples are to data


def log_density_gradient(log_prob: Any, x: Any) -> np.ndarray:
    """grad_x log p(x) at points x (N, D) by automatic differentiation of ``log_prob`` (points
    (N, D) -> log densities (N,), e.g. a ``torch.distributions`` object's ``log_prob``), float64."""
    points = torch.as_tensor(np.asarray(x), dtype=torch.float64).requires_grad_(True)
    (gradient,) = torch.autograd.grad(log_prob(points).sum(), points)
    return gradient.numpy()


def score_alignment(field: Any, score: Any, weights: Any = None) -> dict[str, float]:
    """How well a denoising field r(x~) - x~ (N, D) matches ``score`` (N, D), the target
    sigma^2 * grad log p_sigma(x~) at the same points: ``cosine``, the weighted mean cosine of the
    two vectors (1 = same directions), and ``relative_error``, ||field - score|| / ||score|| in the
    weighted root-mean-square sense (0 = equal). ``weights`` (N,), default equal: with points drawn
    from p_sigma itself the plain mean is already density-weighted."""
    field, score = np.asarray(field, np.float64), np.asarray(score, np.float64)
    field, score = field.reshape(len(field), -1), score.reshape(len(score), -1)
    _check_same_shape(field, score)
    w = np.ones(len(field)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if len(w) != len(field) or (w < 0).any() or w.sum() <= 0:
        raise AekitError("score weights", "one non-negative weight per point, not all zero", "fix them")
    w = w / w.sum()
    norms = np.linalg.norm(field, axis=1) * np.linalg.norm(score, axis=1)
    cosine = (field * score).sum(1) / np.maximum(norms, 1e-300)
    error = np.sqrt((w * ((field - score) ** 2).sum(1)).sum() / max((w * (score**2).sum(1)).sum(), 1e-300))
    return {"cosine": float((w * cosine).sum()), "relative_error": float(error)}


def frechet_distance(a: Any, b: Any) -> float:
    """Frechet distance between Gaussians fitted to feature rows a (N, D) and b (M, D):
    ||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)), in squared feature units (the FID
    formula on whatever features are given)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def parzen_log_likelihood(samples: Any, held_out: Any, validation: Any, bandwidths: Any = None) -> dict[str, float]:
    """Mean log-likelihood (nats per example) of ``held_out`` rows (N, D) under a Gaussian
    kernel density (Parzen window, scikit-learn's ``KernelDensity``) fitted on ``samples`` (M, D),
    its bandwidth the one of ``bandwidths`` (default: 20 values from 0.01 to 1 times the samples'
    mean standard deviation) with the best mean log-likelihood on ``validation`` rows (never the
    held-out ones). Known bias (Theis et al. 2016, "A note on the evaluation of generative
    models"): in many dimensions it ranks models poorly and can favour blurry or memorised samples;
    it is an estimate, comparable only between sample sets of the same size and dimension.
    Returns ``{"log_likelihood": nats per example, "bandwidth": ...}``."""
    from sklearn.neighbors import KernelDensity

    samples = np.asarray(samples, np.float64).reshape(len(samples), -1)
    held_out = np.asarray(held_out, np.float64).reshape(len(held_out), -1)
    validation = np.asarray(validation, np.float64).reshape(len(validation), -1)
    if bandwidths is None:
        spread = float(samples.std(0).mean()) or 1.0
        bandwidths = spread * np.logspace(-2, 0, 20)
    scores = [KernelDensity(bandwidth=float(h)).fit(samples).score_samples(validation).mean() for h in bandwidths]
    best = float(np.asarray(bandwidths)[int(np.argmax(scores))])
    density = KernelDensity(bandwidth=best).fit(samples)
    return {"log_likelihood": float(density.score_samples(held_out).mean()), "bandwidth": best}


# ------------------------------------------------------------------------------------------------ #
# image quality: arrays (H, W) or (H, W, C), values in [0, data_range]


def psnr(reference: Any, estimate: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10 log10(data_range^2 / MSE) in dB (infinite for equal images)."""
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    _check_same_shape(reference, estimate)
    mse = float(np.mean((reference - estimate) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(data_range**2 / mse)


def ssim(reference: Any, estimate: Any, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al. 2004): Gaussian window (sigma 1.5, 11 x 11), K1 = 0.01,
    K2 = 0.03, population statistics, averaged away from a 5-pixel border and over channels.

    Equals ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range)``; (H, W) or (H, W, C) arrays.
    """
    from scipy.ndimage import gaussian_filter

    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    _check_same_shape(reference, estimate)
    if reference.ndim == 3:
        return float(
            np.mean([ssim(reference[..., c], estimate[..., c], data_range, sigma) for c in range(reference.shape[-1])])
        )
    truncate = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: an 11 x 11 window

    def blur(image: np.ndarray) -> np.ndarray:
        return gaussian_filter(image, sigma, mode="reflect", truncate=truncate)

    mu_x, mu_y = blur(reference), blur(estimate)
    var_x = blur(reference * reference) - mu_x**2
    var_y = blur(estimate * estimate) - mu_y**2
    cov = blur(reference * estimate) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    border = int(truncate * sigma + 0.5)
    return float(index[border:-border, border:-border].mean())


def colourfulness(rgb: Any) -> float:
    """Hasler and Suesstrunk's colourfulness of an (H, W, 3) image in [0, 1], on the 0-255 scale of
    their paper: sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2); 0 for a grey image."""
    rgb = 255 * np.asarray(rgb, np.float64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise AekitError(f"colourfulness needs an (H, W, 3) image, got {rgb.shape}", "", "pass an RGB image")
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def chroma_accuracy_auc(reference_rgb: Any, estimate_rgb: Any, max_threshold: int = 150) -> float:
    """The raw accuracy of a colorization (Zhang, Isola and Efros 2016, "Colorful Image
    Colorization"): the area under the curve of the share of pixels whose chroma lies within ``t``
    of the reference, for the whole thresholds t = 0, 1, ..., ``max_threshold``, normalised to
    [0, 1] (the mean of the shares over those thresholds).

    The chroma distance of a pixel is the Euclidean distance between the (a, b) of the two images
    in CIE Lab (D65, :func:`aekit.colour.rgb_to_lab`), in Lab units; a pixel counts at ``t`` when
    its distance is at most ``t``. ``reference_rgb``, ``estimate_rgb``: (H, W, 3) RGB, uint8 or
    float in [0, 1]. Identical images score 1; a constant chroma error d (0 < d <= max_threshold)
    scores (max_threshold - ceil(d) + 1) / (max_threshold + 1).
    """
    from . import colour

    def ab(rgb: Any) -> torch.Tensor:
        array = np.asarray(rgb)
        if array.ndim != 3 or array.shape[-1] != 3:
            raise AekitError(f"chroma accuracy needs (H, W, 3) images, got {array.shape}", "", "pass RGB images")
        array = array / 255 if array.dtype == np.uint8 else array.astype(np.float64)
        lab = colour.rgb_to_lab(torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))))
        return lab[1:] * colour.AB_SCALE  # (2, H, W) in Lab units

    if int(max_threshold) != max_threshold or max_threshold < 0:
        raise AekitError(f"max_threshold {max_threshold}", "thresholds are whole Lab units >= 0", "fix it")
    reference, estimate = ab(reference_rgb), ab(estimate_rgb)
    _check_same_shape(reference.numpy(), estimate.numpy())
    distance = np.sort(torch.linalg.vector_norm(reference - estimate, dim=0).numpy().ravel())
    thresholds = np.arange(int(max_threshold) + 1)
    within = np.searchsorted(distance, thresholds, side="right") / distance.size  # share with distance <= t
    return float(within.mean())


# Daubechies-2 decomposition high-pass filter: two vanishing moments, so smooth image content
# (constant and linear ramps) leaves no trace in the detail coefficients
DB2_HIGH_PASS = np.array([-0.48296291314469025, 0.836516303737469, -0.22414386804185735, -0.12940952255092145])


def estimate_noise_sigma(image: Any) -> float:
    """The standard deviation of additive white Gaussian noise in an image, in pixel units (x 255
    for grey levels): the median absolute finest-scale diagonal wavelet coefficient (Daubechies-2)
    over 0.6745, pooled over the channels (Donoho and Johnstone 1994, as scikit-image's
    ``estimate_sigma``). ``image``: (H, W) or (H, W, C), at least 8 x 8. Edges and texture make it
    err upwards; on noise-free images it reads close to 0.
    """
    x = np.asarray(image, dtype=np.float64)
    x = x[..., None] if x.ndim == 2 else x
    if x.ndim != 3 or min(x.shape[:2]) < 8:
        raise AekitError(f"an image of shape {x.shape}", "noise estimation needs (H, W) or (H, W, C) >= 8 x 8", "")
    rows = scipy.ndimage.convolve1d(x, DB2_HIGH_PASS[::-1], axis=0, mode="reflect")[1::2]
    detail = scipy.ndimage.convolve1d(rows, DB2_HIGH_PASS[::-1], axis=1, mode="reflect")[:, 1::2]  # (H/2, W/2, C)
    return float(np.median(np.abs(detail[1:-1, 1:-1])) / 0.6745)


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise AekitError(f"images of shapes {a.shape} and {b.shape}", "they must have the same shape", "crop or resize")
