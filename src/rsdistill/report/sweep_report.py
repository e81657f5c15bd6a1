"""``report.md`` and ``report.html`` of a sweep directory, from its results.json.

The report is built as a list of blocks (heading, paragraph, table, image) and
rendered to both Markdown and HTML, so the two never disagree.
"""

from __future__ import annotations

from pathlib import Path

from rsdistill.errors import RsdistillError
from rsdistill.experiments.locate import (
    Lead, baseline_text, best_of, paired_with, scratch_lead, setting_runs,
)
from rsdistill.io import atomic_write_text, read_json, write_json
from rsdistill.report import plots
from rsdistill.report.blocks import (
    PAIRED_NOTE,
    Block,
    paired_cell,
    pct,
    pm_of,
    seeds_text,
    split_noise_note,
    to_html,
    to_markdown,
    verdict_cell,
)
from rsdistill.report.curves import curve_blocks, val_curve
from rsdistill.runtime.locks import run_dir_lock
from rsdistill.runtime.rundir import (
    FIGURES_DIR,
    METRICS_FILE,
    MODEL_FILE,
    REPORT_HTML,
    REPORT_MD,
    SPEED_FILE,
    SWEEP_RESULTS,
)


def _mix_text(data_cfg: dict) -> str:
    mode = data_cfg.get("mix", "none")
    return "" if mode == "none" else f" (plus {mode}, Beta({data_cfg.get('mix_alpha')}), on every batch)"


def lead_verdict(lead: Lead) -> str:
    """The best setting's lead over the baseline (``locate.scratch_lead``, the same as the
    study's headline), judged on the seeds' paired differences; without two paired seeds
    it is not judged."""
    best, base, paired = lead.best, lead.base, lead.paired
    if base is None:
        return "α = 0 is not in the sweep, so the lead over training without distillation is unknown."
    if best["alpha"] == 0:
        return "The best setting is α = 0: distillation did not beat training without it."
    over = baseline_text(lead)
    diff = best["accuracy_mean"] - base["accuracy_mean"]
    if best["seeds"] < 2:
        return (f"Its lead over {over} is {100 * diff:+.2f} pt with one seed, so seed noise "
                "cannot be judged; run more seeds.")
    if paired is not None and paired["distinguishable"] is not None:
        verdict = ("is distinguishable from seed noise" if paired["distinguishable"] else
                   "is **not distinguishable from seed noise**")
        return (f"Its lead over {over}, paired by seed, is {100 * paired['mean']:+.2f} ± "
                f"{100 * paired['std']:.2f} pt over {paired['seeds']} seeds (95 % interval "
                f"± {100 * paired['ci95']:.2f} pt), which {verdict}.")
    return (f"Its lead over {over} is {100 * diff:+.2f} pt, but no two seeds pair it with "
            "α = 0, so seed noise cannot be judged.")


def paired_blocks(agg: list[dict], rows: list[dict], base: dict | None, n_test: int
                  ) -> list[Block]:
    """Every distilled setting minus the scratch student of the same seed."""
    distilled = sorted((r for r in agg if r["alpha"] > 0), key=lambda r: (r["beta"], r["alpha"]))
    if base is None or not distilled:
        return []
    table = []
    for r in distilled:
        p = paired_with(rows, r, base)
        table.append([f"{r['alpha']:g}", r["beta"], str(p["seeds"]), paired_cell(p),
                      verdict_cell(p)])
    return [Block("h2", "Distilled − scratch, paired by seed"),
            Block("table", header=["α", "β", "seeds", "paired Δ accuracy (pt)",
                                   "beyond noise (95 % CI)"], rows=table),
            Block("p", f"{PAIRED_NOTE} {split_noise_note(n_test, base['accuracy_mean'])}")]


def sweep_curve_panels(sweep_dir: Path, agg: list[dict], rows: list[dict], base: dict | None
                       ) -> list[tuple[str, list[tuple[str, list[Path]]]]]:
    """Per β: the scratch student (α = 0) and the most accurate distilled α."""
    if base is None:
        return []
    scratch = [sweep_dir / r["run"] for r in setting_runs(rows, base)]
    panels = []
    for beta in dict.fromkeys(r["beta"] for r in agg):
        distilled = [r for r in agg if r["beta"] == beta and r["alpha"] > 0]
        if distilled:
            top = best_of(distilled)
            panels.append((f"best distilled vs scratch, β = {beta}",
                           [("scratch α = 0", scratch),
                            (f"α = {top['alpha']:g}", [sweep_dir / r["run"]
                                                       for r in setting_runs(rows, top)])]))
    return panels


def _base_label(lead: Lead) -> str:
    beta = "" if lead.plain or lead.base is None else f", β={lead.base['beta']}"
    return f"student α=0{beta} (no distillation)"


