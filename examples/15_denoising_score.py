"""# 15. What a denoising autoencoder's field estimates

**Claim.** Trained to undo small Gaussian corruption of standard deviation sigma, a denoising
autoencoder's field r(x̃) - x̃ estimates sigma² times the score of the corrupted data,
sigma² ∇ log p_sigma(x̃) (Alain and Bengio 2013): the best possible denoiser is exactly
x̃ + sigma² ∇ log p_sigma(x̃) (Miyasawa 1961, "Tweedie's formula"). So a DAE learns the gradient of
a log density without ever evaluating a density.

**How it is measured.** Data whose density is known in closed form: a mixture of 8 Gaussians of
standard deviation 0.1 on a circle of radius 2 (`aekit.data.synthetic.ring_mixture`); corrupted
with N(0, sigma²) noise it is the same mixture with standard deviation (0.1² + sigma²)^½, so the
true score is exact (automatic differentiation of its log density,
`aekit.metrics.log_density_gradient`). One DAE per noise level (the `denoising` family, an MLP
2-128-128-32-128-128-2, Gaussian output with a learned sigma), trained on 20 000 points. At 5 000
points drawn from p_sigma (so averages weight each place by its density),
`aekit.metrics.score_alignment` gives the mean cosine between r(x̃) - x̃ and sigma² ∇ log p_sigma(x̃)
and the relative error of the field. The tiny size trains on 2 000 points for a few hundred steps,
too little to pin down the fields of the small noise levels (those claims are checked on the full
run).
"""

# %%
from __future__ import annotations

import math

import numpy as np
import torch
from _gallery import Run, build, command_line, fit, new_figure, style

from aekit.applications.generation import denoising_field
from aekit.data.synthetic import ring_mixture
from aekit.metrics import log_density_gradient, score_alignment

NAME = "15_denoising_score"
NOISE_LEVELS = (0.05, 0.1, 0.2, 0.4)
SHOWN = 0.1  # the noise level drawn as arrows
RING = {"modes": 8, "radius": 2.0, "std": 0.1}

LABELS = {
    **{
        f"cosine_{s}": f"noise {s}: density-weighted mean cosine of r(x~) - x~ and sigma^2 grad log p_sigma"
        for s in NOISE_LEVELS
    },
    **{f"error_{s}": f"noise {s}: relative error of r(x~) - x~ against sigma^2 grad log p_sigma" for s in NOISE_LEVELS},
    "points": "points x~ ~ p_sigma scored per noise level",
    "train_points": "training points",
}


def claims(n: dict[str, float]) -> dict[str, bool]:
    return {
        CLOSE: n["cosine_0.1"] >= 0.95 and n["error_0.1"] <= 0.15,
        EVERY: min(n[f"cosine_{s}"] for s in NOISE_LEVELS) >= 0.9,
        "the smallest noise is the hardest to estimate (its cosine is below the largest noise's)": n["cosine_0.05"]
        < n["cosine_0.4"],
    }


CLOSE = "at noise 0.1 the field is the score: mean cosine >= 0.95 and relative error <= 15 %"
EVERY = "the field points along the score at every noise level (mean cosine >= 0.9)"
TINY_EXEMPT = {CLOSE, EVERY}  # 2 000 points and a few hundred steps do not pin the small-noise fields down


# %% [markdown]
# ## The data, its corrupted density and the true score


# %%
def corrupted_density(sigma: float) -> torch.distributions.MixtureSameFamily:
    """p_sigma: the ring mixture convolved with N(0, sigma^2 I), again a ring mixture."""
    return ring_mixture(RING["modes"], RING["radius"], math.hypot(RING["std"], sigma))


def true_field(sigma: float, points: np.ndarray) -> np.ndarray:
    """sigma^2 grad log p_sigma at points (N, 2): what the optimal denoiser's field is."""
    return sigma**2 * log_density_gradient(corrupted_density(sigma).log_prob, points)


# %% [markdown]
# ## One DAE per noise level, its field against the score


