"""``rsdistill predict`` on files, folders, zips, odd sizes and broken files, and
``rsdistill evaluate --predictions``, end to end on a tiny run (in process)."""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from rsdistill.cli.main import main
from rsdistill.data.module import prepare_data
from rsdistill.models import load_model
from rsdistill.experiments.records import load_run_config

pytest.importorskip("onnxruntime")

FAST = ["--workers", "1", "--no-progress"]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsdistill: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli-predict") / "run"
    assert main(["train", "--dataset", "folder", "--data-root", str(tiny_tree3), "--image-size", "16",
                 "--cache-dir", str(tiny_cache), "--workers", "1", "--model", "resnet8", "--standardize",
                 "--epochs", "2", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
                 "--no-progress", "--out", str(out)]) == 0
    assert main(["export", str(out)]) == 0
    assert main(["quantize", str(out), "--allow-drop", "--calibration-images", "16",
                 "--latency-runs", "2", "--inference-threads", "1"]) == 0
    return out


def rgb(seed: int, size: tuple[int, int]) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr)


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder tree of odd images (sizes, modes, formats), a corrupt file, junk, and a zip."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "a" / "deep").mkdir(parents=True)
    rgb(0, (300, 7)).save(root / "wide.png")
    rgb(1, (16, 16)).save(root / "a" / "exact.jpg")
    rgb(2, (1, 1)).convert("L").save(root / "a" / "grey.tif")
    rgb(3, (33, 65)).convert("RGBA").save(root / "a" / "deep" / "alpha.webp")
    rgb(4, (40, 30)).convert("P").save(root / "a" / "deep" / "palette.gif")
    rgb(5, (20, 21)).save(root / "a" / "deep" / "img10.bmp")
    rgb(6, (20, 21)).save(root / "a" / "deep" / "img9.bmp")
    (root / "a" / "broken.jpg").write_bytes(encoded(rgb(7, (30, 30)), "JPEG")[:60])
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(encoded(rgb(8, (5, 5)), "PNG"))
    zipped = root.parent / f"{root.name}-more.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("x/y/one.png", encoded(rgb(9, (50, 20)), "PNG"))
        zf.writestr("two.jpg", encoded(rgb(10, (64, 64)), "JPEG"))
        zf.writestr("__MACOSX/x/._one.png", b"resource fork")
        zf.writestr("readme.md", b"text")
    return {"folder": root, "zip": zipped, "readable": 7 + 2, "broken": root / "a" / "broken.jpg"}


def test_predict_prints_a_table_and_names_what_it_skipped(run_dir, inputs, capsys, caplog):
    capsys.readouterr()
    caplog.set_level(logging.INFO, logger="rsdistill")
    assert main(["predict", str(run_dir), str(inputs["folder"]), str(inputs["zip"]), *FAST]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].split() == ["file", "class", "prob"] and len(lines) == 1 + inputs["readable"]
    names = [line.split()[0] for line in lines[1:]]
    folder = str(inputs["folder"])
    # Natural order inside each input, inputs in the order given.
    assert names[:7] == [f"{folder}/a/deep/alpha.webp", f"{folder}/a/deep/img9.bmp",
                         f"{folder}/a/deep/img10.bmp", f"{folder}/a/deep/palette.gif",
                         f"{folder}/a/exact.jpg", f"{folder}/a/grey.tif", f"{folder}/wide.png"]
    assert names[7:] == [f"{inputs['zip']}:two.jpg", f"{inputs['zip']}:x/y/one.png"]
    classes = load_model(run_dir)[1]["classes"]
    assert all(line.split()[1] in classes and 0 < float(line.split()[2]) <= 1 for line in lines[1:])
    # Logged (the CLI's handler prints "rsdistill: ..." on stderr).
    assert f"skipped unreadable image {inputs['broken']}" in caplog.text
    assert "9 image(s) predicted, 1 unreadable skipped" in caplog.text


@pytest.mark.parametrize("model_name", ["model.pt", "model.onnx", "model.int8.onnx"])
def test_predictions_equal_the_model_on_the_training_tensors(run_dir, tiny_tree3, tmp_path, model_name):
    """The training images themselves, predicted from their files, give what the model gives
    on the data layer's cached tensors: predict preprocesses exactly as training did."""
    out = tmp_path / "p.json"
    assert main(["predict", str(run_dir / model_name), str(tiny_tree3), "--top-k", "3",
                 "--out", str(out), *FAST]) == 0
    got = {r["file"]: r for r in json.loads(out.read_text())["predictions"]}
    data = prepare_data(load_run_config(run_dir)[0], progress=False)
    model, meta = load_model(run_dir)
    with torch.no_grad():
        probs = torch.softmax(model.eval()(data.normalizer(data.dataset.images)), 1)
    assert len(got) == len(data.dataset) == 36
    tolerance = 0.05 if "int8" in model_name else 1e-5
    agree = 0
    for i, rel in enumerate(data.dataset.files):
        row = got[str(tiny_tree3 / rel)]
        assert [t["class"] for t in row["top_k"]][0] == row["predicted_class"]
        p = probs[i, meta["classes"].index(row["predicted_class"])].item()
        assert abs(row["probability"] - p) <= tolerance
        agree += row["predicted_class"] == meta["classes"][int(probs[i].argmax())]
    assert agree == 36 if "int8" not in model_name else agree >= 30


