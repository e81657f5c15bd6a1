"""``comparison.md`` and ``comparison.html`` of a method comparison, from comparison.json.

Made of the sweep report's :class:`~rsdistill.report.sweep_report.Block` s and rendered by
its ``to_markdown``/``to_html``, so both reports look alike and the Markdown and HTML of
one never disagree.
"""

from __future__ import annotations

from pathlib import Path

from rsdistill.errors import RsdistillError
from rsdistill.experiments.compare import REFERENCE, SCRATCH
from rsdistill.experiments.stats import PAIRED_KEYS, row_paired
from rsdistill.io import atomic_write_text, read_json
from rsdistill.runtime.locks import run_dir_lock
from rsdistill.runtime.rundir import COMPARE_HTML, COMPARE_MD, COMPARE_RESULTS
from rsdistill.report import plots
from rsdistill.report.blocks import PAIRED_NOTE, Block, paired_cell, pm_of, seeds_text
from rsdistill.report.blocks import split_noise_note, to_html, to_markdown, verdict_cell
from rsdistill.report.curves import curve_blocks

HEADER = ["method", "accuracy %", "macro F1 %", "training s/epoch", "extra trainable params",
          "Δ accuracy vs kd (pt)", "Δ accuracy vs scratch (pt)",
          "vs kd beyond noise (95 % CI)", "paired Δ vs scratch (pt)", "beyond noise (95 % CI)"]
FIGURE = "compare_accuracy.png"


def signed_points(delta: float | None) -> str:
    return "–" if delta is None else f"{100 * delta:+.2f}"


def table_row(r: dict) -> list[str]:
    """One method's cells, every number formatted from comparison.json's values."""
    return [r["method"], pm_of(r, "accuracy"), pm_of(r, "f1_macro"),
            f"{r['seconds_per_epoch_mean']:.3f}",
            f"{r['extra_trainable_params']:,}", signed_points(r["delta_accuracy_vs_kd"]),
            signed_points(r["delta_accuracy_vs_scratch"]), verdict_cell(_paired(r, REFERENCE)),
            paired_cell(_paired(r, SCRATCH)), verdict_cell(_paired(r, SCRATCH))]


def _paired(r: dict, ref: str) -> dict | None:
    """The row's paired difference to method ``ref``; None for ``ref`` itself and for
    results written before it was."""
    return row_paired(r, f"paired_vs_{ref}_", ("seeds", *PAIRED_KEYS))


def build_compare_report(out_dir: Path) -> list[Block]:
    out_dir = Path(out_dir)
    results_file = out_dir / COMPARE_RESULTS
    if not results_file.is_file():
        raise RsdistillError(f"{out_dir} has no comparison.json; run 'rsdistill compare' into it")
    res = read_json(results_file)
    data, cfg, methods = res["data"], res["config"], res["methods"]
    train, compare = cfg["train"], cfg["compare"]
    teacher, student = res["teacher"], res["student"]
    sp = data["splits"]
    temperature = (f"T = {compare['temperature']:g}" if compare["temperature"] is not None
                   else "each method's default T (1 for dml, 4 otherwise)")
    blocks = [Block("h1", f"Method comparison: {data['dataset']}"), Block("p", (
        f"Dataset **{data['dataset']}**: {data['total']} images, {len(data['classes'])} classes, "
        f"{data['image_size']}×{data['image_size']} px; split train {sp['train']} / val "
        f"{sp['val']} / test {sp['test']}. Every method trains the student "
        f"**{student['model']}** ({student['params']:,} parameters) for {train['epochs']} "
        f"epochs with {train['optimizer']} lr {train['lr']}, {train['schedule']} schedule, "
        f"batch {train['batch_size']}, the same augmentation and seeds 0..{compare['seeds'] - 1}; "
        f"α = {compare['alpha']:g}, {temperature}."))]
    options = "; ".join(f"{m}: " + ", ".join(f"{k}={v}" for k, v in opts.items())
                        for m, opts in compare["method_options"].items() if opts)
    if options:
        blocks.append(Block("p", f"Method options: {options}."))
    if teacher:
        blocks.append(Block("p", f"Teacher: {teacher['model']} ({teacher['params']:,} parameters), "
                                 f"test accuracy {100 * teacher['accuracy']:.2f} %."))
    blocks.append(Block("h2", "Results"))
    blocks.append(Block("table", header=list(HEADER), rows=[table_row(r) for r in methods]))
    blocks.append(Block("p", (
        f"Accuracy and macro F1 on the test split, {seeds_text(compare['seeds'])}, in %. "
        "Δ columns: "
        "difference of mean accuracy in percentage points. “vs kd beyond noise”: whether the "
        "method's accuracy minus kd's of the same seed has a 95 % confidence interval "
        "(Student's t, half-width in brackets) that excludes 0, as for scratch below (– for "
        "kd itself or without a kd row). Extra trainable "
        "params: parameters trained beyond the student (FitNet's regressor, dml's other "
        "peers); the deployed model has the student's size in every row. dml reports peer 0; "
        "self born-again its last generation, with the time of all generations. "
        + PAIRED_NOTE + " " + split_noise_note(sp["test"], methods[0]["accuracy_mean"]))))
    plots.method_accuracy(methods, out_dir / "figures" / FIGURE, teacher)
    blocks.append(Block("h2", "Figures"))
    blocks.append(Block("img", f"figures/{FIGURE}", header=["test accuracy per method"]))
    blocks += curve_blocks(compare_curve_panels(out_dir, res["rows"]), out_dir / "figures")
    return blocks


def compare_curve_panels(out_dir: Path, rows: list[dict]
                         ) -> list[tuple[str, list[tuple[str, list[Path]]]]]:
    """One panel per method: its students and the scratch students, every seed."""
    runs: dict[str, list[Path]] = {}
    for r in rows:
        runs.setdefault(r["method"], []).append(out_dir / r["run"])
    scratch = runs.get(SCRATCH, [])
    return [(f"{method} vs {SCRATCH}", [(SCRATCH, scratch), (method, dirs)])
            for method, dirs in runs.items() if method != SCRATCH]


def write_compare_report(out_dir: Path, int8: bool = False) -> Path:
    """comparison.md/.html; ``int8`` adds the best method's int8 section (see int8_section)."""
    with run_dir_lock(out_dir, flag=None, create=False):
        return _write_compare_report(Path(out_dir), int8)


def _write_compare_report(out_dir: Path, int8: bool) -> Path:
    blocks = build_compare_report(out_dir)
    if int8:
        from rsdistill.report.int8_section import best_compare_runs, with_int8

        blocks = with_int8(blocks, out_dir, *best_compare_runs(read_json(Path(out_dir) / COMPARE_RESULTS)))
    atomic_write_text(Path(out_dir) / COMPARE_MD, to_markdown(blocks))
    atomic_write_text(Path(out_dir) / COMPARE_HTML, to_html(blocks))
    return Path(out_dir) / COMPARE_MD
