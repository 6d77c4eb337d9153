"""Image restoration against classical baselines, all measured in the same run.

* denoise: BSD68 and Set12, sigma 15/25/50 (noise added to [0, 1] images, not clipped: the DnCNN
  protocol), PSNR/SSIM of the clipped result; aekit's sigma-25 and blind models against BM3D
  (``bm3d`` package, one thread), non-local means and total variation (scikit-image, their
  parameter tuned per sigma on Train400 images, never on the test sets).
* super-resolve: Set5 and Set14, x2/x3/x4: the ground truth cropped to a multiple of the scale,
  shrunk with an antialiased bicubic and stored as 8-bit, enlarged by bicubic or by aekit; PSNR/SSIM
  on Y (BT.601, [16, 235]; a grey image is its own Y) of the 8-bit result with ``scale`` pixels
  shaved from each border.
* inpaint: BSD68 (grey) and Kodak24 (colour), 50 % random pixels and eight 32 x 32 boxes (seeded
  masks); PSNR over the whole image and over the missing pixels, against biharmonic inpainting.
  Both shipped inpainters run on both kinds of holes (``aekit restore`` gives scattered pixels
  to ``inpaint-pixels`` and regions to ``inpaint``).
* colorize: Kodak24 and CBSD68 from their BT.601 luma: PSNR/SSIM of the RGB result and the
  Hasler-Suesstrunk colourfulness, against the grey image replicated to RGB.
* speed: a 512 x 512 grey image denoised (1 and 2 threads, fp32 and bf16, NHWC and NCHW layout);
  the bf16 denoiser's PSNR against fp32 on BSD68 at sigma 25; peak memory of
  ``aekit restore`` on a 4000 x 3000 colour image (denoise) in a child process.

Per-image results are cached in ``--cache`` (BM3D takes seconds per image), so an interrupted run
continues where it stopped. Prints markdown tables and writes ``--out``.

    python bench/restoration.py --data-dir /work/shared/data --threads 1
    python bench/restoration.py --sections sr --threads 1       # one section
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import date
from pathlib import Path

import numpy as np
from common import machine

SIGMAS = (15, 25, 50)
SR_SCALES = (2, 3, 4)
SECTIONS = ("denoise", "sr", "inpaint", "colorize", "speed")
RESULTS = Path(__file__).parent / "results"


# ------------------------------------------------------------------------------------------------ #
# data and bookkeeping


def load_folder(folder: Path) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 (H, W) or (H, W, 3)) for every image of a folder, sorted by name."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".bmp", ".jpg", ".tif"))
    if not files:
        sys.exit(f"no images in {folder}: pass --data-dir or set AEKIT_DATA_DIR")
    return [(f.name, np.asarray(Image.open(f))) for f in files]


def seed_of(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


class Cache:
    """Per-image results by key, written through to a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, key: str, compute, *arguments):
        """The cached result of ``compute(*arguments)`` under ``key``, computed (and timed) once."""
        if key not in self.data:
            started = time.perf_counter()
            value = compute(*arguments)
            self.data[key] = {**value, "seconds": round(time.perf_counter() - started, 3)}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data))
            tmp.replace(self.path)
        return self.data[key]


def summarise(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if isinstance(rows[0][k], float | int)]
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys} | {"images": len(rows)}


def restorer(name: str, models: dict[str, str], precision: str = "fp32", channels_last: bool = True):
    from aekit.applications.restoration import ImageRestorer, pretrained_names

    options = {"precision": precision, "channels_last": channels_last}
    if name in models:
        net = ImageRestorer.load(models[name], **options)
    elif name in pretrained_names():
        net = ImageRestorer.pretrained(name, **options)
    else:
        print(f"  (no model {name}: skipped)", flush=True)
        return None
    # cached results belong to these exact weights
    net.fingerprint = f"{zlib.crc32(b''.join(t.numpy().tobytes() for t in net.model.state_dict().values())):08x}"
    return net


# ------------------------------------------------------------------------------------------------ #
# denoising


