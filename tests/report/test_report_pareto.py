"""The Pareto front: which points no other point beats on both latency and accuracy."""

from __future__ import annotations

from rsdistill.report.pareto_report import pareto_front


def test_the_front_keeps_the_points_no_one_beats_on_both_axes():
    points = [(1.0, 0.80), (2.0, 0.85), (1.5, 0.79), (3.0, 0.84), (0.5, 0.60), (2.0, 0.90)]
    assert sorted(pareto_front(points)) == [0, 4, 5]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 0.5)]) == [0]


def test_a_tie_in_latency_keeps_only_the_more_accurate():
    assert pareto_front([(1.0, 0.7), (1.0, 0.8)]) == [1]
