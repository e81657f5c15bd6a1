"""Per-image predictions as rows, and their CSV / JSON files.

``rsdistill predict`` writes one row per new image (file, predicted class, probability,
top-k); ``rsdistill evaluate --predictions`` one per test image (file, true class,
predicted class, probability), so that errors can be looked at one by one. Probabilities
are the softmax of the logits, in float32.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch

from rsdistill.runtime.precision import Precision
from rsdistill.errors import ConfigError
from rsdistill.evaluation.backends import as_backend
from rsdistill.evaluation.timing import predict
from rsdistill.io import atomic_write_text

OUTPUT_SUFFIXES = (".csv", ".json")


def check_output_path(path: str | Path, flag: str) -> Path:
    """``path`` if it ends in .csv or .json (checked before any work is done)."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"{flag} must end in .csv or .json, got {path}")
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; name a .csv or .json file")
    return path


def check_top_k(k: int, num_classes: int) -> int:
    if not 1 <= k <= num_classes:
        raise ConfigError(f"--top-k must be in [1, {num_classes}] (the model's classes), got {k}")
    return k


def prediction_rows(names: list[str], logits: torch.Tensor, classes: list[str], k: int = 1) -> list[dict]:
    """One row per image: its name, the top class, its probability and the ``k`` best."""
    probs = torch.softmax(logits.float(), dim=1)
    values, indices = probs.topk(k, dim=1)
    rows = []
    for name, vals, idx in zip(names, values.tolist(), indices.tolist()):
        top = [{"class": classes[i], "probability": v} for v, i in zip(vals, idx)]
        rows.append({"file": name, "predicted_class": top[0]["class"],
                     "probability": top[0]["probability"], "top_k": top})
    return rows


def labelled_rows(names: list[str], labels: torch.Tensor, logits: torch.Tensor,
                  classes: list[str]) -> list[dict]:
    """One row per labelled image: file, true class, predicted class, its probability."""
    probs = torch.softmax(logits.float(), dim=1)
    best, pred = probs.max(dim=1)
    return [{"file": n, "true_class": classes[t], "predicted_class": classes[p], "probability": b,
             "correct": t == p}
            for n, t, p, b in zip(names, labels.tolist(), pred.tolist(), best.tolist())]


def split_rows(model, data, split: str, precision: Precision) -> list[dict]:
    """:func:`labelled_rows` of ``model`` (a module or backend) on ``data``'s ``split``,
    fed as :func:`~rsdistill.training.trainer.evaluate_model` feeds it."""
    idx = data.split[split]
    logits = predict(as_backend(model).prepare(precision), data.dataset.images[idx], data.normalizer, precision)
    return labelled_rows([data.dataset.location(i) for i in idx.tolist()], data.dataset.labels[idx],
                         logits, data.classes)


def _flat(row: dict) -> dict:
    """A CSV row: ``top_k`` spread over top2_class, top2_probability, … (the first is
    already predicted_class / probability)."""
    out = {k: v for k, v in row.items() if k != "top_k"}
    for rank, entry in enumerate(row.get("top_k", [])[1:], start=2):
        out[f"top{rank}_class"] = entry["class"]
        out[f"top{rank}_probability"] = entry["probability"]
    return out


def rows_csv(rows: list[dict]) -> str:
    flat = [_flat(r) for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(flat[0]) if flat else ["file"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue()


def write_rows(path: Path, rows: list[dict], record: dict) -> None:
    """Atomically: CSV of the rows, or JSON of ``record`` with the rows under "predictions"."""
    if path.suffix.lower() == ".csv":
        atomic_write_text(path, rows_csv(rows))
    else:
        atomic_write_text(path, json.dumps({**record, "predictions": rows}, indent=1) + "\n")


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table (what ``rsdistill predict`` prints)."""
    width = max([4, *(len(r["file"]) for r in rows)])
    cls_width = max([5, *(len(r["predicted_class"]) for r in rows)])
    lines = [f"{'file':<{width}}  {'class':<{cls_width}}  {'prob':>6}"
             + ("  top-k" if rows and len(rows[0]["top_k"]) > 1 else "")]
    for r in rows:
        line = f"{r['file']:<{width}}  {r['predicted_class']:<{cls_width}}  {r['probability']:>6.4f}"
        if len(r["top_k"]) > 1:
            line += "  " + ", ".join(f"{t['class']} {t['probability']:.4f}" for t in r["top_k"][1:])
        lines.append(line)
    return "\n".join(lines)
