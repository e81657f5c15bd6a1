"""Model files (weights + what is needed to rebuild and feed the model) and resumable
training state. Everything is loaded with ``weights_only=True``: no pickled code runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from rsdistill.errors import CheckpointError
from rsdistill.io import atomic_torch_save, load_failure_reason
from rsdistill.runtime.rundir import MODEL_FILE

MODEL_FORMAT = "rsdistill-model/1"


def _plain_state(module: nn.Module) -> dict[str, torch.Tensor]:
    # Copies (a snapshot kept in memory must not follow later steps), contiguous so the
    # file does not depend on the training memory format.
    return {k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
            for k, v in module.state_dict().items()}


def model_object(model: nn.Module, meta: dict) -> dict:
    """What a model file holds: a snapshot of the weights and the meta beside them."""
    return {"format": MODEL_FORMAT, "model": _plain_state(model), "meta": meta}


def save_model(path: Path, model: nn.Module, meta: dict) -> None:
    atomic_torch_save(model_object(model, meta), path)


def load_tensors_only(path: Path):
    """``torch.load`` that runs no pickled code (``weights_only``) and prints nothing; any
    failure is raised as torch raises it, for the caller to explain."""
    with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def safe_load(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = load_tensors_only(path)
    except Exception as exc:
        kind, reason = load_failure_reason(exc)
        what = "a safe" if kind == "unsafe" else "a valid"
        raise CheckpointError(f"cannot read checkpoint {path}: it is not {what} rsdistill "
                              f"checkpoint ({reason}); refused") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a valid rsdistill checkpoint")
    return obj


def resolve_model_path(path: str | Path) -> Path:
    """A run directory or a model file -> the model file."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / MODEL_FILE
        if not candidate.is_file():
            raise CheckpointError(
                f"run directory {path} has no {MODEL_FILE}; did its training finish?"
            )
        return candidate
    if not path.exists():
        raise CheckpointError(f"checkpoint or run directory {path} does not exist")
    return path


def read_model_file(path: str | Path) -> tuple[Path, dict]:
    """``(file, {"model": state dict, "meta": meta})`` of a model file or run directory."""
    file = resolve_model_path(path)
    obj = safe_load(file)
    if obj.get("format") != MODEL_FORMAT or "meta" not in obj:
        raise CheckpointError(
            f"{file} is not an rsdistill model file (expected format {MODEL_FORMAT}); "
            "pass a model.pt written by 'rsdistill train' or 'rsdistill distill'"
        )
    return file, obj


def save_state(path: Path, state: dict) -> None:
    atomic_torch_save(state, path)


def load_state(path: Path) -> dict:
    return safe_load(path)
