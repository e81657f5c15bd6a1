"""Cross-resolution distillation (a teacher trained at another size reads its own view)
and Mixup/CutMix batches (function matching)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import rsdistill.experiments.procedures as runs
from rsdistill.cli.main import main
from rsdistill.runtime.rundir import MODEL_FILE
from rsdistill.runtime.checkpoint import safe_load

TRAIN = ["--epochs", "2", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
         "--no-progress"]


def _data(tree, cache, size: int) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--image-size", str(size),
            "--cache-dir", str(cache), "--workers", "1"]


@pytest.fixture(scope="module")
def teacher32(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("xres") / "teacher32"
    assert main(["train", *_data(tiny_tree3, tiny_cache, 32), "--model", "resnet8", *TRAIN,
                 "--out", str(out)]) == 0
    return out


def _spy_teacher_inputs(monkeypatch) -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = []
    original = runs.load_teacher

    def spy(path, data=None):
        teacher, meta = original(path, data)
        teacher.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
        return teacher, meta

    monkeypatch.setattr(runs, "load_teacher", spy)
    return seen


@pytest.mark.parametrize("method", ["kd", "fitnet", "at"])
def test_student_at_16px_learns_from_a_32px_teacher_on_its_own_view(
        teacher32, tmp_path, monkeypatch, capsys, method):
    seen = _spy_teacher_inputs(monkeypatch)
    out = tmp_path / method
    assert main(["distill", "--teacher", str(teacher32), "--student", "resnet8",
                 "--student-image-size", "16", "--method", method, *TRAIN, "--out", str(out)]) == 0
    # Every teacher pass during training read 32 px; the student is a 16 px model.
    assert seen and set(seen) == {(32, 32)}
    meta = safe_load(out / MODEL_FILE)["meta"]
    assert meta["image_size"] == 16
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["data"]["image_size"] == 16
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_samples"] > 0
    # Evaluation reads only the student's own low-resolution input.
    capsys.readouterr()
    assert main(["evaluate", str(out), "--latency-runs", "2", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["accuracy"] == metrics["accuracy"]


def test_a_same_size_teacher_reads_the_student_batch(teacher32, tmp_path, monkeypatch):
    seen = _spy_teacher_inputs(monkeypatch)
    assert main(["distill", "--teacher", str(teacher32), "--student", "resnet8", *TRAIN,
                 "--out", str(tmp_path / "same")]) == 0
    assert set(seen) == {(32, 32)}
    assert safe_load(tmp_path / "same" / MODEL_FILE)["meta"]["image_size"] == 32


def test_fused_cross_resolution_sweep_equals_the_single_run(teacher32, tmp_path):
    common = ["--teacher", str(teacher32), "--student", "resnet8", "--student-image-size", "16",
              *TRAIN]
    assert main(["distill", *common, "--alpha", "0.5", "--out", str(tmp_path / "single")]) == 0
    assert main(["sweep", *common, "--alphas", "0.5", "--seeds", "1", "--jobs", "1",
                 "--out", str(tmp_path / "sweep")]) == 0
    a = safe_load(tmp_path / "single" / MODEL_FILE)["model"]
    b = safe_load(tmp_path / "sweep" / "seed0" / "alpha0.50_beta0" / MODEL_FILE)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("mix", ["mixup", "cutmix"])
def test_function_matching_trains_on_mixed_views_against_the_teacher_only(
        teacher32, tmp_path, mix):
    out = tmp_path / mix
    assert main(["distill", "--teacher", str(teacher32), "--student", "resnet8",
                 "--student-image-size", "16", "--alpha", "1", "--mix", mix, "--mix-alpha", "1",
                 *TRAIN, "--out", str(out)]) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["data"]["mix"] == mix and cfg["distill"]["alpha"] == 1.0
    rows = (out / "epochs.csv").read_text().splitlines()
    assert len(rows) == 3 and "loss_soft" in rows[0]


def test_mixup_with_hard_labels_trains_a_student_from_scratch(tmp_path, tiny_tree3, tiny_cache):
    out = tmp_path / "scratch"
    assert main(["train", *_data(tiny_tree3, tiny_cache, 16), "--model", "resnet8",
                 "--mix", "mixup", *TRAIN, "--out", str(out)]) == 0
    assert (out / "metrics.json").is_file()


def test_mixing_with_a_method_that_needs_one_true_class_is_refused(teacher32, tmp_path, capsys):
    out = tmp_path / "dkd"
    rc = main(["distill", "--teacher", str(teacher32), "--student", "resnet8", "--method", "dkd",
               "--mix", "mixup", *TRAIN, "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--mix mixup" in err[0] and "DKD" in err[0]
    assert not (out / "last.pt").exists()


def _spy_step_inputs(monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(teacher input, student input) of every training step."""
    from rsdistill.training.distiller import Distiller
    from rsdistill.training.trainer import Trainer

    steps: list[list[torch.Tensor]] = []
    teacher_outputs, forward_train = Trainer._teacher_outputs, Distiller.forward_train

    def spy_teacher(self, x, batch=None):
        steps.append([x.detach().float().clone()])
        return teacher_outputs(self, x, batch)

    def spy_student(self, step):
        steps[-1].append(step.images.detach().float().clone())
        return forward_train(self, step)

    monkeypatch.setattr(Trainer, "_teacher_outputs", spy_teacher)
    monkeypatch.setattr(Distiller, "forward_train", spy_student)
    return steps


@pytest.mark.parametrize("mode", ["same", "independent"])
def test_teacher_augment_decides_whether_teacher_and_student_see_one_picture(
        teacher32, tmp_path, monkeypatch, mode):
    steps = _spy_step_inputs(monkeypatch)
    out = tmp_path / mode
    assert main(["distill", "--teacher", str(teacher32), "--student", "resnet8", *TRAIN,
                 "--teacher-augment", mode, "--out", str(out)]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["teacher_augment"] == mode
    assert steps and all(len(s) == 2 for s in steps)
    identical = [torch.equal(t, s) for t, s in steps]
    if mode == "same":
        assert all(identical)
    else:
        # Scenes and order are shared, each view has its own flip, rotation and crop.
        assert not all(identical)
