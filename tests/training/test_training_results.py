"""What the final evaluation says: a line per stage for one run, and for a fused pass of
several members one line before and one summary after, not three lines per member."""

from __future__ import annotations

import logging

from rsdistill.training.results import StageReporter


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rsdistill.training.results"]


def test_one_run_logs_each_stage(caplog):
    caplog.set_level(logging.INFO)
    stage = StageReporter(progress=False)
    stage.named("")("timing the test split")
    assert messages(caplog) == ["final evaluation: timing the test split"]


def test_a_fused_pass_logs_one_line_before_and_one_summary(caplog):
    caplog.set_level(logging.INFO)
    stage = StageReporter(progress=False, members=12)
    for i in range(12):
        for text in ("predicting", "timing", "latency"):
            stage.named(f"m{i}")(text)
    stage.summary([f"m{i}" for i in range(12)], [{"accuracy": i / 20} for i in range(12)])
    lines = messages(caplog)
    assert len(lines) == 2
    assert lines[0].startswith("final evaluation of 12 students:")
    assert "test accuracy 0.000 to 0.550 (best m11)" in lines[1]
