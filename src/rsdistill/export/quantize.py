"""``quantize_onnx``: an fp32 ONNX model -> int8, by ONNX Runtime static quantisation.

QDQ format with per-channel int8 weights and int8 (S8S8, ONNX Runtime's quantisation
guide's first choice for CNNs on CPU,
https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html) or uint8
activations (U8S8); by default whichever runs faster on this machine, measured once
(``int8_probe.py``: S8S8 is slower than fp32 on AVX2 CPUs). The
graph is first put through ``quant_pre_process`` (shape inference and ONNX Runtime's
basic optimisations), which the same guide recommends before quantising.

Activation ranges come from training images drawn with a fixed seed and fed exactly as
the file's preprocessing contract says, so the calibration sees what the deployed model
sees. The int8 graph is then run next to the fp32 one on the test split; only a graph
whose accuracy is within ``max_drop`` points is written (atomically), otherwise nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from typing import NamedTuple
from pathlib import Path

import torch

from rsdistill.data.module import DataConfig, PreparedData, prepare_data
from rsdistill.runtime.checkpoint import resolve_model_path
from rsdistill.runtime.locks import run_dir_lock_of
from rsdistill.runtime.precision import resolve_precision
from rsdistill.errors import ConfigError, ExportError
from rsdistill.evaluation import classification_metrics, interleaved_latency, predict
from rsdistill.export.contract import normalizer_from_meta
from rsdistill.export.exporter import export_checkpoint
from rsdistill.export.int8_probe import choose_activations
from rsdistill.export.ort_backend import OnnxRuntimeBackend, OrtRunError, import_optional
from rsdistill.export.qdq import (  # noqa: F401 (CalibrationImages: part of this module's API)
    ACTIVATION_TYPES, CALIBRATION_METHODS, CalibrationImages, quantize_graph,
)
from rsdistill.io import atomic_write_bytes

INT8_SUFFIX = ".int8.onnx"


class QuantizationError(ExportError):
    """The int8 model loses more accuracy than allowed (nothing is written)."""


@dataclasses.dataclass
class QuantizeRequest:
    calibration_images: int = 300
    method: str = "minmax"
    seed: int = 0
    # auto: int8 or uint8, whichever runs faster on this machine (export/int8_probe.py).
    activations: str = "auto"
    max_drop: float = 1.0  # percentage points of test accuracy
    allow_drop: bool = False

    def __post_init__(self) -> None:
        # Checked on construction, before any model or data is read.
        if self.calibration_images < 1:
            raise ConfigError(f"--calibration-images must be >= 1, got {self.calibration_images}")
        CALIBRATION_METHODS.get(self.method)
        if self.activations != "auto":
            ACTIVATION_TYPES.get(self.activations)
        if not math.isfinite(self.max_drop):
            raise ConfigError(f"--max-drop must be a number of accuracy points, got {self.max_drop}")


def calibration_indices(train: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """``count`` training indices drawn without replacement by ``seed`` (all if fewer)."""
    order = torch.randperm(train.numel(), generator=torch.Generator().manual_seed(seed))
    return train[order[:count]]


def with_metadata(graph: bytes, props: dict[str, str]) -> bytes:
    """``graph`` with exactly ``props`` as its metadata, checked by onnx.checker."""
    onnx = import_optional("onnx")
    proto = onnx.load_from_string(graph)
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "rsdistill"
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # the checker raises several types, all with a first line worth showing
        raise ExportError(f"the int8 model fails onnx.checker: {str(exc).splitlines()[0][:200]}") from None
    return proto.SerializeToString()


def default_int8_path(fp32_file: Path) -> Path:
    return fp32_file.with_name(fp32_file.name[:-len(".onnx")] + INT8_SUFFIX)


def fp32_onnx_path(source: Path) -> tuple[Path, Path | None]:
    """(fp32 ONNX file, the checkpoint it comes from or None) for a .onnx file, a run
    directory or a model.pt; the file may not exist yet."""
    if source.suffix.lower() == ".onnx":
        if not source.is_file():
            raise ConfigError(f"ONNX model {source} does not exist")
        return source, None
    model_file = resolve_model_path(source)
    return model_file.with_suffix(".onnx"), model_file


def ensure_fp32_onnx(onnx_file: Path, model_file: Path | None, data_cfg: DataConfig | None) -> str | None:
    """Exports ``model_file`` to ``onnx_file`` when a run has none yet; returns the parity
    line of that export, or None when the file was there."""
    if model_file is None:
        return None
    if onnx_file.is_file():
        if onnx_file.stat().st_mtime < model_file.stat().st_mtime:
            raise ConfigError(f"{onnx_file} is older than {model_file}; export it again with "
                              f"'rsdistill export {model_file.parent}' or pass the .onnx file")
        return None
    return export_checkpoint(model_file, "onnx", out=onnx_file, data_cfg=data_cfg).parity.describe()


class Attempt(NamedTuple):
    """One activation type tried: its record, graph (without and with metadata), the
    session that scored it (kept for the latency), test scores and accuracy drop in pt."""
    record: dict
    graph: bytes
    blob: bytes
    backend: OnnxRuntimeBackend
    after: dict
    drop: float


def _test_scores(backend: OnnxRuntimeBackend, data: PreparedData, to_input) -> dict:
    fp32 = resolve_precision("fp32", "cpu")
    idx = data.split["test"]
    logits = predict(backend.prepare(fp32), data.dataset.images[idx], to_input, fp32)
    m = classification_metrics(data.dataset.labels[idx], logits.argmax(1), data.classes)
    return {"accuracy": m["accuracy"], "f1_macro": m["f1_macro"]}


def quantize_onnx(source: Path, request: QuantizeRequest, data_cfg: DataConfig,
                  out: Path | None = None, threads: int = 1, latency_runs: int = 100,
                  write: bool = True) -> dict:
    """Quantise, check on the test split, time both side by side, then write (if ``write``).

    Returns the record printed by ``rsdistill quantize`` (and the int8 bytes under "blob").
    """
    fp32_file, _ = fp32_onnx_path(Path(source).expanduser())
    target = Path(out).expanduser() if out is not None else default_int8_path(fp32_file)
    # Beside a run's model.pt: not while another rsdistill process writes that run.
    with run_dir_lock_of(target) if write else contextlib.nullcontext():
        return _quantize(source, request, data_cfg, out, threads, latency_runs, write)


def _quantize(source: Path, request: QuantizeRequest, data_cfg: DataConfig, out: Path | None,
              threads: int, latency_runs: int, write: bool) -> dict:
    fp32_file, model_file = fp32_onnx_path(Path(source).expanduser())
    out = Path(out).expanduser() if out is not None else default_int8_path(fp32_file)
    # Checked before a missing fp32 file is exported, so a typo writes nothing at all.
    if out.suffix.lower() != ".onnx" or out.resolve() == fp32_file.resolve():
        raise ConfigError(f"--out must end in .onnx and differ from the fp32 model {fp32_file}, got {out}")
    exported = ensure_fp32_onnx(fp32_file, model_file, data_cfg)
    fp32_backend = OnnxRuntimeBackend(fp32_file, threads)
    meta = fp32_backend.meta
    if meta.get("quantization"):
        raise ConfigError(f"{fp32_file} is already quantized; pass the fp32 model.onnx")
    data = prepare_data(dataclasses.replace(data_cfg, image_size=int(meta["image_size"])), progress=False)
    if list(data.classes) != list(meta["classes"]):
        raise ConfigError(f"{fp32_file} was trained on other classes than {data_cfg.dataset} provides here")
    to_input = normalizer_from_meta(meta)
    calib = calibration_indices(data.split["train"], request.calibration_images, request.seed)
    reader = CalibrationImages(data.dataset.images[calib], to_input, fp32_backend.input_name)
    ort = import_optional("onnxruntime")
    fp32_props = dict(fp32_backend.session.get_modelmeta().custom_metadata_map)
    before = _test_scores(fp32_backend, data, to_input)
    fp32_graph = fp32_file.read_bytes()

    def attempt(activations: str, why: str) -> Attempt:
        record = {"scheme": "static", "format": "QDQ", "activations": activations,
                  "activations_why": why, "weights": "int8",
                  "per_channel": True, "reduce_range": False, "method": request.method,
                  "calibration_images": int(calib.numel()), "calibration_split": "train",
                  "seed": request.seed, "preprocess": "quant_pre_process",
                  "onnxruntime": ort.__version__, "source": fp32_file.name}
        graph = quantize_graph(fp32_graph, reader, request.method, activations)
        blob = with_metadata(graph, {**fp32_props, "quantization": json.dumps(record)})
        backend = OnnxRuntimeBackend(blob, threads)
        after = _test_scores(backend, data, to_input)
        return Attempt(record, graph, blob, backend, after,
                       100 * (before["accuracy"] - after["accuracy"]))

    if request.activations == "auto":
        activations, why = choose_activations()
    else:
        activations, why = request.activations, "asked for"
    other = next(a for a in ACTIVATION_TYPES.names() if a != activations)
    try:
        kept, failed = attempt(activations, why), None
    except OrtRunError as exc:
        if request.activations != "auto":
            raise QuantizationError(
                f"ONNX Runtime cannot run the int8 model of {fp32_file} with {activations} "
                f"activations here ({exc.reason}); nothing was written; try --activations "
                f"{other}") from None
        kept, failed = None, exc
    if request.activations == "auto" and (
            kept is None or kept.drop > request.max_drop and not request.allow_drop):
        # The faster type cannot run here or loses too much: the other one, if it runs
        # (and keeps within the bound, when the first one ran).
        note = (f"{why}; but ONNX Runtime cannot run the {activations} graph here "
                f"({failed.reason}), so {other}" if kept is None else
                f"{why}; but {activations} dropped {kept.drop:.2f} pt here, more than "
                f"--max-drop {request.max_drop:g}, so {other}")
        try:
            retry = attempt(other, note)
        except OrtRunError as exc:
            if kept is None:
                raise QuantizationError(
                    f"ONNX Runtime cannot run the int8 model of {fp32_file} with either "
                    f"activation type here ({failed.reason}; {exc.reason}); nothing was "
                    "written; deploy the fp32 model.onnx") from None
            retry = None
        if retry is not None and (kept is None or retry.drop <= request.max_drop):
            kept = retry
    record, graph, blob, int8_backend, after, drop = kept
    size = int(meta["image_size"])
    shape = (3, size, size)
    latency = interleaved_latency({"fp32": (fp32_backend, shape), "int8": (int8_backend, shape)},
                                  resolve_precision("fp32", "cpu"), rounds=latency_runs)
    result = {
        "source": str(fp32_file), "out": str(out), "exported": exported, "quantization": record,
        "test_images": int(data.split["test"].numel()), "threads": fp32_backend.threads,
        "fp32": {**before, "bytes": fp32_file.stat().st_size, **latency["fp32"]},
        "int8": {**after, "bytes": len(blob), **latency["int8"]},
        "accuracy_drop_pt": drop, "max_drop_pt": request.max_drop, "written": False,
    }
    result["size_ratio"] = result["int8"]["bytes"] / result["fp32"]["bytes"]
    if drop > request.max_drop and not request.allow_drop:
        raise QuantizationError(
            f"int8 test accuracy {100 * after['accuracy']:.2f} % vs fp32 {100 * before['accuracy']:.2f} %: "
            f"a drop of {drop:.2f} pt, more than --max-drop {request.max_drop:g} pt; "
            "nothing was written; try another --calibration-method or more --calibration-images, "
            "or keep it anyway with --allow-drop")
    checked = {"split": "test", "images": result["test_images"], "accuracy_fp32": before["accuracy"],
               "accuracy_int8": after["accuracy"], "f1_macro_fp32": before["f1_macro"],
               "f1_macro_int8": after["f1_macro"]}
    # The check's outcome travels with the file; only metadata changes, not the graph.
    blob = with_metadata(graph, {**fp32_props, "quantization": json.dumps({**record, "checked": checked})})
    result["int8"]["bytes"] = len(blob)
    result["size_ratio"] = len(blob) / result["fp32"]["bytes"]
    if write:
        atomic_write_bytes(out, blob)
        result["written"] = True
    result["blob"] = blob
    return result
