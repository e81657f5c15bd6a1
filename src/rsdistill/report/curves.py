"""Validation accuracy per epoch of scratch and distilled students, mean ± std over seeds.

The figure that tells whether a teacher raises the plateau or only reaches it sooner:
each run's ``epochs.csv`` is read, the seeds of one setting averaged epoch by epoch
(over the epochs every seed has reached, so an interrupted run never shortens a band
silently: its seeds count is in the label).
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from rsdistill.report import plots
from rsdistill.report.blocks import Block
from rsdistill.runtime.rundir import EPOCHS_FILE

FIGURE = "epoch_curves.png"
CAPTION = ("validation accuracy per epoch, scratch vs distilled (mean over seeds, band: one std)")


def val_curve(run_dir: Path) -> list[float] | None:
    """The run's validation accuracy per epoch, None without an ``epochs.csv``."""
    file = Path(run_dir) / EPOCHS_FILE
    if not file.is_file():
        return None
    with open(file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    values = [float(r["val_accuracy"]) for r in rows if r.get("val_accuracy") not in (None, "")]
    return values or None


def band(run_dirs: list[Path]) -> dict | None:
    """Mean and std per epoch over the runs (``epochs`` 1-based), None with no curve."""
    curves = [c for c in (val_curve(d) for d in run_dirs) if c]
    if not curves:
        return None
    n = min(len(c) for c in curves)
    columns = [[c[i] for c in curves] for i in range(n)]
    return {"epochs": list(range(1, n + 1)), "seeds": len(curves),
            "mean": [statistics.fmean(col) for col in columns],
            "std": [statistics.stdev(col) if len(col) > 1 else 0.0 for col in columns]}


def epochs_to_reach(b: dict, fraction: float = 0.99) -> int:
    """The first epoch whose mean reaches ``fraction`` of the band's best mean: how soon
    a student gets to its plateau."""
    best = max(b["mean"])
    return next(e for e, m in zip(b["epochs"], b["mean"]) if m >= fraction * best - 1e-12)


def curve_blocks(panels: list[tuple[str, list[tuple[str, list[Path]]]]], figures: Path
                 ) -> list[Block]:
    """The figure (one panel per setting, a band per labelled group of runs; the first
    group of a panel is the scratch student) and a table of the plateau and how soon each
    band reaches it; nothing when no run has an ``epochs.csv``."""
    drawn, rows = [], []
    for title, groups in panels:
        series = [(label, b) for label, b in ((lab, band(dirs)) for lab, dirs in groups) if b]
        if not series:
            continue
        drawn.append((title, series))
        for label, b in series:
            best = max(b["mean"])
            rows.append([title, label, str(b["seeds"]), f"{100 * best:.2f}",
                         str(b["mean"].index(best) + 1), str(epochs_to_reach(b)),
                         f"{100 * b['mean'][-1]:.2f}"])
    if not drawn:
        return []
    plots.epoch_panels(drawn, figures / FIGURE)
    return [Block("h2", "Accuracy per epoch: scratch vs distilled"),
            Block("img", f"{figures.name}/{FIGURE}", header=[CAPTION]),
            Block("table", header=["setting", "student", "seeds", "best mean val %",
                                   "at epoch", "epochs to 99 % of it", "last epoch val %"],
                  rows=rows),
            Block("p", "Validation split, mean over seeds per epoch. A distilled curve that "
                       "only rises sooner and ends where scratch ends means the teacher "
                       "speeds training up but does not raise the plateau; compare the last "
                       "epochs, not the early ones.")]
