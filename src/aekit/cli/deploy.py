"""``aekit export``: a trained model (or a shipped restoration model) as an ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AekitError
from .base import add_output, arguments, command


def _add_export(parser: argparse.ArgumentParser) -> None:
    from ..export import PARTS

    parser.add_argument(
        "run", metavar="RUN", help="a run or model folder, or the name of a shipped model (aekit list shows them)"
    )
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="the file format")
    parser.add_argument(
        "--part",
        default="autoencoder",
        choices=PARTS,
        help="autoencoder: input -> reconstruction (a restoration model: prepared input -> restored image); "
        "encoder: input -> code; decoder: code -> reconstruction",
    )
    add_output(parser, "--out", required=True, metavar="FILE.onnx", help="the file to write")
    parser.add_argument("--opset", type=int, metavar="N", help="ONNX opset version (default: the exporter's)")
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip running the exported graph in onnxruntime against torch on a random batch",
    )


@command(
    "export",
    "write a trained model, its encoder or its decoder as an ONNX graph (dynamic batch and image size)",
    """examples:
  aekit export runs/vae --part encoder --out vae-encoder.onnx
  aekit export runs/vae --part decoder --out vae-decoder.onnx
  aekit export denoise --out denoise.onnx                 # a shipped restoration model

The batch dimension is dynamic, and so are height and width for the restoration models (from 8
pixels up). A restoration model's graph takes the prepared input the network sees: the degraded
image, enlarged by bicubic interpolation for super-resolution, with its mask channel (1 = known)
for inpainting, the lightness for colorization. Unless --no-check, the file is run in onnxruntime
and compared with torch on a random batch, and the largest difference is printed.""",
)
@arguments(_add_export)
def cmd_export(args: argparse.Namespace) -> int:
    from ..applications.restoration import pretrained_names, weights_dir
    from ..export import check_with_onnxruntime, onnx_bytes
    from ..files import atomic_write_bytes
    from ..io import load_model

    if args.out.suffix != ".onnx":
        raise AekitError(f"--out {args.out} does not end in .onnx", "an ONNX graph is one .onnx file", "rename it")
    source = Path(args.run)
    if not source.exists() and args.run in pretrained_names():
        source = weights_dir(args.run)
    model = load_model(source)
    data = onnx_bytes(model, args.part, args.opset)
    if not args.no_check:
        difference = check_with_onnxruntime(model, data, args.part)
        print(f"onnxruntime agrees with torch: largest difference {difference:.2e} on a random batch")
        if difference > 1e-3:
            raise AekitError(
                f"the exported graph differs from the model by {difference:.3g}",
                "onnxruntime computes something else than torch",
                "report it with the model folder; --no-check writes the file anyway",
            )
    atomic_write_bytes(args.out, data)
    print(f"{args.part} of {args.run} written to {args.out} ({len(data) / 1024:.0f} KiB)")
    return 0
