"""Generative and manifold commands: sample, interpolate, traverse, tangents."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import AekitError
from .base import (
    add_data_arguments,
    add_output,
    arguments,
    command,
    integer,
    load_run_and_data,
    save_array,
    save_figure,
)


def _add_run(parser: argparse.ArgumentParser, data_required: bool) -> None:
    parser.add_argument("run", type=Path, metavar="RUN", help="run or model folder (config.json + model.safetensors)")
    add_data_arguments(parser, required=data_required, default_split="test")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=integer(0), default=0, help="seeds every random choice and draw")
    add_output(parser, "--out", required=True, metavar="FILE.png", help="figure to write")


def _load_model(args: argparse.Namespace):
    from ..io import load_model
    from ..tensors import resolve_device

    return load_model(args.run, resolve_device(args.device))


def _pick(dataset, index: int | None, seed: int) -> np.ndarray:
    """One example of a dataset: at ``index``, or a seeded random one."""
    if index is None:
        index = int(np.random.default_rng(seed).integers(len(dataset)))
    if not 0 <= index < len(dataset):
        raise AekitError(f"--index {index}", f"{dataset.name} has examples 0 to {len(dataset) - 1}", "pick one of them")
    return dataset.x[index]


# ------------------------------------------------------------------------------------------------ #
# sample


def _add_sample(parser: argparse.ArgumentParser) -> None:
    _add_run(parser, data_required=False)
    parser.add_argument("-n", "--count", type=integer(1), default=64, help="how many samples")
    parser.add_argument(
        "--from",
        dest="source",
        choices=["prior", "mixture", "chain"],
        default="prior",
        help="prior: z ~ N(0, I) (a VAE); mixture: a Gaussian mixture fitted on the codes of --data (any model); "
        "chain: the Markov chain of a denoising model (corrupt, then draw a reconstruction, repeated)",
    )
    parser.add_argument("--components", type=integer(1), default=10, help="mixture components (--from mixture)")
    chain = parser.add_argument_group("--from chain")
    chain.add_argument("--chains", type=integer(1), default=16, help="chains run in parallel (default: 16)")
    chain.add_argument("--steps", type=integer(1), default=200, help="moves of each chain (default: 200)")
    chain.add_argument("--burn-in", type=integer(0), default=50, help="moves before states are kept (default: 50)")
    chain.add_argument("--thin", type=integer(1), default=10, help="keep every n-th state after it (default: 10)")
    chain.add_argument(
        "--draw",
        choices=["auto", "sample", "mean"],
        default="auto",
        help="read each reconstruction as a sample of its distribution or its mean; auto: the sample, except "
        "the mean for a Gaussian output with a fixed sigma (default: auto)",
    )
    chain.add_argument(
        "--start",
        choices=["noise", "data"],
        default="noise",
        help="noise: uniform over the range of --data (or [0, 1]); data: random examples of --data (default: noise)",
    )
    parser.add_argument("--columns", type=integer(1), default=8, help="images per row of the figure")
    add_output(parser, "--codes-out", metavar="FILE.npy", help="also write the codes (N, K)")
    add_output(parser, "--images-out", metavar="FILE.npy", help="also write the images (N, ...)")


@command(
    "sample",
    "generate new examples: decode codes drawn from a VAE's prior or from a mixture fitted on the codes",
    """examples:
  aekit sample runs/vae --out samples.png -n 64
  aekit sample runs/ae --from mixture --data fashion-mnist --split train --out samples.png
  aekit sample runs/vae --from mixture --data my.npy --components 20 --out s.png --images-out s.npy
  aekit sample runs/dae --from chain --steps 300 --burn-in 100 --chains 32 --out chain.png

