"""The int8 section of a sweep or comparison report (``--int8``): the best student, fp32
ONNX next to its int8 quantisation, over the same seeds as the table above it.

Each of the best setting's runs is quantised in memory with ``rsdistill quantize``'s
defaults (nothing is written into the runs except a missing fp32 ``model.onnx``, which
the quantiser exports first); the records are kept in ``int8.json`` beside the report.
Kept apart from the report builders so that it is one call for them.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from rsdistill.experiments.locate import best_of, best_sweep_runs  # noqa: F401 (the int8 section's choice)
from rsdistill.experiments.records import load_run_config
from rsdistill.export.quantize import QuantizeRequest, quantize_onnx
from rsdistill.io import write_json
from rsdistill.report.blocks import Block, pm
from rsdistill.runtime.rundir import INT8_FILE
THREADS = 1  # batch-1 latency of an edge deployment: one core


def best_compare_runs(results: dict) -> tuple[str, list[str]]:
    """(label, run paths) of the compared method with the best mean accuracy."""
    best = best_of(results["methods"])
    return best["method"], [r["run"] for r in results["rows"] if r["method"] == best["method"]]


def int8_records(base: Path, runs: list[str], request: QuantizeRequest,
                 latency_runs: int = 100) -> list[dict]:
    records = []
    for run in runs:
        run_dir = Path(base) / run
        result = quantize_onnx(run_dir, request, load_run_config(run_dir)[0], threads=THREADS,
                               latency_runs=latency_runs, write=False)
        result.pop("blob")
        records.append({"run": run, **{k: result[k] for k in
                                       ("fp32", "int8", "size_ratio", "accuracy_drop_pt", "quantization")}})
    return records


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def int8_blocks(label: str, records: list[dict]) -> list[Block]:
    rows = []
    for name in ("fp32", "int8"):
        acc = _mean_std([r[name]["accuracy"] for r in records])
        f1 = _mean_std([r[name]["f1_macro"] for r in records])
        kib = statistics.fmean(r[name]["bytes"] for r in records) / 1024
        lat = statistics.fmean(r[name]["latency_ms_p50"] for r in records)
        rows.append([f"best student ({label}), {name} ONNX", pm(*acc, len(records)), pm(*f1, len(records)), f"{kib:.1f}", f"{lat:.3f}"])
    q = records[0]["quantization"]
    drop = _mean_std([r["accuracy_drop_pt"] for r in records])
    ratio = statistics.fmean(r["size_ratio"] for r in records)
    speed = statistics.fmean(r["int8"]["latency_ms_p50"] / r["fp32"]["latency_ms_p50"] for r in records)
    text = (f"ONNX Runtime {q['onnxruntime']} static quantisation of each of the {len(records)} run(s): "
            f"{q['format']}, {q['activations']} activations and per-channel int8 weights, calibrated on "
            f"{q['calibration_images']} training images (seed {q['seed']}, {q['method']}); activation "
            f"type: {q.get('activations_why', 'asked for')}. Accuracy "
            f"drop {drop[0]:.2f}{f' ± {drop[1]:.2f}' if len(records) > 1 else ''} pt; file {ratio:.2f}× the fp32 file; batch-1 "
            f"latency {speed:.2f}× fp32 ({THREADS} thread, both models timed side by side, "
            f"p50 averaged over runs). Records in {INT8_FILE}.")
    return [Block("h2", "Int8 deployment"),
            Block("table", header=["model", "accuracy %", "macro F1 %", "file KiB",
                                   "latency ms (batch 1, ONNX Runtime)"], rows=rows),
            Block("p", text)]


def with_int8(blocks: list[Block], out_dir: Path, label: str, runs: list[str],
              request: QuantizeRequest | None = None) -> list[Block]:
    """``blocks`` with the int8 section before the figures; writes ``int8.json``."""
    records = int8_records(out_dir, runs, request or QuantizeRequest(allow_drop=True))
    write_json(Path(out_dir) / INT8_FILE, {"label": label, "runs": records})
    at = next((i for i, b in enumerate(blocks) if b.kind == "h2" and b.text == "Figures"), len(blocks))
    return blocks[:at] + int8_blocks(label, records) + blocks[at:]
