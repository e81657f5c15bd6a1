"""Every subcommand's ``--help``: each option explained, one meaning of
``--inference-threads 0``, and no training-only option where nothing trains."""

from __future__ import annotations

import argparse

import pytest

from rsdistill.cli.common import THREADS_ZERO
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
