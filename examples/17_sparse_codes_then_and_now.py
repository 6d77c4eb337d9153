"""# 17. Sparse codes, then and now: an L1 penalty against TopK

**Claim.** The course makes a code sparse with a penalty: L1 on the activations (a Laplace prior)
pushes most of them to zero. Today's sparse autoencoders keep the k largest activations instead
(TopK, Gao et al. 2024), over a dictionary of unit-norm directions. The penalty pays for sparsity
by shrinking every activation it keeps, so its reconstructions come out too small, and at the same
number of active units it recovers the true features less well; TopK does not shrink.

**How it is measured.** Vectors made of known sparse features (`aekit.data.synthetic.sparse_features`:
128 unit directions superposed in 32 dimensions, Zipfian firing rates, 4 firing per vector on
average). The course's L1 sparse autoencoder (family `sparse`: one linear layer each way, ReLU code,
128 units) with its weight swept, and `sae-topk` with k = 4 and 128 latents, trained the same
epochs. On held-out vectors (`aekit.metrics.dictionary_report`, `feature_recovery`): L0 (active
units per vector), shrinkage (mean ||x^|| / ||x||, 1 = no shrinkage), fraction of variance
unexplained, dead units, and how well the learned decoder directions match the true ones (MCC: the
mean over true features of the best |cosine|). The L1 row compared is the swept weight whose L0 is
closest to TopK's. The tiny size trains on fewer vectors for fewer epochs, too few for units to
die (that claim is checked on the full run).
"""

# %%
from __future__ import annotations

import numpy as np
import torch
from _gallery import Run, build, command_line, fit, new_figure, style

from aekit.data.synthetic import sparse_features
from aekit.metrics import dictionary_report, feature_recovery

NAME = "17_sparse_codes_then_and_now"
DATA = {"features": 128, "dim": 32, "mean_active": 4, "group_size": 1}
K = 4
L1_WEIGHTS = (0.03, 0.1, 0.3, 0.5, 0.7, 1.0)

LABELS = {
    **{f"{m}_{key}": f"{m}: {text}" for m in ("l1", "topk") for key, text in {
        "l0": "active units per vector", "shrinkage": "mean ||x^|| / ||x||", "fvu": "fraction of variance unexplained",
        "dead": "share of units never active on held-out vectors", "mcc": "mean best |cosine| of the true features",
    }.items()},
    "l1_weight": "the L1 weight whose L0 is closest to TopK's",
    **{f"sweep_l0_{w}": f"L1 weight {w}: active units per vector" for w in L1_WEIGHTS},
    **{f"sweep_shrinkage_{w}": f"L1 weight {w}: mean ||x^|| / ||x||" for w in L1_WEIGHTS},
}  # fmt: skip


def claims(n: dict[str, float]) -> dict[str, bool]:
    return {
        "the L1 penalty shrinks what it reconstructs more than TopK (shrinkage further below 1)": n["l1_shrinkage"]
        < n["topk_shrinkage"] - 0.02,
        "at the closest L0, TopK recovers the true features better (higher MCC)": n["topk_mcc"] > n["l1_mcc"],
        "a stronger L1 penalty shrinks more": n[f"sweep_shrinkage_{L1_WEIGHTS[-1]}"]
        < n[f"sweep_shrinkage_{L1_WEIGHTS[0]}"],
        DEAD: n["l1_dead"] > n["topk_dead"],
    }


DEAD = "at the closest L0 the L1 code leaves more units dead than TopK"
TINY_EXEMPT = {DEAD}  # a few hundred steps kill no unit of either


# %% [markdown]
# ## Data with known features, and the two kinds of sparse code


