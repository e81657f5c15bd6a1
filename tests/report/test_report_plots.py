"""Figures readable at a glance: a dozen training curves in distinct colours, latency
axes with plain-number ticks at the data, labels that do not overlap."""

from __future__ import annotations

import matplotlib.text
import pytest

from rsdistill.report import plots


@pytest.fixture
def figures(monkeypatch):
    """Each figure as drawn, kept open instead of saved."""
    kept = []

    def keep(fig, path):
        fig.tight_layout()
        fig.canvas.draw()
        kept.append(fig)
        return path
    monkeypatch.setattr(plots, "_save", keep)
    yield kept
    for fig in kept:
        plots.plt.close(fig)


def test_twelve_training_curves_never_share_colour_and_style(tmp_path, figures):
    runs = [(alpha, beta, [0.1, 0.2 + alpha / 10])
            for beta in ("0", "alpha") for alpha in (0, 0.1, 0.2, 0.3, 0.4, 0.5)]
    plots.training_curves(runs, tmp_path / "curves.png")
    ax = figures[0].axes[0]
    looks = [(tuple(line.get_color()), line.get_linestyle()) for line in ax.get_lines()]
    assert len(looks) == 12 and len(set(looks)) == 12
    # Epochs from 1, accuracies in percent.
    assert list(ax.get_lines()[-1].get_xdata()) == [1, 2]
    assert list(ax.get_lines()[-1].get_ydata()) == pytest.approx([10, 25])
    # One colour per α across both β: the colour reads as α.
    assert len({colour for colour, _ in looks}) == 6


def tick_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text()]


def test_latency_ticks_are_plain_numbers_at_the_data(tmp_path, figures):
    points = [("α=0.5 β=0", 1.2, 0.78), ("α=0 β=0", 1.45, 0.72), ("teacher", 4.8, 0.84)]
    plots.accuracy_vs_latency(points, tmp_path / "a.png")
    labels = tick_labels(figures[0].axes[0])
    assert labels == ["1.2", "1.4", "4.8"]
    assert not any("10" in label or "^" in label for label in labels)


def boxes(ax):
    """The labels' text boxes (without their leader lines)."""
    renderer = ax.figure.canvas.get_renderer()
    return [matplotlib.text.Text.get_window_extent(t, renderer) for t in ax.texts]


def test_pareto_labels_do_not_overlap(tmp_path, figures):
    rows = []
    for i, (model, ms) in enumerate([("resnet8", 0.30), ("resnet14", 0.62), ("wrn_16_1", 0.63),
                                     ("resnet20", 0.96)]):
        for size in (32, 64):
            for kind, acc in (("scratch", 0.82), ("distilled", 0.83)):
                rows.append({"model": model, "image_size": size, "kind": kind,
                             "latency_ms": ms + 0.005 * (size == 64),
                             "accuracy_mean": acc + 0.004 * i + 0.002 * (size == 64),
                             "accuracy_std": 0.01, "on_front": False})
    plots.pareto(rows, {"model": "teacher", "accuracy": 0.96, "latency_ms": 6.1}, tmp_path / "p.png")
    ax = figures[0].axes[0]
    found = boxes(ax)
    assert len(found) == 8  # one label per model and size
    overlaps = [(a, b) for i, a in enumerate(found) for b in found[i + 1:] if a.overlaps(b)]
    assert overlaps == []
    assert all("10" not in label for label in tick_labels(ax))
