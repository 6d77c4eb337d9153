"""# 14. Why does a colorizer trained with squared error paint in sepia?

**Answer.** Because squared error is the negative log-likelihood of a Gaussian output unit, and
the best guess of a Gaussian is the mean. A grey pixel of a given lightness could have been a red
shirt, a blue shirt or a green leaf; the colour that minimises the squared error over all of them
is their average, a dull greyish brown. Trained on many photos, a regression colorizer paints
every uncertain region in that average: the sepia look. Choose another output unit, another
likelihood: a categorical distribution over quantised colours (Zhang et al. 2016, "Colorful Image
Colorization") keeps the plausible colours apart, and a colour read near its mode is one that
occurs, not the average of several.

**How it is measured.** Two colorizers with the same network (the `colorize` family: a RED-Net
that sees the lightness, with the same width, depth and downscale), trained on the same random
crops of the CBSD432 colour photos for the same number of steps. Only the output unit, and so the
loss, differs: `output=gaussian` regresses the Lab (a, b) chroma (squared error in RGB);
`output=categorical` gives 261 logits per pixel over the in-gamut 10 x 10 cells of the Lab (a, b)
plane, trained by cross-entropy with class rebalancing and read out by the annealed mean
(temperature 0.38; `aekit.likelihoods.ChromaBins`). Both colour the centre crops of the Kodak24
photos, which neither saw, from the grey photo of the same Lab lightness (what
`ImageRestorer.degrade` gives). Scores against the originals: PSNR in dB on RGB next to that of the BT.601 luma
replicated to RGB, the colourfulness of Hasler and Suesstrunk (`aekit.metrics.colourfulness`, 0
for a grey image), the mean Lab chroma, and the raw accuracy of Zhang et al.
(`aekit.metrics.chroma_accuracy_auc`: the share of pixels whose (a, b) lies within t of the truth,
averaged over t = 0..150). The figure shows kodim03, kodim14 and kodim23.

With `--models DIR` the full run uses the colorizers trained by `aekit train` in
`DIR/colorize-gaussian` and `DIR/colorize-categorical` (docs/restoration.md gives the commands);
otherwise, and always at the test suite's tiny size, the example trains them itself, a missing one
with the network of the one given (the numbers say which, and how many crops each saw). Photos
are read from `$AEKIT_DATA_DIR` (or `--data-dir`), folders `CBSD432/` and `Kodak24/`.
"""

# %%
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from _gallery import Run, build, command_line, new_figure, style
from skimage.color import rgb2lab

import aekit
from aekit.applications.restoration import ImageRestorer
from aekit.data.patches import IMAGE_SUFFIXES, extract_patches, read_images
from aekit.metrics import chroma_accuracy_auc, colourfulness, psnr

NAME = "14_colour_output_units"
FOLDERS = ("CBSD432", "Kodak24")
OUTPUTS = ("gaussian", "categorical")
SHOWN = ("kodim03", "kodim14", "kodim23")
LUMA = np.array([0.299, 0.587, 0.114])  # BT.601
# training here: the network and the crops, the same for both output units
TRAINING = {
    "tiny": {"photos": 40, "side": 16, "crops": 1600, "epochs": 4, "batch": 16, "lr": 5e-3,
             "network": {"width": 16, "depth": 3, "downscale": 4}},
    "full": {"photos": None, "side": 48, "crops": 12000, "epochs": 2, "batch": 16, "lr": 1e-3,
             "network": {"width": 32, "depth": 5, "downscale": 4}},
}  # fmt: skip
METHODS = {"grey": "the grey input", "gaussian": "Gaussian unit", "categorical": "categorical unit"}

LABELS = {
    **{f"given_{o}": f"{o} unit: the model given by --models (1) or one trained here (0)" for o in OUTPUTS},
    **{f"steps_{o}": f"{o} unit: training steps" for o in OUTPUTS},
    **{f"crops_seen_{o}": f"{o} unit: training crops seen (steps x batch)" for o in OUTPUTS},
    **{f"crop_side_{o}": f"{o} unit: side of the training crops (pixels)" for o in OUTPUTS},
    "width": "both networks: width (channels)",
    "depth": "both networks: depth (layers per half)",
    "downscale": "both networks: downscale",
    "bins": "categorical unit: chroma bins (logits per pixel)",
    "test_photos": "Kodak24 test photos",
    "crop": "side of the centre crops (pixels)",
    **{f"psnr_{m}": f"{text}: PSNR on RGB (dB)" for m, text in METHODS.items()},
    **{f"auc_{m}": f"{text}: raw accuracy AUC (Zhang et al.)" for m, text in METHODS.items()},
    "colourfulness_original": "the originals: colourfulness (Hasler-Suesstrunk)",
    **{f"colourfulness_{o}": f"{METHODS[o]}: colourfulness (Hasler-Suesstrunk)" for o in OUTPUTS},
    "chroma_original": "the originals: mean Lab chroma",
    **{f"chroma_{o}": f"{METHODS[o]}: mean Lab chroma" for o in OUTPUTS},
}


