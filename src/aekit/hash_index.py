"""Semantic hashing: binary codes in a table, looked up exactly, by Hamming ball or by Hamming ranking.

A code of K bits is stored packed: bit j sits in 64-bit word j // 64 at position j % 64, so a
64-bit code is one ``uint64`` and an item costs ``8 * ceil(K / 64)`` bytes plus its id.

:class:`SemanticHashIndex` keeps the words sorted by their first word. That sorted array is the
hash table: all items sharing a code form one run, found by binary search in O(log N) without a
Python object per item. A Hamming-ball query flips up to r of the first 64 bits of the query
(sum_{i <= r} C(64, i) probes: 2 081 for r = 2), finds each probe's run and keeps the candidates
whose full distance is at most r; when the probes would outnumber the items it scans instead,
with the same result. k-nearest search ranks every item by XOR + popcount.

``backend="faiss-flat" | "faiss-hash" | "faiss-multihash"`` answers radius and k-nearest queries
with faiss' ``IndexBinaryFlat``, ``IndexBinaryHash`` or ``IndexBinaryMultiHash`` (``pip install
faiss-cpu``); the items stay in the numpy table as well, which serves ids, exact lookup, removal
and saving, so every backend returns the same answers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .errors import AekitError

BACKENDS = ("numpy", "faiss-flat", "faiss-hash", "faiss-multihash")
FORMAT = "aekit-semantic-hash-index"
FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------------ #
# bits


def _as_bits(bits: Any, n_bits: int | None = None, what: str = "codes") -> np.ndarray:
    """(N, K) bool from any 0/1 array, torch tensor included; a single code (K,) becomes (1, K)."""
    if isinstance(bits, torch.Tensor):
        bits = bits.detach().cpu().numpy()
    array = np.asarray(bits)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise AekitError(f"{what} have shape {array.shape}", "codes are (N, bits) arrays of 0/1", "reshape them")
    if n_bits is not None and array.shape[1] != n_bits:
        raise AekitError(
            f"{what} have {array.shape[1]} bits",
            f"this index holds {n_bits}-bit codes",
            f"encode with a {n_bits}-bit model, or build another index",
        )
    if array.dtype != bool:
        if not (np.issubdtype(array.dtype, np.number) and np.isin(array, (0, 1)).all()):
            raise AekitError(f"{what} are not binary", "every entry must be 0 or 1 (or bool)", "threshold them first")
        array = array.astype(bool)
    return array


def pack_bits(bits: Any) -> np.ndarray:
    """(N, K) 0/1 -> (N, ceil(K / 8)) uint8: bit j in byte j // 8 at position j % 8 (faiss' layout)."""
    return np.packbits(_as_bits(bits), axis=1, bitorder="little")


