"""``rsdistill export / evaluate model.onnx / compress`` end to end on a tiny run (in process)."""

from __future__ import annotations

import json

import pytest
import torch

from rsdistill.cli.main import main
from rsdistill.models import load_model
from rsdistill.export.ort_backend import OnnxRuntimeBackend

pytest.importorskip("onnxruntime")

SAME = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "confusion_matrix",
        "num_samples", "params", "flops")
FAST = ["--latency-runs", "2", "--inference-threads", "1"]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsdistill: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli-export") / "run"
    rc = main(["train", "--dataset", "folder", "--data-root", str(tiny_tree3), "--image-size", "16",
               "--cache-dir", str(tiny_cache), "--workers", "1", "--model", "resnet8",
               "--epochs", "2", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
               "--no-progress", "--out", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def onnx_file(run_dir):
    assert main(["export", str(run_dir), "--format", "onnx"]) == 0
    return run_dir / "model.onnx"


def evaluate_json(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["evaluate", *args, "--json", *FAST]) == 0
    return json.loads(capsys.readouterr().out)


def test_export_prints_parity_and_the_file(run_dir, capsys):
    out = run_dir / "again.onnx"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("parity on 9 test images") and "differs on 0/9" in lines[0]
    assert lines[1].startswith(f"wrote {out}") and out.is_file()


def test_export_with_broken_parity_fails_in_one_line(run_dir, tmp_path, capsys, monkeypatch):
    real = OnnxRuntimeBackend.__call__
    monkeypatch.setattr(OnnxRuntimeBackend, "__call__", lambda self, x: real(self, x) * 1.5)
    out = tmp_path / "model.onnx"
    assert main(["export", str(run_dir), "--out", str(out)]) == 2
    assert "parity" in one_error_line(capsys.readouterr().err)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_evaluate_onnx_matches_the_checkpoint(run_dir, onnx_file, capsys):
    ref = evaluate_json(capsys, str(run_dir), "--precision", "fp32")
    got = evaluate_json(capsys, str(onnx_file))
    assert set(got) == set(ref)
    assert set(got["inference"]) == set(ref["inference"])
    for key in SAME:
        assert got[key] == ref[key], key
    inf = got["inference"]
    assert inf["backend"] == "onnxruntime" and inf["threads"] == 1 and inf["precision"] == "fp32"
    assert inf["latency_ms_p50"] > 0 and inf["throughput_img_s"] > 0 and inf["test_seconds"] > 0
    assert got["checkpoint"] == str(onnx_file)


def test_metrics_of_a_bf16_trained_run_are_fp32_and_match_its_onnx_export(
        tmp_path, tiny_tree3, tiny_cache, capsys):
    out = tmp_path / "bf16-run"
    assert main(["train", "--dataset", "folder", "--data-root", str(tiny_tree3), "--image-size",
                 "16", "--cache-dir", str(tiny_cache), "--workers", "1", "--model", "resnet8",
                 "--epochs", "2", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
                 "--precision", "bf16", "--no-progress", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["train_precision"]["precision"] == "bf16"
    assert metrics["evaluated_precision"] == "fp32"
    assert main(["export", str(out)]) == 0
    exported = evaluate_json(capsys, str(out / "model.onnx"))
    # evaluate of the run itself defaults to fp32 too, whatever it trained in.
    checkpoint = evaluate_json(capsys, str(out))
    assert checkpoint["evaluated_precision"] == exported["evaluated_precision"] == "fp32"
    for key in ("accuracy", "f1_macro", "confusion_matrix", "per_class"):
        assert exported[key] == metrics[key] == checkpoint[key], key


def test_evaluate_onnx_refuses_bf16(onnx_file, capsys):
    assert main(["evaluate", str(onnx_file), "--precision", "bf16", *FAST]) == 2
    assert "fp32" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("opts, needle", [
    (["--rank", "0"], "[1, 16]"), (["--rank", "17"], "[1, 16]"), ([], "exactly one"),
    (["--rank", "2", "--energy", "0.9"], "exactly one"), (["--energy", "1.5"], "(0, 1]"),
])
def test_compress_bad_options_fail_in_one_line(run_dir, tmp_path, capsys, opts, needle):
    assert main(["compress", str(run_dir), *opts, "--out", str(tmp_path / "c")]) == 2
    assert needle in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "c").exists()


def test_compress_writes_a_run_that_evaluates_and_exports(run_dir, tmp_path, capsys):
    out = tmp_path / "compressed"
    assert main(["compress", str(run_dir), "--energy", "0.9", "--json", *FAST,
                 "--out", str(out)]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert 1 <= rec["rank"] <= rec["full_rank"] == 16 and rec["energy_kept"] >= 0.9
    assert rec["layer"] == "conv1" and rec["flops_after"] != rec["flops_before"]
    assert rec["break_even_rank"] == 11  # 16·27 weights vs R·(27 + 16)
    model, meta = load_model(out)
    assert meta["low_rank"] == {"layer": "conv1", "rank": rec["rank"], "bias": True}
    assert rec["weighting"] == "data" and rec["weighted_by"] == "bn1"
    assert {"model.pt", "config.yaml", "metrics.json"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["compression"]["accuracy_after"] == metrics["accuracy"]
    again = evaluate_json(capsys, str(out))
    assert again["accuracy"] == metrics["accuracy"]
    assert main(["export", str(out)]) == 0 and (out / "model.onnx").is_file()


def test_a_model_trained_on_upsampled_views_is_refused_for_deployment(tmp_path, tiny_tree3,
                                                                      tiny_cache, capsys):
    out = tmp_path / "teacher-on-views"
    assert main(["train", "--dataset", "folder", "--data-root", str(tiny_tree3), "--image-size",
                 "16", "--source-size", "8", "--cache-dir", str(tiny_cache), "--workers", "1",
                 "--model", "resnet8", "--epochs", "1", "--batch-size", "8", "--latency-runs",
                 "2", "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    assert torch.load(out / "model.pt", weights_only=True)["meta"]["source_size"] == 8
    capsys.readouterr()
    assert main(["export", str(out)]) == 2
    assert "--source-size" in one_error_line(capsys.readouterr().err)
    assert not (out / "model.onnx").exists()
