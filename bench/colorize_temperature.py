"""The annealed-mean temperature of the categorical colorizer, chosen on training photos.

Zhang et al. 2016 read a colour out of the per-pixel chroma distribution as its annealed mean:
the softmax of the logits divided by a temperature T, averaged over the bin centres. T -> 0 gives
the mode (vivid, but a wrong guess costs PSNR), T = 1 the mean (the Gaussian unit's greyish sepia).
The paper's T = 0.38 was picked by eye. Class rebalancing tilts the learned distribution towards
rare, saturated colours; ``ChromaBins(calibrate=a)`` divides the rebalancing weights ** a back out
(0: the tilted distribution, 1: the data's frequencies). Both are swept here, and picked by
measurement on CBSD432 photos (the colorizer's own training set: no test image of any benchmark
is looked at), from the BT.601 luma:
for each (a, T) on a grid, the RGB PSNR of the 8-bit result, its PSNR gain over the grey image
replicated to RGB, and the Hasler-Suesstrunk colourfulness. The choice (:func:`choose`): the most colourful readout
that is at least as good as grey in mean PSNR and on at least ``--min-share`` of the photos
(vivid, yet rarely worse than grey). The network
runs once per image; every readout re-reads the same logits.

    python bench/colorize_temperature.py --data-dir /work/shared/data --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import write_record

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601


def choose(table: dict, photos: int, min_share: float) -> str | None:
    """The most colourful readout not worse than grey in mean PSNR nor on more than 1 - min_share
    of the photos; None when no readout is."""
    keeping = [
        key
        for key, cell in table.items()
        if cell["gain_over_grey"] >= 0 and cell["images_not_worse_than_grey"] >= min_share * photos
    ]
    return max(keeping, key=lambda key: table[key]["colourfulness"]) if keeping else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding CBSD432/")
    parser.add_argument("--model", default="colorize", help="shipped name or run folder (default: colorize)")
    parser.add_argument("--images", type=int, default=36, help="photos, every n-th of CBSD432 (default: 36)")
    parser.add_argument("--grid", default="0.38,0.65,1.0", help="temperatures T (default: %(default)s)")
    parser.add_argument("--calibrate", default="0,0.25,0.5,0.75,1", help="calibrations a (default: %(default)s)")
    parser.add_argument(
        "--min-share", type=float, default=0.75, help="share of photos not worse than grey (default: 0.75)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "colorize-temperature.json")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from aekit.applications.restoration import ImageRestorer, pretrained_names
    from aekit.metrics import colourfulness, psnr

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    net = ImageRestorer.pretrained(args.model) if args.model in pretrained_names() else ImageRestorer.load(args.model)
    likelihood = net.model.likelihood
    grid = [float(t) for t in args.grid.split(",")]
    files = sorted((args.data_dir / "CBSD432").glob("*.*"))
    files = files[:: max(1, len(files) // args.images)][: args.images]

    # the network runs once per photo: its output (the readout's params) is kept per tile and every
    # readout re-reads it
    model = net.model
    captured: list[torch.Tensor] = []

    def keep(x: torch.Tensor) -> torch.Tensor:
        captured.append(model.decode(model.encode(x)).detach().clone())
        return likelihood.mean(captured[-1])

    readouts = [(float(a), t) for a in args.calibrate.split(",") for t in grid]
    rows = {key: [] for key in readouts}
    grey_rows = []
    for path in files:
        rgb = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
        grey = rgb @ LUMA
        grey_rows.append({"psnr": psnr(rgb, np.repeat(grey[..., None], 3, -1)), "original": colourfulness(rgb)})
        captured.clear()
        model.reconstruct = keep
        net.restore(grey)
        tiles = list(captured)
        for calibrate, t in readouts:
            likelihood.temperature, likelihood.calibrate = t, calibrate
            queue = iter(tiles)
            model.reconstruct = lambda _x, queue=queue: likelihood.mean(next(queue))
            out = np.round(np.clip(net.restore(grey), 0, 1) * 255) / 255
            rows[calibrate, t].append({"psnr": psnr(rgb, out), "colourfulness": colourfulness(out)})
        print(f"  {path.name}: grey {grey_rows[-1]['psnr']:.2f} dB", flush=True)

    grey_psnr = float(np.mean([r["psnr"] for r in grey_rows]))
    table: dict = {}
    for calibrate, t in readouts:
        found = rows[calibrate, t]
        table[f"calibrate {calibrate} T {t}"] = cell = {
            "psnr": round(float(np.mean([r["psnr"] for r in found])), 3),
            "gain_over_grey": round(float(np.mean([r["psnr"] for r in found])) - grey_psnr, 3),
            "colourfulness": round(float(np.mean([r["colourfulness"] for r in found])), 2),
            "images_not_worse_than_grey": int(
                sum(r["psnr"] >= g["psnr"] for r, g in zip(found, grey_rows, strict=True))
            ),
        }
        print(f"  calibrate {calibrate} T {t}: {cell}", flush=True)
    chosen = choose(table, len(files), args.min_share)
    print(f"grey {grey_psnr:.3f} dB; chosen readout: {chosen}", flush=True)
    write_record(
        args,
        "colorize-temperature",
        time.perf_counter() - start,
        photos=[p.name for p in files],
        grey_psnr=round(grey_psnr, 3),
        original_colourfulness=round(float(np.mean([r["original"] for r in grey_rows])), 2),
        table=table,
        chosen=chosen,
    )


if __name__ == "__main__":
    main()
