"""The view bank: the teacher labels R rounds of augmented views once; a student
regenerates those very views from the recipes and trains without a teacher pass; a
killed build continues; a rerun reads the bank."""

from __future__ import annotations

import csv

import pytest
import torch

import rsdistill.training.teacher_pass as teacher_pass
from rsdistill.cli.main import main
from rsdistill.data.augment import BatchAugment
from rsdistill.data.loader import Normalizer
from rsdistill.data.mix import BatchMix
from rsdistill.data.module import DataConfig, prepare_data
from rsdistill.data.recipes import ViewRecipes, render
from rsdistill.models import load_model
from rsdistill.runtime.checkpoint import load_tensors_only
from rsdistill.training.distiller import Distiller
from rsdistill.training.view_bank import BANK_SUBDIR, build_bank, round_path

TRAIN = ["--epochs", "3", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
         "--precision", "fp32", "--no-progress"]
BANK = ["--method", "fm", "--mix", "mixup", "--mix-prob", "0.5", "--crop-pad", "0.0625",
        "--teacher-cache", "bank", "--bank-rounds", "2"]


@pytest.fixture(scope="module")
def teacher16(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("bank") / "teacher16"
    assert main(["train", "--dataset", "folder", "--data-root", str(tiny_tree3),
                 "--image-size", "16", "--cache-dir", str(tiny_cache), "--workers", "1",
                 "--model", "resnet8", *TRAIN, "--out", str(out)]) == 0
    return out


def _rounds(cache: object) -> list:
    return sorted((cache / BANK_SUBDIR).glob("*/round-*.pt"))


def test_the_student_trains_on_the_views_the_teacher_labelled_and_a_rerun_reads_them(
        teacher16, tmp_path, tiny_tree3, monkeypatch, caplog):
    cache = tmp_path / "cache"
    args = ["distill", "--teacher", str(teacher16), "--student", "resnet8", "--cache-dir",
            str(cache), *BANK, *TRAIN]
    with caplog.at_level("INFO", logger="rsdistill"):
        assert main([*args, "--out", str(tmp_path / "first")]) == 0
    assert any("2 labelled by the teacher" in r.getMessage() for r in caplog.records)
    files = _rounds(cache)
    assert len(files) == 2
    # The stored logits are the teacher's on the view a student regenerates from the recipe.
    teacher = load_model(teacher16)[0].eval()
    entry = load_tensors_only(files[1])
    recipes = ViewRecipes.from_dict(entry["recipes"])
    assert (recipes.partner != torch.arange(len(recipes))).any()  # some views are mixed
    data = prepare_data(DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=16,
                                   cache_dir=str(cache), workers=1), progress=False)
    pos = torch.arange(len(recipes))
    with torch.no_grad():
        again = teacher(render(recipes, pos, data.dataset.images, Normalizer(),
                               BatchAugment(pad_fraction=0.0625)))
    torch.testing.assert_close(entry["logits"], again, rtol=1e-4, atol=1e-4)

    # Another seed and another student: the bank is read, the teacher never runs.
    def no_teacher(*a, **k):
        raise AssertionError("the teacher ran although the bank holds every round")

    monkeypatch.setattr(teacher_pass, "label_round", no_teacher)
    monkeypatch.setattr(Distiller, "teacher_outputs", no_teacher)
    caplog.clear()
    with caplog.at_level("INFO", logger="rsdistill"):
        assert main([*args, "--seed", "1", "--out", str(tmp_path / "second")]) == 0
    assert any("2 read from" in r.getMessage() and "0 labelled" in r.getMessage()
               for r in caplog.records)
    assert _rounds(cache) == files


class Killed(BaseException):
    """Stands for a kill: not an Exception, so nothing on the way may swallow it."""


def test_a_killed_build_continues_at_the_first_missing_round(tmp_path):
    rows = torch.arange(0, 40, 2)
    calls, kill = [], [True]

    def label(recipes, step):
        calls.append(recipes)
        if kill[0] and len(calls) == 3:
            raise Killed  # killed while labelling round 2
        return recipes.lam.unsqueeze(1).repeat(1, 3)

    args = (tmp_path, "k" * 32, 4, 7, rows, BatchAugment(), BatchMix("cutmix", 1.0, 0.5))
    with pytest.raises(Killed):
        build_bank(*args, label, progress=False)
    assert [p.name for p in _rounds(tmp_path)] == ["round-0000.pt", "round-0001.pt"]
    calls.clear()
    kill[0] = False
    bank = build_bank(*args, label, progress=False)
    assert bank.computed == 2 and len(calls) == 2 and bank.rounds == 4
    # Rounds depend on the key and their number only: the same draws as a fresh build.
    fresh = build_bank(tmp_path / "fresh", "k" * 32, 4, 7, rows, BatchAugment(),
                       BatchMix("cutmix", 1.0, 0.5), label, progress=False)
    for a, b in zip(bank.recipes, fresh.recipes):
        assert torch.equal(a.shift, b.shift) and torch.equal(a.partner, b.partner)
    # A damaged round is never trusted: labelled again.
    round_path(tmp_path, "k" * 32, 1).write_bytes(b"not a tensor file")
    assert build_bank(*args, label, progress=False).computed == 1


