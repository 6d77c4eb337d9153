"""Sparse dictionaries from the shell: collect a model's activations, measure the loss a trained
dictionary recovers inside it, describe the dictionary's latents."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import AekitError
from .base import (
    DATA_KEYS,
    RUN_FILE,
    add_data_arguments,
    add_output,
    add_subcommands,
    arguments,
    command,
    data_description,
    integer,
    load_data,
    load_run_and_data,
    print_report,
)
from .text import add_text_arguments, is_text_source, read_text

CONTEXTS_FILE, COLLECTION_FILE = "contexts.txt", "collection.json"


def _add_collect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="an aekit run or model folder, a sequence run folder, the name of a shipped model "
        "(a restoration model, or translate-de-en), or a torch.export file (.pt2)",
    )
    parser.add_argument("--module", help="the dotted name of the module whose outputs are stored (see --list-modules)")
    add_data_arguments(parser, required=False, default_split="train")
    add_text_arguments(parser)
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help=f"a new folder for the .npy shards, {COLLECTION_FILE} and, for text, "
        f"{CONTEXTS_FILE}",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size",
        type=integer(1),
        metavar="N",
        help="examples run at a time (default: 256; 64 sentence pairs for text)",
    )
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


class _Network(NamedTuple):
    """A network named on the command line: ``kind`` sequence, program or autoencoder."""

    kind: str
    model: Any
    tokenizer: Any = None
    fixed_batch: int | None = None


def _load_network(name: str) -> _Network:
    from ..applications.restoration import pretrained_names, weights_dir
    from ..io import load_model
    from ..text.pipeline import PRETRAINED, is_sequence_model_dir, load_sequence_model

    path = Path(name)
    if path.suffix == ".pt2" or (path.is_file() and path.suffix in (".pt", ".pth", ".jit")):
        if not path.is_file():
            raise AekitError(f"no file {path}", "a torch.export program is read from it", "check the path")
        program, fixed_batch = _exported(path)
        return _Network("program", program, fixed_batch=fixed_batch)
    if is_sequence_model_dir(path) or (name in PRETRAINED and not path.is_dir()):
        model, tokenizer, _ = load_sequence_model(name)
        return _Network("sequence", model, tokenizer)
    folder = weights_dir(name) if name in pretrained_names() else path
    if not (folder / "config.json").is_file():
        raise AekitError(
            f"no model at {name}",
            "the host is an aekit run or model folder, a sequence run folder, a shipped model's name or a "
            "torch.export file",
            "give a folder holding config.json and model.safetensors, a shipped name or a .pt2 file",
        )
    return _Network("autoencoder", load_model(folder))


def _host(args: argparse.Namespace, network: _Network, name: str, module: str, split: str):
    """(the :class:`~aekit.sae.Host` of ``network`` over the data options, the data's name)."""
    from ..sae import array_host, sequence_host

    if network.kind == "sequence":
        path = Path(str(args.data))
        text_file = path.is_file() and path.suffix.lower() not in (".npy", ".npz", ".csv")
        if not (is_text_source(args.data) or args.target_data or text_file):
            raise AekitError(
                f"--data {args.data} for the sequence model {name}",
                "a sequence model reads sentences",
                "give --data multi30k (with --pair), a .txt file of sentences, or a .tsv of pairs",
            )
        sources, targets, data_name = read_text(args, network.model.family, split)
        host = sequence_host(network.model, network.tokenizer, sources, targets, module, args.batch_size or 64)
        return host, data_name
    if args.pair or args.target_data:
        raise AekitError(
            f"--pair/--target-data with {name}", "they describe the text a sequence model reads", "drop them"
        )
    dataset = load_data(args, split=split)
    x = np.asarray(dataset.x, np.float32)
    if network.fixed_batch is not None and len(x) % network.fixed_batch and len(x) > network.fixed_batch:
        left_out = len(x) % network.fixed_batch
        print(f"the program takes batches of exactly {network.fixed_batch}: the last {left_out} examples are not run")
    return array_host(network.model, x, args.batch_size or 256, network.fixed_batch), dataset.name


def _as_given(value: Any) -> Any:
    """A path that exists, made absolute (a record read from elsewhere finds it); anything else as is."""
    if value is None or not Path(str(value)).exists():
        return value
    return str(Path(str(value)).resolve())


def cmd_collect(args: argparse.Namespace) -> int:
    from ..files import atomic_write_text
    from ..sae import collect

    network = _load_network(args.model)
    if args.list_modules:
        for name, module in network.model.named_modules():
            if name:
                print(f"{name:<40} {type(module).__name__}")
        return 0
    missing = [
        flag for flag, value in (("--module", args.module), ("--data", args.data), ("--out", args.out)) if not value
    ]
    if missing:
        raise AekitError(f"{', '.join(missing)} missing", "collect runs the model over data into a folder", "add them")
    host, data_name = _host(args, network, args.model, args.module, args.split)
    pair = args.pair
    if network.kind == "sequence" and args.data == "multi30k" and pair is None:
        pair = "de-en" if network.model.family == "seq2seq" else "en-en"
    about = {
        "model": _as_given(args.model),
        **data_description(args),
        "data": _as_given(args.data),
        "data_dir": _as_given(args.data_dir),
        "pair": pair,
        "target_data": _as_given(args.target_data),
        "source": data_name,
        "host": host.description,
    }
    if host.contexts is not None:
        about["contexts"] = CONTEXTS_FILE
    stored = collect(
        host.model, args.module, host.batches, args.out, forward=host.forward, keep=host.keep,
        shard_rows=args.shard_rows, dtype=args.dtype, max_rows=args.max_rows, about=about,
    )  # fmt: skip
    print(f"{len(stored)} rows of {stored.shape[1]} activations of {args.module} written to {args.out}/")
    if host.contexts is not None:
        lines = [line.replace("\n", " ") for line in host.contexts(len(stored))]
        atomic_write_text(args.out / CONTEXTS_FILE, "".join(line + "\n" for line in lines))
        print(f"{len(lines)} contexts, one a row, written to {args.out / CONTEXTS_FILE}")
    return 0


def _add_recovered(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="SAE_RUN", help="a trained dictionary (aekit train --family sae-*)")
    parser.add_argument(
        "--model",
        metavar="HOST",
        help="the network the dictionary was trained inside: as aekit sae collect takes it, but not a torch.export "
        f"program (default: the model recorded in the {COLLECTION_FILE} of the activations the run was trained on)",
    )
    parser.add_argument(
        "--module", help="the dotted name of the module the dictionary replaces (default: the one recorded there)"
    )
    add_data_arguments(parser, required=False, default_split=None)
    for action in parser._actions:
        if action.dest == "data":
            action.help += f" (default: the data recorded in {COLLECTION_FILE})"
        elif action.dest == "split":
            action.help += " (default: val for multi30k, test otherwise)"
    add_text_arguments(parser)
    parser.add_argument(
        "--batch-size",
        type=integer(1),
        metavar="N",
        help="examples run at a time (default: 256; 64 sentence pairs for text)",
    )
    parser.add_argument(
        "--max-batches", type=integer(1), metavar="N", help="measure on the first N batches (default: all)"
    )
    add_output(parser, "--json", metavar="FILE", help="also write the figures to this JSON file (default: none)")


def _trained_on(run: Path) -> tuple[dict[str, Any], str]:
    """The record (collection.json) of the activations folder ``run`` was trained on (empty when
    there is none), and what to say when an option it should have given is missing."""
    from ..files import read_json

    try:
        data = (read_json(run / RUN_FILE, "run record").get("data") or {}).get("data")
    except (AekitError, AttributeError):
        return {}, f"{run} has no readable {RUN_FILE} saying what it was trained on"
    path = Path(str(data)) if data else None
    folder = path.parent if path is not None and path.is_file() else path
    if folder is None or not (folder / COLLECTION_FILE).is_file():
        where = "a relative path is read from the current folder"
        return {}, f"the data {run} was trained on ({data}) hold no {COLLECTION_FILE} ({where})"
    try:
        record = read_json(folder / COLLECTION_FILE, "activations record")
    except AekitError:
        return {}, f"{folder / COLLECTION_FILE} cannot be read"
    return record if isinstance(record, dict) else {}, f"{folder / COLLECTION_FILE} does not record them"


def _width(host: Any, module: str, batch: Any) -> int:
    """The width of the rows ``module`` yields when the host runs ``batch``."""
    import torch

    from ..sae import activation_rows, find_module

    seen: list[int] = []
    handle = find_module(host.model, module).register_forward_hook(
        lambda _module, _inputs, output: seen.append(activation_rows(output).shape[1])
    )
    try:
        with torch.no_grad():
            host.forward(batch)
    finally:
        handle.remove()
    if not seen:
        raise AekitError(f"module {module!r} did not run", "the forward pass never reached it", "name one it uses")
    return seen[-1]


def cmd_recovered(args: argparse.Namespace) -> int:
    from ..files import write_json
    from ..io import load_model
    from ..sae import loss_recovered

    dictionary = load_model(args.run)
    record, where = _trained_on(args.run)
    name, module = args.model or record.get("model"), args.module or record.get("module")
    missing = [
        flag
        for flag, value in (("--model", name), ("--module", module), ("--data", args.data or record.get("data")))
        if not value
    ]
    if missing:
        raise AekitError(
            f"{' and '.join(missing)} missing",
            f"they say which network runs over which data with the dictionary spliced in, and {where}",
            f"give {' '.join(f'{flag} ...' for flag in missing)} as aekit sae collect was given them",
        )
    if args.data is None:  # the data the activations were collected from, another split of it
        args.data = record["data"]
        for key in ("pair", "target_data", "data_dir", *(k for k in DATA_KEYS if k not in ("data", "split"))):
            if getattr(args, key, None) in (None, "auto", "none") and record.get(key) is not None:
                setattr(args, key, record[key])
    network = _load_network(name)
    if network.kind == "program":
        raise AekitError(
            f"{name} is a torch.export program",
            "it computes outputs, not a loss: there is no loss to recover",
            "give the aekit run or model it was exported from, or call aekit.sae.loss_recovered with your loss",
        )
    split = args.split or ("val" if args.data == "multi30k" else "test")
    host, data_name = _host(args, network, name, module, split)
    if host.loss is None:
        raise AekitError(f"{name} has no loss", "loss recovered compares the host's own loss", "give an aekit model")
    batches = list(itertools.islice(host.batches, args.max_batches))
    width, expected = _width(host, module, batches[0]), int(np.prod(dictionary.data_shape))
    if width != expected:
        raise AekitError(
            f"the dictionary in {args.run} reads rows of {expected} numbers but {module} of {name} outputs {width}",
            "it replaces the module's output row by row",
            "name the module it was trained on (collection.json beside its activations says which)",
        )
    figures = loss_recovered(network.model, module, dictionary, batches, host.loss)
    units = {
        "clean": host.unit,
        "spliced": "the same, the module's output replaced by the dictionary's reconstruction",
        "zero": "the same, the module's output zeroed",
        "recovered": "(zero - spliced) / (zero - clean): 1 = the splice costs nothing, 0 = as bad as zeroing",
    }
    counted = f"{len(batches)} batch{'es' if len(batches) != 1 else ''}"
    print_report(f"{name}, {module} replaced by {args.run}; {data_name}, {counted}:", figures, units)
    if args.json:
        write_json(
            args.json,
            {"dictionary": str(args.run), "model": name, "module": module, "data": data_name, "split": split,
             "batches": len(batches), "unit": host.unit, **figures},
        )  # fmt: skip
        print(f"written to {args.json}")
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
  aekit sae collect translate-de-en --module decoder.layers.layers.1 --data multi30k --pair de-en \\
      --split train --out runs/acts
  aekit sae collect runs/de-en --module encoder.layers.layers.2 --data train.de --target-data train.en \\
      --max-rows 200000 --out runs/enc-acts

Defaults: --split train, --batch-size 256 examples (64 sentence pairs for a sequence model),
--shard-rows 65536, --dtype float32, every row (no --max-rows).

A sequence model (a shipped name such as translate-de-en, or a sequence run folder) is teacher
forced over the sentences; a row is a real position on the hooked module's side: a module under
encoder sees the source tokens (x_1 .. x_m EOS), any other the decoder's inputs (BOS y_1 .. y_n),
padding left out. contexts.txt beside the shards holds one line per row, in the same order (the
target prefix with the token in brackets, or the source sentence with the token in brackets),
for aekit sae report --contexts. collection.json records the module and where the rows came from
(model, data, split, pair), which aekit sae recovered reads back.

A torch.export program is unflattened (torch.export.unflatten) so its submodules keep their names
and take hooks; one exported with a fixed batch size runs batches of exactly that size.""",
    ),
    "recovered": (
        cmd_recovered,
        _add_recovered,
        "measure how much of a network's loss survives with a module replaced by a dictionary",
        """examples:
  aekit sae recovered runs/sae
  aekit sae recovered runs/sae --model translate-de-en --module decoder.layers.layers.1 \\
      --data multi30k --pair de-en --split val --json recovered.json
  aekit sae recovered runs/sae-pixels --model runs/ae --module encoder.layers.1 --data fashion-mnist

Defaults: --model, --module and --data from the collection.json of the activations folder the
run was trained on (when its train.json names that folder); --split val for multi30k, test
otherwise; --batch-size 256 examples (64 sentence pairs for a sequence model); every batch (no
--max-batches); no --json.

The host network runs three times over the data: clean, with the module's output replaced by the
dictionary's reconstruction of it (spliced), and with it zeroed (the layer ablated). Its loss is
nats per target token for a sequence model (EOS counted) and the reconstruction NLL in nats per
example for an aekit autoencoder (a denoiser's corruption drawn the same in the three runs).
recovered = (zero - spliced) / (zero - clean): the share of the ablation's damage the dictionary
undoes, 1 when splicing it in costs nothing. A torch.export program has no loss, so it cannot be
measured here; the dictionary's input width must be the module's output width.""",
    ),
    "report": (
        cmd_report,
        _add_report,
        "write a static HTML page describing each latent of a dictionary",
        """examples:
  aekit sae report runs/sae --data runs/acts-test.npy --out report/
  aekit sae report runs/sae --data runs/acts --contexts runs/acts/contexts.txt --out report/
  aekit sae report runs/sae-pixels --data pixels.npy --images images.npy --direction-shape 28,28 --out report/""",
    ),
}


def _add_sae(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, "sae_command", SUBCOMMANDS)


@command(
    "sae",
    "sparse dictionaries: collect a model's activations, measure the loss a dictionary recovers, describe its latents",
    """subcommands:
  collect    the outputs of one module of a model over a dataset, as .npy shards
  recovered  the host's loss clean, with the module replaced by the dictionary, and with it zeroed
  report     a static HTML feature browser: firing rates, histograms, top examples

examples:
  aekit sae collect runs/ae --module encoder.layers.1 --data fashion-mnist --out runs/acts
  aekit train --family sae-topk -o k=16 -o expansion=8 --data runs/acts --stream --out runs/sae
  aekit evaluate runs/sae --data runs/acts
  aekit sae recovered runs/sae
  aekit sae report runs/sae --data runs/acts --out report/

  aekit sae collect translate-de-en --module decoder.layers.layers.1 --data multi30k --pair de-en \\
      --split train --out runs/acts
  aekit sae report runs/sae --data runs/acts --contexts runs/acts/contexts.txt --out report/""",
)
@arguments(_add_sae)
def cmd_sae(args: argparse.Namespace) -> int:
    return SUBCOMMANDS[args.sae_command][0](args)
