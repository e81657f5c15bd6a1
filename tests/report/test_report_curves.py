"""The accuracy-per-epoch figure (bands over seeds), the paired cells and the Pareto's
per-budget pick, on hand-written epochs.csv files and rows."""

from __future__ import annotations

import pytest

from rsdistill.report.blocks import paired_cell, to_markdown, verdict_cell
from rsdistill.report.curves import band, curve_blocks, epochs_to_reach, val_curve
from rsdistill.report.pareto_report import budget_blocks, budgets, pareto_curve_panels
from rsdistill.report import plots

PNG = b"\x89PNG\r\n\x1a\n"


def write_run(path, accs):
    path.mkdir(parents=True)
    lines = ["epoch,loss,val_accuracy"] + [f"{i + 1},1.0,{a}" for i, a in enumerate(accs)]
    (path / "epochs.csv").write_text("\n".join(lines) + "\n")
    return path


def test_band_averages_seeds_epoch_by_epoch_over_the_epochs_all_reached(tmp_path):
    a = write_run(tmp_path / "a", [0.2, 0.4, 0.6])
    b = write_run(tmp_path / "b", [0.4, 0.6])  # interrupted after 2 epochs
    result = band([a, b, tmp_path / "missing"])
    assert result["epochs"] == [1, 2] and result["seeds"] == 2
    assert result["mean"] == pytest.approx([0.3, 0.5])
    assert result["std"] == pytest.approx([0.1414214, 0.1414214])
    assert val_curve(tmp_path / "missing") is None and band([tmp_path / "missing"]) is None


def test_epochs_to_reach_the_plateau():
    assert epochs_to_reach({"epochs": [1, 2, 3, 4], "mean": [0.5, 0.8, 0.9, 0.895]}) == 3
    assert epochs_to_reach({"epochs": [1, 2, 3], "mean": [0.5, 0.892, 0.9]}) == 2


def test_curve_blocks_draw_a_panel_per_setting_and_tabulate_the_plateau(tmp_path):
    scratch = [write_run(tmp_path / f"s{k}", [0.3, 0.5, 0.7 + k / 100]) for k in range(3)]
    taught = [write_run(tmp_path / f"d{k}", [0.5, 0.72, 0.725 + k / 1000]) for k in range(3)]
    figures = tmp_path / "figures"
    blocks = curve_blocks([("resnet8@32", [("scratch", scratch), ("distilled", taught)]),
                           ("empty", [("scratch", [tmp_path / "none"])])], figures)
    assert (figures / "epoch_curves.png").read_bytes()[:8] == PNG
    md = to_markdown(blocks)
    assert "![validation accuracy per epoch" in md and "figures/epoch_curves.png" in md
    table = next(b for b in blocks if b.kind == "table")
    assert [r[:2] for r in table.rows] == [["resnet8@32", "scratch"], ["resnet8@32", "distilled"]]
    assert table.rows[0][2:] == ["3", "71.00", "3", "3", "71.00"]
    assert table.rows[1][2:] == ["3", "72.60", "3", "2", "72.60"]
    assert curve_blocks([("empty", [("scratch", [tmp_path / "none"])])], figures) == []


def test_paired_cells_say_when_a_difference_is_noise():
    assert paired_cell(None) == "–" and verdict_cell(None) == "–"
    one = {"seeds": 1, "mean": 0.02, "std": None, "ci95": None, "distinguishable": None}
    assert paired_cell(one) == "+2.00" and verdict_cell(one) == "one seed: cannot tell"
    noise = {"seeds": 3, "mean": 0.018, "std": 0.036, "ci95": 0.089, "distinguishable": False}
    assert paired_cell(noise) == "+1.80 ± 3.60" and verdict_cell(noise) == "no (within ± 8.90)"
    worse = {"seeds": 5, "mean": -0.03, "std": 0.01, "ci95": 0.012, "distinguishable": True}
    assert verdict_cell(worse) == "yes, worse (± 1.20)"


def row(model, size, kind, acc, ms, pretrained=None, runs="x"):
    return {"model": model, "image_size": size, "kind": kind, "accuracy_mean": acc,
            "accuracy_std": 0.01, "latency_ms": ms, "pretrained": pretrained, "seeds": 3,
            "on_front": False, "run": runs.split(";")[0], "runs": runs}


ROWS = [row("resnet8", 32, "scratch", 0.85, 0.3), row("resnet8", 32, "distilled", 0.86, 0.3),
        row("timm:tf_efficientnet_lite0", 32, "scratch", 0.90, 1.4, "imagenet"),
        row("timm:tf_efficientnet_lite0", 64, "distilled", 0.95, 3.5, "imagenet"),
        row("timm:tf_efficientnet_lite0", 96, "distilled", 0.96, 5.8, "imagenet")]


def test_budgets_cover_the_students_range_and_pick_the_most_accurate_within_each():
    assert budgets(ROWS) == [0.5, 1, 2, 3, 4, 6]
    table = budget_blocks(ROWS)[1].rows
    picks = {r[0]: r[1:4] for r in table}
    assert picks["≤ 0.5"] == ["resnet8@32", "distilled", "random"]
    assert picks["≤ 2"] == ["timm:tf_efficientnet_lite0@32", "scratch", "ImageNet"]
    assert picks["≤ 4"][0] == "timm:tf_efficientnet_lite0@64"
    assert picks["≤ 6"][0] == "timm:tf_efficientnet_lite0@96"


def test_pareto_panels_and_figure_mark_pretrained_cells(tmp_path):
    rows = [row("resnet8", 32, "scratch", 0.85, 0.3, runs="a;b"),
            row("resnet8", 32, "distilled", 0.86, 0.3, runs="c;d"),
            row("timm:tf_efficientnet_lite0", 32, "scratch", 0.9, 1.4, "imagenet", runs="e")]
    panels = dict(pareto_curve_panels(rows))
    assert [(k, [p.name for p in v]) for k, v in panels["resnet8@32"]] == \
        [("scratch", ["a", "b"]), ("distilled", ["c", "d"])]
    assert "timm:tf_efficientnet_lite0@32 (ImageNet start)" in panels
    path = plots.pareto(ROWS, {"accuracy": 0.95, "latency_ms": 12.0, "model": "t"},
                        tmp_path / "p.png", budgets(ROWS))
    assert path.read_bytes()[:8] == PNG
