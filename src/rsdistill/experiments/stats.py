"""Per-run result rows, their mean ± std over seeds, and the tables written from them."""

from __future__ import annotations

import csv
import datetime
import io
import math
import statistics
from pathlib import Path

from rsdistill.io import atomic_write_text

SCORE_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def difference_std(std_a: float, std_b: float) -> float:
    """Seed noise of the difference of two means: the std of ``a - b`` for independent
    runs, the yardstick every "does this lead exceed the noise" verdict uses."""
    return math.sqrt(std_a ** 2 + std_b ** 2)


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def eta_text(seconds_left: float, what: str) -> str:
    """``"sweep done at about 14:31 UTC (~12 min)"`` for a log line."""
    end = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_left)
    left = f"~{seconds_left / 60:.0f} min" if seconds_left >= 90 else f"~{seconds_left:.0f} s"
    return f"{what} done at about {end:%H:%M} UTC ({left})"