def build_report(sweep_dir: Path) -> list[Block]:
    sweep_dir = Path(sweep_dir)
    results_file = sweep_dir / SWEEP_RESULTS
    if not results_file.is_file():
        raise RsdistillError(f"{sweep_dir} has no results.json; run 'rsdistill sweep' into it first")
    res = read_json(results_file)
    agg, rows, teacher = res["aggregate"], res["rows"], res["teacher"]
    data, student, cfg = res["data"], res["student"], res["config"]
    lead = scratch_lead(res)
    best, base = lead.best, lead.base
    # Results written before the method had its own section keep it inside "sweep".
    method = cfg.get("method") or cfg["sweep"]
    figs = sweep_dir / FIGURES_DIR
    blocks = [Block("h1", f"Distillation study: {data['dataset']}")]
    sp = data["splits"]
    blocks.append(Block("p", (
        f"Dataset **{data['dataset']}**: {data['total']} images, {len(data['classes'])} classes, "
        f"{data['image_size']}×{data['image_size']} px; split train {sp['train']} / val {sp['val']} "
        f"/ test {sp['test']} (stratified, seed {cfg['data']['split_seed']}). "
        f"Every student: {cfg['train']['epochs']} epochs, {cfg['train']['optimizer']} lr "
        f"{cfg['train']['lr']}, {cfg['train']['schedule']} schedule, batch {cfg['train']['batch_size']}, "
        f"the same augmentation{_mix_text(cfg['data'])} and seeds; "
        f"method {method.get('method', 'kd')}, T = {method['temperature']}; "
        f"{cfg['sweep']['seeds']} seed{'s' if cfg['sweep']['seeds'] != 1 else ''}.")))
    blocks.append(Block("h2", "Models"))
    model_rows = []
    if teacher:
        model_rows.append(["teacher", teacher["model"], str(teacher.get("image_size") or "–"),
                           f"{teacher['params']:,}", f"{teacher['flops'] / 1e6:.1f}"])
    model_rows.append(["student", student["model"], str(data["image_size"]), f"{student['params']:,}",
                       f"{student['flops'] / 1e6:.1f}"])
    blocks.append(Block("table", header=["role", "model", "input px", "parameters", "MFLOPs"],
                        rows=model_rows))
    if teacher and teacher.get("image_size") and teacher["image_size"] != data["image_size"]:
        blocks.append(Block("p", (
            f"Cross-resolution: the teacher reads {teacher['image_size']} px and each student "
            f"{data['image_size']} px views of the same augmented scenes; students are "
            f"evaluated on their own {data['image_size']} px input only.")))

    blocks.append(Block("h2", "Teacher vs student"))
    tv = []
    if teacher:
        tv.append([f"teacher {teacher['model']}", pct(teacher["precision_macro"]),
                   pct(teacher["recall_macro"]), pct(teacher["f1_macro"]), pct(teacher["accuracy"])])
    for label, r in ((f"student α={best['alpha']:g}, β={best['beta']} (best)", best),
                     (_base_label(lead), base)):
        if r is None:
            continue
        tv.append([label, *(pm_of(r, k) for k in ("precision_macro", "recall_macro", "f1_macro",
                                                  "accuracy"))])
    blocks.append(Block("table", header=["model", "precision %", "recall %", "F1 %", "accuracy %"],
                        rows=tv))
    blocks.append(Block("p", (
        f"Best setting: **α = {best['alpha']:g}, β = {best['beta']}** with accuracy "
        f"{pm_of(best, 'accuracy')} % ({seeds_text(best['seeds'])}). "
        + lead_verdict(lead))))
    blocks += paired_blocks(agg, rows, base, sp["test"])
    speed = _read_speed(sweep_dir)
    if speed is not None:
        blocks += speed_blocks(speed)

    for beta in dict.fromkeys(r["beta"] for r in agg):
        title = "without the nuclear norm" if beta == "0" else f"with the nuclear norm (β = {beta})"
        blocks.append(Block("h2", f"α sweep {title}"))
        table = [[f"{r['alpha']:g}", *(pm_of(r, k) for k in ("accuracy", "f1_macro",
                                                             "precision_macro", "recall_macro")),
                  f"{r['effective_rank_mean']:.1f}"]
                 for r in sorted((r for r in agg if r["beta"] == beta), key=lambda r: r["alpha"])]
        blocks.append(Block("table", header=["α", "accuracy %", "F1 %", "precision %", "recall %",
                                             "effective rank of W₁"], rows=table))
        blocks.append(Block("p", f"Test split, {seeds_text(cfg['sweep']['seeds'])}."))

    plots.alpha_curve(agg, "f1_macro", "macro F1", figs / "alpha_f1.png", teacher, base)
    plots.alpha_curve(agg, "accuracy", "accuracy", figs / "alpha_accuracy.png", teacher, base)
    best_run = setting_runs(rows, best)[0]["run"]
    best_metrics = read_json(sweep_dir / best_run / METRICS_FILE)
    plots.confusion(best_metrics["confusion_matrix"], data["classes"],
                    f"best student ({best_run}), test split", figs / "confusion_best.png")
    seed0 = [r for r in rows if r["seed"] == rows[0]["seed"]]
    plots.training_curves([(r["alpha"], r["beta"], val_curve(sweep_dir / r["run"]) or [])
                           for r in seed0], figs / "training_curves.png")
    # Latencies from the side-by-side timing when there is one (the per-run figures were
    # taken under different thread counts and loads); every student shares one architecture.
    eager = (speed or {}).get("eager")
    student_ms = eager["student"]["latency_ms_p50"] if eager else None
    points = [(f"α={r['alpha']:g} β={r['beta']}", student_ms or r["latency_ms_p50_mean"],
               r["accuracy_mean"]) for r in (best, base) if r is not None]
    if teacher:
        points.append((f"teacher {teacher['model']}",
                       eager["teacher"]["latency_ms_p50"] if eager else teacher["latency_ms_p50"],
                       teacher["accuracy"]))
    plots.accuracy_vs_latency(points, figs / "accuracy_latency.png")
    blocks.append(Block("h2", "Figures"))
    for name, caption in (("alpha_f1.png", "α vs macro F1"), ("alpha_accuracy.png", "α vs accuracy"),
                          ("confusion_best.png", "confusion matrix of the best student"),
                          ("training_curves.png", "training curves"),
                          ("accuracy_latency.png", "accuracy vs batch-1 latency")):
        blocks.append(Block("img", f"figures/{name}", header=[caption]))
    blocks += curve_blocks(sweep_curve_panels(sweep_dir, agg, rows, base), figs)
    return blocks


