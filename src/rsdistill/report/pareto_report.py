"""The accuracy–latency Pareto front of a Pareto study: table, figure, report.

Every student architecture (and the teacher, the reference point) is exported to ONNX in
memory and timed at batch 1 in ONNX Runtime, all in one process, with the same thread
count, in interleaved rounds, so the latencies compare fairly. A point is on the front when
no other point is both faster and more accurate.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rsdistill.evaluation.timing import interleaved_latency
from rsdistill.experiments.stats import row_paired, write_csv
from rsdistill.experiments.teacher import teacher_summary
from rsdistill.export.formats import EXPORT_FORMATS, format_for_file
from rsdistill.io import atomic_write_text, write_json
from rsdistill.models import count_flops, count_parameters, load_model
from rsdistill.report import plots
from rsdistill.report.blocks import (
    PAIRED_NOTE,
    Block,
    paired_cell,
    pct,
    pm_of,
    seeds_text,
    to_html,
    to_markdown,
    verdict_cell,
)
from rsdistill.report.curves import curve_blocks
from rsdistill.runtime.environment import cpu_name, machine_load
from rsdistill.runtime.precision import resolve_precision
from rsdistill.runtime.rundir import (
    FIGURES_DIR,
    MODEL_FILE,
    PARETO_CSV,
    PARETO_HTML,
    PARETO_MD,
    PARETO_RESULTS,
)

log = logging.getLogger(__name__)

TEACHER = "teacher"
# The latency budgets a deployer asks about (ms); the report lists those within the
# students' range.
BUDGETS_MS = (0.25, 0.5, 1, 2, 3, 4, 6, 10, 20, 50)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (latency, accuracy) that no other point beats on both: each is
    more accurate than every faster point."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _ort(model_file: Path, threads: int):
    exported = format_for_file(model_file)
    if exported is not None:  # a model.onnx or model.int8.onnx is timed as it is
        backend = exported.load(Path(model_file), threads)
        return backend, int(backend.meta["image_size"])
    model, meta = load_model(model_file)
    model = model.float().eval()
    fmt = EXPORT_FORMATS.get("onnx")
    size = int(meta["image_size"])
    blob = fmt.serialize(model, meta, count_parameters(model), count_flops(model, size), None)
    return fmt.load(blob, threads), size


def time_models(files: dict[str, Path], threads: int = 1, rounds: int = 30,
                runs_per_round: int = 10) -> dict:
    """Batch-1 ONNX Runtime latency of every model file, side by side in this process."""
    predictors = {}
    for name, file in files.items():
        backend, size = _ort(file, threads)
        predictors[name] = (backend, (3, size, size))
    before = machine_load()
    timed = interleaved_latency(predictors, resolve_precision("fp32", "cpu"), rounds=rounds,
                                runs_per_round=runs_per_round)
    return {"threads": threads, "cpu": cpu_name(), "load_before": before,
            "load_after": machine_load(), "rounds": rounds, "runs_per_round": runs_per_round,
            "latency_ms": {name: t["latency_ms_p50"] for name, t in timed.items()}}


def build_pareto(rows: list[dict], teacher: str | None, threads: int = 1) -> dict:
    """Rows with their latency and front membership, the teacher's point, the timing."""
    files = {f"{r['model']}@{r['image_size']}": Path(r["run"]) / MODEL_FILE for r in rows}
    if teacher:
        files[TEACHER] = Path(teacher)
    timing = time_models(files, threads)
    for r in rows:
        r["latency_ms"] = timing["latency_ms"][f"{r['model']}@{r['image_size']}"]
    front = pareto_front([(r["latency_ms"], r["accuracy_mean"]) for r in rows])
    for i, r in enumerate(rows):
        r["on_front"] = i in front
    ref = None
    if teacher:
        summary = teacher_summary(teacher) or {}
        ref = {**summary, "latency_ms": timing["latency_ms"][TEACHER], "file": str(teacher)}
    return {"rows": rows, "teacher": ref, "timing": timing}


def _start(r: dict) -> str:
    return "ImageNet" if r.get("pretrained") else "random"


def budgets(rows: list[dict]) -> list[float]:
    """The budgets from the fastest student's latency up to the first at or above the
    slowest one's."""
    lat = [r["latency_ms"] for r in rows]
    inside = [b for b in BUDGETS_MS if min(lat) <= b < max(lat)]
    above = [b for b in BUDGETS_MS if b >= max(lat)][:1]
    return inside + above


