"""One ``rsdistill distill`` run builds its method's loss once and checks α once."""

from __future__ import annotations

import functools
import sys
from dataclasses import replace

import pytest

import rsdistill.losses.base as base
from rsdistill.cli.main import main
from rsdistill.losses import METHODS

TRAIN = ["--epochs", "1", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
         "--no-progress"]
ALPHA = 0.7  # not the default, so the parser's defaults are not counted as the run's


def _count_builds(monkeypatch, method: str) -> list:
    calls = []
    original = METHODS.get(method)
    top = original.factory if original.variants is None else None

    @functools.wraps(top)
    def counting(*args, **kwargs):
        calls.append(kwargs)
        return top(*args, **kwargs)

    monkeypatch.setitem(METHODS._items, method, replace(original, factory=counting))
    return calls


def _count_alpha_checks(monkeypatch) -> list:
    checks = []
    original = base.check_alpha

    def counting(value):
        checks.append(value)
        return original(value)

    # Every module that imported the check by name.
    for module in list(sys.modules.values()):
        if module is not None and module.__name__.startswith("rsdistill") and \
                getattr(module, "check_alpha", None) is original:
            monkeypatch.setattr(module, "check_alpha", counting)
    return checks


@pytest.mark.parametrize("method, extra", [("kd", []), ("fitnet", []), ("dml", [])])
def test_a_distill_run_builds_its_loss_once_and_checks_alpha_once(
        tiny_teacher, tiny_tree3, tiny_cache, tmp_path, monkeypatch, method, extra):
    builds = _count_builds(monkeypatch, method)
    checks = _count_alpha_checks(monkeypatch)
    assert main(["distill", "--teacher", str(tiny_teacher), "--student", "resnet8",
                 "--method", method, "--alpha", str(ALPHA), "--nuclear-beta", "0.1",
                 "--cache-dir", str(tiny_cache), *TRAIN, *extra,
                 "--out", str(tmp_path / "run")]) == 0
    assert (len(builds), checks.count(ALPHA)) == (1, 1)
    assert (tmp_path / "run" / "model.pt").is_file()
