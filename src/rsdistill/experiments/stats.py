"""Per-run result rows, their mean ± std over seeds, and the tables written from them."""

from __future__ import annotations

import csv
import functools
import io
import math
import statistics
from pathlib import Path

from rsdistill.io import atomic_write_text

SCORE_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _t_cdf(t: float, df: int, steps: int = 2000) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom, t >= 0 (Simpson's rule
    on the density; accurate to ~1e-9 over the range the 95 % interval needs)."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def pdf(x: float) -> float:
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    h = t / steps
    total = pdf(0.0) + pdf(t) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, steps))
    return 0.5 + total * h / 3


@functools.lru_cache(maxsize=64)
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t: the multiplier of a standard error for
    a two-sided interval from few seeds (12.71 for 2 seeds, 2.78 for 5 at p = 0.975)."""
    lo, hi = 0.0, 1000.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


PAIRED_KEYS = ("mean", "std", "ci95", "distinguishable")


def flat_paired(p: dict, prefix: str) -> dict:
    """A :func:`paired_difference` result flat for a CSV row, ``<prefix><key>``; all None
    for ``{}`` (no difference)."""
    return {f"{prefix}{k}": p.get(k) for k in PAIRED_KEYS}


def row_paired(row: dict, prefix: str, keys: tuple[str, ...] = PAIRED_KEYS) -> dict | None:
    """:func:`flat_paired` read back from a row; None where it holds no difference."""
    if row.get(f"{prefix}mean") is None:
        return None
    return {k: row.get(f"{prefix}{k}") for k in keys}


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict:
    """``a - b`` paired by seed (same seed = same split, batches and initial draw), over
    the seeds both hold: its mean, std, the half-width of its 95 % confidence interval
    (Student's t) and whether that interval excludes 0. With one seed nothing can be said
    about noise: ``std``, ``ci95`` and ``distinguishable`` are None."""
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    n = len(diffs)
    out = {"seeds": n, "mean": statistics.fmean(diffs) if diffs else None,
           "std": None, "ci95": None, "distinguishable": None}
    if n >= 2:
        std = statistics.stdev(diffs)
        half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
        out.update(std=std, ci95=half, distinguishable=bool(abs(out["mean"]) > half))
    return out


def by_seed(rows: list[dict], key: str = "accuracy") -> dict[int, float]:
    """``{seed: row[key]}`` of one setting's per-seed rows."""
    return {int(r["seed"]): float(r[key]) for r in rows}
