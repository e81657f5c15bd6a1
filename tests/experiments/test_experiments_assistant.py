"""The teacher-assistant chain: teacher → assistant (KD) → student, each an ordinary run."""

from __future__ import annotations

import pytest
import torch
import yaml

from rsdistill.cli.main import main
from rsdistill.errors import ConfigError
from rsdistill.experiments.assistant import AssistantConfig, parse_assistant
from rsdistill.experiments.study import study_from_dict

TRAIN = ["--epochs", "1", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
         "--no-progress"]


def _data(tree, cache, size: int) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--image-size", str(size),
            "--cache-dir", str(cache), "--workers", "1"]


def test_assistant_specs_parse_and_bad_ones_are_one_line_errors():
    assert parse_assistant(None) == AssistantConfig() and not AssistantConfig().enabled
    assert parse_assistant("resnet8x4@64", 30) == AssistantConfig("resnet8x4", 64, 30)
    assert parse_assistant("wrn_16_2").image_size is None
    for bad in ("@64", "resnet8x4@", "resnet8x4@big"):
        with pytest.raises(ConfigError, match="--assistant"):
            parse_assistant(bad)
    with pytest.raises(ConfigError, match="epochs"):
        parse_assistant("resnet8", 0)


@pytest.fixture(scope="module")
def teacher32(tmp_path_factory, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ta") / "teacher32"
    assert main(["train", *_data(tiny_tree3, tiny_cache, 32), "--model", "resnet8x4", *TRAIN,
                 "--out", str(out)]) == 0
    return out


def test_distill_through_an_assistant_records_the_chain(teacher32, tmp_path, capsys, caplog):
    out = tmp_path / "student"
    args = ["distill", "--teacher", str(teacher32), "--student", "resnet8",
            "--student-image-size", "16", "--assistant", "resnet14@24", *TRAIN, "--out", str(out)]
    assert main(args) == 0
    assistant = out / "assistant"
    a_cfg = yaml.safe_load((assistant / "config.yaml").read_text())
    s_cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert a_cfg["train"]["model"] == "resnet14" and a_cfg["data"]["image_size"] == 24
    assert a_cfg["distill"]["method"] == "kd" and a_cfg["distill"]["teacher"] == str(teacher32)
    assert s_cfg["distill"]["teacher"] == str(assistant) and s_cfg["data"]["image_size"] == 16
    assert (assistant / "metrics.json").is_file() and (out / "metrics.json").is_file()
    # Continuing the student reuses the finished assistant.
    mtime = (assistant / "model.pt").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="rsdistill"):
        assert main([*args, "--resume"]) == 0
    assert (assistant / "model.pt").stat().st_mtime_ns == mtime
    assert any("finished earlier, not retrained" in r.getMessage() for r in caplog.records)


def test_an_assistant_needs_a_teacher(tmp_path, tiny_tree3, tiny_cache, capsys):
    assert main(["distill", *_data(tiny_tree3, tiny_cache, 16), "--student", "resnet8",
                 "--method", "kd", "--alpha", "0", "--assistant", "resnet14", *TRAIN,
                 "--out", str(tmp_path / "s")]) == 2
    assert "--assistant is distilled from --teacher" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_a_study_config_takes_an_assistant_section():
    cfg = study_from_dict({"assistant": {"model": "resnet8x4", "image_size": 64}})
    assert cfg.assistant.enabled and cfg.assistant.image_size == 64 and cfg.assistant.alpha == 0.5
    with pytest.raises(ConfigError, match="assistant"):
        study_from_dict({"assistant": {"modle": "x"}})


def test_sweep_through_an_assistant_trains_the_chain_then_continues(teacher32, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--teacher", str(teacher32), "--student", "resnet8",
            "--student-image-size", "16", "--assistant", "resnet14@24", "--alphas", "0,0.5",
            "--seeds", "1", "--jobs", "1", *TRAIN, "--out", str(out)]
    assert main(args) == 0
    record = yaml.safe_load((out / "sweep.yaml").read_text())
    assert record["sweep"]["teacher"] == str(out / "assistant")
    assert (out / "assistant" / "metrics.json").is_file()
    assert (out / "seed0" / "alpha0.50_beta0" / "metrics.json").is_file()
    assert main([*args, "--resume"]) == 0
