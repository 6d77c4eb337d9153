"""# 2. Linear manifold: which is best, and why? Highly non-linear?

**Question.** If the data lie near a *linear* manifold (a plane), which dimensionality reduction
is best? And if they lie near a highly *non-linear* one?

**Answer in short.** On a plane, PCA is best: it is the exact minimiser of the squared error over
all linear codes, found in closed form (no local minima, no learning rate, milliseconds), and a
non-linear autoencoder cannot beat it by more than noise. On a curved manifold, a linear code of
the manifold's dimension cannot follow the curve, while a non-linear autoencoder with the same
code size reconstructs it down to the noise.

**How it is measured.** Two synthetic data sets with known geometry and Gaussian noise of known
size, so the best possible error (the noise across the manifold) is known:

* *plane*: a 2-D plane in 10 dimensions, spread 3 and 2 along it, noise sigma = 0.1 in every
  dimension (best possible error 8 sigma^2 = 0.08); code size 2.
* *spiral*: a 1-D spiral (one and a quarter turns) in 2 dimensions, noise sigma = 0.05 (best
  possible error about sigma^2 = 0.0025); code size 1.

Each is fitted with PCA (scikit-learn), the `linear` family and the `undercomplete` family (an ELU
MLP); the errors are on held-out points.
"""

# %%
from __future__ import annotations

import time

import numpy as np
from _gallery import Run, build, command_line, fit, new_figure, reconstruct, squared_error, style
from sklearn.decomposition import PCA

NAME = "02_linear_vs_curved"
PLANE_NOISE, SPIRAL_NOISE = 0.1, 0.05

LABELS = {
    "plane_floor": "plane: best possible error, 8 sigma^2 (squared error per point)",
    "plane_pca": "plane: PCA, 2 components, test squared error",
    "plane_linear": "plane: linear AE, code 2, test squared error",
    "plane_nonlinear": "plane: non-linear AE, code 2, test squared error",
    "plane_pca_seconds": "plane: PCA fit time (s)",
    "plane_nonlinear_seconds": "plane: non-linear AE training time (s)",
    "spiral_floor": "spiral: best possible error, about sigma^2",
    "spiral_pca": "spiral: PCA, 1 component, test squared error",
    "spiral_linear": "spiral: linear AE, code 1, test squared error",
    "spiral_nonlinear": "spiral: non-linear AE, code 1, test squared error",
}


def claims(n: dict[str, float]) -> dict[str, bool]:
    return {
        "on the plane PCA reaches the noise floor (within 5 %)": n["plane_pca"] < 1.05 * n["plane_floor"],
        "on the plane no autoencoder beats PCA by more than 2 %": min(n["plane_linear"], n["plane_nonlinear"])
        > 0.98 * n["plane_pca"],
        "on the spiral the non-linear AE's error is below a fifth of PCA's": n["spiral_nonlinear"]
        < 0.2 * n["spiral_pca"],
        "on the spiral the linear AE is no better than PCA": n["spiral_linear"] > 0.98 * n["spiral_pca"],
    }


# %% [markdown]
# ## The two data sets


# %%
def plane(n: int, rng: np.random.Generator) -> np.ndarray:
    basis = np.linalg.qr(np.random.default_rng(123).normal(size=(10, 2)))[0]  # (10, 2), fixed plane
    s = rng.normal(size=(n, 2)) * [3.0, 2.0]
    return (s @ basis.T + PLANE_NOISE * rng.normal(size=(n, 10))).astype(np.float32)


def spiral(n: int, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0.5 * np.pi, 3 * np.pi, n)
    points = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 3
    return (points + SPIRAL_NOISE * rng.normal(size=points.shape)).astype(np.float32)


# %% [markdown]
# ## Fit PCA, a linear AE and a non-linear AE to each


# %%
def compare(make, code_size: int, n_train: int, epochs: int, hidden, seed: int = 0):
    rng = np.random.default_rng(seed)
    x_train, x_test = make(n_train, rng), make(2000, rng)
    started = time.perf_counter()
    pca = PCA(code_size).fit(x_train)
    pca_seconds = time.perf_counter() - started
    linear = fit(build("linear", (x_train.shape[1],), code_size), x_train, epochs, lr=3e-3, batch_size=64)
    started = time.perf_counter()
    nonlinear = build("undercomplete", (x_train.shape[1],), code_size, hidden=hidden)
    fit(nonlinear, x_train, epochs, lr=3e-3, batch_size=64)
    nonlinear_seconds = time.perf_counter() - started
    recon = {
        "pca": pca.inverse_transform(pca.transform(x_test)),
        "linear": reconstruct(linear, x_test),
        "nonlinear": reconstruct(nonlinear, x_test),
    }
    errors = {name: squared_error(r, x_test) for name, r in recon.items()}
    return errors, pca_seconds, nonlinear_seconds, x_test, recon


