"""The annealed-mean temperature of the categorical colorizer, chosen on training photos.

Zhang et al. 2016 read a colour out of the per-pixel chroma distribution as its annealed mean:
the softmax of the logits divided by a temperature T, averaged over the bin centres. T -> 0 gives
the mode (vivid, but a wrong guess costs PSNR), T = 1 the mean (the Gaussian unit's greyish sepia).
The paper's T = 0.38 was picked by eye. Both readouts are swept: the raw distribution (which
class rebalancing tilts towards rare, saturated colours) and the calibrated one (the rebalancing
weights divided back out, ``ChromaBins(calibrate=True)``). Here T is picked by measurement on CBSD432 photos (the
colorizer's own training set: no test image of any benchmark is looked at), from the BT.601 luma:
for each T on a grid, the RGB PSNR of the 8-bit result, its PSNR gain over the grey image
replicated to RGB, and the Hasler-Suesstrunk colourfulness. The choice: the smallest T whose mean
PSNR gain over grey is >= ``--min-gain`` dB (the most colourful readout that is not worse than
grey), for each readout. The network runs once per image; every T reads the same logits.

    python bench/colorize_temperature.py --data-dir /work/shared/data --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import write_record

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding CBSD432/")
    parser.add_argument("--model", default="colorize", help="shipped name or run folder (default: colorize)")
    parser.add_argument("--images", type=int, default=36, help="photos, every n-th of CBSD432 (default: 36)")
    parser.add_argument(
        "--grid", default="0.2,0.3,0.38,0.45,0.55,0.65,0.75,0.85,1.0", help="temperatures (default: %(default)s)"
    )
    parser.add_argument("--min-gain", type=float, default=0.0, help="PSNR over grey to keep, dB (default: 0)")
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

    readouts = [(calibrate, t) for calibrate in (False, True) for t in grid]
    rows = {key: [] for key in readouts}
    grey_rows = []
    for path in files:
        rgb = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
        grey = rgb @ LUMA
        grey_rows.append({"psnr": psnr(rgb, np.repeat(grey[..., None], 3, -1)), "colourfulness": 0.0})
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
    table: dict = {"raw": {}, "calibrated": {}}
    for calibrate, t in readouts:
        found = rows[calibrate, t]
        table["calibrated" if calibrate else "raw"][str(t)] = cell = {
            "psnr": round(float(np.mean([r["psnr"] for r in found])), 3),
            "gain_over_grey": round(float(np.mean([r["psnr"] for r in found])) - grey_psnr, 3),
            "colourfulness": round(float(np.mean([r["colourfulness"] for r in found])), 2),
            "images_not_worse_than_grey": int(
                sum(r["psnr"] >= g["psnr"] for r, g in zip(found, grey_rows, strict=True))
            ),
        }
        print(f"  {'calibrated' if calibrate else 'raw'} T {t}: {cell}", flush=True)
    chosen = {}
    for readout, cells in table.items():
        keeping = [float(t) for t, cell in cells.items() if cell["gain_over_grey"] >= args.min_gain]
        chosen[readout] = min(keeping) if keeping else None
    print(f"grey {grey_psnr:.3f} dB; chosen temperature per readout {chosen}", flush=True)
    write_record(
        args,
        "colorize-temperature",
        time.perf_counter() - start,
        photos=[p.name for p in files],
        grey_psnr=round(grey_psnr, 3),
        table=table,
        chosen=chosen,
    )


if __name__ == "__main__":
    main()
