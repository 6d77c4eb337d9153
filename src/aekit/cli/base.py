"""Shared pieces of the ``aekit`` command line: the command registry and helpers for data and files.

Every subcommand module registers its commands with :func:`command`; only the CLI writes user files.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AekitError

EXIT_BAD_INPUT = 2
OUTPUTS = "aekit_outputs"  # parser attribute: the (dest, option) pairs of the files a command writes

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Command, Callable[[argparse.ArgumentParser], None], str, str]] = {}


def command(name: str, summary: str, examples: str = "") -> Callable[[Command], Command]:
    """Register a subcommand: ``summary`` is its one-line help, ``examples`` ends its --help."""

    def register(function: Command) -> Command:
        _COMMANDS[name] = (function, getattr(function, "add_arguments", lambda parser: None), summary, examples)
        return function

    return register


def add_subcommands(parser: argparse.ArgumentParser, dest: str, subcommands: dict[str, tuple]) -> None:
    """The subcommands of a command group (``aekit hash build``): ``subcommands`` maps a name to
    (function, argument adder, one-line summary, examples)."""
    subparsers = parser.add_subparsers(dest=dest, metavar="SUBCOMMAND", required=True)
    for name, (_, add_arguments, summary, examples) in subcommands.items():
        sub = subparsers.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=examples,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(sub)


def arguments(adder: Callable[[argparse.ArgumentParser], None]) -> Callable[[Command], Command]:
    """Attach the function that declares a subcommand's options."""

    def attach(function: Command) -> Command:
        function.add_arguments = adder  # type: ignore[attr-defined]
        return function

    return attach


# ------------------------------------------------------------------------------------------------ #
# options generated from the settings dataclasses, outputs, help