# %% [markdown]
# ## The figure: the spiral and its reconstructions, and every error against the noise floor


# %%
def draw(numbers, x_test, recon):
    with style():
        fig = new_figure(9.5, 3.6)
        ax_spiral, ax_bars = fig.subplots(1, 2, width_ratios=[1, 1.3])
        ax_spiral.scatter(*x_test[:600].T, s=3, color="0.6", label="test points")
        order = np.argsort(recon["nonlinear"][:600, 0])
        ax_spiral.scatter(*recon["pca"][:600].T, s=3, color="tab:orange", label="PCA, 1 component")
        ax_spiral.scatter(*recon["nonlinear"][:600][order].T, s=3, color="tab:blue", label="non-linear AE, code 1")
        ax_spiral.set_aspect("equal")
        ax_spiral.set_title("spiral: reconstructions")
        ax_spiral.legend(markerscale=3, fontsize=7, loc="lower left")
        groups = ["plane", "spiral"]
        methods = [
            ("pca", "PCA", "tab:orange"),
            ("linear", "linear AE", "tab:green"),
            ("nonlinear", "non-linear AE", "tab:blue"),
        ]
        for i, (key, label, colour) in enumerate(methods):
            ratios = [numbers[f"{group}_{key}"] / numbers[f"{group}_floor"] for group in groups]
            ax_bars.bar(np.arange(2) + (i - 1) * 0.27, ratios, width=0.27, label=label, color=colour)
        ax_bars.axhline(1.0, color="k", lw=0.8, ls="--", label="noise floor")
        ax_bars.set_yscale("log")
        ax_bars.set_xticks(np.arange(2), ["plane (code 2)", "spiral (code 1)"])
        ax_bars.set_ylabel("test error / noise floor")
        ax_bars.legend(fontsize=7)
        ax_bars.grid(alpha=0.3, axis="y")
    return fig


# %%
def answer(n: dict[str, float]) -> str:
    return (
        f"Plane: PCA reaches {n['plane_pca']:.4f} against a floor of {n['plane_floor']:.4f}, in "
        f"{1000 * n['plane_pca_seconds']:.1f} ms; the linear AE ({n['plane_linear']:.4f}) and the "
        f"non-linear AE ({n['plane_nonlinear']:.4f}, {n['plane_nonlinear_seconds']:.1f} s of training) "
        f"only match it at best. Spiral: one linear component leaves {n['spiral_pca']:.4f} (linear AE "
        f"{n['spiral_linear']:.4f}), {n['spiral_pca'] / n['spiral_floor']:.0f} times the floor, because a "
        f"line cannot follow a curve; the non-linear AE with a single code unit reaches "
        f"{n['spiral_nonlinear']:.4f} ({n['spiral_nonlinear'] / n['spiral_floor']:.1f} times the floor): "
        f"its code is a coordinate along the curve."
    )


def main(size: str = "full", out_dir=None, data_dir=None) -> dict:
    run = Run(NAME, size, out_dir)
    n_train, epochs = (600, 60) if run.tiny else (4000, 150)
    hidden = [64, 64] if run.tiny else [128, 128]
    numbers = {"plane_floor": 8 * PLANE_NOISE**2, "spiral_floor": SPIRAL_NOISE**2}
    plane_errors, pca_seconds, ae_seconds, _, _ = compare(plane, 2, n_train, epochs // 3, hidden)
    numbers.update({f"plane_{k}": v for k, v in plane_errors.items()})
    numbers.update(plane_pca_seconds=pca_seconds, plane_nonlinear_seconds=ae_seconds)
    spiral_errors, _, _, x_test, recon = compare(spiral, 1, n_train, epochs, hidden)
    numbers.update({f"spiral_{k}": v for k, v in spiral_errors.items()})
    return run.finish(draw(numbers, x_test, recon), numbers, LABELS, claims, answer, "synthetic (seeded)")


# %%
if __name__ == "__main__":
    command_line(main, __doc__.splitlines()[0])