def test_csv_and_json_schemas_with_top_k(run_dir, inputs, tmp_path, capsys):
    csv_file, json_file = tmp_path / "p.csv", tmp_path / "p.json"
    for out in (csv_file, json_file):
        assert main(["predict", str(run_dir / "model.onnx"), str(inputs["folder"]), "--top-k", "2",
                     "--out", str(out), *FAST]) == 0
        assert f"wrote {out}: 7 image(s) predicted, 1 unreadable skipped" in capsys.readouterr().out
    rows = list(csv.DictReader(csv_file.open()))
    assert list(rows[0]) == ["file", "predicted_class", "probability", "top2_class", "top2_probability"]
    assert len(rows) == 7 and all(float(r["probability"]) >= float(r["top2_probability"]) for r in rows)
    doc = json.loads(json_file.read_text())
    assert {k: doc[k] for k in ("top_k", "images", "predicted")} == {"top_k": 2, "images": 8, "predicted": 7}
    assert doc["skipped"] == [{"file": str(inputs["broken"]), "reason": doc["skipped"][0]["reason"]}]
    assert doc["skipped"][0]["reason"] and "<" not in doc["skipped"][0]["reason"]
    assert doc["classes"] == load_model(run_dir)[1]["classes"]
    for r, c in zip(doc["predictions"], rows):
        assert r["file"] == c["file"] and r["predicted_class"] == c["predicted_class"]
        assert len(r["top_k"]) == 2 and r["top_k"][1]["class"] == c["top2_class"]
        assert r["top_k"][0]["probability"] == pytest.approx(float(c["probability"]))


@pytest.mark.parametrize("case", ["only_broken", "empty_folder", "missing", "bad_suffix", "top_k_0",
                                  "top_k_4", "not_a_zip"])
def test_bad_input_is_one_line_and_writes_nothing(run_dir, inputs, tmp_path, capsys, case):
    (tmp_path / "empty").mkdir()
    (tmp_path / "fake.zip").write_bytes(b"no zip")
    out = tmp_path / "p.csv"
    args, needle = {
        "only_broken": ([str(inputs["broken"])], "none of the 1 input image(s) could be read"),
        "empty_folder": ([str(tmp_path / "empty")], "no image files found"),
        "missing": ([str(tmp_path / "nope.jpg")], "does not exist"),
        "bad_suffix": ([str(inputs["folder"]), "--out", str(tmp_path / "p.txt")], ".csv or .json"),
        "top_k_0": ([str(inputs["folder"]), "--top-k", "0"], "--top-k must be in [1, 3]"),
        "top_k_4": ([str(inputs["folder"]), "--top-k", "4"], "--top-k must be in [1, 3]"),
        "not_a_zip": ([str(tmp_path / "fake.zip")], "is not a zip archive"),
    }[case]
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    capsys.readouterr()
    assert main(["predict", str(run_dir), *args, *FAST]) == 2
    assert needle in one_error_line(capsys.readouterr().err)
    assert not out.exists() and not (tmp_path / "p.txt").exists()


def test_evaluate_writes_one_row_per_test_image(run_dir, tmp_path, capsys):
    out = tmp_path / "test.csv"
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--predictions", str(out), "--json", "--precision", "fp32",
                 "--latency-runs", "2", "--inference-threads", "1"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["file", "true_class", "predicted_class", "probability", "correct"]
    assert len(rows) == metrics["num_samples"] == 9
    assert sum(r["correct"] == "True" for r in rows) / len(rows) == metrics["accuracy"]
    assert all(r["correct"] == str(r["true_class"] == r["predicted_class"]) for r in rows)
    data = prepare_data(load_run_config(run_dir)[0], progress=False)
    assert [r["file"] for r in rows] == [data.dataset.location(i) for i in data.split["test"].tolist()]


def test_evaluate_and_predict_name_an_image_alike(run_dir, tiny_tree3, tmp_path, capsys, monkeypatch):
    # The data root given relatively to one command and absolutely to the other: the
    # rows still join on "file", and agree on the predicted class.
    evaluated, predicted = tmp_path / "test.csv", tmp_path / "new.csv"
    assert main(["evaluate", str(run_dir), "--predictions", str(evaluated), "--precision", "fp32",
                 "--latency-runs", "2", "--inference-threads", "1"]) == 0
    monkeypatch.chdir(tiny_tree3.parent)
    assert main(["predict", str(run_dir), tiny_tree3.name, "--out", str(predicted), *FAST]) == 0
    test_rows = list(csv.DictReader(evaluated.open()))
    new = {r["file"]: r for r in csv.DictReader(predicted.open())}
    assert test_rows and all(r["file"] in new for r in test_rows)
    assert all(new[r["file"]]["predicted_class"] == r["predicted_class"] for r in test_rows)


def test_evaluate_int8_predictions_as_json(run_dir, tmp_path, capsys):
    out = tmp_path / "test.json"
    assert main(["evaluate", str(run_dir / "model.int8.onnx"), "--predictions", str(out),
                 "--latency-runs", "2", "--inference-threads", "1"]) == 0
    assert f"wrote {out} (9 rows)" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["split"] == "test" and len(doc["predictions"]) == 9
    assert sum(r["correct"] for r in doc["predictions"]) / 9 == doc["accuracy"]


def test_evaluate_refuses_a_bad_predictions_suffix_first(run_dir, tmp_path, capsys):
    assert main(["evaluate", str(run_dir), "--predictions", str(tmp_path / "p.xlsx")]) == 2
    assert ".csv or .json" in one_error_line(capsys.readouterr().err)