# %%
def measure(tiny: bool):
    x, directions, _ = sparse_features((8000 if tiny else 60000) + 5000, seed=0, **DATA)
    train_x, test_x = x[:-5000].numpy(), x[-5000:].numpy()
    epochs = 8 if tiny else 20
    numbers: dict[str, float] = {}

    def scores(model, learned, key):
        report, found = dictionary_report(model, test_x), feature_recovery(directions, learned)
        return {f"{key}_{k}": report[k] for k in ("l0", "shrinkage", "fvu", "dead")} | {f"{key}_mcc": found["mcc"]}

    topk = fit(build("sae-topk", (DATA["dim"],), DATA["features"], k=K), train_x, epochs=epochs, lr=3e-3)
    numbers |= scores(topk, topk.decoder.weight.detach().T, "topk")
    sweep, models = {}, {}
    for weight in L1_WEIGHTS:
        model = build("sparse", (DATA["dim"],), DATA["features"], sparsity="l1", weight=weight, hidden=[])
        models[weight] = fit(model, train_x, epochs=epochs, lr=3e-3)
        sweep[weight] = scores(model, model.decoder.linear_layers[0].weight.detach().T, "l1")
        numbers[f"sweep_l0_{weight}"] = sweep[weight]["l1_l0"]
        numbers[f"sweep_shrinkage_{weight}"] = sweep[weight]["l1_shrinkage"]
    closest = min(L1_WEIGHTS, key=lambda w: abs(np.log(max(sweep[w]["l1_l0"], 1e-3) / numbers["topk_l0"])))
    numbers |= sweep[closest] | {"l1_weight": closest}
    examples = {"input": test_x[:3]}
    with torch.no_grad():
        examples["topk"] = topk.reconstruct(torch.as_tensor(test_x[:3])).numpy()
        examples["l1"] = models[closest].reconstruct(torch.as_tensor(test_x[:3])).numpy()
    return numbers, examples


# %% [markdown]
# ## The figure: shrinkage against sparsity, and three reconstructions


# %%
def draw(numbers, examples):
    with style():
        fig = new_figure(11, 3.8)
        left, right = fig.subplots(1, 2, width_ratios=[1, 1.4])
        l0 = [numbers[f"sweep_l0_{w}"] for w in L1_WEIGHTS]
        shrink = [numbers[f"sweep_shrinkage_{w}"] for w in L1_WEIGHTS]
        left.plot(l0, shrink, "o-", label="L1 penalty (weights swept)")
        for w, a, b in zip(L1_WEIGHTS, l0, shrink, strict=True):
            left.annotate(f"{w}", (a, b), textcoords="offset points", xytext=(4, 4), fontsize=7)
        left.plot([numbers["topk_l0"]], [numbers["topk_shrinkage"]], "s", color="tab:red", label=f"TopK, k = {K}")
        left.axhline(1, color="0.6", lw=0.8)
        left.set_xscale("log")
        left.set_xticks([2, 4, 8, 16, 32], ["2", "4", "8", "16", "32"], minor=False)
        left.set_xticks([], minor=True)
        left.set_xlabel("active units per vector (L0)")
        left.set_ylabel("mean ||x^|| / ||x||")
        left.legend()
        left.set_title("shrinkage against sparsity")
        width = 0.27
        dims = np.arange(12)
        for i, (key, colour) in enumerate((("input", "0.4"), ("topk", "tab:red"), ("l1", "tab:blue"))):
            right.bar(dims + (i - 1) * width, examples[key][0, :12], width, color=colour, label=key)
        right.set_xlabel("first 12 of 32 dimensions of one held-out vector")
        right.legend()
        right.set_title(f"reconstructions (L1 weight {numbers['l1_weight']})")
    return fig


# %%
def answer(n: dict[str, float]) -> str:
    return (
        f"At about the same sparsity (TopK L0 {n['topk_l0']:.1f}; the closest L1 weight, {n['l1_weight']}, "
        f"L0 {n['l1_l0']:.1f}), the L1 code reconstructs {100 * n['l1_shrinkage']:.0f} % of the input's norm "
        f"against TopK's {100 * n['topk_shrinkage']:.0f} %, explains less of the variance (unexplained "
        f"{n['l1_fvu']:.3f} against {n['topk_fvu']:.3f}) and finds the true features less well (MCC "
        f"{n['l1_mcc']:.3f} against {n['topk_mcc']:.3f}). The L1 penalty charges every active unit for its size, "
        f"so the code it keeps is smaller than the one that explains the input; TopK charges nothing for size "
        f"and fixes the count instead."
    )


def main(size: str = "full", out_dir=None, data_dir=None) -> dict:
    run = Run(NAME, size, out_dir)
    numbers, examples = measure(run.tiny)
    return run.finish(draw(numbers, examples), numbers, LABELS, claims, answer, "synthetic (seeded)")


# %%
if __name__ == "__main__":
    command_line(main, __doc__.splitlines()[0])
