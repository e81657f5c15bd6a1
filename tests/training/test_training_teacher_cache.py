"""The teacher's logits of every view, computed once: the same logits a step would get
online, for the eight flips/rotations, and only when the views are finite."""

from __future__ import annotations

import itertools

import json

import pytest
import torch
import yaml

import rsdistill.training.trainer as trainer_mod
from rsdistill.cli.main import main
from rsdistill.data.augment import AugmentParams, BatchAugment
from rsdistill.data.loader import Normalizer
from rsdistill.models import build_model
from rsdistill.training.teacher_cache import (
    CACHE_SUBDIR, VIEWS, TeacherLogitCache, cacheable, dihedral_index, load_cached, store,
    view_params,
)

TRAIN = ["--epochs", "2", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
         "--precision", "fp32", "--no-progress"]


def _data(tree, cache, size: int) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--image-size", str(size),
            "--cache-dir", str(cache), "--workers", "1"]


def test_the_dihedral_index_names_the_view_apply_makes():
    augment = BatchAugment(crop=False)
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    seen = set()
    for h, v, k in itertools.product((False, True), (False, True), range(4)):
        p = AugmentParams(torch.tensor([h, h]), torch.tensor([v, v]), torch.tensor([k, k]),
                          torch.full((2, 2), 0.5))
        view = dihedral_index(p)
        assert view.tolist() == [view[0].item()] * 2
        canonical = augment.apply(x, view_params(int(view[0]), 2))
        assert torch.equal(augment.apply(x, p), canonical), (h, v, k)
        seen.add(int(view[0]))
    assert seen == set(range(8))  # 16 draws, 8 distinct pictures


def test_cached_logits_equal_the_teachers_online_logits():
    torch.manual_seed(0)
    teacher = build_model("resnet8", 3, 16).eval()
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8, generator=g)
    rows = torch.tensor([0, 2, 3, 5, 7, 9])
    augment, norm = BatchAugment(crop=False), Normalizer((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    cache = TeacherLogitCache.build(teacher, images, rows, norm, augment, lambda x: x,
                                    lambda: torch.autocast("cpu", enabled=False))
    assert torch.isnan(cache.logits[:, 1]).all()  # not a training row: never computed
    params = augment.sample(rows.numel(), torch.Generator().manual_seed(2))
    with torch.no_grad():
        online = teacher(augment.apply(norm(images[rows]), params))
    torch.testing.assert_close(cache.lookup(rows, params), online, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(augment=BatchAugment()), "crop augmentation off"),
    (dict(mixing=True), "mixed"),
    (dict(teacher_augment="independent"), "own augmentation"),
    (dict(uses_features=True), "feature maps"),
])
def test_views_that_are_not_finite_are_not_cached(kwargs, needle):
    args = dict(augment=BatchAugment(crop=False), mixing=False, teacher_augment="same",
                uses_features=False)
    assert cacheable(**args) is None
    assert needle in cacheable(**{**args, **kwargs})


