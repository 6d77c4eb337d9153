"""Small tensor helpers shared by training, evaluation, the estimators and the CLI."""

from __future__ import annotations

import contextlib
import ctypes
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import AekitError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an unavailable device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AekitError(f"unknown device {name!r}", "expected auto, cpu, cuda, cuda:N or mps", "fix it") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AekitError("device cuda was asked for", "no CUDA GPU is available here", "use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise AekitError("device mps was asked for", "MPS is not available here", "use --device cpu or auto")
    return device


def is_sparse(x: Any) -> bool:
    """True for a scipy sparse matrix (or :class:`SparseRows`)."""
    return isinstance(x, SparseRows) or (hasattr(x, "tocsr") and hasattr(x, "nnz"))


class SparseRows:
    """Rows of a scipy sparse matrix (N, D) that index like a tensor and densify one batch at a time.

    Indexing (a slice, an index tensor or array) gives another ``SparseRows``; :func:`dense_batch`
    turns one into a float32 (B, D) tensor on the device given by ``to``. Training on TF-IDF
    vectors of a large vocabulary then never holds more than one dense batch.
    """

    def __init__(self, matrix: Any, device: torch.device | str = "cpu") -> None:
        self.matrix = matrix.tocsr().astype(np.float32)
        self.device = torch.device(device)

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.matrix.shape)

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def __getitem__(self, index: Any) -> SparseRows:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return SparseRows(self.matrix[index], self.device)

    def index_select(self, dim: int, index: torch.Tensor) -> SparseRows:
        """Rows ``index`` (``dim`` 0 only), as ``torch.Tensor.index_select`` gathers them."""
        if dim != 0:
            raise AekitError(f"sparse rows select along dim 0, not {dim}", "they are rows", "use dim=0")
        return self[index]

    def to(self, device: torch.device | str) -> SparseRows:
        return SparseRows(self.matrix, device)

    def dense(self) -> torch.Tensor:
        return torch.from_numpy(self.matrix.toarray()).to(self.device)


def dense_batch(x: torch.Tensor | SparseRows) -> torch.Tensor:
    """A batch as a dense tensor: tensors pass through, :class:`SparseRows` are densified."""
    return x.dense() if isinstance(x, SparseRows) else x


