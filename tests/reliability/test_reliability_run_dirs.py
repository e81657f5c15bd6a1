"""Run directories (issue 16, items 1 and 2): one rsdistill process per directory, and no
run written into a directory that holds anything but a run to resume.

Every command that writes into a run-like directory is tried against a directory another
process holds (through rsdistill's own lock): one error line naming it, exit 2, nothing
in it touched. Two real ``train`` processes on one ``--out`` (the issue's case) and a
lock left behind by ``kill -9`` run as the user would run them, in subprocesses.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from rsdistill.cli.main import main

BUSY = "is in use by another rsdistill process"


def data_args(tree, cache) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--cache-dir", str(cache),
            "--image-size", "16", "--workers", "1"]


def train_args(epochs: int = 1) -> list[str]:
    return ["--epochs", str(epochs), "--batch-size", "8", "--latency-runs", "1", "--no-progress"]


def train(tree, cache, out, *extra, epochs: int = 1) -> list[str]:
    return ["train", *data_args(tree, cache), "--model", "resnet8", *train_args(epochs),
            "--out", str(out), *extra]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_tree3, tiny_cache) -> Path:
    """A finished one-epoch run (a teacher for distill, sweep, compress, export)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("rundir-teacher") / "teacher"
    assert main(train(tiny_tree3, tiny_cache, out)) == 0
    return out