@pytest.fixture(scope="module")
def teacher32(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cache") / "teacher32"
    assert main(["train", *_data(tiny_tree3, tiny_cache, 32), "--model", "resnet8", *TRAIN,
                 "--out", str(out)]) == 0
    return out


def _spy_teacher_logits(monkeypatch) -> list[torch.Tensor]:
    used = []
    original = trainer_mod.Trainer._teacher_outputs

    def spy(self, x, batch=None):
        logits, features = original(self, x, batch)
        used.append(logits.detach().float().clone())
        return logits, features

    monkeypatch.setattr(trainer_mod.Trainer, "_teacher_outputs", spy)
    return used


@pytest.mark.parametrize("view", ["own", "upsampled"])
def test_a_cached_run_teaches_with_the_online_logits(teacher32, tmp_path, monkeypatch, caplog,
                                                     view):
    runs = {}
    for mode in ("off", "auto"):
        used = _spy_teacher_logits(monkeypatch)
        out = tmp_path / mode
        with caplog.at_level("INFO", logger="rsdistill"):
            assert main(["distill", "--teacher", str(teacher32), "--student", "resnet8",
                         "--student-image-size", "16", "--teacher-view", view, "--no-crop",
                         "--teacher-cache", mode, *TRAIN, "--out", str(out)]) == 0
        runs[mode] = used
        monkeypatch.undo()
    assert len(runs["off"]) == len(runs["auto"]) > 2
    for a, b in zip(runs["off"], runs["auto"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert any("teacher logits of every view" in r.getMessage() for r in caplog.records)
    cfg = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())
    assert cfg["train"]["teacher_cache"] == "auto" and cfg["data"]["teacher_view"] == view


@pytest.mark.parametrize("view", ["own", "upsampled"])
def test_a_cached_run_builds_no_batches_at_the_teachers_resolution(teacher32, tmp_path,
                                                                  monkeypatch, view):
    sizes = {}
    original = trainer_mod.Trainer._teacher_outputs
    for mode in ("off", "auto"):
        seen = sizes.setdefault(mode, set())

        def spy(self, x, batch=None, seen=seen):
            seen.add(x.shape[-1])
            return original(self, x, batch)

        monkeypatch.setattr(trainer_mod.Trainer, "_teacher_outputs", spy)
        assert main(["distill", "--teacher", str(teacher32), "--student", "resnet8",
                     "--student-image-size", "16", "--teacher-view", view, "--no-crop",
                     "--teacher-cache", mode, *TRAIN, "--out", str(tmp_path / mode)]) == 0
        monkeypatch.undo()
    assert sizes == {"off": {32}, "auto": {16}}
    accuracy = [json.loads((tmp_path / m / "metrics.json").read_text())["accuracy"]
                for m in ("off", "auto")]
    assert accuracy[0] == pytest.approx(accuracy[1], abs=1e-9)


def test_the_upsampled_teacher_reads_the_students_view_at_its_own_size(teacher32, tmp_path,
                                                                       monkeypatch):
    import rsdistill.experiments.procedures as procedures

    seen = []
    original = procedures.prepare_data

    def spy(cfg, extra_views=(), **kwargs):
        data = original(cfg, extra_views, **kwargs)
        seen.append((extra_views, data))
        return data

    monkeypatch.setattr(procedures, "prepare_data", spy)
    assert main(["distill", "--teacher", str(teacher32), "--student", "resnet8",
                 "--student-image-size", "16", "--teacher-view", "upsampled", *TRAIN,
                 "--out", str(tmp_path / "up")]) == 0
    (extra, data), = seen
    assert extra == ((32, 16),)  # 32 px made from the 16 px images the student reads
    from rsdistill.data.views import resize_uint8

    assert torch.equal(data.views[(32, 16)].images, resize_uint8(data.dataset.images, 32))


def test_a_crop_run_keeps_the_teacher_online_and_says_why(teacher32, tmp_path, caplog):
    with caplog.at_level("INFO", logger="rsdistill"):
        assert main(["distill", "--teacher", str(teacher32), "--student", "resnet8", *TRAIN,
                     "--out", str(tmp_path / "crop")]) == 0
    assert any("teacher runs on every batch: random crops" in r.getMessage()
               for r in caplog.records)


def test_the_logits_are_kept_for_the_next_run_with_the_same_teacher_and_views(
        teacher32, tmp_path, tiny_tree3, monkeypatch, caplog):
    cache_dir = tmp_path / "cache"
    args = ["distill", "--teacher", str(teacher32), "--student", "resnet8",
            "--student-image-size", "16", "--no-crop", "--cache-dir", str(cache_dir), *TRAIN]
    used = {}
    for name in ("first", "second"):
        used[name] = _spy_teacher_logits(monkeypatch)
        with caplog.at_level("INFO", logger="rsdistill"):
            caplog.clear()
            assert main([*args, "--out", str(tmp_path / name)]) == 0
        monkeypatch.undo()
        used[name + "_log"] = [r.getMessage() for r in caplog.records]
    kept = list((cache_dir / "teacher-logits").glob("*.pt"))
    assert len(kept) == 1
    assert any("computed in" in m for m in used["first_log"])
    assert any("read from" in m for m in used["second_log"])
    for a, b in zip(used["first"], used["second"]):
        assert torch.equal(a, b)
    # A damaged entry is never trusted: the teacher's pass runs again.
    kept[0].write_bytes(b"not a tensor file")
    caplog.clear()
    with caplog.at_level("INFO", logger="rsdistill"):
        assert main([*args, "--out", str(tmp_path / "third")]) == 0
    assert any("computed in" in r.getMessage() for r in caplog.records)


def test_another_teacher_or_view_gets_its_own_entry(tmp_path):
    from rsdistill.training.teacher_cache import cache_key

    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"weights a")
    b.write_bytes(b"weights b")
    parts = ["fingerprint", (32, None), [0, 1, 2]]
    assert cache_key(a, parts) == cache_key(a, list(parts))
    assert cache_key(a, parts) != cache_key(b, parts)
    assert cache_key(a, parts) != cache_key(a, ["fingerprint", (32, 16), [0, 1, 2]])


@pytest.mark.parametrize("damage, reason", [
    (lambda f: f.write_bytes(b"PK\x03\x04 cut short"), "empty, truncated or corrupt"),
    (lambda f: torch.save({"other": torch.zeros(1)}, f), "its logits are none"),
    (lambda f: torch.save([1, 2], f), "its logits are none"),
])
def test_a_stored_entry_is_read_or_named_in_one_warning(damage, reason, tmp_path, caplog):
    rows = torch.tensor([0, 2])
    logits = torch.randn(VIEWS, 3, 4)
    assert load_cached(tmp_path, "k", 3, 4, rows) is None and not caplog.records  # absent
    store(tmp_path, "k", TeacherLogitCache(logits, 1.0))
    assert torch.equal(load_cached(tmp_path, "k", 3, 4, rows).logits, logits)
    kept = tmp_path / CACHE_SUBDIR / "k.pt"
    damage(kept)
    with caplog.at_level("WARNING", logger="rsdistill"):
        assert load_cached(tmp_path, "k", 3, 4, rows) is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"teacher logits cache {kept} is unusable (")
    assert reason in message and message.endswith("; computing it again")
