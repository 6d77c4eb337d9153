"""Deployment: a trained model, or its encoder or decoder, as an ONNX graph for onnxruntime and
other runtimes.

Parts (``part``):

* ``autoencoder``: x (B, *input_shape) -> the reconstruction (B, *data_shape): the likelihood's
  mean at the decoded code (probabilities for a Bernoulli model). For a restoration model this is
  the restored image, from the prepared input :meth:`~aekit.model.Autoencoder.encode` takes (the
  degraded image enlarged by bicubic interpolation for super-resolution, the image with its mask
  channel for inpainting, the lightness for colorization).
* ``encoder``: x -> the deterministic code (B, K) (posterior mean, hard bits for hashing).
* ``decoder``: codes (B, K) -> the likelihood's mean (B, *data_shape).

The batch dimension is dynamic, and so are height and width for fully convolutional models (any
size from 8 pixels up). The graph is exported with torch.export (``torch.onnx.export(...,
dynamo=True)``); exporting needs the ``onnx`` and ``onnxscript`` packages (``pip install
aekit[onnx]``), running it ``onnxruntime``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from .errors import AekitError
from .model import Autoencoder

PARTS = ("autoencoder", "encoder", "decoder")
MIN_IMAGE_SIDE = 8  # smallest height and width an exported fully convolutional model accepts


class _Reconstruct(nn.Module):
    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.reconstruct(x)  # (B, *data_shape)


class _Encode(_Reconstruct):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)  # (B, K)


class _Decode(_Reconstruct):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.likelihood.mean(self.model.decode(z))  # (B, *data_shape)


_WRAPPERS = {"autoencoder": (_Reconstruct, "x", "reconstruction"), "encoder": (_Encode, "x", "code")}
_WRAPPERS["decoder"] = (_Decode, "code", "reconstruction")


def onnx_bytes(model: Autoencoder, part: str = "autoencoder", opset: int | None = None) -> bytes:
    """The ONNX graph of ``part`` of ``model`` (see the module docstring), weights included, as the
    bytes of a ``.onnx`` file. Input and output names: ``x`` or ``code``, ``reconstruction`` or
    ``code``. ``opset``: the ONNX opset version (default: the exporter's)."""
    if part not in PARTS:
        raise AekitError(f"unknown part {part!r}", f"the parts are {', '.join(PARTS)}", "pick one")
    if model.code_size is None and part != "autoencoder":
        raise AekitError(
            f"a {model.family} model has no {part} of its own to export",
            "its code is an image the size of its input",
            "export the whole model (part autoencoder)",
        )
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise AekitError(
            "exporting to ONNX needs the onnx and onnxscript packages",
            "they are not installed",
            'pip install "aekit[onnx]"',
        ) from None
    wrapper, input_name, output_name = _WRAPPERS[part]
    module = wrapper(model).eval().float()
    device = next(model.parameters()).device
    example_shape, dynamic = _example(model, part)
    example = torch.rand((2, *example_shape), device=device)
    with torch.no_grad(), _quiet():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            dynamic_shapes=(dynamic,),
            input_names=[input_name],
            output_names=[output_name],
            opset_version=opset,
            verbose=False,
        )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        program.save(path, external_data=False)
        return path.read_bytes()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter reports each stage on stdout and warns about optional packages it does not
    need here (torchvision's operators); keep the caller's output to what it asked for."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch._dynamo", "torch.export")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def check_with_onnxruntime(model: Autoencoder, data: bytes, part: str = "autoencoder", seed: int = 0) -> float:
    """The largest absolute difference between onnxruntime running ``data`` and torch running
    ``part`` of ``model``, on a seeded random batch of 3 (odd-sized images for a fully
    convolutional model). Needs ``onnxruntime``."""
    try:
        import onnxruntime
    except ImportError:
        raise AekitError(
            "checking the graph needs onnxruntime", "it is not installed", "pip install onnxruntime"
        ) from None
    wrapper = _WRAPPERS[part][0](model).eval().float()
    shape, _ = _example(model, part)
    shape = tuple(size + 2 if i > 0 and model.input_shape[i] is None else size for i, size in enumerate(shape))
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((3, *shape), generator=generator)
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    device = next(model.parameters()).device
    with torch.no_grad():
        expected = wrapper(x.to(device)).float().cpu().numpy()
    return float(abs(got - expected).max())


def _example(model: Autoencoder, part: str) -> tuple[tuple[int, ...], dict[int, torch.export.Dim]]:
    """The shape of one example input and its dynamic dimensions (batch; any-size height, width)."""
    dynamic = {0: torch.export.Dim("batch")}
    if part == "decoder":
        return (model.code_size,), dynamic
    shape = list(model.input_shape)
    for axis, size in enumerate(shape):
        if size is None:  # a fully convolutional model: any size, the example odd-sized
            name = ("channels", "height", "width")[axis] if len(shape) == 3 else f"axis{axis + 1}"
            dynamic[axis + 1] = torch.export.Dim(name, min=MIN_IMAGE_SIDE)
            shape[axis] = 2 * MIN_IMAGE_SIDE + 1
    return tuple(shape), dynamic
