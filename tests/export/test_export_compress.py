"""Truncated-SVD replacement of the first weight layer (``rsdistill.models.lowrank``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rsdistill.models import load_model
from rsdistill.runtime.checkpoint import save_model
from rsdistill.errors import ConfigError
from rsdistill.models import build_model, count_flops, first_weight_layer
from rsdistill.models.lowrank import (factorise, following_batchnorm, full_rank, input_statistics,
                                      rank_for_energy, weighted_singular_values)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _compressed(model: nn.Module, rank: int) -> nn.Module:
    name, layer = first_weight_layer(model)
    model.set_submodule(name, factorise(layer, rank))
    return model


@pytest.fixture
def resnet():
    torch.manual_seed(0)
    return build_model("resnet8", num_classes=3, image_size=16).eval()


def test_reconstruction_error_falls_with_rank_and_vanishes_at_full_rank():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True)
    x = torch.randn(4, 3, 9, 9)
    ref = conv(x)
    errors = []
    for rank in range(1, full_rank(conv) + 1):
        pair = factorise(conv, rank)
        with torch.no_grad():
            w = (pair[1].weight.flatten(1) @ pair[0].weight.flatten(1)).reshape(conv.weight.shape)
            errors.append(float((w - conv.weight).norm()))
            assert pair(x).shape == ref.shape
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-5
    torch.testing.assert_close(factorise(conv, full_rank(conv))(x), ref, atol=1e-5, rtol=1e-5)


def test_full_rank_model_gives_the_same_logits(resnet):
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        ref = resnet(x)
        full = full_rank(first_weight_layer(resnet)[1])
        out = _compressed(resnet, full)(x)
    assert (out - ref).abs().max() < 1e-4


def test_factors_keep_stride_padding_dilation_and_bias():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, bias=True)
    reduce, expand = factorise(conv, 2)
    assert (reduce.stride, reduce.padding, reduce.dilation) == (conv.stride, conv.padding, conv.dilation)
    assert reduce.bias is None and expand.kernel_size == (1, 1)
    assert torch.equal(expand.bias, conv.bias)


def test_energy_picks_the_smallest_rank_reaching_the_share():
    # s² = 16, 9, 4, 1 of 30: cumulative shares .533, .833, .967, 1.
    s = torch.tensor([4.0, 3.0, 2.0, 1.0])
    picks = {0.5: 1, 0.8: 2, 0.9: 3, 0.97: 4, 1.0: 4, 25 / 30: 2}
    assert {e: rank_for_energy(s, e) for e in picks} == picks
    # On a weight built with those singular values the same ranks come out.
    u, _ = torch.linalg.qr(torch.randn(6, 4, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(12, 4, dtype=torch.float64))
    w = (u * s.double()) @ v.T
    from rsdistill.losses import singular_values
    assert rank_for_energy(singular_values(w), 0.9) == 3
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ConfigError):
            rank_for_energy(s, bad)


def test_low_rank_cuts_first_layer_params_and_model_flops(resnet):
    name, layer = first_weight_layer(resnet)
    before_params, before_flops = _params(layer), count_flops(resnet, 16)
    _compressed(resnet, 2)
    after = resnet.get_submodule(name)
    assert _params(after) < before_params
    assert count_flops(resnet, 16) < before_flops


def test_linear_first_layer_becomes_two_linear_layers():
    torch.manual_seed(0)
    lin = nn.Linear(10, 7)
    pair = factorise(lin, 3)
    assert [type(m) for m in pair] == [nn.Linear, nn.Linear]
    assert pair[0].bias is None and torch.equal(pair[1].bias, lin.bias)
    x = torch.randn(4, 10)
    torch.testing.assert_close(factorise(lin, 7)(x), lin(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rank", [0, 17])
def test_rank_out_of_range_is_refused(resnet, rank):
    with pytest.raises(ConfigError, match=r"\[1, 16\]"):
        factorise(first_weight_layer(resnet)[1], rank)


def test_saved_checkpoint_rebuilds_the_structure(resnet, tmp_path):
    name, _ = first_weight_layer(resnet)
    model = _compressed(resnet, 3)
    meta = {"model": "resnet8", "num_classes": 3, "classes": ["a", "b", "c"], "image_size": 16,
            "low_rank": {"layer": name, "rank": 3}}
    save_model(tmp_path / "model.pt", model, meta)
    loaded, loaded_meta = load_model(tmp_path / "model.pt")
    assert loaded_meta["low_rank"] == {"layer": name, "rank": 3}
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model(x))


def _correlated_patches_input(n: int = 64, size: int = 16) -> torch.Tensor:
    # Smooth images with a strong shared brightness: neighbouring pixels move together,
    # as in real imagery, so the patch covariance is far from isotropic.
    g = torch.Generator().manual_seed(1)
    coarse = torch.rand(n, 3, size // 4, size // 4, generator=g)
    return 0.5 + 0.4 * nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def _output_error(conv: nn.Module, approx: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> float:
    with torch.no_grad():
        diff = (conv(x) - approx(x)) * scale[None, :, None, None]
    return float(diff.square().mean())


def test_following_batchnorm_is_found_by_execution_order(resnet):
    name, _ = first_weight_layer(resnet)
    found = following_batchnorm(resnet, name, 16)
    assert found is not None and found[0] == "bn1" and found[1] is resnet.bn1
    # A layer fed straight into another conv has no BatchNorm of its own.
    assert following_batchnorm(resnet, "fc", 16) is None


def test_data_weighted_factors_beat_plain_svd_on_the_data_they_were_fitted_to():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
    x = _correlated_patches_input()
    scale = torch.rand(16) * 5 + 0.1
    stats = input_statistics(conv, x)
    for rank in (2, 4, 8):
        plain = factorise(conv, rank)
        weighted = factorise(conv, rank, row_scale=scale, input_stats=stats)
        assert _output_error(conv, weighted, x, scale) < _output_error(conv, plain, x, scale)
    # At full rank the weighted factors are exact as well.
    full = factorise(conv, 16, row_scale=scale, input_stats=stats)
    with torch.no_grad():
        torch.testing.assert_close(full(x), conv(x), atol=1e-4, rtol=1e-4)


def test_mean_correction_bias_keeps_the_mean_output_away_from_borders():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=0, bias=True)
    x = _correlated_patches_input()
    pair = factorise(conv, 1, input_stats=input_statistics(conv, x))
    assert pair[1].bias is not None
    with torch.no_grad():
        torch.testing.assert_close(pair(x).mean((0, 2, 3)), conv(x).mean((0, 2, 3)), atol=1e-4, rtol=1e-4)


def test_input_statistics_are_those_of_the_unfolded_patches():
    conv = nn.Conv2d(2, 4, 2, stride=2, bias=False)
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 2, 4, 4)
    mean, cov = input_statistics(conv, x)
    patches = nn.functional.unfold(x.double(), 2, stride=2).transpose(1, 2).reshape(-1, 8)
    torch.testing.assert_close(mean, patches.mean(0))
    torch.testing.assert_close(cov, torch.cov(patches.T, correction=0))


def test_weighted_spectrum_is_the_plain_one_without_weights():
    conv = nn.Conv2d(3, 16, 3, bias=False)
    torch.testing.assert_close(weighted_singular_values(conv.weight),
                               torch.linalg.svdvals(conv.weight.detach().reshape(16, -1).double()))


def test_checkpoint_with_a_bias_correction_rebuilds_it(resnet, tmp_path):
    name, layer = first_weight_layer(resnet)
    x = _correlated_patches_input()
    resnet.set_submodule(name, factorise(layer, 3, input_stats=input_statistics(layer, x)))
    meta = {"model": "resnet8", "num_classes": 3, "classes": ["a", "b", "c"], "image_size": 16,
            "low_rank": {"layer": name, "rank": 3, "bias": True}}
    save_model(tmp_path / "model.pt", resnet, meta)
    loaded, _ = load_model(tmp_path / "model.pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), resnet(x))