def _read_speed(sweep_dir: Path) -> dict | None:
    file = Path(sweep_dir) / SPEED_FILE
    return read_json(file) if file.is_file() else None


def speed_blocks(speed: dict) -> list[Block]:
    rows = []
    for key, label in (("eager", "PyTorch eager"), ("onnxruntime", "ONNX Runtime")):
        r = speed.get(key)
        if r:
            rows.append([label, f"{r['teacher']['latency_ms_p50']:.3f}",
                         f"{r['student']['latency_ms_p50']:.3f}", f"{r['speedup']:.1f}×"])
    threads = speed["threads"]
    load = "unknown" if speed["load_before"] is None else \
        f"{speed['load_before']:.2f} before and {speed['load_after']:.2f} after"
    return [Block("h2", "Inference speed (teacher and best student side by side)"),
            Block("table", header=["runtime", "teacher ms (batch 1, p50)",
                                   "student ms (batch 1, p50)", "teacher / student"], rows=rows),
            Block("p", (f"Both models timed in one process, {threads} intra-op "
                        f"thread{'s' if threads != 1 else ''}, fp32, in {speed['rounds']} "
                        f"interleaved rounds of {speed['runs_per_round']} calls each, on "
                        f"{speed['cpu']}; 1-minute load average {load}."))]


def measure_sweep_speed(sweep_dir: Path, threads: int = 1, retime: bool = False) -> dict | None:
    """Times the teacher and the best student side by side into ``speed.json`` (kept and
    reused while both files stay the same; ``retime`` measures again)."""
    from rsdistill.runtime.checkpoint import resolve_model_path
    from rsdistill.report.speedup import measure_speedup

    sweep_dir = Path(sweep_dir)
    res = read_json(sweep_dir / SWEEP_RESULTS)
    teacher = res["config"]["sweep"].get("teacher")
    if not teacher or not res.get("teacher"):
        return None
    best_run = setting_runs(res["rows"], best_of(res["aggregate"]))[0]["run"]
    student = sweep_dir / best_run
    old = _read_speed(sweep_dir)
    if old and not retime and old["threads"] == threads and \
            old["models"]["student"]["file"] == str(student / MODEL_FILE) and \
            old["models"]["teacher"]["file"] == str(resolve_model_path(teacher)):
        return old
    speed = measure_speedup(teacher, student, threads=threads)
    write_json(sweep_dir / SPEED_FILE, speed)
    return speed


def write_report(sweep_dir: Path, int8: bool = False, *, timing_threads: int = 1,
                 retime: bool = False) -> Path:
    """report.md/.html, with the teacher and best student timed side by side; ``int8`` adds
    the best student's int8 section (see int8_section)."""
    with run_dir_lock(sweep_dir, flag=None, create=False):
        return _write_report(Path(sweep_dir), int8, timing_threads, retime)


def _write_report(sweep_dir: Path, int8: bool, timing_threads: int, retime: bool) -> Path:
    if not (Path(sweep_dir) / SWEEP_RESULTS).is_file():
        build_report(sweep_dir)  # raises the one-line error
    measure_sweep_speed(sweep_dir, timing_threads, retime)
    blocks = build_report(sweep_dir)
    if int8:
        from rsdistill.report.int8_section import best_sweep_runs, with_int8

        blocks = with_int8(blocks, sweep_dir, *best_sweep_runs(read_json(Path(sweep_dir) / SWEEP_RESULTS)))
    atomic_write_text(Path(sweep_dir) / REPORT_MD, to_markdown(blocks))
    atomic_write_text(Path(sweep_dir) / REPORT_HTML, to_html(blocks))
    return Path(sweep_dir) / REPORT_MD
