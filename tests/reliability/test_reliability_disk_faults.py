"""A full or read-only disk during training (issue 16, item 3): one error line naming the
file and the cause, exit 2, and a run that --resume continues from its last complete
epoch to exactly the uninterrupted result.

Faults are injected where the kernel would raise them (see conftest: ``fill_disk`` makes
the file's ``write`` raise ENOSPC inside torch.save, so torch's own RuntimeError around it
is what the code sees; ``read_only`` makes the folder's creating calls raise EROFS). Where
this process may mount a small tmpfs (root with CAP_SYS_ADMIN), one test fills a real
filesystem as well.
"""

from __future__ import annotations

import argparse
import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rsdistill.cli.main import main
from rsdistill.io import is_temp_file_name

# What differs between two runs of the same settings: the clock.
TIMING = {"inference", "versions"}
RUN_TIMING = {"train_seconds", "seconds_per_epoch"}


def train(tree, cache, out, *extra) -> list[str]:
    return ["train", "--dataset", "folder", "--data-root", str(tree), "--cache-dir", str(cache),
            "--image-size", "16", "--workers", "1", "--model", "resnet8", "--epochs", "3",
            "--batch-size", "8", "--latency-runs", "1", "--no-progress", "--out", str(out),
            *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_tree3, tiny_cache) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("disk-ref") / "run"
    assert main(train(tiny_tree3, tiny_cache, out)) == 0
    return out


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def untimed_metrics(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    m = {k: v for k, v in m.items() if k not in TIMING}
    m["run"] = {k: v for k, v in m["run"].items() if k not in RUN_TIMING}
    return m


def epoch_rows(run: Path) -> list[dict]:
    with open(run / "epochs.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in csv.DictReader(fh)]


def assert_same_run(run: Path, ref: Path) -> None:
    """Bit-identical weights and state, the same metrics and history but for timing."""
    for name in ("model.pt", "last.pt"):
        a, b = weights(run / name), weights(ref / name)
        if name == "model.pt":
            assert a["meta"] == b["meta"]
            a, b = a["model"], b["model"]
        else:
            (a,), (b,) = a["members"].values(), b["members"].values()
            a, b = a["model"], b["model"]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert untimed_metrics(run) == untimed_metrics(ref)
    assert epoch_rows(run) == epoch_rows(ref)


def saved_epoch(run: Path) -> int:
    return int(weights(run / "last.pt")["epoch"])


def no_leftovers(run: Path) -> None:
    assert not [p for p in run.iterdir() if is_temp_file_name(p.name) or p.name == ".rsdistill.lock"]


@pytest.mark.parametrize("target, nth, expected", [
    ("last.pt", 2, "epoch 1 is saved in {run}/last.pt: fix that and rerun with --resume to "
                   "continue from epoch 2"),
    ("metrics.json", 1, "training is complete and saved in {run}/last.pt: fix that and rerun "
                        "with --resume to evaluate it"),
])
def test_full_disk_is_one_line_and_resume_continues_from_the_last_complete_epoch(
        target, nth, expected, reference, tiny_tree3, tiny_cache, tmp_path, cli, kit,
        monkeypatch):
    run = tmp_path / "run"
    kit.fill_disk(monkeypatch, target, nth=nth)
    failed = cli(*train(tiny_tree3, tiny_cache, run))
    assert failed.rc == 2
    failed.error_line(f"cannot write {run}/{target}: No space left on device; ",
                      expected.format(run=run))
    no_leftovers(run)
    # Nothing is ahead of last.pt: the best model and the history stop where it stops.
    k = saved_epoch(run)
    assert k == (nth - 1 if target == "last.pt" else 3)
    assert weights(run / "model.pt")["meta"]["epoch"] <= k
    assert [int(r["epoch"]) for r in epoch_rows(run)] == list(range(1, k + 1))
    assert not (run / "metrics.json").exists()

    monkeypatch.undo()  # space freed
    resumed = cli(*train(tiny_tree3, tiny_cache, run, "--resume"))
    assert resumed.rc == 0, resumed.err
    assert_same_run(run, reference)
    no_leftovers(run)


def test_full_disk_after_last_pt_leaves_model_pt_behind_and_resume_rewrites_it(
        reference, tiny_tree3, tiny_cache, tmp_path, cli, kit, monkeypatch):
    """The disk fills between the commit (last.pt) and the best model: model.pt is an
    epoch behind, never ahead, and the resume rewrites it from last.pt before going on."""
    run = tmp_path / "run"
    seen = kit.fill_disk(monkeypatch, "model.pt", nth=2)
    failed = cli(*train(tiny_tree3, tiny_cache, run))
    assert seen["n"] >= 2 and failed.rc == 2
    line = failed.error_line(f"cannot write {run}/model.pt: No space left on device; ")
    k = saved_epoch(run)
    assert f"saved in {run}/last.pt" in line and k >= 2
    state = weights(run / "last.pt")
    (member,) = state["members"].values()
    assert member["best_epoch"] == k  # last.pt knows what model.pt must be ...
    assert weights(run / "model.pt")["meta"]["epoch"] < k  # ... and model.pt lags behind it

    monkeypatch.undo()
    resumed = cli(*train(tiny_tree3, tiny_cache, run, "--resume"))
    assert resumed.rc == 0, resumed.err
    assert_same_run(run, reference)


def test_read_only_run_directory_is_one_line_and_writes_nothing(tiny_tree3, tiny_cache, tmp_path,
                                                                 cli, kit, monkeypatch):
    run = tmp_path / "ro"
    run.mkdir()
    kit.read_only(monkeypatch, run)
    result = cli(*train(tiny_tree3, tiny_cache, run))
    assert result.rc == 2
    result.error_line(f"cannot write in {run}: Read-only file system")
    assert list(run.iterdir()) == []
    missing = tmp_path / "ro" / "sub"
    result = cli(*train(tiny_tree3, tiny_cache, missing))
    assert result.rc == 2
    result.error_line(f"cannot create {missing}: Read-only file system")


def test_directory_turning_read_only_mid_run(tiny_tree3, tiny_cache, tmp_path, cli, kit,
                                             monkeypatch):
    run = tmp_path / "run"
    # config.yaml, versions.json, then epoch 1's last.pt, model.pt, epochs.csv: the 6th
    # write is epoch 2's last.pt.
    kit.read_only(monkeypatch, run, from_write=6)
    result = cli(*train(tiny_tree3, tiny_cache, run))
    assert result.rc == 2
    result.error_line(f"cannot write {run}/last.pt: Read-only file system; epoch 1 is saved")
    assert saved_epoch(run) == 1


def run_failing(monkeypatch, fail) -> int:
    """``main`` with a command whose body is ``fail``."""
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args",
                        lambda self, argv=None: argparse.Namespace(verbose=False, func=fail))
    return main(["models", "list"])


@pytest.mark.parametrize("raised, line", [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/x/events.out"),
     "cannot write /data/x/events.out: No space left on device"),
    (OSError(errno.EROFS, os.strerror(errno.EROFS)), "cannot write: Read-only file system"),
    (OSError(errno.EACCES, os.strerror(errno.EACCES), "/srv/runs"),
     "cannot access /srv/runs: Permission denied"),
])
def test_stray_disk_errors_of_any_code_are_one_line(raised, line, monkeypatch, capsys):
    """A write no rsdistill code wrapped (a library's own file, a folder made on the way)."""
    def fail(args):
        try:
            raise raised
        except OSError as exc:  # as torch.save reports it: a RuntimeError around the OSError
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") \
                from exc

    assert run_failing(monkeypatch, fail) == 2
    assert capsys.readouterr().err == f"rsdistill: error: {line}\n"


