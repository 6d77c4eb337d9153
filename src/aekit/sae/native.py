"""The loops of a listed dictionary step, compiled: one pass over the entries per product.

torch lists, gathers and scatters a sparse code's entries with general operators (``nonzero``,
embedding bags, sampled matrix products, index sorts) that cost about 0.3 us per entry on one CPU
thread; the same products as three plain loops over the entries (``listed.c`` beside this file)
cost a fraction of that, and need no sort by latent. The source is compiled on first use with
the system's C compiler (``$CC``, else the one Python was built with, else ``cc``) into the
cache (``$AEKIT_CACHE_DIR/kernels`` or ``~/.cache/aekit/kernels``); without a compiler, or with
``AEKIT_NATIVE=0``, :func:`available` is False and :mod:`aekit.sae.kernels` uses torch's
operators instead (the same values to rounding; tests check both).

An entry is a flat position ``e = r * width + c`` (int64) of a (rows, width) code. Every table is
float32, C-contiguous, on the CPU; the functions check that and raise ``ValueError`` otherwise, so
callers test :func:`usable` first.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("listed.c")
#: why the compiled loops are not in use (None while they are, or before the first use)
reason: str | None = None
_library: ctypes.CDLL | None = None
_tried = False


def _compiler() -> list[str]:
    command = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(command)


# gnu99 for the vector types; fp-contract so that a * b + c is one fused multiply-add
FLAGS = ["-O3", "-fPIC", "-shared", "-std=gnu99", "-ffp-contract=fast"]


def _build(target: Path) -> None:
    """Compile the source into the shared library ``target``, written whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        subprocess.run(
            [*_compiler(), *FLAGS, "-o", temporary, str(SOURCE)], check=True, capture_output=True, timeout=120
        )
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _load() -> ctypes.CDLL | None:
    global reason
    if os.environ.get("AEKIT_NATIVE", "1") == "0":
        reason = "AEKIT_NATIVE=0"
        return None
    from aekit.data.idx import cache_dir

    # a build is reused only for the same source, compiler, flags and machine
    recipe = " ".join([*_compiler(), *FLAGS, platform.machine()])
    key = hashlib.sha256(SOURCE.read_bytes() + recipe.encode())
    target = cache_dir() / "kernels" / f"listed-{key.hexdigest()[:16]}.so"
    try:
        if not target.exists():
            _build(target)
        library = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", b"") or b""
        reason = f"{type(error).__name__}: {error} {detail.decode(errors='replace')[:200]}".strip()
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    library.aekit_columns_into_rows.argtypes = [pointer, pointer, size, size, pointer, size, pointer, size]
    library.aekit_columns_into_rows.restype = size
    # entries, weights, n, width, rows, columns, dim, dots, out, sums, row count
    library.aekit_rows_with_columns.argtypes = [*[pointer] * 2, size, size, *[pointer] * 2, size, *[pointer] * 3, size]
    library.aekit_rows_with_columns.restype = size
    library.aekit_list_nonzero.argtypes = [pointer, size, size, pointer]
    library.aekit_list_nonzero.restype = size
    reason = None
    return library


def library() -> ctypes.CDLL | None:
    """The compiled loops (built on the first call), or None (see ``reason``)."""
    global _library, _tried
    if not _tried:
        _tried = True
        _library = _load()
    return _library


def available() -> bool:
    """Whether the compiled loops can run here."""
    return library() is not None


def usable(*tables: torch.Tensor) -> bool:
    """Whether the compiled loops are available and every table is a contiguous float32 CPU
    tensor (entries are converted by the functions themselves)."""
    return available() and all(
        t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in tables
    )


def _check(*tables: torch.Tensor) -> None:
    if not usable(*tables):
        raise ValueError("the compiled loops need contiguous float32 CPU tensors (see aekit.sae.native.usable)")


def _entries(entries: torch.Tensor) -> torch.Tensor:
    return entries.to(device="cpu", dtype=torch.int64).contiguous()


def _inside(status: int, rows: int | None, width: int) -> None:
    """Raise the loops' report of an entry outside the code (they stop there, writing nothing
    outside their tables)."""
    if status < 0:
        shape = f"({rows}, {width})" if rows is not None else f"(rows, {width})"
        raise IndexError(
            f"a listed entry is outside the {shape} code: entries are flat positions r * width + c, "
            "0 <= c < width, 0 <= r < rows; list them from a code of this shape"
        )


def columns_into_rows(
    entries: torch.Tensor, weights: torch.Tensor, width: int, table: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """out[r] += weights[i] * table[c] for each entry i = r * width + c; entries and weights (n,),
    table (width, D), out (rows, D), changed in place and returned. The decoder's product z W^T
    and the gradient of an encoder's input."""
    _check(weights, table, out)
    entries = _entries(entries)
    status = library().aekit_columns_into_rows(
        entries.data_ptr(), weights.data_ptr(), len(entries), width, table.data_ptr(), table.shape[1], out.data_ptr(),
        len(out),
    )  # fmt: skip
    _inside(status, len(out), width)
    return out


def rows_with_columns(
    entries: torch.Tensor,
    width: int,
    rows: torch.Tensor | None,
    columns: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    sums: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """One pass over the entries i = r * width + c (entries (n,)) of a list grouped by row, rows
    (B, D) (None when only sums are wanted): returns dots (n,), dots[i] = rows[r] . columns[c],
    when columns (width, D) is given; adds weights[i] * rows[r] into out[c] when out (width, D) is
    given, and weights[i] into sums[c] when sums (width,) is given (both changed in place; weights
    (n,) needed for either). The decoder's backward (the code values' gradient and the
    dictionary's, at once), and the weight and bias gradients of the encoder's listed values."""
    _check(*[t for t in (rows, columns, weights, out, sums) if t is not None])
    if (out is not None or sums is not None) and weights is None:
        raise ValueError("rows_with_columns needs weights to add into out or sums")
    if rows is None and (out is not None or columns is not None):
        raise ValueError("rows_with_columns needs rows for dots or out")
    entries = _entries(entries)
    dots = None if columns is None else rows.new_empty(len(entries))
    dim = 0 if rows is None else rows.shape[1]
    pointers = [None if t is None else t.data_ptr() for t in (weights, columns, dots, out, sums)]
    weights_pointer, columns_pointer, *outputs = pointers
    count = 2**62 if rows is None else len(rows)  # sums alone read no row
    status = library().aekit_rows_with_columns(
        entries.data_ptr(), weights_pointer, len(entries), width, None if rows is None else rows.data_ptr(),
        columns_pointer, dim, *outputs, count,
    )  # fmt: skip
    _inside(status, None if rows is None else count, width)
    return dots


def list_nonzero(values: torch.Tensor, limit: int) -> torch.Tensor | None:
    """The flat positions (n,), ascending, int64, of the entries of a non-negative float32 tensor
    that are not +0.0, or None when there are more than ``limit``: the listing stops there."""
    _check(values)
    limit = max(int(limit), 0)
    out = torch.empty(limit + 1024, dtype=torch.int64)
    count = library().aekit_list_nonzero(values.data_ptr(), values.numel(), limit, out.data_ptr())
    return None if count < 0 else out[:count]
