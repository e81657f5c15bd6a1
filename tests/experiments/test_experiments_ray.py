"""The Ray backend against a real local Ray instance (2 CPUs): a sweep and a Pareto grid
give the same metrics as the local backend, a killed worker is retried from its last.pt,
Ctrl-C leaves the runs resumable, and a --out the nodes do not share is one error line.

One Ray instance serves the whole module (starting one takes seconds); everything trains
resnet8 on the session's tiny 3-class tree at 16 px.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from rsdistill.cli.main import main
from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.experiments.backends import BackendConfig, Trial, TrialBatch, run_trials
from rsdistill.experiments.backends.trial import check_token, execute_trial, new_token
from rsdistill.experiments.grid import SweepConfig
from rsdistill.experiments.pareto import ParetoConfig, run_pareto
from rsdistill.experiments.sweep import run_sweep, sweep_plan
from rsdistill.io import read_json
from rsdistill.losses import MethodConfig
from rsdistill.runtime.rundir import LOCK_FILE, METRICS_FILE, STATE_FILE
from rsdistill.training.config import TrainConfig

pytestmark = pytest.mark.slow

# Every metric that does not measure wall-clock time: equal to the last bit across backends.
EXACT = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted",
         "recall_weighted", "f1_weighted", "per_class", "confusion_matrix", "num_samples",
         "params", "flops", "first_layer")
RAY = BackendConfig("ray", max_retries=2)


def data_cfg(tree, cache) -> DataConfig:
    return DataConfig(dataset="folder", data_root=str(tree), image_size=16,
                      cache_dir=str(cache), workers=1)


def train_cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(model="resnet8", epochs=2, batch_size=8, device="cpu",
                                 latency_runs=2), **kw})


def sweep_cfg(teacher, **kw) -> SweepConfig:
    return SweepConfig(**{**dict(teacher=str(teacher), alphas=[0.0, 0.5], betas=["0"], seeds=2,
                                 method=MethodConfig(temperature=4.0)), **kw})


def exact_metrics(root: Path) -> dict:
    """Every metrics.json under ``root`` (by relative path), wall-clock keys left out."""
    return {str(p.relative_to(root)): {k: read_json(p)[k] for k in EXACT}
            for p in sorted(root.rglob(METRICS_FILE))}


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    # A short folder of its own (Ray's sockets live there; their paths have a length limit),
    # removed with everything Ray wrote once the module is done.
    temp = tempfile.mkdtemp(prefix="rsd-ray-")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def test_a_sweep_on_ray_equals_the_local_backend(ray_instance, tiny_teacher, tmp_path, tiny_tree3,
                                                   tiny_cache):
    data = data_cfg(tiny_tree3, tiny_cache)
    local = run_sweep(tmp_path / "local", data, train_cfg(), sweep_cfg(tiny_teacher),
                      progress=False, jobs=1)
    on_ray = run_sweep(tmp_path / "ray", data, train_cfg(), sweep_cfg(tiny_teacher),
                       progress=False, backend=RAY)
    expected = exact_metrics(tmp_path / "local")
    assert len(expected) == 4  # 2 seeds x 2 students
    assert exact_metrics(tmp_path / "ray") == expected
    assert [r["accuracy"] for r in on_ray["rows"]] == [r["accuracy"] for r in local["rows"]]
    # The token that proved shared storage is gone once the grid is done.
    assert not list((tmp_path / "ray").glob(".rsdistill-cluster*"))


def test_a_pareto_grid_on_ray_equals_the_local_backend(ray_instance, tiny_teacher, tmp_path,
                                                        tiny_tree3, tiny_cache):
    cfg = ParetoConfig(teacher=str(tiny_teacher), students=["resnet8"], sizes=[16, 20], seeds=1,
                       method=MethodConfig(alpha=0.5, temperature=4.0))
    data = data_cfg(tiny_tree3, tiny_cache)
    local = run_pareto(tmp_path / "local", data, train_cfg(), cfg, progress=False, jobs=1)
    on_ray = run_pareto(tmp_path / "ray", data, train_cfg(), cfg, progress=False, backend=RAY)
    expected = exact_metrics(tmp_path / "local")
    assert sorted(expected) == [f"resnet8_{s}/seed0/alpha{a}_beta0/metrics.json"
                                for s in (16, 20) for a in ("0.00", "0.50")]
    assert exact_metrics(tmp_path / "ray") == expected
    assert [r["accuracy_mean"] for r in on_ray] == [r["accuracy_mean"] for r in local]


def _when_epoch_one_is_saved(seed_dir: Path, act) -> threading.Thread:
    """A thread that waits for the trial's first last.pt, then calls ``act(pid)`` with the
    pid of the process training it (the run-directory lock names its holder)."""
    seen = {}

    def watch() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if (seed_dir / STATE_FILE).is_file():
                pid = (seed_dir / LOCK_FILE).read_text().strip()
                if pid.isdigit() and not (seed_dir / "alpha0.50_beta0" / METRICS_FILE).exists():
                    seen["pid"] = int(pid)
                    act(int(pid))
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.seen = seen
    thread.start()
    return thread


def _plan_and_run(out: Path, data: DataConfig, teacher, cfg: BackendConfig, epochs: int):
    with sweep_plan(out, data, train_cfg(epochs=epochs), sweep_cfg(teacher, seeds=1),
                    resume=True, progress=False) as plan:
        results = run_trials(TrialBatch(plan.trials, plan.out, progress=False), cfg)
        plan.summarize()
    return results


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_teacher, tiny_tree3, tiny_cache) -> dict:
    """The metrics of one seed trained 5 epochs without interruption (local backend)."""
    out = tmp_path_factory.mktemp("ray-whole") / "whole"
    run_sweep(out, data_cfg(tiny_tree3, tiny_cache), train_cfg(epochs=5),
              sweep_cfg(tiny_teacher, seeds=1), progress=False, jobs=1)
    return exact_metrics(out)


def test_a_killed_worker_is_retried_from_its_last_checkpoint(ray_instance, tiny_teacher, tmp_path,
                                                             tiny_tree3, tiny_cache,
                                                             uninterrupted):
    data = data_cfg(tiny_tree3, tiny_cache)
    killer = _when_epoch_one_is_saved(tmp_path / "killed" / "seed0",
                                      lambda pid: os.kill(pid, signal.SIGKILL))
    results = _plan_and_run(tmp_path / "killed", data, tiny_teacher, RAY, epochs=5)
    killer.join()
    assert killer.seen["pid"] != os.getpid()  # a Ray worker, not this process
    assert [r.resumed for r in results] == [True]  # the retry found the killed one's last.pt
    assert results[0].pid != killer.seen["pid"]
    assert exact_metrics(tmp_path / "killed") == uninterrupted


def test_ctrl_c_stops_the_trials_and_a_rerun_continues(ray_instance, tiny_teacher, tmp_path,
                                                       tiny_tree3, tiny_cache, uninterrupted):
    data = data_cfg(tiny_tree3, tiny_cache)
    ctrl_c = _when_epoch_one_is_saved(tmp_path / "cut" / "seed0",
                                      lambda pid: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        _plan_and_run(tmp_path / "cut", data, tiny_teacher, RAY, epochs=5)
    ctrl_c.join()
    worker = ctrl_c.seen["pid"]
    deadline = time.monotonic() + 60
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)  # the trial was stopped, not left training
    assert not (tmp_path / "cut" / "seed0" / "alpha0.50_beta0" / METRICS_FILE).exists()
    results = _plan_and_run(tmp_path / "cut", data, tiny_teacher, RAY, epochs=5)
    assert [r.resumed for r in results] == [True]
    assert exact_metrics(tmp_path / "cut") == uninterrupted


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has finished; only its parent's wait is missing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_results_the_driver_cannot_see_are_one_error_line(ray_instance, tmp_path, monkeypatch):
    import rsdistill.experiments.backends.ray_backend as ray_backend
    monkeypatch.setattr(ray_backend, "VISIBLE_WAIT_S", 0.5)
    # A trial that "writes" its results where the driver does not see them (another
    # node's local disk): dict() stands for the training, it accepts the trial's keywords.
    trial = Trial("seed 0", tmp_path / "seed0", (tmp_path / "seed0" / METRICS_FILE,), dict)
    with pytest.raises(ConfigError, match=r"is not shared between the cluster's nodes .*"
                                          r"not visible to the driver.*docs/cluster.md"):
        run_trials(TrialBatch([trial], tmp_path, progress=False), RAY)
    assert not list(tmp_path.glob(".rsdistill-cluster*"))


def test_a_node_that_cannot_see_the_token_refuses_to_train(tmp_path):
    token = new_token(tmp_path)  # never written: this "node" does not see --out
    trial = Trial("seed 0", tmp_path / "seed0", (), functools.partial(pytest.fail, "trained"))
    with pytest.raises(ConfigError, match=f"--out {tmp_path} is not shared .*token file is "
                                          "missing"):
        execute_trial(trial, token=token)
    Path(token.path).write_text("another driver's\n")
    with pytest.raises(ConfigError, match="another driver's token"):
        check_token(token)
    Path(token.path).write_text(token.value)
    check_token(token)


def test_without_ray_the_backend_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys,
                                                               tiny_teacher):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'rsdistill\[ray\]'"):
        BackendConfig("ray").validate()
    assert main(["sweep", "--teacher", str(tiny_teacher), "--student", "resnet8",
                 "--backend", "ray", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rsdistill: error: --backend ray needs Ray: pip install 'rsdistill[ray]'"]
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("cfg, needle", [
    (BackendConfig("ray", cpus_per_trial=0), "--cpus-per-trial"),
    (BackendConfig("ray", gpus_per_trial=-1), "--gpus-per-trial"),
    (BackendConfig("ray", max_retries=-1), "--max-retries"),
    (BackendConfig("local", address="auto"), "--ray-address needs --backend ray"),
    (BackendConfig("spark"), "unknown backend 'spark'"),
])
def test_bad_backend_settings_are_refused(cfg, needle):
    with pytest.raises(ConfigError, match=needle):
        cfg.validate()


def test_a_trial_no_node_can_hold_is_refused_not_left_waiting(ray_instance, tmp_path):
    trial = Trial("seed 0", tmp_path / "seed0", (tmp_path / "x",), dict)
    with pytest.raises(ConfigError, match="no node of the Ray cluster has 64 CPU"):
        run_trials(TrialBatch([trial], tmp_path, progress=False),
                   BackendConfig("ray", cpus_per_trial=64))


def test_the_sweep_command_on_ray_reports_each_trial_on_one_line(
        ray_instance, tiny_teacher, tmp_path, tiny_tree3, tiny_cache, caplog):
    import logging
    import re
    out = tmp_path / "cli"
    with caplog.at_level(logging.INFO, logger="rsdistill"):
        assert main(["sweep", "--teacher", str(tiny_teacher), "--student", "resnet8", "--dataset",
                     "folder", "--data-root", str(tiny_tree3), "--cache-dir", str(tiny_cache),
                     "--image-size", "16", "--workers", "1", "--epochs", "1", "--batch-size",
                     "8", "--latency-runs", "2", "--device", "cpu", "--alphas", "0,0.5",
                     "--seeds", "2", "--no-progress", "--backend", "ray", "--out",
                     str(out)]) == 0
    lines = [r.getMessage() for r in caplog.records
             if re.match(r"seed \d: accuracy ", r.getMessage())]
    assert len(lines) == 2, lines
    for line in lines:
        seed = line[5]
        assert re.fullmatch(rf"seed {seed}: accuracy alpha0.00_beta0 [01]\.\d{{4}}, "
                            rf"alpha0.50_beta0 [01]\.\d{{4}} in \d+\.\d s on \S+/[0-9a-f]{{8}} "
                            rf"\(pid \d+\) -> {re.escape(str(out))}/seed{seed}", line), line
    assert (out / "results.json").is_file()
