"""Saving and loading models and hash indexes without pickle (built on :mod:`aekit.files`).

A *model directory* holds ``config.json`` (with a format version and the SHA-256 of the weights)
and ``model.safetensors``; the weights file also carries the configuration in its header, so a
mismatched pair is detected, and a damaged weights file is named before anything is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import FORMAT_VERSION, ModelConfig
from .errors import AekitError
from .files import (  # noqa: F401  (re-exported: the file helpers are part of aekit.io's API)
    atomic_write_bytes,
    atomic_write_text,
    ensure_writable_dir,
    read_json,
    read_npz,
    read_safetensors,
    sha256_of,
    write_json,
    write_npz,
    write_safetensors,
)
from .model import Autoencoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_model(model: Autoencoder, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory``; returns the directory.
    ``dtype`` float16/bfloat16 halves the weights file (shipped models); loading casts back."""
    directory = ensure_writable_dir(directory)
    config = {"format_version": FORMAT_VERSION, "model": model.config.to_dict()}
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    weights = write_safetensors(directory / WEIGHTS_FILE, tensors, {"config": config})
    write_json(directory / CONFIG_FILE, {**config, "weights_sha256": sha256_of(weights)})
    return directory


def _read_config(directory: str | Path) -> dict[str, Any]:
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
    return config


def read_model_config(directory: str | Path) -> ModelConfig:
    """The :class:`ModelConfig` in a model directory's ``config.json``."""
    return ModelConfig.from_dict(_read_config(directory).get("model"))


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> Autoencoder:
    """Rebuild a model from its directory: configuration first, then the weights (checked against
    the SHA-256 that ``config.json`` records). Never unpickles."""
    recorded = _read_config(directory)
    config = ModelConfig.from_dict(recorded.get("model"))
    model = Autoencoder.from_config(config)
    weights = Path(directory) / WEIGHTS_FILE
    tensors, metadata = read_safetensors(weights)
    saved = metadata.get("config", {}).get("model")
    if saved is not None and saved != config.to_dict():
        raise AekitError(
            f"{weights} was saved with another configuration than {CONFIG_FILE}",
            "the two files come from different models",
            "copy both files from the same run",
        )
    expected = recorded.get("weights_sha256")
    if expected is not None and sha256_of(weights) != expected:  # readable, but bytes changed inside the tensors
        raise AekitError(
            f"weights file {weights} is damaged",
            f"its SHA-256 differs from the one {CONFIG_FILE} recorded when it was written",
            "restore it from a copy or train again",
        )
    load_state(model, tensors, str(weights))
    return model.to(device).eval()


def load_state(
    module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str, widen_inputs: bool = False
) -> None:
    """``load_state_dict`` with a one-line error when the tensors belong to another architecture.

    ``widen_inputs``: a weight that takes more input channels here than in ``tensors`` (dim 1, all
    else equal: e.g. a noise-level map added to the first convolution's input) gets the given
    weights on its leading channels and zeros on the new ones, so the model starts by computing
    what the given one did and learns to use the new inputs."""
    expected = module.state_dict()
    if widen_inputs:
        tensors = dict(tensors)
        for key, target in expected.items():
            given = tensors.get(key)
            if given is None or given.shape == target.shape or given.dim() < 2 or given.dim() != target.dim():
                continue
            if (
                given.shape[0] == target.shape[0]
                and given.shape[2:] == target.shape[2:]
                and given.shape[1] < target.shape[1]
            ):
                widened = torch.zeros_like(target)
                widened[:, : given.shape[1]] = given
                tensors[key] = widened
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


def save_index(index: Any, path: str | Path, arrays: dict[str, Any] | None = None, **metadata: Any) -> Path:
    """Write a :class:`~aekit.hash_index.SemanticHashIndex` (packed codes + ids) to ``path``
    (.npz, no pickle); ``arrays`` and ``metadata`` travel with it (labels, the hasher)."""
    from .hash_index import FORMAT, FORMAT_VERSION

    extra = {f"extra.{key}": value for key, value in (arrays or {}).items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    return write_npz(path, {**index.to_arrays(), **extra}, meta)


def load_index(path: str | Path, backend: str = "numpy", **faiss_options: int):
    """Read an index written by :func:`save_index`: (index, extra arrays, metadata)."""
    from .hash_index import FORMAT, FORMAT_VERSION, SemanticHashIndex

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
