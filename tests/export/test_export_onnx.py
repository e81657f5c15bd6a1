"""ONNX export (``rsdistill.export``) of a tiny trained run: contract, dynamic batch, parity."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from rsdistill.cli.main import main
from rsdistill.data.module import prepare_data
from rsdistill.models import load_model
from rsdistill.runtime.precision import resolve_precision
from rsdistill.errors import ConfigError, ExportError
from rsdistill.export import export_checkpoint
from rsdistill.export.ort_backend import OnnxRuntimeBackend
from rsdistill.export.parity import PARITY_ATOL
from rsdistill.experiments.records import load_run_config

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("onnx-run") / "run"
    rc = main(["train", "--dataset", "folder", "--data-root", str(tiny_tree3), "--image-size", "16",
               "--cache-dir", str(tiny_cache), "--workers", "1", "--standardize",
               "--model", "resnet8", "--epochs", "1", "--batch-size", "8", "--latency-runs", "2",
               "--device", "cpu", "--no-progress", "--out", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def exported(run_dir):
    return export_checkpoint(run_dir / "model.pt", "onnx", data_cfg=load_run_config(run_dir)[0])


def test_export_writes_a_checked_model_with_its_contract(run_dir, exported):
    assert exported.path == run_dir / "model.onnx" and exported.path.is_file()
    proto = onnx.load(str(exported.path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == exported.opset == 17
    props = {p.key: p.value for p in proto.metadata_props}
    _, meta = load_model(run_dir)
    assert json.loads(props["classes"]) == meta["classes"] == ["field", "forest", "river"]
    assert props["input_size"] == "16" and props["scale"] == "1/255"
    assert json.loads(props["mean"]) == pytest.approx(meta["normalization"]["mean"])
    assert json.loads(props["std"]) == pytest.approx(meta["normalization"]["std"])
    assert props["model"] == "resnet8" and props["dataset"] == meta["dataset"]


def test_parity_uses_the_test_images_and_is_tight(run_dir, exported):
    data = prepare_data(load_run_config(run_dir)[0], progress=False)
    parity = exported.parity
    assert parity.count == len(data.split["test"]) and "test images" in parity.source
    assert parity.mismatched == 0 and parity.max_abs_diff < PARITY_ATOL


@pytest.mark.parametrize("batch", [1, 5])
def test_batch_dimension_is_dynamic(run_dir, exported, batch):
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    x = torch.randn(batch, 3, 16, 16)
    (logits,) = session.run(None, {"input": x.numpy()})
    model, _ = load_model(run_dir)
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    assert logits.shape == (batch, 3)
    assert np.abs(logits - ref).max() < PARITY_ATOL


def test_broken_parity_writes_nothing(run_dir, tmp_path, monkeypatch):
    real = OnnxRuntimeBackend.__call__
    monkeypatch.setattr(OnnxRuntimeBackend, "__call__", lambda self, x: real(self, x) + 1e-3)
    out = tmp_path / "broken.onnx"
    with pytest.raises(ExportError, match="parity"):
        export_checkpoint(run_dir / "model.pt", "onnx", out=out,
                          data_cfg=load_run_config(run_dir)[0])
    assert list(tmp_path.iterdir()) == []


def test_bare_checkpoint_falls_back_to_random_inputs(run_dir, tmp_path):
    shutil.copy(run_dir / "model.pt", tmp_path / "model.pt")
    result = export_checkpoint(tmp_path / "model.pt", "onnx", opset=13)
    assert "random inputs" in result.parity.source and result.parity.ok
    assert result.opset == 13 and (tmp_path / "model.onnx").is_file()


def test_bad_options_are_refused(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="opset"):
        export_checkpoint(run_dir / "model.pt", "onnx", out=tmp_path / "m.onnx", opset=99)
    with pytest.raises(ConfigError, match=r"\.onnx"):
        export_checkpoint(run_dir / "model.pt", "onnx", out=tmp_path / "m.bin")
    with pytest.raises(ConfigError, match="unknown export format"):
        export_checkpoint(run_dir / "model.pt", "tflite")


def test_onnx_backend_is_fp32_cpu_only(exported):
    backend = OnnxRuntimeBackend(exported.path, threads=1)
    assert backend.describe() == {"backend": "onnxruntime", "threads": 1}
    with pytest.raises(ConfigError, match="fp32"):
        backend.prepare(resolve_precision("bf16", "cpu"))