def claims(n: dict[str, float]) -> dict[str, bool]:
    return {
        "the categorical unit's colours are more colourful than the Gaussian unit's": n["colourfulness_categorical"]
        > n["colourfulness_gaussian"],
        "the Gaussian unit's colours are less colourful than the originals (the sepia)": n["colourfulness_gaussian"]
        < n["colourfulness_original"],
    }


def answer(n: dict[str, float]) -> str:
    made = {o: "given by --models" if n[f"given_{o}"] else "trained here" for o in OUTPUTS}
    source = (
        f"both {made['gaussian']}" if made["gaussian"] == made["categorical"] else
        f"the Gaussian one {made['gaussian']}, the categorical one {made['categorical']}"
    )  # fmt: skip
    psnr_cost = n["psnr_gaussian"] - n["psnr_categorical"]
    vivid = (
        f"The vivid colours cost PSNR: the categorical unit scores {psnr_cost:.2f} dB below the Gaussian "
        f"unit. A saturated colour that is wrong lies further from the truth than a greyish one, and the "
        f"squared error behind PSNR is exactly what the Gaussian unit minimises, so its hedged mean wins on it."
        if psnr_cost > 0
        else f"Here the categorical unit's colours are even {-psnr_cost:.2f} dB closer to the truth than the "
        f"Gaussian unit's means; a vivid guess that is wrong costs more than a grey one, so this need not hold."
    )
    return (
        f"On {n['test_photos']} Kodak24 photos neither model saw ({n['crop']} x {n['crop']} centre crops; "
        f"two colorizers of width {n['width']}, depth {n['depth']} and downscale {n['downscale']}, {source}, "
        f"trained for {n['steps_gaussian']} (Gaussian) and {n['steps_categorical']} (categorical) steps), "
        f"the originals have a colourfulness of {n['colourfulness_original']:.1f}. The network trained with "
        f"squared error, a Gaussian output unit, paints them at {n['colourfulness_gaussian']:.1f} "
        f"({100 * n['colourfulness_gaussian'] / n['colourfulness_original']:.0f} % of the originals'): "
        f"for every pixel it predicts the mean of the colours its grey could have had, and that mean is "
        f"dull. The same network with a categorical unit over {n['bins']} chroma bins paints them at "
        f"{n['colourfulness_categorical']:.1f} "
        f"({n['colourfulness_categorical'] / max(n['colourfulness_gaussian'], 1e-9):.1f} times the Gaussian's): "
        f"it keeps a distribution over colours, and its annealed mean leans to the mode, a colour that occurs. "
        f"Mean Lab chroma: {n['chroma_original']:.1f} (originals), {n['chroma_gaussian']:.1f} (Gaussian), "
        f"{n['chroma_categorical']:.1f} (categorical). PSNR on RGB: {n['psnr_grey']:.2f} dB for the grey "
        f"input, {n['psnr_gaussian']:.2f} for the Gaussian unit, {n['psnr_categorical']:.2f} for the "
        f"categorical unit. {vivid} The raw accuracy AUC of Zhang et al. reads {n['auc_grey']:.3f} (grey), "
        f"{n['auc_gaussian']:.3f} (Gaussian) and {n['auc_categorical']:.3f} (categorical). The output unit "
        f"is a choice of likelihood: where the data allow several values, a Gaussian's best guess is "
        f"their mean, a categorical's is one of them."
    )


# %% [markdown]
# ## The photos


