"""The study's ETA: the measured pace of the stages timed so far times the epochs left,
unknown before a training stage has been timed; stage lines from a fake clock."""

from __future__ import annotations

import logging
import re

from rsdistill.experiments.backends.trial import Schedule
from rsdistill.experiments.study import StudyConfig, study_stages
from rsdistill.experiments.sweep import batch_eta
from rsdistill.experiments.study_progress import (
    Stage, StudyProgress, duration, eta_seconds, seconds_per_epoch, stage_done_line,
)

STAGES = [Stage("data"), Stage("teacher", 40), Stage("sweep", 75), Stage("report")]


def test_the_eta_is_unknown_until_a_training_stage_is_timed():
    assert eta_seconds(STAGES, {}) is None
    assert eta_seconds(STAGES, {"data": 12.0}) is None
    # A teacher found complete (a resumed study) is no measurement either.
    assert eta_seconds(STAGES, {"data": 12.0, "teacher": None}) is None
    assert "ETA unknown" in stage_done_line(STAGES, "data", {"data": 12.0}, 12.0)


def test_the_eta_is_the_pace_times_the_epochs_left():
    took = {"data": 12.0, "teacher": 80.0}  # 2 s per teacher epoch
    assert seconds_per_epoch(STAGES, took) == 2.0
    assert eta_seconds(STAGES, took) == 150.0  # 75 sweep epochs
    line = stage_done_line(STAGES, "teacher", took, 92.0)
    assert line.startswith("stage 2/4 teacher done in 1 min 20 s; study 1 min 32 s so far, "
                           "study done at about ")
    assert line.endswith("UTC (2 min 30 s left: 75 epochs at 2.00 s/epoch so far)")


def test_every_timed_stage_counts_in_the_pace():
    stages = [Stage("teacher", 10), Stage("assistant", 10), Stage("sweep", 20)]
    assert eta_seconds(stages, {"teacher": 10.0, "assistant": 30.0}) == 40.0  # 2 s/epoch
    assert eta_seconds(stages, {"teacher": None, "assistant": 30.0}) == 60.0  # 3 s/epoch


def test_nothing_left_to_train_after_the_sweep():
    took = {"data": 1.0, "teacher": 80.0, "sweep": 100.0}
    assert eta_seconds(STAGES, took) == 0.0
    assert stage_done_line(STAGES, "sweep", took, 181.0).endswith("nothing left to train")


def test_durations_read_plainly():
    assert [duration(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]


def test_progress_logs_a_line_per_stage_with_a_fake_clock(caplog):
    ticks = iter([0.0, 0.0, 5.0, 5.0, 45.0, 45.0, 145.0, 145.0, 146.0])
    progress = StudyProgress(STAGES, clock=lambda: next(ticks))
    caplog.set_level(logging.INFO)
    for name in ("data", "teacher", "sweep", "report"):
        progress.begin(name, name)
        progress.done(name)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "stage 1/4: data"
    assert lines[1].startswith("stage 1/4 data done in 5 s; study 5 s so far, ETA unknown")
    assert lines[3].endswith("UTC (1 min 15 s left: 75 epochs at 1.00 s/epoch so far)")
    assert lines[5].startswith("stage 3/4 sweep done in 1 min 40 s; study 2 min 25 s so far")
    assert lines[7].startswith("stage 4/4 report done in 1 s; study 2 min 26 s")


def test_the_study_counts_its_stages_epochs():
    cfg = StudyConfig()  # teacher 40 epochs, students 25 epochs × 3 seeds
    assert study_stages(cfg) == STAGES
    cfg.assistant.model, cfg.assistant.epochs = "resnet8x4", 7
    assert [s for s in study_stages(cfg) if s.name == "assistant"] == [Stage("assistant", 7)]


def test_the_sweep_and_the_study_write_their_etas_alike():
    # Both kinds of line land in one study log: one format, the same duration words.
    eta = re.compile(r"(\w[\w ]*) done at about \d\d:\d\d UTC \((\d+ min \d\d s|\d+ s) left"
                     r"(: [^)]+)?\)")
    sweep = batch_eta(Schedule("sweep", 0, 1, 1), 10)(5, 15.0)
    study = stage_done_line(STAGES, "teacher", {"data": 12.0, "teacher": 80.0}, 92.0)
    assert eta.fullmatch(sweep).groups() == ("sweep", "1 min 15 s", None)
    tail = study.split(", ", 1)[1]
    assert eta.fullmatch(tail).groups()[:2] == ("study", "2 min 30 s")
