"""bench/onnx_side_by_side.py times a run, its exported model.onnx and its int8 file in
one table, naming each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rsdistill.cli.main import main

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "onnx_side_by_side.py"


def _table(stdout: str) -> dict[str, float]:
    rows = [line.split("|")[1:3] for line in stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| model")]
    return {name.strip(): float(ms) for name, ms in rows}


def test_a_run_its_onnx_and_its_int8_file_are_three_rows(tiny_teacher, tiny_tree3, tiny_cache,
                                                         tmp_path):
    onnx, int8 = tmp_path / "model.onnx", tmp_path / "model.int8.onnx"
    assert main(["export", str(tiny_teacher), "--out", str(onnx)]) == 0
    assert main(["quantize", str(onnx), "--out", str(int8), "--activations", "uint8",
                 "--allow-drop", "--calibration-images", "8", "--latency-runs", "2",
                 "--dataset", "folder", "--data-root", str(tiny_tree3), "--image-size", "16",
                 "--cache-dir", str(tiny_cache)]) == 0
    done = subprocess.run([sys.executable, str(SCRIPT), str(tiny_teacher), str(onnx),
                           str(int8), "--rounds", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = _table(done.stdout)
    assert set(table) == {"resnet8@16", "resnet8@16 onnx", "resnet8@16 int8"}
    assert all(ms > 0 for ms in table.values())


def test_a_missing_exported_file_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "gone.int8.onnx")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"onnx_side_by_side: exported model {tmp_path / 'gone.int8.onnx'} does not exist"]
