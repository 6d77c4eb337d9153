"""The ``aekit`` command line: every job over the public API. The only code that touches user files.

Run ``aekit --help`` for the commands and ``aekit COMMAND --help`` for each one's options and examples.
A bad input prints one line (what, why, how to fix) and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..errors import AekitError
from . import core, deploy, generation, hashing, representation, restoration, sae, training  # noqa: F401  (registers)
from .base import _COMMANDS, EXIT_BAD_INPUT, HelpFormatter, check_outputs, integer

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other aekit error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aekit",
        description="Autoencoders of every classic family, trained and used from the shell.",
        epilog="Start with `aekit demo`; `aekit COMMAND --help` shows each command's options and examples.",
    )
    parser.add_argument(
        "--threads", type=integer(1), metavar="N", help="CPU threads for torch (default: torch's own choice)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parser.commands = {}  # type: ignore[attr-defined]
    for name, (_, add_arguments, summary, examples) in _COMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=examples or None,
            formatter_class=HelpFormatter,
        )
        add_arguments(sub)
        parser.commands[name] = sub  # type: ignore[attr-defined]
    return parser


def explicit_options(argv: Sequence[str] | None) -> set[str]:
    """The destinations of the options the user wrote on the command line (not defaults)."""
    parser = build_parser()
    for sub in parser.commands.values():  # type: ignore[attr-defined]
        for action in sub._actions:
            action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        args.explicit = explicit_options(argv)
        check_outputs(parser.commands[args.command], args)  # type: ignore[attr-defined]
        status = _COMMANDS[args.command][0](args)
        sys.stdout.flush()  # inside the try: a reader that left early surfaces here, not at exit
        return status
    except BrokenPipeError:
        # the reader of stdout stopped early (`aekit hash query ... | head`): what it read is complete
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 0
    except AekitError as error:
        print(f"aekit {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"aekit {args.command}: interrupted; files already written are complete", file=sys.stderr)
        return 130
