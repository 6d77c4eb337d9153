"""``aekit restore``: denoise, super-resolve, inpaint, colorize or deblock an image file."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import AekitError
from .base import add_output, arguments, command, integer, save_figure

TASK_NAMES = ("denoise", "super-resolve", "inpaint", "colorize", "deblock")
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _add_restore(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="INPUT", help="PNG/JPEG/TIFF image, grey or colour, 8 or 16 bit")
    add_output(parser, "output", metavar="OUTPUT", help="where to write the restored image")
    parser.add_argument("--task", required=True, choices=TASK_NAMES, help="what to undo")
    parser.add_argument(
        "--sigma",
        type=float,
        help="denoise: the noise level in grey levels of 255; a model that takes the level as an input "
        "(noise_map) is given it (without --sigma it is estimated from the image); of the shipped models 25 "
        "uses the sigma-25 model, any other the blind model (trained on 0-50); with --simulate, the noise added "
        "(default 25)",
    )
    parser.add_argument("--scale", type=int, default=2, help="super-resolve: enlargement factor 2, 3 or 4")
    parser.add_argument(
        "--quality", type=integer(1), default=20, help="deblock with --simulate: the JPEG quality to compress at (1-95)"
    )
    parser.add_argument(
        "--mask",
        type=Path,
        metavar="FILE",
        help="inpaint: image of INPUT's size, white (non-zero) where pixels are missing",
    )
    parser.add_argument(
        "--mask-kind",
        choices=["pixels", "boxes", "strokes"],
        default="pixels",
        help="inpaint with --simulate and no --mask: the random holes to punch (50%% pixels, eight 32-pixel boxes, "
        "or strokes)",
    )
    parser.add_argument("--weights", type=Path, metavar="DIR", help="your own model folder (aekit train --family ...)")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="treat INPUT as a clean original: degrade it first (noise, shrink, holes or grey), write the "
        "degraded image next to OUTPUT (NAME-degraded.png) and report the PSNR",
    )
    add_output(parser, "--figure", metavar="FILE.png", help="with --simulate: degraded/restored/original")
    parser.add_argument(
        "--tile", type=integer(1), default=512, help="tile size in pixels: bounds memory for large images"
    )
    parser.add_argument("--overlap", type=integer(0), default=32, help="context around each tile (>= receptive field)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: faster on recent CPUs")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=integer(0), default=0, help="seed of --simulate's noise or holes")


@command(
    "restore",
    "denoise, super-resolve, inpaint, colorize or deblock an image with a shipped or your own model",
    """examples:
  aekit restore --task denoise noisy.png clean.png                     # sigma 25 model
  aekit restore --task denoise --sigma 40 noisy.png clean.png          # blind model
  aekit restore --task super-resolve --scale 2 small.png big.png       # output twice the size
  aekit restore --task inpaint --mask holes.png damaged.png filled.png # white in holes.png = missing
  aekit restore --task colorize grey.jpg colour.png
  aekit restore --task deblock --weights runs/deblock photo.jpg clean.png   # JPEG artefacts
  aekit restore --task denoise --simulate --figure fig.png photo.png out.png   # add noise, then remove it
  aekit restore --task denoise --weights runs/my-denoiser noisy.png clean.png