# %%
def photo_dir(data_dir, train_here: bool) -> Path:
    root = data_dir or os.environ.get("AEKIT_DATA_DIR")
    needed = FOLDERS if train_here else ("Kodak24",)
    missing = [f for f in needed if root is None or not (Path(root) / f).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"photos not found: {', '.join(missing)} under {root}; pass --data-dir (or set AEKIT_DATA_DIR) "
            f"to a folder holding {', '.join(needed)}"
        )
    return Path(root)


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def centre_crop(path: Path, side: int) -> np.ndarray:
    """The centre side x side crop of a colour photo, (side, side, 3) in [0, 1]."""
    (image,) = read_images(path, "rgb")  # (3, H, W)
    _, h, w = image.shape
    top, left = (h - side) // 2, (w - side) // 2
    return np.moveaxis(image[:, top : top + side, left : left + side], 0, -1)


def mean_chroma(rgb: np.ndarray) -> float:
    """The mean over pixels of sqrt(a^2 + b^2) in CIELAB (D65)."""
    return float(np.hypot(*np.moveaxis(rgb2lab(rgb)[..., 1:], -1, 0)).mean())


# %% [markdown]
# ## The two colorizers: given, or trained here on the same crops


# %%
def train(output: str, root: Path, tiny: bool, network: dict[str, int]) -> tuple[ImageRestorer, dict[str, int]]:
    settings = TRAINING["tiny" if tiny else "full"]
    files = image_files(root / "CBSD432")[: settings["photos"]]
    images = [image for path in files for image in read_images(path, "rgb")]
    crops = extract_patches(images, settings["side"], settings["crops"], seed=0)  # (N, 3, side, side)
    model = build("colorize", crops.shape[1:], 1, output=output, space="lab", **network)
    config = aekit.TrainConfig(
        epochs=settings["epochs"],
        batch_size=settings["batch"],
        lr=settings["lr"],
        lr_schedule="cosine",
        val_fraction=0.0,
        device="cpu",
        seed=0,
    )
    result = aekit.Trainer(model, config, progress=False).fit(torch.from_numpy(crops))
    seen = {"steps": result.steps, "crops_seen": result.steps * settings["batch"], "crop_side": settings["side"]}
    return ImageRestorer(model.eval()), seen


def given(folder: Path) -> tuple[ImageRestorer, dict[str, int]]:
    record = json.loads((folder / "train.json").read_text())  # written by aekit train
    steps = int(record["result"]["steps"])
    seen = {
        "steps": steps,
        "crops_seen": steps * int(record["train"]["batch_size"]),
        "crop_side": int(record["data"]["patch_size"] or 0),
    }
    return ImageRestorer.load(folder), seen


def network_of(restorer: ImageRestorer) -> dict[str, int]:
    return {key: restorer.model.config.encoder[key] for key in ("width", "depth", "downscale")}


def colorizers(root: Path, models: Path | None, tiny: bool):
    """The two colorizers: those of --models (full size only), the others trained here with the
    same network as a given one."""
    folders = {} if models is None or tiny else {o: models / f"colorize-{o}" for o in OUTPUTS}
    found = {o: given(folder) for o, folder in folders.items() if folder.is_dir()}
    network = next((network_of(r) for r, _ in found.values()), TRAINING["tiny" if tiny else "full"]["network"])
    numbers = {f"given_{o}": int(o in found) for o in OUTPUTS}
    for output in OUTPUTS:
        if output not in found:
            found[output] = train(output, root, tiny, network)
        numbers.update({f"{key}_{output}": value for key, value in found[output][1].items()})
    networks = {o: network_of(found[o][0]) for o in OUTPUTS}
    if networks["gaussian"] != networks["categorical"]:
        raise ValueError(f"the two colorizers must share their network to compare output units: {networks}")
    numbers.update(networks["gaussian"], bins=found["categorical"][0].model.likelihood.bins)
    return {o: found[o][0] for o in OUTPUTS}, numbers


# %% [markdown]
# ## Colour the unseen photos, score them