def unpack_bits(packed: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (N, ceil(K / 8)) uint8 -> (N, K) bool."""
    packed = np.asarray(packed, dtype=np.uint8)
    return np.unpackbits(packed, axis=1, count=n_bits, bitorder="little").astype(bool)


def _bytes_to_words(packed: np.ndarray) -> np.ndarray:
    """(N, B) uint8 -> (N, ceil(B / 8)) uint64, zero-padded; little-endian so bit j is word j // 64."""
    n, n_bytes = packed.shape
    padded = np.zeros((n, 8 * math.ceil(n_bytes / 8)), dtype=np.uint8)
    padded[:, :n_bytes] = packed
    return padded.view("<u8").astype(np.uint64, copy=False)


def _words_to_bytes(words: np.ndarray, n_bits: int) -> np.ndarray:
    return np.ascontiguousarray(words.astype("<u8", copy=False)).view(np.uint8)[:, : math.ceil(n_bits / 8)]


def to_words(bits: Any) -> np.ndarray:
    """(N, K) 0/1 -> (N, ceil(K / 64)) uint64 words."""
    return _bytes_to_words(pack_bits(bits))


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits summed over the last axis of a uint64 array (np.bitwise_count from numpy 2.0)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(-1, dtype=np.int64)
    as_bytes = words.view(np.uint8).reshape(*words.shape[:-1], -1)  # numpy 1.x: one table lookup per byte
    return _BYTE_POPCOUNT[as_bytes].sum(-1, dtype=np.int64)


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming_distances(a: Any, b: Any, chunk: int = 256) -> np.ndarray:
    """Hamming distances (Na, Nb) int64 between codes a (Na, K) and b (Nb, K), given as 0/1 bits."""
    a_bits = _as_bits(a, what="first codes")
    b_words = to_words(_as_bits(b, a_bits.shape[1], what="second codes"))
    a_words = to_words(a_bits)
    out = np.empty((len(a_words), len(b_words)), dtype=np.int64)
    for start in range(0, len(a_words), chunk):
        block = a_words[start : start + chunk, None, :] ^ b_words[None, :, :]  # (c, Nb, W)
        out[start : start + chunk] = _popcount(block)
    return out


@lru_cache(maxsize=32)
def flip_masks(n_bits: int, radius: int) -> np.ndarray:
    """Every uint64 with at most ``radius`` of its lowest ``n_bits`` bits set, by popcount (1 + C(n,1) + ...)."""
    masks = [np.zeros(1, dtype=np.uint64)]
    powers = np.left_shift(np.uint64(1), np.arange(n_bits, dtype=np.uint64))
    for r in range(1, radius + 1):
        combos = np.array(list(itertools.combinations(range(n_bits), r)), dtype=np.int64)  # (C(n, r), r)
        masks.append(np.bitwise_or.reduce(powers[combos], axis=1))
    return np.concatenate(masks)


def _ball_size(n_bits: int, radius: int) -> int:
    return sum(math.comb(n_bits, r) for r in range(radius + 1))


# ------------------------------------------------------------------------------------------------ #
# the index


class SemanticHashIndex:
    """Items (int64 ids) keyed by K-bit binary codes, searched by Hamming distance.

    * ``add(codes, ids=None)``: codes (N, K) 0/1; ids default to the next free integers.
    * ``lookup(code)``: ids of every item whose code equals ``code`` exactly.
    * ``radius_search(code, radius)``: (ids, distances) of items within Hamming distance
      ``radius`` (inclusive), nearest first, ties by id.
    * ``search(code, k)``: the k nearest items by Hamming ranking, nearest first, ties by id.
    * ``remove(ids)``, ``codes_of(ids)``, ``to_arrays()`` / ``from_arrays()`` (see
      :func:`aekit.io.save_index`).
    """

    def __init__(self, n_bits: int, backend: str = "numpy", **faiss_options: int) -> None:
        if not 1 <= int(n_bits) <= 4096:
            raise AekitError(f"n_bits={n_bits}", "a code has between 1 and 4096 bits", "pick a size in that range")
        if backend not in BACKENDS:
            raise AekitError(f"unknown backend {backend!r}", f"the choices are {', '.join(BACKENDS)}", "pick one")
        self.n_bits = int(n_bits)
        self.n_words = math.ceil(self.n_bits / 64)
        self.backend = backend
        self._words = np.zeros((0, self.n_words), dtype=np.uint64)  # (N, W), sorted by the first word
        self._ids = np.zeros(0, dtype=np.int64)  # (N,) aligned with _words
        self._faiss = _FaissSearcher(self.n_bits, backend, **faiss_options) if backend != "numpy" else None
        if faiss_options and self._faiss is None:
            raise AekitError("faiss options given to the numpy backend", "only faiss backends take them", "drop them")

    # -- contents ------------------------------------------------------------------------------- #

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        """Every id, in table order (sorted by code)."""
        return self._ids.copy()

    @property
    def nbytes(self) -> int:
        """Bytes held by the numpy table: codes plus ids (a faiss backend holds its own copy too)."""
        return self._words.nbytes + self._ids.nbytes

    def add(self, codes: Any, ids: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Add items with codes (N, K) 0/1 and unique int64 ids (default: next free integers); returns the ids."""
        words = to_words(_as_bits(codes, self.n_bits))
        if ids is None:
            start = int(self._ids.max()) + 1 if len(self._ids) else 0
            ids = np.arange(start, start + len(words), dtype=np.int64)
        ids = np.asarray(ids)
        if ids.ndim != 1 or len(ids) != len(words) or not np.issubdtype(ids.dtype, np.integer):
            raise AekitError(
                f"{ids.shape} ids for {len(words)} codes", "every code needs one integer id", "pass one id per code"
            )
        ids = ids.astype(np.int64)
        if len(np.unique(ids)) != len(ids) or np.isin(ids, self._ids).any():
            repeated = ids[np.isin(ids, self._ids)] if np.isin(ids, self._ids).any() else ids
            raise AekitError(
                f"id {int(repeated[0])} is not unique", "each item has its own id", "remove the old item first"
            )
        order = np.argsort(words[:, 0], kind="stable")
        words, ids = words[order], ids[order]
        at = np.searchsorted(self._words[:, 0], words[:, 0], side="right")  # merge into the sorted table
        self._words = np.insert(self._words, at, words, axis=0)
        self._ids = np.insert(self._ids, at, ids)
        if self._faiss is not None:
            self._faiss.add(_words_to_bytes(words, self.n_bits), ids)
        return ids[np.argsort(order)]

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Remove the items with these ids; an id not in the index is an error. Returns how many."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        missing = ids[~np.isin(ids, self._ids)]
        if len(missing):
            raise AekitError(f"id {int(missing[0])} is not in the index", "there is nothing to remove", "check the ids")
        keep = ~np.isin(self._ids, ids)
        self._words, self._ids = self._words[keep], self._ids[keep]
        if self._faiss is not None:
            self._faiss.reset()
        return int((~keep).sum())

    def codes_of(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The codes (M, K) bool of the items with these ids, in the order given."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        order = np.argsort(self._ids)
        at = np.searchsorted(self._ids, ids, sorter=order)
        found = (at < len(order)) & (self._ids[order[np.minimum(at, len(order) - 1)]] == ids)
        if not found.all():
            raise AekitError(f"id {int(ids[~found][0])} is not in the index", "it has no code", "check the ids")
        return unpack_bits(_words_to_bytes(self._words[order[at]], self.n_bits), self.n_bits)

    # -- queries -------------------------------------------------------------------------------- #

    def lookup(self, code: Any) -> np.ndarray:
        """Ids of every item whose code equals ``code`` (K,) exactly, sorted."""
        query = self._query_words(code)
        keys = self._words[:, 0]
        rows = np.arange(np.searchsorted(keys, query[0], side="left"), np.searchsorted(keys, query[0], side="right"))
        rows = rows[(self._words[rows] == query).all(1)]
        return np.sort(self._ids[rows])

    def radius_search(self, code: Any, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, distances) of every item within Hamming distance ``radius`` of ``code`` (K,), inclusive.

        Sorted by distance, then id. The numpy backend flips up to ``radius`` of the first 64 bits.
        """
        query = self._query_words(code)
        if not 0 <= int(radius) <= self.n_bits:
            raise AekitError(
                f"radius {radius} is outside 0..{self.n_bits}",
                f"a Hamming distance between {self.n_bits}-bit codes lies in that range",
                f"use a radius from 0 to {self.n_bits}",
            )
        radius = int(radius)
        if self._faiss is not None:
            ids, distances = self._faiss.radius_search(_words_to_bytes(query[None], self.n_bits), radius, self)
        else:
            rows = self._ball_rows(query, radius)
            distances = _popcount(self._words[rows] ^ query)
            keep = distances <= radius
            ids, distances = self._ids[rows[keep]], distances[keep]
        order = np.lexsort((ids, distances))
        return ids[order], distances[order]

    def search(self, code: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, distances) of the ``k`` nearest items by Hamming distance, nearest first, ties by id."""
        query = self._query_words(code)
        if int(k) < 1:
            raise AekitError(f"k={k}", "a search returns at least one item", "use k >= 1")
        k = min(int(k), len(self))
        if self._faiss is not None and self._faiss.ranks:
            return self._faiss.search(_words_to_bytes(query[None], self.n_bits), k, self)
        distances = _popcount(self._words ^ query)  # (N,)
        # the k-th smallest distance by counting (distances are small integers), then a short sort
        counts = np.bincount(distances, minlength=self.n_bits + 1)
        threshold = int(np.searchsorted(np.cumsum(counts), k))
        rows = np.flatnonzero(distances <= threshold)
        order = np.lexsort((self._ids[rows], distances[rows]))[:k]
        return self._ids[rows[order]], distances[rows[order]]

    def _query_words(self, code: Any) -> np.ndarray:
        if len(self) == 0:
            raise AekitError("the index is empty", "there is nothing to search", "add items first")
        bits = _as_bits(code, self.n_bits, what="query code")
        if len(bits) != 1:
            raise AekitError(f"{len(bits)} query codes given", "a query is one code (K,)", "query one code at a time")
        return to_words(bits)[0]

    def _ball_rows(self, query: np.ndarray, radius: int) -> np.ndarray:
        """Rows whose first word is within ``radius`` bits of the query's: a superset of the ball."""
        first_bits = min(self.n_bits, 64)
        if _ball_size(first_bits, radius) > max(len(self) // 4, 1):
            return np.arange(len(self))  # more probes than items: scanning is faster and equal
        probes = np.sort(query[0] ^ flip_masks(first_bits, radius))  # (M,)
        keys = self._words[:, 0]
        lo = np.searchsorted(keys, probes, side="left")
        hi = np.searchsorted(keys, probes, side="right")
        lengths = hi - lo
        hit = lengths > 0
        lo, lengths = lo[hit], lengths[hit]
        # the runs [lo, lo + length) as one index array, without a Python loop
        starts = np.repeat(lo - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return starts + np.arange(int(lengths.sum()))

    # -- persistence ---------------------------------------------------------------------------- #

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no objects) that :meth:`from_arrays` rebuilds the index from."""
        return {
            "codes": _words_to_bytes(self._words, self.n_bits),  # (N, ceil(K / 8)) uint8, packed
            "ids": self._ids.copy(),
            "n_bits": np.array(self.n_bits, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], backend: str = "numpy", **faiss_options: int):
        try:
            n_bits = int(arrays["n_bits"])
            codes = np.asarray(arrays["codes"], dtype=np.uint8)
            ids = np.asarray(arrays["ids"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as error:
            raise AekitError("bad index arrays", f"missing or malformed {error}", "rebuild the index") from None
        if codes.ndim != 2 or codes.shape[1] != math.ceil(n_bits / 8) or len(codes) != len(ids):
            raise AekitError(
                f"index arrays of shapes {codes.shape} and {ids.shape} do not fit {n_bits}-bit codes",
                "the file is damaged or from another program",
                "rebuild the index",
            )
        index = cls(n_bits, backend, **faiss_options)
        if len(ids):
            index.add(unpack_bits(codes, n_bits), ids)
        return index


# ------------------------------------------------------------------------------------------------ #
# faiss


def _import_faiss():
    try:
        import faiss
    except ImportError:
        raise AekitError(
            "faiss is not installed", "the faiss backends need faiss-cpu", "pip install 'aekit[faiss]'"
        ) from None
    return faiss


class _FaissSearcher:
    """A faiss binary index over the same items, answering radius and k-nearest queries.

    faiss needs codes of a multiple of 8 bits: the padding bits are 0 for every code, which leaves
    distances unchanged. Its ``range_search`` keeps distances strictly below the radius, so a
    radius r query asks for r + 1. ``faiss-hash`` buckets by the first ``hash_bits`` bits and
    flips up to r of them; ``faiss-multihash`` uses ``tables`` disjoint substrings and flips
    floor(r / tables) bits in each: both exact for radius queries. k-nearest queries use the flat
    storage (multihash) or the numpy table's scan (hash), so they stay exact.
    After a removal the faiss index is rebuilt at the next query.
    """

    def __init__(self, n_bits: int, backend: str, hash_bits: int = 0, tables: int = 0) -> None:
        self.faiss = _import_faiss()
        self.n_bits, self.backend = n_bits, backend
        self.d = 8 * math.ceil(n_bits / 8)
        self.hash_bits = int(hash_bits) or min(n_bits, 32)
        self.tables = int(tables) or max(1, min(4, n_bits // 16))
        if backend == "faiss-hash" and not 1 <= self.hash_bits <= min(n_bits, 63):
            raise AekitError(f"hash_bits={hash_bits}", f"faiss hashes 1..{min(n_bits, 63)} bits", "pick fewer")
        if backend == "faiss-multihash" and not (self.tables >= 1 and self.tables * 8 <= n_bits):
            raise AekitError(f"tables={tables}", "each table needs at least 8 bits of the code", "use fewer tables")
        self.index = None
        # IndexBinaryHash.search only sees the probed buckets: the numpy table ranks for it
        self.ranks = backend != "faiss-hash"

    def _build(self):
        faiss = self.faiss
        if self.backend == "faiss-flat":
            return faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(self.d))
        if self.backend == "faiss-hash":
            return faiss.IndexBinaryHash(self.d, self.hash_bits)
        return faiss.IndexBinaryIDMap(faiss.IndexBinaryMultiHash(self.d, self.tables, self.n_bits // self.tables))

    def add(self, packed: np.ndarray, ids: np.ndarray) -> None:
        if self.index is None:
            self.index = self._build()
        self.index.add_with_ids(np.ascontiguousarray(self._pad(packed)), np.ascontiguousarray(ids))

    def reset(self) -> None:
        self.index = None

    def _pad(self, packed: np.ndarray) -> np.ndarray:
        return packed if packed.shape[1] * 8 == self.d else np.pad(packed, ((0, 0), (0, self.d // 8 - packed.shape[1])))

    def _ensure(self, table: SemanticHashIndex) -> Any:
        if self.index is None:
            arrays = table.to_arrays()
            self.add(arrays["codes"], arrays["ids"])
        return self.index

    def _set_flips(self, index: Any, radius: int) -> None:
        inner = self.faiss.downcast_IndexBinary(index.index) if self.backend == "faiss-multihash" else index
        if self.backend == "faiss-hash":
            inner.nflip = min(radius, self.hash_bits)
        elif self.backend == "faiss-multihash":
            inner.nflip = min(radius // self.tables, inner.b)

    def radius_search(self, packed: np.ndarray, radius: int, table: SemanticHashIndex):
        index = self._ensure(table)
        self._set_flips(index, radius)
        _, distances, ids = index.range_search(self._pad(packed), radius + 1)  # faiss keeps d < radius
        return ids.astype(np.int64), distances.astype(np.int64)

    def search(self, packed: np.ndarray, k: int, table: SemanticHashIndex):
        index = self._ensure(table)
        searcher = index
        if self.backend == "faiss-multihash":
            # IndexBinaryMultiHash.search only sees the probed buckets; its storage is the flat index
            searcher = self.faiss.downcast_IndexBinary(index.index).storage
        # ask for more than k so that every item tied with the k-th is seen, then break ties by id
        fetch = min(len(table), 2 * k + 64)
        while True:
            distances, rows = searcher.search(self._pad(packed), fetch)
            distances, rows = distances[0].astype(np.int64), rows[0]
            if fetch == len(table) or distances[-1] > distances[k - 1]:
                break
            fetch = min(len(table), 4 * fetch)
        ids = rows if searcher is index else faiss_vector_ids(self.faiss, index)[rows]
        order = np.lexsort((ids, distances))[:k]
        return ids[order], distances[order]


def faiss_vector_ids(faiss: Any, index: Any) -> np.ndarray:
    """The user ids of an ``IndexBinaryIDMap``, by storage position."""
    return faiss.vector_to_array(index.id_map).astype(np.int64)
