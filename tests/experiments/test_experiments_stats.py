"""Paired differences by seed and the Student's t multiplier behind their 95 % interval."""

from __future__ import annotations

import pytest

from rsdistill.experiments.stats import by_seed, paired_difference, t_quantile


@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (4, 2.776), (30, 2.042)])
def test_t_quantile_matches_the_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3)


def test_a_constant_lead_over_every_seed_is_beyond_noise():
    p = paired_difference({0: 0.82, 1: 0.71, 2: 0.90}, {0: 0.80, 1: 0.69, 2: 0.88})
    assert p["seeds"] == 3 and p["mean"] == pytest.approx(0.02)
    # The seeds differ by 19 pt between them, the pairs by exactly 2 pt: pairing removes it.
    assert p["std"] == pytest.approx(0.0, abs=1e-12) and p["distinguishable"] is True


def test_a_lead_that_changes_sign_is_not_beyond_noise():
    p = paired_difference({0: 0.85, 1: 0.80, 2: 0.86}, {0: 0.80, 1: 0.83, 2: 0.84})
    assert p["mean"] == pytest.approx(0.0133333, abs=1e-6)
    assert p["ci95"] == pytest.approx(t_quantile(0.975, 2) * p["std"] / 3 ** 0.5)
    assert p["distinguishable"] is False


def test_only_seeds_both_hold_are_paired_and_one_seed_says_nothing_of_noise():
    p = paired_difference({0: 0.9, 5: 0.1}, {0: 0.8, 3: 0.5})
    assert p["seeds"] == 1 and p["mean"] == pytest.approx(0.1)
    assert p["std"] is None and p["ci95"] is None and p["distinguishable"] is None
    assert paired_difference({}, {0: 0.5})["mean"] is None


def test_by_seed_reads_rows():
    assert by_seed([{"seed": 1, "accuracy": 0.5}, {"seed": "0", "accuracy": 0.25}]) == \
        {1: 0.5, 0: 0.25}
