"""Runs a grid's trials on the chosen backend: skips the finished ones, reports each one
that finishes on one line, and shows an overall bar with an ETA."""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import replace

from tqdm import tqdm

from rsdistill.experiments.backends.base import BACKENDS, BackendConfig, TrialBatch
from rsdistill.experiments.backends.trial import TrialResult, describe_finished

log = logging.getLogger(__name__)


def run_trials(batch: TrialBatch, cfg: BackendConfig | None = None) -> list[TrialResult]:
    """Every trial of ``batch`` not yet done, on ``cfg``'s backend (default: local)."""
    cfg = cfg or BackendConfig()
    cfg.validate()
    todo = []
    for t in batch.trials:
        if t.done():
            log.info("%s: finished earlier, not retrained", t.label)
        else:
            todo.append(t)
    if not todo:
        return []
    run = BACKENDS.get(cfg.name)
    total = len(batch.trials)
    bar = tqdm(total=total, initial=total - len(todo), unit="trial", desc="trials",
               disable=not batch.progress, file=sys.stderr, dynamic_ncols=True)
    results = []
    try:
        with contextlib.closing(run(replace(batch, trials=todo), cfg)) as finished:
            for trial, result in finished:
                line = describe_finished(trial, result)
                if bar.disable:
                    log.info("%s", line)
                else:
                    bar.write(f"rsdistill: {line}", file=sys.stderr)
                bar.update(1)
                results.append(result)
    finally:
        bar.close()
    return results
