"""bench/patient_teaching.py: the arms' commands and the paired table, without training."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "patient_teaching.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("patient_teaching", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def settings(tmp_path: Path, **over) -> argparse.Namespace:
    base = dict(teacher="runs/t128", sv_teacher="runs/tsv", dataset="ucmerced",
                data_root="data", out=str(tmp_path), student="resnet8", size=32, epochs=300,
                seeds=3, bank_rounds=30, transfer_set="aid", transfer_limit=3000,
                device="cpu")
    return argparse.Namespace(**(base | over))


def test_scratch_arms_train_and_teaching_arms_distill_from_their_teacher(bench, tmp_path):
    a = settings(tmp_path)
    arms = bench.arms(a)
    scratch = bench.run_command(a, arms["scratch"], 2, tmp_path / "s")
    assert scratch[3:5] == ["train", "--dataset"] and "--no-crop" in scratch
    assert "--seed" in scratch and scratch[scratch.index("--seed") + 1] == "2"
    kd_sv = bench.run_command(a, arms["kd_sv"], 0, tmp_path / "k")
    assert kd_sv[3] == "distill" and kd_sv[kd_sv.index("--teacher") + 1] == "runs/tsv"
    assert kd_sv[kd_sv.index("--teacher-view") + 1] == "upsampled"
    kd = bench.run_command(a, arms["kd"], 0, tmp_path / "k2")
    assert kd[kd.index("--teacher") + 1] == "runs/t128" and "--teacher-view" not in kd
    fm = bench.run_command(a, arms["fm_sv_bank"], 0, tmp_path / "f")
    assert fm[fm.index("--bank-rounds") + 1] == "30" and "--no-crop" not in fm
    # the same schedule for every arm: only the teaching differs
    for cmd in (scratch, kd_sv, kd, fm):
        assert cmd[cmd.index("--epochs") + 1] == "300" and cmd[cmd.index("--image-size") + 1] == "32"


def test_an_existing_run_directory_is_resumed(bench, tmp_path):
    a = settings(tmp_path)
    (tmp_path / "s").mkdir()
    assert "--resume" in bench.run_command(a, bench.arms(a)["scratch"], 0, tmp_path / "s")
    assert "--resume" not in bench.run_command(a, bench.arms(a)["scratch"], 0, tmp_path / "n")


def write_accuracy(root: Path, arm: str, accs: list[float]) -> None:
    for seed, acc in enumerate(accs):
        run = root / arm / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"accuracy": acc}))


def test_each_teaching_is_paired_with_the_better_scratch_arm(bench, tmp_path):
    a = settings(tmp_path)
    write_accuracy(tmp_path, "scratch", [0.80, 0.82, 0.84])
    write_accuracy(tmp_path, "scratch_views", [0.70, 0.71, 0.72])
    write_accuracy(tmp_path, "kd_sv", [0.83, 0.84, 0.86])
    chosen = {n: bench.arms(a)[n] for n in ("scratch", "scratch_views", "kd_sv")}
    text, summary = bench.table(a, chosen)
    assert summary["baseline"] == "scratch"
    paired = summary["rows"]["kd_sv"]["paired"]
    assert paired["seeds"] == 3 and paired["mean"] == pytest.approx(0.0233333, abs=1e-6)
    assert "(baseline)" in text.splitlines()[2]


def test_a_seed_missing_from_one_arm_is_left_out_of_the_pairing(bench, tmp_path):
    a = settings(tmp_path)
    write_accuracy(tmp_path, "scratch", [0.80, 0.82, 0.84])
    write_accuracy(tmp_path, "kd", [0.90, 0.90])
    chosen = {n: bench.arms(a)[n] for n in ("scratch", "kd")}
    _, summary = bench.table(a, chosen)
    assert summary["rows"]["kd"]["paired"]["seeds"] == 2
    assert summary["rows"]["kd"]["paired"]["mean"] == pytest.approx(0.09)
