"""The ``--int8`` section of the sweep and comparison reports: the best student's runs
quantised in memory, their fp32 and int8 figures in one table and in int8.json.

A tiny sweep (resnet8, 16 px, 1 epoch; α ∈ {0, 0.5}, 2 seeds) and a tiny comparison
(scratch and kd, 2 seeds) on the tiny tree."""

from __future__ import annotations

import statistics

import pytest
import torch

from rsdistill.cli.main import main
from rsdistill.data.module import DataConfig
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.grid import SweepConfig
from rsdistill.experiments.sweep import run_sweep
from rsdistill.training.config import TrainConfig
from rsdistill.io import read_json
from rsdistill.report.int8_section import INT8_FILE, best_compare_runs, best_sweep_runs
from rsdistill.report.blocks import pm

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("int8-report")
    data = DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=16,
                      cache_dir=str(tiny_cache), workers=1)
    train = TrainConfig(model="resnet8", epochs=1, batch_size=8, device="cpu", latency_runs=2)
    run_training(root / "teacher", data, train, progress=False)
    return root, data, train


@pytest.fixture(scope="module")
def sweep_dir(teacher):
    root, data, train = teacher
    run_sweep(root / "sweep", data, train, SweepConfig(teacher=str(root / "teacher"), alphas=[0.0, 0.5],
                                                       betas=["0"], seeds=2), progress=False, jobs=1)
    return root / "sweep"


def section(markdown: str) -> list[str]:
    lines = markdown.split("## Int8 deployment\n", 1)[1].split("## ", 1)[0].strip().splitlines()
    return lines


def test_report_int8_adds_the_section_before_the_figures(sweep_dir, capsys):
    assert main(["report", str(sweep_dir), "--int8"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {sweep_dir / 'report.md'}"
    text = (sweep_dir / "report.md").read_text()
    assert text.index("## Int8 deployment") < text.index("## Figures")
    assert "Int8 deployment" in (sweep_dir / "report.html").read_text()
    record = read_json(sweep_dir / INT8_FILE)
    label, runs = best_sweep_runs(read_json(sweep_dir / "results.json"))
    assert record["label"] == label and [r["run"] for r in record["runs"]] == runs and len(runs) == 2
    rows = [line for line in section(text) if line.startswith("| best student")]
    assert len(rows) == 2
    for row, name in zip(rows, ("fp32", "int8")):
        cells = [c.strip() for c in row.strip("|").split("|")]
        acc = [r[name]["accuracy"] for r in record["runs"]]
        assert cells[0] == f"best student ({label}), {name} ONNX"
        assert cells[1] == pm(statistics.fmean(acc), statistics.stdev(acc))
    # Nothing but a missing fp32 export is written into the runs.
    for run in runs:
        assert (sweep_dir / run / "model.onnx").is_file()
        assert not (sweep_dir / run / "model.int8.onnx").exists()


def test_the_plain_report_has_no_int8_section(sweep_dir):
    assert main(["report", str(sweep_dir)]) == 0
    assert "Int8" not in (sweep_dir / "report.md").read_text()


def test_compare_int8_reports_the_best_method(teacher, tmp_path, tiny_tree3, tiny_cache, capsys):
    root, _, _ = teacher
    out = tmp_path / "cmp"
    assert main(["compare", "--teacher", str(root / "teacher"), "--student", "resnet8", "--methods", "kd",
                 "--seeds", "2", "--epochs", "1", "--batch-size", "8", "--latency-runs", "2",
                 "--device", "cpu", "--no-progress", "--int8", "--out", str(out)]) == 0
    text = (out / "comparison.md").read_text()
    label, runs = best_compare_runs(read_json(out / "comparison.json"))
    assert label in ("scratch", "kd") and runs == [f"{label}/seed0", f"{label}/seed1"]
    assert f"best student ({label}), int8 ONNX" in text
    assert read_json(out / INT8_FILE)["label"] == label
    # `rsdistill report` recognises a comparison directory too.
    (out / INT8_FILE).unlink()
    capsys.readouterr()
    assert main(["report", str(out), "--int8"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out / 'comparison.md'}"
    assert (out / INT8_FILE).is_file()


def test_run_int8_rewrites_the_study_report(sweep_dir, monkeypatch, tmp_path, capsys):
    import rsdistill.cli.run_cmd as run_cmd

    # The study itself is tested in tests/cli/test_cli_sweep_run.py; here only what --int8 adds.
    monkeypatch.setattr(run_cmd, "run_study",
                        lambda cfg, progress=True, overwrite=False, backend=None, stages=None:
                        sweep_dir)
    (sweep_dir / INT8_FILE).unlink(missing_ok=True)
    assert main(["run", "--dataset", "ucmerced", "--out", str(tmp_path), "--int8"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {sweep_dir / 'report.md'}"
    assert "## Int8 deployment" in (sweep_dir / "report.md").read_text()
    assert (sweep_dir / INT8_FILE).is_file()
