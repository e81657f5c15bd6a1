"""The teacher of a distillation run: loaded frozen, checked against the data, and the
settings of its own run that a student's run starts from."""

from __future__ import annotations

from pathlib import Path

import torch

from rsdistill.data.module import PreparedData
from rsdistill.errors import CheckpointError, ConfigError
from rsdistill.io import read_json
from rsdistill.models import load_model
from rsdistill.runtime.checkpoint import resolve_model_path
from rsdistill.runtime.rundir import CONFIG_FILE, METRICS_FILE, RunDirectory

SCORE_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def load_teacher(path: str, data: PreparedData | None = None) -> tuple[torch.nn.Module, dict]:
    """The frozen teacher and its meta; checked against ``data`` when given."""
    if not path:
        raise ConfigError("distillation needs --teacher (a run directory or model.pt)")
    teacher, meta = load_model(path)
    if data is not None:
        check_teacher_data(path, meta, data)
    return teacher, meta


def check_teacher_data(path: str, meta: dict, data: PreparedData) -> None:
    if meta["dataset"] != data.dataset.name or list(meta["classes"]) != list(data.classes):
        raise CheckpointError(
            f"teacher {resolve_model_path(path)} was trained on {meta['dataset']} with "
            f"{meta['num_classes']} classes, but this run uses {data.dataset.name} with "
            f"{data.num_classes}; train a teacher on the same dataset and classes"
        )


def teacher_data_config(path: str) -> dict | None:
    """The data section of the teacher's run, used as defaults for the student's run."""
    model_file = resolve_model_path(path)
    if not (model_file.parent / CONFIG_FILE).is_file():
        return None
    return RunDirectory(model_file.parent).read_sections("data")[1][0]


def teacher_summary(teacher: str) -> dict | None:
    """The teacher's scores, size and timing from its own run (None without metrics)."""
    metrics_file = resolve_model_path(teacher).parent / METRICS_FILE
    if not metrics_file.is_file():
        return None
    m = read_json(metrics_file)
    size = (teacher_data_config(teacher) or {}).get("image_size")
    return {"model": m["run"]["model"], "image_size": size, "params": m["params"],
            "flops": m["flops"], **{k: m[k] for k in SCORE_KEYS},
            "latency_ms_p50": m["inference"]["latency_ms_p50"],
            "test_seconds": m["inference"]["test_seconds"]}


def resolved_teacher(path: str) -> str:
    """The teacher's path as config.yaml records it: absolute, so the run is portable."""
    return str(Path(path).expanduser().resolve()) if path else path
