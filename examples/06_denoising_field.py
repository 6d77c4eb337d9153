"""# 6. A denoising autoencoder learns a vector field that points back to the data

**Claim.** A denoising autoencoder is trained to map a corrupted point x̃ back to the clean x. So
r(x) - x, evaluated anywhere, points from x towards the data manifold: the autoencoder has learned
a vector field (for small Gaussian noise, proportional to the score, the gradient of the log
density). The noise level sets how far from the manifold the field is meaningful.

**How it is measured.** Points on a circle of radius 1 (a 1-D manifold in 2-D) with a little
noise (sigma 0.02). The `denoising` family with Gaussian corruption of standard deviation 0.05,
0.15 and 0.3 (unclipped, since these are not pixels), an MLP with two hidden layers of 64 units
and a 32-unit code. On a grid of points between 0.1 and 0.6 away from the circle we compare
r(x) - x with the direction to the nearest point of the circle, x/|x| - x: the mean cosine (1 =
straight back to the manifold, 0 = random), and how much of the distance one application of r
covers.
"""

# %%
from __future__ import annotations

import numpy as np
from _gallery import Run, build_config, command_line, fit, new_figure, reconstruct, style

import aekit

NAME = "06_denoising_field"
NOISE_LEVELS = (0.05, 0.15, 0.3)

LABELS = {
    **{f"cosine_{s}": f"noise {s}: mean cosine between r(x) - x and the direction to the circle" for s in NOISE_LEVELS},
    **{f"share_{s}": f"noise {s}: mean share of the distance to the circle covered by r(x) - x" for s in NOISE_LEVELS},
    "grid_points": "grid points scored (0.1 to 0.6 from the circle)",
}


def claims(n: dict[str, float]) -> dict[str, bool]:
    return {
        "the field points back to the circle at every noise level (mean cosine > 0.8)": min(
            n[f"cosine_{s}"] for s in NOISE_LEVELS
        )
        > 0.8,
        "more noise pulls back from farther: the share of the distance covered grows with the noise": n[
            f"share_{NOISE_LEVELS[-1]}"
        ]
        > n[f"share_{NOISE_LEVELS[0]}"],
    }


# %% [markdown]
# ## Data near a circle, and a grid to evaluate the field on


# %%
def circle(n: int, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi, n)
    return (np.stack([np.cos(angle), np.sin(angle)], 1) + 0.02 * rng.normal(size=(n, 2))).astype(np.float32)


def grid(steps: int) -> np.ndarray:
    axis = np.linspace(-1.6, 1.6, steps)
    return np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2).astype(np.float32)


# %% [markdown]
# ## Train one DAE per noise level and compare its field with the true direction


# %%
def denoiser(noise: float, tiny: bool) -> aekit.Autoencoder:
    config = aekit.family_config("denoising", (2,), 32, noise="gaussian", level=noise, hidden=[64, 64])
    config.corruption["clip"] = False  # points in the plane, not pixels in [0, 1]
    return build_config(config)


def measure(tiny: bool):
    rng = np.random.default_rng(0)
    x_train = circle(1000 if tiny else 5000, rng)
    points = grid(25)
    radius = np.linalg.norm(points, axis=1)
    scored = (np.abs(radius - 1) > 0.1) & (np.abs(radius - 1) < 0.6)
    towards = points / np.maximum(radius, 1e-9)[:, None] - points  # (P, 2): to the nearest point of the circle
    numbers, fields = {"grid_points": int(scored.sum())}, {}
    for noise in NOISE_LEVELS:
        model = fit(denoiser(noise, tiny), x_train, epochs=30 if tiny else 60, lr=3e-3, batch_size=64)
        field = reconstruct(model, points) - points  # (P, 2)
        norms = np.linalg.norm(field, axis=1) * np.linalg.norm(towards, axis=1)
        cosine = (field * towards).sum(1) / np.maximum(norms, 1e-12)
        share = (field * towards).sum(1) / np.maximum((towards**2).sum(1), 1e-12)  # the step's share of the way back
        numbers[f"cosine_{noise}"] = float(cosine[scored].mean())
        numbers[f"share_{noise}"] = float(share[scored].mean())
        fields[noise] = field
    return numbers, x_train, points, fields


# %% [markdown]
# ## The figure: the field for each noise level


# %%
def draw(numbers, x_train, points, fields):
    with style():
        fig = new_figure(10, 3.5)
        axes = fig.subplots(1, len(NOISE_LEVELS))
        for ax, noise in zip(axes, NOISE_LEVELS, strict=True):
            ax.scatter(*x_train[:500].T, s=2, color="0.7")
            ax.quiver(
                *points.T, *fields[noise].T, angles="xy", scale_units="xy", scale=1, width=0.004, color="tab:blue"
            )
            ax.set_aspect("equal")
            ax.set_xlim(-1.65, 1.65)
            ax.set_ylim(-1.65, 1.65)
            ax.set_title(f"noise {noise}: cosine {numbers[f'cosine_{noise}']:.2f}")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle("r(x) - x of a denoising autoencoder (arrows to scale) and the training data (grey)")
    return fig


# %%
def answer(n: dict[str, float]) -> str:
    cosines = ", ".join(f"{n[f'cosine_{s}']:.3f}" for s in NOISE_LEVELS)
    shares = ", ".join(f"{100 * n[f'share_{s}']:.0f} %" for s in NOISE_LEVELS)
    return (
        f"Over {n['grid_points']} grid points 0.1 to 0.6 away from the circle, the mean cosine between "
        f"r(x) - x and the direction to the circle is {cosines} for noise {', '.join(map(str, NOISE_LEVELS))}: "
        f"the field points back to the manifold. One step of r covers {shares} of the distance on "
        f"average: a DAE trained with small noise has only seen corrupted points close to the circle and "
        f"moves far-away points less, while larger noise teaches it to pull back from farther."
    )


def main(size: str = "full", out_dir=None, data_dir=None) -> dict:
    run = Run(NAME, size, out_dir)
    numbers, x_train, points, fields = measure(run.tiny)
    return run.finish(draw(numbers, x_train, points, fields), numbers, LABELS, claims, answer, "synthetic (seeded)")


# %%
if __name__ == "__main__":
    command_line(main, __doc__.splitlines()[0])
