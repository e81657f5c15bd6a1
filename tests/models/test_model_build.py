import pytest
import torch

from rsdistill.runtime.precision import resolve_precision
from rsdistill.errors import ConfigError
from rsdistill.models import MODELS, build_model, first_weight_layer, list_model_names
from rsdistill.models.resnet_small import ResNetSmall

EXPECTED_FAMILIES = {
    "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2",
    "mobilenetv2", "mobilenetv2_x0_5",
}


def test_every_family_is_registered():
    assert set(list_model_names()) == EXPECTED_FAMILIES
    assert list_model_names() == MODELS.names()


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("name", sorted(EXPECTED_FAMILIES))
def test_forward_and_backward(name, image_size):
    torch.manual_seed(0)
    model = build_model(name, num_classes=21, image_size=image_size)
    x = torch.randn(2, 3, image_size, image_size)
    logits = model(x)
    assert logits.shape == (2, 21)
    logits.logsumexp(dim=1).mean().backward()
    _, first = first_weight_layer(model)
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_extra_input_channels():
    model = build_model("resnet8", num_classes=5, image_size=32, in_chans=4)
    assert model.conv1.in_channels == 4
    assert model(torch.randn(1, 4, 32, 32)).shape == (1, 5)


def test_channels_last_bf16_autocast_on_cpu():
    precision = resolve_precision("bf16", "cpu")
    model = precision.prepare_model(build_model("resnet8", num_classes=21)).eval()
    x = precision.prepare_input(torch.randn(2, 3, 32, 32))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), precision.autocast():
        logits = model(x)
    assert logits.shape == (2, 21)
    assert logits.dtype == torch.bfloat16
    assert torch.isfinite(logits.float()).all()


def test_unknown_name_lists_choices():
    with pytest.raises(ConfigError, match="choose one of") as info:
        build_model("resnet9000", num_classes=10)
    assert "resnet8x4" in str(info.value)


def test_timm_model_builds_offline():
    model = build_model("timm:resnet18", num_classes=10, image_size=64)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_unknown_timm_name_is_one_line_config_error():
    with pytest.raises(ConfigError, match="not_a_model") as info:
        build_model("timm:not_a_model", num_classes=10)
    assert "\n" not in str(info.value)


def test_an_unknown_timm_name_gets_one_message_wherever_it_is_checked():
    from rsdistill.models.registry import check_model_name

    said = "unknown timm model timm:not_a_model; timm.list_models() lists the valid names"
    messages = []
    for attempt in (lambda: check_model_name("timm:not_a_model", "--students"),
                    lambda: build_model("timm:not_a_model", num_classes=10),
                    lambda: build_model("timm:not_a_model", num_classes=10, pretrained="imagenet")):
        with pytest.raises(ConfigError) as info:
            attempt()
        messages.append(str(info.value))
    assert messages[0] == f"--students: {messages[1]}" and messages[1] == messages[2]
    assert messages[1].startswith(said) and "\n" not in messages[1]
    check_model_name("timm:resnet18")  # a timm model it has passes


@pytest.mark.parametrize(
    "kwargs", [{"num_classes": 0}, {"num_classes": 10, "image_size": -1}, {"num_classes": 10, "in_chans": 0}]
)
def test_non_positive_sizes_rejected(kwargs):
    with pytest.raises(ConfigError, match="positive integer"):
        build_model("resnet8", **kwargs)


def test_invalid_depth_rejected():
    with pytest.raises(ConfigError, match="6n\\+2"):
        ResNetSmall(10, 32, depth=9, widths=(16, 16, 32, 64))