# %%
def measure(tiny: bool):
    torch.manual_seed(0)
    train_x = ring_mixture(**RING).sample((2000 if tiny else 20000,)).float().numpy()
    numbers = {"points": 1000 if tiny else 5000, "train_points": len(train_x)}
    models = {}
    for sigma in NOISE_LEVELS:
        likelihood = {"name": "gaussian", "learn_sigma": "shared", "sigma": sigma}  # starts at the corruption's
        model = build("denoising", (2,), 32, noise="gaussian", level=sigma, hidden=[128, 128], likelihood=likelihood)
        models[sigma] = fit(model, train_x, epochs=30 if tiny else 60, lr=3e-3, batch_size=64 if tiny else 256)
        points = corrupted_density(sigma).sample((numbers["points"],)).float().numpy()
        found = score_alignment(denoising_field(models[sigma], points), true_field(sigma, points))
        numbers[f"cosine_{sigma}"], numbers[f"error_{sigma}"] = found["cosine"], found["relative_error"]
    return numbers, train_x, models


# %% [markdown]
# ## The figure: the field and the true score at noise 0.1, and the agreement by noise level


# %%
def draw(numbers, train_x, models):
    axis = np.linspace(-2.6, 2.6, 21)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2).astype(np.float32)
    density = corrupted_density(SHOWN).log_prob(torch.as_tensor(grid, dtype=torch.float64)).exp().numpy()
    grid = grid[density > 1e-3]  # where corrupted data fall: elsewhere neither field is defined by data
    field, score = denoising_field(models[SHOWN], grid), true_field(SHOWN, grid)
    with style():
        fig = new_figure(10, 4.3)
        left, right = fig.subplots(1, 2, width_ratios=[1.25, 1])
        left.scatter(*train_x[:2000].T, s=1, color="0.75")
        options = {"angles": "xy", "scale_units": "xy", "scale": 1, "width": 0.004}
        left.quiver(*grid.T, *score.T, color="tab:orange", label="sigma^2 grad log p_sigma (true)", **options)
        left.quiver(*grid.T, *field.T, color="tab:blue", alpha=0.8, label="r(x~) - x~ (DAE)", **options)
        left.set_aspect("equal")
        left.set_title(f"noise {SHOWN}: cosine {numbers[f'cosine_{SHOWN}']:.3f}")
        left.legend(loc="upper right", fontsize=7)
        left.set_xticks([])
        left.set_yticks([])
        levels = np.array(NOISE_LEVELS)
        right.plot(levels, [numbers[f"cosine_{s}"] for s in NOISE_LEVELS], "o-", label="mean cosine")
        right.plot(levels, [numbers[f"error_{s}"] for s in NOISE_LEVELS], "s--", label="relative error")
        right.set_xscale("log")
        right.set_xticks(levels, [str(s) for s in NOISE_LEVELS])
        right.set_xlabel("corruption std sigma")
        right.set_ylim(0, 1.05)
        right.legend()
        right.set_title("field against the true score, density-weighted")
    return fig


# %%
def answer(n: dict[str, float]) -> str:
    rows = "; ".join(
        f"sigma {s}: cosine {n[f'cosine_{s}']:.3f}, relative error {100 * n[f'error_{s}']:.0f} %" for s in NOISE_LEVELS
    )
    return (
        f"Over {n['points']} points drawn from the corrupted density ({rows}). The DAE never sees a density, "
        f"only pairs of corrupted and clean points, yet its field r(x~) - x~ is sigma^2 times the gradient of the "
        f"log density of the corrupted data, as Tweedie's formula says the best denoiser's must be. The smallest "
        f"noise is the hardest to learn: the field is then a small difference between r(x~) and x~, and the "
        f"corrupted points cover little of the space around each mode."
    )


def main(size: str = "full", out_dir=None, data_dir=None) -> dict:
    run = Run(NAME, size, out_dir)
    numbers, train_x, models = measure(run.tiny)
    return run.finish(draw(numbers, train_x, models), numbers, LABELS, claims, answer, "synthetic (seeded)")


# %%
if __name__ == "__main__":
    command_line(main, __doc__.splitlines()[0])
