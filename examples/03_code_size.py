"""# 3. What if the code has size 1? And if it is very large?

**Question.** An autoencoder with a code of size 1 must describe every image by one number. One
with a code larger than the image can simply copy it. What does each learn?

**How it is measured.** The same MLP (one hidden layer wider than the image, so that the code is
the only bottleneck) with codes of size 1, 32 and twice the number of pixels, trained with squared
error on a few thousand Fashion-MNIST images. The overcomplete model is built from the parts of the
`undercomplete` family with the code widened by editing its `ModelConfig` (the family itself
refuses a code as large as the input, for the reason measured here). We report:

* the squared error on the training and on the test images;
* what the code keeps of noise added to a test image (Gaussian, sigma = 0.1 per pixel): the share
  of the noise's energy that survives into the reconstruction, |r(x + e) - r(x)|^2 / |e|^2. A
  model that learned the data removes most of it; the identity keeps all of it;
* what a code of size 1 keeps: its rank correlation with the image's mean brightness, and the test
  accuracy of a nearest-neighbour classifier on the codes (chance is 10 %).
"""

# %%
from __future__ import annotations

import copy

import numpy as np
from _gallery import (
    Run,
    build,
    build_config,
    command_line,
    encode,
    fashion_mnist,
    fit,
    new_figure,
    reconstruct,
    squared_error,
    style,
)
from scipy.stats import spearmanr
from sklearn.neighbors import KNeighborsClassifier

import aekit

NAME = "03_code_size"

LABELS = {
    "pixels": "pixels per image",
    "large_code": "size of the overcomplete code",
    **{
        f"{key}_{size}": text.format(size=size)
        for size in ("1", "32", "large")
        for key, text in {
            "train": "code {size}: training squared error (per image)",
            "test": "code {size}: test squared error",
            "noise_kept": "code {size}: share of the energy of noise added to a test image kept in its reconstruction",
            "knn": "code {size}: 5-nearest-neighbour test accuracy on the codes",
        }.items()
    },
    "brightness_rho": "code 1: |Spearman correlation| with the image's mean brightness",
}


def claims(n: dict[str, float]) -> dict[str, bool]:
    return {
        "a code of size 1 loses most of the detail (test error over twice that of code 32)": n["test_1"]
        > 2 * n["test_32"],
        "a code of size 1 keeps mostly the overall brightness (|rho| > 0.7)": n["brightness_rho"] > 0.7,
        "the overcomplete code keeps over three times as much of the added noise as code 32": n["noise_kept_large"]
        > 3 * n["noise_kept_32"],
        "the overcomplete code has the lowest test error of the three": n["test_large"]
        < min(n["test_1"], n["test_32"]),
    }


# %% [markdown]
# ## Data and models


# %%
def load(size, data_dir):
    tiny = size == "tiny"
    return fashion_mnist(600 if tiny else 3000, 300 if tiny else 2000, data_dir, tiny, pool=2 if tiny else 1)


def model_with_code(data_shape, code_size: int, hidden: list[int]) -> aekit.Autoencoder:
    """An MLP autoencoder; codes at least as large as the input are built by editing the config."""
    pixels = int(np.prod(data_shape))
    if code_size < pixels:
        return build("undercomplete", data_shape, code_size, hidden=hidden)
    config = copy.deepcopy(aekit.family_config("undercomplete", data_shape, 1, hidden=hidden))
    config.encoder["out_shape"] = [code_size]
    config.latent["code_size"] = code_size
    config.decoder["in_shape"] = [code_size]
    return build_config(config)


# %% [markdown]
# ## Train the three and measure


