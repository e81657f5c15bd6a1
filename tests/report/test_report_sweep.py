"""``report.md`` / ``report.html`` / figures of a sweep, and the verdict on the best α.

One real tiny sweep (resnet8, 16 px, 2 epochs; α ∈ {0, 0.5} × β ∈ {0, α} × 2 seeds)
is reported; the verdict logic is tested on hand-made aggregates.
"""

from __future__ import annotations

import html
import re
import shutil

import pytest
import torch

from rsdistill.cli.main import main
from rsdistill.data.module import DataConfig
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.grid import SweepConfig
from rsdistill.experiments.sweep import aggregate as sweep_aggregate, run_sweep
from rsdistill.training.config import TrainConfig
from rsdistill.errors import RsdistillError
from rsdistill.io import read_json, write_json
from rsdistill.report.blocks import to_markdown
from rsdistill.experiments.stats import paired_difference
from rsdistill.experiments.locate import Lead, baseline, best_of, headline, scratch_lead
from rsdistill.report.sweep_report import build_report, lead_verdict, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("alpha_f1", "alpha_accuracy", "confusion_best", "training_curves", "accuracy_latency")


def pm(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def md_tables(text: str) -> dict[str, list[list[str]]]:
    """Section heading (``## ...``) -> body rows of the table under it."""
    tables: dict[str, list[list[str]]] = {}
    heading, seen_header = None, False
    for line in text.splitlines():
        if line.startswith("## "):
            heading, seen_header = line[3:].strip(), False
        elif line.startswith("|") and heading is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not seen_header:
                seen_header = True  # the header row
            elif set(line.replace("|", "")) != {"-"}:
                tables.setdefault(heading, []).append(cells)
    return tables


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("report")
    data = DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=16,
                      cache_dir=str(tiny_cache), workers=1)
    train = TrainConfig(model="resnet8", epochs=2, batch_size=8, device="cpu", latency_runs=3)
    run_training(root / "teacher", data, train, progress=False)
    run_sweep(root / "sweep", data, train,
              SweepConfig(teacher=str(root / "teacher"), alphas=[0.0, 0.5], betas=["0", "alpha"],
                          seeds=2),
              progress=False)
    return root / "sweep"


@pytest.fixture(scope="module")
def report(sweep_dir):
    write_report(sweep_dir)
    return sweep_dir


# ----------------------------------------------------------------------------- files

def test_report_writes_markdown_html_and_valid_pngs(report):
    assert (report / "report.md").is_file() and (report / "report.html").is_file()
    from PIL import Image

    for name in FIGURES:
        path = report / "figures" / f"{name}.png"
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC, path
        assert len(data) > 5000, (path, len(data))
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and min(im.size) >= 200
    # No temporary files left behind by the atomic writes.
    assert not [p for p in report.rglob(".*.tmp")]


def test_report_references_every_figure(report):
    md = (report / "report.md").read_text()
    page = (report / "report.html").read_text()
    for name in FIGURES:
        assert f"](figures/{name}.png)" in md
        assert f'<img src="figures/{name}.png"' in page
    for ref in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (report / ref).is_file(), ref
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")


def test_report_alpha_tables_match_results_json(report):
    res = read_json(report / "results.json")
    tables = md_tables((report / "report.md").read_text())
    expected_sections = {"0": "α sweep without the nuclear norm",
                         "alpha": "α sweep with the nuclear norm (β = alpha)"}
    for beta, section in expected_sections.items():
        rows = tables[section]
        agg = sorted((a for a in res["aggregate"] if a["beta"] == beta), key=lambda a: a["alpha"])
        assert len(rows) == len(agg) == 2
        for cells, a in zip(rows, agg):
            assert float(cells[0]) == a["alpha"]
            assert cells[1] == pm(a["accuracy_mean"], a["accuracy_std"])
            assert cells[2] == pm(a["f1_macro_mean"], a["f1_macro_std"])
            assert cells[3] == pm(a["precision_macro_mean"], a["precision_macro_std"])
            assert cells[4] == pm(a["recall_macro_mean"], a["recall_macro_std"])
            assert cells[5] == f"{a['effective_rank_mean']:.1f}"
            # The table is the mean ± std of the per-seed rows.
            seeds = [r for r in res["rows"] if r["alpha"] == a["alpha"] and r["beta"] == beta]
            assert a["seeds"] == len(seeds) == 2
    assert set(tables) >= set(expected_sections.values())


