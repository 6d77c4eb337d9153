"""# 12. How would you force an autoencoder to colorize? To inpaint?

**Answer.** Choose the corruption. A denoising autoencoder learns to undo whatever process C(x̃|x)
produced its input, because it is scored against the clean x. Make C turn a colour photo grey, and
the autoencoder must put the colours back: it learns to colorize. Make C erase pixels (and give the
network the mask), and it learns to inpaint. Nothing else changes: the same loss, the same kind of
network, a different corruption.

**How it is measured.** The restoration families of aekit are exactly this: a convolutional
encoder-decoder with skip connections (RED-Net) trained as a denoising autoencoder whose corruption
is the task. We use the models shipped with aekit when they are installed
(`ImageRestorer.pretrained("colorize")`, `("inpaint")`); otherwise (and always at the test suite's
tiny size) the example trains small ones itself, the `colorize` family on random crops of the
CBSD68 colour photos and the `inpaint` family on crops of the Train400 grey photos (which it says
in the numbers below). Both are evaluated on real photos they never saw: centre crops of Kodak24
(colorization) and of BSD68 with seeded holes (inpainting): the inpainting model's own random masks
(about half the pixels) and 8 square boxes. Scores are PSNR in dB against the original (higher is
better), next to the input itself (the grey photo; the photo with its holes set to 0) and, for
inpainting, a classical method: biharmonic inpainting from scikit-image. Photos are read from
`$AEKIT_DATA_DIR` (or `--data-dir`), folders `CBSD68/`, `Kodak24/`, `Train400/`, `BSD68/`.
"""

# %%
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from _gallery import Run, build, command_line, fit, new_figure, style

from aekit.applications.restoration import ImageRestorer, pretrained_names
from aekit.data.patches import IMAGE_SUFFIXES, extract_patches, read_images

NAME = "12_corruption_as_task"
FOLDERS = ("CBSD68", "Kodak24", "Train400", "BSD68")

LABELS = {
    "shipped_colorize": "colorization: the model shipped with aekit (1) or one trained here (0)",
    "shipped_inpaint": "inpainting: the model shipped with aekit (1) or one trained here (0)",
    "test_photos": "test photos per task",
    "crop": "side of the centre crops (pixels)",
    "colorize_grey_psnr": "colorization: the grey input, PSNR (dB)",
    "colorize_psnr": "colorization: the autoencoder, PSNR (dB)",
    "inpaint_missing": "inpainting, random pixels: share of pixels missing",
    "inpaint_holes_psnr": "inpainting, random pixels: the input with holes at 0, PSNR (dB)",
    "inpaint_biharmonic_psnr": "inpainting, random pixels: biharmonic (scikit-image), PSNR (dB)",
    "inpaint_psnr": "inpainting, random pixels: the autoencoder, PSNR (dB)",
    "boxes_missing": "inpainting, 8 square boxes: share of pixels missing",
    "boxes_holes_psnr": "inpainting, boxes: the input with holes at 0, PSNR (dB)",
    "boxes_biharmonic_psnr": "inpainting, boxes: biharmonic (scikit-image), PSNR (dB)",
    "boxes_psnr": "inpainting, boxes: the autoencoder, PSNR (dB)",
}


def claims(n: dict[str, float]) -> dict[str, bool]:
    return {
        "the colorizing autoencoder brings the grey photos closer to the originals": n["colorize_psnr"]
        > n["colorize_grey_psnr"],
        "the inpainting autoencoder fills the holes (over 3 dB above the input, both kinds of holes)": min(
            n["inpaint_psnr"] - n["inpaint_holes_psnr"], n["boxes_psnr"] - n["boxes_holes_psnr"]
        )
        > 3,
    }


