import math

import pytest
import torch
from torch import nn

from rsdistill.runtime.precision import resolve_precision
from rsdistill.errors import ConfigError
from rsdistill.evaluation import (
    inference_report,
    measure_latency,
    measure_throughput,
    predict,
    timed_predict,
)

SHAPE = (3, 16, 16)


def _tiny_model(num_classes=5):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


def _scale(x):
    return x.float().div(255.0)


@pytest.fixture(params=["fp32", "bf16"])
def precision(request):
    return resolve_precision(request.param, "cpu")


def test_latency_structure_and_mode_restored(precision):
    model = precision.prepare_model(_tiny_model()).train()
    out = measure_latency(model, SHAPE, precision, n_runs=7, warmup=1)
    assert model.training and all(m.training for m in model.modules())
    assert out["n_runs"] == 7
    for key in ("latency_ms_p50", "latency_ms_p95", "latency_ms_mean"):
        assert math.isfinite(out[key]) and out[key] > 0
    assert out["latency_ms_p95"] >= out["latency_ms_p50"]


def test_throughput_positive_and_mode_restored(precision):
    model = precision.prepare_model(_tiny_model()).eval()
    out = measure_throughput(model, SHAPE, precision, batch_size=8, n_batches=2, warmup=1)
    assert not model.training
    assert out["batch_size"] == 8
    assert math.isfinite(out["throughput_img_s"]) and out["throughput_img_s"] > 0


def test_mixed_submodule_modes_are_restored():
    precision = resolve_precision("fp32", "cpu")
    model = _tiny_model().train()
    model[1].eval()  # e.g. a frozen batch-norm layer
    measure_latency(model, SHAPE, precision, n_runs=2, warmup=0)
    assert model.training and not model[1].training and model[3].training


def test_inference_report_combines_everything(precision):
    model = precision.prepare_model(_tiny_model())
    rep = inference_report(
        model, SHAPE, precision, n_runs=3, warmup=1, throughput_batch=4, throughput_batches=1
    )
    assert rep["device"] == "cpu"
    assert rep["precision"] == precision.name
    assert rep["channels_last"] == precision.channels_last
    assert rep["threads"] >= 1
    assert rep["n_runs"] == 3 and rep["batch_size"] == 4
    assert rep["latency_ms_p95"] >= rep["latency_ms_p50"] > 0
    assert rep["throughput_img_s"] > 0


def test_predict_matches_direct_call_fp32():
    precision = resolve_precision("fp32", "cpu")
    model = precision.prepare_model(_tiny_model()).train()
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (23, *SHAPE), dtype=torch.uint8, generator=gen)
    logits = predict(model, images, _scale, precision, batch_size=5)
    assert model.training
    assert logits.shape == (23, 5) and logits.dtype == torch.float32 and logits.device.type == "cpu"
    model.eval()
    with torch.no_grad():
        expected = model(_scale(images))
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_predict_bf16_shape_and_dtype():
    precision = resolve_precision("bf16", "cpu")
    model = precision.prepare_model(_tiny_model())
    images = torch.randint(0, 256, (10, *SHAPE), dtype=torch.uint8)
    logits = predict(model, images, _scale, precision, batch_size=4)
    assert logits.shape == (10, 5) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_timed_predict_returns_logits_and_seconds():
    precision = resolve_precision("fp32", "cpu")
    model = precision.prepare_model(_tiny_model())
    images = torch.randint(0, 256, (9, *SHAPE), dtype=torch.uint8)
    logits, seconds = timed_predict(model, images, _scale, precision, batch_size=4)
    torch.testing.assert_close(logits, predict(model, images, _scale, precision, batch_size=9))
    assert isinstance(seconds, float) and math.isfinite(seconds) and seconds > 0


def test_bad_arguments_raise():
    precision = resolve_precision("fp32", "cpu")
    model = _tiny_model()
    with pytest.raises(ConfigError):
        measure_latency(model, SHAPE, precision, n_runs=0)
    with pytest.raises(ConfigError):
        measure_latency(model, (16, 16), precision, n_runs=1)
    with pytest.raises(ConfigError):
        measure_throughput(model, SHAPE, precision, batch_size=0)
    with pytest.raises(ValueError):
        predict(model, torch.zeros(2, *SHAPE), _scale, precision)  # float, not uint8
