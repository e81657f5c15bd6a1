"""Loading a local state dict into a freshly built model, tolerating a new classifier.

Fine-tuning a teacher trained on one dataset for another changes only the classifier
shape, so mismatched tensors are skipped (with a warning) instead of failing the load.
A checkpoint that matches nothing at all is an error: silently training from scratch
would be worse than stopping.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from rsdistill.errors import CheckpointError
from rsdistill.io import load_failure_reason
from rsdistill.runtime.checkpoint import load_tensors_only

# Training checkpoints often wrap the weights; these are the keys we look under.
_WRAPPER_KEYS = ("model", "state_dict")
# DataParallel/DDP and torch.compile prefix every parameter name.
_NAME_PREFIXES = ("module.", "_orig_mod.")


def _load_error(file: Path, exc: BaseException) -> CheckpointError:
    kind, reason = load_failure_reason(exc)
    if kind == "unsafe":
        return CheckpointError(
            f"cannot read pretrained checkpoint {file}: it is not a safe checkpoint ({reason}); "
            "refused: save model.state_dict() with torch.save instead"
        )
    return CheckpointError(f"cannot read pretrained checkpoint {file}: {reason}")


def _strip_prefixes(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _NAME_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                stripped = True
    return key


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict (bare, or under ``"model"``/``"state_dict"``) from ``path``."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"pretrained checkpoint not found: {file}")
    try:
        obj = load_tensors_only(file)
    except Exception as exc:  # torch raises many types for corrupt/unsafe files
        raise _load_error(file, exc) from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file} does not hold a state dict (found {type(obj).__name__})")
    tensors = {_strip_prefixes(str(k)): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{file} holds no tensors; expected a model state dict")
    return tensors


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Copy every tensor of ``path`` whose name and shape match ``model``.

    Returns the names that were ``loaded``, ``skipped`` (shape mismatch), ``missing``
    (in the model, not the file) and ``unexpected`` (in the file, not the model).
    """
    source = read_state_dict(path)
    target = model.state_dict()
    loaded = [k for k in source if k in target and source[k].shape == target[k].shape]
    report = {
        "loaded": loaded,
        "skipped": [k for k in source if k in target and source[k].shape != target[k].shape],
        "missing": [k for k in target if k not in source],
        "unexpected": [k for k in source if k not in target],
    }
    if not loaded:
        raise CheckpointError(f"no tensor in {path} matches the model; is it a checkpoint of another architecture?")
    model.load_state_dict({k: source[k] for k in loaded}, strict=False)
    if report["skipped"]:
        warnings.warn(
            f"{path}: skipped {len(report['skipped'])} tensors whose shape differs from the model "
            f"(kept freshly initialised): {', '.join(report['skipped'])}",
            stacklevel=2,
        )
    for kind in ("missing", "unexpected"):
        if report[kind]:
            warnings.warn(f"{path}: {len(report[kind])} {kind} tensors, e.g. {report[kind][0]}", stacklevel=2)
    return report
