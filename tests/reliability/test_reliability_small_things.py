"""Small things of issue 16, item 9: an empty study config is an error, one seed prints no
"± 0.00", and the final evaluation says what it is doing when stderr is not a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rsdistill.cli.main import main


def data_args(tree, cache) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--cache-dir", str(cache),
            "--image-size", "16", "--workers", "1"]


TRAIN = ["--epochs", "1", "--batch-size", "8", "--latency-runs", "1", "--no-progress"]


@pytest.mark.parametrize("text", ["", "\n", "# nothing but a comment\n"])
def test_empty_study_config_is_an_error(text, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "empty.yaml"
    config.write_text(text)
    result = cli("run", "--config", config)
    assert result.rc == 2
    result.error_line(f"config file {config} is empty", "configs/ucmerced.yaml", "--dataset")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.yaml"]  # no runs/study


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_tree3, tiny_cache) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("one-seed-teacher") / "teacher"
    assert main(["train", *data_args(tiny_tree3, tiny_cache), "--model", "resnet8", *TRAIN,
                 "--out", str(out)]) == 0
    return out


def test_sweep_with_one_seed_prints_values_alone(teacher, tmp_path, cli):
    out = tmp_path / "sweep"
    result = cli("sweep", "--teacher", teacher, "--student", "resnet8", *TRAIN, "--alphas",
                 "0,0.5", "--seeds", "1", "--jobs", "1", "--out", out)
    assert result.rc == 0, result.err
    header, *rows, wrote = result.out.strip().splitlines()
    assert header.endswith("(test split, 1 seed)")
    assert len(rows) == 2 and not any("±" in r for r in rows)
    assert cli("report", out).rc == 0
    report = (out / "report.md").read_text()
    assert "±" not in report
    assert "Test split, 1 seed." in report and "1 seed." in report


def test_compare_with_one_seed_prints_values_alone(teacher, tmp_path, cli):
    out = tmp_path / "compare"
    result = cli("compare", "--teacher", teacher, "--student", "resnet8", *TRAIN, "--methods",
                 "kd", "--seeds", "1", "--out", out)
    assert result.rc == 0, result.err
    header, *rows, wrote = result.out.strip().splitlines()
    assert header.endswith("(test split, 1 seed)")
    assert [r.split()[0] for r in rows] == ["scratch", "kd"]
    assert not any("±" in r for r in rows)
    md = (out / "comparison.md").read_text()
    assert "±" not in md.split("## Results")[1].split("\n\n")[1]  # the table
    assert "on the test split, 1 seed, in %" in md


def test_final_evaluation_logs_its_stages_when_stderr_is_not_a_terminal(
        tiny_tree3, tiny_cache, tmp_path, cli_process):
    out = tmp_path / "run"
    result = cli_process("train", *data_args(tiny_tree3, tiny_cache), "--model", "resnet8",
                         "--epochs", "1", "--batch-size", "8", "--latency-runs", "2",
                         "--out", out)  # progress on, but stderr is a pipe
    assert result.rc == 0, result.err
    stages = [ln for ln in result.err.splitlines() if "final evaluation" in ln]
    assert stages == [
        "rsdistill: final evaluation: test split: predicting 9 images in fp32",
        "rsdistill: final evaluation: timing the test split (9 images) in fp32 on 1 thread",
        "rsdistill: final evaluation: timing batch-1 latency: 2 runs in fp32 on 1 thread",
    ]