A plain autoencoder has no prior: sample it --from mixture, which fits a Gaussian mixture to the
codes of --data (ex-post density estimation) and decodes draws from it. A denoising autoencoder
needs neither: --from chain alternates its training corruption and a draw from its reconstruction
distribution (Bengio et al. 2013), several chains as one batch; the figure shows the chains over
time and their last states, which are also written as .npy (--images-out, default: the figure's
name with .npy).""",
)
@arguments(_add_sample)
def cmd_sample(args: argparse.Namespace) -> int:
    from ..applications.generation import sample_mixture, sample_prior
    from ..plots import image_grids

    if args.source == "chain":
        return _sample_chain(args)
    if args.source == "prior":
        model = _load_model(args)
        codes, images = sample_prior(model, args.count, args.seed)
        label = "z ~ N(0, I)"
    else:
        if not args.data:
            why = "the mixture is fitted on the codes of real examples"
            raise AekitError("--from mixture needs data", why, "add --data")
        model, dataset = load_run_and_data(args)
        codes, images, _ = sample_mixture(model, dataset.x, args.count, args.components, args.seed)
        label = f"z ~ {args.components}-component mixture on {len(dataset)} codes"
    save_figure(image_grids({label: images}, args.columns, f"{model.family} autoencoder: samples"), args.out)
    for array, path in ((codes, args.codes_out), (images, args.images_out)):
        if path is not None:
            save_array(array.astype(np.float32), path)
    print(f"{len(images)} samples ({label}) written to {args.out}")
    return 0


def _sample_chain(args: argparse.Namespace) -> int:
    from ..applications.generation import denoising_chain
    from ..plots import chain_figure

    samples_out = args.images_out or args.out.with_suffix(".npy")
    if args.images_out is None and samples_out.exists() and not args.force:
        raise AekitError(
            f"{samples_out} exists", "the chain's samples would replace it", "give --images-out or --force"
        )
    if args.codes_out is not None:
        raise AekitError("--codes-out with --from chain", "a chain moves in the data space, not the codes", "drop it")
    if args.burn_in >= args.steps:
        raise AekitError(f"--burn-in {args.burn_in} with --steps {args.steps}", "no state would be kept", "lower it")
    model, dataset = load_run_and_data(args) if args.data else (_load_model(args), None)
    if model.corruption is None:
        raise AekitError(
            f"--from chain with a {model.family} model",
            "the chain alternates the model's training corruption and its reconstruction",
            "use a denoising model (aekit train --family denoising), or --from prior/mixture",
        )
    rng = np.random.default_rng(args.seed)
    if args.start == "data":
        if dataset is None:
            raise AekitError("--start data needs data", "the chains start from its examples", "add --data")
        start = dataset.x[np.sort(rng.choice(len(dataset), args.chains, replace=len(dataset) < args.chains))]
    elif dataset is not None:
        low, high = float(dataset.x.min()), float(dataset.x.max())
        start = rng.uniform(low, high, (args.chains, *dataset.x.shape[1:]))
    else:
        if None in model.data_shape:
            raise AekitError("--from chain without --data", "this model takes any image size", "add --data")
        start = rng.uniform(0.0, 1.0, (args.chains, *model.data_shape))
    start = np.asarray(start, np.float32)
    chain = denoising_chain(model, start, args.steps, args.burn_in, args.thin, args.draw, args.seed)
    title = f"{model.family} autoencoder: {args.chains} chains, {args.steps} moves ({args.draw} draws)"
    reference = None if dataset is None else dataset.x[: min(len(dataset), 2000)]
    save_figure(chain_figure(chain.states, chain.steps, reference, title), args.out)
    save_array(chain.samples.astype(np.float32), samples_out)
    print(f"{args.chains} chains of {args.steps} moves: figure {args.out}, last states {samples_out}")
    return 0


# ------------------------------------------------------------------------------------------------ #
# interpolate


def _add_interpolate(parser: argparse.ArgumentParser) -> None:
    _add_run(parser, data_required=False)
    parser.add_argument("--pair", action="append", default=[], metavar="I,J", help="indices of two examples of --data")
    parser.add_argument("--count", type=integer(1), default=4, help="random pairs when no --pair is given")
    parser.add_argument("--inputs", nargs=2, type=Path, metavar="IMAGE", help="two image files instead of --data")
    parser.add_argument(
        "--sentences",
        nargs=2,
        metavar="SENTENCE",
        help="two sentences (a sequence or sequence-vae run); --out gets the decoded lines",
    )
    parser.add_argument("--steps", type=integer(1), default=10, help="images per row, both ends included")
    parser.add_argument("--method", choices=["linear", "spherical"], default="linear", help="path between the codes")


@command(
    "interpolate",
    "decode the path between the codes of two examples (linear or spherical)",
    """examples:
  aekit interpolate runs/vae --data fashion-mnist --pair 0,1 --pair 5,9 --out interp.png
  aekit interpolate runs/vae --data mnist --count 6 --method spherical --out interp.png
  aekit interpolate runs/ae --inputs a.png b.png --steps 12 --out interp.png
  aekit interpolate runs/svae --sentences "a dog runs ." "two men sit on a bench ." --steps 6 --out path.txt""",
)
@arguments(_add_interpolate)
def cmd_interpolate(args: argparse.Namespace) -> int:
    if args.sentences:
        from .text import interpolate_text

        return interpolate_text(args)
    from ..applications.generation import interpolate
    from ..plots import image_rows

    if args.inputs:
        model = _load_model(args)
        pairs = [tuple(_read_input(path, model) for path in args.inputs)]
        labels = [f"{args.inputs[0].name} -> {args.inputs[1].name}"]
    else:
        if not args.data:
            raise AekitError("no examples to interpolate", "give --data (with --pair) or --inputs", "add one")
        model, dataset = load_run_and_data(args)
        index = [_parse_pair(text, len(dataset)) for text in args.pair] or _random_pairs(len(dataset), args)
        pairs = [(dataset.x[i], dataset.x[j]) for i, j in index]
        labels = [f"{i} -> {j}" for i, j in index]
    rows = [interpolate(model, a, b, args.steps, args.method)[1] for a, b in pairs]
    title = f"{model.family} autoencoder: {args.method} interpolation of codes"
    save_figure(image_rows(rows, labels, title), args.out)
    print(f"{len(rows)} interpolations of {args.steps} steps written to {args.out}")
    return 0


def _read_input(path: Path, model) -> np.ndarray:
    """An image file as one example in [0, 1], channels first."""
    from ..data.files import read_image

    if not path.is_file():
        raise AekitError(f"{path} does not exist", "--inputs takes two image files", "check the paths")
    image = read_image(path)
    scaled = image.astype(np.float32) / np.iinfo(image.dtype).max
    return scaled[None] if scaled.ndim == 2 else np.moveaxis(scaled, -1, 0)


def _parse_pair(text: str, size: int) -> tuple[int, int]:
    try:
        i, j = (int(v) for v in text.split(","))
    except ValueError:
        raise AekitError(f"bad --pair {text!r}", "expected two indices like 3,17", "fix it") from None
    if not (0 <= i < size and 0 <= j < size):
        raise AekitError(f"--pair {text}", f"the data have examples 0 to {size - 1}", "pick indices in range")
    return i, j


def _random_pairs(size: int, args: argparse.Namespace) -> list[tuple[int, int]]:
    if args.count < 1 or size < 2:
        raise AekitError(f"--count {args.count} on {size} examples", "a pair needs two examples", "use --count >= 1")
    rng = np.random.default_rng(args.seed)
    return [tuple(int(v) for v in rng.choice(size, 2, replace=False)) for _ in range(args.count)]


# ------------------------------------------------------------------------------------------------ #
# traverse


def _add_traverse(parser: argparse.ArgumentParser) -> None:
    _add_run(parser, data_required=True)
    parser.add_argument("--index", type=integer(0), help="which example of --data (default: a seeded random one)")
    parser.add_argument("--units", metavar="U1,U2", help="code units to move (default: the first 8)")
    parser.add_argument("--span", type=float, default=2.5, help="how far, in standard deviations of the codes")
    parser.add_argument("--steps", type=integer(1), default=9, help="values per unit")


@command(
    "traverse",
    "latent traversals: change one code unit at a time and decode",
    """examples:
  aekit traverse runs/vae --data fashion-mnist --index 3 --out traverse.png
  aekit traverse runs/ae --data mnist --units 0,1,2 --span 3 --out traverse.png

