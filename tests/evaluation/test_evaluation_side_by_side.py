"""``interleaved_latency``: several models timed in turn, in one process."""

from __future__ import annotations

import pytest
import torch

from rsdistill.errors import ConfigError
from rsdistill.evaluation import interleaved_latency
from rsdistill.runtime.precision import resolve_precision

FP32 = resolve_precision("fp32", "cpu")


def recorder(name, calls, inputs):
    def run(x):
        calls.append(name)
        inputs.append(x)
        return x.sum()
    return run


def test_calls_alternate_and_models_of_one_shape_get_the_same_input():
    calls, inputs = [], []
    shape = (3, 4, 4)
    out = interleaved_latency({"a": (recorder("a", calls, inputs), shape),
                               "b": (recorder("b", calls, inputs), shape)}, FP32,
                              rounds=4, runs_per_round=1, warmup=2)
    # Warm-up per model, then rounds in alternating order: a b, b a, a b, b a.
    assert calls == ["a", "a", "b", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert all(torch.equal(x, inputs[0]) for x in inputs) and inputs[0].shape == (1, 3, 4, 4)
    for name in ("a", "b"):
        r = out[name]
        assert r["n_runs"] == 4 and 0 <= r["latency_ms_p50"] <= r["latency_ms_p95"]
        assert r["latency_ms_mean"] >= 0


def test_each_model_reads_its_own_input_size_in_blocks():
    calls, inputs = [], []
    out = interleaved_latency({"t": (recorder("t", calls, inputs), (3, 8, 8)),
                               "s": (recorder("s", calls, inputs), (3, 4, 4))}, FP32,
                              rounds=2, runs_per_round=3, warmup=0)
    assert calls == ["t"] * 3 + ["s"] * 3 + ["s"] * 3 + ["t"] * 3
    assert {tuple(x.shape[-2:]) for x in inputs} == {(8, 8), (4, 4)}
    assert out["t"]["n_runs"] == out["s"]["n_runs"] == 6


def test_modules_are_put_back_in_their_mode():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Dropout()).train()
    interleaved_latency({"net": (net, (3, 8, 8))}, FP32, rounds=2, warmup=0)
    assert net.training and net[1].training


@pytest.mark.parametrize("kwargs", [{"rounds": 0}, {"runs_per_round": 0}, {"warmup": -1}])
def test_bad_counts_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        interleaved_latency({"m": (lambda x: x, (3, 4, 4))}, FP32, **kwargs)


def test_a_bad_shape_is_a_config_error():
    with pytest.raises(ConfigError):
        interleaved_latency({"m": (lambda x: x, (3, 4))}, FP32)


def test_no_models_is_an_error():
    with pytest.raises(ValueError, match="no models"):
        interleaved_latency({}, FP32)
