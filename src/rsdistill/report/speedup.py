"""Teacher vs student inference speed, measured side by side in one process.

Timing each model in its own run mixes thread counts and machine loads (a teacher
timed alone with two threads, students timed in worker processes while another seed
trained). Here both models run in the same process, with the same thread count, in
interleaved rounds (:func:`~rsdistill.evaluation.timing.interleaved_latency`), once in
PyTorch eager and once in ONNX Runtime; the machine's load is recorded next to them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rsdistill.models import load_model
from rsdistill.runtime.checkpoint import resolve_model_path
from rsdistill.runtime.environment import cpu_name, machine_load
from rsdistill.runtime.precision import resolve_precision, torch_threads
from rsdistill.errors import ConfigError
from rsdistill.evaluation.timing import interleaved_latency
from rsdistill.export.formats import EXPORT_FORMATS
from rsdistill.models import count_flops, count_parameters

log = logging.getLogger(__name__)


def _onnx_backend(model, meta: dict, threads: int):
    fmt = EXPORT_FORMATS.get("onnx")
    size = int(meta["image_size"])
    blob = fmt.serialize(model, meta, count_parameters(model), count_flops(model, size), None)
    return fmt.load(blob, threads)


def measure_speedup(teacher: str | Path, student: str | Path, *, threads: int = 1,
                    rounds: int = 20, runs_per_round: int = 10) -> dict:
    """Batch-1 latency of ``teacher`` and ``student`` (run directories or model files)
    side by side, in eager PyTorch and in ONNX Runtime, and the teacher/student ratio."""
    if threads < 1:
        raise ConfigError(f"timing threads must be >= 1, got {threads}")
    files = {"teacher": resolve_model_path(teacher), "student": resolve_model_path(student)}
    loaded = {name: load_model(f) for name, f in files.items()}
    fp32 = resolve_precision("fp32", "cpu")
    result = {"threads": threads, "cpu": cpu_name(), "load_before": machine_load(),
              "rounds": rounds, "runs_per_round": runs_per_round,
              "models": {name: {"file": str(f), "model": loaded[name][1]["model"],
                                "image_size": int(loaded[name][1]["image_size"])}
                         for name, f in files.items()}}
    shapes = {name: (3, meta["image_size"], meta["image_size"]) for name, (_, meta) in loaded.items()}
    with torch_threads(threads):
        eager = {name: (fp32.prepare_model(model.float().eval()), shapes[name])
                 for name, (model, _) in loaded.items()}
        result["eager"] = _with_ratio(interleaved_latency(eager, fp32, rounds=rounds,
                                                          runs_per_round=runs_per_round))
        try:
            ort = {name: (_onnx_backend(model.float().eval(), meta, threads), shapes[name])
                   for name, (model, meta) in loaded.items()}
        except ConfigError as exc:  # onnx/onnxruntime not installed: eager only
            log.info("ONNX Runtime timing skipped: %s", exc)
            result["onnxruntime"] = None
        else:
            result["onnxruntime"] = _with_ratio(interleaved_latency(
                ort, fp32, rounds=rounds, runs_per_round=runs_per_round))
    result["load_after"] = machine_load()
    return result


def _with_ratio(timings: dict[str, dict]) -> dict:
    t, s = timings["teacher"]["latency_ms_p50"], timings["student"]["latency_ms_p50"]
    return {**timings, "speedup": t / s if s > 0 else float("inf")}


def describe(result: dict) -> str:
    """One line: the ratios, the thread count, the machine and its load."""
    parts = []
    for key, label in (("eager", "PyTorch eager"), ("onnxruntime", "ONNX Runtime")):
        r = result.get(key)
        if r:
            parts.append(f"{label} {r['teacher']['latency_ms_p50']:.3f} vs "
                         f"{r['student']['latency_ms_p50']:.3f} ms = {r['speedup']:.1f}x")
    load = "unknown" if result["load_before"] is None else \
        f"{result['load_before']:.2f} before, {result['load_after']:.2f} after"
    threads = result["threads"]
    return (f"teacher vs student, batch 1, side by side: {'; '.join(parts)} "
            f"({threads} thread{'s' if threads != 1 else ''}, {result['cpu']}, load {load})")
