"""Loading a local state dict into a freshly built model, tolerating a new classifier.

Fine-tuning a teacher trained on one dataset for another changes only the classifier
shape, so a classifier of another shape is skipped (with a warning) instead of failing
the load. Weights that do not cover the rest of the model are an error: training a
half-loaded or silently from-scratch model would be worse than stopping.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from rsdistill.errors import CheckpointError, ConfigError
from rsdistill.io import load_failure_reason
from rsdistill.models.common import classifier_layer
from rsdistill.runtime.checkpoint import load_tensors_only

# Training checkpoints often wrap the weights; these are the keys we look under.
_WRAPPER_KEYS = ("model", "state_dict")
# DataParallel/DDP and torch.compile prefix every parameter name.
_NAME_PREFIXES = ("module.", "_orig_mod.")
_COUNTER = "num_batches_tracked"


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


def _read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str | None]:
    """The tensors of ``path`` and, for an rsdistill model file, the model its meta names."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"pretrained checkpoint not found: {file}")
    try:
        obj = load_tensors_only(file)
    except Exception as exc:  # torch raises many types for corrupt/unsafe files
        raise _load_error(file, exc) from None
    meta = obj.get("meta") if isinstance(obj, dict) else None
    made_for = meta.get("model") if isinstance(meta, dict) else None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file} does not hold a state dict (found {type(obj).__name__})")
    tensors = {_strip_prefixes(str(k)): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{file} holds no tensors; expected a model state dict")
    return tensors, made_for if isinstance(made_for, str) else None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict (bare, or under ``"model"``/``"state_dict"``) from ``path``."""
    return _read(path)[0]


def _classifier_keys(model: nn.Module) -> set[str]:
    """The state-dict names of the classifier: the only part a new class count replaces."""
    try:
        head = classifier_layer(model)
    except ConfigError:  # no classifier found: every tensor must then be covered
        return set()
    name = next((n for n, m in model.named_modules() if m is head), None)
    if name is None:
        return set()
    return {f"{name}.{k}" if name else k for k in head.state_dict()}


def _counter(key: str) -> bool:
    # BatchNorm's step counters carry no learned weight; every BN model has the same names.
    return key.endswith(_COUNTER)


def _refuse_foreign(path, model_name: str, made_for: str | None, uncovered: list[str],
                    foreign: list[str], total: int) -> None:
    if made_for is not None and made_for != model_name:
        raise CheckpointError(f"{path} is a model file of {made_for}, not {model_name}: pass "
                              f"weights of {model_name} to --pretrained, or --model {made_for}")
    parts = []
    if uncovered:
        parts.append(f"{len(uncovered)} of the model's {total} tensors are missing from it or "
                     f"of another shape (e.g. {uncovered[0]})")
    if foreign:
        parts.append(f"it holds {len(foreign)} tensors the model has not (e.g. {foreign[0]})")
    raise CheckpointError(f"{path} does not hold weights of {model_name}: {'; '.join(parts)}; "
                          f"pass a checkpoint of {model_name} (only its classifier may differ) "
                          "to --pretrained, or train without it")


def load_pretrained(model: nn.Module, path: str | os.PathLike,
                    model_name: str = "this model") -> dict[str, list[str]]:
    """Copy the tensors of ``path`` into ``model``; they must cover every weight of the
    model (all but the classifier, which is kept freshly initialised when its shape
    differs) and hold nothing the model has not, else nothing is loaded.

    Returns the names that were ``loaded``, ``skipped`` (classifier of another shape),
    ``missing`` (in the model, not the file) and ``unexpected`` (in the file, not the model).
    """
    source, made_for = _read(path)
    target = model.state_dict()
    loaded = [k for k in source if k in target and source[k].shape == target[k].shape]
    report = {
        "loaded": loaded,
        "skipped": [k for k in source if k in target and source[k].shape != target[k].shape],
        "missing": [k for k in target if k not in source],
        "unexpected": [k for k in source if k not in target],
    }
    # Matching BN counters alone used to pass for a load: weights are what must match.
    classifier = _classifier_keys(model)
    have = set(loaded)
    uncovered = [k for k in target if k not in have and k not in classifier and not _counter(k)]
    foreign = [k for k in report["unexpected"] if not _counter(k)]
    if uncovered or foreign:
        total = sum(not _counter(k) for k in target)
        _refuse_foreign(path, model_name, made_for, uncovered, foreign, total)
    model.load_state_dict({k: source[k] for k in loaded}, strict=False)
    if report["skipped"]:
        warnings.warn(
            f"{path}: skipped {len(report['skipped'])} tensors whose shape differs from the model "
            f"(kept freshly initialised): {', '.join(report['skipped'])}",
            stacklevel=2,
        )
    return report
