"""Activations of any PyTorch module, stored for training a sparse dictionary on them.

:func:`collect` runs a model over data with a forward hook on one of its modules and writes what
the module outputs, one vector per row, into ``.npy`` shards of at most ``shard_rows`` rows in a
folder: memory stays bounded by one shard whatever the data's size, and the folder is a streamed
dataset (:class:`aekit.data.streaming.ArrayFile`) that ``aekit train --stream`` and
:class:`aekit.Trainer` read chunk by chunk.

Rows: an output (B, D) gives B rows; (B, T, D), a sequence, gives one row per position (B * T,
or those ``keep`` marks, e.g. the non-padding tokens); (B, C, H, W), an image feature map, one row
per pixel position, its C channels (B * H * W). A module returning a tuple is read at its first
element.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.streaming import ArrayFile
from ..errors import AekitError


def find_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule at a dotted ``path`` (as ``model.named_modules()`` names it); a clear error
    listing a few names when there is none."""
    modules = dict(model.named_modules())
    if path not in modules:
        names = [name for name in modules if name]
        more = f" and {len(names) - 12} more" if len(names) > 12 else ""
        raise AekitError(
            f"no module {path!r} in {type(model).__name__}",
            f"its modules include {', '.join(names[:12])}{more}",
            "give a dotted name from model.named_modules()",
        )
    return modules[path]


def activation_rows(output: Any) -> torch.Tensor:
    """A module's output as rows: (B, D) -> (B, D); (B, T, D) -> (B * T, D); (B, C, H, W) ->
    (B * H * W, C); a tuple or list is read at its first element."""
    if isinstance(output, tuple | list):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise AekitError(
            f"the module returned {type(output).__name__}", "activations are tensors", "hook another module"
        )
    if output.ndim == 2:
        return output
    if output.ndim == 3:
        return output.reshape(-1, output.shape[-1])
    if output.ndim == 4:
        return output.permute(0, 2, 3, 1).reshape(-1, output.shape[1])
    raise AekitError(
        f"an output of shape {tuple(output.shape)}", "rows are read from 2-, 3- or 4-D outputs", "hook another module"
    )


class _ShardWriter:
    """Rows appended in order, written as ``activations-00000.npy`` ... of at most ``shard_rows`` rows."""

    def __init__(self, folder: Path, shard_rows: int, dtype: np.dtype) -> None:
        self.folder, self.shard_rows, self.dtype = folder, shard_rows, dtype
        self.buffer: list[np.ndarray] = []
        self.buffered = self.rows = self.shards = 0
        self.width: int | None = None

    def add(self, rows: np.ndarray) -> None:
        if self.width is not None and rows.shape[1] != self.width:
            raise AekitError(
                f"rows of width {rows.shape[1]} after {self.width}",
                "a module's output width is fixed",
                "check the hook",
            )
        self.width = rows.shape[1]
        while len(rows):
            take = min(self.shard_rows - self.buffered, len(rows))
            self.buffer.append(rows[:take].astype(self.dtype, copy=False))
            self.buffered, rows = self.buffered + take, rows[take:]
            if self.buffered == self.shard_rows:
                self.flush()

    def flush(self) -> None:
        if not self.buffered:
            return
        np.save(self.folder / f"activations-{self.shards:05d}.npy", np.concatenate(self.buffer), allow_pickle=False)
        self.rows, self.shards = self.rows + self.buffered, self.shards + 1
        self.buffer, self.buffered = [], 0


@torch.no_grad()
def collect(
    model: nn.Module,
    module: str,
    data: Iterable[Any] | torch.Tensor | np.ndarray,
    out_dir: str | Path,
    forward: Callable[[Any], Any] | None = None,
    keep: Callable[[Any], torch.Tensor] | None = None,
    batch_size: int = 256,
    shard_rows: int = 65536,
    dtype: str = "float32",
    max_rows: int | None = None,
    progress: bool = True,
    about: dict[str, Any] | None = None,
) -> ArrayFile:
    """Run ``model`` over ``data`` and store the outputs of its submodule ``module`` (a dotted
    name) as rows in ``.npy`` shards in the new folder ``out_dir``; returns them as an
    :class:`~aekit.data.streaming.ArrayFile`.

    ``data``: an array or tensor (N, ...) cut into batches of ``batch_size``, or any iterable of
    batches. ``forward(batch)`` runs the model (default: ``model(batch)``); ``keep(batch)`` gives a
    bool mask over the rows a batch yields (e.g. (B, T) for non-padding tokens), as many entries
    as rows (a mismatch is an error). ``dtype`` float32 or float16; ``max_rows`` stops after that
    many rows. ``collection.json`` records the module, the rows and the width, and whatever
    ``about`` holds (e.g. where the rows came from: the model, the data, the split)."""
    if dtype not in ("float32", "float16"):
        raise AekitError(f"dtype {dtype!r}", "activations are stored as float32 or float16", "pick one")
    if int(shard_rows) < 1 or int(batch_size) < 1:
        raise AekitError("shard_rows and batch_size", "both count rows", "use values >= 1")
    folder = Path(out_dir)
    if folder.exists() and any(folder.iterdir()):
        raise AekitError(f"{folder} is not empty", "collected shards would mix with what is there", "give a new folder")
    target = find_module(model, module)
    folder.mkdir(parents=True, exist_ok=True)
    writer = _ShardWriter(folder, int(shard_rows), np.dtype(dtype))
    captured: list[torch.Tensor] = []
    handle = target.register_forward_hook(lambda _module, _inputs, output: captured.append(activation_rows(output)))
    if isinstance(data, torch.Tensor | np.ndarray):
        whole = torch.as_tensor(np.asarray(data)) if isinstance(data, np.ndarray) else data
        data = (whole[start : start + batch_size] for start in range(0, len(whole), batch_size))
    run = forward if forward is not None else model
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(data, desc=f"collect {module}", unit="batch", disable=not progress):
            captured.clear()
            run(batch)
            if not captured:
                raise AekitError(
                    f"module {module!r} did not run",
                    "the forward pass never reached it",
                    "hook a module the model uses",
                )
            rows = captured[-1]
            if keep is not None:
                mask = keep(batch).reshape(-1).to(rows.device)
                if mask.numel() != len(rows):
                    raise AekitError(
                        f"keep marks {mask.numel()} rows of a batch but {module!r} yields {len(rows)}",
                        "the mask has one entry per row the module outputs (e.g. (B, T) for (B, T, D))",
                        "hook a module whose positions the mask describes, or fix keep",
                    )
                rows = rows[mask]
            rows = rows.float().cpu().numpy()
            if max_rows is not None:
                rows = rows[: max(0, int(max_rows) - writer.rows - writer.buffered)]
            writer.add(rows)
            if max_rows is not None and writer.rows + writer.buffered >= int(max_rows):
                break
        writer.flush()
    finally:
        handle.remove()
        model.train(was_training)
    if writer.rows == 0:
        raise AekitError(
            f"no activations of {module!r} were collected", "the data gave no rows", "check the data and keep"
        )
    record = {
        **(about or {}),
        "module": module,
        "rows": writer.rows,
        "width": writer.width,
        "shards": writer.shards,
        "dtype": dtype,
    }
    (folder / "collection.json").write_text(json.dumps(record, indent=1) + "\n")
    return ArrayFile(folder, scale="none")
