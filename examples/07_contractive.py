"""# 7. Contractive autoencoder: from lambda = 0 to very large

**Claim.** The contractive penalty lambda * ||d code / d x||_F^2 makes the code insensitive to the
input. Reconstruction pulls the other way: it needs the code to change along the data. As lambda
grows, the Jacobian norm falls and the reconstruction error rises; for very large lambda the
encoder tends to a constant and every input gets the same code. A denoising autoencoder with small
Gaussian noise contracts too: for small sigma its loss is the squared error plus sigma^2 times the
Frobenius norm of the *reconstruction's* Jacobian.

**How it is measured.** Fashion-MNIST and the classic architecture: one sigmoid layer as encoder
(64 units, penalty computed in closed form) and one linear layer as decoder. One model per
lambda; on test images we compute the exact Jacobians with `torch.func` and report
||d code / d x||_F, ||d r / d x||_F (r the reconstruction), the spread of each code unit over the
test set (its standard deviation, averaged over units) and the test squared error. Then a plain
autoencoder, a denoising one (Gaussian noise, sigma = 0.1) and a contractive one with the same
architecture.
"""

# %%
from __future__ import annotations

import itertools

import numpy as np
import torch
from _gallery import Run, build, command_line, encode, fashion_mnist, fit, new_figure, reconstruct, squared_error, style

NAME = "07_contractive"
DAE_NOISE, COMPARED_LAMBDA = 0.1, 0.1


def lambdas(tiny: bool) -> list[float]:
    return [0.0, 0.1, 10.0, 1e4] if tiny else [0.0, 0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4]


def labels(tiny: bool) -> dict[str, str]:
    out = {}
    for lam in lambdas(tiny):
        out[f"jf_{lam:g}"] = f"lambda {lam:g}: mean ||d code / d x||_F on test images"
        out[f"jr_{lam:g}"] = f"lambda {lam:g}: mean ||d r / d x||_F"
        out[f"spread_{lam:g}"] = f"lambda {lam:g}: mean standard deviation of a code unit over test images"
        out[f"error_{lam:g}"] = f"lambda {lam:g}: test squared error"
    for key in ("ae", "dae"):
        name = "plain AE" if key == "ae" else f"DAE (noise {DAE_NOISE})"
        out[f"{key}_jf"] = f"{name}: mean ||d code / d x||_F"
        out[f"{key}_jr"] = f"{name}: mean ||d r / d x||_F"
        out[f"{key}_error"] = f"{name}: test squared error"
    return out


def claims(n: dict[str, float]) -> dict[str, bool]:
    sweep = sorted(float(key[3:]) for key in n if key.startswith("jf_"))
    norms = [n[f"jf_{lam:g}"] for lam in sweep]
    return {
        "the Jacobian norm falls as lambda grows (each step at most 5 % up)": all(
            b <= 1.05 * a for a, b in itertools.pairwise(norms)
        ),
        "at the largest lambda the encoder is nearly constant (code spread falls at least five-fold)": n[
            f"spread_{sweep[-1]:g}"
        ]
        < 0.2 * n["spread_0"],
        "and the reconstruction error is the largest of the sweep": n[f"error_{sweep[-1]:g}"]
        == max(n[f"error_{lam:g}"] for lam in sweep),
        "the small-noise DAE contracts the reconstruction more than the plain AE": n["dae_jr"] < n["ae_jr"],
    }


# %% [markdown]
# ## Exact Jacobian norms with torch.func


# %%
def jacobian_norms(model, x: np.ndarray) -> tuple[float, float]:
    """Mean Frobenius norms of d code / d x and d reconstruction / d x over the examples of x."""
    model.eval()
    flat = torch.as_tensor(x).flatten(1)  # (N, D)
    shape = model.data_shape

    def code(v):
        return model.encode(v.view(1, *shape))[0]

    def recon(v):
        return model.reconstruct(v.view(1, *shape)).flatten()

    norms = []
    for function in (code, recon):
        jac = torch.func.vmap(torch.func.jacrev(function), chunk_size=32)(flat)  # (N, out, D)
        norms.append(float(jac.detach().flatten(1).norm(dim=1).mean()))
    return norms[0], norms[1]


# %% [markdown]
# ## The lambda sweep, then AE vs DAE vs CAE