def option_name(field_name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + field_name.replace("_", "-")


def add_settings(group: Any, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One option per field of the settings dataclass ``cls`` (:mod:`aekit.config`): name, type,
    default, allowed values and help all come from the field's :func:`~aekit.config.setting`."""
    from ..config import allowed_values, check_value, describe_range, settings_of, value_kind

    for f in settings_of(cls):
        if not f.metadata.get("cli", True) or f.name in skip:
            continue
        option, kind = option_name(f.name), value_kind(f)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f.metadata["help"].replace("%", "%%")
        if kind == "bool":
            group.add_argument(option, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        choices = allowed_values(f)
        metavar = "{" + ",".join(map(str, choices)) + "}" if choices else _metavar(kind, f.metadata.get("auto"))
        if default is not None and "default" not in help_text:
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            help_text += f" (default: {shown})"
        elif choices is None and "default" not in help_text:
            help_text += f"; {describe_range(f)}"
        parse = _setting_parser(f, option, kind, check_value, allowed_values, describe_range)
        group.add_argument(option, type=parse, default=default, metavar=metavar, help=help_text)


def _metavar(kind: str, auto: bool) -> str:
    name = {"int": "N", "float": "X", "ints": "N1,N2", "str": "TEXT", "dict": "JSON"}[kind]
    return f"{name}|auto" if auto else name


def _setting_parser(
    f: Any, option: str, kind: str, check: Callable[..., Any], allowed_values: Callable, describe_range: Callable
) -> Callable[[str], Any]:
    """The argparse ``type`` of a setting: text -> value, checked against the field's range."""

    def parse(text: str) -> Any:
        value: Any = text
        try:
            if f.metadata.get("auto") and text == "auto":
                value = "auto"
            elif kind == "int":
                value = int(text)
            elif kind == "float":
                value = float(text)
            elif kind == "ints":
                value = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            pass  # left as text: the check below names the option and what it allows
        try:
            return check(f, value, option)
        except AekitError:  # argparse names the option: say what is wrong with the value
            allowed = allowed_values(f)
            if allowed is not None:
                raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(map(str, allowed))}") from None
            shown = repr(text) if isinstance(value, str) else text  # text that did not even parse: quoted
            raise argparse.ArgumentTypeError(f"{shown} is not allowed: it must be {describe_range(f)}") from None

    parse.__name__ = kind  # argparse names the type in some messages
    return parse


def settings_from_args(args: argparse.Namespace, cls: type, **extra: Any) -> Any:
    """An instance of the settings dataclass ``cls`` from the parsed options (every generated
    option is on the namespace), plus ``extra`` fields; validated."""
    from ..config import settings_of

    values = {f.name: getattr(args, f.name) for f in settings_of(cls) if hasattr(args, f.name)}
    return cls(**{**values, **extra}).validate()


def integer(minimum: int = 0) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``, else a one-line usage error that says so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is not allowed: it must be an integer >= {minimum}")
        return value

    parse.__name__ = "integer"
    return parse


def add_output(parser: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    """An option naming a file the command writes. Before the command runs, an existing file is
    refused unless ``--force`` is given (added here when missing), and a file the command reads is
    refused always: nothing a user has is overwritten by surprise, and no input is written over."""
    action = parser.add_argument(*flags, type=Path, **kwargs)
    if not any("--force" in a.option_strings for a in parser._actions):
        parser.add_argument("--force", action="store_true", help="replace output files that already exist")
    getattr(parser, OUTPUTS, None) or setattr(parser, OUTPUTS, [])
    getattr(parser, OUTPUTS).append((action.dest, flags[-1] if flags[-1].startswith("-") else action.dest.upper()))


def _declared_outputs(parser: argparse.ArgumentParser) -> set[tuple[str, str]]:
    """The outputs declared on ``parser`` and on its sub-commands (``aekit hash build``)."""
    found = set(getattr(parser, OUTPUTS, []))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _declared_outputs(sub)
    return found


def check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse output files that exist (without ``--force``) or that are also inputs of the command."""
    declared = _declared_outputs(parser)
    outputs = [(getattr(args, dest, None), name) for dest, name in declared]
    outputs = [(Path(path), name) for path, name in outputs if path is not None]
    written = {dest for dest, _ in declared}
    inputs = {
        Path(value).resolve()
        for key, value in vars(args).items()
        if key not in written and isinstance(value, str | Path) and Path(value).is_file()
    }
    for path, name in outputs:
        if path.resolve() in inputs:
            raise AekitError(
                f"{name} {path} is also an input of this command", "it would be overwritten", "write elsewhere"
            )
        if path.is_dir():
            raise AekitError(f"{name} {path} is a folder", "a file is written there", "name a file")
        if path.exists() and not getattr(args, "force", False):
            raise AekitError(
                f"{name} {path} already exists", "the command would replace it", f"choose another {name} or add --force"
            )


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples in the epilog keep their lines; every option's help ends with its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, argparse.BooleanOptionalAction):
            return f"{text} (default: {'on' if action.default else 'off'})"
        if action.nargs == 0:  # a flag
            return f"{text} (default: off)" if text else "(default: off)"
        if action.default is None or action.default == []:
            return text
        return f"{text} (default: %(default)s)"


# ------------------------------------------------------------------------------------------------ #
# shared pieces


def add_data_arguments(parser: argparse.ArgumentParser, required: bool = True, default_split: str = "train") -> None:
    """--data and the options that say how to read it."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        required=required,
        metavar="SOURCE",
        help="a dataset name (embedded, mnist, fashion-mnist), a .npy/.npz/.csv file, or a folder of images or of "
        ".npy shards",
    )
    group.add_argument(
        "--split",
        default=default_split,
        choices=["train", "val", "test"],
        help="split of a named dataset (val: multi30k only)",
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with one sub-folder per dataset (mnist/, fashion-mnist/); default $AEKIT_DATA_DIR",
    )
    group.add_argument("--no-download", action="store_true", help="never download a missing dataset")
    group.add_argument(
        "--scale",
        default="auto",
        choices=["auto", "none", "minmax"],
        help="auto: 8/16-bit integers to [0, 1], floats unchanged; minmax: whole dataset to [0, 1]",
    )
    group.add_argument(
        "--binarize",
        default="none",
        choices=["none", "threshold", "static", "dynamic"],
        help="threshold at 0.5, one seeded Bernoulli draw (static), or a new draw every batch (dynamic)",
    )
    group.add_argument("--label-column", metavar="COLUMN", help="CSV column (name or index) holding labels")
    group.add_argument(
        "--classes",
        metavar="C1,C2",
        help="keep only the examples with these labels, e.g. 0 (one-class training for anomaly detection)",
    )


def load_data(args: argparse.Namespace, source: str | None = None, split: str | None = None):
    from ..data import load_dataset

    binarize = "none" if args.binarize == "dynamic" else args.binarize
    dataset = load_dataset(
        source or args.data,
        split=split or args.split,
        data_dir=args.data_dir,
        download=not args.no_download,
        scale=args.scale,
        binarize=binarize,
        seed=getattr(args, "seed", 0),
        label_column=args.label_column,
    )
    return keep_classes(dataset, getattr(args, "classes", None))


def keep_classes(dataset, classes: str | None):
    """The examples of ``dataset`` whose label is one of the comma-separated ``classes``."""
    if not classes:
        return dataset
    if dataset.labels is None:
        raise AekitError(f"--classes {classes}", f"{dataset.name} has no labels", "drop --classes or add labels")
    wanted = [c.strip() for c in classes.split(",") if c.strip()]
    keep = np.isin(dataset.labels.astype(str), wanted)
    if not keep.any():
        present = ", ".join(map(str, np.unique(dataset.labels)[:20]))
        raise AekitError(f"no example has a label in {wanted}", f"the labels are {present}", "fix --classes")
    return dataset.subset(np.flatnonzero(keep))


DATA_KEYS = (
    "data", "split", "data_dir", "scale", "binarize", "label_column", "classes", "patch_size", "patches", "image_mode",
)  # fmt: skip


def data_description(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key, None) for key in DATA_KEYS}


def save_figure(figure, path: Path) -> Path:
    from ..io import atomic_write_bytes

    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=120)
    return atomic_write_bytes(path, buffer.getvalue())


