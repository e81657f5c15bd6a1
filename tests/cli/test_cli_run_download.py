"""``rsdistill run --download`` and ``download: true`` end to end, and a bare ``rsdistill
run``. The download comes from a local file:// mirror (the ucmerced spec's URL is
replaced) of a tiny UC Merced archive in the official layout
(``UCMerced_LandUse/Images/<class>/<class>NN.tif``), built from real images of the shared
copy; the study is one teacher epoch and one student. No network."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import select
import signal
import subprocess
import sys
import urllib.request
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from PIL import Image

import rsdistill.cli.run_cmd as run_cmd
from rsdistill.cli.main import main
from rsdistill.data.specs import DATASETS, UCMERCED, UCMERCED_CLASSES, Download
from rsdistill.experiments.study import StudyConfig
from rsdistill.training.trainer import Trainer

REPO_SRC = Path(__file__).resolve().parents[2] / "src"
NAME = "UCMerced_LandUse.zip"
PER_CLASS = 5  # 3/1/1 per class in the default 60/20/20 split
TINY_TRAIN = {"model": "resnet8", "epochs": 1, "batch_size": 16, "device": "cpu",
              "latency_runs": 3}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, shared_datasets) -> Path:
    """The official layout and file type (TIFF), 5 real scenes a class at 32 px."""
    path = tmp_path_factory.mktemp("mirror") / NAME
    with zipfile.ZipFile(shared_datasets / "ucmerced.zip") as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for cls in UCMERCED_CLASSES:
            for i in range(PER_CLASS):
                with src.open(f"UCMerced_LandUse/Images/{cls}/{cls}{i:02d}.jpg") as fh:
                    img = Image.open(fh).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC)
                buf = io.BytesIO()
                img.save(buf, "TIFF")
                out.writestr(f"UCMerced_LandUse/Images/{cls}/{cls}{i:02d}.tif", buf.getvalue())
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def serve(monkeypatch, mirror):
    """``serve(url=None, md5=None)``: ucmerced's download points at the local mirror."""

    def use(url: str | None = None, checksum: str | None = None) -> Download:
        item = Download(url or mirror.as_uri(), NAME, checksum or md5(mirror),
                        mirror.stat().st_size)
        monkeypatch.setitem(DATASETS._items, "ucmerced", replace(UCMERCED, downloads=(item,)))
        return item

    return use


def forbid(monkeypatch, training: bool = True, downloading: bool = True) -> None:
    def no_training(self):
        raise AssertionError("trained")

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded")

    if training:
        monkeypatch.setattr(Trainer, "train_epoch", no_training)
    if downloading:
        monkeypatch.setattr(urllib.request, "urlopen", no_download)


def tiny_config(path: Path, **data) -> str:
    path.write_text(yaml.safe_dump({
        "out": str(path.parent / "not-used"),
        "data": {"dataset": "ucmerced", "image_size": 16, "workers": 1, **data},
        "teacher": TINY_TRAIN, "student": TINY_TRAIN,
        "sweep": {"alphas": "0.5", "betas": ["0"], "seeds": 1, "jobs": 1},
    }, sort_keys=False))
    return str(path)


