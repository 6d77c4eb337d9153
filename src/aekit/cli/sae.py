"""Sparse dictionaries from the shell: collect a model's activations, describe a trained dictionary."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import AekitError
from .base import add_data_arguments, add_subcommands, arguments, command, integer, load_data, load_run_and_data


def _add_collect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="an aekit run or model folder, the name of a shipped restoration model, or a torch.export file (.pt2)",
    )
    parser.add_argument("--module", help="the dotted name of the module whose outputs are stored (see --list-modules)")
    add_data_arguments(parser, required=False, default_split="train")
    parser.add_argument("--out", type=Path, metavar="DIR", help="a new folder for the .npy shards")
    parser.add_argument("--batch-size", type=integer(1), default=256, help="examples run at a time (default: 256)")
    parser.add_argument("--shard-rows", type=integer(1), default=65536, help="rows per shard (default: 65536)")
    parser.add_argument("--max-rows", type=integer(1), help="stop after this many rows (default: all)")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="(default: float32)")
    parser.add_argument("--list-modules", action="store_true", help="print the model's module names and stop")


def _exported(path: Path):
    """A torch.export program as a module with its submodules (hooks attach to them), and the batch
    size it was exported for (None when the batch dimension is dynamic)."""
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as error:  # any unreadable file: one clear line
        why = "TorchScript modules take no new hooks" if path.suffix in (".pt", ".pth", ".jit") else str(error)[:120]
        raise AekitError(f"cannot read {path} as a torch.export program", why, "save with torch.export.save") from None
    inputs = [node for node in program.graph.nodes if node.op == "placeholder" and "val" in node.meta]
    user = [node for node in inputs if node.name in set(program.graph_signature.user_inputs)]
    first = (user or inputs)[0].meta["val"].shape[0] if (user or inputs) else None
    return torch.export.unflatten(program), first if isinstance(first, int) else None


def cmd_collect(args: argparse.Namespace) -> int:
    from ..applications.restoration import pretrained_names, weights_dir
    from ..io import load_model
    from ..sae import collect

    path, fixed_batch = Path(args.model), None
    if path.suffix == ".pt2" or (path.is_file() and path.suffix in (".pt", ".pth", ".jit")):
        if not path.is_file():
            raise AekitError(f"no file {path}", "collect reads a torch.export program from it", "check the path")
        model, fixed_batch = _exported(path)
    else:
        folder = weights_dir(args.model) if args.model in pretrained_names() else path
        if not (folder / "config.json").is_file():
            raise AekitError(
                f"no model at {args.model}",
                "collect reads an aekit run or model folder, a shipped model's name or a torch.export file",
                "give a folder holding config.json and model.safetensors, or a .pt2 file",
            )
        model = load_model(folder)
    if args.list_modules:
        for name, module in model.named_modules():
            if name:
                print(f"{name:<40} {type(module).__name__}")
        return 0
    missing = [
        flag for flag, value in (("--module", args.module), ("--data", args.data), ("--out", args.out)) if not value
    ]
    if missing:
        raise AekitError(f"{', '.join(missing)} missing", "collect runs the model over data into a folder", "add them")
    dataset = load_data(args)
    x, batch_size = np.asarray(dataset.x, np.float32), args.batch_size
    if fixed_batch is not None:  # a program exported for one batch size runs only batches of that size
        batch_size, left_out = fixed_batch, len(x) % fixed_batch
        x = x[: len(x) - left_out]
        if left_out:
            print(f"the program takes batches of exactly {fixed_batch}: the last {left_out} examples are not run")
        if len(x) == 0:
            raise AekitError(f"{len(dataset)} examples", f"the program takes batches of {fixed_batch}", "give more")
    stored = collect(
        model, args.module, x, args.out, batch_size=batch_size, shard_rows=args.shard_rows, dtype=args.dtype,
        max_rows=args.max_rows,
    )  # fmt: skip
    print(f"{len(stored)} rows of {stored.shape[1]} activations of {args.module} written to {args.out}/")
    return 0


def _add_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="RUN", help="a trained sae-* run or model folder")
    add_data_arguments(parser, default_split="test")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for index.html")
    parser.add_argument("--images", type=Path, metavar="FILE.npy", help="one picture per example (N, C, H, W)")
    parser.add_argument("--contexts", type=Path, metavar="FILE.txt", help="one line of text per example")
    parser.add_argument("--direction-shape", metavar="H,W", help="draw decoder directions as H x W images")
    parser.add_argument(
        "--latents", type=integer(1), default=100, help="latents shown, most active first (default: 100)"
    )
    parser.add_argument("--top", type=integer(1), default=8, help="top examples per latent (default: 8)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")


def cmd_report(args: argparse.Namespace) -> int:
    from ..sae import write_report

    model, dataset = load_run_and_data(args)
    images = np.load(args.images, allow_pickle=False) if args.images else None
    contexts = args.contexts.read_text().splitlines() if args.contexts else None
    shape = None
    if args.direction_shape:
        try:
            shape = tuple(int(v) for v in args.direction_shape.split(","))
        except ValueError:
            raise AekitError(f"--direction-shape {args.direction_shape!r}", "it is H,W", "e.g. 28,28") from None
    dimension = int(np.prod(model.data_shape))
    if shape is not None and int(np.prod(shape)) != dimension:
        raise AekitError(f"--direction-shape {args.direction_shape}", f"directions have {dimension} values", "fix it")
    page = write_report(
        model, np.asarray(dataset.x, np.float32), args.out, images=images, contexts=contexts, direction_shape=shape,
        latents=args.latents, top=args.top, title=f"{model.family}: {args.run.name} on {dataset.name}",
    )  # fmt: skip
    print(f"feature browser written to {page}")
    return 0


SUBCOMMANDS = {
    "collect": (
        cmd_collect,
        _add_collect,
        "store the outputs of one module of a model over a dataset as .npy shards",
        """examples:
  aekit sae collect runs/ae --list-modules
  aekit sae collect runs/ae --module encoder.layers.1 --data fashion-mnist --out runs/acts
  aekit sae collect denoise --module encoder.encoder_layers.2 --data patches.npy --out runs/denoise-acts
  aekit sae collect classifier.pt2 --module blocks.2 --data images.npy --out runs/acts   # torch.export.save

A torch.export program is unflattened (torch.export.unflatten) so its submodules keep their names
and take hooks; one exported with a fixed batch size runs batches of exactly that size.""",
    ),
    "report": (
        cmd_report,
        _add_report,
        "write a static HTML page describing each latent of a dictionary",
        """examples:
  aekit sae report runs/sae --data runs/acts-test.npy --out report/
  aekit sae report runs/sae-pixels --data pixels.npy --images images.npy --direction-shape 28,28 --out report/""",
    ),
}


def _add_sae(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, "sae_command", SUBCOMMANDS)


@command(
    "sae",
    "sparse dictionaries: collect a model's activations, describe a trained dictionary's latents",
    """subcommands:
  collect    the outputs of one module of a model over a dataset, as .npy shards
  report     a static HTML feature browser: firing rates, histograms, top examples

examples:
  aekit sae collect runs/ae --module encoder.layers.1 --data fashion-mnist --out runs/acts
  aekit train --family sae-topk -o k=16 -o expansion=8 --data runs/acts --stream --out runs/sae
  aekit evaluate runs/sae --data runs/acts
  aekit sae report runs/sae --data runs/acts --out report/""",
)
@arguments(_add_sae)
def cmd_sae(args: argparse.Namespace) -> int:
    return SUBCOMMANDS[args.sae_command][0](args)