def start(kit, argv, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rsdistill.cli.main", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=kit.env(**env), stdin=subprocess.DEVNULL)


def wait_for(condition, what: str, deadline_s: float = 120) -> None:
    """Polls ``condition`` (a wait for another process, never an assertion on time)."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def one_error_line(err: str, *needles) -> str:
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("rsdistill: error: "), err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


# ----------------------------------------------------------------------------- the lock

def test_second_train_on_the_same_out_is_refused_while_the_first_runs(
        tiny_tree3, tiny_cache, tmp_path, kit):
    """The issue's case: ``train --seed 0 --out R & train --seed 1 --out R``. The first is
    frozen (SIGSTOP) while it holds R, so the second surely meets it there."""
    out = tmp_path / "R"
    first = start(kit, train(tiny_tree3, tiny_cache, out, "--seed", "0", epochs=3))
    try:
        wait_for(lambda: (out / ".rsdistill.lock").is_file() and
                 (out / ".rsdistill.lock").read_text().strip() == str(first.pid),
                 "the first run to take its lock")
        first.send_signal(signal.SIGSTOP)
        before = kit.snapshot(out)
        second = subprocess.run([sys.executable, "-m", "rsdistill.cli.main",
                                 *train(tiny_tree3, tiny_cache, out, "--seed", "1", epochs=3)],
                                capture_output=True, text=True, env=kit.env(), timeout=300)
        assert second.returncode == 2
        one_error_line(second.stderr, out, BUSY, f"(pid {first.pid})")
        assert kit.snapshot(out) == before
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    # The directory holds the first run alone: its settings, weights and metrics agree.
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["seed"] == 0
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    (member,) = state["members"].values()
    model = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    best = member["best_files"]["model.pt"]
    assert model["meta"] == best["meta"]
    assert all(torch.equal(model["model"][k], best["model"][k]) for k in model["model"])
    assert json.loads((out / "metrics.json").read_text())["run"]["best_epoch"] == \
        member["best_epoch"]
    assert not (out / ".rsdistill.lock").exists()


def test_lock_of_a_killed_run_is_stale_and_taken_over(tiny_tree3, tiny_cache, tmp_path, kit):
    out = tmp_path / "run"
    killed = start(kit, train(tiny_tree3, tiny_cache, out, epochs=2), RSDISTILL_KILL_AT="step@4")
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    lock = out / ".rsdistill.lock"
    assert lock.read_text().strip() == str(killed.pid)  # left behind, but nobody holds it
    resumed = subprocess.run([sys.executable, "-m", "rsdistill.cli.main",
                              *train(tiny_tree3, tiny_cache, out, "--resume", epochs=2)],
                             capture_output=True, text=True, env=kit.env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert not lock.exists() and (out / "metrics.json").is_file()


def _study_config(tmp_path, tree, cache, out) -> Path:
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump({
        "out": str(out),
        "data": {"dataset": "folder", "data_root": str(tree), "cache_dir": str(cache),
                 "image_size": 16, "workers": 1},
        "teacher": {"model": "resnet8", "epochs": 1, "batch_size": 8, "latency_runs": 1},
        "student": {"model": "resnet8", "epochs": 1, "batch_size": 8, "latency_runs": 1},
        "sweep": {"alphas": [0.0], "betas": ["0"], "seeds": 1, "jobs": 1}}))
    return cfg


# Each command with the directory another process holds: (argv, held directory).
def _busy_cases(teacher: Path, tree: Path, cache: Path, tmp: Path):
    student = ["--student", "resnet8", *train_args()]
    sweep = tmp / "sweep"
    born = tmp / "born"
    return {
        "train": (train(tree, cache, tmp / "r"), tmp / "r"),
        "distill": (["distill", "--teacher", teacher, *student, "--out", tmp / "d"], tmp / "d"),
        "distill born-again top": (["distill", *data_args(tree, cache), *student, "--method",
                                    "self", "--out", born], born),
        # Its generation folder exists, so the run counts as started: --resume.
        "distill born-again generation": (["distill", *data_args(tree, cache), *student,
                                           "--method", "self", "--out", born, "--resume"],
                                          born / "gen0"),
        "sweep": (["sweep", "--teacher", teacher, *student, "--alphas", "0,0.5", "--jobs", "1",
                   "--out", sweep], sweep),
        # A sweep killed in its first step, resumed while a member's folder is in use.
        "sweep member": (["sweep", "--teacher", teacher, *student, "--alphas", "0,0.5",
                          "--jobs", "1", "--out", sweep, "--resume"],
                         sweep / "seed0" / "alpha0.50_beta0"),
        "compare": (["compare", "--teacher", teacher, *student, "--methods", "kd", "--seeds", "1",
                     "--out", tmp / "c"], tmp / "c"),
        "run": (["run", "--config", _study_config(tmp, tree, cache, tmp / "study")], tmp / "study"),
        "compress": (["compress", teacher, "--rank", "2", "--latency-runs", "1", "--out",
                      tmp / "k"], tmp / "k"),
        "export": (["export", teacher], teacher),
        "quantize": (["quantize", teacher, "--latency-runs", "1"], teacher),
        "report": (["report", tmp / "rep"], tmp / "rep"),
    }


@pytest.mark.parametrize("case", ["train", "distill", "distill born-again top",
                                  "distill born-again generation", "sweep", "sweep member",
                                  "compare", "run", "compress", "export", "quantize", "report"])
def test_every_writer_refuses_a_directory_in_use(case, teacher, tiny_tree3, tiny_cache, tmp_path,
                                                 cli, kit, lock_holder):
    argv, held = _busy_cases(teacher, tiny_tree3, tiny_cache, tmp_path)[case]
    if case == "report":
        held.mkdir()
        (held / "results.json").write_text("{}")
    if case == "sweep member":
        killed = subprocess.run([sys.executable, "-m", "rsdistill.cli.main",
                                 *map(str, argv[:-1])], capture_output=True, timeout=300,
                                env=kit.env(RSDISTILL_KILL_AT="step@1"))
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    pid = lock_holder(held)
    before = kit.snapshot(held)
    result = cli(*argv)
    assert result.rc == 2, result.err
    result.error_line(held, BUSY, f"(pid {pid})")
    assert kit.snapshot(held) == before


# ----------------------------------------------------------------------------- what is there

FOREIGN = {
    # What `rsdistill compress` leaves: a model and metrics, but nothing to resume.
    "compress output": {"model.pt": b"compressed", "metrics.json": b"{}", "config.yaml": b"k: 1\n"},
    "user files": {"metrics.json": b'{"mine": 1}', "epochs.csv": b"a,b\n", "notes.txt": b"x"},
    "a sweep": {"sweep.yaml": b"kind: sweep\n", "results.json": b"{}"},
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_train_refuses_a_directory_that_holds_no_run_to_resume(case, tiny_tree3, tiny_cache,
                                                               tmp_path, cli, kit):
    out = tmp_path / "out"
    out.mkdir()
    for name, data in FOREIGN[case].items():
        (out / name).write_bytes(data)
    before = kit.snapshot(out)
    for extra in ([], ["--resume"]):
        result = cli(*train(tiny_tree3, tiny_cache, out, *extra))
        assert result.rc == 2
        line = result.error_line(out, "holds no run to resume", "--overwrite")
        assert all(name in line for name in FOREIGN[case])
        assert kit.snapshot(out) == before


def test_overwrite_replaces_rsdistill_files_and_keeps_everything_else(
        tiny_tree3, tiny_cache, tmp_path, cli, kit):
    out = tmp_path / "out"
    (out / "mine").mkdir(parents=True)
    (out / "model.pt").write_bytes(b"an old compressed model")
    (out / "metrics.json").write_text("{}")
    (out / ".model.pt.999999999.abcdefgh.tmp").write_bytes(b"a killed writer's leftover")
    (out / "notes.txt").write_text("keep me")
    (out / "mine" / "model.pt").write_bytes(b"the user's own copy")
    result = cli(*train(tiny_tree3, tiny_cache, out, "--overwrite"))
    assert result.rc == 0, result.err
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "mine" / "model.pt").read_bytes() == b"the user's own copy"
    model = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert model["meta"]["epoch"] == 1
    assert json.loads((out / "metrics.json").read_text())["run"]["epochs"] == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["mine", "notes.txt", "model.pt", "last.pt", "config.yaml", "metrics.json",
         "epochs.csv", "versions.json"])


def test_finished_run_is_replaced_only_with_overwrite(teacher, tiny_tree3, tiny_cache, tmp_path,
                                                      cli, kit):
    out = tmp_path / "run"
    assert cli(*train(tiny_tree3, tiny_cache, out)).rc == 0
    before = kit.snapshot(out)
    refused = cli(*train(tiny_tree3, tiny_cache, out, "--seed", "1"))
    assert refused.rc == 2
    refused.error_line(out, "already holds a run", "--resume", "--overwrite")
    both = cli(*train(tiny_tree3, tiny_cache, out, "--seed", "1", "--resume", "--overwrite"))
    assert both.rc == 2
    both.error_line("--resume", "--overwrite")
    assert kit.snapshot(out) == before
    replaced = cli(*train(tiny_tree3, tiny_cache, out, "--seed", "1", "--overwrite"))
    assert replaced.rc == 0, replaced.err
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["seed"] == 1


def test_distill_resume_into_a_train_run_is_refused_by_kind(teacher, tmp_path, cli, kit):
    def files():  # a stale lock of an earlier test's holder may go; nothing else may change
        return {k: v for k, v in kit.snapshot(teacher).items() if k != ".rsdistill.lock"}

    before = files()
    result = cli("distill", "--teacher", teacher, "--student", "resnet8", *train_args(),
                 "--out", teacher, "--resume")
    assert result.rc == 2
    result.error_line(teacher, "holds a train run, not a distill run")
    assert files() == before


def test_empty_directory_and_a_stale_lock_alone_are_fine(tiny_tree3, tiny_cache, tmp_path, cli):
    out = tmp_path / "empty"
    out.mkdir()
    (out / ".rsdistill.lock").write_text("999999999\n")  # a killed run's, held by nobody
    result = cli(*train(tiny_tree3, tiny_cache, out))
    assert result.rc == 0, result.err
    assert not (out / ".rsdistill.lock").exists()


def test_run_that_never_finished_an_epoch_restarts_and_says_so(tiny_tree3, tiny_cache, tmp_path,
                                                               cli, caplog):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("kind: train\n")  # what a run killed in epoch 1 leaves
    (out / "versions.json").write_text("{}")
    result = cli(*train(tiny_tree3, tiny_cache, out, "--resume"))
    assert result.rc == 0, result.err
    assert any("holds no complete epoch yet; training starts at epoch 1" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("command", ["sweep", "compare", "run", "compress"])
def test_other_writers_refuse_a_foreign_directory(command, teacher, tiny_tree3, tiny_cache,
                                                  tmp_path, cli, kit):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "model.pt").write_bytes(b"not a run of this kind")
    argv = {
        "sweep": ["sweep", "--teacher", teacher, "--student", "resnet8", *train_args(),
                  "--alphas", "0", "--jobs", "1", "--out", out],
        "compare": ["compare", "--teacher", teacher, "--student", "resnet8", *train_args(),
                    "--methods", "kd", "--seeds", "1", "--out", out],
        "run": ["run", "--config", _study_config(tmp_path, tiny_tree3, tiny_cache, out)],
        "compress": ["compress", teacher, "--rank", "2", "--latency-runs", "1", "--out", out],
    }[command]
    before = kit.snapshot(out)
    result = cli(*argv)
    assert result.rc == 2
    result.error_line(out, "notes.txt", "model.pt", "--overwrite")
    assert kit.snapshot(out) == before
    if command == "compress":
        replaced = cli(*argv, "--overwrite")
        assert replaced.rc == 0, replaced.err
        assert (out / "notes.txt").read_text() == "mine"
        meta = torch.load(out / "model.pt", map_location="cpu", weights_only=True)["meta"]
        assert meta["low_rank"]["rank"] == 2
