"""The CLI generated from the config dataclasses: each option's default lives in its
dataclass only, the help states it, and a new field with metadata is a new option."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from rsdistill.cli import common
from rsdistill.cli.main import build_parser
from rsdistill.cli.schema_args import SOURCE_ATTR, cli_fields, flags_of, shown_default
from rsdistill.config import cli_option, option
from rsdistill.cli.backend_options import backend_config
from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.experiments.backends import BackendConfig
from rsdistill.experiments.compare import CompareConfig
from rsdistill.experiments.grid import SweepConfig
from rsdistill.experiments.pareto import ParetoConfig
from rsdistill.experiments.study import StudySweep
from rsdistill.losses import MethodConfig
from rsdistill.training.config import TrainConfig

SCHEMAS = (TrainConfig, DataConfig, MethodConfig, SweepConfig, CompareConfig, ParetoConfig,
           StudySweep, BackendConfig)

# The commands that run a grid, with what each needs to parse; each takes the backend's
# options (BackendConfig).
GRID_COMMANDS = {"sweep": ["--teacher", "t", "--student", "resnet8", "--out", "o"],
                 "pareto": ["--teacher", "t", "--out", "o"],
                 "compare": ["--student", "resnet8", "--out", "o"],
                 "run": []}


def parsers(parser: argparse.ArgumentParser, name: str = "rsdistill"):
    """Every (sub)command's parser, nested ones ('data info') included."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers(sub, f"{name} {sub_name}")


def generated(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if hasattr(a, SOURCE_ATTR)]


def field_of(action: argparse.Action) -> dataclasses.Field:
    cls, name = getattr(action, SOURCE_ATTR)
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def test_train_help_states_every_dataclass_default():
    """``rsdistill train``: no option is reworded by the command (but --model), so each
    help shows the field's own default (or the wording the field gives for it)."""
    train = dict(parsers(build_parser()))["rsdistill train"]
    actions = [a for a in generated(train) if not a.required]  # --model, --dataset
    assert {a.dest for a in actions} >= {"epochs", "lr", "batch_size", "seed", "image_size",
                                         "split", "crop_pad", "mix_prob", "teacher_cache"}
    for action in actions:
        f = field_of(action)
        if isinstance(f.default, bool):  # a switch: its action is the default's opposite
            assert action.const is (not f.default), action.option_strings
            continue
        opt = cli_option(f)
        stated = opt.shown if isinstance(opt.shown, str) else shown_default(f.default)
        assert f"(default {stated}" in action.help % {}, action.option_strings


def test_every_generated_option_states_a_default():
    for name, p in parsers(build_parser()):
        for action in generated(p):
            if action.required or isinstance(field_of(action).default, bool):
                continue
            assert "(default " in action.help, f"{name} {action.option_strings[0]}"


def test_recipe_defaults_are_noted_where_they_differ():
    train = dict(parsers(build_parser()))["rsdistill train"]
    helps = {a.dest: a.help for a in generated(train)}
    assert "default 60; 10 with --pretrained imagenet" in helps["epochs"]
    assert "default 0.05; 0.002 with --pretrained imagenet" in helps["lr"]
    assert "with --pretrained" not in helps["schedule"]  # the recipe keeps cosine


def test_generated_options_leave_the_default_to_the_dataclass():
    """argparse's default is None everywhere ("not given"), so the dataclass fills it in."""
    for name, p in parsers(build_parser()):
        for action in generated(p):
            assert action.default is None, f"{name} {action.option_strings[0]}"
    args = build_parser().parse_args(["train", "--dataset", "ucmerced", "--model", "resnet8",
                                      "--out", "o"])
    from rsdistill.cli.training_args import train_config
    assert train_config(args) == TrainConfig(model="resnet8")
    assert common.data_config(args) == DataConfig(dataset="ucmerced")


