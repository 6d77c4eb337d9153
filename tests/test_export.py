"""ONNX export checked against onnxruntime: the whole model, the encoder, the decoder, and the
fully convolutional restoration models at sizes other than the one exported."""

import numpy as np
import pytest
import torch

import aekit
from aekit.export import onnx_bytes

from .test_cli import run

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def session(data):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def outputs(model, part, x):
    with torch.no_grad():
        if part == "encoder":
            return model.encode(x).numpy()
        if part == "decoder":
            return model.likelihood.mean(model.decode(x)).numpy()
        return model.reconstruct(x).numpy()


@pytest.mark.parametrize("family", ["vae", "hashing"])
@pytest.mark.parametrize("part", ["autoencoder", "encoder", "decoder"])
def test_parts_of_an_autoencoder_agree_with_torch_at_any_batch_size(family, part):
    torch.manual_seed(0)
    model = aekit.make_model(family, (1, 6, 5), 3, hidden=[8]).eval()
    graph = session(onnx_bytes(model, part))
    for batch in (1, 7):
        x = torch.rand(batch, 3) * 4 - 2 if part == "decoder" else torch.rand(batch, 1, 6, 5)
        got = graph.run(None, {graph.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(got, outputs(model, part, x), rtol=1e-5, atol=1e-6)
    if family == "hashing" and part == "encoder":
        assert set(np.unique(got)) <= {0.0, 1.0}  # hard bits


@pytest.mark.parametrize("family", ["denoise", "colorize"])
def test_a_restoration_model_takes_any_image_size(family):
    torch.manual_seed(0)
    shape = (3, 16, 16) if family == "colorize" else (1, 16, 16)
    model = aekit.make_model(family, shape, 1, depth=2, width=4).eval()
    with torch.no_grad():  # a trained-looking model: the last layer is no longer zero
        model.encoder.decoder_layers[-1].weight.normal_(0, 0.1)
    graph = session(onnx_bytes(model))
    for height, width in ((8, 8), (23, 17), (64, 40)):
        x = torch.rand(2, model.input_shape[0], height, width)
        got = graph.run(None, {"x": x.numpy()})[0]
        assert got.shape == (2, shape[0], height, width)
        np.testing.assert_allclose(got, outputs(model, "autoencoder", x), rtol=1e-4, atol=1e-5)


def test_a_restoration_model_has_no_separate_encoder():
    model = aekit.make_model("denoise", (1, 8, 8), 1, depth=2, width=4)
    with pytest.raises(aekit.AekitError, match="has no encoder of its own"):
        onnx_bytes(model, "encoder")
    with pytest.raises(aekit.AekitError, match="unknown part 'head'"):
        onnx_bytes(model, "head")


def test_export_from_the_command_line(tmp_path, capsys):
    torch.manual_seed(0)
    model = aekit.make_model("undercomplete", (6,), 2, hidden=[4])
    aekit.save_model(model, tmp_path / "run")
    out = tmp_path / "decoder.onnx"
    code, stdout, _ = run(capsys, "export", tmp_path / "run", "--part", "decoder", "--out", out)
    assert code == 0 and "onnxruntime agrees with torch" in stdout
    graph = session(out.read_bytes())
    z = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    np.testing.assert_allclose(
        graph.run(None, {"code": z})[0], outputs(model, "decoder", torch.from_numpy(z)), atol=1e-6
    )
    code, _, err = run(capsys, "export", tmp_path / "run", "--out", out)
    assert code == 2 and "already exists" in err  # never replaced by surprise
    code, _, err = run(capsys, "export", tmp_path / "run", "--out", tmp_path / "model.bin")
    assert code == 2 and "does not end in .onnx" in err and err.count("\n") == 1
