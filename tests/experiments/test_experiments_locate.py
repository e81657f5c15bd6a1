"""A study or sweep folder given where one run is read (its best student), ``report``
on a study folder (its sweep), the study's headline, and the sweep's ETA."""

from __future__ import annotations

import re
import statistics

import pytest

from rsdistill.errors import ConfigError
from rsdistill.experiments.locate import baseline, headline, report_dir, run_dir, scratch_lead
from rsdistill.experiments.backends.trial import Schedule
from rsdistill.experiments.sweep import batch_eta
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
    assert lines[2] == ("lead over the scratch student (α = 0, β = 0, no distillation): +4.00 ± "
                        "1.00 pt paired by seed over 3 seeds (beyond the seed noise: 95 % "
                        "interval ± 2.48 pt)")


def test_headline_when_no_alpha_beats_the_labels():
    results = {**RESULTS, "aggregate": [agg(0.0, "0", 0.75, 0.01), agg(0.3, "0", 0.74, 0.01)]}
    assert headline(results)[-1] == "no α > 0 beats α = 0 (training on the labels alone)"


def with_nuclear_norm(*betas):
    """Results of a grid α ∈ {0, 0.3} × ``betas`` over 3 seeds where β = 0.5 helps: the
    best setting is α = 0.3, β = 0.5. Its paired lead is 8, 9, 7 pt over α = 0, β = 0 but
    3, 4, 5 pt over α = 0, β = 0.5."""
    accs = {(0.0, "0"): (0.70, 0.71, 0.72), (0.3, "0"): (0.72, 0.73, 0.74),
            (0.0, "0.5"): (0.75, 0.76, 0.74), (0.3, "0.5"): (0.78, 0.80, 0.79)}
    rows = [row(a, b, s, acc) for (a, b), seeds in accs.items() if b in betas
            for s, acc in enumerate(seeds)]
    aggregate = [agg(a, b, statistics.fmean(seeds), statistics.stdev(seeds))
                 for (a, b), seeds in accs.items() if b in betas]
    return {**RESULTS, "rows": rows, "aggregate": aggregate}


def test_headline_lead_is_over_the_plain_scratch_student_when_beta_helps():
    results = with_nuclear_norm("0", "0.5")
    lines = headline(results)
    assert lines[1].startswith("best student resnet8 (α = 0.3, β = 0.5): 79.00 ± 1.00 %")
    # Not α = 0 at the best setting's β (+4.00): what the user gets without rsdistill.
    assert lines[2] == ("lead over the scratch student (α = 0, β = 0, no distillation): +8.00 ± "
                        "1.00 pt paired by seed over 3 seeds (beyond the seed noise: 95 % "
                        "interval ± 2.48 pt)")
    lead = scratch_lead(results)
    assert (lead.base["alpha"], lead.base["beta"], lead.plain) == (0.0, "0", True)


def test_without_a_beta_zero_run_the_lead_is_over_alpha_zero_at_the_best_beta():
    lines = headline(with_nuclear_norm("0.5"))
    assert lines[2] == ("lead over α = 0 at β = 0.5 (no distillation; the sweep has no β = 0 "
                        "run): +4.00 ± 1.00 pt paired by seed over 3 seeds (beyond the seed "
                        "noise: 95 % interval ± 2.48 pt)")


def test_beta_alpha_at_alpha_zero_is_the_plain_scratch_student():
    # The grid trains α = 0, β = alpha once, as β = 0: it is the plain student.
    tied, numeric = agg(0.0, "alpha", 0.7, 0.0), agg(0.0, "0.5", 0.8, 0.0)
    best = agg(0.3, "0.5", 0.9, 0.0)
    assert baseline([numeric, tied, best], best) == (tied, True)
    plain = agg(0.0, "0", 0.7, 0.0)
    assert baseline([tied, plain, best], best) == (plain, True)  # the "0" label first
    assert baseline([best], best) == (None, False)


@pytest.mark.parametrize("place, epochs_left, left", [
    (0, 5, "30 min 00 s"), (2, 5, "10 min 00 s"), (1, 0, "20 min 00 s")])
def test_batch_eta_counts_the_waves_after_this_trial(place, epochs_left, left):
    # 3 seeds, 2 at a time, 10 epochs of 2 min: seeds 0 and 1 first, then seed 2.
    text = batch_eta(Schedule("sweep", place, 3, 2), 10)(epochs_left, 120.0)
    assert re.fullmatch(rf"sweep done at about \d\d:\d\d UTC \({left} left\)", text), text
