"""Saving and loading without pickle: JSON for configuration, safetensors for tensors.

A *model directory* holds ``config.json`` (with a format version) and ``model.safetensors``; the
weights file also carries the configuration in its header, so a mismatched pair is detected.
Every file is written to a temporary name in the same folder and renamed over the target, so a
crash never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .config import FORMAT_VERSION, ModelConfig
from .errors import AekitError
from .model import Autoencoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def save_model(model: Autoencoder, directory: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory``; returns the directory."""
    directory = ensure_writable_dir(directory)
    config = {"format_version": FORMAT_VERSION, "model": model.config.to_dict()}
    write_safetensors(directory / WEIGHTS_FILE, model.state_dict(), {"config": config})
    write_json(directory / CONFIG_FILE, config)
    return directory


def read_model_config(directory: str | Path) -> ModelConfig:
    directory = Path(directory)
    if not directory.is_dir():
        raise AekitError(f"model directory {directory} does not exist", "nothing to load", "check the path")
    config = read_json(directory / CONFIG_FILE, "model configuration")
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        raise AekitError(
            f"{directory / CONFIG_FILE} has format version {version!r}",
            f"this aekit reads version {FORMAT_VERSION}",
            "use the aekit version that wrote it, or train again",
        )
    return ModelConfig.from_dict(config.get("model"))


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> Autoencoder:
    """Rebuild a model from its directory: configuration first, then the weights. Never unpickles."""
    config = read_model_config(directory)
    model = Autoencoder.from_config(config)
    tensors, metadata = read_safetensors(Path(directory) / WEIGHTS_FILE)
    saved = metadata.get("config", {}).get("model")
    if saved is not None and saved != config.to_dict():
        raise AekitError(
            f"{Path(directory) / WEIGHTS_FILE} was saved with another configuration than {CONFIG_FILE}",
            "the two files come from different models",
            "copy both files from the same run",
        )
    load_state(model, tensors, str(Path(directory) / WEIGHTS_FILE))
    return model.to(device).eval()


def load_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` with a one-line error when the tensors belong to another architecture."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        detail = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
            if unexpected
            else f"shape of {mismatched[0]} is {tuple(tensors[mismatched[0]].shape)}, "
            f"expected {tuple(expected[mismatched[0]].shape)}"
        )
        raise AekitError(
            f"{source} does not match this model's configuration",
            detail,
            "load it with the configuration it was trained with",
        )
    module.load_state_dict(tensors)


# ------------------------------------------------------------------------------------------------ #
# arrays + JSON in one .npz (semantic hash indexes)


def write_npz(path: str | Path, arrays: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Plain arrays plus JSON metadata in one ``.npz`` (stored as the string array ``__meta__``)."""
    import io as _io

    import numpy as np

    buffer = _io.BytesIO()
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
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        metadata = json.loads(str(arrays.pop("__meta__")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise AekitError(f"{what} {path} is damaged or not an aekit file", str(error), "rebuild it") from None
    return arrays, metadata


def save_index(index: Any, path: str | Path, arrays: dict[str, Any] | None = None, **metadata: Any) -> Path:
    """Write a :class:`~aekit.applications.hashing.SemanticHashIndex` (packed codes + ids) to ``path``
    (.npz, no pickle); ``arrays`` and ``metadata`` travel with it (labels, the hasher)."""
    from .applications.hashing import FORMAT, FORMAT_VERSION

    extra = {f"extra.{key}": value for key, value in (arrays or {}).items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    return write_npz(path, {**index.to_arrays(), **extra}, meta)


def load_index(path: str | Path, backend: str = "numpy", **faiss_options: int):
    """Read an index written by :func:`save_index`: (index, extra arrays, metadata)."""
    from .applications.hashing import FORMAT, FORMAT_VERSION, SemanticHashIndex

    arrays, meta = read_npz(path, "index")
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise AekitError(
            f"{path} is not a semantic hash index of format version {FORMAT_VERSION}",
            f"it says {meta.get('format')!r} version {meta.get('format_version')!r}",
            "build it again with aekit hash build",
        )
    extra = {key[6:]: value for key, value in arrays.items() if key.startswith("extra.")}
    index = SemanticHashIndex.from_arrays(arrays, backend, **faiss_options)
    return index, extra, meta