def answer(n: dict[str, float]) -> str:
    sources = [
        f"the {task} model {'shipped with aekit' if n[f'shipped_{task}'] else 'trained by this example'}"
        for task in ("colorize", "inpaint")
    ]
    return (
        f"With {' and '.join(sources)}, on {n['test_photos']} unseen photos per task "
        f"({n['crop']} x {n['crop']} crops): "
        f"colorization raises the PSNR from {n['colorize_grey_psnr']:.2f} dB (the grey photo) to "
        f"{n['colorize_psnr']:.2f} dB; inpainting, with {100 * n['inpaint_missing']:.0f} % of the pixels "
        f"missing at random, from {n['inpaint_holes_psnr']:.2f} dB (holes at 0) to {n['inpaint_psnr']:.2f} dB, "
        f"where biharmonic inpainting, which interpolates smoothly between close known pixels, reaches "
        f"{n['inpaint_biharmonic_psnr']:.2f} dB; with 8 square boxes missing ({100 * n['boxes_missing']:.0f} % "
        f"of the pixels), from {n['boxes_holes_psnr']:.2f} dB to {n['boxes_psnr']:.2f} dB, biharmonic "
        f"{n['boxes_biharmonic_psnr']:.2f} dB. The only thing that made "
        f"one network a colorizer and the other an inpainter is the corruption it was trained to undo."
    )


# %% [markdown]
# ## The photos


# %%
def photo_dir(data_dir=None) -> Path:
    root = data_dir or os.environ.get("AEKIT_DATA_DIR")
    missing = [f for f in FOLDERS if root is None or not (Path(root) / f).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"photos not found: {', '.join(missing)} under {root}; pass --data-dir (or set AEKIT_DATA_DIR) "
            f"to a folder holding {', '.join(FOLDERS)}"
        )
    return Path(root)


