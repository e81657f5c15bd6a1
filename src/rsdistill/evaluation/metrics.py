"""Classification metrics computed from a confusion matrix.

Everything is derived from one C x C confusion matrix so that the numbers in a
report are mutually consistent. Conventions follow scikit-learn called with
``labels=range(C)`` and ``zero_division=0``: a class that is never predicted has
precision 0, a class with no true samples has recall 0, and both still count in
the macro average. scikit-learn itself is only used as the test oracle, so the
package does not depend on it at run time.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_label_array(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {tuple(arr.shape)}")
    if arr.size == 0:
        # An empty list becomes float64 in numpy; treat it as integer labels.
        return arr.astype(np.int64)
    # Refuse floats outright: a float here usually means probabilities or logits
    # were passed where argmax'd labels belong.
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class, shape (C, C), int64."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    t = _as_label_array(y_true, "y_true")
    p = _as_label_array(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(
                f"{name} holds labels outside [0, {num_classes}): "
                f"min {int(arr.min())}, max {int(arr.max())}"
            )
    # One bincount over the flattened (true, pred) pair index is a single pass
    # and avoids a Python loop over samples.
    flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def classification_metrics(y_true, y_pred, class_names: list[str]) -> dict:
    """Accuracy, macro/weighted precision-recall-F1, per-class scores and the confusion matrix.

    All values are plain Python ``int``/``float``/``list``/``dict`` so the result can
    be written with ``json.dumps`` as is.
    """
    num_classes = len(class_names)
    cm = confusion_matrix(y_true, y_pred, num_classes)
    n = int(cm.sum())
    if n == 0:
        raise ValueError("cannot compute classification metrics on zero samples")

    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)

    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    # 2tp / (2tp + fp + fn) is the same F1 as 2PR/(P+R) but stays defined (and
    # equals sklearn's zero_division=0 result) when P or R alone is zero.
    f1 = _safe_div(2.0 * tp, predicted + support)

    def weighted(v: np.ndarray) -> float:
        return float(np.sum(v * support) / support.sum())

    per_class = [
        {
            "class": str(name),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    ]
    return {
        "accuracy": float(tp.sum() / n),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "precision_weighted": weighted(precision),
        "recall_weighted": weighted(recall),
        "f1_weighted": weighted(f1),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "num_samples": n,
    }