def test_report_teacher_and_student_rows(report):
    res = read_json(report / "results.json")
    tables = md_tables((report / "report.md").read_text())
    teacher = read_json(report.parent / "teacher" / "metrics.json")
    rows = tables["Teacher vs student"]
    t = rows[0]
    assert t[0] == "teacher resnet8"
    assert t[1:5] == [f"{100 * teacher[k]:.2f}" for k in
                      ("precision_macro", "recall_macro", "f1_macro", "accuracy")]
    assert len(t) == 5  # latency lives in the side-by-side section, not beside accuracy
    lead = scratch_lead(res)
    best, base = lead.best, lead.base
    assert (base["alpha"], base["beta"]) == (0.0, "0")
    by_label = {r[0]: r for r in rows[1:]}
    b = by_label[f"student α={best['alpha']:g}, β={best['beta']} (best)"]
    z = by_label["student α=0 (no distillation)"]
    for row, agg in ((b, best), (z, base)):
        assert row[1:5] == [pm(agg[f"{k}_mean"], agg[f"{k}_std"]) for k in
                            ("precision_macro", "recall_macro", "f1_macro", "accuracy")]
    models = tables["Models"]
    assert models[0][:2] == ["teacher", "resnet8"] and models[1][:2] == ["student", "resnet8"]
    assert models[1][2] == "16" and models[0][2] == "16"  # input px of student and teacher
    assert models[1][3] == f"{res['student']['params']:,}"
    md = (report / "report.md").read_text()
    assert lead_verdict(lead) in md
    assert f"Best setting: **α = {best['alpha']:g}, β = {best['beta']}**" in md


def test_report_times_teacher_and_best_student_side_by_side(report):
    speed = read_json(report / "speed.json")
    res = read_json(report / "results.json")
    best = best_of(res["aggregate"])
    best_run = next(r["run"] for r in res["rows"]
                    if r["alpha"] == best["alpha"] and r["beta"] == best["beta"])
    assert speed["models"]["student"]["file"] == str(report / best_run / "model.pt")
    assert speed["models"]["teacher"]["file"] == str(report.parent / "teacher" / "model.pt")
    assert speed["threads"] == 1 and speed["rounds"] * speed["runs_per_round"] == \
        speed["eager"]["teacher"]["n_runs"] == speed["eager"]["student"]["n_runs"]
    rows = md_tables((report / "report.md").read_text())[
        "Inference speed (teacher and best student side by side)"]
    runtimes = {r[0]: r for r in rows}
    assert set(runtimes) == {"PyTorch eager", "ONNX Runtime"}
    for key, label in (("eager", "PyTorch eager"), ("onnxruntime", "ONNX Runtime")):
        r = speed[key]
        assert r["speedup"] == pytest.approx(r["teacher"]["latency_ms_p50"]
                                             / r["student"]["latency_ms_p50"])
        assert runtimes[label][1:] == [f"{r['teacher']['latency_ms_p50']:.3f}",
                                       f"{r['student']['latency_ms_p50']:.3f}",
                                       f"{r['speedup']:.1f}×"]
    md = (report / "report.md").read_text()
    assert "1 intra-op thread," in md and speed["cpu"] in md


