"""``measure_latency_side_by_side``: several models timed in turn on one input."""

from __future__ import annotations

import pytest
import torch

from rsdistill.engine.precision import resolve_precision
from rsdistill.errors import ConfigError
from rsdistill.evaluation import measure_latency_side_by_side

FP32 = resolve_precision("fp32", "cpu")


def test_calls_are_interleaved_and_every_model_gets_the_same_input():
    calls, inputs = [], []

    def model(name):
        def run(x):
            calls.append(name)
            inputs.append(x)
            return x.sum()
        return run

    out = measure_latency_side_by_side({"a": model("a"), "b": model("b")}, (3, 4, 4), FP32,
                                       n_runs=5, warmup=2)
    assert calls == ["a", "b"] * 7
    assert all(torch.equal(x, inputs[0]) for x in inputs) and inputs[0].shape == (1, 3, 4, 4)
    for name in ("a", "b"):
        r = out[name]
        assert r["n_runs"] == 5 and 0 <= r["latency_ms_p50"] <= r["latency_ms_p95"]
        assert r["latency_ms_mean"] >= 0


def test_modules_are_put_back_in_their_mode():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Dropout()).train()
    measure_latency_side_by_side({"net": net}, (3, 8, 8), FP32, n_runs=2, warmup=0)
    assert net.training and net[1].training


@pytest.mark.parametrize("kwargs, error", [
    ({"n_runs": 0}, ConfigError), ({"warmup": -1}, ConfigError), ({"input_shape": (3, 4)}, ConfigError),
])
def test_bad_arguments(kwargs, error):
    args = {"models": {"m": lambda x: x}, "input_shape": (3, 4, 4), "precision": FP32, **kwargs}
    with pytest.raises(error):
        measure_latency_side_by_side(**args)


def test_no_models_is_an_error():
    with pytest.raises(ValueError, match="no models"):
        measure_latency_side_by_side({}, (3, 4, 4), FP32)
