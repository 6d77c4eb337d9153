"""One contract suite over every family (and both networks) and every registered part."""

import pytest
import torch

import aekit
from aekit import registry
from aekit.config import ModelConfig

from .conftest import DICTIONARY_CASES, FAMILY_CASES, RESTORATION_CASES, case_id


def build(case, data_shape=(1, 9, 7), code_size=3):
    family, options = case
    torch.manual_seed(0)
    return aekit.make_model(family, data_shape, code_size, **options)


@pytest.mark.parametrize("case", FAMILY_CASES, ids=case_id)
class TestFamilyContract:
    def test_shapes(self, case, images):
        model = build(case)
        x = images[:5]
        assert model.encode(x).shape == (5, 3)
        assert model.decode(model.encode(x)).shape == x.shape
        assert model(x).shape == x.shape
        assert model.reconstruct(x).shape == x.shape
        out = model.train().loss(x)
        assert out.total.shape == ()
        assert out.nll.shape == (5,)
        assert torch.isfinite(out.total)
        assert set(out.terms) == {"nll", *(p.name for p in model.penalties)}
        assert torch.allclose(out.total, sum(out.terms.values()))

    def test_loss_decreases_on_tiny_problem(self, case, images):
        model = build(case)
        config = aekit.TrainConfig(epochs=30, batch_size=16, lr=3e-3, val_fraction=0.0, seed=0)
        before = aekit.Trainer(model, config, progress=False).evaluate(images)["loss"]
        aekit.Trainer(model, config, progress=False).fit(images)
        after = aekit.Trainer(model, config, progress=False).evaluate(images)["loss"]
        assert after < before - 0.01 * abs(before)

    def test_eval_is_deterministic(self, case, images):
        model = build(case).eval()
        x = images[:8]
        assert torch.equal(model.encode(x), model.encode(x))
        assert torch.equal(model(x), model(x))
        first, second = model.loss(x), model.loss(x)
        assert torch.equal(first.total, second.total)

    def test_corruption_only_on_noisy_path(self, case, images):
        model = build(case)
        x = images[:8]
        clean = build(case)
        clean.corruption = None
        model.eval()
        clean.eval()
        # eval: the model with a corruption behaves exactly as the model without one
        assert torch.equal(model.loss(x).nll, clean.loss(x).nll)
        if model.corruption is not None:
            g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
            noisy = model.loss(x, generator=g1, noisy=True).nll
            assert not torch.equal(noisy, clean.loss(x, generator=g2, noisy=True).nll)

    def test_config_round_trip(self, case):
        model = build(case)
        config = ModelConfig.from_dict(model.config.to_dict())
        rebuilt = aekit.Autoencoder.from_config(config)
        assert rebuilt.config == model.config
        rebuilt.load_state_dict(model.state_dict())
        x = torch.rand(4, 1, 9, 7)
        assert torch.equal(rebuilt.eval()(x), model.eval()(x))


MINIMAL_KWARGS = {
    ("encoder", "mlp"): {"in_shape": [1, 9, 7], "out_shape": [6], "hidden": [5]},
    ("decoder", "mlp"): {"in_shape": [3], "out_shape": [1, 9, 7], "hidden": [5]},
    ("encoder", "conv"): {"in_shape": [1, 9, 7], "out_shape": [6], "channels": [4]},
    ("decoder", "conv"): {"in_shape": [3], "out_shape": [1, 9, 7], "channels": [4]},
    ("encoder", "dictionary"): {"dim": 6, "width": 10},
    ("decoder", "dictionary"): {"dim": 6, "width": 10},
    ("latent", "topk"): {"code_size": 3, "k": 2},
    ("latent", "batchtopk"): {"code_size": 3, "k": 2},
    ("latent", "identity"): {},
    ("sequence_encoder", "gru"): {"embedding_size": 8, "hidden": 4},
    ("sequence_encoder", "transformer"): {"embedding_size": 8, "heads": 2, "feedforward": 16},
    ("sequence_code", "attention"): {"state_size": 8},
    ("sequence_code", "fixed"): {"summary_size": 8, "code_size": 3},
    ("sequence_code", "gaussian"): {"summary_size": 8, "code_size": 3},
    ("sequence_decoder", "gru"): {"embedding_size": 8, "code_size": 3, "hidden": 4},
    ("sequence_decoder", "gru-attention"): {"embedding_size": 8, "state_size": 8, "summary_size": 8, "hidden": 4},
    ("sequence_decoder", "transformer"): {"embedding_size": 8, "heads": 2, "feedforward": 16},
}


@pytest.mark.parametrize(
    "kind,name", [(kind, name) for kind in registry.KINDS for name in registry.names(kind)], ids=lambda v: str(v)
)
def test_every_registered_part_round_trips_its_spec(kind, name):
    kwargs = MINIMAL_KWARGS.get((kind, name), {"code_size": 3} if kind == "latent" else {})
    part = registry.build(kind, {"name": name, **kwargs})
    spec = part.spec()
    assert spec["name"] == name
    assert registry.build(kind, spec).spec() == spec


