"""The run-directory lock and --overwrite's clearing, on their own (no training)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rsdistill.errors import BusyError, WriteError
from rsdistill.runtime.locks import clear_project_files, holds_run, run_dir_lock, run_dir_lock_of
from rsdistill.runtime.rundir import LOCK_FILE, describe_entries, is_project_file, other_entries

SRC = Path(__file__).resolve().parents[2] / "src"


def holder(directory: Path) -> subprocess.Popen:
    code = ("import sys, time\n"
            "from rsdistill.runtime.locks import run_dir_lock\n"
            "with run_dir_lock(sys.argv[1]):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(directory)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_is_held_reentrant_and_removed(tmp_path):
    run = tmp_path / "run"
    with run_dir_lock(run) as path:
        assert path == run and (run / LOCK_FILE).read_text().strip() == str(os.getpid())
        with run_dir_lock(run):  # the same process again: a study through its sweep
            (run / "model.pt").write_bytes(b"x")
        assert (run / LOCK_FILE).is_file()  # the outer hold is still on
    assert not (run / LOCK_FILE).exists() and (run / "model.pt").is_file()


def test_folders_the_lock_made_go_again_when_nothing_was_written(tmp_path):
    with pytest.raises(RuntimeError):
        with run_dir_lock(tmp_path / "a" / "b" / "run"):
            raise RuntimeError("failed before writing anything")
    assert list(tmp_path.iterdir()) == []
    with run_dir_lock(tmp_path / "report", create=False) as path:  # not made when missing
        assert not path.exists()


def test_second_process_is_refused_with_the_holders_pid(tmp_path):
    run = tmp_path / "run"
    proc = holder(run)
    try:
        with pytest.raises(BusyError, match=rf"{run} is in use by another rsdistill process "
                                            rf"\(pid {proc.pid}\); wait for it to finish, or "
                                            "choose another --out"):
            with run_dir_lock(run):
                pass
    finally:
        proc.kill()
        proc.wait()
    # Killed: the file stays, the kernel's lock went with the process.
    assert (run / LOCK_FILE).is_file()
    with run_dir_lock(run):
        pass
    assert not (run / LOCK_FILE).exists()


def test_lock_sweeps_the_temporary_files_of_killed_writers(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = run / ".last.pt.999999999.abcdefgh.tmp"
    dead.write_bytes(b"half a checkpoint")
    live = run / f".model.pt.{os.getpid()}.abcdefgh.tmp"
    live.write_bytes(b"being written")
    with run_dir_lock(run):
        assert not dead.exists() and live.exists()


def test_read_only_directory_is_one_write_error(tmp_path, monkeypatch):
    import errno

    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if str(path).endswith(LOCK_FILE):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(WriteError, match=rf"cannot write in {tmp_path}: Read-only file system$"):
        with run_dir_lock(tmp_path):
            pass


def test_lock_of_a_file_locks_only_a_run_folder(tmp_path):
    plain = tmp_path / "exports"
    plain.mkdir()
    with run_dir_lock_of(plain / "x.onnx"):
        assert not (plain / LOCK_FILE).exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"x")
    assert holds_run(run) and not holds_run(plain)
    with run_dir_lock_of(run / "model.onnx"):
        assert (run / LOCK_FILE).is_file()


def make(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_overwrite_clears_rsdistill_files_only(tmp_path):
    out = tmp_path / "out"
    ours = ["model.pt", "last.pt", "config.yaml", "metrics.json", "epochs.csv", "versions.json",
            "peer1.pt", "sweep.yaml", "results.json", "report.md", "model.onnx",
            "model.int8.onnx", ".last.pt.123.abcdefgh.tmp", "figures/alpha_f1.png",
            "tensorboard/events.out.tfevents.1.host",
            "seed0/last.pt", "seed0/alpha0.10_beta0/model.pt", "gen1/metrics.json",
            "teacher/model.pt", "sweep/seed1/alpha0.00_beta0/epochs.csv",
            "kd/seed0/model.pt", "kd/seed1/config.yaml"]
    theirs = ["notes.txt", "model.pt.bak", "figures/my_plot.svg", "backup/model.pt",
              "seed0/alpha0.10_beta0/my_analysis.ipynb", "mine/seed0/model.pt", "mine/README"]
    make(out, *ours, *theirs)
    removed = clear_project_files(out)
    assert sorted(str(p.relative_to(out)) for p in removed) == sorted(ours)
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert left == sorted(theirs)
    # Folders emptied of our files go; those still holding the user's stay.
    assert not (out / "tensorboard").exists() and not (out / "kd").exists()
    assert (out / "seed0" / "alpha0.10_beta0").is_dir()


def test_overwrite_refuses_a_sub_run_in_use(tmp_path):
    out = tmp_path / "out"
    make(out, "sweep.yaml", "seed0/alpha0.10_beta0/model.pt")
    proc = holder(out / "seed0" / "alpha0.10_beta0")
    try:
        with pytest.raises(BusyError, match="alpha0.10_beta0 is in use"):
            clear_project_files(out)
    finally:
        proc.kill()
        proc.wait()
    assert (out / "seed0" / "alpha0.10_beta0" / "model.pt").is_file()


def test_names_and_listing():
    assert is_project_file("peer12.pt") and is_project_file("metrics.json")
    assert not is_project_file("peer.pt") and not is_project_file("notes.txt")
    names = [f"f{i}" for i in range(9)]
    assert describe_entries(names) == "f0, f1, f2, f3, f4, f5 and 3 more"


def test_other_entries_skip_the_lock_and_temporary_files(tmp_path):
    make(tmp_path, LOCK_FILE, ".model.pt.1.abcdefgh.tmp", "config.yaml", "x")
    assert other_entries(tmp_path) == ["config.yaml", "x"]
    assert other_entries(tmp_path, frozenset({"config.yaml"})) == ["x"]
    assert other_entries(tmp_path / "missing") == []
