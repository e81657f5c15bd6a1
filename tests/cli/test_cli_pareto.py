"""``rsdistill pareto`` end to end on a tiny tree: cells, timing side by side, front, report."""

from __future__ import annotations

import json

import pytest
import torch

from rsdistill.cli.main import main

pytest.importorskip("onnxruntime")

TRAIN = ["--epochs", "1", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
         "--no-progress"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pareto") / "teacher"
    assert main(["train", "--dataset", "folder", "--data-root", str(tiny_tree3), "--image-size",
                 "32", "--cache-dir", str(tiny_cache), "--workers", "1", "--model", "resnet8x4",
                 *TRAIN, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def pareto(teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("pareto") / "front"
    assert main(["pareto", "--teacher", str(teacher), "--students", "resnet8,resnet14",
                 "--sizes", "16,32", "--seeds", "2", "--jobs", "1", *TRAIN,
                 "--out", str(out)]) == 0
    return out


def test_every_cell_is_a_sweep_of_scratch_and_distilled(pareto):
    for cell in ("resnet8_16", "resnet8_32", "resnet14_16", "resnet14_32"):
        res = json.loads((pareto / cell / "results.json").read_text())
        assert sorted({r["alpha"] for r in res["rows"]}) == [0.0, 0.5]
        assert sorted({r["seed"] for r in res["rows"]}) == [0, 1]
    result = json.loads((pareto / "pareto.json").read_text())
    rows = result["rows"]
    assert len(rows) == 8 and {r["kind"] for r in rows} == {"scratch", "distilled"}
    for r in rows:
        res = json.loads((pareto / f"{r['model']}_{r['image_size']}" / "results.json").read_text())
        accs = [x["accuracy"] for x in res["rows"] if x["alpha"] == r["alpha"]]
        assert r["accuracy_mean"] == pytest.approx(sum(accs) / len(accs))
        assert r["seeds"] == 2 and r["latency_ms"] > 0


def test_latencies_are_timed_side_by_side_with_the_teacher(pareto):
    result = json.loads((pareto / "pareto.json").read_text())
    timing = result["timing"]
    assert timing["threads"] == 1 and set(timing["latency_ms"]) == {
        "resnet8@16", "resnet8@32", "resnet14@16", "resnet14@32", "teacher"}
    assert result["teacher"]["latency_ms"] == timing["latency_ms"]["teacher"]
    # Scratch and distilled students of one architecture and size share one timing.
    by_cell = {}
    for r in result["rows"]:
        by_cell.setdefault((r["model"], r["image_size"]), set()).add(r["latency_ms"])
    assert all(len(v) == 1 for v in by_cell.values())


def test_the_front_is_marked_and_reported(pareto):
    result = json.loads((pareto / "pareto.json").read_text())
    rows = result["rows"]
    front = [r for r in rows if r["on_front"]]
    assert front
    for r in front:  # nothing on the front is beaten on both axes
        assert not any(o["latency_ms"] < r["latency_ms"] and o["accuracy_mean"] > r["accuracy_mean"]
                       for o in rows)
    md = (pareto / "pareto.md").read_text()
    assert "![accuracy vs batch-1 latency](figures/pareto.png)" in md
    assert (pareto / "figures" / "pareto.png").read_bytes()[:8] == PNG
    assert md.count("| yes |") == len(front)
    assert (pareto / "pareto.csv").read_text().count("\n") == len(rows) + 1


def test_a_rerun_trains_nothing_new(pareto, teacher, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in pareto.glob("*/seed*/*/model.pt")}
    assert main(["pareto", "--teacher", str(teacher), "--students", "resnet8,resnet14",
                 "--sizes", "16,32", "--seeds", "2", "--jobs", "1", *TRAIN, "--resume",
                 "--out", str(pareto)]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in pareto.glob("*/seed*/*/model.pt")}


def test_the_report_has_paired_differences_and_the_epoch_curves(pareto):
    result = json.loads((pareto / "pareto.json").read_text())
    md = (pareto / "pareto.md").read_text()
    assert "| paired Δ vs scratch (pt) | beyond noise (95 % CI) |" in md
    for r in result["rows"]:
        assert r["pretrained"] is None and r["epochs"] == 1 and len(r["runs"].split(";")) == 2
        if r["kind"] == "scratch":
            assert r["paired_mean"] is None
            continue
        cell = json.loads((pareto / f"{r['model']}_{r['image_size']}" / "results.json").read_text())
        acc = {(x["alpha"], x["seed"]): x["accuracy"] for x in cell["rows"]}
        diffs = [acc[(0.5, s)] - acc[(0.0, s)] for s in (0, 1)]
        assert r["paired_mean"] == pytest.approx(sum(diffs) / 2)
        assert r["paired_std"] == pytest.approx(abs(diffs[0] - diffs[1]) / 2 ** 0.5)
    assert "| random |" in md and "ImageNet |" not in md
    assert (pareto / "figures" / "epoch_curves.png").read_bytes()[:8] == PNG
    assert "## The pick per latency budget" in md or \
        max(r["latency_ms"] for r in result["rows"]) < 0.25


@pytest.mark.parametrize("args, needle", [(["--alpha", "0"], "--alpha"),
                                          (["--sizes", "a,b"], "--sizes"),
                                          (["--seeds", "0"], "--seeds"),
                                          (["--pretrained", "imagenet"], "--student-pretrained"),
                                          (["--student-pretrained", "imagenet"], "timm:"),
                                          (["--teacher-at", "48=x"], "--teacher-at"),
                                          (["--teacher-at", "32"], "SIZE=PATH")])
def test_bad_options_are_one_line_errors(teacher, tmp_path, capsys, args, needle):
    assert main(["pareto", "--teacher", str(teacher), *args, *TRAIN,
                 "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "p").exists()
