"""Every subcommand's ``--help``: each option explained, one meaning of
``--inference-threads 0``, and no training-only option where nothing trains."""

from __future__ import annotations

import argparse

import pytest

from rsdistill.training.config import THREADS_ZERO
from rsdistill.cli.main import build_parser


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.option_strings[-1] if a.option_strings[0] == "-T" else a.option_strings[0]: a
            for a in p._actions if a.option_strings}


def test_every_option_has_help():
    missing = [f"{name} {flag}" for name, p in subcommands().items()
               for flag, action in options(p).items() if not action.help]
    assert missing == []


def test_inference_threads_zero_means_one_thing():
    texts = {name: options(p)["--inference-threads"].help
             for name, p in subcommands().items() if "--inference-threads" in options(p)}
    assert len(texts) >= 4
    assert all(THREADS_ZERO in text for text in texts.values()), texts


@pytest.mark.parametrize("name", ["export", "quantize", "evaluate", "compress", "data"])
def test_no_training_only_options_where_nothing_trains(name):
    p = subcommands()[name]
    if name == "data":  # 'data info' is the one that reads a dataset
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices["info"]
    flags = set(options(p))
    assert not flags & {"--no-crop", "--no-hflip", "--no-vflip", "--no-rot90", "--mix",
                        "--mix-alpha", "--momentum", "--lr", "--epochs"}
    assert name == "data" or "--dataset" in flags  # the data options themselves stay


def test_shared_flags_read_the_same_everywhere():
    from rsdistill.experiments.compare import CompareConfig
    from rsdistill.experiments.grid import SweepConfig
    from rsdistill.experiments.pareto import ParetoConfig

    cmds = subcommands()
    temperature = {n: options(p)["--temperature"].help for n, p in cmds.items()
                   if "--temperature" in options(p)}
    assert set(temperature) == {"distill", "sweep", "compare", "pareto"}
    assert len({t.replace(" of every method", "") for t in temperature.values()}) == 1
    assert "1 for dml" in temperature["distill"]  # read from the METHODS registry
    # Each --seeds default is its config dataclass's (argparse's is None: "not given"),
    # stated in the help; run's comes from the study config.
    seeds = {n: options(cmds[n])["--seeds"] for n in ("sweep", "compare", "pareto", "run")}
    assert {a.default for a in seeds.values()} == {None}
    assert {n: a.help.split("(default ")[1] for n, a in seeds.items()} == {
        "sweep": f"{SweepConfig().seeds})", "compare": f"{CompareConfig().seeds})",
        "pareto": f"{ParetoConfig().seeds})", "run": "the config's)"}
    metavars = {n: options(p)["--method-option"].metavar for n, p in cmds.items()
                if "--method-option" in options(p)}
    assert set(metavars.values()) == {"[METHOD:]KEY=VALUE"}
    assert set(metavars) == {"distill", "sweep", "compare", "pareto"}


def test_method_option_has_one_syntax(capsys):
    from rsdistill.cli.compare_cmd import parse_compare_options
    from rsdistill.cli.training_args import method_settings, split_method_options
    from rsdistill.errors import ConfigError

    assert split_method_options(["fitnet:hint_weight=50", "warmup_epochs=1", "x:y=a:b"]) == {
        "fitnet": ["hint_weight=50"], None: ["warmup_epochs=1"], "x": ["y=a:b"]}
    args = argparse.Namespace(method="fitnet", method_options=["fitnet:hint_weight=50"],
                              student_layers=None, teacher_layers=None)
    assert method_settings(args)["method_options"] == {"hint_weight": 50}
    args.method_options = ["dkd:warmup_epochs=1"]
    with pytest.raises(ConfigError, match="names method dkd, but this run trains fitnet"):
        method_settings(args)
    assert parse_compare_options(["fitnet:hint_weight=50"]) == {"fitnet": {"hint_weight": 50}}
    with pytest.raises(ConfigError, match="METHOD:KEY=VALUE"):
        parse_compare_options(["hint_weight=50"])


def test_advice_under_run_names_what_run_takes():
    from rsdistill.cli.main import adapt_advice, build_parser

    parser = build_parser()
    text = ("weights became non-finite; lower --lr or check the data; pass --skip-corrupt, "
            "--download or --data-root DIR; fix that and rerun with --resume to continue")
    assert adapt_advice(text, parser, "run") == (
        "weights became non-finite; lower 'lr' in the study config or check the data; pass "
        "'skip_corrupt' in the study config, --download or --data-root DIR; fix that and rerun "
        "with the same command (it continues where it stopped) to continue")
    assert adapt_advice(text, parser, "train") == text
