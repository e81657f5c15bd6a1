"""Models trained next to the student (dml's other peers): files, scores and the
training-time cost of a run, for the trainer's model selection and metrics.json.

A plain :class:`~rsdistill.training.distiller.Distiller` has no peers; a distiller that
has them says so with ``peer_models()``, so the trainer needs no method-specific code.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rsdistill.data.module import PreparedData
from rsdistill.evaluation import classification_metrics, predict
from rsdistill.models import count_parameters, load_model
from rsdistill.runtime.checkpoint import model_object
from rsdistill.runtime.precision import Precision
from rsdistill.runtime.rundir import MODEL_FILE, peer_file

PEER_SCORES = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def peer_models(distiller) -> list[tuple[torch.nn.Module, str]]:
    """Peers 1, 2, ... with their model names; none for a plain Distiller."""
    return distiller.peer_models()


def peer_files(distiller: torch.nn.Module, model_meta: dict, epoch: int) -> dict[str, dict]:
    """``{peer1.pt: model file, ...}``, taken whenever model.pt is, so every peer's score
    describes the same epoch of the joint training (the one peer 0's validation accuracy
    selected)."""
    return {peer_file(i): model_object(peer, {**model_meta, "model": name, "epoch": epoch,
                                              "selected_by": "val_accuracy of peer 0"})
            for i, (peer, name) in enumerate(peer_models(distiller), start=1)}


def training_cost(distiller: torch.nn.Module) -> dict:
    """Trainable parameters, and those beyond the deployed student (a FitNet regressor,
    dml's other peers): what a method costs during training but not at inference."""
    trainable = sum(p.numel() for p in distiller.trainable_parameters())
    return {"trainable_params": trainable,
            "extra_trainable_params": trainable - count_parameters(distiller.student)}


def peer_scores(model: torch.nn.Module, data: PreparedData, split: str,
                precision: Precision) -> dict:
    """Quality of one peer on ``split``, without timing it (peer 0 is timed as the student)."""
    model = precision.prepare_model(model)
    idx = data.split[split]
    logits = predict(model, data.dataset.images[idx], data.normalizer, precision)
    metrics = classification_metrics(data.dataset.labels[idx], logits.argmax(1), data.classes)
    return {k: metrics[k] for k in PEER_SCORES}


def peer_metrics(distiller: torch.nn.Module, run_dir: Path, student_metrics: dict,
                 data: PreparedData, precision: Precision) -> list[dict]:
    """One entry per peer: peer 0 from the student's metrics, the others evaluated from
    their saved files on the same split."""
    split = student_metrics.get("split", "test")
    rows = [{"peer": 0, "model": student_metrics["run"]["model"], "checkpoint": MODEL_FILE,
             "params": student_metrics["params"], **{k: student_metrics[k] for k in PEER_SCORES}}]
    for i, _ in enumerate(peer_models(distiller), start=1):
        model, meta = load_model(Path(run_dir) / peer_file(i))
        rows.append({"peer": i, "model": meta["model"], "checkpoint": peer_file(i),
                     "params": count_parameters(model),
                     **peer_scores(model, data, split, precision)})
    return rows
