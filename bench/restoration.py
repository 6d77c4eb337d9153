"""Image restoration against classical baselines, all measured in the same run.

* denoise: BSD68, Set12 and the BT.601 luma of Kodak24 (rounded to 8 bits), sigma 15/25/50 (noise
  added to [0, 1] images, not clipped: the DnCNN protocol), PSNR/SSIM of the clipped result;
  aekit's ``denoise`` (the noise level an input) given the true sigma and estimating it (the mean
  level it used is ``sigma_used``), and the older sigma-25 (at 25) and blind (sigma <= 50) models
  when given, against BM3D (``bm3d`` package, one thread), non-local means and total variation
  (scikit-image, their parameter tuned per sigma on Train400 images, never on the test sets).
* colour-denoise: CBSD68 and Kodak24 in RGB, the same noise on every channel and the same sigmas;
  ``denoise-colour`` and the grey ``denoise`` run on each channel (both given sigma) against CBM3D
  (``bm3d.bm3d_rgb``, one thread); PSNR/SSIM on RGB. ``--colour-limit`` shortens it (CBM3D is slow).
* deblock: classic5 and the studio-range Y of LIVE1 (MATLAB's rgb2ycbcr, 8 bits, the published
  protocol) through a real JPEG encode and decode (Pillow, ``aekit.degradations.jpeg_roundtrip``, as
  the models are trained) at quality 10/20/30/40;
  PSNR/SSIM of the 8-bit result, ``deblock`` against the decoded JPEG itself, beside the published
  ARCNN and DnCNN-3 figures (not run here); ``deblock-colour`` on LIVE1 in RGB (4:2:0 JPEG) when given.
* super-resolve: Set5 and Set14, x2/x3/x4: the ground truth cropped to a multiple of the scale,
  shrunk with an antialiased bicubic and stored as 8-bit, enlarged by bicubic or by aekit; PSNR/SSIM
  on Y (BT.601, [16, 235]; a grey image is its own Y) of the 8-bit result with ``scale`` pixels
  shaved from each border.
* inpaint: BSD68 (grey) and Kodak24 (colour), 50 % random pixels and eight 32 x 32 boxes (seeded
  masks); PSNR over the whole image and over the missing pixels, against biharmonic inpainting.
  Both shipped inpainters run on both kinds of holes (``aekit restore`` gives scattered pixels
  to ``inpaint-pixels`` and regions to ``inpaint``).
* colorize: Kodak24 and CBSD68 from their BT.601 luma: PSNR/SSIM of the RGB result, the
  Hasler-Suesstrunk colourfulness and the raw accuracy of Zhang et al. 2016 (``auc``: the share of
  pixels whose Lab chroma is within t of the truth, averaged over t = 0..150), for ``colorize``
  (categorical chroma) and a Gaussian-output ``colorize-gaussian`` when given, against the grey
  image replicated to RGB.
* speed: a 512 x 512 grey image denoised by ``denoise`` told sigma 25 (1 and 2 threads, fp32 and bf16,
  NHWC and NCHW layout); every available model on a 512 x 512 output (1 thread, fp32, default
  layout; median of 3 after a warm-up); the bf16 denoiser's PSNR against fp32 on BSD68 at sigma 25;
  peak memory of ``aekit restore`` on a 4000 x 3000 colour image (denoise) in a child process, and
  with ``--big-sr`` on a 6000 x 4000 colour image super-resolved x4 (a 24000 x 16000 result).

Models are the shipped weights of each name; ``--model NAME=DIR`` stands a trained run folder in
for a name (``denoise``, ``denoise-colour``, ``deblock``, ``deblock-colour``, ``colorize-gaussian``
or an older one); a name with neither is skipped. Per-image results are cached in ``--cache`` (BM3D
takes seconds per image) under the weights' fingerprint, so an interrupted run continues where it
stopped. Prints markdown tables and writes ``--out``.

    python bench/restoration.py --data-dir /work/shared/data --threads 1
    python bench/restoration.py --sections sr --threads 1       # one section
    python bench/restoration.py --sections deblock --model deblock=runs/deblock
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
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
QUALITIES = (10, 20, 30, 40)
SECTIONS = ("denoise", "colour-denoise", "deblock", "sr", "inpaint", "colorize", "speed")
RESULTS = Path(__file__).parent / "results"
LUMA = np.array([0.299, 0.587, 0.114])  # BT.601

# JPEG deblocking, PSNR (dB) / SSIM of the 8-bit luma, published and not run here: Zhang, Zuo, Chen,
# Meng and Zhang 2017, "Beyond a Gaussian denoiser: residual learning of deep CNN for image
# denoising", IEEE TIP 26(7), the DnCNN-3 table (Gaussian denoising, super-resolution and JPEG
# deblocking), as the authors' repository reproduces it (github.com/cszn/DnCNN, README.md, "JPEG
# Image Deblocking"). Their protocol (Demo_test_DnCNN3.m): MATLAB's JPEG writer; classic5 is grey,
# LIVE1's luma is MATLAB's rgb2ycbcr Y (studio range, 16-235), as in the DnCNN-3 test script.
PUBLISHED_DEBLOCK_SOURCE = (
    "Zhang et al. 2017, IEEE TIP 26(7), 'Beyond a Gaussian denoiser', DnCNN-3 table; github.com/cszn/DnCNN README"
)
PUBLISHED_DEBLOCK = {
    "classic5": {
        10: {"ARCNN": (29.03, 0.7929), "DnCNN-3": (29.40, 0.8026)},
        20: {"ARCNN": (31.15, 0.8517), "DnCNN-3": (31.63, 0.8610)},
        30: {"ARCNN": (32.51, 0.8806), "DnCNN-3": (32.91, 0.8861)},
        40: {"ARCNN": (33.34, 0.8953), "DnCNN-3": (33.77, 0.9003)},
    },
    "LIVE1": {
        10: {"ARCNN": (28.96, 0.8076), "DnCNN-3": (29.19, 0.8123)},
        20: {"ARCNN": (31.29, 0.8733), "DnCNN-3": (31.59, 0.8802)},
        30: {"ARCNN": (32.67, 0.9043), "DnCNN-3": (32.98, 0.9090)},
        40: {"ARCNN": (33.63, 0.9198), "DnCNN-3": (33.96, 0.9247)},
    },
}
PUBLISHED = "published, not run here"


# ------------------------------------------------------------------------------------------------ #
# data and bookkeeping


def load_folder(folder: Path) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 (H, W) or (H, W, 3)) for every image of a folder, sorted by name."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".bmp", ".jpg", ".tif"))
    if not files:
        sys.exit(f"no images in {folder}: pass --data-dir or set AEKIT_DATA_DIR")
    return [(f.name, np.asarray(Image.open(f))) for f in files]


def grey_of(image: np.ndarray) -> np.ndarray:
    """A grey uint8 (H, W) image as it is; an RGB one's BT.601 luma rounded to 8 bits."""
    if image.ndim == 2:
        return image
    return np.round(image[..., :3].astype(np.float64) @ LUMA).clip(0, 255).astype(np.uint8)


