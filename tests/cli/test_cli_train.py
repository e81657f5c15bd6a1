"""``rsdistill train / distill / evaluate / models list`` end to end on a tiny tree.

In process through ``rsdistill.cli.main.main`` (one real subprocess at the end).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from rsdistill.cli.main import main
from rsdistill.runtime.precision import resolve_precision
from rsdistill.training.trainer import Trainer

EXACT = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted",
         "recall_weighted", "f1_weighted", "per_class", "confusion_matrix", "num_samples",
         "params", "flops")


def data_args(tree, cache) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--image-size", "16",
            "--cache-dir", str(cache), "--workers", "1"]


def train_args(epochs: int = 2) -> list[str]:
    return ["--epochs", str(epochs), "--batch-size", "8", "--latency-runs", "3",
            "--device", "cpu", "--no-progress"]


def read_metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rsdistill: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli-teacher") / "teacher"
    rc = main(["train", *data_args(tiny_tree3, tiny_cache), "--model", "resnet8",
               *train_args(), "--seed", "3", "--out", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, teacher_dir):
    """Distilled with β = α and no data options: they come from the teacher's run."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli-student") / "student"
    rc = main(["distill", "--teacher", str(teacher_dir), "--student", "resnet8",
               "--alpha", "0.7", "--temperature", "4", "--nuclear-beta", "alpha",
               *train_args(), "--out", str(out)])
    assert rc == 0
    return out


def test_train_prints_a_summary_and_writes_the_run(tmp_path, tiny_tree3, tiny_cache, capsys):
    out = tmp_path / "run"
    rc = main(["train", *data_args(tiny_tree3, tiny_cache), "--model", "resnet8",
               *train_args(epochs=1), "--precision", "fp32", "--out", str(out)])
    assert rc == 0
    stdout = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(stdout[0])
    assert stdout[-1] == f"wrote {out}"
    metrics = read_metrics(out)
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "params", "flops"):
        assert summary[key] == metrics[key]
    assert summary["latency_ms_p50"] == metrics["inference"]["latency_ms_p50"]
    # --precision fp32 switches off autocast and channels_last.
    assert metrics["run"]["train_precision"]["precision"] == "fp32"
    assert metrics["run"]["train_precision"]["channels_last"] is False
    assert metrics["evaluated_precision"] == "fp32"


def test_run_directory_holds_every_file_and_metric(teacher_dir):
    for name in ("model.pt", "last.pt", "config.yaml", "metrics.json", "epochs.csv",
                 "versions.json"):
        assert (teacher_dir / name).is_file(), name
    metrics = read_metrics(teacher_dir)
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["params"] > 0 and metrics["flops"] > 0
    inference = metrics["inference"]
    assert inference["latency_ms_p50"] > 0 and inference["throughput_img_s"] > 0
    assert inference["test_seconds"] > 0
    # By default training takes what this CPU runs fastest (bf16 only where it is
    # native), always channels_last on a CPU; the metrics are fp32.
    assert metrics["run"]["train_precision"]["precision"] == resolve_precision("auto", "cpu").name
    assert metrics["run"]["train_precision"]["channels_last"] is True
    assert metrics["evaluated_precision"] == "fp32"
    config = yaml.safe_load((teacher_dir / "config.yaml").read_text())
    assert config["kind"] == "train"
    assert config["train"]["seed"] == 3 and config["data"]["image_size"] == 16
    versions = json.loads((teacher_dir / "versions.json").read_text())
    assert versions["torch"] and versions["python"]
    with open(teacher_dir / "epochs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    assert {"loss", "train_accuracy", "val_accuracy", "lr", "nuclear_norm",
            "effective_rank"} <= set(rows[0])


