"""``rsdistill sweep`` and ``rsdistill run`` (the whole study) end to end on a tiny tree,
plus the one-line errors of a bad study config. In process through ``cli.main.main``."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging

import pytest
import torch
import yaml

import rsdistill.cli.run_cmd as run_cmd
import rsdistill.cli.sweep_cmd as sweep_cmd
from rsdistill.cli.main import main
from rsdistill.runtime.checkpoint import safe_load
from rsdistill.experiments.grid import member_name
from rsdistill.experiments.locate import best_sweep_runs, headline
from rsdistill.training.trainer import Trainer

FIGURES = ("alpha_f1", "alpha_accuracy", "confusion_best", "training_curves", "accuracy_latency")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_TRAIN = {"model": "resnet8", "epochs": 2, "batch_size": 8, "device": "cpu", "latency_runs": 3}


def data_args(tree, cache) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--image-size", "16",
            "--cache-dir", str(cache), "--workers", "1"]


def train_args() -> list[str]:
    return ["--epochs", "2", "--batch-size", "8", "--latency-runs", "3", "--device", "cpu",
            "--no-progress"]


def read_json(path) -> dict:
    return json.loads(path.read_text())


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rsdistill: error: "), err
    assert "Traceback" not in err
    return lines[0]


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
            if not seen_header:
                seen_header = True
            elif set(line.replace("|", "")) != {"-"}:
                tables.setdefault(heading, []).append(
                    [c.strip() for c in line.strip().strip("|").split("|")])
    return tables


def forbid_training(monkeypatch):
    def no_training(self):
        raise AssertionError("trained again")

    monkeypatch.setattr(Trainer, "train_epoch", no_training)


# ----------------------------------------------------------------------------- sweep

@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli-sweep-teacher") / "teacher"
    assert main(["train", *data_args(tiny_tree3, tiny_cache), "--model", "resnet8",
                 *train_args(), "--out", str(out)]) == 0
    return out


def test_sweep_command_trains_reports_and_refuses_to_overwrite(teacher_dir, tmp_path, capsys,
                                                               monkeypatch, tiny_tree3):
    out = tmp_path / "sweep"
    # No data options: they come from the teacher's run, as for 'distill'.
    args = ["sweep", "--teacher", str(teacher_dir), "--student", "resnet8", "--alphas", "0,0.5",
            "--nuclear-beta", "alpha", "--seeds", "1", "--temperature", "2", *train_args(),
            "--out", str(out)]
    assert main(args) == 0
    stdout = capsys.readouterr().out.strip().splitlines()
    res = read_json(out / "results.json")
    assert stdout[-1] == f"wrote {out}/results.json"
    assert len(stdout) == 2 + len(res["aggregate"]) == 4
    for line, a in zip(stdout[1:-1], res["aggregate"]):
        fields = line.split()
        assert fields[:2] == ["alpha", f"{a['alpha']:.2f}"]
        assert f"{100 * a['accuracy_mean']:.2f}" in fields
        assert f"{100 * a['f1_macro_mean']:.2f}" in fields

    assert [(r["alpha"], r["beta"], r["seed"]) for r in res["rows"]] == \
        [(0.0, "alpha", 0), (0.5, "alpha", 0)]
    with open(out / "results.csv") as fh:
        assert [r["run"] for r in csv.DictReader(fh)] == [r["run"] for r in res["rows"]]
    record = yaml.safe_load((out / "sweep.yaml").read_text())
    assert record["method"]["temperature"] == 2.0 and record["sweep"]["betas"] == ["alpha"]
    assert record["data"]["data_root"] == str(tiny_tree3) and record["data"]["image_size"] == 16
    member = out / "seed0" / member_name(0.5, "alpha")
    metrics = read_json(member / "metrics.json")
    assert metrics["accuracy"] == res["rows"][1]["accuracy"]
    cfg = yaml.safe_load((member / "config.yaml").read_text())
    assert cfg["distill"]["temperature"] == 2.0 and cfg["distill"]["nuclear_beta_resolved"] == 0.5

    # A member is an ordinary run directory: 'evaluate' works on it.
    capsys.readouterr()
    assert main(["evaluate", str(member), "--latency-runs", "3", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "f1_macro", "confusion_matrix", "params", "flops"):
        assert evaluated[key] == metrics[key], key

    # Again without --resume: one error line, nothing changed.
    before = (out / "results.json").read_bytes()
    assert main(args) == 2
    assert "--resume" in one_error_line(capsys.readouterr().err)
    assert (out / "results.json").read_bytes() == before

    # With --resume a finished sweep trains nothing and gives the same rows.
    forbid_training(monkeypatch)
    assert main([*args, "--resume"]) == 0
    assert read_json(out / "results.json")["rows"] == res["rows"]


def test_sweep_command_passes_its_options(teacher_dir, monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_run_sweep(out, data_cfg, train_cfg, sweep, *, resume, progress, jobs, overwrite,
                       backend):
        seen.update(out=out, data=data_cfg, train=train_cfg, sweep=sweep, resume=resume,
                    progress=progress, jobs=jobs, overwrite=overwrite, backend=backend)
        return {"aggregate": []}

    monkeypatch.setattr(sweep_cmd, "run_sweep", fake_run_sweep)
    (tmp_path / "o").mkdir()  # --resume continues a sweep that is there
    assert main(["sweep", "--teacher", str(teacher_dir), "--dataset", "folder", "--data-root",
                 str(tmp_path), "--student", "resnet8", "--alphas", "0:0.5:0.05",
                 "--nuclear-beta", "0,alpha", "--seeds", "3", "-T", "3", "--epochs", "5",
                 "--out", str(tmp_path / "o"), "--resume", "--no-progress"]) == 0
    sweep = seen["sweep"]
    assert sweep.alphas == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
    assert sweep.betas == ["0", "alpha"] and sweep.seeds == 3 and sweep.method.temperature == 3.0
    assert seen["train"].epochs == 5 and seen["train"].model == "resnet8"
    assert seen["data"].dataset == "folder" and seen["data"].data_root == str(tmp_path)
    assert seen["data"].image_size == 16  # from the teacher's run
    assert seen["resume"] and not seen["progress"]
    assert seen["jobs"] == 0  # default: one seed per core on a CPU
    assert seen["overwrite"] is False
    assert seen["backend"].name == "local" and seen["backend"].max_retries == 3


@pytest.mark.parametrize("flag, value, needle", [
    ("--alphas", "0:0.5", "--alphas"),
    ("--alphas", "a,b", "--alphas"),
    ("--alphas", "0:0.5:0", "--alphas"),
    ("--alphas", "0,1.5", "alpha"),
    ("--nuclear-beta", "gamma", "beta"),
    ("--seeds", "0", "--seeds"),
])
def test_sweep_command_rejects_bad_options(flag, value, needle, teacher_dir, tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["sweep", "--teacher", str(teacher_dir), "--dataset", "folder", "--data-root",
               str(tmp_path), "--student", "resnet8", flag, value, "--out", str(out),
               "--no-progress"])
    assert rc == 2
    assert needle in one_error_line(capsys.readouterr().err)
    assert not out.exists()


# ----------------------------------------------------------------------------- run

def write_config(path, **sections) -> str:
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_tree3, tiny_cache):
    """``rsdistill run --config tiny.yaml --dataset folder --data-root TREE --out DIR``."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli-study")
    config = write_config(
        root / "tiny.yaml", out=str(root / "not-used"), data={"image_size": 16, "workers": 1},
        teacher=TINY_TRAIN, student=TINY_TRAIN,
        sweep={"alphas": "0,0.5", "betas": ["0", "alpha"], "seeds": 2, "temperature": 4.0})
    out = root / "study"
    argv = ["run", "--config", config, "--dataset", "folder", "--data-root", str(tiny_tree3),
            "--cache-dir", str(tiny_cache), "--out", str(out), "--no-progress"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    (root / "stdout.txt").write_text(stdout.getvalue())  # for the headline test below
    return out, argv


def test_run_ends_with_its_headline(study):
    out, _ = study
    lines = (out.parent / "stdout.txt").read_text().strip().splitlines()
    res = read_json(out / "sweep" / "results.json")
    assert lines[-1] == f"wrote {out / 'sweep' / 'report.md'}"
    assert lines[-4:-1] == headline(res) or lines[-3:-1] == headline(res)
    assert f"{100 * res['teacher']['accuracy']:.2f} %" in "\n".join(lines)
    assert any(line.startswith("best student resnet8 (α = ") for line in lines)


def test_report_and_evaluate_accept_the_study_folder(study, capsys, caplog):
    out, _ = study
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {out / 'sweep' / 'report.md'}"
    label, runs = best_sweep_runs(read_json(out / "sweep" / "results.json"))
    with caplog.at_level(logging.INFO):
        assert main(["evaluate", str(out), "--json", "--latency-runs", "2",
                     "--inference-threads", "1"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["checkpoint"] == str(out / "sweep" / runs[0] / "model.pt")
    assert f"{out} is a study: using its best student" in caplog.text


def test_run_writes_every_output(study, tiny_tree3, capsys):
    out, _ = study
    for rel in ("study.yaml", "teacher/metrics.json", "teacher/model.pt", "sweep/sweep.yaml",
                "sweep/results.json", "sweep/results.csv", "sweep/results_aggregate.csv",
                "sweep/report.md", "sweep/report.html"):
        assert (out / rel).is_file(), rel
    for name in FIGURES:
        data = (out / "sweep" / "figures" / f"{name}.png").read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, name
    assert not (out.parent / "not-used").exists()  # --out wins over the config's out

    cfg = yaml.safe_load((out / "study.yaml").read_text())
    assert cfg["out"] == str(out)
    assert cfg["data"]["dataset"] == "folder" and cfg["data"]["data_root"] == str(tiny_tree3)
    assert cfg["data"]["image_size"] == 16
    assert cfg["teacher"]["epochs"] == 2 and cfg["student"]["model"] == "resnet8"
    assert cfg["sweep"]["seeds"] == 2 and cfg["sweep"]["betas"] == ["0", "alpha"]

    res = read_json(out / "sweep" / "results.json")
    assert sorted((r["beta"], r["alpha"], r["seed"]) for r in res["rows"]) == \
        [(b, a, s) for b in ("0", "alpha") for a in (0.0, 0.5) for s in (0, 1)]
    assert all(a["seeds"] == 2 for a in res["aggregate"])
    teacher = read_json(out / "teacher" / "metrics.json")
    assert teacher["run"]["kind"] == "train" and teacher["run"]["epochs"] == 2
    assert res["teacher"]["accuracy"] == teacher["accuracy"]
    with open(out / "sweep" / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 8


def test_run_report_numbers_equal_results_json(study):
    out, _ = study
    res = read_json(out / "sweep" / "results.json")
    tables = md_tables((out / "sweep" / "report.md").read_text())
    for beta, section in (("0", "α sweep without the nuclear norm"),
                          ("alpha", "α sweep with the nuclear norm (β = alpha)")):
        agg = sorted((a for a in res["aggregate"] if a["beta"] == beta), key=lambda a: a["alpha"])
        rows = tables[section]
        assert [float(r[0]) for r in rows] == [a["alpha"] for a in agg] == [0.0, 0.5]
        for cells, a in zip(rows, agg):
            assert cells[1:5] == [pm(a[f"{k}_mean"], a[f"{k}_std"]) for k in
                                  ("accuracy", "f1_macro", "precision_macro", "recall_macro")]
    teacher = read_json(out / "teacher" / "metrics.json")
    (row,) = [r for r in tables["Teacher vs student"] if r[0].startswith("teacher")]
    assert row[1:5] == [f"{100 * teacher[k]:.2f}" for k in
                        ("precision_macro", "recall_macro", "f1_macro", "accuracy")]


def test_run_again_completes_without_retraining(study, monkeypatch, capsys):
    out, argv = study
    files = [out / "teacher" / "model.pt"] + sorted((out / "sweep").glob("seed*/*/model.pt"))
    # 2 seeds × (α 0, 0.5 × β 0, alpha) minus α = 0 with β = alpha, which is β = 0.
    assert len(files) == 1 + 6
    mtimes = [p.stat().st_mtime_ns for p in files]
    rows = read_json(out / "sweep" / "results.json")["rows"]
    capsys.readouterr()
    forbid_training(monkeypatch)
    assert main(argv) == 0
    stdout = capsys.readouterr().out.strip().splitlines()
    assert stdout[-1] == f"wrote {out / 'sweep' / 'report.md'}"
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    assert read_json(out / "sweep" / "results.json")["rows"] == rows


def test_run_command_line_overrides_the_config(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_run_study(cfg, progress=True, overwrite=False, backend=None, stages=None):
        seen.update(cfg=cfg, progress=progress, overwrite=overwrite)
        return tmp_path / "sweep"

    monkeypatch.setattr(run_cmd, "run_study", fake_run_study)
    monkeypatch.setattr(run_cmd, "write_report", lambda sweep_dir, int8=False: sweep_dir / "report.md")
    config = write_config(tmp_path / "c.yaml", out="somewhere", data={"dataset": "eurosat"},
                          sweep={"seeds": 1})
    assert main(["run", "--config", config, "--dataset", "folder", "--data-root", "/x",
                 "--seeds", "4", "--no-progress"]) == 0
    cfg = seen["cfg"]
    assert cfg.data.dataset == "folder" and cfg.data.data_root == "/x"
    assert cfg.sweep.seeds == 4 and cfg.out == "somewhere" and not seen["progress"]
    # Without a config the study goes to runs/<dataset>.
    assert main(["run", "--dataset", "folder", "--data-root", "/x"]) == 0
    assert seen["cfg"].out == "runs/folder" and seen["cfg"].teacher.model == "resnet8x4"


@pytest.mark.parametrize("text, needle", [
    ("trainer: {epochs: 2}\n", "trainer"),
    ("student: {epoch: 2}\n", "epoch"),
    ('teacher: {epochs: "ten"}\n', "teacher.epochs"),
    ("teacher: {epochs: 0}\n", "epochs"),
    ("teacher: 5\n", "teacher"),
    ("sweep: {seeds: 1.5}\n", "sweep.seeds"),
    ('sweep: {alphas: "0:x"}\n', "alphas"),
    ('sweep: {betas: ["gamma"]}\n', "beta"),
    ("out: 5\n", "out"),
    ("teacher_image_size: big\n", "teacher_image_size"),
    ("- a\n- b\n", "mapping"),
    ("teacher: [1, 2\n", "not valid YAML"),
    ("teacher:\n  epochs: 2\n epochs: 3\n", "not valid YAML"),
])
def test_run_rejects_a_bad_config_in_one_line(text, needle, tmp_path, capsys):
    out = tmp_path / "study"
    config = tmp_path / "bad.yaml"
    config.write_text(f"out: {out}\n" + text if not text.startswith(("out:", "-")) else text)
    assert main(["run", "--config", str(config), "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert needle in line, line
    assert not out.exists()


def test_run_with_a_high_resolution_teacher(tmp_path, tiny_tree3, tiny_cache):
    config = write_config(
        tmp_path / "xres.yaml", data={"image_size": 16, "workers": 1}, teacher_image_size=32,
        teacher=TINY_TRAIN, student=TINY_TRAIN,
        sweep={"alphas": "0.5", "betas": ["0"], "seeds": 1, "jobs": 1})
    out = tmp_path / "study"
    assert main(["run", "--config", config, "--dataset", "folder", "--data-root", str(tiny_tree3),
                 "--cache-dir", str(tiny_cache), "--out", str(out), "--no-progress"]) == 0
    assert safe_load(out / "teacher" / "model.pt")["meta"]["image_size"] == 32
    assert safe_load(out / "sweep" / "seed0" / "alpha0.50_beta0" / "model.pt")["meta"]["image_size"] == 16
    assert (out / "sweep" / "report.md").is_file()


def test_run_needs_an_existing_config(tmp_path, capsys):
    # (A bare 'rsdistill run' is the UC Merced study: tests/cli/test_cli_run_download.py.)
    missing = tmp_path / "missing.yaml"
    assert main(["run", "--config", str(missing)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(missing) in line and "does not exist" in line
