"""``rsdistill quantize`` end to end on a tiny run (in process): output, JSON, the drop
guard, and the inputs it refuses. The accuracy bound on real data is tested in
tests/export/test_export_quantize.py."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from rsdistill.cli.main import main

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

FAST = ["--latency-runs", "2", "--inference-threads", "1", "--calibration-images", "16"]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsdistill: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli-quantize") / "run"
    assert main(["train", "--dataset", "folder", "--data-root", str(tiny_tree3), "--image-size", "16",
                 "--cache-dir", str(tiny_cache), "--workers", "1", "--model", "resnet8",
                 "--epochs", "2", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
                 "--no-progress", "--out", str(out)]) == 0
    return out


def test_quantize_prints_both_models_and_writes_beside_them(run_dir, capsys):
    capsys.readouterr()
    assert main(["quantize", str(run_dir), "--allow-drop", *FAST]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"exported {run_dir / 'model.onnx'} (parity on 9 test images")
    assert lines[1].startswith("calibration: 16 training images (seed 0), minmax; QDQ")
    # The activation type auto chose, and the measurement it rests on.
    assert lines[2].startswith("activations: auto: measured on this cpu")
    assert "test split: 9 images; batch 1, 1 thread(s), timed side by side" in lines[3]
    assert [line.split()[0] for line in lines[4:7]] == ["fp32", "int8", "change"]
    assert lines[-1] == f"wrote {run_dir / 'model.int8.onnx'}"
    onnx.checker.check_model(str(run_dir / "model.int8.onnx"))


def test_quantize_json_of_an_onnx_file_with_another_method(run_dir, tmp_path, capsys):
    (run_dir / "model.onnx").is_file() or main(["export", str(run_dir)])
    out = tmp_path / "m.int8.onnx"
    capsys.readouterr()
    assert main(["quantize", str(run_dir / "model.onnx"), "--out", str(out), "--json", "--allow-drop",
                 "--calibration-method", "entropy", "--calibration-seed", "3", *FAST]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out"] == str(out) and result["written"] and out.is_file()
    assert result["exported"] is None and result["test_images"] == 9 and result["threads"] == 1
    q = result["quantization"]
    assert (q["method"], q["seed"], q["calibration_images"]) == ("entropy", 3, 16)
    assert result["int8"]["bytes"] == out.stat().st_size
    assert result["size_ratio"] == pytest.approx(out.stat().st_size / (run_dir / "model.onnx").stat().st_size)


def test_drop_guard_is_one_line_exit_2_and_writes_nothing(run_dir, tmp_path, capsys):
    out = tmp_path / "guarded.onnx"
    capsys.readouterr()
    assert main(["quantize", str(run_dir), "--out", str(out), "--max-drop", "-100", *FAST]) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "more than --max-drop -100 pt" in line and "nothing was written" in line
    assert captured.out == "" and list(tmp_path.iterdir()) == []


def test_allow_drop_writes_and_says_so(run_dir, tmp_path, capsys):
    out = tmp_path / "kept.onnx"
    capsys.readouterr()
    assert main(["quantize", str(run_dir), "--out", str(out), "--max-drop", "-100", "--allow-drop", *FAST]) == 0
    assert "written because of --allow-drop" in capsys.readouterr().out and out.is_file()


def test_a_stale_export_is_refused(run_dir, tmp_path, capsys):
    (run_dir / "model.onnx").is_file() or main(["export", str(run_dir)])
    newer = (run_dir / "model.onnx").stat().st_mtime + 10
    os.utime(run_dir / "model.pt", (newer, newer))
    try:
        assert main(["quantize", str(run_dir), "--out", str(tmp_path / "x.onnx"), *FAST]) == 2
        assert "is older than" in one_error_line(capsys.readouterr().err)
    finally:
        older = (run_dir / "model.onnx").stat().st_mtime - 10
        os.utime(run_dir / "model.pt", (older, older))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, needle", [
    (["--calibration-images", "0"], "--calibration-images must be >= 1"),
    (["--out", "{tmp}/m.bin"], "must end in .onnx"),
    (["--out", "{run}/model.onnx"], "differ from the fp32 model"),
    (["--max-drop", "nan"], "--max-drop"),
])
def test_bad_options_are_one_line(run_dir, tmp_path, capsys, args, needle):
    (run_dir / "model.onnx").is_file() or main(["export", str(run_dir)])
    args = [a.format(tmp=tmp_path, run=run_dir) for a in args]
    before = (run_dir / "model.onnx").read_bytes()
    assert main(["quantize", str(run_dir), *args, "--latency-runs", "2"]) == 2
    assert needle in one_error_line(capsys.readouterr().err)
    assert (run_dir / "model.onnx").read_bytes() == before and list(tmp_path.iterdir()) == []


def test_a_bad_out_is_refused_before_the_fp32_export(run_dir, tmp_path, capsys):
    fresh = tmp_path / "run"
    fresh.mkdir()
    for name in ("model.pt", "config.yaml"):
        shutil.copy(run_dir / name, fresh / name)
    assert main(["quantize", str(fresh), "--out", str(tmp_path / "m.bin")]) == 2
    assert "must end in .onnx" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["config.yaml", "model.pt", "run"]


@pytest.mark.parametrize("target, needle", [
    ("missing-run", "does not exist"), ("missing.onnx", "does not exist"),
])
def test_missing_inputs_are_one_line(tmp_path, capsys, target, needle):
    assert main(["quantize", str(tmp_path / target)]) == 2
    assert needle in one_error_line(capsys.readouterr().err)


def test_a_bare_onnx_file_needs_data_options(run_dir, tmp_path, capsys):
    (run_dir / "model.onnx").is_file() or main(["export", str(run_dir)])
    bare = tmp_path / "model.onnx"
    bare.write_bytes((run_dir / "model.onnx").read_bytes())
    assert main(["quantize", str(bare)]) == 2
    assert "pass --dataset" in one_error_line(capsys.readouterr().err)
