"""Persistence: config.json + safetensors, identical outputs after a round trip, never pickle."""

import json
import pickle

import pytest
import torch

import aekit
from aekit.io import CONFIG_FILE, WEIGHTS_FILE

from .conftest import FAMILY_CASES, case_id


@pytest.fixture
def no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("case", FAMILY_CASES, ids=case_id)
def test_save_load_round_trip_gives_identical_outputs(case, tmp_path, no_pickle):
    family, options = case
    torch.manual_seed(0)
    model = aekit.make_model(family, (1, 9, 7), 3, **options)
    if family == "vae":  # make the learned parts non-trivial
        model.likelihood.train()
    aekit.save_model(model, tmp_path / "m")
    loaded = aekit.load_model(tmp_path / "m")
    x = torch.rand(5, 1, 9, 7)
    model.eval()
    assert torch.equal(model.encode(x), loaded.encode(x))
    assert torch.equal(model(x), loaded(x))
    assert loaded.config == model.config
    config = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())
    assert config["format_version"] == 1 and config["model"]["family"] == family


def test_learned_sigma_is_saved(tmp_path):
    model = aekit.make_model("undercomplete", (6,), 2, likelihood={"name": "gaussian", "learn_sigma": "per_dimension"})
    with torch.no_grad():
        model.likelihood.log_sigma.copy_(torch.linspace(-1, 1, 6))
    aekit.save_model(model, tmp_path)
    assert torch.equal(aekit.load_model(tmp_path).likelihood.log_sigma, model.likelihood.log_sigma)


def test_truncated_weights_file_is_a_clear_error(tmp_path):
    aekit.save_model(aekit.make_model("vae", (6,), 2), tmp_path)
    weights = tmp_path / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(aekit.AekitError, match="damaged or truncated"):
        aekit.load_model(tmp_path)


def test_weights_of_another_configuration_are_refused(tmp_path):
    aekit.save_model(aekit.make_model("vae", (6,), 2), tmp_path / "a")
    aekit.save_model(aekit.make_model("vae", (6,), 3), tmp_path / "b")
    (tmp_path / "a" / WEIGHTS_FILE).write_bytes((tmp_path / "b" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(aekit.AekitError, match="another configuration"):
        aekit.load_model(tmp_path / "a")


def test_state_of_another_architecture_is_refused():
    from aekit.io import load_state

    model = aekit.make_model("vae", (6,), 2)
    other = aekit.make_model("vae", (6,), 3)
    with pytest.raises(aekit.AekitError, match="does not match this model's configuration"):
        load_state(model, other.state_dict(), "weights")


def test_half_precision_storage_halves_the_file_and_loads_as_float32(tmp_path):
    torch.manual_seed(0)
    model = aekit.make_model("denoise", (1, 16, 16), 1, width=8, depth=2)
    aekit.save_model(model, tmp_path / "fp32")
    aekit.save_model(model, tmp_path / "fp16", dtype=torch.float16)
    size = {d: (tmp_path / d / WEIGHTS_FILE).stat().st_size for d in ("fp32", "fp16")}
    assert size["fp16"] < 0.6 * size["fp32"]
    loaded = aekit.load_model(tmp_path / "fp16")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x), atol=2e-3, rtol=0)


def test_a_noise_map_input_widens_a_trained_first_layer_with_zeros():
    from aekit.io import load_state

    torch.manual_seed(0)
    plain = aekit.make_model("denoise", (1, 16, 16), 1, sigma=25, width=4, depth=2)
    mapped = aekit.make_model("denoise", (1, 16, 16), 1, sigma=0, max_sigma=75, noise_map=True, width=4, depth=2)
    with pytest.raises(aekit.AekitError, match="does not match"):
        load_state(mapped, plain.state_dict(), "weights")
    load_state(mapped, plain.state_dict(), "weights", widen_inputs=True)
    x = torch.rand(2, 1, 16, 16)
    level = torch.full_like(x, 0.3)
    with torch.no_grad():  # the new input starts with zero weights: the output is the trained model's
        torch.testing.assert_close(mapped.reconstruct(torch.cat([x, level], 1)), plain.reconstruct(x))
    with pytest.raises(aekit.AekitError, match="does not match"):  # fewer inputs are never cut
        load_state(plain, mapped.state_dict(), "weights", widen_inputs=True)


def test_unknown_format_version_and_missing_files(tmp_path):
    aekit.save_model(aekit.make_model("linear", (6,), 2), tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    config["format_version"] = 99
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(aekit.AekitError, match="format version 99"):
        aekit.load_model(tmp_path)
    with pytest.raises(aekit.AekitError, match="does not exist"):
        aekit.load_model(tmp_path / "nowhere")


def test_a_part_that_is_not_registered_cannot_be_saved(tmp_path):
    model = aekit.make_model("linear", (6,), 2)
    model.encoder = torch.nn.Linear(6, 2)
    with pytest.raises(aekit.AekitError, match="cannot be saved"):
        aekit.save_model(model, tmp_path)
    assert not (tmp_path / WEIGHTS_FILE).exists()


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path, monkeypatch):
    from aekit import files as aio

    target = tmp_path / "f.json"
    aio.write_json(target, {"a": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(aio.os, "replace", broken_replace)
    with pytest.raises(OSError):
        aio.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
