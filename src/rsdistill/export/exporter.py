"""``export_checkpoint``: checkpoint -> exported file, written only after parity passes.

The file is serialized in memory, loaded back by the format's own runtime and run on
the run's test images next to the PyTorch model; only a file that reproduces the
logits (and every predicted class) is written, atomically. A failed check therefore
leaves nothing behind, not even a temporary file.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from rsdistill.data.module import DataConfig, prepare_data
from rsdistill.models import load_model
from rsdistill.errors import ConfigError, ExportError
from rsdistill.export.contract import normalizer_from_meta
from rsdistill.export.formats import EXPORT_FORMATS
from rsdistill.export.parity import Parity, check_parity, random_images
from rsdistill.io import atomic_write_bytes
from rsdistill.runtime.locks import run_dir_lock_of
from rsdistill.models import count_flops, count_parameters

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    path: Path
    format: str
    opset: int | None
    parity: Parity
    size_bytes: int


def parity_inputs(meta: dict, data_cfg: DataConfig | None, split: str = "test"
                  ) -> tuple[torch.Tensor, str]:
    """The run's ``split`` images, or seeded noise when the data is unknown."""
    if data_cfg is None:
        return random_images(int(meta["image_size"])), "random inputs (no config.yaml beside the checkpoint)"
    cfg = dataclasses.replace(data_cfg, image_size=int(meta["image_size"]))
    data = prepare_data(cfg, progress=False)
    if list(data.classes) != list(meta["classes"]):
        raise ConfigError(f"the checkpoint was trained on other classes than {cfg.dataset} provides here")
    return data.dataset.images[data.split[split]], f"{split} images of {data.dataset.name}"


def export_checkpoint(model_file: Path, format_name: str, out: Path | None = None,
                      opset: int | None = None, data_cfg: DataConfig | None = None) -> ExportResult:
    fmt = EXPORT_FORMATS.get(format_name)
    out = Path(out) if out is not None else model_file.parent / f"model{fmt.suffix}"
    if out.suffix.lower() != fmt.suffix:
        # evaluate recognises an exported model by its suffix.
        raise ConfigError(f"--out for format {fmt.name} must end in {fmt.suffix}, got {out}")
    # Beside a run's model.pt: not while another rsdistill process writes that run.
    with run_dir_lock_of(out):
        return _export(model_file, fmt, out, opset, data_cfg)


def _export(model_file: Path, fmt, out: Path, opset: int | None,
            data_cfg: DataConfig | None) -> ExportResult:
    model, meta = load_model(model_file)
    model = model.float().eval()
    size = int(meta["image_size"])
    blob = fmt.serialize(model, meta, count_parameters(model), count_flops(model, size),
                         opset if opset is not None else fmt.default_opset)
    images, source = parity_inputs(meta, data_cfg)
    parity = check_parity(model, fmt.load(blob, 0), images, normalizer_from_meta(meta), source)
    if not parity.ok:
        raise ExportError(f"{fmt.name} export of {model_file} failed the parity check "
                          f"({parity.describe()}); nothing was written")
    atomic_write_bytes(out, blob)
    return ExportResult(out, fmt.name, opset if opset is not None else fmt.default_opset,
                        parity, len(blob))
