"""``distill --method fitnet|at|dkd`` and ``sweep --method at`` end to end on the tiny tree,
plus the one-line errors of a bad layer or method option. In process via ``cli.main.main``."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from rsdistill.cli.common import parse_method_options, parse_option_value
from rsdistill.cli.main import main
from rsdistill.experiments.grid import member_name
from rsdistill.errors import ConfigError


def data_args(tree, cache) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--image-size", "16",
            "--cache-dir", str(cache), "--workers", "1"]


def train_args() -> list[str]:
    return ["--epochs", "2", "--batch-size", "8", "--latency-runs", "3", "--device", "cpu",
            "--no-progress"]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rsdistill: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli-method-teacher") / "teacher"
    assert main(["train", *data_args(tiny_tree3, tiny_cache), "--model", "resnet8",
                 *train_args(), "--out", str(out)]) == 0
    return out


# Per method: extra flags, the loss term it logs, and the options config.yaml must hold.
METHODS = {
    "fitnet": (["--method-option", "hint_weight=50"], "hint", {"hint_weight": 50}),
    "at": ([], "at", {}),
    "dkd": (["--method-option", "warmup_epochs=1", "--method-option", "dkd_beta=2.5"], "dkd",
            {"warmup_epochs": 1, "dkd_beta": 2.5}),
}


@pytest.fixture(scope="module")
def method_runs(tmp_path_factory, teacher_dir):
    """One two-epoch distill run per method, resnet8 -> resnet8 (data from the teacher's run)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli-methods")
    runs = {}
    for method, (extra, _, _) in METHODS.items():
        out = root / method
        assert main(["distill", "--teacher", str(teacher_dir), "--student", "resnet8",
                     "--method", method, *extra, *train_args(), "--out", str(out)]) == 0
        runs[method] = out
    return runs


@pytest.mark.parametrize("method", sorted(METHODS))
def test_distill_with_a_method_trains_and_records_it(method, method_runs):
    out = method_runs[method]
    _, term, options = METHODS[method]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["kind"] == "distill" and 0.0 <= metrics["accuracy"] <= 1.0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["distill"]["method"] == method
    assert config["distill"]["method_options"] == options
    assert config["distill"]["student_layers"] is None
    with open(out / "epochs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    for row in rows:
        assert float(row[f"loss_{term}"]) > 0 and float(row["loss_hard"]) > 0
        assert float(row["loss"]) == pytest.approx(
            float(row[f"loss_{term}"]) + float(row["loss_hard"]), rel=1e-5)


def test_fitnet_regressor_is_in_last_pt_but_not_in_model_pt(method_runs, capsys):
    out = method_runs["fitnet"]
    model = torch.load(out / "model.pt", weights_only=True)["model"]
    assert not any("regressor" in k for k in model)
    (state,) = torch.load(out / "last.pt", weights_only=True)["members"].values()
    assert any(k.startswith("loss.regressor.") for k in state["model"])
    # model.pt is a plain student: evaluate rebuilds and scores it like any run.
    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == json.loads((out / "metrics.json").read_text())["accuracy"]


def test_resume_of_a_finished_fitnet_run_reloads_the_regressor(method_runs, teacher_dir, capsys):
    # Same settings + --resume: the state (with the regressor) must load strictly.
    out = method_runs["fitnet"]
    before = json.loads((out / "metrics.json").read_text())
    assert main(["distill", "--teacher", str(teacher_dir), "--student", "resnet8",
                 "--method", "fitnet", "--method-option", "hint_weight=50", *train_args(),
                 "--out", str(out), "--resume"]) == 0
    after = json.loads((out / "metrics.json").read_text())
    assert after["accuracy"] == before["accuracy"]
    assert after["confusion_matrix"] == before["confusion_matrix"]
    # A changed option is a different run: refused, in one line.
    capsys.readouterr()
    assert main(["distill", "--teacher", str(teacher_dir), "--student", "resnet8",
                 "--method", "fitnet", "--method-option", "hint_weight=10", *train_args(),
                 "--out", str(out), "--resume"]) == 2
    assert "hint_weight" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("extra, needles", [
    (["--method", "at", "--student-layers", "layer9"], ["layer9", "layer1, layer2, layer3"]),
    (["--method", "fitnet", "--teacher-layers", "nope"], ["nope", "teacher"]),
    (["--method", "fitnet", "--student-layers", "fc"], ["fc", "feature map"]),
    (["--method", "fitnet", "--student-layers", "layer1,layer2"], ["exactly one"]),
    (["--method", "fitnet", "--method-option", "hint_wieght=5"], ["hint_wieght", "hint_weight"]),
    (["--method", "kd", "--method-option", "hint_weight=5"], ["hint_weight", "no --method-option"]),
    (["--method", "at", "--method-option", "alpha=0.3"], ["--alpha"]),
    (["--method", "dkd", "--method-option", "warmup_epochs=-1"], ["warmup_epochs"]),
    (["--method", "fitnet", "--method-option", "hint_weight"], ["KEY=VALUE"]),
    (["--method", "fitnest"], ["fitnest", "fitnet"]),
])
def test_bad_method_settings_are_one_line_and_exit_2(extra, needles, teacher_dir, tmp_path,
                                                     capsys):
    out = tmp_path / "student"
    rc = main(["distill", "--teacher", str(teacher_dir), "--student", "resnet8", *extra,
               *train_args(), "--out", str(out)])
    assert rc == 2
    line = one_error_line(capsys.readouterr().err)
    for needle in needles:
        assert needle in line
    assert not (out / "last.pt").exists()


@pytest.mark.parametrize("method, alphas", [("at", "0,0.5"), ("fitnet", "0.5")])
def test_fused_sweep_with_a_feature_method(method, alphas, teacher_dir, method_runs, tmp_path):
    out = tmp_path / "sweep"
    extra, term, options = METHODS[method]
    assert main(["sweep", "--teacher", str(teacher_dir), "--student", "resnet8",
                 "--method", method, *extra, "--alphas", alphas, "--seeds", "1", *train_args(),
                 "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["alpha"] for r in res["rows"]] == [float(a) for a in alphas.split(",")]
    recorded = yaml.safe_load((out / "sweep.yaml").read_text())["method"]
    assert recorded["method"] == method and recorded["method_options"] == options
    assert "alpha" not in recorded  # the grid sets α per member
    member = out / "seed0" / member_name(0.5, "0")
    assert yaml.safe_load((member / "config.yaml").read_text())["distill"]["method"] == method
    # The fused member sees the same batches and teacher maps as the single run, and
    # (fitnet) its regressor starts from the same initialisation: the results are equal.
    single = json.loads((method_runs[method] / "metrics.json").read_text())
    fused = json.loads((member / "metrics.json").read_text())
    for key in ("accuracy", "f1_macro", "confusion_matrix"):
        assert fused[key] == single[key], key
    a = torch.load(member / "model.pt", weights_only=True)["model"]
    b = torch.load(method_runs[method] / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_option_values_are_typed():
    assert parse_option_value("50") == 50 and isinstance(parse_option_value("50"), int)
    assert parse_option_value("2.5") == 2.5
    assert parse_option_value("1e3") == 1000.0
    assert parse_option_value("True") is True and parse_option_value("false") is False
    assert parse_option_value("layer2") == "layer2"
    assert parse_method_options(["hint-weight=5", "x=a=b"]) == {"hint_weight": 5, "x": "a=b"}
    with pytest.raises(ConfigError, match="twice"):
        parse_method_options(["a=1", "a=2"])
