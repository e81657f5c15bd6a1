import pytest
import torch

from rsdistill.models import build_model, count_parameters
from rsdistill.models.stem import stem_strides


@pytest.mark.parametrize(
    ("name", "num_classes", "published"),
    [
        # He et al. (CIFAR-10) count the small nets with 10 classes ...
        ("resnet8", 10, 78_000),
        ("resnet20", 10, 0.27e6),
        # ... the distillation papers (CRD, DKD) report CIFAR-100 counts.
        ("resnet20", 100, 0.28e6),
        ("resnet56", 100, 0.86e6),
        ("resnet110", 100, 1.74e6),
        ("resnet8x4", 100, 1.23e6),
        ("resnet32x4", 100, 7.43e6),
        ("wrn_16_2", 100, 0.70e6),
        ("wrn_40_1", 100, 0.57e6),
        ("wrn_40_2", 100, 2.25e6),
    ],
)
def test_parameter_counts_match_published(name, num_classes, published):
    params = count_parameters(build_model(name, num_classes=num_classes))
    assert params == pytest.approx(published, rel=0.02)


@pytest.mark.parametrize(
    ("image_size", "strides"),
    [(32, [1]), (47, [1]), (48, [2]), (64, [2]), (96, [2, 2]), (128, [2, 2]), (256, [2, 2, 2])],
)
def test_stem_strides(image_size, strides):
    assert stem_strides(image_size) == strides


def _first_stage_input_size(model, image_size):
    seen = []
    stage = getattr(model, model.stage_names[0])
    handle = stage.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, image_size, image_size))
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_1", "mobilenetv2_x0_5"])
@pytest.mark.parametrize("image_size", [32, 64, 128])
def test_first_stage_sees_32px(name, image_size):
    model = build_model(name, num_classes=3, image_size=image_size)
    assert _first_stage_input_size(model, image_size) == (32, 32)


def test_stem_at_256px():
    model = build_model("resnet8", num_classes=3, image_size=256)
    assert _first_stage_input_size(model, 256) == (32, 32)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet8", ["conv1", "bn1", "layer1", "layer2", "layer3", "fc"]),
        ("resnet8x4", ["conv1", "bn1", "layer1", "layer2", "layer3", "fc"]),
        ("wrn_16_1", ["conv1", "block1", "block2", "block3", "fc"]),
        ("mobilenetv2", ["conv1", "bn1", "layer1", "layer7", "fc"]),
    ],
)
def test_module_names_for_feature_hooks(name, expected):
    model = build_model(name, num_classes=7)
    children = dict(model.named_children())
    assert all(key in children for key in expected)
    assert all(stage in children for stage in model.stage_names)
    assert model.fc.out_features == 7


def test_wide_variant_stage_widths():
    model = build_model("resnet8x4", num_classes=7)
    assert model.conv1.out_channels == 32
    assert [getattr(model, f"layer{i}")[-1].conv2.out_channels for i in (1, 2, 3)] == [64, 128, 256]