def tune(method, sigma: int, grid: list[float], train: list[np.ndarray]) -> float:
    """The grid value with the best mean PSNR on a few training images."""
    from aekit.metrics import psnr

    scores = []
    for value in grid:
        total = 0.0
        for i, clean in enumerate(train):
            noisy = clean + sigma / 255 * np.random.default_rng(seed_of("tune", sigma, i)).standard_normal(clean.shape)
            total += psnr(clean, np.clip(method(noisy, sigma, value), 0, 1))
        scores.append(total)
    return grid[int(np.argmax(scores))]


def nlm(noisy: np.ndarray, sigma: int, h_factor: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    s = sigma / 255
    return denoise_nl_means(noisy, h=h_factor * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True)


def tv(noisy: np.ndarray, sigma: int, weight_factor: float) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(noisy, weight=weight_factor * sigma / 255)


def bm3d_denoise(noisy: np.ndarray, sigma: int, _: float = 0.0) -> np.ndarray:
    import bm3d

    profile = bm3d.BM3DProfile()
    profile.num_threads = 1  # bm3d runs its own thread pool otherwise, ignoring OMP_NUM_THREADS
    return bm3d.bm3d(noisy, sigma_psd=sigma / 255, profile=profile)


def denoise_one(clean: np.ndarray, seed: int, sigma: int, function) -> dict:
    from aekit.metrics import psnr, ssim

    noisy = clean + sigma / 255 * np.random.default_rng(seed).standard_normal(clean.shape)
    out = noisy if function is None else np.clip(function(noisy), 0, 1)
    return {"psnr": psnr(clean, out), "ssim": ssim(clean, out)}


def run_denoise(args, cache: Cache, models: dict[str, str]) -> dict:

    train = [im.astype(np.float64) / 255 for _, im in load_folder(args.data_dir / "Train400")[::100][:4]]
    params = {}
    for sigma in args.sigmas:
        params[sigma] = {
            "nlm_h_factor": tune(nlm, sigma, [0.4, 0.5, 0.6, 0.7, 0.8, 1.0], train),
            "tv_weight_factor": tune(tv, sigma, [0.5, 0.75, 1.0, 1.5, 2.0], train),
        }
        print(f"  sigma {sigma}: tuned on Train400 {params[sigma]}", flush=True)
    nets = {name: restorer(name, models) for name in ("denoise-sigma25", "denoise-blind")}
    results: dict = {"tuned": params, "tables": {}}
    for dataset in ("BSD68", "Set12"):
        images = load_folder(args.data_dir / dataset)[: args.limit]
        for sigma in args.sigmas:
            methods = {
                "noisy input": None,
                "BM3D": lambda x, s=sigma: bm3d_denoise(x, s),
                "non-local means": lambda x, s=sigma: nlm(x, s, params[s]["nlm_h_factor"]),
                "total variation": lambda x, s=sigma: tv(x, s, params[s]["tv_weight_factor"]),
            }
            for name, net in nets.items():
                if net is not None and (name == "denoise-blind" or sigma == 25):
                    method = f"aekit {name} {net.fingerprint}"
                    methods[method] = lambda x, net=net: net.restore(x.astype(np.float32))
            if args.no_bm3d:
                methods.pop("BM3D")
            table = {}
            for method, function in methods.items():
                rows = []
                for image_name, image in images:
                    clean = image.astype(np.float64) / 255
                    key = f"denoise/{dataset}/{sigma}/{method}/{image_name}"
                    rows.append(
                        cache.get(key, denoise_one, clean, seed_of(dataset, image_name, sigma), sigma, function)
                    )
                table[method] = summarise(rows)
                print(f"  denoise {dataset} sigma {sigma} {method}: {table[method]}", flush=True)
            results["tables"][f"{dataset} sigma {sigma}"] = table
    return results


# ------------------------------------------------------------------------------------------------ #
# super-resolution


def sr_one(image: np.ndarray, scale: int, net) -> dict:
    """Bicubic (``net`` None) or aekit enlargement of one image, scored on Y."""
    import torch

    from aekit.colour import y_studio
    from aekit.degradations import bicubic_resize
    from aekit.metrics import psnr, ssim

    h, w = image.shape[0] // scale * scale, image.shape[1] // scale * scale
    gt = image[:h, :w].astype(np.float32) / 255  # (H, W) grey or (H, W, 3)

    def y_channel(image: np.ndarray) -> np.ndarray:
        """Y in grey levels, border shaved: BT.601 of colour, the grey itself otherwise."""
        y = 255 * image if image.ndim == 2 else y_studio(torch.from_numpy(image).permute(2, 0, 1))[0]
        return np.asarray(y)[scale:-scale, scale:-scale]

    x = torch.from_numpy(np.atleast_3d(gt)).permute(2, 0, 1)[None]
    small = bicubic_resize(x, (h // scale, w // scale)).clamp(0, 1)
    small = (small * 255).round() / 255  # stored as an 8-bit image
    if net is None:
        big = bicubic_resize(small, (h, w))[0].permute(1, 2, 0).numpy()
    else:
        big = np.atleast_3d(net.restore(small[0].permute(1, 2, 0).numpy()))
    big = np.round(np.clip(big, 0, 1) * 255) / 255  # an 8-bit result
    y_ref, y_out = y_channel(gt), y_channel(big[..., 0] if gt.ndim == 2 else big)
    return {"psnr": psnr(y_ref, y_out, 255), "ssim": ssim(y_ref, y_out, 255)}


def run_sr(args, cache: Cache, models: dict[str, str]) -> dict:

    results: dict = {}
    for scale in SR_SCALES:
        net = restorer(f"super-resolve-x{scale}", models)
        for dataset in ("Set5", "Set14"):
            table: dict = {}
            for method in ["bicubic"] + (
                [f"aekit super-resolve-x{scale} {net.fingerprint}"] if net is not None else []
            ):
                rows = []
                for image_name, image in load_folder(args.data_dir / dataset)[: args.limit]:
                    key = f"sr/{dataset}/x{scale}/{method}/{image_name}"
                    rows.append(cache.get(key, sr_one, image, scale, None if method == "bicubic" else net))
                table[method] = summarise(rows)
                print(f"  super-resolve {dataset} x{scale} {method}: {table[method]}", flush=True)
            results[f"{dataset} x{scale}"] = table
    return results


# ------------------------------------------------------------------------------------------------ #
# inpainting


def inpaint_one(image: np.ndarray, degradation, seed: int, method: str, net) -> dict:
    import torch
    from skimage.restoration import inpaint_biharmonic

    from aekit.metrics import psnr

    clean = image.astype(np.float32) / 255
    missing = degradation.mask((1, *clean.shape[:2]), torch.Generator().manual_seed(seed))[0, 0].numpy() == 0
    holed = clean * ~(missing[..., None] if clean.ndim == 3 else missing)
    if method == "holes (0)":
        out = holed
    elif method == "biharmonic":
        out = inpaint_biharmonic(holed, missing, channel_axis=-1 if clean.ndim == 3 else None)
    else:
        out = net.restore(holed, mask=missing)
    out = np.clip(out, 0, 1)
    return {"psnr": psnr(clean, out), "psnr_missing": psnr(clean[missing], out[missing])}


def run_inpaint(args, cache: Cache, models: dict[str, str]) -> dict:
    from aekit.degradations import Inpainting

    nets = {name: restorer(name, models) for name in ("inpaint", "inpaint-pixels")}
    nets = {f"aekit {name} {net.fingerprint}": net for name, net in nets.items() if net is not None}
    holes = {"50% pixels": Inpainting("pixels", rate=0.5), "8 boxes 32x32": Inpainting("boxes", boxes=8, box_size=32)}
    results: dict = {}
    for dataset in ("BSD68", "Kodak24"):
        for hole_name, degradation in holes.items():
            table: dict = {}
            for method in ["holes (0)", "biharmonic", *nets]:
                rows = []
                for image_name, image in load_folder(args.data_dir / dataset)[: args.limit]:
                    key = f"inpaint/{dataset}/{hole_name}/{method}/{image_name}"
                    seed = seed_of(dataset, image_name, hole_name)
                    rows.append(cache.get(key, inpaint_one, image, degradation, seed, method, nets.get(method)))
                table[method] = summarise(rows)
                print(f"  inpaint {dataset} {hole_name} {method}: {table[method]}", flush=True)
            results[f"{dataset} {hole_name}"] = table
    return results


# ------------------------------------------------------------------------------------------------ #
# colorization


def colorize_one(image: np.ndarray, method: str, net) -> dict:
    from aekit.metrics import colourfulness, psnr, ssim

    rgb = image[..., :3].astype(np.float32) / 255
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    if method == "original":
        out = rgb
    elif method == "grey replicated":
        out = np.repeat(grey[..., None], 3, -1)
    else:
        out = np.clip(net.restore(grey), 0, 1)
    out = np.round(out * 255) / 255  # an 8-bit result
    return {"psnr": psnr(rgb, out), "ssim": ssim(rgb, out), "colourfulness": colourfulness(out)}


def run_colorize(args, cache: Cache, models: dict[str, str]) -> dict:

    net = restorer("colorize", models)
    results: dict = {}
    for dataset in ("Kodak24", "CBSD68"):
        table: dict = {}
        for method in ["original", "grey replicated"] + (
            [f"aekit colorize {net.fingerprint}"] if net is not None else []
        ):
            rows = []
            for image_name, image in load_folder(args.data_dir / dataset)[: args.limit]:
                key = f"colorize/{dataset}/{method}/{image_name}"
                rows.append(cache.get(key, colorize_one, image, method, net))
            table[method] = summarise(rows)
            print(f"  colorize {dataset} {method}: {table[method]}", flush=True)
        results[dataset] = table
    return results


# ------------------------------------------------------------------------------------------------ #
# speed and memory


def run_speed(args, models: dict[str, str]) -> dict:
    import torch
    from PIL import Image

    results: dict = {"denoise 512x512 grey": []}
    image = np.asarray(Image.open(args.data_dir / "Set12" / "08.png")).astype(np.float32) / 255  # 512 x 512
    noisy = image + 25 / 255 * np.random.default_rng(0).standard_normal(image.shape).astype(np.float32)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for precision in ("fp32", "bf16"):
            for channels_last in (True, False):  # NHWC (the default) against the contiguous NCHW layout
                net = restorer("denoise-sigma25", models, precision, channels_last)
                if net is None:
                    return results
                net.restore(noisy)  # warm-up
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    net.restore(noisy)
                    times.append(time.perf_counter() - started)
                row = {"threads": threads, "precision": precision, "layout": "NHWC" if channels_last else "NCHW",
                       "seconds_median": round(float(np.median(times)), 3)}  # fmt: skip
                results["denoise 512x512 grey"].append(row)
                print(f"  speed: {row}", flush=True)
    torch.set_num_threads(args.threads)
    results["bf16 quality"] = bf16_quality(args, models)
    if not args.skip_memory:
        results["memory"] = memory_check(args, models)
    return results


def bf16_quality(args, models: dict[str, str]) -> dict:
    """What bfloat16 costs in quality: the sigma-25 denoiser in fp32 and in bf16 on the BSD68
    images with the denoise section's noise (mean PSNR/SSIM and the per-image PSNR difference)."""
    nets = {precision: restorer("denoise-sigma25", models, precision) for precision in ("fp32", "bf16")}
    if None in nets.values():
        return {}
    scores: dict = {precision: [] for precision in nets}
    for image_name, image in load_folder(args.data_dir / "BSD68")[: args.limit]:
        clean = image.astype(np.float64) / 255
        for precision, net in nets.items():
            seed = seed_of("BSD68", image_name, 25)
            scores[precision].append(denoise_one(clean, seed, 25, lambda x, net=net: net.restore(x.astype(np.float32))))
    gaps = [b["psnr"] - a["psnr"] for a, b in zip(scores["fp32"], scores["bf16"], strict=True)]
    row = {precision: summarise(rows) for precision, rows in scores.items()}
    row["bf16 - fp32 psnr"] = {"mean": round(float(np.mean(gaps)), 4), "min": round(float(np.min(gaps)), 4),
                               "max": round(float(np.max(gaps)), 4)}  # fmt: skip
    print(f"  bf16 quality: {row}", flush=True)
    return row


def memory_check(args, models: dict[str, str]) -> dict:
    """Peak resident memory of ``aekit restore`` on a 4000 x 3000 colour photograph (Kodak's kodim23
    enlarged), measured in a child process."""
    import resource

    from PIL import Image

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "big.png"
        Image.open(args.data_dir / "Kodak24" / "kodim23.png").convert("RGB").resize((4000, 3000), Image.BICUBIC).save(
            source
        )
        command = [sys.executable, "-m", "aekit.cli", "--threads", str(args.threads), "restore", "--task", "denoise"]
        if "denoise-sigma25" in models:
            command += ["--weights", models["denoise-sigma25"]]
        command += ["--simulate", str(source), str(Path(folder) / "out.png")]
        started = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        seconds = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    row = {"image": "4000x3000 RGB", "task": "denoise (simulated sigma 25)", "peak_mib": round(peak_kib / 1024),
           "seconds": round(seconds, 1)}  # fmt: skip
    print(f"  memory: {row}", flush=True)
    return row


# ------------------------------------------------------------------------------------------------ #


def print_tables(results: dict) -> None:
    for section, tables in results.items():
        if section in ("speed",) or not isinstance(tables, dict):
            continue
        tables = tables.get("tables", tables)
        print(f"\n### {section}\n")
        for title, table in tables.items():
            if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
                continue
            metrics = [k for k in next(iter(table.values())) if k not in ("images", "seconds")]
            print(f"| {title} | {' | '.join(metrics)} | s/image |")
            print("|---" * (len(metrics) + 2) + "|")
            for method, row in table.items():
                print(f"| {method} | {' | '.join(f'{row[m]:.4g}' for m in metrics)} | {row.get('seconds', 0):.2f} |")
            print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("AEKIT_DATA_DIR"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR", help="use DIR for a shipped name")
    parser.add_argument("--limit", type=int, help="only the first N images of each set (a quick look)")
    parser.add_argument(
        "--sigmas", type=int, nargs="+", default=list(SIGMAS), help="denoising noise levels (default 15 25 50)"
    )
    parser.add_argument("--no-bm3d", action="store_true", help="skip BM3D (slow; non-commercial licence)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 4000 x 3000 memory check")
    parser.add_argument("--cache", type=Path, default=RESULTS / "restoration-cache.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "restoration.json")
    args = parser.parse_args()
    if args.data_dir is None:
        sys.exit("pass --data-dir or set AEKIT_DATA_DIR")
    args.data_dir = Path(args.data_dir)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import torch

    torch.set_num_threads(args.threads)
    models = dict(item.split("=", 1) for item in args.model)
    cache = Cache(args.cache)
    record = json.loads(args.out.read_text()) if args.out.is_file() else {}
    record.update(
        {
            "benchmark": "restoration",
            "date": date.today().isoformat(),
            "machine": machine(),
            "threads": args.threads,
            "torch": torch.__version__,
            "models": models or "shipped",
            "limit": args.limit,
        }
    )
    runners = {
        "denoise": lambda: run_denoise(args, cache, models),
        "sr": lambda: run_sr(args, cache, models),
        "inpaint": lambda: run_inpaint(args, cache, models),
        "colorize": lambda: run_colorize(args, cache, models),
        "speed": lambda: run_speed(args, models),
    }
    keys = []
    for section in args.sections:
        print(f"{section}:", flush=True)
        # sections may be run separately with different --limit: each records its own, and a
        # denoising run at other noise levels than the default ones records beside the full one
        key = section
        if section == "denoise" and list(args.sigmas) != list(SIGMAS):
            key = f"denoise sigma {'/'.join(map(str, args.sigmas))}"
        record[key] = {"limit": args.limit, "threads": args.threads, **runners[section]()}
        keys.append(key)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    print_tables({k: record[k] for k in keys if k != "speed"})
    if "speed" in args.sections:
        print(json.dumps(record["speed"], indent=2))


if __name__ == "__main__":
    main()
