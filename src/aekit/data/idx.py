"""MNIST and Fashion-MNIST from idx files: local folders, a download cache, or the package itself.

Files are looked for, in order, in ``data_dir/<dataset>/``, ``$AEKIT_DATA_DIR/<dataset>/`` and the
download cache (``$AEKIT_CACHE_DIR`` or ``~/.cache/aekit``), gzipped or not. Every file is checked
before use: the sha256 of its decompressed bytes against the published content (for the MNIST
training images, whose decompressed hash is not published, the sha256 of the canonical ``.gz``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import AekitError


@dataclass(frozen=True)
class IdxFile:
    filename: str  # without .gz
    raw_sha256: str | None  # sha256 of the decompressed bytes
    gz_sha256: str | None = None  # sha256 of the canonical .gz, when the raw one is not published


# Decompressed-content hashes: Fashion-MNIST from zalandoresearch/fashion-mnist, MNIST test set and
# training labels from LeCun's files; the MNIST training images by the canonical .gz hash.
DATASETS: dict[str, dict[str, IdxFile]] = {
    "mnist": {
        "train-images": IdxFile(
            "train-images-idx3-ubyte", None, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
        ),
        "train-labels": IdxFile(
            "train-labels-idx1-ubyte",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        "test-images": IdxFile(
            "t10k-images-idx3-ubyte",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        "test-labels": IdxFile(
            "t10k-labels-idx1-ubyte",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    },
    "fashion-mnist": {
        "train-images": IdxFile(
            "train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        ),
        "train-labels": IdxFile(
            "train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        ),
        "test-images": IdxFile(
            "t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        ),
        "test-labels": IdxFile(
            "t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        ),
    },
}

MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


def cache_dir() -> Path:
    return Path(os.environ.get("AEKIT_CACHE_DIR", Path.home() / ".cache" / "aekit"))


def search_dirs(dataset: str, data_dir: str | Path | None) -> list[Path]:
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get("AEKIT_DATA_DIR"):
        roots.append(Path(os.environ["AEKIT_DATA_DIR"]))
    roots.append(cache_dir())
    return [root / dataset for root in roots]


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Decode an idx file of unsigned bytes (magic 0x0000080N, N dimensions) into an array."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise AekitError(f"{source} is not an idx file of unsigned bytes", "its magic number is wrong", "check it")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != header + int(np.prod(dims)):
        raise AekitError(f"{source} is truncated", f"header says {dims}, size is {len(raw)} bytes", "download again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _verified(packed: bytes, gzipped: bool, spec: IdxFile, source: str) -> bytes:
    """The decompressed bytes of a file, after checking them against the published checksum."""
    try:
        raw = gzip.decompress(packed) if gzipped else packed
    except (OSError, EOFError) as error:
        raise AekitError(f"{source} is not a readable gzip file", str(error), "delete it and download again") from None
    if spec.raw_sha256 is not None:
        ok = hashlib.sha256(raw).hexdigest() == spec.raw_sha256
    else:
        ok = gzipped and hashlib.sha256(packed).hexdigest() == spec.gz_sha256
    if not ok:
        raise AekitError(
            f"{source} fails its checksum",
            "its content differs from the published file (damaged or another file)",
            "delete it and download again, or point --data-dir at an intact copy",
        )
    return raw


def _download(dataset: str, spec: IdxFile) -> bytes:
    from ..files import atomic_write_bytes

    errors = []
    for mirror in MIRRORS[dataset]:
        url = f"{mirror}{spec.filename}.gz"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                packed = response.read()
            raw = _verified(packed, True, spec, url)
        except (urllib.error.URLError, OSError) as error:
            errors.append(f"{url}: {getattr(error, 'reason', error)}")
            continue
        except AekitError as error:
            errors.append(str(error))
            continue
        atomic_write_bytes(cache_dir() / dataset / f"{spec.filename}.gz", packed)
        return raw
    raise AekitError(
        f"{dataset} file {spec.filename} is not on this machine and could not be downloaded",
        "; ".join(errors) or "no mirror answered",
        f"go online, or pass --data-dir (or set AEKIT_DATA_DIR) to a folder holding {dataset}/{spec.filename}.gz",
    )


def load_idx(dataset: str, part: str, data_dir: str | Path | None = None, download: bool = True) -> np.ndarray:
    """One verified idx array, e.g. ``load_idx("mnist", "test-images")`` -> (10000, 28, 28) uint8."""
    if dataset not in DATASETS:
        raise AekitError(f"unknown dataset {dataset!r}", f"the idx datasets are {', '.join(DATASETS)}", "pick one")
    spec = DATASETS[dataset][part]
    tried = []
    for folder in search_dirs(dataset, data_dir):
        for name in (f"{spec.filename}.gz", spec.filename):
            path = folder / name
            tried.append(str(folder))
            if path.is_file():
                return parse_idx(_verified(path.read_bytes(), name.endswith(".gz"), spec, str(path)), str(path))
    if not download:
        raise AekitError(
            f"{dataset} file {spec.filename} not found",
            f"looked in {', '.join(dict.fromkeys(tried))}",
            "pass --data-dir (or set AEKIT_DATA_DIR) to a folder that holds it, or allow downloading",
        )
    return parse_idx(_download(dataset, spec), f"downloaded {spec.filename}")


def load_embedded() -> tuple[np.ndarray, np.ndarray]:
    """The Fashion-MNIST test set shipped inside the package (MIT licence): (10000, 28, 28), (10000,)."""
    folder = resources.files("aekit") / "data" / "embedded"
    arrays = []
    for part in ("test-images", "test-labels"):
        spec = DATASETS["fashion-mnist"][part]
        raw = gzip.decompress((folder / f"{spec.filename}.gz").read_bytes())
        if hashlib.sha256(raw).hexdigest() != spec.raw_sha256:
            raise AekitError("the embedded dataset is damaged", "its checksum differs", "reinstall aekit")
        arrays.append(parse_idx(raw, f"embedded {spec.filename}"))
    return arrays[0], arrays[1]
