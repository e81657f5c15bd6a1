import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from rsdistill.evaluation import classification_metrics, confusion_matrix

TOL = 1e-12


def _names(c):
    return [f"class_{i}" for i in range(c)]


def _check_against_sklearn(y_true, y_pred, c):
    m = classification_metrics(y_true, y_pred, _names(c))
    labels = list(range(c))
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=TOL)
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0
        )
        assert m[f"precision_{avg}"] == pytest.approx(p, abs=TOL)
        assert m[f"recall_{avg}"] == pytest.approx(r, abs=TOL)
        assert m[f"f1_{avg}"] == pytest.approx(f, abs=TOL)
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    assert [row["class"] for row in m["per_class"]] == _names(c)
    np.testing.assert_allclose([row["precision"] for row in m["per_class"]], p, atol=TOL, rtol=0)
    np.testing.assert_allclose([row["recall"] for row in m["per_class"]], r, atol=TOL, rtol=0)
    np.testing.assert_allclose([row["f1"] for row in m["per_class"]], f, atol=TOL, rtol=0)
    assert [row["support"] for row in m["per_class"]] == s.tolist()
    assert m["confusion_matrix"] == sk_confusion_matrix(y_true, y_pred, labels=labels).tolist()
    assert m["num_samples"] == len(y_true)
    return m


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_random_predictions_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y_true = rng.integers(0, 7, size=n)
    # Mostly-correct predictions exercise a realistic confusion matrix, not just noise.
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, 7, size=n))
    _check_against_sklearn(y_true, y_pred, 7)


def test_perfect_prediction():
    y = np.array([0, 1, 2, 3, 4, 5, 6, 0, 3, 3])
    m = _check_against_sklearn(y, y.copy(), 7)
    assert m["accuracy"] == 1.0
    assert m["f1_macro"] == 1.0
    assert m["confusion_matrix"] == np.diag(np.bincount(y, minlength=7)).tolist()


def test_never_predicted_class_and_class_without_true_samples():
    # Class 2 is never predicted; class 4 has no true samples but is predicted once.
    y_true = np.array([0, 0, 1, 1, 2, 2, 2, 3, 3, 0])
    y_pred = np.array([0, 1, 1, 1, 0, 3, 4, 3, 3, 0])
    m = _check_against_sklearn(y_true, y_pred, 5)
    row2, row4 = m["per_class"][2], m["per_class"][4]
    assert row2["precision"] == 0.0 and row2["recall"] == 0.0 and row2["f1"] == 0.0
    assert row4["support"] == 0 and row4["recall"] == 0.0 and row4["precision"] == 0.0


def test_torch_inputs_and_json_serialisable():
    y_true = torch.tensor([2, 0, 1, 2, 2, 1])
    y_pred = torch.tensor([2, 0, 2, 2, 1, 1])
    names = ["forest", "river", "urban"]
    m = classification_metrics(y_true, y_pred, names)
    json.loads(json.dumps(m))
    assert [row["class"] for row in m["per_class"]] == names
    assert [row["support"] for row in m["per_class"]] == [1, 2, 3]
    assert m["num_samples"] == 6
    scalars = [v for v in m.values() if not isinstance(v, list)]
    assert all(type(v) in (int, float) for v in scalars)
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)
    _check_against_sklearn(y_true.numpy(), y_pred.numpy(), 3)


def test_confusion_matrix_orientation_and_dtype():
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([1, 1, 1]), 3)
    assert cm.dtype == np.int64
    # Rows are true classes, columns predicted classes.
    assert cm.tolist() == [[0, 2, 0], [0, 1, 0], [0, 0, 0]]


@pytest.mark.parametrize(
    "y_true, y_pred",
    [
        ([0, 1], [0]),  # length mismatch
        ([0, 3], [0, 1]),  # label out of range
        ([0, -1], [0, 1]),  # negative label
        ([0.0, 1.0], [0, 1]),  # float labels
        ([[0, 1]], [[0, 1]]),  # not 1-D
    ],
)
def test_invalid_inputs_raise(y_true, y_pred):
    with pytest.raises(ValueError):
        classification_metrics(y_true, y_pred, _names(3))


def test_empty_input_raises():
    with pytest.raises(ValueError):
        classification_metrics([], [], _names(3))