def studio_y_of(image: np.ndarray) -> np.ndarray:
    """The JPEG benchmarks' luma: MATLAB's rgb2ycbcr Y (16-235) rounded to 8 bits; grey as it is."""
    if image.ndim == 2:
        return image
    rgb = image[..., :3].astype(np.float64) / 255
    return np.round(16 + rgb @ np.array([65.481, 128.553, 24.966])).clip(0, 255).astype(np.uint8)


def seed_of(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


class Cache:
    """Per-image results by key, written through to a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, key: str, compute, *arguments, needs: tuple[str, ...] = ()):
        """The cached result of ``compute(*arguments)`` under ``key``, computed (and timed) once;
        computed again when a cached result lacks one of the fields ``needs`` (a newer measure)."""
        if key not in self.data or any(field not in self.data[key] for field in needs):
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
    # cached results belong to these exact weights and readout (the likelihood's settings)
    weights = b"".join(t.numpy().tobytes() for t in net.model.state_dict().values())
    readout = json.dumps(net.model.likelihood.spec(), sort_keys=True).encode()
    net.fingerprint = f"{zlib.crc32(weights + readout):08x}"
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


def cbm3d_denoise(noisy: np.ndarray, sigma: int) -> np.ndarray:
    import bm3d

    profile = bm3d.BM3DProfile()
    profile.num_threads = 1
    return bm3d.bm3d_rgb(noisy, sigma_psd=sigma / 255, profile=profile)


def denoise_one(clean: np.ndarray, seed: int, sigma: int, function) -> dict:
    """Noise of ``sigma`` (grey levels of 255, not clipped) added to ``clean`` (H, W) or (H, W, 3)
    in [0, 1], removed by ``function`` (None: the noisy image itself), which returns the image or
    (the image, further fields of the row)."""
    from aekit.metrics import psnr, ssim

    noisy = clean + sigma / 255 * np.random.default_rng(seed).standard_normal(clean.shape)
    extra: dict = {}
    out = noisy
    if function is not None:
        out = function(noisy)
        if isinstance(out, tuple):
            out, extra = out
        out = np.clip(out, 0, 1)
    return {"psnr": psnr(clean, out), "ssim": ssim(clean, out), **extra}


def level_denoisers(net, name: str, sigma: int) -> dict:
    """The methods of a denoiser that takes the noise level as an input: told ``sigma``, and
    estimating it (recording the level used); a denoiser without that input runs once."""
    if net is None:
        return {}
    label = f"aekit {name} {net.fingerprint}"
    if not net.level_map:
        return {label: lambda x: net.restore(x.astype(np.float32))}

    def estimated(x: np.ndarray):
        out = net.restore(x.astype(np.float32))
        return out, {"sigma_used": round(float(net.last_sigma), 3)}

    return {
        f"{label} given sigma": lambda x: net.restore(x.astype(np.float32), sigma=sigma),
        f"{label} estimated sigma": estimated,
    }


def given_sigma(net, name: str, sigma: int, suffix: str = "") -> dict:
    """The method of a denoiser told the noise level (as it is when it takes no level)."""
    if net is None:
        return {}
    if not net.level_map:
        return {f"aekit {name} {net.fingerprint}{suffix}": lambda x: net.restore(x.astype(np.float32))}
    return {
        f"aekit {name} {net.fingerprint}{suffix} given sigma": lambda x: net.restore(x.astype(np.float32), sigma=sigma)
    }


def run_denoise(args, cache: Cache, models: dict[str, str]) -> dict:

    train = [im.astype(np.float64) / 255 for _, im in load_folder(args.data_dir / "Train400")[::100][:4]]
    params = {}
    for sigma in args.sigmas:
        params[sigma] = {
            "nlm_h_factor": tune(nlm, sigma, [0.4, 0.5, 0.6, 0.7, 0.8, 1.0], train),
            "tv_weight_factor": tune(tv, sigma, [0.5, 0.75, 1.0, 1.5, 2.0], train),
        }
        print(f"  sigma {sigma}: tuned on Train400 {params[sigma]}", flush=True)
    nets = {name: restorer(name, models) for name in ("denoise-sigma25", "denoise-blind", "denoise")}
    results: dict = {"tuned": params, "tables": {}}
    for dataset in ("BSD68", "Set12", "Kodak24"):
        images = [(name, grey_of(image)) for name, image in load_folder(args.data_dir / dataset)[: args.limit]]
        for sigma in args.sigmas:
            methods = {
                "noisy input": None,
                "BM3D": lambda x, s=sigma: bm3d_denoise(x, s),
                "non-local means": lambda x, s=sigma: nlm(x, s, params[s]["nlm_h_factor"]),
                "total variation": lambda x, s=sigma: tv(x, s, params[s]["tv_weight_factor"]),
            }
            for name in ("denoise-sigma25", "denoise-blind"):  # the models trained at 25 and on 0-50
                net = nets[name]
                if net is not None and (sigma == 25 if name == "denoise-sigma25" else sigma <= 50):
                    method = f"aekit {name} {net.fingerprint}"
                    methods[method] = lambda x, net=net: net.restore(x.astype(np.float32))
            methods.update(level_denoisers(nets["denoise"], "denoise", sigma))
            if args.no_bm3d:
                methods.pop("BM3D")
            table = denoise_table(cache, "denoise", dataset, images, sigma, methods)
            results["tables"][f"{dataset} sigma {sigma}"] = table
    return results


def denoise_table(cache: Cache, section: str, dataset: str, images: list, sigma: int, methods: dict) -> dict:
    """Mean scores of each method (name -> function of the noisy image, or None) over the images,
    with the same seeded noise for every method; per-image results cached."""
    table = {}
    for method, function in methods.items():
        rows = []
        for image_name, image in images:
            clean = image.astype(np.float64) / 255
            key = f"{section}/{dataset}/{sigma}/{method}/{image_name}"
            rows.append(cache.get(key, denoise_one, clean, seed_of(dataset, image_name, sigma), sigma, function))
        table[method] = summarise(rows)
        print(f"  {section} {dataset} sigma {sigma} {method}: {table[method]}", flush=True)
    return table


def run_colour_denoise(args, cache: Cache, models: dict[str, str]) -> dict:
    grey, colour = restorer("denoise", models), restorer("denoise-colour", models)
    limit = args.colour_limit if args.colour_limit is not None else args.limit
    results: dict = {"colour_limit": limit, "tables": {}}
    for dataset in ("CBSD68", "Kodak24"):
        images = load_folder(args.data_dir / dataset)[:limit]
        for sigma in args.sigmas:
            methods: dict = {"noisy input": None}
            if not args.no_bm3d:
                methods["CBM3D"] = lambda x, s=sigma: cbm3d_denoise(x, s)
            # a grey model given an RGB image restores its channels one by one
            methods.update(given_sigma(grey, "denoise", sigma, " per channel"))
            methods.update(given_sigma(colour, "denoise-colour", sigma))
            images = [(name, image[..., :3]) for name, image in images]
            table = denoise_table(cache, "colour-denoise", dataset, images, sigma, methods)
            results["tables"][f"{dataset} sigma {sigma}"] = table
    return results


# ------------------------------------------------------------------------------------------------ #
# JPEG artefact removal


def deblock_one(clean: np.ndarray, quality: int, net) -> dict:
    """``clean`` uint8 (H, W) or (H, W, 3) through JPEG at ``quality``, then through ``net`` (None:
    the decoded JPEG itself); PSNR/SSIM of the 8-bit result."""
    from aekit.degradations import jpeg_roundtrip
    from aekit.metrics import psnr, ssim

    decoded = jpeg_roundtrip(np.atleast_3d(clean), quality)  # uint8 (H, W, C)
    decoded = decoded[..., 0] if clean.ndim == 2 else decoded
    out = decoded.astype(np.float64) / 255 if net is None else np.round(np.clip(net.restore(decoded), 0, 1) * 255) / 255
    reference = clean.astype(np.float64) / 255
    return {"psnr": psnr(reference, out), "ssim": ssim(reference, out)}


def published_deblock() -> dict:
    """PUBLISHED_DEBLOCK as tables: "DATASET Qq" -> method -> {psnr, ssim}."""
    return {
        f"{dataset} Q{quality}": {method: {"psnr": p, "ssim": s} for method, (p, s) in methods.items()}
        for dataset, by_quality in PUBLISHED_DEBLOCK.items()
        for quality, methods in by_quality.items()
    }


def run_deblock(args, cache: Cache, models: dict[str, str]) -> dict:
    grey, colour = restorer("deblock", models), restorer("deblock-colour", models)
    results: dict = {"tables": {}, PUBLISHED: published_deblock(), "published_source": PUBLISHED_DEBLOCK_SOURCE}
    runs = [("classic5", "classic5", grey_of, grey, "deblock"), ("LIVE1", "LIVE1", studio_y_of, grey, "deblock")]
    if colour is not None:  # RGB through a 4:2:0 JPEG, scored on RGB
        runs.append(("LIVE1 RGB", "LIVE1", lambda image: image[..., :3], colour, "deblock-colour"))
    for title, folder, prepare, net, name in runs:
        images = [
            (image_name, prepare(image)) for image_name, image in load_folder(args.data_dir / folder)[: args.limit]
        ]
        for quality in args.qualities:
            table = {}
            for method in ["JPEG"] + ([f"aekit {name} {net.fingerprint}"] if net is not None else []):
                rows = []
                for image_name, image in images:
                    key = f"deblock/{title}/q{quality}/{method}/{image_name}"
                    rows.append(cache.get(key, deblock_one, image, quality, None if method == "JPEG" else net))
                table[method] = summarise(rows)
                print(f"  deblock {title} Q{quality} {method}: {table[method]}", flush=True)
            results["tables"][f"{title} Q{quality}"] = table
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
    from aekit.metrics import chroma_accuracy_auc, colourfulness, psnr, ssim

    rgb = image[..., :3].astype(np.float32) / 255
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    if method == "original":
        out = rgb
    elif method == "grey replicated":
        out = np.repeat(grey[..., None], 3, -1)
    else:
        out = np.clip(net.restore(grey), 0, 1)
    out = np.round(out * 255) / 255  # an 8-bit result
    return {
        "psnr": psnr(rgb, out),
        "ssim": ssim(rgb, out),
        "colourfulness": colourfulness(out),
        "auc": chroma_accuracy_auc(rgb, out),
    }


def run_colorize(args, cache: Cache, models: dict[str, str]) -> dict:

    nets = {name: restorer(name, models) for name in ("colorize", "colorize-gaussian")}
    nets = {f"aekit {name} {net.fingerprint}": net for name, net in nets.items() if net is not None}
    results: dict = {}
    for dataset in ("Kodak24", "CBSD68"):
        table: dict = {}
        for method in ["original", "grey replicated", *nets]:
            rows = []
            for image_name, image in load_folder(args.data_dir / dataset)[: args.limit]:
                key = f"colorize/{dataset}/{method}/{image_name}"
                rows.append(cache.get(key, colorize_one, image, method, nets.get(method), needs=("auc",)))
            table[method] = summarise(rows)
            print(f"  colorize {dataset} {method}: {table[method]}", flush=True)
        results[dataset] = table
    return results


# ------------------------------------------------------------------------------------------------ #
# speed and memory


def median_seconds(net, image: np.ndarray, **options) -> float:
    """The median time of 3 restorations of ``image`` after a warm-up."""
    net.restore(image, **options)  # warm-up
    times = []
    for _ in range(3):
        started = time.perf_counter()
        net.restore(image, **options)
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)), 3)


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
                net = restorer("denoise", models, precision, channels_last)
                if net is None:
                    break
                row = {"threads": threads, "precision": precision, "layout": "NHWC" if channels_last else "NCHW",
                       "seconds_median": median_seconds(net, noisy, sigma=25)}  # fmt: skip
                results["denoise 512x512 grey"].append(row)
                print(f"  speed: {row}", flush=True)
    results["models 512x512"] = model_speeds(args, models)
    torch.set_num_threads(args.threads)
    results["bf16 quality"] = bf16_quality(args, models)
    if not args.skip_memory:
        results["memory"] = memory_check(args, models)
    if args.big_sr:
        results["memory super-resolve x4"] = big_sr_check(args, models)
    return results


def model_speeds(args, models: dict[str, str]) -> list[dict]:
    """Seconds per image of every available model for a 512 x 512 output, at one thread, fp32, in
    the default layout: grey images for the grey models (Set12's 512 x 512 Lena, with noise of
    sigma 25, through JPEG at quality 20, with 50 % of its pixels missing, shrunk by the scale),
    a 512 x 512 crop of Kodak's kodim23 for the colour ones."""
    import torch
    from PIL import Image

    from aekit.degradations import jpeg_roundtrip

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    grey8 = np.asarray(Image.open(args.data_dir / "Set12" / "08.png"))  # 512 x 512
    rgb8 = np.asarray(Image.open(args.data_dir / "Kodak24" / "kodim23.png").convert("RGB"))[:512, 128:640]
    grey, rgb = grey8.astype(np.float32) / 255, rgb8.astype(np.float32) / 255
    missing = rng.random(grey.shape) < 0.5
    cases: dict = {
        "denoise": (grey + 25 / 255 * rng.standard_normal(grey.shape).astype(np.float32), {"sigma": 25}),
        "denoise-colour": (rgb + 25 / 255 * rng.standard_normal(rgb.shape).astype(np.float32), {"sigma": 25}),
        "deblock": (jpeg_roundtrip(grey8[..., None], 20)[..., 0], {}),
        "deblock-colour": (jpeg_roundtrip(rgb8, 20), {}),
    }
    for scale in SR_SCALES:
        side = math.ceil(512 / scale)  # x3: 171 -> 513
        cases[f"super-resolve-x{scale}"] = (np.asarray(Image.fromarray(grey8).resize((side, side), Image.BICUBIC)), {})
    cases["inpaint"] = (grey * ~missing, {"mask": missing})
    cases["colorize"] = (grey, {})
    if "colorize-gaussian" in models:
        cases["colorize-gaussian"] = (grey, {})
    rows = []
    for name, (observed, options) in cases.items():
        net = restorer(name, models)
        if net is None:
            continue
        if "sigma" in options and not net.level_map:
            options = {}
        out = net.restore(observed, **options)
        row = {
            "model": name,
            "fingerprint": net.fingerprint,
            "input": "x".join(map(str, observed.shape)),
            "output": "x".join(map(str, out.shape)),
            "seconds_median": median_seconds(net, observed, **options),
        }
        rows.append(row)
        print(f"  speed: {row}", flush=True)
    return rows


def bf16_quality(args, models: dict[str, str]) -> dict:
    """What bfloat16 costs in quality: the denoiser (told sigma 25) in fp32 and in bf16 on the BSD68
    images with the denoise section's noise (mean PSNR/SSIM and the per-image PSNR difference)."""
    nets = {precision: restorer("denoise", models, precision) for precision in ("fp32", "bf16")}
    if None in nets.values():
        return {}
    scores: dict = {precision: [] for precision in nets}
    for image_name, image in load_folder(args.data_dir / "BSD68")[: args.limit]:
        clean = image.astype(np.float64) / 255
        for precision, net in nets.items():
            seed = seed_of("BSD68", image_name, 25)
            function = lambda x, net=net: net.restore(x.astype(np.float32), sigma=25)  # noqa: E731
            scores[precision].append(denoise_one(clean, seed, 25, function))
    gaps = [b["psnr"] - a["psnr"] for a, b in zip(scores["fp32"], scores["bf16"], strict=True)]
    row = {precision: summarise(rows) for precision, rows in scores.items()}
    row["bf16 - fp32 psnr"] = {"mean": round(float(np.mean(gaps)), 4), "min": round(float(np.min(gaps)), 4),
                               "max": round(float(np.max(gaps)), 4)}  # fmt: skip
    print(f"  bf16 quality: {row}", flush=True)
    return row


def child_run(command: list[str], threads: int) -> tuple[float, float]:
    """Run ``command`` as a child process: its peak resident memory in MiB (its own, whatever ran
    before) and its wall seconds."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return usage.ru_maxrss / 1024, seconds  # Linux: KiB


def memory_check(args, models: dict[str, str]) -> dict:
    """Peak resident memory of ``aekit restore`` on a 4000 x 3000 colour photograph (Kodak's kodim23
    enlarged), measured in a child process: the colour denoiser given with ``--model`` (or the grey
    one, or the older sigma-25 one), else the one ``aekit restore`` picks."""
    from PIL import Image

    from aekit.applications.restoration import pretrained_names

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "big.png"
        Image.open(args.data_dir / "Kodak24" / "kodim23.png").convert("RGB").resize((4000, 3000), Image.BICUBIC).save(
            source
        )
        command = [sys.executable, "-m", "aekit.cli", "--threads", str(args.threads), "restore", "--task", "denoise"]
        model = "shipped"
        for name in ("denoise-colour", "denoise", "denoise-sigma25"):  # as aekit restore picks for colour
            if name in models:
                command += ["--weights", models[name]]
                model = name
                break
            if name in pretrained_names():
                model = f"{name} (shipped)"
                break
        command += ["--simulate", str(source), str(Path(folder) / "out.png")]
        peak_mib, seconds = child_run(command, args.threads)
    row = {"image": "4000x3000 RGB", "task": "denoise (simulated sigma 25)", "model": model,
           "peak_mib": round(peak_mib), "seconds": round(seconds, 1)}  # fmt: skip
    print(f"  memory: {row}", flush=True)
    return row


def big_sr_check(args, models: dict[str, str], size: tuple[int, int] = (6000, 4000)) -> dict:
    """Peak resident memory and time of ``aekit restore --task super-resolve --scale 4`` on a
    ``size`` (width, height) colour photograph (kodim23 enlarged), in a child process: a 6000 x 4000
    input gives a 24000 x 16000 result, whose 8-bit pixels alone take 1.15 GB."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "big.png", Path(folder) / "out.png"
        Image.open(args.data_dir / "Kodak24" / "kodim23.png").convert("RGB").resize(size, Image.BICUBIC).save(source)
        command = [sys.executable, "-m", "aekit.cli", "--threads", str(args.threads), "restore"]
        command += ["--task", "super-resolve", "--scale", "4"]
        if "super-resolve-x4" in models:
            command += ["--weights", models["super-resolve-x4"]]
        command += [str(source), str(target)]
        peak_mib, seconds = child_run(command, args.threads)
        with target.open("rb") as file:  # the PNG header's size: too many pixels for Pillow to open
            width, height = struct.unpack(">II", file.read(24)[16:24])
    row = {"image": f"{size[0]}x{size[1]} RGB", "task": "super-resolve x4", "output": f"{width}x{height}",
           "peak_mib": round(peak_mib), "seconds": round(seconds, 1)}  # fmt: skip
    print(f"  memory: {row}", flush=True)
    return row


# ------------------------------------------------------------------------------------------------ #


def print_tables(results: dict) -> None:
    def cell(value) -> str:
        return "-" if value is None else f"{value:.4g}"

    for section, record in results.items():
        if section.startswith("speed") or not isinstance(record, dict):
            continue
        tables = record.get("tables", record)
        published = record.get(PUBLISHED, {})
        print(f"\n### {section}\n")
        if published:
            print(f"(rows marked '{PUBLISHED}': {record.get('published_source', '')})\n")
        for title, table in tables.items():
            if not isinstance(table, dict) or not table or not all(isinstance(v, dict) for v in table.values()):
                continue
            metrics = list(dict.fromkeys(k for row in table.values() for k in row if k not in ("images", "seconds")))
            print(f"| {title} | {' | '.join(metrics)} | s/image |")
            print("|---" * (len(metrics) + 2) + "|")
            for method, row in table.items():
                print(f"| {method} | {' | '.join(cell(row.get(m)) for m in metrics)} | {row.get('seconds', 0):.2f} |")
            for method, row in published.get(title, {}).items():
                print(f"| {method} ({PUBLISHED}) | {' | '.join(cell(row.get(m)) for m in metrics)} | - |")
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
    parser.add_argument(
        "--qualities", type=int, nargs="+", default=list(QUALITIES), help="JPEG qualities (default 10 20 30 40)"
    )
    parser.add_argument(
        "--colour-limit", type=int, help="colour-denoise: only the first N images of each set (default: --limit)"
    )
    parser.add_argument("--no-bm3d", action="store_true", help="skip BM3D and CBM3D (slow; non-commercial licence)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 4000 x 3000 memory check")
    parser.add_argument(
        "--big-sr", action="store_true", help="speed: also super-resolve a 6000 x 4000 colour image x4 (long)"
    )
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
        "colour-denoise": lambda: run_colour_denoise(args, cache, models),
        "deblock": lambda: run_deblock(args, cache, models),
        "sr": lambda: run_sr(args, cache, models),
        "inpaint": lambda: run_inpaint(args, cache, models),
        "colorize": lambda: run_colorize(args, cache, models),
        "speed": lambda: run_speed(args, models),
    }
    keys = []
    for section in args.sections:
        print(f"{section}:", flush=True)
        # sections may be run separately with different --limit: each records its own, and a
        # denoising (deblocking) run at other noise levels (qualities) than the default ones
        # records beside the full one
        key = section
        if section in ("denoise", "colour-denoise") and list(args.sigmas) != list(SIGMAS):
            key = f"{section} sigma {'/'.join(map(str, args.sigmas))}"
        if section == "deblock" and list(args.qualities) != list(QUALITIES):
            key = f"deblock Q{'/'.join(map(str, args.qualities))}"
        record[key] = {"limit": args.limit, "threads": args.threads, **runners[section]()}
        keys.append(key)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    print_tables({k: record[k] for k in keys if k != "speed"})
    if "speed" in args.sections:
        print(json.dumps(record["speed"], indent=2))


if __name__ == "__main__":
    main()
