"""Assemble the colour images the shipped colorizer is trained on into one folder.

No colour training set is available offline, and Kodak24 and CBSD68 are the colorization test
sets, so they are never used. What is used: the colour images of Set5 and Set14 (super-resolution
test sets, which the colorizer is not evaluated on; the super-resolution models train on
Train400 only), the natural photographs that scikit-image ships (astronaut, chelsea, coffee,
motorcycle left/right, rocket) and matplotlib's grace_hopper.jpg: 24 images (Set14's man.bmp is
stored as RGB but holds no colour, so it is skipped).

    python bench/colour_training_set.py --data-dir /work/shared/data --out runs/colour-train
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SKIMAGE_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
                  "rocket.jpg"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("AEKIT_DATA_DIR"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import matplotlib
    import skimage

    sources = [p for folder in ("Set5", "Set14") for p in sorted((Path(args.data_dir) / folder).iterdir())]
    sources += [Path(skimage.__file__).parent / "data" / name for name in SKIMAGE_PHOTOS]
    sources += [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]
    args.out.mkdir(parents=True, exist_ok=True)
    kept = 0
    for source in sources:
        if source.suffix.lower() not in (".png", ".bmp", ".jpg"):
            continue
        with Image.open(source) as image:
            pixels = np.asarray(image)
        if pixels.ndim != 3 or pixels.shape[-1] < 3 or np.ptp(pixels[..., :3].astype(int), axis=-1).max() == 0:
            continue  # grey images hold no colour to learn
        shutil.copy(source, args.out / f"{source.parent.name}-{source.name}")
        kept += 1
    print(f"{kept} colour images in {args.out}")


if __name__ == "__main__":
    main()