def as_tensor(x: Any, what: str = "data", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A ``dtype`` (float32) tensor from an array or tensor, checked: at least one example, no NaN/inf.

    A scipy sparse matrix becomes :class:`SparseRows` (kept sparse, densified batch by batch).
    """
    if is_sparse(x):
        rows = x if isinstance(x, SparseRows) else SparseRows(x)
        if rows.matrix.shape[0] == 0:
            raise AekitError(f"{what} has shape {tuple(rows.shape)}", "it needs at least one example", "check it")
        if not np.isfinite(rows.matrix.data).all():
            raise AekitError(f"{what} contains NaN or infinite values", "they cannot be used", "clean them")
        return rows  # type: ignore[return-value]
    raw = x if isinstance(x, torch.Tensor) else np.asarray(x)
    if raw.is_complex() if isinstance(raw, torch.Tensor) else np.iscomplexobj(raw):
        raise AekitError(
            f"{what} holds complex numbers",
            "casting them to real values would drop their imaginary parts",
            "pass the real and imaginary parts as separate features",
        )
    with warnings.catch_warnings():  # a read-only array (a memory-mapped .npy) is only ever read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.as_tensor(raw, dtype=dtype)
    if tensor.ndim < 2 or len(tensor) == 0:
        raise AekitError(f"{what} has shape {tuple(tensor.shape)}", "it needs at least one example", "check it")
    if not _all_finite(tensor):
        raise AekitError(f"{what} contains NaN or infinite values", "they cannot be used", "clean them")
    return tensor


def _all_finite(tensor: torch.Tensor, elements_per_chunk: int = 1 << 22) -> bool:
    """No NaN/inf in ``tensor``, checked a block of rows at a time: ``torch.isfinite`` of the whole
    tensor would allocate temporaries larger than the data (|x| as float, then a mask)."""
    rows = max(1, elements_per_chunk // max(1, tensor[0].numel()))
    return all(bool(torch.isfinite(tensor[i : i + rows]).all()) for i in range(0, len(tensor), rows))


@torch.no_grad()
def apply_batched(
    function: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``function`` over ``x`` (a tensor or :class:`SparseRows`) in batches on ``device``; results
    concatenated on the CPU."""
    outputs = [function(dense_batch(x[i : i + batch_size].to(device))).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outputs)


def to_channels_last(module: torch.nn.Module) -> bool:
    """Store ``module``'s convolution weights in the NHWC layout (in place) if it has any; True if it
    did. oneDNN's CPU convolutions (and cuDNN's with tensor cores) run faster on NHWC, and the
    network's activations then stay NHWC; a module without 4-D weights is left alone."""
    if not any(p.ndim == 4 for p in module.parameters()):
        return False
    module.to(memory_format=torch.channels_last)
    return True


# ------------------------------------------------------------------------------------------------ #
# denormal floats: x86 CPUs take a microcode assist on every operation with a denormal operand


def flushing_denormals() -> bool:
    """True if this thread's CPU flushes denormal floats (|x| < 1.18e-38 in float32) to zero."""
    return float(torch.tensor([1e-39]) * 2.0) == 0.0  # one element: computed on this thread


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc malloc.h)
_KEPT_BYTES = 1 << 30
_memory_kept: list[bool] = []


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed blocks of up to 1 GiB for reuse, for the rest of the
    process, instead of handing them back to the system; returns whether it is on. Once per
    process; nothing is changed when glibc is not the C library or when the user set its own
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``.

    Why training on a CPU needs it: a step allocates and frees the same temporaries every time
    (activations, gradients, megabytes each). Blocks above glibc's threshold are mapped afresh and
    unmapped on free, so every step touches new pages, and on a virtual machine the page faults
    cost more than the arithmetic: a sparse-dictionary step (1024 x 128 -> 512 latents) takes
    33-35 ms with the allocator as it starts and 18-21 ms with freed memory kept, the same ops on
    the same numbers (``bench/sae_kernels.py``). The price is that the process keeps its peak memory until it ends."""
    if _memory_kept:
        return _memory_kept[0]
    kept = False
    if not any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        try:
            libc = ctypes.CDLL("libc.so.6")
            kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEPT_BYTES)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, _KEPT_BYTES)
            )
        except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): its own allocator stays
            kept = False
    _memory_kept.append(kept)
    return kept


@contextlib.contextmanager
def denormals_flushed(enabled: bool = True) -> Iterator[bool]:
    """Within the block, denormal floats are flushed to zero (FTZ and DAZ) on the calling thread and
    on the OpenMP threads torch computes with; the previous mode comes back afterwards. Yields
    whether flushing is on.

    Why training needs it: Adam's first moment of a weight whose gradient stops (an input pixel
    that is always 0 in the rest of the data) shrinks by beta1 = 0.9 per step into the denormal
    range and then stays at the smallest denormal, 1.4e-45, for good. On an Intel Xeon one fused
    Adam step over 1.08 M weights takes 3.9 ms with a third of them there, 0.70 ms with flushing,
    and a Fashion-MNIST MLP epoch becomes up to 2.7x longer (``bench/denormals.py``). The values
    flushed are below 1.2e-38, far under what a float32 weight of order 1e-2 can register: in
    those runs the trained weights are the same bit for bit. Where torch cannot flush (no SSE3
    DAZ, or no OpenMP runtime reachable for the worker threads) the block does what it can and
    runs anyway.
    """
    before = flushing_denormals()
    if not enabled or before:
        yield before
        return
    _set_flush_denormal_on_all_threads(True)
    try:
        yield flushing_denormals()
    finally:
        _set_flush_denormal_on_all_threads(False)


def _set_flush_denormal_on_all_threads(on: bool) -> None:
    """``torch.set_flush_denormal`` sets the calling thread's MXCSR only; OpenMP's worker threads,
    created by torch's first parallel region, keep theirs. ``GOMP_parallel`` runs a function once
    on every thread of the team torch's parallel regions use, so each sets its own."""
    torch.set_flush_denormal(on)
    threads = torch.get_num_threads()
    parallel = _openmp_parallel() if threads > 1 else None
    if parallel is None:
        return
    callback = _TEAM_FUNCTION(lambda _data: torch.set_flush_denormal(on))
    parallel(callback, None, threads, 0)


_TEAM_FUNCTION = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _openmp_parallel() -> Any:
    """``GOMP_parallel`` of the OpenMP runtime torch has loaded (its own copy first), or None."""
    folder = Path(torch.__file__).parent / "lib"
    candidates = [str(p) for pattern in ("libgomp*", "libiomp5*", "libomp*") for p in sorted(folder.glob(pattern))]
    no_load = getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_LAZY", 0)
    for path in [*candidates, None]:  # None: the process's global symbols
        try:
            library = ctypes.CDLL(path, mode=no_load) if path is not None else ctypes.CDLL(None)
            parallel = library.GOMP_parallel
        except (OSError, AttributeError):
            continue
        parallel.argtypes = [_TEAM_FUNCTION, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        parallel.restype = None
        return parallel
    return None