def save_array(array: np.ndarray, path: Path) -> Path:
    from ..io import atomic_write_bytes

    if path.suffix != ".npy":
        raise AekitError(f"output {path} must end in .npy", "codes are written as a numpy array", "rename it")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return atomic_write_bytes(path, buffer.getvalue())


def check_fresh_output(run_dir: Path, force: bool, resumable: bool = True) -> None:
    """Refuse to write a run into a folder that already holds files (unless --force)."""
    from ..io import ensure_writable_dir

    if run_dir.exists() and not run_dir.is_dir():
        raise AekitError(f"{run_dir} is a file", "a run is written into a folder", "choose another --out")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not force:
        fix = "choose another --out, add --resume to continue a run there, or --force to replace it"
        raise AekitError(
            f"{run_dir} already holds files",
            "a new run would overwrite them",
            fix if resumable else "choose another --out, or add --force to replace it",
        )
    ensure_writable_dir(run_dir)


def print_report(title: str, report: dict[str, float], units: dict[str, str] | None = None) -> None:
    """``title``, then one line per figure: name, value and its unit (``units`` adds or replaces units)."""
    known = {
        "squared_error": "squared error per example",
        "mse": "mean squared error per dimension",
        "nll": "nats per example (deterministic code)",
        "elbo": "nats per example (ELBO, 1 sample)",
        "is_nll": "nats per example (-log p(x), importance sampled)",
        "is_nll_stderr": "nats (standard error of the mean over examples)",
        "importance_samples": "samples of z per example",
        "bleu": "sacreBLEU",
        "chrf": "chrF",
        "nats_per_token": "nats per target token (EOS counted)",
        "nats_per_sentence": "nats per sentence",
        "is_nll_per_sentence": "nats per sentence (-log p(x), importance sampled)",
        "is_nll_per_token": "nats per token (-log p(x), importance sampled)",
        "kl_per_sentence": "nats per sentence, KL(q(z|x) || p(z))",
        "active_units": "code units whose posterior mean varies (> 0.01)",
        "fvu": "fraction of the variance unexplained",
        "l0": "active latents per example",
        "dead": "share of latents never active on these examples",
        "dense": "share of latents active on more than 10 % of them",
        "shrinkage": "mean ||reconstruction|| / ||input|| (1 = no shrinkage)",
    }
    units = {**known, **(units or {})}
    print(title)
    for key, value in report.items():
        shown = f"{value:12d}" if isinstance(value, int) else f"{value:12.4f}"
        print(f"  {key:<18} {shown}   {units.get(key, '')}")


# ------------------------------------------------------------------------------------------------ #
# training


def add_model_use_arguments(parser: argparse.ArgumentParser, split: str = "test") -> None:
    parser.add_argument("run", type=Path, metavar="RUN", help="run or model folder (config.json + model.safetensors)")
    add_data_arguments(parser, default_split=split)
    parser.add_argument("--batch-size", type=integer(1), default=1024, help="examples computed at a time")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")


def load_run_and_data(args: argparse.Namespace):
    from ..io import load_model
    from ..model import shape_fits
    from ..tensors import resolve_device

    model = load_model(args.run, resolve_device(args.device))
    dataset = load_data(args)
    if not shape_fits(dataset.data_shape, model.data_shape):
        raise AekitError(
            f"the data have examples of shape {dataset.data_shape}",
            f"the model in {args.run} was trained on {model.data_shape}",
            "use data like its training data",
        )
    return model, dataset


RUN_FILE = "train.json"  # the run record of aekit train


def complete_error(run_dir: Path, result: Any) -> AekitError:
    """The error of a resumed run that had nothing left to train."""
    longer = {
        "epochs": f"give --epochs above {result.start_epoch}",
        "budget": f"give --max-steps above {result.steps}",
        "patience": "give a larger --patience",
    }
    return AekitError(
        f"{run_dir} is complete: {result.stop_detail}",
        "resuming it with these settings trains nothing, and the run is left as it was",
        f"{longer.get(result.stop_reason, 'change --epochs')} to train it longer",
    )


def run_outcome(result: Any) -> dict[str, Any]:
    """How a run ended, as train.json records it."""
    return {
        "epochs_run": len(result.history),
        "steps": result.steps,
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "stop_detail": result.stop_detail,
    }