# %%
def measure(root: Path, models: Path | None, tiny: bool):
    found, numbers = colorizers(root, models, tiny)
    side = 64 if tiny else 256
    files = image_files(root / "Kodak24")
    if tiny:
        files = [p for p in files if p.stem in SHOWN]
    scores: dict[str, list[float]] = {}
    shown = []
    for i, path in enumerate(files):
        photo = centre_crop(path, side)
        grey = photo @ LUMA
        outputs = {"grey": np.repeat(grey[..., None], 3, -1)}
        for output, restorer in found.items():
            outputs[output] = np.clip(restorer(restorer.degrade(photo, seed=i)), 0, 1)  # from its own grey
        row = {f"psnr_{m}": psnr(photo, image) for m, image in outputs.items()}
        row |= {f"auc_{m}": chroma_accuracy_auc(photo, image) for m, image in outputs.items()}
        row |= {"colourfulness_original": colourfulness(photo), "chroma_original": mean_chroma(photo)}
        row |= {f"colourfulness_{o}": colourfulness(outputs[o]) for o in OUTPUTS}
        row |= {f"chroma_{o}": mean_chroma(outputs[o]) for o in OUTPUTS}
        for key, value in row.items():
            scores.setdefault(key, []).append(value)
        if path.stem in SHOWN:
            shown.append((path.stem, photo, outputs, row))
    numbers.update(test_photos=len(files), crop=side)
    numbers.update({key: float(np.mean(values)) for key, values in scores.items()})
    return numbers, shown


# %% [markdown]
# ## The figure


# %%
def on_page(image: np.ndarray) -> np.ndarray:
    """An image as the figure shows it: at most 128 pixels a side (means of 2 x 2 blocks) and 64
    levels per channel, which keeps the page's PNG small."""
    step = max(1, image.shape[0] // 128)
    side = image.shape[0] // step * step
    image = image[:side, :side].reshape(side // step, step, side // step, step, 3).mean((1, 3))
    return np.round(np.clip(image, 0, 1) * 63) / 63


def draw(numbers, shown):
    with style():
        fig = new_figure(8, 1.65 * len(shown) + 0.6)
        photos, bars = fig.subfigures(1, 2, width_ratios=(4, 1.3))
        axes = photos.subplots(len(shown), 4, squeeze=False)
        columns = [("grey", "grey input"), ("gaussian", "Gaussian unit\n(squared error)"),
                   ("categorical", "categorical unit\n(chroma bins)"), ("original", "original")]  # fmt: skip
        for r, (name, photo, outputs, row) in enumerate(shown):
            for ax, (key, title) in zip(axes[r], columns, strict=True):
                image = photo if key == "original" else outputs[key]
                ax.imshow(on_page(image), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if key in OUTPUTS:
                    ax.set_xlabel(f"C = {row[f'colourfulness_{key}']:.0f}, {row[f'psnr_{key}']:.1f} dB", fontsize=8)
                elif key == "original":
                    ax.set_xlabel(f"C = {row['colourfulness_original']:.0f}", fontsize=8)
                else:
                    ax.set_xlabel(f"{row['psnr_grey']:.1f} dB", fontsize=8)
                if r == 0:
                    ax.set_title(title, fontsize=9)
            axes[r, 0].set_ylabel(name, fontsize=8)
        ax = bars.subplots()
        keys = ["original", *OUTPUTS]
        values = [numbers[f"colourfulness_{k}"] for k in keys]
        ax.bar(range(3), values, color=["0.45", "#b08d6a", "#3b7dd8"])
        ax.set_xticks(range(3), ["originals", "Gaussian", "categorical"], rotation=30)
        for x, value in enumerate(values):
            ax.text(x, value, f"{value:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("colourfulness C (Hasler-Suesstrunk)")
        ax.set_title(f"mean over {numbers['test_photos']} photos", fontsize=9)
        fig.suptitle("one network, two output units: squared error paints the mean colour (sepia)")
    return fig


# %%
def main(size: str = "full", out_dir=None, data_dir=None, models: str | Path | None = None) -> dict:
    run = Run(NAME, size, out_dir)
    models = Path(models) if models else None
    given_all = models is not None and not run.tiny and all((models / f"colorize-{o}").is_dir() for o in OUTPUTS)
    root = photo_dir(data_dir, train_here=not given_all)
    numbers, shown = measure(root, models, run.tiny)
    made = {1: "given by --models (a run folder of aekit train)", 0: "trained here on random crops of CBSD432"}
    data = "; ".join(f"{o} colorizer {made[numbers[f'given_{o}']]}" for o in OUTPUTS) + "; tested on Kodak24"
    return run.finish(draw(numbers, shown), numbers, LABELS, claims, answer, data)


# %%
if __name__ == "__main__":
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--models", default=None, help="folder holding colorize-gaussian/ and colorize-categorical/")
    chosen, _ = extra.parse_known_args()
    command_line(lambda **kw: main(**kw, models=chosen.models), __doc__.splitlines()[0])
