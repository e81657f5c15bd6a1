"""One place decides device, autocast dtype and memory format."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rsdistill.engine.precision import PRECISIONS, resolve_device, resolve_precision
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


def test_auto_on_cpu_is_bf16_autocast_with_channels_last():
    p = resolve_precision("auto", "cpu")
    assert p.autocast_dtype == torch.bfloat16
    assert p.channels_last is True
    assert p.name == "bf16"
    conv = p.prepare_model(nn.Conv2d(3, 4, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = p.prepare_input(torch.randn(2, 3, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with p.autocast():
        assert conv(x).dtype == torch.bfloat16
    # Outside the context nothing is autocast.
    assert conv(x).dtype == torch.float32


def test_explicit_bf16_matches_auto_on_cpu():
    assert resolve_precision("bf16", "cpu") == resolve_precision("auto", "cpu")


def test_prepare_input_leaves_non_image_tensors_alone():
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
