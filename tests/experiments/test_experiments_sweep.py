"""α sweeps as fused runs: parsing, layout, equality with single runs, resume, statistics.

Everything trains resnet8 on the session's tiny 3-class tree at 16 px for 2 epochs.
"""

from __future__ import annotations

import functools
import csv
import logging
import multiprocessing
import math
import statistics
from pathlib import Path

import pytest
import torch
import yaml

import rsdistill.experiments.backends.local as local_mod
import rsdistill.experiments.seeds as seeds_mod
import rsdistill.experiments.sweep as sweep_mod
import rsdistill.training.members as members_mod
from rsdistill.experiments import procedures
from rsdistill.experiments.backends import Trial
from rsdistill.experiments.backends.trial import Schedule
from rsdistill.data.augment import BatchAugment
from rsdistill.data.module import DataConfig
from rsdistill.runtime.rundir import MODEL_FILE, STATE_FILE
from rsdistill.runtime.checkpoint import safe_load
from rsdistill.experiments.records import DistillConfig, load_run_config
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.grid import (
    SweepConfig,
    beta_label,
    member_name,
    parse_alphas,
    parse_betas,
)
from rsdistill.experiments.sweep import aggregate, run_sweep
from rsdistill.runtime.rundir import METRICS_FILE
from rsdistill.training.config import TrainConfig
from rsdistill.training.trainer import Trainer
from rsdistill.errors import ConfigError
from rsdistill.io import read_json
from rsdistill.losses import MethodConfig

EPOCHS = 2
BATCH = 8
# Wall-clock measurements: the only row values that may differ between identical runs.
TIMING = ("latency_ms_p50", "test_seconds", "seconds_per_epoch")
# Metric keys that must agree exactly between a fused member and its single run.
EXACT = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted",
         "recall_weighted", "f1_weighted", "per_class", "confusion_matrix", "num_samples",
         "params", "flops", "first_layer")


def data_cfg(tree, cache) -> DataConfig:
    return DataConfig(dataset="folder", data_root=str(tree), image_size=16,
                      cache_dir=str(cache), workers=1)


def train_cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(model="resnet8", epochs=EPOCHS, batch_size=BATCH, device="cpu",
                                 latency_runs=3), **kw})


def sweep_cfg(teacher, **kw) -> SweepConfig:
    return SweepConfig(**{**dict(teacher=str(teacher), alphas=[0.0, 0.5], betas=["0"], seeds=2,
                                 method=MethodConfig(temperature=4.0)), **kw})


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def key_tree(d: dict) -> dict:
    """The nested key structure of a metrics dict (values dropped)."""
    return {k: key_tree(v) if isinstance(v, dict) and k != "per_class" else None
            for k, v in d.items()}


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tiny_teacher, tiny_tree3, tiny_cache):
    """α ∈ {0, 0.5}, β = 0, seeds 0 and 1: two fused passes of two students."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("sweep") / "sweep"
    summary = run_sweep(out, data_cfg(tiny_tree3, tiny_cache), train_cfg(), sweep_cfg(tiny_teacher),
                        progress=False)
    return out, summary


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_teacher, tiny_tree3, tiny_cache):
    """The α = 0.5 student of seed 0, trained alone."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("sweep-single") / "single"
    metrics = run_training(out, data_cfg(tiny_tree3, tiny_cache), train_cfg(seed=0),
                           DistillConfig(teacher=str(tiny_teacher), alpha=0.5, temperature=4.0,
                                         nuclear_beta="0"), progress=False)
    return out, metrics