@pytest.fixture
def study(tmp_path):
    """``study(*extra, **data) -> (argv, root, out)`` for the tiny study in tmp_path."""
    root, out = tmp_path / "data", tmp_path / "study"

    def argv(*extra: str, **data) -> list[str]:
        config = tiny_config(tmp_path / "tiny.yaml", **data)
        return ["run", "--config", config, "--data-root", str(root), "--cache-dir",
                str(tmp_path / "cache"), "--out", str(out), "--no-progress", *extra]

    return argv, root, out


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def one_error_line(err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsdistill: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def assert_study_done(out: Path) -> None:
    for rel in ("study.yaml", "teacher/metrics.json", "sweep/results.json", "sweep/report.md"):
        assert (out / rel).is_file(), rel


# ----------------------------------------------------------------------------- success

def test_run_download_fetches_the_archive_before_training_then_runs(study, serve, mirror,
                                                                    caplog, capsys, monkeypatch):
    argv, root, out = study
    serve()
    caplog.set_level(logging.INFO)
    assert main(argv("--download")) == 0, capsys.readouterr().err
    assert files(root) == [NAME] and md5(root / NAME) == md5(mirror)
    assert_study_done(out)
    assert yaml.safe_load((out / "study.yaml").read_text())["data"]["download"] is True
    log = messages(caplog)
    assert "looking for the data in" in log[0] and str(root) in log[0]
    fetched = next(i for i, m in enumerate(log) if m.startswith(f"downloading {NAME}"))
    trained = next(i for i, m in enumerate(log) if m.startswith("stage 2/4: training the teacher"))
    assert log[1].startswith("stage 1/4: data") and 1 < fetched < trained
    # One line per stage finished, with the time so far and the whole study's ETA.
    done = [m for m in log if m.startswith("stage ") and " done in " in m]
    assert [m.split()[2] for m in done] == ["data", "teacher", "sweep", "report"]
    assert "ETA unknown" in done[0] and "s/epoch so far" in done[1]
    assert done[-1].endswith("nothing left to train")

    # Present now: the same command fetches nothing and trains nothing.
    forbid(monkeypatch)
    capsys.readouterr()
    assert main(argv("--download")) == 0
    assert capsys.readouterr().out.strip().endswith(str(out / "sweep" / "report.md"))


def test_connection_drop_then_the_next_run_starts_clean_with_download_in_the_config(
        study, serve, mirror, capsys, monkeypatch):
    argv, root, out = study
    serve()
    real = urllib.request.urlopen
    drop = {"on": True}

    class HangsUp:
        """The server closes the connection half-way through the body."""

        def __init__(self, response) -> None:
            self._response, self._left = response, mirror.stat().st_size // 2
            self.headers = response.headers

        def read(self, n):
            block = self._response.read(min(n, self._left)) if self._left > 0 else b""
            self._left -= len(block)
            return block

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._response.close()

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, *a, **k:
                        HangsUp(real(url, *a, **k)) if drop["on"] else real(url, *a, **k))
    monkeypatch.setattr(Trainer, "train_epoch", lambda self: pytest.fail("trained"))
    assert main(argv("--download")) == 2
    one_error_line(capsys.readouterr().err, "stopped after", "run the command again")
    assert files(root) == [] and not out.exists()

    drop["on"] = False
    monkeypatch.undo()  # training allowed again (the mirror is served by serve() anew)
    serve()
    assert main(argv(download=True)) == 0, capsys.readouterr().err  # no --download flag
    assert files(root) == [NAME] and md5(root / NAME) == md5(mirror)
    assert_study_done(out)


