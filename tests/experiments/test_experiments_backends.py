"""Trials and the local backend without training: finished trials are skipped, each one
that finishes is reported on one line, and the backend options reach every grid command."""

from __future__ import annotations

import functools
import logging
import os

import pytest
import torch

from rsdistill.cli.main import build_parser
from rsdistill.cli.backend_options import backend_config
from rsdistill.experiments import seeds as seeds_mod
from rsdistill.experiments.backends import BackendConfig, Trial, TrialBatch, run_trials
from rsdistill.experiments.backends import local as local_mod
from rsdistill.experiments.backends import ray_backend as ray_mod
from rsdistill.experiments.backends.trial import Schedule
from rsdistill.errors import ConfigError
from rsdistill.io import write_json
from rsdistill.runtime.rundir import METRICS_FILE, STATE_FILE


def _write_metrics(paths, accuracy, calls, **kwargs):
    calls.append(kwargs)
    for path in paths:
        write_json(path, {"accuracy": accuracy})


def _trial(root, label, accuracy, calls, members=("a",)):
    paths = tuple(root / label / m / METRICS_FILE for m in members)
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    return Trial(label, root / label, paths,
                 functools.partial(_write_metrics, paths, accuracy, calls))


def test_finished_trials_are_skipped_and_each_new_one_is_one_line(tmp_path, caplog):
    calls = []
    done = _trial(tmp_path, "seed0", 0.5, calls)
    write_json(done.results[0], {"accuracy": 0.5})
    fused = _trial(tmp_path, "seed1", 0.75, calls, members=("alpha0.00", "alpha0.50"))
    (fused.run_dir / STATE_FILE).write_bytes(b"an interrupted attempt's checkpoint")
    with caplog.at_level(logging.INFO, logger="rsdistill"):
        results = run_trials(TrialBatch([done, fused], tmp_path, jobs=1, progress=False))
    assert len(calls) == 1 and calls[0]["announce"] is True  # only seed1 trained
    assert [r.label for r in results] == ["seed1"] and results[0].resumed
    assert results[0].pid == os.getpid()  # jobs=1: in this process
    lines = [r.getMessage() for r in caplog.records]
    assert "seed0: finished earlier, not retrained" in lines
    line = next(m for m in lines if m.startswith("seed1: "))
    assert line.startswith("seed1: accuracy alpha0.00 0.7500, alpha0.50 0.7500 in ")
    assert f"(pid {os.getpid()}, resumed from its last.pt) -> {fused.run_dir}" in line
    assert run_trials(TrialBatch([done, fused], tmp_path, jobs=1, progress=False)) == []


def test_cpus_per_trial_fix_a_local_trials_threads(tmp_path, monkeypatch):
    import torch
    seen = []
    trial = Trial("t", tmp_path / "t", (tmp_path / "t.json",),
                  lambda **kw: seen.append(torch.get_num_threads()) or write_json(
                      tmp_path / "t.json", {"accuracy": 1.0}))
    before = torch.get_num_threads()
    try:
        run_trials(TrialBatch([trial], tmp_path, jobs=1, progress=False),
                   BackendConfig(cpus_per_trial=2))
    finally:
        torch.set_num_threads(before)
    assert seen == [2]


@pytest.mark.parametrize("command", [
    ["sweep", "--teacher", "t", "--student", "resnet8", "--out", "o"],
    ["pareto", "--teacher", "t", "--out", "o"],
    ["compare", "--student", "resnet8", "--out", "o"],
    ["run"],
])
def test_every_grid_command_takes_the_backend_options(command):
    args = build_parser().parse_args([*command, "--backend", "local", "--cpus-per-trial", "2",
                                      "--max-retries", "1", "--gpus-per-trial", "0.5"])
    assert backend_config(args) == BackendConfig("local", None, 2, 0.5, 1)


def test_an_unreachable_ray_address_is_one_line_at_once(tmp_path):
    pytest.importorskip("ray")
    import socket
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    trial = Trial("t", tmp_path / "t", (tmp_path / "x",), dict)
    with pytest.raises(ConfigError, match=f"cannot start or reach a Ray cluster at "
                                          f"127.0.0.1:{port} .*ray start --head"):
        run_trials(TrialBatch([trial], tmp_path, progress=False),
                   BackendConfig("ray", address=f"127.0.0.1:{port}"))


# ------------------------------------------------------------------- the ETA's schedule

def test_trials_in_this_process_get_their_places_one_at_a_time(tmp_path):
    calls = []
    trials = [_trial(tmp_path, f"seed{i}", 0.5, calls) for i in range(3)]
    run_trials(TrialBatch(trials, tmp_path, jobs=1, progress=False, what="sweep"))
    assert [c["schedule"] for c in calls] == [Schedule("sweep", i, 3, 1) for i in range(3)]


@pytest.mark.parametrize("jobs, cpus_per_trial, slots", [(0, None, 4), (0, 2, 2), (3, None, 3),
                                                         (0, 3, 1)])
def test_the_eta_counts_the_processes_the_local_pool_runs(tmp_path, monkeypatch, jobs,
                                                          cpus_per_trial, slots):
    # 4 cores: one trial per core, or as many as --cpus-per-trial leaves room for, or --jobs.
    monkeypatch.setattr(local_mod, "core_budget", lambda: 4)
    monkeypatch.setattr(seeds_mod, "core_budget", lambda: 4)
    pools = []
    monkeypatch.setattr(local_mod, "_in_processes",
                        lambda batch, n, fixed: pools.append((n, batch.trials)) or iter(()))
    calls = []
    trials = [_trial(tmp_path, f"cell{i // 3} seed{i % 3}", 0.5, calls) for i in range(6)]
    before = torch.get_num_threads()  # one trial at a time sets --cpus-per-trial here
    try:
        run_trials(TrialBatch(trials, tmp_path, jobs=jobs, progress=False, what="Pareto grid"),
                   BackendConfig(cpus_per_trial=cpus_per_trial))
    finally:
        torch.set_num_threads(before)
    if slots == 1:  # one at a time runs in this process
        assert not pools and [c["schedule"].slots for c in calls] == [1] * 6
        return
    (started, shipped), = pools
    assert started == slots
    # Every cell's seeds in one schedule: the pool runs them all, `slots` at a time.
    assert [t.schedule for t in shipped] == [Schedule("Pareto grid", i, 6, slots)
                                             for i in range(6)]


def test_ray_runs_as_many_trials_at_once_as_its_live_nodes_hold():
    class FakeRay:
        @staticmethod
        def nodes():
            return [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}},
                    {"Alive": True, "Resources": {"CPU": 3.0}},
                    {"Alive": False, "Resources": {"CPU": 64.0}}]

    assert ray_mod._slots(FakeRay, 2, 0.0) == 4 + 1
    assert ray_mod._slots(FakeRay, 4, 0.0) == 2
    assert ray_mod._slots(FakeRay, 2, 0.5) == 2  # the GPU holds two; the other node none
    assert ray_mod._slots(FakeRay, 16, 0.0) == 1


def test_a_schedule_counts_the_waves_after_a_trial():
    # 5 trials, 2 at a time: waves {0, 1}, {2, 3}, {4}.
    assert [Schedule("sweep", i, 5, 2).waves_after() for i in range(5)] == [2, 2, 1, 1, 0]
