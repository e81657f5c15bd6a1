"""``rsdistill run`` with ``teacher_source_size``: the study's teacher is taught on the
students' own view (reduced to their size, then resized to its input), and the students
are taught by it reading that view."""

from __future__ import annotations

import pytest
import torch
import yaml

from rsdistill.cli.main import main
from rsdistill.experiments.study import StudyConfig, study_from_dict, teacher_data
from rsdistill.errors import ConfigError
from rsdistill.runtime.checkpoint import safe_load

TINY = {"model": "resnet8", "epochs": 1, "batch_size": 8, "device": "cpu", "latency_runs": 2}


def test_teacher_data_takes_its_size_and_source():
    cfg = study_from_dict({"data": {"image_size": 16}, "teacher_image_size": 32,
                           "teacher_source_size": 16})
    t = teacher_data(cfg)
    assert (t.image_size, t.source_size) == (32, 16)
    assert (cfg.data.image_size, cfg.data.source_size) == (16, None)
    plain = teacher_data(StudyConfig())
    assert (plain.image_size, plain.source_size) == (StudyConfig().data.image_size, None)
    with pytest.raises(ConfigError, match="cannot be made from 64 px"):
        teacher_data(study_from_dict({"teacher_image_size": 32, "teacher_source_size": 64}))
    with pytest.raises(ConfigError, match="teacher_source_size"):
        study_from_dict({"teacher_source_size": "small"})


def test_the_teacher_section_may_hold_its_view():
    cfg = study_from_dict({"teacher": {"model": "resnet8", "image_size": 64, "source_size": 32}})
    assert (cfg.teacher_image_size, cfg.teacher_source_size, cfg.teacher.model) == (64, 32, "resnet8")
    with pytest.raises(ConfigError, match="given twice"):
        study_from_dict({"teacher": {"source_size": 32}, "teacher_source_size": 16})


def test_run_teaches_the_teacher_on_the_students_view(tmp_path, tiny_tree3, tiny_cache):
    torch.set_num_threads(1)
    config = tmp_path / "view.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"image_size": 16, "workers": 1}, "teacher_image_size": 32,
        "teacher_source_size": 16, "teacher": TINY, "student": TINY,
        "sweep": {"alphas": "0,0.5", "betas": ["0"], "seeds": 1, "jobs": 1}}))
    out = tmp_path / "study"
    assert main(["run", "--config", str(config), "--dataset", "folder", "--data-root",
                 str(tiny_tree3), "--cache-dir", str(tiny_cache), "--out", str(out),
                 "--no-progress"]) == 0
    meta = safe_load(out / "teacher" / "model.pt")["meta"]
    assert (meta["image_size"], meta["source_size"]) == (32, 16)
    member = yaml.safe_load((out / "sweep" / "seed0" / "alpha0.50_beta0" / "config.yaml").read_text())
    assert member["data"]["image_size"] == 16 and member["data"]["source_size"] is None
    report = (out / "sweep" / "report.md").read_text()
    assert "## Distilled − scratch, paired by seed" in report
    assert "figures/epoch_curves.png" in report