KILLED_RUN = r"""
import sys, time, urllib.request
from dataclasses import replace
from rsdistill.data.specs import DATASETS, UCMERCED, Download
real = urllib.request.urlopen
class Stalls:
    def __init__(self, response):
        self.response, self.headers, self.sent = response, response.headers, False
    def read(self, n):
        if self.sent:
            print("stalled", flush=True)
            time.sleep(3600)
        self.sent = True
        return self.response.read(min(n, 4096))
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.response.close()
urllib.request.urlopen = lambda url, *a, **k: Stalls(real(url, *a, **k))
item = Download(sys.argv[1], "UCMerced_LandUse.zip", sys.argv[2])
DATASETS._items["ucmerced"] = replace(UCMERCED, downloads=(item,))
from rsdistill.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def test_killed_download_leaves_no_archive_and_the_next_run_starts_clean(study, serve, mirror,
                                                                         tmp_path, capsys):
    argv, root, out = study
    env = {**os.environ, "PYTHONPATH": str(REPO_SRC), "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "killed.err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, mirror.as_uri(), md5(mirror),
                                 *argv("--download")], stdout=subprocess.PIPE, stderr=err,
                                text=True, env=env, stdin=subprocess.DEVNULL)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 300)
        assert ready and proc.stdout.readline().strip() == "stalled", \
            (tmp_path / "killed.err").read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    # What kill -9 leaves: the partial temporary file, never the archive's own name.
    (partial,) = files(root)
    assert partial.startswith(f".{NAME}.{proc.pid}.") and partial.endswith(".tmp")
    assert not out.exists()

    serve()
    assert main(argv("--download")) == 0, capsys.readouterr().err
    assert files(root) == [NAME] and md5(root / NAME) == md5(mirror)
    assert_study_done(out)


# ----------------------------------------------------------------------------- refusals

def test_wrong_md5_is_one_error_and_nothing_is_kept_or_trained(study, serve, mirror, capsys,
                                                               monkeypatch):
    argv, root, out = study
    serve(checksum="0" * 32)
    forbid(monkeypatch, downloading=False)
    assert main(argv("--download")) == 2
    one_error_line(capsys.readouterr().err, "md5 mismatch", "0" * 32, md5(mirror),
                   "nothing was saved")
    assert files(root) == [] and not out.exists()


def test_without_network_the_error_names_the_page_and_where_to_put_the_file(
        study, serve, tmp_path, capsys, monkeypatch):
    argv, root, out = study
    serve(url=(tmp_path / "offline" / NAME).as_uri())
    forbid(monkeypatch, downloading=False)
    assert main(argv("--download")) == 2
    one_error_line(capsys.readouterr().err, "without network", UCMERCED.homepage,
                   str(root / NAME))
    assert files(root) == [] and not out.exists()


def test_ctrl_c_during_the_download_leaves_nothing(study, serve, capsys, monkeypatch):
    argv, root, out = study
    serve()
    real = urllib.request.urlopen

    class Interrupted:
        def __init__(self, response) -> None:
            self._response, self.headers, self._sent = response, response.headers, False

        def read(self, n):
            if self._sent:
                raise KeyboardInterrupt
            self._sent = True
            return self._response.read(min(n, 4096))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._response.close()

    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, *a, **k: Interrupted(real(url, *a, **k)))
    assert main(argv("--download")) == 130
    assert capsys.readouterr().err.strip() == "rsdistill: interrupted"
    assert files(root) == [] and not out.exists()


def test_without_download_a_missing_archive_says_how_to_fetch_it(study, capsys, monkeypatch):
    argv, root, out = study
    root.mkdir()
    forbid(monkeypatch)
    assert main(argv()) == 2
    one_error_line(capsys.readouterr().err, str(root), "--download")
    assert files(root) == [] and not out.exists()


# ----------------------------------------------------------------------------- bare run

def test_bare_run_is_the_ucmerced_study_and_first_says_where_it_reads_and_writes(
        monkeypatch, tmp_path, caplog):
    seen = {}

    def fake_run_study(cfg, progress=True, overwrite=False, backend=None, stages=None):
        seen["cfg"], seen["backend"] = cfg, backend
        return tmp_path / "sweep"

    monkeypatch.setattr(run_cmd, "run_study", fake_run_study)
    monkeypatch.setattr(run_cmd, "write_report", lambda d, int8=False: d / "report.md")
    monkeypatch.setenv("RSDISTILL_DATA", str(tmp_path / "datasets"))
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    assert main(["run"]) == 0
    cfg, default = seen["cfg"], StudyConfig()
    assert cfg.out == "runs/ucmerced"
    assert seen["backend"].name == "local"  # the default backend
    assert (cfg.data, cfg.teacher, cfg.student, cfg.sweep) == \
        (default.data, default.teacher, default.student, default.sweep)
    first = messages(caplog)[0]
    assert first.startswith("ucmerced study: looking for the data in ")
    assert str(tmp_path / "datasets") in first and "$RSDISTILL_DATA" in first
    assert str(tmp_path / "runs" / "ucmerced") in first


def test_bare_run_without_data_stops_after_saying_where_it_looked(tmp_path):
    """As a user sees it (a subprocess): the first line says where, the last one what to
    do; nothing is written."""
    empty, cwd = tmp_path / "datasets", tmp_path / "work"
    empty.mkdir()
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO_SRC), "OMP_NUM_THREADS": "1",
           "RSDISTILL_DATA": str(empty), "RSDISTILL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "rsdistill.cli.main", "run"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith(f"rsdistill: ucmerced study: looking for the data in {empty} ")
    assert str(cwd / "runs" / "ucmerced") in lines[0]
    assert lines[-1].startswith("rsdistill: error: UC Merced Land Use not found under")
    assert "--download" in lines[-1] and "Traceback" not in proc.stderr
    assert files(cwd) == [] and files(empty) == []