def test_other_errors_still_show_their_traceback(monkeypatch):
    def fail(args):
        raise OSError(errno.ENOENT, "No such file or directory", "/a/bug")

    with pytest.raises(FileNotFoundError):
        run_failing(monkeypatch, fail)


# ----------------------------------------------------------------------------- a real tmpfs

@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1.8 MB tmpfs (room for epoch 1's files, not for epoch 2's checkpoint beside them),
    grown by calling the returned function; skips where mounting is not allowed."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1800k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=20m", str(mnt)], check=True)

    yield mnt, grow
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_really_full_filesystem(small_tmpfs, reference, tiny_tree3, tiny_cache, kit):
    mnt, grow = small_tmpfs
    run = mnt / "run"
    argv = [sys.executable, "-m", "rsdistill.cli.main", *train(tiny_tree3, tiny_cache, run)]
    failed = subprocess.run(argv, capture_output=True, text=True, env=kit.env(), timeout=300)
    assert failed.returncode == 2, failed.stderr
    lines = [ln for ln in failed.stderr.splitlines() if ln.startswith("rsdistill: error:")]
    assert len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert "No space left on device" in lines[0] and f"saved in {run}/last.pt" in lines[0]
    k = saved_epoch(run)
    assert 1 <= k < 3
    grow()
    resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True,
                             env=kit.env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at epoch {k}/3" in resumed.stderr
    assert_same_run(run, reference)
    no_leftovers(run)