def first_images(folder: Path, mode: str, count: int | None) -> list[np.ndarray]:
    """The first ``count`` images of a folder (sorted by name) as (C, H, W) in [0, 1]."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    return [image for path in files for image in read_images(path, mode)]


def centre_crops(folder: Path, mode: str, count: int, side: int) -> list[np.ndarray]:
    """``count`` centre crops (side, side[, 3]) of the first images of a folder, in [0, 1]."""
    crops = []
    for image in first_images(folder, mode, count):  # (C, H, W)
        _, h, w = image.shape
        top, left = (h - side) // 2, (w - side) // 2
        crop = np.moveaxis(image[:, top : top + side, left : left + side], 0, -1)
        crops.append(crop[..., 0] if crop.shape[-1] == 1 else crop)
    return crops


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


# %% [markdown]
# ## The two restorers: shipped, or trained here with the corruption as the task


# %%
def restorer(task: str, root: Path, tiny: bool) -> tuple[ImageRestorer, bool]:
    if not tiny and task in pretrained_names():
        return ImageRestorer.pretrained(task), True
    side, count, epochs = (16, 1024, 4) if tiny else (40, 16000, 5)
    mode, folder = ("rgb", "CBSD68") if task == "colorize" else ("grey", "Train400")
    images = first_images(root / folder, mode, 8 if tiny else None)
    patches = extract_patches(images, side, count, seed=0)  # (count, C, side, side)
    size = {"depth": 2, "width": 16} if tiny else {"depth": 5, "width": 32}
    model = build(task, patches.shape[1:], 1, **size)
    fit(model, patches, epochs, batch_size=32 if tiny else 16, lr=5e-3 if tiny else 2e-3)
    return ImageRestorer(model), False


def boxes(side: int, count: int, box: int, seed: int) -> np.ndarray:
    """A boolean (side, side) mask, True inside ``count`` seeded square boxes of ``box`` pixels."""
    rng = np.random.default_rng(seed)
    missing = np.zeros((side, side), bool)
    for top, left in rng.integers(0, side - box, size=(count, 2)):
        missing[top : top + box, left : left + box] = True
    return missing


# %% [markdown]
# ## Degrade, restore, score


# %%
def measure(root: Path, tiny: bool):
    count, side = (2, 48) if tiny else (6, 256)
    numbers, shown = {"test_photos": count, "crop": side}, {}
    colorizer, shipped_colour = restorer("colorize", root, tiny)
    grey_scores, colour_scores = [], []
    for i, photo in enumerate(centre_crops(root / "Kodak24", "rgb", count, side)):
        grey = colorizer.degrade(photo, seed=i)  # (H, W)
        coloured = colorizer(grey)  # (H, W, 3)
        grey_scores.append(psnr(np.repeat(grey[..., None], 3, -1), photo))
        colour_scores.append(psnr(coloured, photo))
        if i == 0:
            shown["colorize"] = (photo, grey, coloured)
    inpainter, shipped_holes = restorer("inpaint", root, tiny)
    from skimage.restoration import inpaint_biharmonic

    masks = {
        "inpaint": lambda i: inpainter.random_mask(side, side, seed=i),  # True where a pixel is missing
        "boxes": lambda i: boxes(side, 8, side // 8, seed=i),
    }
    for kind, make_mask in masks.items():
        scores = {"holes": [], "biharmonic": [], "model": [], "missing": []}
        for i, photo in enumerate(centre_crops(root / "BSD68", "grey", count, side)):
            missing = make_mask(i)
            holes = inpainter.degrade(photo, seed=i, mask=missing)
            filled = inpainter(holes, mask=missing)
            classical = inpaint_biharmonic(holes, missing)
            scores["holes"].append(psnr(holes, photo))
            scores["biharmonic"].append(psnr(classical, photo))
            scores["model"].append(psnr(filled, photo))
            scores["missing"].append(float(missing.mean()))
            if i == 0:
                shown[kind] = (photo, holes, classical, filled)
        names = {"holes": "holes_psnr", "biharmonic": "biharmonic_psnr", "model": "psnr", "missing": "missing"}
        numbers.update({f"{kind}_{names[key]}": float(np.mean(values)) for key, values in scores.items()})
    numbers.update(
        shipped_colorize=int(shipped_colour),
        shipped_inpaint=int(shipped_holes),
        colorize_grey_psnr=float(np.mean(grey_scores)),
        colorize_psnr=float(np.mean(colour_scores)),
    )
    return numbers, shown


# %% [markdown]
# ## The figure


# %%
def draw(numbers, shown):
    with style():
        fig = new_figure(8, 6)
        axes = fig.subplots(3, 4)
        photo, grey, coloured = shown["colorize"]
        rows = [[(photo, "original"), (grey, "input: grey"), (coloured, "autoencoder"), (None, "")]]
        for kind in ("inpaint", "boxes"):
            photo, holes, classical, filled = shown[kind]
            rows.append(
                [(photo, "original"), (holes, "input: holes"), (classical, "biharmonic"), (filled, "autoencoder")]
            )
        for axes_row, panels in zip(axes, rows, strict=True):
            for ax, (image, title) in zip(axes_row, panels, strict=True):
                ax.set_xticks([])
                ax.set_yticks([])
                if image is None:
                    ax.axis("off")
                    continue
                middle = slice(image.shape[0] // 4, 3 * image.shape[0] // 4)  # the centre, at full resolution
                ax.imshow(np.clip(image[middle, middle], 0, 1), cmap="gray", vmin=0, vmax=1)
                ax.set_title(title, fontsize=8)
        axes[0, 0].set_ylabel("colorize", rotation=0, ha="right", va="center")
        axes[1, 0].set_ylabel("inpaint:\nrandom pixels", rotation=0, ha="right", va="center")
        axes[2, 0].set_ylabel("inpaint:\nboxes", rotation=0, ha="right", va="center")
        fig.suptitle("one kind of network, two corruptions: the centres of unseen photos")
    return fig


# %%
def main(size: str = "full", out_dir=None, data_dir=None) -> dict:
    run = Run(NAME, size, out_dir)
    root = photo_dir(data_dir)
    numbers, shown = measure(root, run.tiny)
    made = {True: "shipped", False: "trained on crops of CBSD68 (colorize) / Train400 (inpaint)"}
    data = (
        f"colorize model {made[bool(numbers['shipped_colorize'])]}, inpaint model "
        f"{made[bool(numbers['shipped_inpaint'])]}; tested on Kodak24 and BSD68"
    )
    return run.finish(draw(numbers, shown), numbers, LABELS, claims, answer, data)


# %%
if __name__ == "__main__":
    command_line(main, __doc__.splitlines()[0])
