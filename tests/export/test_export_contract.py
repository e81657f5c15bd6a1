"""The preprocessing contract in an exported file is complete: a deployer's function
written from the metadata alone reproduces training's cached tensors bit for bit.

``from_metadata`` below is deliberately independent of rsdistill: it reads only the
file's ``metadata_props`` and maps each key to a Pillow / numpy call. It runs on real
UC Merced JPEGs read straight from the zip, and must give exactly the uint8 tensors the
data layer cached (and, after scaling, the model input training fed).
"""

from __future__ import annotations

import io
import json
import zipfile
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from rsdistill.data.module import DataConfig, prepare_data
from rsdistill.runtime.checkpoint import save_model
from rsdistill.training.members import model_meta
from rsdistill.export import export_checkpoint
from rsdistill.export.contract import PREPROCESSING, read_contract
from rsdistill.export.ort_backend import OnnxRuntimeBackend
from rsdistill.models import build_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.realdata

UCM_ROOT = "UCMerced_LandUse/Images/"
LAYOUTS = {"NCHW": (2, 0, 1), "NHWC": (0, 1, 2)}


def from_metadata(props: dict[str, str], data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 tensor after resize, float model input) of one encoded image, from the keys only."""
    assert props["decoder"] == props["resize_library"] == "Pillow"
    size = int(props["input_size"])
    img = Image.open(io.BytesIO(data)).convert(props["color_mode"])
    assert props["resize_aspect"] == "stretch"  # whole image to size×size, no crop or pad
    # Pillow's resize antialiases by itself; a library that does not would need it asked for.
    assert props["resize_antialias"] == "true"
    img = img.resize((size, size), Image.Resampling[props["resize_filter"].upper()])
    pixels = np.asarray(img, dtype=props["resize_dtype"])  # H, W, channels in channel_order
    assert props["channel_order"] == "RGB"
    pixels = pixels.transpose(LAYOUTS[props["layout"]])
    x = pixels.astype(props["input_dtype"]) * np.float32(Fraction(props["scale"]))
    low, high = json.loads(props["value_range"])
    assert low <= x.min() and x.max() <= high
    mean, std = json.loads(props["mean"]), json.loads(props["std"])
    if mean is not None:
        x = (x - np.asarray(mean, dtype=np.float32)[:, None, None]) / np.asarray(std, dtype=np.float32)[:, None, None]
    return pixels, x


@pytest.fixture(scope="module")
def ucm(shared_datasets):
    if not (shared_datasets / "ucmerced.zip").is_file():
        pytest.skip(f"ucmerced.zip not in {shared_datasets}")
    # The session cache (conftest), shared with the other real-data tests at 32 px.
    return prepare_data(DataConfig(dataset="ucmerced", data_root=str(shared_datasets), image_size=32,
                                   standardize=True, workers=1), progress=False)


@pytest.fixture(scope="module")
def exported(ucm, tmp_path_factory):
    # Untrained weights: the contract depends on the data, not on what the model learnt.
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("contract")
    save_model(folder / "model.pt", build_model("resnet8", ucm.num_classes, 32), model_meta("resnet8", ucm))
    result = export_checkpoint(folder / "model.pt", "onnx")
    return {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}, result.path


def sample(ucm, every: int = 35) -> list[int]:
    return list(range(0, len(ucm.dataset), every))  # 60 images over all 21 classes


def test_the_metadata_alone_reproduces_the_cached_tensors(ucm, exported, shared_datasets):
    props, _ = exported
    assert props["rsdistill_contract"] == "3"
    with zipfile.ZipFile(shared_datasets / "ucmerced.zip") as zf:
        for i in sample(ucm):
            pixels, x = from_metadata(props, zf.read(UCM_ROOT + ucm.dataset.files[i]))
            cached = ucm.dataset.images[i]
            assert np.array_equal(pixels, cached.numpy()), ucm.dataset.files[i]
            fed = ucm.normalizer(cached[None])[0].numpy()
            np.testing.assert_allclose(x, fed, rtol=0, atol=2e-6)


def test_the_check_would_catch_another_resize(ucm, exported, shared_datasets):
    """A bilinear resize without antialiasing (torchvision's tensor default) is caught."""
    props, _ = exported
    with zipfile.ZipFile(shared_datasets / "ucmerced.zip") as zf:
        differ = 0
        for i in sample(ucm):
            rgb = Image.open(io.BytesIO(zf.read(UCM_ROOT + ucm.dataset.files[i]))).convert("RGB")
            tensor = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float()
            other = torch.nn.functional.interpolate(tensor, size=(32, 32), mode="bilinear",
                                                    antialias=False).round().clamp(0, 255).byte()[0]
            differ += not torch.equal(other, ucm.dataset.images[i])
    assert differ == len(sample(ucm))


def test_contract_names_the_training_resize(exported):
    props, _ = exported
    assert {k: props[k] for k in ("resize_filter", "resize_antialias", "resize_aspect", "channel_order",
                                  "layout", "input_dtype", "color_mode")} == {
        "resize_filter": "bicubic", "resize_antialias": "true", "resize_aspect": "stretch",
        "channel_order": "RGB", "layout": "NCHW", "input_dtype": "float32", "color_mode": "RGB"}
    assert "BICUBIC" in props["preprocessing"] and props["input_layout"] == "NCHW float32 RGB"


def test_a_version_1_file_still_loads_and_predicts(exported, tmp_path):
    props, path = exported
    proto = onnx.load(str(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in PREPROCESSING
            and p.key != "preprocessing"]
    del proto.metadata_props[:]
    for key, value in kept:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, "1" if key == "rsdistill_contract" else value
    old = tmp_path / "v1.onnx"
    onnx.save(proto, str(old))
    backend = OnnxRuntimeBackend(old, threads=1)
    assert backend.meta["contract_version"] == "1" and backend.meta["preprocessing"] == {}
    assert backend.meta["classes"] == json.loads(props["classes"])
    new = OnnxRuntimeBackend(path, threads=1)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(backend(x), new(x))
    assert read_contract(dict(kept), "v1.onnx")["image_size"] == 32
