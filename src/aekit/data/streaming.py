"""Datasets bigger than memory: rows of .npy files read in shuffled chunks with plain file reads.

A memory map would do the reading, but every page it touches stays resident in the process until
the kernel needs it back, so the process grows towards the file's size. Reading chunks into our own
buffer keeps memory bounded by the chunk size whatever the dataset's size.

Shuffling is two-level, as for any streamed dataset: the order of chunks is random, and so is the
order of rows inside each chunk.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AekitError


@dataclass(frozen=True)
class _Shard:
    path: Path
    offset: int  # bytes before the first row
    rows: int


class ArrayFile:
    """Rows of one ``.npy`` file, a ``numpy.memmap`` (or a slice of its rows), or a folder of ``.npy`` shards.

    ``x`` shapes: every shard is (rows, *example_shape) with the same example shape and dtype.
    ``scale``: ``auto`` maps 8/16-bit integers to [0, 1] (floats unchanged), ``none`` keeps values.
    """

    def __init__(self, source: str | Path | np.memmap, scale: str = "auto") -> None:
        if scale not in ("auto", "none"):
            raise AekitError(f"unknown scale {scale!r} for streamed data", "choices: auto, none", "pick one")
        self.scale = scale
        if isinstance(source, np.memmap):
            self._from_memmap(source)
            return
        path = Path(source)
        if path.is_dir():
            paths = sorted(path.glob("*.npy"))
            if not paths:
                raise AekitError(f"no .npy shards in {path}", "a streamed folder holds .npy files", "check it")
        elif path.suffix == ".npy" and path.is_file():
            paths = [path]
        else:
            raise AekitError(
                f"cannot stream {path}",
                "streaming reads a .npy file or a folder of them",
                "save the data with numpy.save",
            )
        shards, shapes, dtypes = [], set(), set()
        for path in paths:
            array = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
            if array.ndim < 2 or not array.flags.c_contiguous:
                raise AekitError(
                    f"{path} has shape {array.shape}",
                    "streaming needs (N, ...) C-ordered rows",
                    "save it with numpy.save",
                )
            shards.append(_Shard(path, array.offset, len(array)))
            shapes.add(array.shape[1:])
            dtypes.add(array.dtype)
            del array
        if len(shapes) > 1 or len(dtypes) > 1:
            raise AekitError("the shards differ in example shape or dtype", f"{shapes} / {dtypes}", "make them equal")
        self._set_shards(shards, shapes.pop(), dtypes.pop())

    def _set_shards(self, shards: list[_Shard], example_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shards = shards
        self.example_shape: tuple[int, ...] = tuple(example_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = self.dtype.itemsize * math.prod(self.example_shape)
        self._starts = np.cumsum([0] + [s.rows for s in shards])

    def _from_memmap(self, array: np.memmap) -> None:
        """The rows of ``array`` where they lie in its file: a slice of a memory map (``x[a:b]``)
        starts and ends where the slice does, not where the file does."""
        if array.filename is None or array.ndim < 2 or not array.flags.c_contiguous:
            raise AekitError(
                f"the memmap of shape {array.shape} has no file, fewer than 2 axes or rows that are not contiguous",
                "streaming reads (N, ...) C-ordered rows from the file",
                "open it with np.load(path, mmap_mode='r') and pass it, or a slice of its rows",
            )
        mapped = array
        while isinstance(mapped.base, np.memmap):  # the memmap numpy opened, whose offset is in the file
            mapped = mapped.base
        # bytes from the file's start to this array's first row
        offset = mapped.offset + array.__array_interface__["data"][0] - mapped.__array_interface__["data"][0]
        self._set_shards([_Shard(Path(array.filename), int(offset), len(array))], array.shape[1:], array.dtype)

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.example_shape)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (within one shard or across shards) as float32, scaled."""
        return self.to_float(self.read_raw(start, stop))

    def read_raw(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` in the file's own dtype (uint8 images stay 1 byte per pixel)."""
        parts = []
        while start < stop:
            shard_index = int(np.searchsorted(self._starts, start, side="right") - 1)
            shard = self.shards[shard_index]
            local = start - int(self._starts[shard_index])
            count = min(stop - start, shard.rows - local)
            with open(shard.path, "rb") as handle:
                handle.seek(shard.offset + local * self.row_bytes)
                raw = np.fromfile(handle, dtype=self.dtype, count=count * math.prod(self.example_shape))
            parts.append(raw.reshape(count, *self.example_shape))
            start += count
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Arbitrary rows (sorted for sequential reads) as float32 — for small held-out sets."""
        return (
            np.concatenate([self.read(int(r), int(r) + 1) for r in np.sort(rows)])
            if len(rows)
            else np.empty((0, *self.example_shape), np.float32)
        )

    def shuffled_chunks(self, chunk_rows: int, rng: np.random.Generator) -> Iterator[tuple[int, int]]:
        """(start, stop) row ranges of ``chunk_rows``-row chunks, in a random order."""
        for index in rng.permutation(math.ceil(len(self) / chunk_rows)):
            start = int(index) * chunk_rows
            yield start, min(start + chunk_rows, len(self))

    def to_float(self, raw: np.ndarray) -> np.ndarray:
        """float32 rows, scaled as configured (a float32 array itself, not a copy); NaN/inf in float
        files are an error."""
        x = raw.astype(np.float32, copy=raw.dtype != np.float32 or not raw.flags.writeable)  # read rows are our own
        if self.scale == "auto" and raw.dtype in (np.uint8, np.uint16):
            x /= float(np.iinfo(raw.dtype).max)
        if raw.dtype.kind == "f" and not np.isfinite(x).all():
            raise AekitError(
                "the streamed data contain NaN or infinite values", "they cannot be trained on", "clean the file"
            )
        return x