Each unit moves by -span..+span times its standard deviation over the codes of --data (at most
5 000 examples), around the code of the chosen example.""",
)
@arguments(_add_traverse)
def cmd_traverse(args: argparse.Namespace) -> int:
    from ..applications.generation import encode, traverse
    from ..plots import image_rows

    model, dataset = load_run_and_data(args)
    if args.steps < 2:
        raise AekitError(f"--steps {args.steps}", "a traversal needs at least two values", "use --steps >= 2")
    try:
        units = [int(u) for u in args.units.split(",")] if args.units else list(range(min(8, model.code_size)))
    except ValueError:
        raise AekitError(f"bad --units {args.units!r}", "expected comma-separated integers", "e.g. 0,1,2") from None
    x = _pick(dataset, args.index, args.seed)
    scale = encode(model, dataset.x[:5000]).std(0)
    offsets = np.linspace(-args.span, args.span, args.steps)
    _, images = traverse(model, x, units, offsets, scale)
    title = f"{model.family} autoencoder: one unit at a time, {-args.span:g}..{args.span:g} std"
    save_figure(image_rows(list(images), [f"unit {u}" for u in units], title), args.out)
    print(f"traversals of {len(units)} units written to {args.out}")
    return 0


# ------------------------------------------------------------------------------------------------ #
# tangents


def _add_tangents(parser: argparse.ArgumentParser) -> None:
    _add_run(parser, data_required=True)
    parser.add_argument("--compare", action="append", default=[], type=Path, metavar="RUN", help="another model")
    parser.add_argument("--index", type=integer(0), help="which example of --data (default: a seeded random one)")
    parser.add_argument("-k", "--directions", type=integer(1), default=8, help="tangent directions shown")
    add_output(parser, "--json", metavar="FILE", help="also write the singular values")


@command(
    "tangents",
    "tangent directions of the learned manifold at an input, from the encoder's exact Jacobian",
    """examples:
  aekit tangents runs/cae --data mnist --index 7 --out tangents.png
  aekit tangents runs/cae --compare runs/ae --data mnist --index 7 -k 6 --out compare.png --json sv.json

