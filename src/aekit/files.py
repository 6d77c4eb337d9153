"""Files without pickle, written so that a crash never leaves a half-written one behind.

JSON for configuration and records, safetensors for tensors (with JSON metadata in the header),
``.npz`` for plain arrays plus JSON metadata. Every file is written to a temporary name in the same
folder and renamed over the target; the temporary names (``.NAME.XXXX.tmp``) of a write that was
killed are removed by :func:`remove_stale_temporaries`. New files get the permissions of the
process umask (0644 under the usual umask 022), as files written with ``open`` would.

This module knows nothing of models: data loaders, persistence and the CLI all build on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .errors import AekitError

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; set it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content appears at ``path`` only when the block ends without an
    error (a temporary file beside it, fsynced, then an atomic rename); nothing is left otherwise."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a file written with open() gets 0666 - umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    with atomic_file(path) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path, what: str = "file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise AekitError(f"{what} {path} does not exist", "nothing to read", "check the path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AekitError(f"{what} {path} is not valid JSON", str(error), "restore or regenerate the file") from None


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".aekit-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise AekitError(
            f"cannot write to {path}", error.strerror or str(error), "choose a folder you can write to"
        ) from None
    return path


def write_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Tensors plus JSON-able metadata (stored as JSON strings in the safetensors header)."""
    plain = {key: tensor.detach().to("cpu").contiguous() for key, tensor in tensors.items()}
    header = {key: json.dumps(value) for key, value in metadata.items()}
    return atomic_write_bytes(path, save_safetensors_bytes(plain, metadata=header))


def read_safetensors(path: str | Path, what: str = "weights file") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Inverse of :func:`write_safetensors`; a damaged or truncated file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise AekitError(f"{what} {path} does not exist", "nothing to load", "check the path")
    data = path.read_bytes()
    try:
        tensors = load_safetensors_bytes(data)
        header_size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_size])
        metadata = {key: json.loads(value) for key, value in (header.get("__metadata__") or {}).items()}
    except (SafetensorError, ValueError, json.JSONDecodeError, OverflowError) as error:
        raise AekitError(
            f"{what} {path} is damaged or truncated",
            f"safetensors cannot read it ({error})",
            "restore it from a copy or train again",
        ) from None
    return tensors, metadata


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files (``.NAME.XXXX.tmp``) that an interrupted atomic write left in
    ``folder``; returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_npz(path: str | Path, arrays: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Plain arrays plus JSON metadata in one ``.npz`` (stored as the string array ``__meta__``)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    plain = {key: np.asarray(value) for key, value in arrays.items()}
    if any(value.dtype == object for value in plain.values()):
        raise AekitError("an array holds Python objects", "they would need pickle", "store numbers or strings")
    np.savez(buffer, __meta__=np.array(json.dumps(metadata)), **plain)
    return atomic_write_bytes(path, buffer.getvalue())


def read_npz(path: str | Path, what: str = "file") -> tuple[dict[str, Any], dict[str, Any]]:
    """Inverse of :func:`write_npz`, with ``allow_pickle=False``; a damaged file is a clear error."""
    import zipfile

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise AekitError(f"{what} {path} does not exist", "nothing to load", "check the path")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError(f"it holds one {type(loaded).__name__}, not an .npz archive of named arrays")
        with loaded as archive:
            arrays = {key: archive[key] for key in archive.files}
        metadata = json.loads(str(arrays.pop("__meta__")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise AekitError(f"{what} {path} is damaged or not an aekit file", str(error), "rebuild it") from None
    return arrays, metadata
