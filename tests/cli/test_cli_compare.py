"""``rsdistill compare`` end to end on the tiny tree: kd, at and dml (plus the scratch
baseline) × 2 seeds × 2 epochs, resnet8 → resnet8 at 16 px; its table in every format,
the rerun (--resume) that trains nothing, and the one-line errors."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import rsdistill.experiments.compare as compare
from rsdistill.cli.main import main
from rsdistill.report.blocks import pm

METHODS = ["scratch", "kd", "at", "dml"]


def data_args(tree, cache) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--image-size", "16",
            "--cache-dir", str(cache), "--workers", "1"]


TRAIN = ["--epochs", "2", "--batch-size", "8", "--latency-runs", "3", "--device", "cpu",
         "--no-progress"]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsdistill: error: "), err
    return lines[0]


def compare_args(teacher, out, *extra) -> list[str]:
    return ["compare", "--teacher", str(teacher), "--student", "resnet8", "--methods",
            "kd,at,dml", "--seeds", "2", *TRAIN, *extra, "--out", str(out)]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, tiny_teacher):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("compare") / "cmp"
    assert main(compare_args(tiny_teacher, out)) == 0
    return out


def markdown_table(text: str) -> dict[str, list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    return {cells[0]: cells for cells in
            ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:])}


def test_compare_writes_every_output(comparison):
    for name in ("comparison.json", "comparison.csv", "comparison_runs.csv", "comparison.md",
                 "comparison.html", "compare.yaml", "figures/compare_accuracy.png"):
        assert (comparison / name).is_file(), name
    for method in METHODS:
        for seed in (0, 1):
            assert (comparison / method / f"seed{seed}" / "metrics.json").is_file()
    res = json.loads((comparison / "comparison.json").read_text())
    assert [r["method"] for r in res["methods"]] == METHODS
    assert len(res["rows"]) == 8 and all(r["seeds"] == 2 for r in res["methods"])
    with open(comparison / "comparison.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert [r["method"] for r in reader] == METHODS
    # Both references are judged by the same paired test; no unpaired "1 std" column.
    for ref in ("kd", "scratch"):
        assert {f"paired_vs_{ref}_{k}" for k in ("mean", "std", "ci95", "distinguishable",
                                                 "seeds")} <= set(reader.fieldnames)
    assert not any("exceeds_std" in name for name in reader.fieldnames)
    html = (comparison / "comparison.html").read_text()
    assert "<table>" in html and "figures/compare_accuracy.png" in html


def test_every_run_used_the_same_settings_and_its_seed(comparison):
    import yaml

    for method in METHODS:
        for seed in (0, 1):
            cfg = yaml.safe_load((comparison / method / f"seed{seed}" / "config.yaml").read_text())
            assert cfg["train"]["seed"] == seed and cfg["train"]["epochs"] == 2
            assert cfg["train"]["model"] == "resnet8" and cfg["data"]["image_size"] == 16
            assert (cfg["distill"] or {}).get("method", "scratch") == method


def test_markdown_numbers_equal_the_json(comparison):
    res = json.loads((comparison / "comparison.json").read_text())
    table = markdown_table((comparison / "comparison.md").read_text())
    for r in res["methods"]:
        cells = table[r["method"]]
        assert cells[1] == pm(r["accuracy_mean"], r["accuracy_std"])
        assert cells[2] == pm(r["f1_macro_mean"], r["f1_macro_std"])
        assert cells[3] == f"{r['seconds_per_epoch_mean']:.3f}"
        assert cells[4] == f"{r['extra_trainable_params']:,}"
        for col, key in ((5, "delta_accuracy_vs_kd"), (6, "delta_accuracy_vs_scratch")):
            expected = "–" if r[key] is None else f"{100 * r[key]:+.2f}"
            assert cells[col] == expected, (r["method"], key)
        # vs kd: the paired test by seed, as for scratch (– for kd itself).
        verdict = r["paired_vs_kd_distinguishable"]
        if r["method"] == "kd":
            assert cells[7] == "–" and r["paired_vs_kd_mean"] is None
        elif verdict is None:
            assert cells[7] == "one seed: cannot tell"
        else:
            assert cells[7] == (f"no (within ± {100 * r['paired_vs_kd_ci95']:.2f})"
                                if not verdict else
                                f"yes, {'better' if r['paired_vs_kd_mean'] > 0 else 'worse'} "
                                f"(± {100 * r['paired_vs_kd_ci95']:.2f})")
    # The aggregates are the seeds' mean, from each run's own metrics.json.
    for r in res["methods"]:
        accs = [json.loads((comparison / r["method"] / f"seed{s}" / "metrics.json").read_text())
                ["accuracy"] for s in (0, 1)]
        assert r["accuracy_mean"] == pytest.approx(sum(accs) / 2)


def test_reference_rows_and_training_cost(comparison):
    by = {r["method"]: r for r in json.loads((comparison / "comparison.json").read_text())["methods"]}
    assert by["kd"]["delta_accuracy_vs_kd"] is None and by["kd"]["paired_vs_kd_mean"] is None
    assert by["scratch"]["delta_accuracy_vs_scratch"] is None
    assert by["at"]["delta_accuracy_vs_kd"] == pytest.approx(
        by["at"]["accuracy_mean"] - by["kd"]["accuracy_mean"])
    assert by["kd"]["extra_trainable_params"] == 0 and by["at"]["extra_trainable_params"] == 0
    student = json.loads((comparison / "kd" / "seed0" / "metrics.json").read_text())["params"]
    assert by["dml"]["extra_trainable_params"] == student  # the second resnet8 peer
    assert all(r["seconds_per_epoch_mean"] > 0 for r in by.values())


def test_rerun_skips_finished_runs(comparison, tiny_teacher, monkeypatch):
    stamps = {p: p.stat().st_mtime_ns for p in comparison.glob("*/seed*/metrics.json")}
    assert len(stamps) == 8
    monkeypatch.setattr(compare, "run_training",
                        lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert main(compare_args(tiny_teacher, comparison, "--resume")) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in comparison.glob("*/seed*/metrics.json")}


def test_unknown_method_is_one_line_exit_2(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "bad"
    args = compare_args(tiny_teacher, out)
    args[args.index("kd,at,dml")] = "kd,nope"
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'nope'" in line and "dml" in line and "self" in line
    assert not out.exists(), "nothing may be written for a bad method"


def test_changed_settings_are_refused(comparison, tiny_teacher, capsys):
    args = compare_args(tiny_teacher, comparison, "--resume")
    args[args.index("--epochs") + 1] = "3"
    assert main(args) == 2
    assert "train.epochs: 2 -> 3" in one_error_line(capsys.readouterr().err)


def test_every_method_is_paired_with_scratch_by_seed_and_drawn_per_epoch(comparison):
    res = json.loads((comparison / "comparison.json").read_text())
    acc = {(r["method"], r["seed"]): r["accuracy"] for r in res["rows"]}
    table = markdown_table((comparison / "comparison.md").read_text())
    for r in res["methods"]:
        if r["method"] == "scratch":
            assert r["paired_vs_scratch_mean"] is None and table["scratch"][8:] == ["–", "–"]
            continue
        diffs = [acc[(r["method"], s)] - acc[("scratch", s)] for s in (0, 1)]
        assert r["paired_vs_scratch_mean"] == pytest.approx(sum(diffs) / 2)
        assert r["paired_vs_scratch_std"] == pytest.approx(abs(diffs[0] - diffs[1]) / 2 ** 0.5)
        assert r["paired_vs_scratch_seeds"] == 2
        if r["method"] != "kd":  # the same test against kd, paired by seed
            kd_diffs = [acc[(r["method"], s)] - acc[("kd", s)] for s in (0, 1)]
            assert r["paired_vs_kd_mean"] == pytest.approx(sum(kd_diffs) / 2)
            assert r["paired_vs_kd_std"] == pytest.approx(abs(kd_diffs[0] - kd_diffs[1]) / 2 ** 0.5)
            assert r["paired_vs_kd_seeds"] == 2
            assert isinstance(r["paired_vs_kd_distinguishable"], bool)
        assert table[r["method"]][8] == f"{100 * r['paired_vs_scratch_mean']:+.2f} ± " \
                                        f"{100 * r['paired_vs_scratch_std']:.2f}"
        assert table[r["method"]][9].startswith(("no (within", "yes, "))
    md = (comparison / "comparison.md").read_text()
    assert "figures/epoch_curves.png" in md and "| kd vs scratch | scratch | 2 |" in md
    assert (comparison / "figures" / "epoch_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
