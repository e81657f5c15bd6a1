"""split_problem / suggest_fractions: which splits cannot be trained on, and a fix that works."""

from __future__ import annotations

import pytest
import torch

from rsdistill.data.splits import (
    missing_by_split, parse_fractions, split_problem, stratified_split, suggest_fractions,
)


def labels_of(*counts: int) -> torch.Tensor:
    return torch.cat([torch.full((n,), k, dtype=torch.int64) for k, n in enumerate(counts)])


def problem(counts, fractions="60/20/20", allow_empty_val=False, classes=None):
    labels = labels_of(*counts)
    classes = classes or [f"c{k}" for k in range(len(counts))]
    split = stratified_split(labels, parse_fractions(fractions), seed=0)
    return split_problem(split, labels, classes, allow_empty_val)


def test_healthy_split_has_no_problem():
    assert problem((100, 100, 100)) is None
    assert problem((5, 5)) is None


@pytest.mark.parametrize("counts, fractions, allow, expected", [
    ((1, 1, 1), "60/20/20", False, "the val split is empty; the test split is empty"),
    ((3, 3, 3), "60/20/20", False, "the test split is empty"),
    ((10, 10, 2), "60/20/20", False, "1 class(es) have no image in the val split (c2)"),
    ((6, 6), "50/50/0", False, "the test split is empty"),
    ((6, 6), "80/0/20", False, "the val split is empty"),
])
def test_problems_are_named(counts, fractions, allow, expected):
    assert problem(counts, fractions, allow) == expected


def test_empty_val_allowed_only_when_asked_and_only_whole():
    assert problem((6, 6), "80/0/20", allow_empty_val=True) is None
    # A val split that holds some classes but not others is never "asked for".
    assert "have no image in the val split" in problem((10, 10, 2), allow_empty_val=True)


def test_fewer_than_two_classes():
    assert "only 1 class (solo)" in problem((10,), classes=["solo"])


def test_many_missing_classes_are_abbreviated():
    text = problem((10,) * 3 + (2,) * 7)
    assert "7 class(es)" in text and text.endswith(", ...)")


@pytest.mark.parametrize("counts, expected", [
    ((3, 3, 3), "--split-fractions 34/33/33"),
    ((3, 50, 7), "--split-fractions 34/33/33"),
    ((2, 2), "--split-fractions 50/0/50"),
    ((1, 5), "add images: the smallest class has 1"),
])
def test_suggestion_is_one_that_works(counts, expected):
    labels = labels_of(*counts)
    hint = suggest_fractions(labels, len(counts), seed=0)
    assert expected in hint
    if hint.startswith("pass --split-fractions"):
        text = hint.split("--split-fractions ")[1].split()[0].rstrip(",)")
        fractions = parse_fractions(text)
        missing = missing_by_split(stratified_split(labels, fractions, 0), labels, len(counts))
        if fractions[1] == 0:
            missing["val"] = []
        assert not any(missing.values())
