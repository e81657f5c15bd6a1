"""A model rebuilt from its model file: the architecture named in its meta, its weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rsdistill.errors import CheckpointError, RsdistillError
from rsdistill.models.lowrank import apply_low_rank
from rsdistill.models.registry import MODELS, build_model
from rsdistill.runtime.checkpoint import read_model_file


def _fits(state: dict, template: dict) -> bool:
    return state.keys() == template.keys() and all(
        getattr(state[k], "shape", None) == template[k].shape for k in template)


def weights_are_for(state: dict, num_classes: int, image_size: int) -> str | None:
    """The registered model whose tensors ``state`` matches by name and shape, if any.
    Built on the meta device: nothing is allocated and no random number is drawn."""
    for name in MODELS.names():
        try:
            with torch.device("meta"):
                template = build_model(name, num_classes, image_size).state_dict()
        except (RsdistillError, ValueError, RuntimeError):
            continue
        if _fits(state, template):
            return name
    return None


def _misfit(file: Path, meta: dict, state: dict) -> CheckpointError:
    named = meta["model"]
    actual = weights_are_for(state, meta["num_classes"], meta["image_size"])
    if actual is not None:
        what = f"its weights are those of {actual}"
    else:
        what = "its weights fit no known model"
    return CheckpointError(f"{file} names model {named} but {what}: the file was edited or "
                           "damaged; use the model.pt its run wrote, or retrain")


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """``(model, meta)`` of a model.pt or a run directory holding one."""
    file, obj = read_model_file(path)
    meta = obj["meta"]
    model = build_model(meta["model"], meta["num_classes"], meta["image_size"])
    # A compressed checkpoint (rsdistill compress) replaced a layer by two; rebuild that
    # structure so its state dict fits.
    apply_low_rank(model, meta.get("low_rank"))
    try:
        model.load_state_dict(obj["model"])
    except RuntimeError:
        raise _misfit(file, meta, obj["model"]) from None
    return model, meta
