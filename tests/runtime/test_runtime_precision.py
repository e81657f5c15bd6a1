"""One place decides device, autocast dtype and memory format."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rsdistill.runtime import precision as precision_mod
from rsdistill.runtime.precision import PRECISIONS, resolve_device, resolve_precision
from rsdistill.errors import ConfigError


def test_fp32_is_the_plain_eager_baseline():
    p = resolve_precision("fp32", "cpu")
    assert p.device == torch.device("cpu")
    assert p.autocast_dtype is None
    assert p.channels_last is False
    assert p.name == "fp32"
    conv = p.prepare_model(nn.Conv2d(3, 4, 3))
    x = p.prepare_input(torch.randn(2, 3, 8, 8))
    assert x.is_contiguous()
    with p.autocast():
        assert conv(x).dtype == torch.float32


@pytest.fixture
def native_bf16(monkeypatch):
    """Fakes a CPU whose bf16 is native (oneDNN runs it, avx512_bf16 flag present)."""
    monkeypatch.setattr(precision_mod, "onednn_runs_bf16", lambda: True)
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    for env in precision_mod.ISA_CAP_ENVS:
        monkeypatch.delenv(env, raising=False)


@pytest.fixture
def emulated_bf16(monkeypatch):
    """Fakes an AVX2-only CPU: oneDNN reports no bf16 support."""
    monkeypatch.setattr(precision_mod, "onednn_runs_bf16", lambda: False)
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: {"avx2", "fma"})


def test_auto_on_a_cpu_with_native_bf16_is_bf16_autocast_with_channels_last(native_bf16):
    p = resolve_precision("auto", "cpu")
    assert p.autocast_dtype == torch.bfloat16
    assert p.channels_last is True
    assert p.name == "bf16"
    assert p.reason == "cpu has native bf16 (avx512_bf16)"
    conv = p.prepare_model(nn.Conv2d(3, 4, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = p.prepare_input(torch.randn(2, 3, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with p.autocast():
        assert conv(x).dtype == torch.bfloat16
    # Outside the context nothing is autocast.
    assert conv(x).dtype == torch.float32


def test_auto_on_a_cpu_without_native_bf16_is_fp32_with_channels_last(emulated_bf16):
    p = resolve_precision("auto", "cpu")
    assert p.autocast_dtype is None and p.name == "fp32"
    assert p.channels_last is True
    assert p.reason.startswith("cpu has no native bf16")
    assert "fp32 + channels_last" in p.reason
    conv = p.prepare_model(nn.Conv2d(3, 4, 3))
    x = p.prepare_input(torch.randn(2, 3, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with p.autocast():
        assert conv(x).dtype == torch.float32


def test_explicit_bf16_matches_auto_where_bf16_is_native(native_bf16):
    assert resolve_precision("bf16", "cpu") == resolve_precision("auto", "cpu")


def test_explicit_bf16_without_native_support_warns_and_runs(emulated_bf16, caplog):
    with caplog.at_level("WARNING", logger="rsdistill.runtime.precision"):
        p = resolve_precision("bf16", "cpu")
    assert p.name == "bf16" and "emulated" in p.reason
    assert any("10-25x slower" in r.getMessage() for r in caplog.records)


def test_the_summary_and_description_carry_the_reason(emulated_bf16):
    p = resolve_precision("auto", "cpu")
    assert p.summary().startswith("fp32 + channels_last on cpu (cpu has no native bf16")
    assert p.describe()["reason"] == p.reason


def test_an_unclear_capability_is_measured_once_and_cached(monkeypatch, tmp_path):
    # oneDNN runs bf16 but no native flag: only a measurement can tell.
    monkeypatch.setattr(precision_mod, "onednn_runs_bf16", lambda: True)
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: {"avx512f"})
    monkeypatch.setenv("RSDISTILL_CACHE", str(tmp_path))
    calls = []

    def fake_speed(dtype, **_):
        calls.append(dtype)
        return 10.0 if dtype is None else 2.0  # emulated bf16: 5x slower

    monkeypatch.setattr(precision_mod, "_steps_per_second", fake_speed)
    p = resolve_precision("auto", "cpu")
    assert p.name == "fp32" and p.channels_last
    assert "measured: bf16 0.20x the speed of fp32" in p.reason
    assert len(calls) == 2
    cache = json.loads((tmp_path / precision_mod.PROBE_FILE).read_text())
    (entry,) = cache.values()
    assert entry["bf16"] is False and entry["fp32_steps_s"] == 10.0
    # A second resolution reads the verdict instead of measuring again.
    assert resolve_precision("auto", "cpu").name == "fp32"
    assert len(calls) == 2


def test_a_probe_that_finds_bf16_faster_picks_it(monkeypatch, tmp_path):
    monkeypatch.setattr(precision_mod, "onednn_runs_bf16", lambda: True)
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: set())
    monkeypatch.setenv("RSDISTILL_CACHE", str(tmp_path))
    monkeypatch.setattr(precision_mod, "_steps_per_second",
                        lambda dtype, **_: 10.0 if dtype is None else 25.0)
    p = resolve_precision("auto", "cpu")
    assert p.name == "bf16" and "2.50x" in p.reason


def test_an_isa_cap_is_not_trusted_to_the_flags(monkeypatch, tmp_path):
    monkeypatch.setattr(precision_mod, "onednn_runs_bf16", lambda: True)
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    native, why = precision_mod.cpu_bf16_capability()
    assert native is None and "ONEDNN_MAX_CPU_ISA=AVX512_CORE" in why


def test_the_real_probe_runs_and_leaves_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert precision_mod._steps_per_second(None, steps=1, warmup=0) > 0
    assert torch.equal(torch.rand(3), expected)


def test_a_read_only_probe_cache_only_costs_a_new_probe(monkeypatch, tmp_path):
    monkeypatch.setattr(precision_mod, "onednn_runs_bf16", lambda: True)
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: set())
    monkeypatch.setattr(precision_mod, "_steps_per_second", lambda dtype, **_: 1.0)
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    monkeypatch.setenv("RSDISTILL_CACHE", str(blocked / "cache"))
    assert resolve_precision("auto", "cpu").name == "fp32"


def test_prepare_input_leaves_non_image_tensors_alone(native_bf16):
    p = resolve_precision("auto", "cpu")
    v = torch.randn(5, 3)
    assert p.prepare_input(v).shape == (5, 3)


def test_describe_names_the_settings():
    d = resolve_precision("fp32", "cpu").describe()
    assert d["device"] == "cpu" and d["precision"] == "fp32" and d["channels_last"] is False
    assert d["threads"] == torch.get_num_threads()


@pytest.mark.parametrize("name", ["fp64", "BF16", "", "half"])
def test_unknown_precision_is_a_config_error(name):
    with pytest.raises(ConfigError, match="--precision"):
        resolve_precision(name, "cpu")


def test_fp16_on_cpu_is_refused():
    assert "fp16" in PRECISIONS
    with pytest.raises(ConfigError, match="fp16.*CPU"):
        resolve_precision("fp16", "cpu")


def test_device_auto_and_explicit():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_precision("fp32", "auto").device.type == expected


def test_invalid_device_is_a_config_error():
    with pytest.raises(ConfigError, match="--device"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="no CUDA"):
        resolve_precision("auto", "cuda")
