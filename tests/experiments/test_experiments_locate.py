"""A study or sweep folder given where one run is read (its best student), ``report``
on a study folder (its sweep), the study's headline, and the sweep's ETA."""

from __future__ import annotations

import re

import pytest

from rsdistill.errors import ConfigError
from rsdistill.experiments.locate import headline, report_dir, run_dir
from rsdistill.experiments.sweep import sweep_eta
from rsdistill.io import write_json


def row(alpha, beta, seed, acc):
    return {"alpha": alpha, "beta": beta, "seed": seed, "accuracy": acc,
            "run": f"seed{seed}/alpha{alpha:.2f}_beta{beta}"}


def agg(alpha, beta, mean, std, seeds=3):
    return {"alpha": alpha, "beta": beta, "seeds": seeds, "accuracy_mean": mean,
            "accuracy_std": std, "f1_macro_mean": mean}


RESULTS = {
    # α = 0.3 leads α = 0 by 5, 4 and 3 pt in seeds 0, 1 and 2.
    "rows": [row(a, "0", s, acc) for a, accs in ((0.0, (0.69, 0.71, 0.70)),
                                                 (0.3, (0.74, 0.75, 0.73)))
             for s, acc in zip((0, 1, 2), accs)],
    "aggregate": [agg(0.0, "0", 0.70, 0.01), agg(0.3, "0", 0.74, 0.01), agg(0.3, "alpha", 0.72, 0.02)],
    "teacher": {"model": "resnet8x4", "accuracy": 0.84},
    "student": {"model": "resnet8"},
}


def make_study(root, finished=True):
    (root / "teacher").mkdir(parents=True)
    (root / "study.yaml").write_text("out: x\n")
    (root / "sweep").mkdir()
    (root / "sweep" / "sweep.yaml").write_text("kind: sweep\n")
    if finished:
        write_json(root / "sweep" / "results.json", RESULTS)
    return root


def test_a_study_folder_means_its_best_students_first_seed(tmp_path):
    study = make_study(tmp_path / "study")
    chosen, note = run_dir(study)
    assert chosen == study / "sweep" / "seed0" / "alpha0.30_beta0"
    assert str(chosen) in note and "α = 0.3, β = 0" in note and str(study / "teacher") in note
    # The sweep folder itself: the same student.
    assert run_dir(study / "sweep")[0] == chosen


def test_a_run_directory_or_file_is_left_alone(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"")
    assert run_dir(run) == (run, None)
    assert run_dir(tmp_path / "missing.onnx") == (tmp_path / "missing.onnx", None)


def test_an_unfinished_study_lists_its_choices_in_one_line(tmp_path):
    study = make_study(tmp_path / "study", finished=False)
    with pytest.raises(ConfigError) as err:
        run_dir(study)
    text = str(err.value)
    assert "\n" not in text and str(study / "teacher") in text and str(study / "sweep") in text


def test_report_on_a_study_folder_is_its_sweep(tmp_path):
    study = make_study(tmp_path / "study")
    assert report_dir(study) == study / "sweep"
    assert report_dir(study / "sweep") == study / "sweep"


def test_headline_names_teacher_best_student_and_lead_with_noise():
    lines = headline(RESULTS)
    assert lines[0] == "teacher resnet8x4: test accuracy 84.00 %"
    assert lines[1] == "best student resnet8 (α = 0.3, β = 0): 74.00 ± 1.00 % over 3 seeds"
    assert lines[2] == ("lead over α = 0 (no distillation): +4.00 ± 1.00 pt paired by seed over "
                        "3 seeds (beyond the seed noise: 95 % interval ± 2.48 pt)")


def test_headline_when_no_alpha_beats_the_labels():
    results = {**RESULTS, "aggregate": [agg(0.0, "0", 0.75, 0.01), agg(0.3, "0", 0.74, 0.01)]}
    assert headline(results)[-1] == "no α > 0 beats α = 0 (training on the labels alone)"


@pytest.mark.parametrize("seed, epochs_left, minutes", [(0, 5, 10 + 20), (2, 5, 10), (1, 0, 20)])
def test_sweep_eta_counts_the_waves_after_this_seed(seed, epochs_left, minutes):
    # 3 seeds, 2 at a time, 10 epochs of 2 min: seeds 0 and 1 first, then seed 2.
    text = sweep_eta(seed, (0, 1, 2), 2, 10)(epochs_left, 120.0)
    assert re.fullmatch(rf"sweep done at about \d\d:\d\d UTC \(~{minutes} min\)", text), text
