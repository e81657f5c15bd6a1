"""``report.md`` and ``report.html`` of a sweep directory, from its results.json.

The report is built as a list of blocks (heading, paragraph, table, image) and
rendered to both Markdown and HTML, so the two never disagree.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

from rsdistill.errors import RsdistillError
from rsdistill.io import atomic_write_text, read_json
from rsdistill.report import plots


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "p" | "table" | "img"
    text: str = ""
    header: list[str] | None = None
    rows: list[list[str]] | None = None


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def pm(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _mix_text(data_cfg: dict) -> str:
    mode = data_cfg.get("mix", "none")
    return "" if mode == "none" else f" (plus {mode}, Beta({data_cfg.get('mix_alpha')}), on every batch)"


def _best(aggregate: list[dict]) -> dict:
    return max(aggregate, key=lambda r: (r["accuracy_mean"], r["f1_macro_mean"]))


def _baseline(aggregate: list[dict]) -> dict | None:
    return next((r for r in aggregate if r["alpha"] == 0 and r["beta"] == "0"), None) or \
        next((r for r in aggregate if r["alpha"] == 0), None)


def difference_std(std_a: float, std_b: float) -> float:
    """Seed noise of the difference of two means: the std of ``a - b`` for independent
    runs, the yardstick every "does this lead exceed the noise" verdict uses."""
    return math.sqrt(std_a ** 2 + std_b ** 2)


def lead_verdict(best: dict, base: dict | None) -> str:
    if base is None:
        return "α = 0 is not in the sweep, so the lead over training without distillation is unknown."
    if best["alpha"] == 0:
        return "The best setting is α = 0: distillation did not beat training without it."
    diff = best["accuracy_mean"] - base["accuracy_mean"]
    if best["seeds"] < 2:
        return (f"Its lead over α = 0 is {100 * diff:+.2f} pt with one seed, so seed noise "
                "cannot be judged; run more seeds.")
    noise = difference_std(best["accuracy_std"], base["accuracy_std"])
    verdict = "exceeds" if diff > noise else "does not exceed"
    return (f"Its lead over α = 0 is {100 * diff:+.2f} pt, which {verdict} the seed noise "
            f"(std of the difference ≈ {100 * noise:.2f} pt over {best['seeds']} seeds).")


def build_report(sweep_dir: Path) -> list[Block]:
    sweep_dir = Path(sweep_dir)
    results_file = sweep_dir / "results.json"
    if not results_file.is_file():
        raise RsdistillError(f"{sweep_dir} has no results.json; run 'rsdistill sweep' into it first")
    res = read_json(results_file)
    agg, rows, teacher = res["aggregate"], res["rows"], res["teacher"]
    data, student, cfg = res["data"], res["student"], res["config"]
    best, base = _best(agg), _baseline(agg)
    figs = sweep_dir / "figures"
    blocks = [Block("h1", f"Distillation study: {data['dataset']}")]
    sp = data["splits"]
    blocks.append(Block("p", (
        f"Dataset **{data['dataset']}**: {data['total']} images, {len(data['classes'])} classes, "
        f"{data['image_size']}×{data['image_size']} px; split train {sp['train']} / val {sp['val']} "
        f"/ test {sp['test']} (stratified, seed {cfg['data']['split_seed']}). "
        f"Every student: {cfg['train']['epochs']} epochs, {cfg['train']['optimizer']} lr "
        f"{cfg['train']['lr']}, {cfg['train']['schedule']} schedule, batch {cfg['train']['batch_size']}, "
        f"the same augmentation{_mix_text(cfg['data'])} and seeds; "
        f"T = {cfg['sweep']['temperature']}; {cfg['sweep']['seeds']} seed(s).")))
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
                   pct(teacher["recall_macro"]), pct(teacher["f1_macro"]), pct(teacher["accuracy"]),
                   f"{teacher['latency_ms_p50']:.3f}", f"{teacher['test_seconds']:.3f}"])
    for label, r in ((f"student α={best['alpha']:g}, β={best['beta']} (best)", best),
                     ("student α=0 (no distillation)", base)):
        if r is None:
            continue
        tv.append([label, pm(r["precision_macro_mean"], r["precision_macro_std"]),
                   pm(r["recall_macro_mean"], r["recall_macro_std"]),
                   pm(r["f1_macro_mean"], r["f1_macro_std"]), pm(r["accuracy_mean"], r["accuracy_std"]),
                   f"{r['latency_ms_p50_mean']:.3f}", f"{r['test_seconds_mean']:.3f}"])
    blocks.append(Block("table", header=["model", "precision %", "recall %", "F1 %", "accuracy %",
                                         "latency ms (batch 1)", "test split inference s"], rows=tv))
    blocks.append(Block("p", (
        f"Best setting: **α = {best['alpha']:g}, β = {best['beta']}** with accuracy "
        f"{pm(best['accuracy_mean'], best['accuracy_std'])} %. " + lead_verdict(best, base))))

    for beta in dict.fromkeys(r["beta"] for r in agg):
        title = "without the nuclear norm" if beta == "0" else f"with the nuclear norm (β = {beta})"
        blocks.append(Block("h2", f"α sweep {title}"))
        table = [[f"{r['alpha']:g}", pm(r["accuracy_mean"], r["accuracy_std"]),
                  pm(r["f1_macro_mean"], r["f1_macro_std"]),
                  pm(r["precision_macro_mean"], r["precision_macro_std"]),
                  pm(r["recall_macro_mean"], r["recall_macro_std"]),
                  f"{r['effective_rank_mean']:.1f}"]
                 for r in sorted((r for r in agg if r["beta"] == beta), key=lambda r: r["alpha"])]
        blocks.append(Block("table", header=["α", "accuracy %", "F1 %", "precision %", "recall %",
                                             "effective rank of W₁"], rows=table))

    plots.alpha_curve(agg, "f1_macro", "macro F1", figs / "alpha_f1.png", teacher, base)
    plots.alpha_curve(agg, "accuracy", "accuracy", figs / "alpha_accuracy.png", teacher, base)
    best_run = next(r["run"] for r in rows if r["alpha"] == best["alpha"] and r["beta"] == best["beta"])
    best_metrics = read_json(sweep_dir / best_run / "metrics.json")
    plots.confusion(best_metrics["confusion_matrix"], data["classes"],
                    f"best student ({best_run}), test split", figs / "confusion_best.png")
    seed0 = [r for r in rows if r["seed"] == rows[0]["seed"]]
    plots.training_curves({f"α={r['alpha']:g} β={r['beta']}": sweep_dir / r["run"] / "epochs.csv"
                           for r in seed0}, figs / "training_curves.png")
    points = [(f"α={r['alpha']:g} β={r['beta']}", r["latency_ms_p50_mean"], r["accuracy_mean"])
              for r in (best, base) if r is not None]
    if teacher:
        points.append((f"teacher {teacher['model']}", teacher["latency_ms_p50"], teacher["accuracy"]))
    plots.accuracy_vs_latency(points, figs / "accuracy_latency.png")
    blocks.append(Block("h2", "Figures"))
    for name, caption in (("alpha_f1.png", "α vs macro F1"), ("alpha_accuracy.png", "α vs accuracy"),
                          ("confusion_best.png", "confusion matrix of the best student"),
                          ("training_curves.png", "training curves"),
                          ("accuracy_latency.png", "accuracy vs batch-1 latency")):
        blocks.append(Block("img", f"figures/{name}", header=[caption]))
    return blocks


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.text}\n")
        elif b.kind == "h2":
            out.append(f"## {b.text}\n")
        elif b.kind == "p":
            out.append(f"{b.text}\n")
        elif b.kind == "table":
            out.append("| " + " | ".join(b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out.extend("| " + " | ".join(r) + " |" for r in b.rows)
            out.append("")
        elif b.kind == "img":
            out.append(f"![{b.header[0]}]({b.text})\n")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block]) -> str:
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                           for r in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "img":
            body.append(f'<figure><img src="{html.escape(b.text)}" alt="{html.escape(b.header[0])}">'
                        f"<figcaption>{html.escape(b.header[0])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:"
             "collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
             "img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>rsdistill report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(sweep_dir: Path, int8: bool = False) -> Path:
    """report.md/.html; ``int8`` adds the best student's int8 section (see int8_section)."""
    blocks = build_report(sweep_dir)
    if int8:
        from rsdistill.report.int8_section import best_sweep_runs, with_int8

        blocks = with_int8(blocks, sweep_dir, *best_sweep_runs(read_json(Path(sweep_dir) / "results.json")))
    atomic_write_text(Path(sweep_dir) / "report.md", to_markdown(blocks))
    atomic_write_text(Path(sweep_dir) / "report.html", to_html(blocks))
    return Path(sweep_dir) / "report.md"