# ----------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, expected", [
    ("0,0.1,0.3", [0.0, 0.1, 0.3]),
    (" 0.2 , 0.4 ,", [0.2, 0.4]),
    ("0.5", [0.5]),
    ("0:0.5:0.1", [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
    ("0:1:0.25", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("0.1:0.1:0.05", [0.1]),
    ("0,0.1,0.1,0", [0.0, 0.1]),  # duplicates dropped, order kept
])
def test_parse_alphas(text, expected):
    assert parse_alphas(text) == expected


def test_parse_alphas_range_is_inclusive_with_exact_decimals():
    values = parse_alphas("0:0.5:0.05")
    assert len(values) == 11
    assert values == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
    # Exact decimals: what the run directories and tables are named after.
    assert [repr(v) for v in values][3] == "0.15"
    assert all(v == round(v, 2) for v in values)
    assert [member_name(a, "0") for a in values][:4] == [
        "alpha0.00_beta0", "alpha0.05_beta0", "alpha0.10_beta0", "alpha0.15_beta0"]
    assert parse_alphas("0:0.3:0.1") == [0.0, 0.1, 0.2, 0.3]  # 0.30000000000000004 → 0.3


@pytest.mark.parametrize("text", [
    "", " ", ",", "a,b", "0.1,x", "0:0.5", "0:0.5:0.1:0.2", "0:0.5:0", "0:0.5:-0.1",
    "x:0.5:0.1", "1.5", "-0.1", "0,2", "0:1.5:0.5", "nan",
])
def test_parse_alphas_rejects_bad_strings(text):
    with pytest.raises(ConfigError):
        parse_alphas(text)


def test_parse_betas_and_labels():
    assert parse_betas("0,alpha") == ["0", "alpha"]
    assert parse_betas(" 0 , 0.01,ALPHA, 0") == ["0", "0.01", "ALPHA"]
    assert [beta_label(b) for b in ("0", "0.0", "0.010", "alpha", "Alpha")] == \
        ["0", "0", "0.01", "alpha", "alpha"]
    assert member_name(0.5, "alpha") == "alpha0.50_betaalpha"
    for bad in ("", ",", "beta", "-1", "0,x"):
        with pytest.raises(ConfigError):
            parse_betas(bad)


@pytest.mark.parametrize("kw", [dict(seeds=0), dict(method=MethodConfig(temperature=0.0)),
                                dict(alphas=[1.5]), dict(betas=["nope"])])
def test_sweep_config_validation(kw, tmp_path):
    cfg = sweep_cfg(tmp_path / "teacher", **kw)
    with pytest.raises(ConfigError):
        cfg.validate()
    # run_sweep refuses it before touching the output directory or the data.
    with pytest.raises(ConfigError):
        run_sweep(tmp_path / "out", DataConfig(dataset="folder", data_root=str(tmp_path)),
                  train_cfg(), cfg, progress=False)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- aggregate

def test_aggregate_mean_and_std_by_alpha_and_beta():
    def row(alpha, beta, seed, acc):
        return {"alpha": alpha, "beta": beta, "seed": seed, "accuracy": acc, "precision_macro": acc,
                "recall_macro": acc, "f1_macro": acc / 2, "latency_ms_p50": 1.0,
                "test_seconds": 0.5, "effective_rank": 3.0}

    rows = [row(0.0, "0", 0, 0.5), row(0.0, "0", 1, 0.7), row(0.5, "0", 0, 0.9),
            row(0.5, "alpha", 0, 0.8), row(0.5, "0", 1, 0.9)]
    agg = aggregate(rows)
    assert [(r["alpha"], r["beta"], r["seeds"]) for r in agg] == \
        [(0.0, "0", 2), (0.5, "0", 2), (0.5, "alpha", 1)]
    a0, a5, a5n = agg
    assert a0["accuracy_mean"] == pytest.approx(0.6)
    assert a0["accuracy_std"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert a0["accuracy_std"] > 0
    assert a0["f1_macro_mean"] == pytest.approx(0.3)
    assert a5["accuracy_std"] == 0.0  # two seeds that agree
    assert a5n["accuracy_std"] == 0.0 and a5n["accuracy_mean"] == 0.8  # one seed
    assert a0["latency_ms_p50_std"] == 0.0 and a0["effective_rank_mean"] == 3.0


# ----------------------------------------------------------------------------- a real sweep

def test_sweep_writes_rows_aggregate_and_run_directories(sweep, tiny_teacher):
    out, summary = sweep
    res = read_json(out / "results.json")
    assert res["rows"] == summary["rows"]
    rows = res["rows"]
    assert [(r["alpha"], r["beta"], r["seed"]) for r in rows] == \
        [(0.0, "0", 0), (0.5, "0", 0), (0.0, "0", 1), (0.5, "0", 1)]
    for r in rows:
        assert r["run"] == f"seed{r['seed']}/{member_name(r['alpha'], '0')}"
        run = out / r["run"]
        for name in (MODEL_FILE, METRICS_FILE, "config.yaml", "epochs.csv", "versions.json"):
            assert (run / name).is_file(), run / name
        m = read_json(run / METRICS_FILE)
        assert r["accuracy"] == m["accuracy"] and r["f1_macro"] == m["f1_macro"]
        assert r["latency_ms_p50"] == m["inference"]["latency_ms_p50"]
        assert r["effective_rank"] == m["first_layer"]["effective_rank"]
        assert m["run"]["fused_members"] == 2 and m["run"]["kind"] == "distill"
        assert m["run"]["epochs"] == EPOCHS and 1 <= r["best_epoch"] <= EPOCHS
        with open(run / "epochs.csv") as fh:
            assert [int(e["epoch"]) for e in csv.DictReader(fh)] == [1, 2]
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["train"]["seed"] == r["seed"] and cfg["distill"]["alpha"] == r["alpha"]
    # One resumable state per seed, beside its students.
    assert (out / "seed0" / STATE_FILE).is_file() and (out / "seed1" / STATE_FILE).is_file()
    assert (out / "sweep.yaml").is_file()
    assert res["student"]["model"] == "resnet8" and res["student"]["params"] > 0
    assert res["teacher"]["model"] == "resnet8"
    tm = read_json(tiny_teacher / METRICS_FILE)
    assert res["teacher"]["accuracy"] == tm["accuracy"]
    assert res["teacher"]["latency_ms_p50"] == tm["inference"]["latency_ms_p50"]

    # results.csv: the same rows as results.json.
    with open(out / "results.csv") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert len(csv_rows) == len(rows)
    for c, r in zip(csv_rows, rows):
        assert list(c) == list(r)
        assert float(c["alpha"]) == r["alpha"] and c["beta"] == r["beta"]
        assert int(c["seed"]) == r["seed"] and c["run"] == r["run"]
        assert float(c["accuracy"]) == pytest.approx(r["accuracy"])
    with open(out / "results_aggregate.csv") as fh:
        agg_csv = list(csv.DictReader(fh))
    assert len(agg_csv) == len(res["aggregate"]) == 2


def test_sweep_aggregate_is_mean_and_std_over_seeds(sweep):
    _, summary = sweep
    rows, agg = summary["rows"], summary["aggregate"]
    assert [(a["alpha"], a["beta"], a["seeds"]) for a in agg] == [(0.0, "0", 2), (0.5, "0", 2)]
    for a in agg:
        group = [r for r in rows if r["alpha"] == a["alpha"] and r["beta"] == a["beta"]]
        for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "effective_rank"):
            values = [r[key] for r in group]
            assert a[f"{key}_mean"] == pytest.approx(statistics.fmean(values))
            assert a[f"{key}_std"] == pytest.approx(statistics.stdev(values))
            assert (a[f"{key}_std"] > 0) == (values[0] != values[1])
        assert all(math.isfinite(v) for k, v in a.items() if k.endswith(("_mean", "_std")))
    # The two seeds are different students (different initial weights and batches) ...
    for alpha in (0.0, 0.5):
        s0, s1 = (r for r in rows if r["alpha"] == alpha)
        assert s0["nuclear_norm"] != s1["nuclear_norm"]
    # ... so some of their measurements differ (on this data even the test accuracy of
    # α = 0; timings always), and those get a positive std.
    assert any(a[f"{k}_std"] > 0 for a in agg for k in
               ("accuracy", "f1_macro", "latency_ms_p50", "test_seconds"))


def test_fused_member_equals_the_same_student_trained_alone(sweep, single):
    out, summary = sweep
    single_dir, alone = single
    (row,) = [r for r in summary["rows"] if r["alpha"] == 0.5 and r["seed"] == 0]
    fused = read_json(out / row["run"] / METRICS_FILE)
    assert fused["accuracy"] == alone["accuracy"]
    assert fused["f1_macro"] == alone["f1_macro"]
    for key in EXACT:
        assert fused[key] == alone[key], key
    assert fused["run"]["best_epoch"] == alone["run"]["best_epoch"]
    assert fused["run"]["val_accuracy"] == alone["run"]["val_accuracy"]
    # Evaluated exactly as a single distill run: the same metrics.json structure.
    assert key_tree(fused) == key_tree(alone)
    assert alone["run"]["fused_members"] == 1

    # The very same final weights.
    a = safe_load(out / row["run"] / MODEL_FILE)
    b = safe_load(single_dir / MODEL_FILE)
    assert a["meta"] == b["meta"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k

    # The same training history (losses, accuracies, lr), epoch times aside.
    def history(path):
        with open(path / "epochs.csv") as fh:
            return [{k: v for k, v in r.items() if k != "epoch_seconds"}
                    for r in csv.DictReader(fh)]

    assert history(out / row["run"]) == history(single_dir)

    # A member's config.yaml rebuilds the settings of the equivalent single run.
    d1, t1, s1 = load_run_config(out / row["run"])
    d2, t2, s2 = load_run_config(single_dir)
    assert (d1, t1) == (d2, t2)
    assert (s1.alpha, s1.temperature, s1.method, s1.teacher) == \
        (s2.alpha, s2.temperature, s2.method, s2.teacher)


def test_one_fused_pass_augments_each_batch_once_and_runs_the_teacher_once(
        tmp_path, tiny_teacher, tiny_tree3, tiny_cache, monkeypatch):
    counts = {"augment": 0, "teacher": 0, "passes": 0}
    apply, load_teacher, fit = BatchAugment.apply, procedures.load_teacher, Trainer.fit

    def counting_apply(self, x, params):
        counts["augment"] += 1
        return apply(self, x, params)

    def counting_load_teacher(path, data=None):
        model, meta = load_teacher(path, data)
        model.register_forward_hook(lambda *_: counts.__setitem__("teacher", counts["teacher"] + 1))
        return model, meta

    def counting_fit(self, *args, **kwargs):
        counts["passes"] += 1
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(BatchAugment, "apply", counting_apply)
    monkeypatch.setattr(procedures, "load_teacher", counting_load_teacher)
    monkeypatch.setattr(Trainer, "fit", counting_fit)
    out = tmp_path / "sweep"
    summary = run_sweep(out, data_cfg(tiny_tree3, tiny_cache), train_cfg(),
                        sweep_cfg(tiny_teacher, alphas=[0.3, 0.6], betas=["0", "alpha"], seeds=1),
                        progress=False)
    steps = -(-summary["data"]["splits"]["train"] // BATCH)
    assert counts["passes"] == 1
    assert counts["augment"] == EPOCHS * steps  # not × 4 students
    assert counts["teacher"] == EPOCHS * steps
    assert len(summary["rows"]) == 4
    assert sorted({r["beta"] for r in summary["rows"]}) == ["0", "alpha"]
    # One seed: every std is exactly 0.
    assert all(a["seeds"] == 1 for a in summary["aggregate"])
    assert all(a[k] == 0.0 for a in summary["aggregate"] for k in a if k.endswith("_std"))
    # β = α resolves per member: the config records the resolved value.
    cfg = yaml.safe_load((out / "seed0" / member_name(0.6, "alpha") / "config.yaml").read_text())
    assert cfg["distill"]["nuclear_beta"] == "alpha"
    assert cfg["distill"]["nuclear_beta_resolved"] == 0.6


def test_existing_sweep_without_resume_is_refused(sweep, tiny_tree3, tiny_cache):
    out, _ = sweep
    before = (out / "results.json").read_bytes()
    with pytest.raises(ConfigError, match="resume"):
        run_sweep(out, data_cfg(tiny_tree3, tiny_cache), train_cfg(),
                  sweep_cfg(out.parent / "unused-teacher"), progress=False)
    assert (out / "results.json").read_bytes() == before


def test_interrupted_sweep_resumes_to_the_uninterrupted_rows(
        sweep, tiny_teacher, tmp_path, tiny_tree3, tiny_cache, monkeypatch):
    _, full = sweep
    out = tmp_path / "sweep"
    calls = {"n": 0}
    train_epoch = Trainer.train_epoch

    def interrupting(self):
        calls["n"] += 1
        if calls["n"] == 4:  # seed 0 complete, seed 1 after its first epoch
            raise KeyboardInterrupt
        return train_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", interrupting)
    # In this process (jobs=1), so the patch applies; the reference `sweep` trained its two
    # seeds in two processes, so this also checks parallel seeds == one after the other.
    with pytest.raises(KeyboardInterrupt):
        run_sweep(out, data_cfg(tiny_tree3, tiny_cache), train_cfg(), sweep_cfg(tiny_teacher),
                  progress=False, jobs=1)
    assert not (out / "results.json").exists()
    assert (out / "seed0" / member_name(0.5, "0") / METRICS_FILE).is_file()
    assert not (out / "seed1" / member_name(0.5, "0") / METRICS_FILE).exists()
    assert safe_load(out / "seed1" / STATE_FILE)["epoch"] == 1

    calls["n"] = 100  # count only the resumed run's epochs
    summary = run_sweep(out, data_cfg(tiny_tree3, tiny_cache), train_cfg(), sweep_cfg(tiny_teacher),
                        resume=True, progress=False, jobs=1)
    assert calls["n"] == 101  # seed 0 was not retrained; seed 1 trained its second epoch only
    assert without_timing(summary["rows"]) == without_timing(full["rows"])
    assert without_timing(read_json(out / "results.json")["rows"]) == without_timing(full["rows"])
    for r in summary["rows"]:
        a = safe_load(out / r["run"] / MODEL_FILE)["model"]
        b = safe_load(sweep[0] / r["run"] / MODEL_FILE)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), r["run"]

    # Resuming a finished sweep trains nothing and gives the same rows again.
    calls["n"] = 0
    again = run_sweep(out, data_cfg(tiny_tree3, tiny_cache), train_cfg(), sweep_cfg(tiny_teacher),
                      resume=True, progress=False, jobs=1)
    assert calls["n"] == 0
    assert again["rows"] == summary["rows"]


def test_cells_with_the_same_settings_train_once(tiny_teacher, tmp_path, tiny_tree3, tiny_cache):
    # β = alpha at α = 0 is β = 0: one student, reported under both labels.
    cfg = sweep_cfg(tiny_teacher, alphas=[0.0, 0.5], betas=["0", "alpha"], seeds=1)
    members, owner = cfg.members()
    assert members == [(0.0, "0"), (0.5, "0"), (0.5, "alpha")]
    assert owner[member_name(0.0, "alpha")] == member_name(0.0, "0")
    out = tmp_path / "sweep"
    summary = run_sweep(out, data_cfg(tiny_tree3, tiny_cache), train_cfg(), cfg, progress=False)
    assert sorted(p.name for p in (out / "seed0").iterdir() if p.is_dir()) == \
        sorted(member_name(a, b) for a, b in members)
    rows = {(r["alpha"], r["beta"]): r for r in summary["rows"]}
    assert len(rows) == 4
    assert rows[(0.0, "alpha")]["run"] == rows[(0.0, "0")]["run"]
    assert rows[(0.0, "alpha")]["accuracy"] == rows[(0.0, "0")]["accuracy"]


def test_negative_jobs_is_refused(tiny_teacher, tmp_path, tiny_tree3, tiny_cache):
    with pytest.raises(ConfigError, match="--jobs"):
        run_sweep(tmp_path / "out", data_cfg(tiny_tree3, tiny_cache), train_cfg(),
                  sweep_cfg(tiny_teacher), progress=False, jobs=-1)
    assert not (tmp_path / "out").exists()


def test_members_stepped_from_two_threads_equal_the_plain_loop(tiny_teacher, tmp_path, tiny_tree3,
                                                              tiny_cache):
    cfg = sweep_cfg(tiny_teacher, alphas=[0.0, 0.3, 0.6], betas=["0"], seeds=1)
    plain = run_sweep(tmp_path / "plain", data_cfg(tiny_tree3, tiny_cache), train_cfg(), cfg,
                      progress=False, jobs=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # two member threads, one intra-op thread each
    try:
        seen = []
        original = members_mod.member_workers
        members_mod.member_workers = lambda n, cpu: seen.append(original(n, cpu)) or seen[-1]
        try:
            threaded = run_sweep(tmp_path / "threaded", data_cfg(tiny_tree3, tiny_cache),
                                 train_cfg(), cfg, progress=False, jobs=1)
        finally:
            members_mod.member_workers = original
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {2}
    assert without_timing(threaded["rows"]) == without_timing(plain["rows"])
    for r in plain["rows"]:
        a = safe_load(tmp_path / "plain" / r["run"] / MODEL_FILE)["model"]
        b = safe_load(tmp_path / "threaded" / r["run"] / MODEL_FILE)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), r["run"]


def test_seed_workers_share_the_cores_and_read_their_budget_every_epoch(
        tiny_teacher, tmp_path, tiny_tree3, tiny_cache, monkeypatch):
    budgets = []
    fit = Trainer.fit

    def spying_fit(self, resume=False):
        budget = self.thread_budget
        self.thread_budget = lambda: budgets.append(budget()) or budgets[-1]
        return fit(self, resume)

    monkeypatch.setattr(Trainer, "fit", spying_fit)
    # The worker function itself, run in this process with a shared counter: alone, a
    # seed gets every core; with another seed active, half of them.
    active = multiprocessing.get_context("spawn").Value("i", 0)
    local_mod._init_worker(active)
    before = torch.get_num_threads()

    def seed_trial(out):
        return Trial("seed 0", out / "seed0", (), functools.partial(
            sweep_mod.fit_seed, out, data_cfg(tiny_tree3, tiny_cache), train_cfg(),
            sweep_cfg(tiny_teacher, seeds=1), 0, cell=str(out), resume=False))

    try:
        local_mod._worker(seed_trial(tmp_path / "alone"), 4, 2, logging.WARNING)
        with active.get_lock():
            active.value += 1  # another seed is training
        local_mod._worker(seed_trial(tmp_path / "shared"), 4, 2, logging.WARNING)
    finally:
        torch.set_num_threads(before)
    assert budgets == [4] * EPOCHS + [2] * EPOCHS
    assert active.value == 1  # each worker counted itself in and out


def test_a_seed_worker_takes_its_share_of_threads_before_it_trains(monkeypatch):
    # Spawned processes start with one thread per core; each must drop to its share at
    # once, or jobs x cores threads would oversubscribe the CPU while data and models load.
    seen = {}

    def fake_fit_seed(*args, **kwargs):
        seen["threads"] = torch.get_num_threads()
        seen["announce"] = kwargs["announce"]

    local_mod._init_worker(multiprocessing.get_context("spawn").Value("i", 0))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        result = local_mod._worker(Trial("seed 7", Path("nowhere"), (), fake_fit_seed), 2, 2,
                                   logging.WARNING)
        assert result.label == "seed 7" and not result.resumed
    finally:
        torch.set_num_threads(before)
    assert seen == {"threads": 1, "announce": False}


def test_jobs_above_the_cores_warn_but_above_only_the_thread_budget_do_not():
    level, text = seeds_mod.jobs_note(3, 2, 2)
    assert level == logging.WARNING and "exceeds the 2 cores" in text
    # OMP_NUM_THREADS=1 on two cores with --jobs 2: two one-thread processes fit the machine.
    level, text = seeds_mod.jobs_note(2, 1, 2)
    assert level == logging.INFO and "within the 2 cores" in text and "exceeds" not in text
    assert seeds_mod.jobs_note(2, 2, 2) is None


def test_default_jobs_never_exceed_the_thread_budget(monkeypatch):
    monkeypatch.setattr(seeds_mod.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # e.g. OMP_NUM_THREADS=1: one busy thread in all
        assert seeds_mod.core_budget() == 1
        assert seeds_mod.default_jobs(3, "cpu") == 1
        torch.set_num_threads(2)
        assert seeds_mod.core_budget() == 2 and seeds_mod.default_jobs(3, "cpu") == 2
        assert seeds_mod.default_jobs(1, "cpu") == 1
    finally:
        torch.set_num_threads(before)


def test_a_seed_pass_takes_its_eta_from_the_schedule_its_backend_gave(
        tiny_teacher, tmp_path, tiny_tree3, tiny_cache, monkeypatch):
    # No training: what counts is the ETA the trainer is handed. Place 1 of 6 run 2 at a
    # time (a Pareto grid's cells together): its own epochs left, then two more waves.
    seen = []
    monkeypatch.setattr(Trainer, "fit", lambda self, resume=False: seen.append(self.eta(1, 30.0)))
    sweep_mod.fit_seed(tmp_path, data_cfg(tiny_tree3, tiny_cache), train_cfg(),
                       sweep_cfg(tiny_teacher, seeds=1), 0, cell="eta", resume=False,
                       progress=False, schedule=Schedule("Pareto grid", 1, 6, 2))
    (text,) = seen
    assert EPOCHS == 2  # (1 + 2 × 2 epochs) × 30 s
    assert text.startswith("Pareto grid done at about ") and text.endswith("UTC (2 min 30 s left)")
