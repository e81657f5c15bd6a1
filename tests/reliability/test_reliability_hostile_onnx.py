"""Exported files with hostile or damaged metadata, and images of other bit depths fed
from the metadata alone (issue 25, items 2 and 6).

The contract is text anyone can edit: every inconsistent value is one error line when
the file is loaded (predict and evaluate alike), before an image is decoded. And the
contract is complete for 16-bit and float files: a deployer's preprocessing written
from the metadata's words gives exactly ``rsdistill predict``'s probabilities.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rsdistill.cli.main import main

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
tifffile = pytest.importorskip("tifffile")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_tree3, tiny_cache) -> Path:
    """model.onnx of a standardised resnet8 (so mean and std are lists), 16 px."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("hostile-onnx") / "run"
    assert main(["train", "--dataset", "folder", "--data-root", str(tiny_tree3), "--cache-dir",
                 str(tiny_cache), "--image-size", "16", "--workers", "1", "--model", "resnet8",
                 "--standardize", "--epochs", "1", "--batch-size", "8", "--latency-runs", "1",
                 "--no-progress", "--out", str(run)]) == 0
    assert main(["export", str(run), "--format", "onnx"]) == 0
    return run / "model.onnx"


def props_of(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def tampered(source: Path, dest: Path, **changes: str) -> Path:
    proto = onnx.load(str(source))
    for entry in proto.metadata_props:
        if entry.key in changes:
            entry.value = changes[entry.key]
    onnx.save(proto, str(dest))
    return dest


# case -> (metadata changes, words the one error line must hold)
TAMPERED = {
    "huge_input_size": ({"input_size": "999999"}, "input_size 999999 is outside 1..8192"),
    "input_size_not_the_graphs": ({"input_size": "24"},
                                  "input_size 24 disagrees with the graph, which takes 3×16×16"),
    "mean_of_two_values": ({"mean": "[0.5, 0.5]"}, "mean is not a list of 3 finite numbers"),
    "nan_mean": ({"mean": "[NaN, 0.5, 0.5]"}, "mean is not a list of 3 finite numbers"),
    "zero_std": ({"std": "[0, 1, 1]"}, "std has a value that is not above 0"),
    "mean_without_std": ({"std": "null"}, "mean and std are not both lists or both null"),
    "fewer_classes": ({"classes": '["field", "forest"]'},
                      "classes names 2 classes but the graph outputs 3 logits"),
    "more_classes": ({"classes": '["a", "b", "c", "d"]'},
                     "classes names 4 classes but the graph outputs 3 logits"),
    "class_twice": ({"classes": '["field", "field", "river"]'}, "classes names a class twice"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_metadata_is_one_line_in_predict(case, exported, tiny_tree3, tmp_path, cli):
    changes, words = TAMPERED[case]
    model = tampered(exported, tmp_path / "model.onnx", **changes)
    out = tmp_path / "preds.csv"
    result = cli("predict", model, tiny_tree3 / "field", "--out", out, "--workers", "1",
                 "--no-progress")
    assert result.rc == 2
    result.error_line(str(model), words, "rsdistill export")
    assert not out.exists()


@pytest.mark.parametrize("case", ["input_size_not_the_graphs", "zero_std", "fewer_classes"])
def test_tampered_metadata_is_one_line_in_evaluate(case, exported, cli):
    changes, words = TAMPERED[case]
    # Beside the run's config.yaml, which tells evaluate the data.
    model = tampered(exported, exported.parent / f"{case}.onnx", **changes)
    result = cli("evaluate", model, "--split", "test", "--latency-runs", "1")
    assert result.rc == 2
    result.error_line(str(model), words)


def test_the_untampered_file_still_predicts(exported, tiny_tree3, cli):
    result = cli("predict", exported, tiny_tree3 / "field", "--workers", "1", "--no-progress")
    assert result.rc == 0, result.err


# ------------------------------------------------------------------ bit depths (item 6)
def read_samples(path: Path) -> np.ndarray:
    """The file's samples in their own type, H×W or H×W×bands (no scaling)."""
    if path.suffix == ".tif":
        return tifffile.imread(path)
    img = Image.open(path)
    assert img.mode.startswith("I;16"), img.mode  # a 16-bit grey PNG
    return np.asarray(img).astype(np.uint16)


def to_8bit(props: dict[str, str], samples: np.ndarray) -> np.ndarray:
    """The metadata's sample rules, as worded there, then its band rule: H×W×3 uint8."""
    if samples.dtype.kind == "u" and samples.dtype.itemsize > 1:
        assert "v >> (bits - 8)" in props["samples_integer"]
        bits = samples.dtype.itemsize * 8
        samples = (samples >> (bits - 8)).astype(np.uint8)
    elif samples.dtype.kind == "f":
        assert "round(clip(v, 0, 1) * 255)" in props["samples_float"]
        assert "NaN -> 0" in props["samples_float"]
        values = np.where(np.isnan(samples), 0.0, samples.astype(np.float64))
        samples = np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    if samples.ndim == 2:
        assert props["bands"].startswith("1 band (grey): repeated as R, G, B")
        samples = np.repeat(samples[..., None], 3, axis=2)
    elif samples.shape[2] > 3:
        assert "more than 3 bands: bands 1-3 as R, G, B" in props["bands"]
        samples = samples[..., :3]
    return samples


def model_input(props: dict[str, str], rgb: np.ndarray) -> np.ndarray:
    """The rest of the contract, key by key: resize, scale, mean/std, layout."""
    size = int(props["input_size"])
    assert props["resize_aspect"] == "stretch" and props["layout"] == "NCHW"
    img = Image.fromarray(rgb, props["color_mode"]).resize(
        (size, size), Image.Resampling[props["resize_filter"].upper()])
    x = np.asarray(img, dtype=props["resize_dtype"]).astype(props["input_dtype"])
    x = x * np.float32(Fraction(props["scale"]))
    mean, std = json.loads(props["mean"]), json.loads(props["std"])
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x.transpose(2, 0, 1).astype(np.float32)


def deployer_probabilities(model: Path, files: list[Path]) -> dict[str, list[float]]:
    props = props_of(model)
    assert props["rsdistill_contract"] == "3"
    batch = np.stack([model_input(props, to_8bit(props, read_samples(f))) for f in files])
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {props["input_name"]: batch})
    probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    classes = json.loads(props["classes"])
    return {f.name: dict(zip(classes, p.tolist())) for f, p in zip(files, probs)}


@pytest.fixture
def deep_files(tmp_path) -> list[Path]:
    """A 16-bit grey PNG and TIFF, a float32 TIFF (with a NaN), a 4-band 16-bit TIFF."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "deep"
    folder.mkdir()
    grey16 = rng.integers(0, 65536, (37, 40), dtype=np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    tifffile.imwrite(folder / "grey16.tif", grey16)
    floats = rng.random((37, 40), dtype=np.float32)
    floats[0, 0] = np.nan
    tifffile.imwrite(folder / "float32.tif", floats)
    tifffile.imwrite(folder / "rgbn16.tif", rng.integers(0, 65536, (37, 40, 4), dtype=np.uint16),
                     photometric="rgb", extrasamples=[0])
    return sorted(folder.iterdir())


def test_contract_says_how_other_bit_depths_become_8_bit(exported):
    props = props_of(exported)
    assert "top 8 bits of their type's full range" in props["samples_integer"]
    assert "16-bit: v >> 8" in props["samples_integer"]
    assert "NaN -> 0" in props["samples_float"] and "16-bit: v >> 8" in props["preprocessing"]


def test_predict_is_reproduced_from_the_metadata_alone(exported, deep_files, tmp_path, cli):
    out = tmp_path / "preds.json"
    result = cli("predict", exported, *deep_files, "--top-k", "3", "--out", out, "--workers",
                 "1", "--no-progress")
    assert result.rc == 0, result.err
    rows = json.loads(out.read_text())
    rows = rows["predictions"] if isinstance(rows, dict) else rows
    theirs = deployer_probabilities(exported, deep_files)
    assert len(rows) == len(deep_files) == 4
    for row in rows:
        name = Path(row["file"]).name
        ours = {t["class"]: t["probability"] for t in row["top_k"]}
        assert ours.keys() == theirs[name].keys()
        for cls, p in ours.items():
            assert p == pytest.approx(theirs[name][cls], abs=1e-5), (name, cls)


def test_convert_rgb_alone_gives_other_pixels(exported, deep_files):
    """Why the rules are in the contract: Pillow's convert('RGB') clips 16-bit grey to
    white and turns floats in 0..1 black."""
    props = props_of(exported)
    for path in deep_files:
        if path.name.startswith(("grey16", "float32")):
            naive = np.asarray(Image.open(path).convert("RGB"))
            ruled = to_8bit(props, read_samples(path))
            assert np.abs(naive.astype(int) - ruled).mean() > 50, path.name
    assert re.search(r"samples to 8 bits .* then Image\.open", props["preprocessing"])