@pytest.mark.parametrize("target", ["dir", "model.pt"])
def test_evaluate_reproduces_the_run_metrics_exactly(teacher_dir, capsys, target):
    path = teacher_dir if target == "dir" else teacher_dir / "model.pt"
    assert main(["evaluate", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = read_metrics(teacher_dir)
    for key in EXACT:
        assert result[key] == metrics[key], key
    assert result["split"] == "test"
    assert result["checkpoint"] == str(teacher_dir / "model.pt")


def test_evaluate_prints_a_readable_summary(teacher_dir, capsys):
    assert main(["evaluate", str(teacher_dir), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "val" in out and "accuracy" in out and "f1_macro" in out and "latency" in out


def test_distill_uses_the_teachers_data_and_records_beta(student_dir, teacher_dir):
    student = yaml.safe_load((student_dir / "config.yaml").read_text())
    teacher = yaml.safe_load((teacher_dir / "config.yaml").read_text())
    assert student["kind"] == "distill"
    assert student["data"] == teacher["data"]
    assert student["distill"]["alpha"] == 0.7
    assert student["distill"]["temperature"] == 4.0
    assert student["distill"]["nuclear_beta"] == "alpha"
    assert student["distill"]["nuclear_beta_resolved"] == 0.7
    with open(student_dir / "epochs.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["loss_soft"]) > 0 and float(row["loss_hard"]) > 0
    assert float(row["loss_nuclear"]) > 0
    metrics = read_metrics(student_dir)
    assert metrics["run"]["kind"] == "distill"
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "params", "flops"):
        assert key in metrics


def test_evaluate_reproduces_a_distilled_run(student_dir, capsys):
    assert main(["evaluate", str(student_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = read_metrics(student_dir)
    for key in EXACT:
        assert result[key] == metrics[key], key


def test_interrupted_train_resumes_to_the_uninterrupted_result(
        teacher_dir, tmp_path, tiny_tree3, tiny_cache, capsys, monkeypatch):
    out = tmp_path / "teacher"
    args = ["train", *data_args(tiny_tree3, tiny_cache), "--model", "resnet8", *train_args(),
            "--seed", "3", "--out", str(out)]
    train_epoch, calls = Trainer.train_epoch, {"n": 0}

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return train_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    assert main(args) == 130
    assert "interrupted" in capsys.readouterr().err
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    assert main(args + ["--resume"]) == 0
    capsys.readouterr()
    ours, ref = read_metrics(out), read_metrics(teacher_dir)
    for key in EXACT:
        assert ours[key] == ref[key], key
    a = torch.load(out / "model.pt", weights_only=True)["model"]
    b = torch.load(teacher_dir / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)


@pytest.mark.parametrize("option, value, word", [
    ("--alpha", "1.5", "alpha"),
    ("--temperature", "0", "temperature"),
    ("--nuclear-beta", "-1", "beta"),
])
def test_invalid_distillation_option_is_one_line_and_exit_2(teacher_dir, tmp_path, capsys,
                                                           option, value, word):
    out = tmp_path / "student"
    rc = main(["distill", "--teacher", str(teacher_dir), "--student", "resnet8",
               *train_args(), option, value, "--out", str(out)])
    assert rc == 2
    line = one_error_line(capsys.readouterr().err)
    assert word in line and value in line
    assert not out.exists()


def test_existing_run_directory_without_resume_is_refused(teacher_dir, tiny_tree3, tiny_cache,
                                                          capsys):
    before = (teacher_dir / "last.pt").read_bytes()
    rc = main(["train", *data_args(tiny_tree3, tiny_cache), "--model", "resnet8",
               *train_args(), "--out", str(teacher_dir)])
    assert rc == 2
    assert "--resume" in one_error_line(capsys.readouterr().err)
    assert (teacher_dir / "last.pt").read_bytes() == before


def test_teacher_of_another_class_count_is_refused(teacher_dir, tmp_path, tiny_tree4, capsys):
    rc = main(["distill", "--teacher", str(teacher_dir), "--student", "resnet8",
               "--data-root", str(tiny_tree4), *train_args(), "--out", str(tmp_path / "s")])
    assert rc == 2
    line = one_error_line(capsys.readouterr().err)
    assert "3 classes" in line and "4" in line


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err)


def test_models_list_json(capsys):
    assert main(["models", "list", "--json", "--image-size", "32"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert "resnet8" in rows and "resnet8x4" in rows
    assert rows["resnet8"]["params"] > 0 and rows["resnet8"]["flops"] > 0
    assert rows["resnet8x4"]["params"] > rows["resnet8"]["params"]


def test_models_list_table(capsys):
    assert main(["models", "list", "resnet8"]) == 0
    out = capsys.readouterr().out
    assert "resnet8" in out and "params" in out


def test_subprocess_bad_input_exits_2_without_a_traceback(teacher_dir, tmp_path, tiny_tree3,
                                                          tiny_cache):
    # An absurd learning rate: the loss turns nan in epoch 2. The user sees one line
    # (no traceback, no warning), exit code 2, and the epoch-1 checkpoint stays.
    out = tmp_path / "diverged"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    proc = subprocess.run(
        [sys.executable, "-m", "rsdistill", "train", *data_args(tiny_tree3, tiny_cache),
         "--model", "resnet8", "--epochs", "3", "--batch-size", "64", "--lr", "1e30",
         "--latency-runs", "3", "--device", "cpu", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    progress = ("rsdistill: epoch ", "rsdistill: training in ")
    errors = [l for l in proc.stderr.splitlines() if not l.startswith(progress)]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("rsdistill: error: ")
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    assert "nan" in errors[0] and "epoch 2" in errors[0]
    assert (out / "last.pt").is_file()