# Hand-written options that share a config field's flag but are another setting: a
# prediction batch, a device for prediction, the threads of onnxruntime in predict, the
# decode workers of predict, and where 'data download' puts an archive.
OTHER_SETTINGS = {("rsdistill predict", "--batch-size"), ("rsdistill predict", "--device"),
                  ("rsdistill predict", "--inference-threads"),
                  ("rsdistill predict", "--workers"), ("rsdistill data download", "--dataset"),
                  ("rsdistill data download", "--data-root")}


def test_no_config_flag_is_written_by_hand():
    """A flag of a config field is generated from it wherever it appears: no second
    definition with a second default."""
    config_flags = {flag for cls in SCHEMAS for f, opt in cli_fields(cls)
                    for flag in flags_of(f, opt)}
    by_hand = sorted((name, flag) for name, p in parsers(build_parser())
                     for a in p._actions if not hasattr(a, SOURCE_ATTR)
                     for flag in a.option_strings if flag in config_flags)
    assert [x for x in by_hand if x not in OTHER_SETTINGS] == []


def test_no_flag_is_defined_twice_in_a_command():
    for name, p in parsers(build_parser()):
        flags = [s for a in p._actions for s in a.option_strings]
        assert len(flags) == len(set(flags)), name


@dataclasses.dataclass
class _DataWithKnob(DataConfig):
    knob_level: int = option(7, help="a throwaway knob of this test")


def test_a_field_with_metadata_is_a_new_option(monkeypatch, capsys):
    monkeypatch.setattr(common, "DataConfig", _DataWithKnob)
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    assert "--knob-level KNOB_LEVEL" in capsys.readouterr().out
    base = ["train", "--dataset", "ucmerced", "--model", "resnet8", "--out", "o"]
    assert common.data_config(parser.parse_args(base)).knob_level == 7
    assert common.data_config(parser.parse_args([*base, "--knob-level", "9"])).knob_level == 9


def test_every_backend_field_is_an_option_of_every_grid_command():
    """A BackendConfig field without option(...) metadata would be settable from no
    command: each field must be generated, with its help stating the field's default."""
    commands = dict(parsers(build_parser()))
    fields = {f.name: f for f in dataclasses.fields(BackendConfig)}
    for command in GRID_COMMANDS:
        actions = {getattr(a, SOURCE_ATTR)[1]: a
                   for a in generated(commands[f"rsdistill {command}"])
                   if getattr(a, SOURCE_ATTR)[0] is BackendConfig}
        assert sorted(actions) == sorted(fields), command
        for name, action in actions.items():
            opt = cli_option(fields[name])
            default = fields[name].default
            stated = opt.shown if isinstance(opt.shown, str) else shown_default(default)
            assert f"(default {stated})" in action.help % {}, (command, action.option_strings)
    flags = {a.option_strings[0] for a in generated(commands["rsdistill sweep"])
             if getattr(a, SOURCE_ATTR)[0] is BackendConfig}
    assert flags == {"--backend", "--ray-address", "--cpus-per-trial", "--gpus-per-trial",
                     "--max-retries"}


@pytest.mark.parametrize("command", sorted(GRID_COMMANDS))
def test_backend_options_not_given_leave_the_dataclass_defaults(command):
    args = build_parser().parse_args([command, *GRID_COMMANDS[command]])
    assert backend_config(args) == BackendConfig()


def test_backend_choices_come_from_the_registry_and_values_are_checked(capsys):
    base = ["sweep", *GRID_COMMANDS["sweep"]]
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--backend", "spark"])
    err = capsys.readouterr().err
    assert "invalid choice: 'spark'" in err and "'local'" in err and "'ray'" in err
    with pytest.raises(ConfigError, match="^--cpus-per-trial must be >= 1, got 0$"):
        backend_config(build_parser().parse_args([*base, "--cpus-per-trial", "0"]))
    with pytest.raises(ConfigError, match="^--ray-address needs --backend ray$"):
        backend_config(build_parser().parse_args([*base, "--ray-address", "auto"]))
