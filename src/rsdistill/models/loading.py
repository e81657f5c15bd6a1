"""A model rebuilt from its model file: the architecture named in its meta, its weights."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from rsdistill.errors import CheckpointError
from rsdistill.models.lowrank import apply_low_rank
from rsdistill.models.registry import build_model
from rsdistill.runtime.checkpoint import read_model_file


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
    except RuntimeError as exc:
        raise CheckpointError(f"{file}: weights do not fit model {meta['model']!r}: "
                              f"{str(exc).splitlines()[0]}") from None
    return model, meta
