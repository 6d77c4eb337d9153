"""# 4. Sparse autoencoders: the L1 penalty as a Laplace prior, and KL sparsity

**Claim.** Adding `lambda * ||z||_1` to the loss is maximum a posteriori estimation with a Laplace
prior p(z) ∝ exp(-lambda |z|) on the code: the codes it learns are peaked at zero with heavy
tails, and most units are exactly zero for a given input. The KL sparsity penalty instead fixes
each unit's *average* activation to a target rho.

**How it is measured.** Fashion-MNIST, an MLP with a 64-unit code, trained four times with the
`sparse` family: a ReLU code without and with the L1 penalty, and a sigmoid code without and with
the KL penalty (rho = 0.05). Penalty weight 0 gives the same network without the penalty. On the
test images we count the code entries that are exactly zero, the units active per image, each
code's excess kurtosis (0 for a Gaussian, 3 for a Laplace) and, for the sigmoid codes, each unit's
mean activation; the cost is the test squared error.
"""

# %%
from __future__ import annotations

import numpy as np
from _gallery import Run, build, command_line, encode, fashion_mnist, fit, new_figure, reconstruct, squared_error, style
from scipy.stats import kurtosis

NAME = "04_sparse_codes"
RHO = 0.05

LABELS = {
    "l1_weight": "L1 penalty weight lambda",
    "zero_plain": "ReLU code without penalty: share of code entries exactly 0",
    "zero_l1": "ReLU code with L1: share of code entries exactly 0",
    "active_plain": "ReLU code without penalty: active units per image (of 64)",
    "active_l1": "ReLU code with L1: active units per image (of 64)",
    "kurtosis_plain": "ReLU code without penalty: excess kurtosis of the code values",
    "kurtosis_l1": "ReLU code with L1: excess kurtosis of the code values",
    "error_plain": "ReLU code without penalty: test squared error",
    "error_l1": "ReLU code with L1: test squared error",
    "rho": "KL target activation rho",
    "mean_act_sigmoid": "sigmoid code without penalty: mean activation",
    "mean_act_kl": "sigmoid code with KL sparsity: mean activation",
    "unit_spread_kl": "sigmoid code with KL: largest |unit mean activation - rho|",
    "error_sigmoid": "sigmoid code without penalty: test squared error",
    "error_kl": "sigmoid code with KL: test squared error",
}


def claims(n: dict[str, float]) -> dict[str, bool]:
    return {
        "L1 makes most code entries exactly zero (over 20 points more than without)": n["zero_l1"]
        > n["zero_plain"] + 0.2,
        "the L1 code is heavier-tailed than without penalty (higher kurtosis)": n["kurtosis_l1"] > n["kurtosis_plain"],
        "KL sparsity brings the mean activation within a factor 2 of rho": 0.5 * n["rho"]
        < n["mean_act_kl"]
        < 2 * n["rho"],
        "without the KL penalty the sigmoid code is far from sparse (mean > 4 rho)": n["mean_act_sigmoid"]
        > 4 * n["rho"],
    }


# %% [markdown]
# ## Train the four models


# %%
def train_models(train, tiny: bool, l1_weight: float):
    hidden = [128] if tiny else [512]
    epochs = 15 if tiny else 20
    settings = {
        "plain": {"sparsity": "l1", "weight": 0.0},
        "l1": {"sparsity": "l1", "weight": l1_weight},
        "sigmoid": {"sparsity": "kl", "weight": 0.0, "rho": RHO},
        "kl": {"sparsity": "kl", "weight": 1.0, "rho": RHO},
    }
    models = {}
    for key, options in settings.items():
        models[key] = fit(build("sparse", train.data_shape, 64, hidden=hidden, **options), train.x, epochs)
    return models


# %% [markdown]
# ## Measure the codes


# %%
def measure(models, test, l1_weight: float):
    codes = {key: encode(model, test.x) for key, model in models.items()}
    numbers = {"l1_weight": l1_weight, "rho": RHO}
    for key in ("plain", "l1"):
        numbers[f"zero_{key}"] = float((codes[key] == 0).mean())
        numbers[f"active_{key}"] = float((codes[key] > 0).sum(1).mean())
        numbers[f"kurtosis_{key}"] = float(kurtosis(codes[key].ravel()))
    for key in ("sigmoid", "kl"):
        numbers[f"mean_act_{key}"] = float(codes[key].mean())
    numbers["unit_spread_kl"] = float(np.abs(codes["kl"].mean(0) - RHO).max())
    for key, model in models.items():
        numbers[f"error_{key}"] = squared_error(reconstruct(model, test.x), test.x)
    return numbers, codes


