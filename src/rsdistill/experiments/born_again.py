"""Born-again networks (Furlanello et al., ICML 2018): the ``"generations"`` procedure.

Generation 0 is an ordinary ``train`` run of the student's architecture; generation
``k + 1`` is an ordinary ``kd`` run whose teacher is generation ``k``'s model.pt. Each
lives in ``<out>/gen<k>/`` laid out like any run (so ``evaluate`` and ``--resume`` work
on it); ``<out>`` holds the ``self`` run's config.yaml and a copy of the last
generation's model.pt, epochs.csv and metrics.json, the latter with every generation's
scores and the time of all of them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rsdistill.experiments.procedures import PROCEDURES, RunRequest, run_training
from rsdistill.experiments.records import DistillConfig, check_run_dir
from rsdistill.io import atomic_write_bytes, read_json, write_json
from rsdistill.runtime import distributed
from rsdistill.runtime.rundir import (
    CONFIG_FILE,
    EPOCHS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    VERSIONS_FILE,
    RunDirectory,
)

log = logging.getLogger(__name__)

SCORE_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def generation_dir(out: Path, k: int) -> Path:
    return Path(out) / f"gen{k}"


def generation_config(req: RunRequest, k: int) -> DistillConfig | None:
    """Generation ``k``'s distill section: none for generation 0 (labels only), else KD
    from generation ``k - 1`` with the run's α, T and β."""
    if k == 0:
        return None
    d = req.distill_cfg
    return DistillConfig(teacher=str(generation_dir(req.out, k - 1)), method="kd",
                         alpha=d.alpha, temperature=d.temperature,
                         nuclear_beta=d.nuclear_beta)


@PROCEDURES.register("generations")
def train_generations(req: RunRequest) -> dict:
    plan = req.built
    out, top = req.out, RunDirectory(req.out)
    started = top.file(CONFIG_FILE).is_file() or generation_dir(out, 0).exists()
    check_run_dir(out, req.record, req.resume, req.overwrite, has_state=started)
    distributed.setup(req.train_cfg.device)
    distributed.barrier()  # every rank has checked before rank 0 writes
    if distributed.is_main():
        top.write_config(req.record)
    generations = []
    for k in range(plan.generations):
        gen_dir = generation_dir(out, k)
        if (gen_dir / METRICS_FILE).is_file():
            # Finished before an interruption: its model.pt is already the next one's teacher.
            metrics = read_json(gen_dir / METRICS_FILE)
        else:
            log.info("born-again generation %d/%d", k + 1, plan.generations)
            metrics = run_training(gen_dir, req.data_cfg, req.train_cfg,
                                   generation_config(req, k), resume=req.resume,
                                   progress=req.progress)
        generations.append(metrics)
    return write_summary(req, generations)


def write_summary(req: RunRequest, generations: list[dict]) -> dict:
    """The last generation's files at the top of the run, its metrics with every
    generation's scores and the summed training time."""
    out, last = req.out, len(generations) - 1
    main = distributed.is_main()
    for name in (MODEL_FILE, EPOCHS_FILE, VERSIONS_FILE):
        src = generation_dir(out, last) / name
        if main and src.is_file():
            atomic_write_bytes(out / name, src.read_bytes())
    seconds = sum(m["run"]["train_seconds"] for m in generations)
    epochs = req.train_cfg.epochs
    metrics = dict(generations[-1])
    metrics["run"] = {
        **generations[-1]["run"], "kind": "distill", "method": "self",
        "variant": "born_again", "source": f"gen{last}",
        # The cost of the whole method: every generation trains for --epochs, so its time
        # per epoch of the schedule is the sum over generations.
        "train_seconds": round(seconds, 3),
        "seconds_per_epoch": round(seconds / max(1, epochs), 3),
    }
    metrics["generations"] = [
        {"generation": k, "run": f"gen{k}", **{key: m[key] for key in SCORE_KEYS},
         "best_epoch": m["run"]["best_epoch"]}
        for k, m in enumerate(generations)]
    if main:
        write_json(out / METRICS_FILE, metrics)
    return metrics