def _edited(change):
    """A damage that rewrites the stored entry with ``change`` applied to it."""
    def damage(path):
        entry = load_tensors_only(path)
        change(entry)
        torch.save(entry, path)
    return damage


@pytest.mark.parametrize("damage, reason", [
    (lambda f: f.write_bytes(b"PK\x03\x04 cut short"), "empty, truncated or corrupt"),
    (lambda f: torch.save({"other": torch.zeros(1)}, f), "it holds no view recipes"),
    (_edited(lambda e: e["recipes"].pop("lam")), "its view recipes lack lam"),
    (_edited(lambda e: e["recipes"].update(rows=e["recipes"]["rows"] + 1)),
     "its views are of other training images"),
    (_edited(lambda e: e["recipes"].update(box=e["recipes"]["box"][:3])),
     "its view recipes box are not one per view"),
    (_edited(lambda e: e.update(logits=e["logits"][:3])), "its logits are (3, 3), not float32"),
])
def test_a_stored_round_is_read_or_named_in_one_warning_and_labelled_again(
        damage, reason, tmp_path, caplog):
    rows = torch.arange(0, 20, 2)
    calls = []

    def label(recipes, step):
        calls.append(recipes)
        return recipes.lam.unsqueeze(1).repeat(1, 3)

    args = (tmp_path, "k" * 32, 2, 7, rows, BatchAugment(), BatchMix("mixup", 1.0, 0.5))
    with caplog.at_level("WARNING", logger="rsdistill"):
        first = build_bank(*args, label, progress=False)  # absent: labelled, no warning
        assert first.computed == 2 and not caplog.records
        assert build_bank(*args, label, progress=False).computed == 0  # read back
    kept = round_path(tmp_path, "k" * 32, 1)
    damage(kept)
    calls.clear()
    with caplog.at_level("WARNING", logger="rsdistill"):
        again = build_bank(*args, label, progress=False)
    assert again.computed == 1 and len(calls) == 1
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"view bank round {kept} is unusable (")
    assert reason in message and message.endswith("; labelling it again with the teacher")
    # The same draws as before, stored again in place of the damaged entry.
    assert torch.equal(again.recipes[1].partner, first.recipes[1].partner)
    assert torch.equal(again.logits[1], first.logits[1])
    caplog.clear()
    with caplog.at_level("WARNING", logger="rsdistill"):
        assert build_bank(*args, label, progress=False).computed == 0 and not caplog.records


def test_a_transfer_set_is_labelled_into_the_bank_and_taught_by_the_teacher_only(
        teacher16, tmp_path, tiny_tree3):
    from tests.conftest import write_class_tree

    extra = write_class_tree(tmp_path / "extra", ["x"], per_class=6, seed=9)
    cache = tmp_path / "cache"
    args = ["distill", "--teacher", str(teacher16), "--student", "resnet8", "--cache-dir",
            str(cache), "--transfer-set", str(extra), *TRAIN]
    assert main([*args, *BANK, "--out", str(tmp_path / "bank")]) == 0
    entry = load_tensors_only(_rounds(cache)[0])
    views = ViewRecipes.from_dict(entry["recipes"])
    assert len(views) == 21 + 6 and int(views.rows.max()) == 36 + 6 - 1  # 21 train + 6
    # Live teaching takes it as well; a loss that ignores the teacher cannot use it.
    assert main([*args, "--method", "kd", "--alpha", "1", "--out", str(tmp_path / "live")]) == 0
    # Training accuracy is over the 21 labelled images: the 6 unlabelled ones are no misses.
    with open(tmp_path / "live" / "epochs.csv", newline="") as fh:
        accuracy = [float(r["train_accuracy"]) for r in csv.DictReader(fh)]
    correct = [a * 21 for a in accuracy]
    assert all(c == pytest.approx(round(c), abs=1e-6) for c in correct)
    assert any(round(c) % 9 for c in correct)  # would not be a whole count over 27
    assert main([*args, "--method", "kd", "--alpha", "0", "--out", str(tmp_path / "no")]) == 2
