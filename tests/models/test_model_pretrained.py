import pytest
import torch

from rsdistill.errors import CheckpointError
from rsdistill.models import build_model


@pytest.fixture
def source():
    torch.manual_seed(1)
    model = build_model("resnet8", num_classes=10)
    with torch.no_grad():
        model.bn1.running_mean.uniform_()
    return model


def test_pretrained_skips_mismatched_classifier(source, tmp_path):
    path = tmp_path / "resnet8.pt"
    torch.save(source.state_dict(), path)
    with pytest.warns(UserWarning, match="fc.weight"):
        model = build_model("resnet8", num_classes=21, pretrained=str(path))
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert torch.equal(model.layer3[0].conv2.weight, source.layer3[0].conv2.weight)
    assert torch.equal(model.bn1.running_mean, source.bn1.running_mean)
    assert model.fc.weight.shape == (21, 64)


@pytest.mark.parametrize("wrap", [lambda sd: {"model": sd, "epoch": 3}, lambda sd: {"state_dict": sd}])
def test_pretrained_wrapped_checkpoint(source, tmp_path, wrap):
    path = tmp_path / "ckpt.pt"
    torch.save(wrap(source.state_dict()), path)
    model = build_model("resnet8", num_classes=10, pretrained=path)
    assert torch.equal(model.fc.weight, source.fc.weight)


def test_pretrained_strips_data_parallel_prefix(source, tmp_path):
    path = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    model = build_model("resnet8", num_classes=10, pretrained=path)
    assert torch.equal(model.conv1.weight, source.conv1.weight)


def test_missing_pretrained_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        build_model("resnet8", num_classes=10, pretrained=tmp_path / "nope.pt")


def test_corrupt_pretrained_file(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read") as info:
        build_model("resnet8", num_classes=10, pretrained=path)
    assert "\n" not in str(info.value)


class _NotATensor:
    pass


def test_pickled_objects_rejected_with_short_message(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"model": _NotATensor()}, path)
    with pytest.raises(CheckpointError, match="state_dict") as info:
        build_model("resnet8", num_classes=10, pretrained=path)
    assert "\n" not in str(info.value)


def test_checkpoint_of_other_architecture(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(CheckpointError, match="does not hold weights of resnet8"):
        build_model("resnet8", num_classes=10, pretrained=path)