def test_report_reuses_the_timing_until_asked_to_retime(report, capsys):
    before = read_json(report / "speed.json")
    assert main(["report", str(report)]) == 0
    assert read_json(report / "speed.json") == before
    out = capsys.readouterr().out
    assert "teacher vs student, batch 1, side by side: PyTorch eager" in out
    assert "(1 thread," in out
    assert main(["report", str(report), "--retime", "--timing-threads", "2"]) == 0
    after = read_json(report / "speed.json")
    assert after["threads"] == 2 and after != before
    assert main(["report", str(report), "--retime"]) == 0  # back to the default for other tests


def test_html_holds_the_same_tables_as_markdown(report):
    md_cells = [c for rows in md_tables((report / "report.md").read_text()).values()
                for r in rows for c in r]
    page = (report / "report.html").read_text()
    html_cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", page)]
    assert html_cells == md_cells
    assert len(md_cells) > 20


def test_report_command_rewrites_the_report(report, capsys):
    (report / "report.md").unlink()
    (report / "figures" / "alpha_f1.png").unlink()
    assert main(["report", str(report)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {report / 'report.md'}"
    assert (report / "report.md").is_file()
    assert (report / "figures" / "alpha_f1.png").read_bytes()[:8] == PNG_MAGIC
    # The same blocks render the same Markdown: the report depends only on the files.
    assert to_markdown(build_report(report)) == (report / "report.md").read_text()


def test_report_of_a_directory_without_results(tmp_path, capsys):
    with pytest.raises(RsdistillError, match="results.json"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rsdistill: error: ") and "results.json" in err[0]
    assert not (tmp_path / "report.md").exists()


# ----------------------------------------------------------------------------- verdict

def agg_row(alpha, acc, std, seeds, beta="0"):
    return {"alpha": alpha, "beta": beta, "seeds": seeds, "accuracy_mean": acc,
            "accuracy_std": std, "f1_macro_mean": acc}


def plain_lead(best, base, paired=None):
    return Lead(best, base, base is not None, paired)


def test_verdict_lead_is_judged_by_seed_pairs():
    base, best = agg_row(0.0, 0.80, 0.01, 3), agg_row(0.3, 0.90, 0.02, 3)
    aggregate = [base, best, agg_row(0.5, 0.85, 0.01, 3)]
    assert best_of(aggregate) is best and baseline(aggregate, best) == (base, True)
    # Every seed gains 9-11 pt: the 95 % interval (± 2.48 pt) excludes 0.
    paired = paired_difference({0: 0.89, 1: 0.90, 2: 0.91}, {0: 0.80, 1: 0.80, 2: 0.80})
    text = lead_verdict(plain_lead(best, base, paired))
    assert text.startswith("Its lead over the scratch student (α = 0, β = 0, no distillation)")
    assert "+10.00 ± 1.00 pt over 3 seeds (95 % interval ± 2.48 pt)" in text
    assert text.endswith("which is distinguishable from seed noise.")


def test_verdict_lead_within_seed_noise():
    base, best = agg_row(0.0, 0.80, 0.03, 3), agg_row(0.1, 0.82, 0.02, 3)
    paired = paired_difference({0: 0.85, 1: 0.79, 2: 0.82}, {0: 0.80, 1: 0.83, 2: 0.77})
    text = lead_verdict(plain_lead(best, base, paired))
    assert "+2.00 ±" in text and "**not distinguishable from seed noise**" in text


def test_verdict_without_seed_pairs_is_not_judged():
    base, best = agg_row(0.0, 0.80, 0.03, 3), agg_row(0.1, 0.82, 0.02, 3)
    text = lead_verdict(plain_lead(best, base))
    assert "+2.00 pt" in text and "seed noise cannot be judged" in text


def test_verdict_with_one_seed_cannot_judge_noise():
    base, best = agg_row(0.0, 0.70, 0.0, 1), agg_row(0.4, 0.75, 0.0, 1)
    text = lead_verdict(plain_lead(best, base))
    assert "+5.00 pt with one seed" in text
    assert "run more seeds" in text
    assert "exceed" not in text


def test_verdict_when_the_best_is_alpha_zero():
    base = agg_row(0.0, 0.90, 0.01, 2)
    aggregate = [base, agg_row(0.2, 0.85, 0.01, 2), agg_row(0.0, 0.90, 0.01, 2, beta="alpha")]
    best = best_of(aggregate)
    assert best is base  # ties keep the first row: β = 0 comes first in a sweep
    text = lead_verdict(plain_lead(best, baseline(aggregate, best)[0]))
    assert text.startswith("The best setting is α = 0")
    assert "did not beat" in text


def test_verdict_without_alpha_zero_in_the_sweep():
    aggregate = [agg_row(0.1, 0.8, 0.01, 2), agg_row(0.3, 0.9, 0.01, 2)]
    assert baseline(aggregate, best_of(aggregate)) == (None, False)
    assert "α = 0 is not in the sweep" in lead_verdict(plain_lead(best_of(aggregate), None))


def test_baseline_prefers_beta_zero_then_alpha_zero_at_the_best_beta():
    best = agg_row(0.5, 0.9, 0.0, 1, beta="1")
    with_nuc = agg_row(0.0, 0.8, 0.0, 1, beta="1")
    plain = agg_row(0.0, 0.7, 0.0, 1)
    assert baseline([with_nuc, plain, best], best) == (plain, True)
    assert baseline([with_nuc, best], best) == (with_nuc, False)


# ------------------------------------------------------- the report and the headline agree

def relabelled_sweep(sweep_dir, dest, drop_plain=False):
    """A copy of the tiny sweep whose β = alpha cells are relabelled β = 0.5, with
    accuracies set so that the nuclear norm helps: α = 0.5, β = 0.5 is best, +20/+21 pt
    over α = 0, β = 0 in seeds 0/1 but only +10/+12 pt over α = 0, β = 0.5."""
    shutil.copytree(sweep_dir, dest)
    res = read_json(dest / "results.json")
    accs = {(0.0, "0"): (0.50, 0.52), (0.5, "0"): (0.55, 0.56),
            (0.0, "0.5"): (0.60, 0.61), (0.5, "0.5"): (0.70, 0.73)}
    rows = []
    for r in res["rows"]:
        r = {**r, "beta": "0.5" if r["beta"] == "alpha" else r["beta"]}
        r["accuracy"] = accs[(r["alpha"], r["beta"])][r["seed"]]
        if not (drop_plain and r["beta"] == "0"):
            rows.append(r)
    res.update(rows=rows, aggregate=sweep_aggregate(rows))
    write_json(dest / "results.json", res)
    return res


def lead_pt(text):
    return re.search(r"([+-]\d+\.\d\d) (?:± \d+\.\d\d )?pt", text).group(1)


@pytest.mark.parametrize("drop_plain, base_text, label, lead", [
    (False, "the scratch student (α = 0, β = 0, no distillation)",
     "student α=0 (no distillation)", "+20.50"),
    (True, "α = 0 at β = 0.5 (no distillation; the sweep has no β = 0 run)",
     "student α=0, β=0.5 (no distillation)", "+11.00"),
])
def test_report_and_headline_state_the_same_lead_when_beta_helps(
        sweep_dir, tmp_path, drop_plain, base_text, label, lead):
    res = relabelled_sweep(sweep_dir, tmp_path / "sweep", drop_plain)
    md = to_markdown(build_report(tmp_path / "sweep"))
    line = headline(res)[-1]
    verdict = next(p for p in md.splitlines() if p.startswith("Best setting:"))
    assert "**α = 0.5, β = 0.5**" in verdict
    assert line.startswith(f"lead over {base_text}: ")
    assert f"Its lead over {base_text}, paired by seed, is " in verdict
    assert lead_pt(line) == lead_pt(verdict) == lead
    rows = md_tables(md)["Teacher vs student"]
    assert [r[0] for r in rows[1:]] == ["student α=0.5, β=0.5 (best)", label]
