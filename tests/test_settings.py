"""Settings have one home: the config dataclasses generate the train options and the estimators'
parameters, with their defaults, ranges and help."""

import argparse
import dataclasses
import inspect

import pytest

import aekit
from aekit.cli import build_parser
from aekit.cli.base import HelpFormatter, add_settings, option_name, settings_from_args
from aekit.config import Settings, TrainConfig, setting, settings_of
from aekit.families import FamilyConfig
from aekit.sklearn import AutoencoderClassifier, AutoencoderTransformer


def train_parser():
    return build_parser().commands["train"]


def options_of(parser):
    return {s: a for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("cls", [TrainConfig, FamilyConfig])
def test_every_setting_is_a_train_option_with_its_default(cls):
    options = options_of(train_parser())
    for f in settings_of(cls):
        if not f.metadata["cli"]:
            continue
        action = options[option_name(f.name)]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert action.default == default, f.name
        assert f.metadata["help"].split(";")[0][:30] in action.help.replace("%%", "%")


def test_train_help_shows_every_default(capsys):
    text = train_parser().format_help()
    assert "(default: auto)" in text and "(default: 128)" in text and "(default: 50000)" in text
    for action in train_parser()._actions:
        if action.option_strings and action.default not in (None, [], argparse.SUPPRESS) and action.dest != "help":
            shown = HelpFormatter("aekit")._get_help_string(action)
            assert "default" in shown, action.dest


def test_every_option_of_every_command_has_help():
    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    missing = [
        f"{parser.prog} {action.option_strings[0]}"
        for parser in parsers(build_parser())
        for action in parser._actions
        if action.option_strings and action.dest != "help" and not action.help
    ]
    assert missing == []


def test_range_errors_name_the_setting_the_value_and_what_is_allowed():
    with pytest.raises(aekit.AekitError, match=r"val_fraction=1\.5 is not allowed: it must be a number >= 0 and < 1"):
        TrainConfig(val_fraction=1.5).validate()
    with pytest.raises(aekit.AekitError, match=r"optimizer='sgd' is not allowed: it must be one of adam, adamw"):
        TrainConfig(optimizer="sgd").validate()
    with pytest.raises(aekit.AekitError, match=r"code_size=0 is not allowed: it must be an integer >= 1"):
        FamilyConfig(code_size=0).validate()
    with pytest.raises(aekit.AekitError, match=r"hidden=\[64, 0\] is not allowed"):
        FamilyConfig(hidden=[64, 0]).validate()
    with pytest.raises(aekit.AekitError, match=r"epochs=True is not allowed"):
        TrainConfig(epochs=True).validate()


def test_a_new_setting_reaches_the_command_line_from_its_declaration_alone():
    @dataclasses.dataclass
    class Extra(Settings):
        warmup_steps: int = setting(100, "steps of linear learning-rate warm-up", minimum=0)
        label_smoothing: float = setting(0.0, "label smoothing", minimum=0.0, below=1.0)

    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_settings(parser, Extra)
    assert settings_from_args(parser.parse_args([]), Extra) == Extra()
    args = parser.parse_args(["--warmup-steps", "7", "--label-smoothing", "0.1"])
    assert settings_from_args(args, Extra) == Extra(7, 0.1)
    assert "(default: 100)" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--label-smoothing", "1"])


@pytest.mark.parametrize("estimator", [AutoencoderTransformer, AutoencoderClassifier])
def test_estimator_parameters_are_the_settings(estimator):
    parameters = inspect.signature(estimator).parameters
    for f in settings_of(TrainConfig):
        if f.metadata["estimator"]:
            assert parameters[f.name].default == f.default, f.name
        else:
            assert f.name not in parameters
    if estimator is AutoencoderTransformer:
        for f in settings_of(FamilyConfig):
            default = None if f.default is dataclasses.MISSING else f.default
            assert parameters[f.name].default == default, f.name
    assert "random_state" in parameters and "seed" not in parameters


def test_unknown_family_option_lists_the_family_options():
    with pytest.raises(aekit.AekitError, match="the vae family has no option foo: its options are beta, free_bits"):
        aekit.family_config("vae", (8,), 2, foo=1)
    with pytest.raises(aekit.AekitError, match=r"family option beta='big' is not a number"):
        aekit.family_config("vae", (8,), 2, beta="big")
    assert aekit.families.family_options("denoising")["noise"] == "masking"