def test_registry_lists_choices_for_unknown_names():
    with pytest.raises(aekit.AekitError, match="the registered latents are batchtopk, binary, deterministic, gaussian"):
        registry.build("latent", {"name": "nope", "code_size": 2})
    with pytest.raises(aekit.AekitError, match="has no option 'widht'"):
        registry.build("encoder", {"name": "mlp", "in_shape": [4], "out_shape": [2], "widht": 3})
    with pytest.raises(aekit.AekitError, match="the families are"):
        aekit.make_model("nope", (4,), 2)


@pytest.mark.parametrize("family", ["linear", "undercomplete"])
def test_undercomplete_families_refuse_a_code_as_large_as_the_input(family):
    with pytest.raises(aekit.AekitError, match="is not smaller than the input size 16"):
        aekit.make_model(family, (16,), 16)


def test_input_of_the_wrong_shape_is_a_clear_error():
    model = aekit.make_model("vae", (1, 9, 7), 2)
    with pytest.raises(aekit.AekitError, match=r"expects \(batch, 1, 9, 7\)"):
        model.encode(torch.rand(2, 1, 7, 9))


def test_penalties_check_their_parts():
    with pytest.raises(aekit.AekitError, match="kl penalty needs a latent with a prior"):
        config = aekit.family_config("undercomplete", (8,), 2)
        config.penalties = [{"name": "kl"}]
        aekit.Autoencoder.from_config(config)
    with pytest.raises(aekit.AekitError, match="needs a latent with codes in"):
        config = aekit.family_config("undercomplete", (8,), 2)
        config.penalties = [{"name": "kl_sparsity"}]
        aekit.Autoencoder.from_config(config)
    with pytest.raises(aekit.AekitError, match="one-layer sigmoid encoder"):
        aekit.make_model("contractive", (8,), 2, hidden=[4], estimator="exact")


def test_conv_network_preserves_odd_sizes():
    for shape in [(1, 28, 28), (3, 17, 13), (2, 5, 31), (1, 2, 3)]:
        model = aekit.make_model("vae", shape, 4, network="conv", channels=[4, 8, 8])
        x = torch.rand(2, *shape)
        assert model(x).shape == x.shape


RESTORATION_SHAPES = {"colorize": (3, 12, 10)}  # colour images; the others restore grey ones


def build_restorer(case):
    family, options = case
    torch.manual_seed(0)
    return aekit.make_model(family, RESTORATION_SHAPES.get(family, (1, 12, 10)), 1, **options)


@pytest.mark.parametrize("case", RESTORATION_CASES, ids=case_id)
class TestRestorationContract:
    def test_any_image_size_and_the_loss(self, case):
        model = build_restorer(case)
        channels = model.data_shape[0]
        for height, width in ((12, 10), (9, 17)):
            x = torch.rand(2, channels, height, width, generator=torch.Generator().manual_seed(height))
            prepared = model.corruption(x, torch.Generator().manual_seed(0))  # what the network sees
            assert model.reconstruct(prepared).shape == x.shape
            out = model.train().loss(x, generator=torch.Generator().manual_seed(0))
            assert out.nll.shape == (2,) and torch.isfinite(out.total)

    def test_the_one_loop_lowers_the_loss(self, case):
        model = build_restorer(case)
        coarse = torch.rand(24, model.data_shape[0], 3, 3, generator=torch.Generator().manual_seed(1))
        x = torch.nn.functional.interpolate(coarse, size=(12, 10), mode="bilinear")  # smooth: worth restoring
        config = aekit.TrainConfig(epochs=8, batch_size=8, lr=3e-3, val_fraction=0.0, seed=0)
        before = aekit.Trainer(model, config, progress=False).evaluate(x)["loss"]
        result = aekit.Trainer(model, config, progress=False).fit(x)
        after = aekit.Trainer(model, config, progress=False).evaluate(x)["loss"]
        assert after < before and result.stop_reason == "epochs"

    def test_config_round_trip_and_eval_determinism(self, case):
        model = build_restorer(case).eval()
        rebuilt = aekit.Autoencoder.from_config(ModelConfig.from_dict(model.config.to_dict()))
        rebuilt.load_state_dict(model.state_dict())
        x = model.corruption(torch.rand(2, model.data_shape[0], 12, 10), torch.Generator().manual_seed(0))
        assert torch.equal(rebuilt.eval().reconstruct(x), model.reconstruct(x))
        assert torch.equal(model.reconstruct(x), model.reconstruct(x))


def test_every_family_is_in_the_contract_suite():
    cases = [*FAMILY_CASES, *RESTORATION_CASES, *DICTIONARY_CASES]
    covered = {family for family, _ in cases}
    assert covered == set(aekit.family_names())