# %%
def measure(train, test, tiny: bool):
    pixels = int(np.prod(train.data_shape))
    hidden = [256] if tiny else [1024]
    noisy = test.x + 0.1 * np.random.default_rng(1).normal(size=test.x.shape).astype(np.float32)
    noise_energy = squared_error(noisy, test.x)
    numbers, codes_1, shown = {"pixels": pixels, "large_code": 2 * pixels}, None, {}
    for key, code_size in (("1", 1), ("32", 8 if tiny else 32), ("large", 2 * pixels)):
        model = model_with_code(train.data_shape, code_size, hidden)
        fit(model, train.x, epochs=20 if tiny else 30, lr=3e-3 if tiny else 1e-3, batch_size=32 if tiny else 64)
        codes_train, codes_test = encode(model, train.x), encode(model, test.x)
        knn = KNeighborsClassifier(5).fit(codes_train, train.labels)
        numbers[f"train_{key}"] = squared_error(reconstruct(model, train.x), train.x)
        numbers[f"test_{key}"] = squared_error(reconstruct(model, test.x), test.x)
        numbers[f"noise_kept_{key}"] = (
            squared_error(reconstruct(model, noisy), reconstruct(model, test.x)) / noise_energy
        )
        numbers[f"knn_{key}"] = float(knn.score(codes_test, test.labels))
        shown[key] = (reconstruct(model, test.x[:6]), reconstruct(model, noisy[:4]))
        if key == "1":
            codes_1 = codes_test[:, 0]
    brightness = test.x.reshape(len(test), -1).mean(1)
    numbers["brightness_rho"] = abs(float(spearmanr(codes_1, brightness).statistic))
    return numbers, shown, codes_1, brightness, noisy[:4]


# %% [markdown]
# ## The figure


# %%
def draw(numbers, test, shown, codes_1, brightness, noisy):
    side = test.data_shape[-1]
    big = numbers["large_code"]
    with style():
        fig = new_figure(10, 4.2)
        left, right = fig.subfigures(1, 2, width_ratios=[1.7, 1])
        axes = left.subplots(4, 10)
        rows = [("original", test.x[:6], noisy)]
        rows += [(f"code {k if k != 'large' else big}", *shown[k]) for k in ("1", "32", "large")]
        for r, (label, images, noisy_images) in enumerate(rows):
            for c, image in enumerate([*images, *noisy_images]):
                axes[r, c].imshow(np.clip(image.reshape(side, side), 0, 1), cmap="gray", vmin=0, vmax=1)
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center")
        axes[0, 6].set_title("with added noise", fontsize=8, loc="left")
        left.suptitle("test images, clean (left) and noisy (right), and their reconstructions")
        ax = right.subplots()
        ax.scatter(brightness, codes_1, s=4, c=test.labels, cmap="tab10", alpha=0.7, rasterized=True)
        ax.set_xlabel("mean brightness of the image")
        ax.set_ylabel("code (size 1)")
        ax.set_title(f"what one number keeps: |rho| = {numbers['brightness_rho']:.2f}")
        ax.grid(alpha=0.3)
    return fig


# %%
def answer(n: dict[str, float]) -> str:
    return (
        f"Code 1: training error {n['train_1']:.2f}, test {n['test_1']:.2f}: every image becomes a blurred "
        f"prototype placed along one axis, which follows the image's overall brightness (|rho| = "
        f"{n['brightness_rho']:.2f}); a nearest-neighbour classifier on that single number still reaches "
        f"{100 * n['knn_1']:.0f} % (chance 10 %). Code 32 (on {n['pixels']} pixels): {n['train_32']:.2f} / "
        f"{n['test_32']:.2f}. Code {n['large_code']}: {n['train_large']:.2f} / {n['test_large']:.2f}, the "
        f"best numbers of the three, and the trap: it keeps {100 * n['noise_kept_large']:.0f} % of "
        f"the energy of noise added to an image, against {100 * n['noise_kept_32']:.0f} % for code 32 "
        f"and {100 * n['noise_kept_1']:.1f} % for code 1. Its train/test gap is small because copying "
        f"generalises to any image; a low reconstruction error says nothing about whether the code "
        f"captured the structure of the data, which is why overcomplete codes need a regulariser "
        f"(sparsity, denoising, contraction)."
    )


def main(size: str = "full", out_dir=None, data_dir=None) -> dict:
    run = Run(NAME, size, out_dir)
    train, test, data = load(size, data_dir)
    numbers, shown, codes_1, brightness, noisy = measure(train, test, run.tiny)
    figure = draw(numbers, test, shown, codes_1, brightness, noisy)
    return run.finish(figure, numbers, LABELS, claims, answer, data)


# %%
if __name__ == "__main__":
    command_line(main, __doc__.splitlines()[0])
