"""A run's config.yaml, the dataset cache and the teacher-logit cache when their content
is hostile or inconsistent (issue 25, items 3 and 4).

config.yaml: empty, a list, invalid YAML or a ``!!python`` tag ended in TypeError,
ParserError or ConstructorError tracebacks in evaluate, distill --teacher and --resume;
now one line naming the file, and still no code runs. Caches only save time: one that
loads but cannot be what it claims (fewer labels than images, a label past the classes,
float images, logits of another shape) is rebuilt with a warning, as a truncated one is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from rsdistill.cli.main import main


# ------------------------------------------------------------------ config.yaml (item 3)
# case -> (config.yaml text, words the one error line must hold); {marker} is a file the
# python tag would create if anything ran it.
CONFIGS = {
    "empty": ("", "is empty, not the record of a run"),
    "a_list": ("- data\n- train\n", "holds a list, not the record of a run"),
    "invalid_yaml": ("data: [1, 2\ntrain: {}\n", "is not valid YAML at line"),
    "python_tag": ("!!python/object/apply:os.system ['touch {marker}']\n",
                   "which is not plain YAML data; refused (nothing in it was run)"),
    "no_data_section": ("kind: train\ntrain: {}\n", "has no 'data' section"),
}
COMMANDS = ["evaluate", "distill --teacher", "train --resume"]
# A resume compares config.yaml's sections with the new run's and names what differs.
CONFIG_CASES = [(case, which) for case in sorted(CONFIGS) for which in COMMANDS
                if (case, which) != ("no_data_section", "train --resume")]


def command(name: str, run: Path, tree: Path, cache: Path, tmp: Path, kit) -> list:
    if name == "evaluate":
        return ["evaluate", run, "--latency-runs", "1"]
    if name == "distill --teacher":
        return ["distill", "--teacher", run, "--student", "resnet8", *kit.TINY_TRAIN, "--out",
                tmp / "student"]
    return ["train", *kit.tiny_data(tree, cache), "--model", "resnet8", *kit.TINY_TRAIN, "--out",
            run, "--resume"]


@pytest.mark.parametrize(("case", "which"), CONFIG_CASES)
def test_hostile_config_yaml_is_one_line(case, which, finished_run, tiny_tree3, tiny_cache,
                                         tmp_path, cli, kit):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    marker = tmp_path / "PWNED"
    text, words = CONFIGS[case]
    (run / "config.yaml").write_text(text.replace("{marker}", str(marker)))
    before = kit.snapshot(run)
    result = cli(*command(which, run, tiny_tree3, tiny_cache, tmp_path, kit))
    assert result.rc == 2
    result.error_line(str(run / "config.yaml"), words)
    assert not marker.exists()
    assert kit.snapshot(run) == before
    assert not (tmp_path / "student").exists()


# ------------------------------------------------------------------ dataset cache (item 4)
def fewer_labels(entry):
    entry["labels"] = entry["labels"][:-1]


def label_999(entry):
    entry["labels"][0] = 999


def float_images(entry):
    entry["images"] = entry["images"].float()


def not_a_dict(entry):
    return [entry["images"]]


# case -> (damage to the entry, the reason the warning gives)
DAMAGE = {
    "fewer_labels": (fewer_labels, "one integer label for each of its"),
    "label_999": (label_999, "labels are not all within the 2 classes"),
    "float_images": (float_images, "images are not uint8 3×8×8"),
    "not_a_dict": (not_a_dict, "not a cache entry of this version"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_inconsistent_dataset_cache_is_rebuilt(case, make_tree, cli, kit, tmp_path):
    root = make_tree({"a": 3, "b": 3})
    cache = tmp_path / "cache"
    assert cli(*kit.info(root, cache)).rc == 0
    (cached,) = cache.glob("*.pt")
    entry = torch.load(cached, weights_only=True)
    damage, reason = DAMAGE[case]
    torch.save(damage(entry) or entry, cached)

    result = cli(*kit.train(root, cache, tmp_path / "run", "--split-fractions", "34/33/33"))
    assert result.rc == 0, result.err
    (warning,) = [w for w in result.warnings if "unusable" in w]
    assert str(cached) in warning and reason in warning and "rebuilding it" in warning
    rebuilt = torch.load(cached, weights_only=True)
    assert rebuilt["images"].dtype == torch.uint8 and rebuilt["labels"].tolist() == [0] * 3 + [1] * 3


# ------------------------------------------------------------------ teacher logits (item 4)
@pytest.mark.parametrize("damage", ["fewer_images", "fewer_classes", "nan_rows"])
def test_teacher_logits_of_another_shape_are_computed_again(damage, finished_run, tmp_path, kit,
                                                           caplog):
    cache = tmp_path / "cache"
    args = ["distill", "--teacher", str(finished_run), "--student", "resnet8", "--no-crop",
            "--cache-dir", str(cache), *kit.TINY_TRAIN]
    assert main([*args, "--out", str(tmp_path / "first")]) == 0
    (kept,) = (cache / "teacher-logits").glob("*.pt")
    logits = torch.load(kept, weights_only=True)["logits"]
    logits = {"fewer_images": lambda t: t[:, :3], "fewer_classes": lambda t: t[..., :2],
              "nan_rows": lambda t: torch.full_like(t, float("nan"))}[damage](logits)
    torch.save({"logits": logits.clone()}, kept)
    caplog.clear()
    with caplog.at_level("INFO", logger="rsdistill"):
        assert main([*args, "--out", str(tmp_path / "second")]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"teacher logits cache {kept} is unusable" in m for m in messages), messages
    assert any("computed in" in m for m in messages)
    assert torch.load(kept, weights_only=True)["logits"].shape[1:] == (36, 3)
