"""Tiny datasets (issue 16, item 4): a split that leaves a class out, or fewer than two
classes, stops `train` before anything is written, with one line that says how to fix
it; `data info` shows the sizes and warns instead."""

from __future__ import annotations

import json

import pytest

# (class sizes, --split-fractions or None, what the error must say)
UNTRAINABLE = {
    "one_image_per_class": ({"a": 1, "b": 1, "c": 1}, None,
                            ["the val split is empty", "the test split is empty", "add images"]),
    "three_images_default_fractions": ({"a": 3, "b": 3, "c": 3}, None,
                                       ["the test split is empty", "--split-fractions 34/33/33"]),
    "one_small_class": ({"a": 10, "b": 10, "c": 2}, None,
                        ["1 class(es) have no image in the val split (c)", "50/0/50"]),
    "two_images_per_class": ({"a": 2, "b": 2}, None, ["--split-fractions 50/0/50"]),
    "empty_test_fraction": ({"a": 6, "b": 6}, "50/50/0", ["the test split is empty"]),
    "single_class": ({"a": 8}, None, ["only 1 class (a)", "at least 2"]),
}


@pytest.mark.parametrize("case", sorted(UNTRAINABLE))
def test_train_refuses_untrainable_split_before_writing_anything(case, make_tree, cli, kit,
                                                                 tmp_path):
    sizes, fractions, needles = UNTRAINABLE[case]
    root = make_tree(sizes)
    before = kit.snapshot(root)
    out = tmp_path / "run"
    extra = ["--split-fractions", fractions] if fractions else []
    result = cli(*kit.train(root, tmp_path / "cache", out, *extra))
    assert result.rc == 2
    result.error_line("cannot train on this data", *needles)
    assert not out.exists()  # checked before any training: no half-made run directory
    assert kit.snapshot(root) == before


@pytest.mark.parametrize("case", sorted(UNTRAINABLE))
def test_data_info_shows_sizes_and_one_warning(case, make_tree, cli, kit, tmp_path):
    sizes, fractions, needles = UNTRAINABLE[case]
    root = make_tree(sizes)
    extra = ["--split-fractions", fractions] if fractions else []
    result = cli(*kit.info(root, tmp_path / "cache", "--json", *extra))
    assert result.rc == 0, result.err
    info = json.loads(result.out)
    assert info["counts"] == sizes
    assert sum(info["splits"].values()) == sum(sizes.values())
    split_warnings = [w for w in result.warnings if "cannot train on this data" in w]
    assert len(split_warnings) == 1, result.warnings
    for needle in needles:
        assert needle in split_warnings[0]


def test_suggested_fractions_really_train(make_tree, cli, kit, tmp_path):
    # The fix the error suggests for three images a class must be one that works.
    root = make_tree({"a": 3, "b": 3, "c": 3})
    first = cli(*kit.train(root, tmp_path / "cache", tmp_path / "r1"))
    assert "--split-fractions 34/33/33" in first.err
    second = cli(*kit.train(root, tmp_path / "cache", tmp_path / "r2",
                            "--split-fractions", "34/33/33"))
    assert second.rc == 0, second.err
    assert (tmp_path / "r2" / "metrics.json").is_file()


def test_zero_validation_fraction_is_allowed_on_purpose(make_tree, cli, kit, tmp_path):
    # 80/0/20 asks for no validation split: the best epoch is then chosen on training
    # accuracy (documented), so it trains; 80/10/10 on the same data would leave a class
    # out of val and is refused.
    root = make_tree({"a": 5, "b": 5})
    ok = cli(*kit.train(root, tmp_path / "cache", tmp_path / "noval",
                        "--split-fractions", "80/0/20"))
    assert ok.rc == 0, ok.err
    epochs = (tmp_path / "noval" / "epochs.csv").read_text().splitlines()
    assert len(epochs) == 2  # header + the one epoch, selected without a val split
    refused = cli(*kit.train(root, tmp_path / "cache", tmp_path / "thin",
                             "--split-fractions", "80/10/10"))
    assert refused.rc == 2
    refused.error_line("the val split is empty")


def test_class_lost_to_skip_corrupt_is_caught(make_tree, cli, kit, tmp_path):
    # Every image of class c is corrupt: --skip-corrupt leaves none, and the split check
    # names the class instead of a crash later.
    root = make_tree({"a": 4, "b": 4})
    (root / "c").mkdir()
    for i in range(3):
        (root / "c" / f"bad{i}.png").write_bytes(b"not a png")
    result = cli(*kit.train(root, tmp_path / "cache", tmp_path / "run", "--skip-corrupt"))
    assert result.rc == 2
    result.error_line("have no image in the", "(c)")


def test_untrainable_error_reaches_the_terminal_as_one_line(make_tree, cli_process, kit,
                                                            tmp_path):
    root = make_tree({"a": 1, "b": 1})
    result = cli_process(*kit.train(root, tmp_path / "cache", tmp_path / "run"))
    assert result.rc == 2
    result.error_line("cannot train on this data")
    assert result.out == ""