Each row shows the input, the leading right-singular vectors of d code / d x as images (grey:
unchanged, white: brighten, black: darken) and the singular values. A contractive autoencoder has
a few large singular values, whose directions follow the data manifold; a plain one has many.""",
)
@arguments(_add_tangents)
def cmd_tangents(args: argparse.Namespace) -> int:
    from ..applications.manifold import as_tangent_images, tangent_plane
    from ..io import load_model, write_json
    from ..plots import tangent_rows

    if args.directions < 1:
        raise AekitError(f"-k {args.directions}", "at least one direction is needed", "use -k 1 or more")
    model, dataset = load_run_and_data(args)
    x = _pick(dataset, args.index, args.seed)
    models = {f"{model.family} ({args.run.name})": model}
    for run in args.compare:
        other = load_model(run, next(model.parameters()).device)
        if other.data_shape != model.data_shape:
            raise AekitError(f"{run} was trained on {other.data_shape}", f"{args.run} on {model.data_shape}", "compare")
        models[f"{other.family} ({run.name})"] = other
    rows, report = {}, {}
    for label, each in models.items():
        plane = tangent_plane(each, x, args.directions)
        rows[label] = (x, as_tangent_images(plane.directions), plane.singular_values)
        report[label] = [round(float(v), 6) for v in plane.singular_values]
        shown = ", ".join(f"{v:.3g}" for v in plane.singular_values[:6])
        print(f"{label}: singular values {shown}, ...")
    save_figure(tangent_rows(rows, "tangent directions of the code at one input"), args.out)
    if args.json:
        write_json(args.json, report)
    print(f"tangent directions written to {args.out}")
    return 0