# %%
def measure(train, test, tiny: bool):
    epochs = 15 if tiny else 20
    probe = test.x[: 40 if tiny else 200]
    numbers, codes = {}, {}
    for lam in lambdas(tiny):
        model = fit(build("contractive", train.data_shape, 64, hidden=[], weight=lam), train.x, epochs)
        numbers[f"jf_{lam:g}"], numbers[f"jr_{lam:g}"] = jacobian_norms(model, probe)
        codes[lam] = encode(model, test.x)
        numbers[f"spread_{lam:g}"] = float(codes[lam].std(0).mean())
        numbers[f"error_{lam:g}"] = squared_error(reconstruct(model, test.x), test.x)
    options = {"hidden": [], "code_activation": "sigmoid"}
    plain = build("denoising", train.data_shape, 64, noise="gaussian", level=0.0, **options)
    dae = build("denoising", train.data_shape, 64, noise="gaussian", level=DAE_NOISE, **options)
    for key, model in (("ae", plain), ("dae", dae)):
        fit(model, train.x, epochs)
        numbers[f"{key}_jf"], numbers[f"{key}_jr"] = jacobian_norms(model, probe)
        numbers[f"{key}_error"] = squared_error(reconstruct(model, test.x), test.x)
    return numbers, codes


# %% [markdown]
# ## The figure


# %%
def draw(numbers, codes, tiny: bool):
    sweep = lambdas(tiny)
    shown = [lam if lam > 0 else 1e-3 for lam in sweep]  # lambda = 0 drawn at 1e-3 on the log axis
    with style():
        fig = new_figure(10, 3.2)
        ax_j, ax_e, ax_c = fig.subplots(1, 3)
        ax_j.plot(shown, [numbers[f"jf_{lam:g}"] for lam in sweep], marker="o", label="||d code / d x||")
        ax_j.plot(shown, [numbers[f"jr_{lam:g}"] for lam in sweep], marker="s", label="||d r / d x||")
        for key, marker, name in (("ae", "x", "plain AE"), ("dae", "^", f"DAE {DAE_NOISE}")):
            ax_j.scatter(
                [1e-3], [numbers[f"{key}_jr"]], marker=marker, color="k", zorder=3, label=f"{name}: ||d r / d x||"
            )
        ax_j.set_yscale("log")
        ax_j.set_title("Jacobian norms (lambda 0 at the left)")
        ax_e.plot(shown, [numbers[f"error_{lam:g}"] for lam in sweep], marker="o", color="tab:red")
        ax_e.set_title("test squared error")
        ax_c.plot(shown, [numbers[f"spread_{lam:g}"] for lam in sweep], marker="o", color="tab:green")
        ax_c.set_yscale("log")
        ax_c.set_title("code spread over test images")
        for ax in (ax_j, ax_e, ax_c):
            ax.set_xscale("log")
            ax.set_xlabel("lambda")
            ax.grid(alpha=0.3)
        ax_j.legend(fontsize=6)
    return fig


# %%
def answer(n: dict[str, float]) -> str:
    sweep = sorted(float(key[3:]) for key in n if key.startswith("jf_"))
    table = "; ".join(
        f"lambda {lam:g}: {n[f'jf_{lam:g}']:.3g} / {n[f'error_{lam:g}']:.2f} / {n[f'spread_{lam:g}']:.3g}"
        for lam in sweep
    )
    return (
        f"||d code / d x||_F, test error and code spread: {table}. The Jacobian norm falls with lambda "
        f"while the error rises; at lambda {sweep[-1]:g} the code barely moves between images (spread "
        f"{n[f'spread_{sweep[-1]:g}']:.2g} against {n['spread_0']:.2g} without penalty): the encoder has "
        f"become nearly constant and the decoder outputs about the mean image. Same architecture: the "
        f"plain AE's reconstruction Jacobian has norm {n['ae_jr']:.3g}, the DAE's (noise {DAE_NOISE}) "
        f"{n['dae_jr']:.3g}, the CAE's at lambda {COMPARED_LAMBDA:g} {n[f'jr_{COMPARED_LAMBDA:g}']:.3g}; "
        f"test errors {n['ae_error']:.2f}, {n['dae_error']:.2f} and {n[f'error_{COMPARED_LAMBDA:g}']:.2f}. "
        f"The DAE contracts the reconstruction, the CAE the code (||d code / d x||: DAE "
        f"{n['dae_jf']:.3g}, CAE {n[f'jf_{COMPARED_LAMBDA:g}']:.3g}, plain {n['ae_jf']:.3g})."
    )


def main(size: str = "full", out_dir=None, data_dir=None) -> dict:
    run = Run(NAME, size, out_dir)
    train, test, data = fashion_mnist(
        800 if run.tiny else 10000, 300 if run.tiny else 2000, data_dir, run.tiny, pool=2 if run.tiny else 1
    )
    numbers, codes = measure(train, test, run.tiny)
    return run.finish(draw(numbers, codes, run.tiny), numbers, labels(run.tiny), claims, answer, data)


# %%
if __name__ == "__main__":
    command_line(main, __doc__.splitlines()[0])
