"""A member's metrics.json: its best weights evaluated once on the test split, in fp32."""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable

from tqdm import tqdm

from rsdistill.data.module import PreparedData
from rsdistill.evaluation.evaluate import evaluate_model
from rsdistill.io import write_json
from rsdistill.models import first_weight_layer, load_model
from rsdistill.runtime import distributed
from rsdistill.runtime.environment import versions
from rsdistill.runtime.precision import Precision, resolve_precision
from rsdistill.runtime.rundir import METRICS_FILE, MODEL_FILE
from rsdistill.training.config import TrainConfig
from rsdistill.training.distiller import weight_stats
from rsdistill.training.members import Member
from rsdistill.training.peers import peer_metrics, peer_models, training_cost

log = logging.getLogger(__name__)


class StageReporter:
    """Says what the final evaluation is doing, which takes seconds to minutes: one
    transient status line on a terminal with progress bars, otherwise (a log file, CI,
    --no-progress) a log line per stage of a single run, and for a fused pass of several
    members one line before and one summary after (not three lines per member)."""

    def __init__(self, progress: bool, members: int = 1) -> None:
        self.bar = None
        self.members = members
        self.started = time.perf_counter()
        if progress and sys.stderr.isatty():
            self.bar = tqdm(total=0, bar_format="{desc}", leave=False)
        elif members > 1:
            log.info("final evaluation of %d students: test split, its timing and batch-1 "
                     "latency, in fp32", members)

    def named(self, name: str) -> Callable[[str], None]:
        """The reporter of one member (``name`` prefixes its lines; "" for a single run)."""
        prefix = f"final evaluation of {name}: " if name else "final evaluation: "

        def stage(text: str) -> None:
            if self.bar is not None:
                self.bar.set_description_str(prefix + text)
            elif self.members == 1:
                log.info("%s%s", prefix, text)
        return stage

    def summary(self, names: list[str], results: list[dict]) -> None:
        """One line after a fused pass's members are evaluated: their accuracy range."""
        if len(results) < 2:
            return
        accs = [r["accuracy"] for r in results]
        best = max(range(len(accs)), key=accs.__getitem__)
        log.info("final evaluation of %d students done in %.0f s: test accuracy %.3f to %.3f "
                 "(best %s)", len(results), time.perf_counter() - self.started, min(accs),
                 max(accs), names[best])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def final_metrics(m: Member, data: PreparedData, cfg: TrainConfig, precision: Precision,
                  train_seconds: float, epochs_done: int, n: int,
                  teacher_cache_seconds: float | None = None,
                  stage: Callable[[str], None] | None = None) -> dict:
    """Reloads the member's model.pt, evaluates it and writes metrics.json.

    ``precision``: what training ran in (recorded); ``train_seconds`` and ``epochs_done``
    of the whole pass, shared by its ``n`` members; ``stage`` hears each step.
    """
    student, meta = load_model(m.run.file(MODEL_FILE))
    # Reported metrics are fp32 whatever the training precision, so they agree with the
    # exported (fp32) model's predictions.
    fp32 = resolve_precision("fp32", precision.device)
    metrics = evaluate_model(student, meta, data, "test", fp32,
                             resolve_precision(cfg.inference_precision, cfg.device),
                             cfg.latency_runs, cfg.inference_threads, stage=stage)
    metrics["run"] = {
        "kind": m.config_record.get("kind", "train"),
        "model": meta["model"],
        "checkpoint": MODEL_FILE,
        "best_epoch": m.best_epoch,
        "epochs": cfg.epochs,
        "val_accuracy": m.best_val,
        "fused_members": n,
        "train_seconds": round(train_seconds / n, 3),
        "seconds_per_epoch": round(train_seconds / n / max(1, epochs_done), 3),
        "train_precision": precision.describe(),
        # The one-time teacher pass over every view (None: the teacher ran per batch).
        "teacher_cache_seconds": (None if teacher_cache_seconds is None
                                  else round(teacher_cache_seconds, 3)),
    }
    if distributed.is_distributed():
        metrics["run"]["distributed"] = {"world_size": distributed.world_size(),
                                         "sync_bn": cfg.sync_bn}
    metrics["run"].update(training_cost(m.distiller))
    if peer_models(m.distiller):
        if stage is not None:
            stage(f"scoring {len(peer_models(m.distiller))} other peer(s) on the test split")
        metrics["peers"] = peer_metrics(m.distiller, m.run.path, metrics, data, fp32)
    metrics["checkpoint_bytes"] = m.run.file(MODEL_FILE).stat().st_size
    # Of the evaluated (best-val) weights, not of the last epoch's.
    layer_name, layer = first_weight_layer(student)
    metrics["first_layer"] = {"name": layer_name, **weight_stats(layer.weight)}
    metrics["versions"] = versions()
    write_json(m.run.file(METRICS_FILE), metrics)
    return metrics
