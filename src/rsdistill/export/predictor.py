"""Any model file as a predictor on new images, preprocessed exactly as in training.

A run directory or ``model.pt`` runs in PyTorch, an exported file (``model.onnx``,
``model.int8.onnx``) in its runtime; both in fp32. Images go through the data layer's
own decoder (``decode_images``: Pillow, RGB, the training resize), then the model's
normalisation, chunk by chunk, so any number of inputs fits in memory. An image that
cannot be decoded is skipped and reported, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from rsdistill.data.decode import RESAMPLE, decode_images, default_workers
from rsdistill.data.inputs import InputGroup, count_inputs
from rsdistill.models import load_model
from rsdistill.runtime.checkpoint import resolve_model_path
from rsdistill.runtime.precision import Precision, resolve_precision, torch_threads
from rsdistill.errors import CheckpointError, ConfigError, DataError
from rsdistill.evaluation import predict
from rsdistill.evaluation.backends import Backend, TorchBackend
from rsdistill.evaluation.predictions import prediction_rows
from rsdistill.export.contract import check_single_resize, normalizer_from_meta
from rsdistill.export.formats import format_for_file

# Files decoded per step: bounds memory on huge inputs, large enough that worker
# processes have work to share.
DECODE_CHUNK = 1024
# Below this many inputs no progress bar is drawn (it would flash and vanish).
PROGRESS_FROM = 256


@dataclass
class LoadedModel:
    backend: Backend
    meta: dict
    file: Path
    precision: Precision
    threads: int


def open_model(path: str | Path, device: str | None = None, threads: int = 0) -> LoadedModel:
    """A run directory, model.pt or exported file, ready to predict in fp32."""
    fmt = format_for_file(path)
    if fmt is None:
        model_file = resolve_model_path(path)
        model, meta = load_model(model_file)
        check_single_resize(meta)
        return LoadedModel(TorchBackend(model.float().eval()), meta, model_file,
                           resolve_precision("fp32", device or "auto"), threads)
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(f"exported model {file} does not exist")
    backend = fmt.load(file, threads)
    check_resize(backend.meta, file)
    return LoadedModel(backend, backend.meta, file, resolve_precision("fp32", device or "cpu"), threads)


def check_resize(meta: dict, file: Path) -> None:
    """An exported file that names another resize filter than this data layer's was made
    by a different rsdistill; feeding it our resize would silently change its inputs."""
    filter_name = (meta.get("preprocessing") or {}).get("resize_filter")
    if filter_name is not None and filter_name != RESAMPLE.name.lower():
        raise ConfigError(f"{file} expects images resized with {filter_name}, but this rsdistill "
                          f"resizes with {RESAMPLE.name.lower()}; use the rsdistill version that "
                          "exported it")


@dataclass
class Predictions:
    rows: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"file", "reason"}

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.skipped)


def predict_inputs(loaded: LoadedModel, groups: list[InputGroup], top_k: int = 1,
                   batch_size: int = 64, workers: int | None = None,
                   progress: bool = True) -> Predictions:
    """Top-k predictions for every readable input; unreadable ones are listed in ``skipped``.

    Raises DataError when not a single input could be read.
    """
    size = int(loaded.meta["image_size"])
    classes = list(loaded.meta["classes"])
    to_input = normalizer_from_meta(loaded.meta)
    model = loaded.backend.prepare(loaded.precision)
    workers = default_workers() if workers is None else workers
    out = Predictions()
    total = count_inputs(groups)
    with tqdm(total=total, desc="predicting", unit="img",
              disable=None if progress and total >= PROGRESS_FROM else True) as bar, \
            torch_threads(loaded.threads):
        for group in groups:
            for start in range(0, len(group.files), DECODE_CHUNK):
                files = group.files[start:start + DECODE_CHUNK]
                names = group.names[start:start + DECODE_CHUNK]
                decoded = decode_images(group.source, files, (size,), workers)
                reasons = dict(decoded.errors)
                out.skipped += [{"file": n, "reason": reasons.get(f, "unreadable")}
                                for f, n, ok in zip(files, names, decoded.ok) if not ok]
                if decoded.ok.any():
                    images = torch.from_numpy(decoded.arrays[size][decoded.ok])
                    logits = predict(model, images, to_input, loaded.precision, batch_size=batch_size)
                    kept = [n for n, ok in zip(names, decoded.ok) if ok]
                    out.rows += prediction_rows(kept, logits, classes, top_k)
                bar.update(len(files))
    if not out.rows:
        first = out.skipped[0]
        raise DataError(f"none of the {out.total} input image(s) could be read (first: {first['file']}: "
                        f"{first['reason']}); nothing was written")
    return out
