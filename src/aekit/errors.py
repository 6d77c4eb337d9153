"""One exception type for every mistake a user can make.

Messages are one line and say what went wrong, why, and how to fix it. The CLI turns an
``AekitError`` into that line on stderr and exit code 2; the Python API lets it propagate.
"""

from __future__ import annotations


class AekitError(ValueError):
    """A bad input, configuration or file: the message says what, why and how to fix it."""

    def __init__(self, what: str, why: str = "", fix: str = "") -> None:
        parts = [what.rstrip(".")]
        if why:
            parts.append(why.rstrip("."))
        message = ": ".join(parts)
        if fix:
            message += f"; {fix.rstrip('.')}"
        super().__init__(message)


def check_options(part: str, checks: list[tuple[bool, str]]) -> None:
    """Raise a one-line error for the first failed ``(condition, message)`` among a part's options."""
    for ok, message in checks:
        if not ok:
            raise AekitError(f"bad {part} option: {message}", "", "fix the value")