def budget_blocks(rows: list[dict]) -> list[Block]:
    """For each latency budget: the most accurate student within it (the deployer's pick)."""
    table = []
    for b in budgets(rows):
        fits = [r for r in rows if r["latency_ms"] <= b]
        if not fits:
            continue
        r = max(fits, key=lambda r: (r["accuracy_mean"], -r["latency_ms"]))
        table.append([f"≤ {b:g}", f"{r['model']}@{r['image_size']}", r["kind"], _start(r),
                      pm_of(r, "accuracy"), f"{r['latency_ms']:.3f}"])
    if not table:
        return []
    return [Block("h2", "The pick per latency budget"),
            Block("table", header=["budget ms", "student", "training", "start", "accuracy %",
                                   "latency ms"], rows=table),
            Block("p", "The most accurate student whose batch-1 latency fits the budget "
                       "(mean test accuracy; see the paired Δ above before preferring a "
                       "distilled student to its scratch twin).")]


def pareto_curve_panels(rows: list[dict]) -> list[tuple[str, list[tuple[str, list[Path]]]]]:
    cells: dict[str, dict[str, list[Path]]] = {}
    for r in rows:
        title = f"{r['model']}@{r['image_size']}" + (" (ImageNet start)" if r.get("pretrained") else "")
        cells.setdefault(title, {})[r["kind"]] = [Path(p) for p in r.get("runs", r["run"]).split(";")]
    return [(title, [(k, kinds[k]) for k in ("scratch", "distilled") if k in kinds])
            for title, kinds in cells.items()]


def write_pareto_report(out: Path, result: dict, data_name: str, epochs: int) -> Path:
    out = Path(out)
    rows, teacher, timing = result["rows"], result["teacher"], result["timing"]
    write_json(out / PARETO_RESULTS, result)
    write_csv(out / PARETO_CSV, rows)
    plots.pareto(rows, teacher, out / FIGURES_DIR / "pareto.png", budgets(rows))
    seeds = max(r["seeds"] for r in rows)
    table = [[r["model"], str(r["image_size"]), r["kind"], _start(r), str(r.get("epochs", epochs)),
              f"{r['params']:,}", f"{r['latency_ms']:.3f}", pm_of(r, "accuracy"),
              paired_cell(row_paired(r, "paired_")), verdict_cell(row_paired(r, "paired_")),
              "yes" if r["on_front"] else ""]
             for r in sorted(rows, key=lambda r: r["latency_ms"])]
    if teacher:
        table.append([f"teacher {teacher.get('model', '')}", str(teacher.get("image_size") or "–"),
                      "reference", "–", "–",
                      f"{teacher['params']:,}" if teacher.get("params") else "–",
                      f"{teacher['latency_ms']:.3f}",
                      pct(teacher["accuracy"]) if "accuracy" in teacher else "–", "–", "–", ""])
    load = (f"{timing['load_before']:.2f} before, {timing['load_after']:.2f} after"
            if timing["load_before"] is not None else "unknown")
    teachers = sorted({r["teacher"] for r in rows if r.get("teacher")})
    blocks = [
        Block("h1", f"Accuracy vs latency: {data_name}"),
        Block("p", (f"Every student trained from scratch (α = 0) and distilled, each pair with "
                    f"the same batches, epochs and seeds (test accuracy, {seeds_text(seeds)}). "
                    "Start “ImageNet”: the student began from its ImageNet weights, so its "
                    "scratch member is the pretrained student fine-tuned without a teacher; "
                    "“random”: trained from random weights. Latency: batch 1, ONNX Runtime, "
                    f"{timing['threads']} thread{'s' if timing['threads'] > 1 else ''}, every "
                    f"model timed in one process in {timing['rounds']} interleaved rounds on "
                    f"{timing['cpu']} (load {load}). On the front: no other student is both "
                    "faster and more accurate.")),
        Block("table", header=["model", "input px", "training", "start", "epochs", "parameters",
                               "latency ms (ORT, batch 1)", "accuracy %",
                               "paired Δ vs scratch (pt)", "beyond noise (95 % CI)",
                               "on the front"],
              rows=table),
        Block("p", PAIRED_NOTE + (" Teachers: " + "; ".join(teachers) + "." if len(teachers) > 1
                                  else "")),
        *budget_blocks(rows),
        Block("img", f"{FIGURES_DIR}/pareto.png", header=["accuracy vs batch-1 latency"]),
        *curve_blocks(pareto_curve_panels(rows), out / FIGURES_DIR),
    ]
    atomic_write_text(out / PARETO_MD, to_markdown(blocks))
    atomic_write_text(out / PARETO_HTML, to_html(blocks))
    return out / PARETO_MD