Grey models restore each channel of a colour image (super-resolution: the luminance; the chroma
is enlarged bicubically). An alpha channel is passed through; 16-bit images give 16-bit output.
Large images are restored in tiles (--tile), so memory stays bounded. Shipped models: aekit list.
Inpainting picks the shipped model from the mask: scattered missing pixels go to inpaint-pixels,
regions (boxes, strokes, scratches) to inpaint.""",
)
@arguments(_add_restore)
def cmd_restore(args: argparse.Namespace) -> int:
    from ..applications.restoration import PRETRAINED, ImageRestorer, as_unit_image, pretrained_names
    from ..corruptions import GaussianNoise
    from ..data.files import read_image
    from ..degradations import JPEG, Bicubic, Inpainting, check_scale
    from ..metrics import psnr
    from ..plots import restoration_panels

    if args.output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise AekitError(f"output {args.output} has no image suffix", f"use one of {', '.join(OUTPUT_SUFFIXES)}", "")
    degraded_path = args.output.with_name(f"{args.output.stem}-degraded.png")
    if args.simulate and degraded_path.exists() and not args.force:
        raise AekitError(
            f"{degraded_path} already exists", "--simulate writes the degraded image there", "add --force or rename"
        )
    if args.simulate and degraded_path.resolve() == args.input.resolve():
        raise AekitError(f"{degraded_path} is INPUT", "--simulate would write the degraded image over it", "rename")
    if args.task == "super-resolve":
        check_scale(args.scale)
    raw = read_image(args.input)
    bits = 16 if raw.dtype == np.uint16 else 8
    image = as_unit_image(raw, str(args.input))
    options = {"tile": args.tile, "overlap": args.overlap, "device": args.device, "precision": args.precision}
    degradation = {
        "denoise": GaussianNoise((25 if args.sigma is None else args.sigma) / 255),
        "super-resolve": Bicubic(args.scale),
        "inpaint": Inpainting("boxes", boxes=8, box_size=32)
        if args.mask_kind == "boxes"
        else Inpainting(args.mask_kind, rate=0.5),
        "colorize": None,
        "deblock": JPEG(args.quality),
    }[args.task]
    mask = None
    if args.mask is not None:
        if args.task != "inpaint":
            raise AekitError("--mask is for inpainting", f"a {args.task} model takes no mask", "drop --mask")
        mask = as_unit_image(read_image(args.mask), str(args.mask))
        mask = mask.max(-1) > 0 if mask.ndim == 3 else mask > 0
    if args.weights is not None:
        restorer = ImageRestorer.load(args.weights, degradation=degradation, **options)
    else:
        name = _shipped_name(args, mask, colour=image.ndim == 3 and image.shape[-1] >= 3)
        if name not in pretrained_names():
            raise AekitError(
                f"no shipped {args.task} model", "none is installed with aekit", f"train one with aekit train "
                f"--family {args.task} and pass --weights DIR"
            )  # fmt: skip
        if args.task in ("inpaint", "denoise", "deblock"):
            print(f"{args.task} with the shipped model {name!r} ({PRETRAINED[name]})")
        restorer = ImageRestorer.pretrained(name, degradation=degradation, **options)
    if restorer.task != args.task:
        raise AekitError(f"the model in {args.weights} is a {restorer.task} model", f"not {args.task}", "fix --task")
    original = None
    if args.simulate:
        original = image
        levels = 2**bits - 1  # restore what the degraded file holds: clipped and quantised
        observed = np.round(np.clip(restorer.degrade(image, seed=args.seed, mask=mask), 0, 1) * levels) / levels
        if args.task == "inpaint" and mask is None:
            mask = restorer.random_mask(*image.shape[:2], seed=args.seed)
        _save_image(degraded_path, observed, bits)
        print(f"degraded image written to {degraded_path}")
    else:
        if args.task == "inpaint" and mask is None:
            raise AekitError("inpainting needs --mask FILE", "the model must know which pixels are missing", "add it")
        observed = image
    # written tile by tile straight into the integer pixels of the file: memory stays bounded
    stored = np.uint16 if bits == 16 and args.output.suffix.lower() == ".png" else np.uint8
    if restorer.level_map:  # the level is an input of the model: given, or estimated from the image
        restored = restorer.restore(observed, sigma=args.sigma, dtype=stored, progress=True)
        how = "given" if args.sigma is not None else "estimated from the image"
        print(f"noise level: sigma {restorer.last_sigma:.1f} grey levels of 255 ({how})")
    else:
        restored = restorer.restore(observed, mask=mask, dtype=stored, progress=True)
    _save_image(args.output, restored, bits)
    shape = "x".join(map(str, restored.shape[1::-1]))
    print(f"{args.task}: {args.input} -> {args.output} ({shape}, {bits}-bit)")
    if original is not None:  # only a simulation compares: a float copy of the result is made for it
        restored = as_unit_image(restored)
        score = psnr(_without_alpha(original), _without_alpha(restored))
        print(f"  PSNR of the restored image against INPUT: {score:.2f} dB")
        if args.figure:
            figure = restoration_panels(observed, restored, original, f"{args.task}: {args.input.name}")
            save_figure(figure, args.figure)
            print(f"figure written to {args.figure}")
    return 0


def _without_alpha(image: np.ndarray) -> np.ndarray:
    return image[..., :-1] if image.ndim == 3 and image.shape[-1] in (2, 4) else image


def _shipped_name(args: argparse.Namespace, mask: np.ndarray | None, colour: bool) -> str:
    from ..applications.restoration import inpainting_model_for, pretrained_names

    if args.task == "inpaint":  # the model for scattered pixels, or the one for regions
        if mask is not None:
            return inpainting_model_for(mask)
        return "inpaint-pixels" if args.mask_kind == "pixels" else "inpaint"
    if args.task == "super-resolve":
        return f"super-resolve-x{args.scale}"
    if args.task in ("denoise", "deblock") and colour:  # the colour model, or the grey one channel by channel
        return f"{args.task}-colour" if f"{args.task}-colour" in pretrained_names() else args.task
    return args.task


def _save_image(path: Path, image: np.ndarray, bits: int) -> None:
    """Write pixels (float in [0, 1], or uint8 / uint16 as they are) as an 8- or 16-bit image,
    atomically and straight to the file; 16-bit colour PNGs via pypng."""
    from PIL import Image

    from ..files import atomic_file

    suffix = path.suffix.lower()
    if bits == 16 and suffix != ".png":
        bits = 8  # JPEG, BMP and Pillow's TIFF writer hold 8 bits per channel
    channels = 1 if image.ndim == 2 else image.shape[-1]
    if suffix in (".jpg", ".jpeg") and channels in (2, 4):
        raise AekitError(f"{path} cannot hold the alpha channel", "JPEG has no transparency", "write a .png")
    pixels = _integer_pixels(image, bits)
    if pixels.ndim == 3 and channels == 1:
        pixels = pixels[..., 0]
    with atomic_file(path) as handle:
        if suffix == ".png":  # row by row with pypng: no second copy of a large result (Pillow makes one)
            import png

            writer = png.Writer(
                image.shape[1], image.shape[0], greyscale=channels < 3, alpha=channels in (2, 4), bitdepth=bits
            )
            writer.write(handle, (row.reshape(-1) for row in pixels))
        else:
            Image.fromarray(pixels).save(handle, format="PNG" if bits == 16 else Image.registered_extensions()[suffix])


def _integer_pixels(image: np.ndarray, bits: int) -> np.ndarray:
    """uint8 (``bits`` 8) or uint16 (16) pixels from floats in [0, 1] or from integer pixels."""
    dtype = np.uint16 if bits == 16 else np.uint8
    if image.dtype == dtype:
        return image
    if image.dtype == np.uint16:  # 16-bit result, 8-bit file
        return np.round(image / 257).astype(np.uint8)
    if image.dtype == np.uint8:
        return image.astype(np.uint16) * 257
    return np.round(np.clip(image, 0, 1) * np.iinfo(dtype).max).astype(dtype)