# %% [markdown]
# ## The figure: code histograms, with the Laplace density the L1 penalty corresponds to


# %%
def draw(numbers, codes):
    with style():
        fig = new_figure(10, 3.2)
        ax_relu, ax_sig, ax_units = fig.subplots(1, 3)
        bins = np.linspace(0, max(codes["plain"].max(), codes["l1"].max()), 60)
        for key, label, colour in (("plain", "no penalty", "tab:orange"), ("l1", "L1", "tab:blue")):
            values = codes[key].ravel()
            ax_relu.hist(values, bins=bins, density=True, histtype="step", lw=1.5, color=colour, label=label)
        scale = codes["l1"].mean()  # maximum-likelihood scale of an exponential (a one-sided Laplace)
        centres = 0.5 * (bins[1:] + bins[:-1])
        ax_relu.plot(centres, np.exp(-centres / scale) / scale, "k--", lw=1, label="Laplace fit")
        ax_relu.set_yscale("log")
        ax_relu.set_xlabel("code value (ReLU)")
        ax_relu.set_ylabel("density")
        ax_relu.set_title(f"zeros: {100 * numbers['zero_plain']:.0f} % vs {100 * numbers['zero_l1']:.0f} % with L1")
        ax_relu.legend(fontsize=7)
        bins = np.linspace(0, 1, 41)
        for key, label, colour in (("sigmoid", "no penalty", "tab:orange"), ("kl", f"KL, rho = {RHO}", "tab:blue")):
            ax_sig.hist(codes[key].ravel(), bins=bins, density=True, histtype="step", lw=1.5, color=colour, label=label)
        ax_sig.set_yscale("log")
        ax_sig.set_xlabel("code value (sigmoid)")
        ax_sig.set_title("sigmoid codes")
        ax_sig.legend(fontsize=7)
        for key, colour in (("sigmoid", "tab:orange"), ("kl", "tab:blue")):
            ax_units.plot(np.sort(codes[key].mean(0))[::-1], marker=".", ms=3, lw=0.8, color=colour)
        ax_units.axhline(RHO, color="k", ls="--", lw=0.8, label="rho")
        ax_units.set_yscale("log")
        ax_units.set_xlabel("code unit (sorted)")
        ax_units.set_ylabel("mean activation over the test images")
        ax_units.legend(fontsize=7)
        for ax in (ax_relu, ax_sig, ax_units):
            ax.grid(alpha=0.3)
    return fig


# %%
def answer(n: dict[str, float]) -> str:
    l1_weight = n["l1_weight"]
    return (
        f"Without a penalty, {100 * n['zero_plain']:.0f} % of the ReLU code entries are zero and "
        f"{n['active_plain']:.1f} of 64 units are active per image; with lambda = {l1_weight}, "
        f"{100 * n['zero_l1']:.0f} % are zero and {n['active_l1']:.1f} units are active, the histogram "
        f"is peaked at zero with an exponential tail (excess kurtosis {n['kurtosis_l1']:.1f} against "
        f"{n['kurtosis_plain']:.1f}), which is the Laplace prior the penalty encodes. The price is a test "
        f"error of {n['error_l1']:.2f} instead of {n['error_plain']:.2f}. The KL penalty sets the mean "
        f"activation of the sigmoid code to {n['mean_act_kl']:.3f} (target {RHO}, every unit within "
        f"{n['unit_spread_kl']:.3f} of it) where the unpenalised code averages "
        f"{n['mean_act_sigmoid']:.3f}; error {n['error_kl']:.2f} against {n['error_sigmoid']:.2f}."
    )


def main(size: str = "full", out_dir=None, data_dir=None) -> dict:
    run = Run(NAME, size, out_dir)
    train, test, data = fashion_mnist(1000 if run.tiny else 8000, 500 if run.tiny else 4000, data_dir, run.tiny)
    l1_weight = 0.2
    numbers, codes = measure(train_models(train, run.tiny, l1_weight), test, l1_weight)
    return run.finish(draw(numbers, codes), numbers, LABELS, claims, answer, data)


# %%
if __name__ == "__main__":
    command_line(main, __doc__.splitlines()[0])
