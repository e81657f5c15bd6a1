import pytest
import torch
import torch.nn as nn

from rsdistill.errors import ConfigError
from rsdistill.models import build_model, count_flops, count_parameters, describe_models, first_weight_layer


def test_flops_of_hand_built_net_are_twice_the_macs():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    conv_macs = 8 * 8 * 4 * 3 * 3 * 3
    linear_macs = 4 * 8 * 8 * 5
    assert count_flops(net, image_size=8) == 2 * (conv_macs + linear_macs)


def test_flops_with_adapted_stem_stay_close_to_32px():
    flops32 = count_flops(build_model("resnet8", 21, image_size=32), 32)
    flops64 = count_flops(build_model("resnet8", 21, image_size=64), 64)
    flops128 = count_flops(build_model("resnet8", 21, image_size=128), 128)
    assert flops32 > 0
    assert flops32 / 2 <= flops64 <= flops32 * 2
    assert flops32 / 2 <= flops128 <= flops32 * 2


def test_count_flops_restores_modes_and_batchnorm_stats():
    model = build_model("resnet8", 21)
    model.train()
    model.layer1.eval()
    stats = model.bn1.running_mean.clone()
    count_flops(model, 32)
    assert model.training and model.layer2.training
    assert not model.layer1.training
    assert torch.equal(model.bn1.running_mean, stats)


def test_count_parameters_includes_frozen():
    model = build_model("resnet8", 21)
    total = sum(p.numel() for p in model.parameters())
    model.conv1.weight.requires_grad_(False)
    assert count_parameters(model) == total


def test_first_weight_layer_of_resnet8_is_conv1():
    model = build_model("resnet8", 21)
    name, layer = first_weight_layer(model)
    assert name == "conv1" and layer is model.conv1


@pytest.mark.parametrize(
    ("name", "expected"), [("timm:resnet18", "conv1"), ("timm:mobilenetv3_small_100", "conv_stem")]
)
def test_first_weight_layer_of_timm_model(name, expected):
    model = build_model(name, num_classes=10, image_size=64)
    found, layer = first_weight_layer(model)
    assert found == expected and isinstance(layer, nn.Conv2d)


def test_first_weight_layer_linear_only():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.Linear(3, 2))
    name, layer = first_weight_layer(model)
    assert name == "1" and layer is model[1]


def test_first_weight_layer_without_weights():
    with pytest.raises(ConfigError):
        first_weight_layer(nn.Sequential(nn.ReLU()))


def test_describe_models():
    rows = describe_models(["resnet8", "wrn_16_1"], image_size=32, num_classes=21)
    assert [row["name"] for row in rows] == ["resnet8", "wrn_16_1"]
    reference = build_model("resnet8", 21)
    assert rows[0]["params"] == count_parameters(reference)
    assert rows[0]["flops"] == count_flops(reference, 32)
    assert rows[1]["params"] > 0 and rows[1]["flops"] > 0
