"""How a run of a method is trained, looked up by the method's ``procedure``.

``"single"`` (one student, the loss per step: ``experiments/single.py``), ``"mutual"``
(dml's peers together: ``experiments/mutual.py``), ``"generations"`` (born-again:
``experiments/born_again.py``). A method with a new training scheme registers a new
entry; nothing here names a method.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from rsdistill.data.module import DataConfig, PreparedData, prepare_data, with_input_stats
from rsdistill.experiments.records import DistillConfig, run_record
from rsdistill.models.imagenet import pretrained_input_stats
from rsdistill.experiments.teacher import check_teacher_data, load_teacher, resolved_teacher
from rsdistill.paths import default_data_root
from rsdistill.registry import Registry
from rsdistill.runtime import distributed
from rsdistill.runtime.locks import run_dir_lock
from rsdistill.training.config import TrainConfig
from rsdistill.training.distiller import TeacherView


@dataclass
class RunRequest:
    """One resolved run, handed to the procedure its method names."""

    out: Path
    data_cfg: DataConfig
    train_cfg: TrainConfig
    distill_cfg: DistillConfig | None
    record: dict
    resume: bool
    progress: bool
    overwrite: bool = False
    # What the method trains with (its loss, or a plan), built once by run_training;
    # None for a train run.
    built: Any = None


PROCEDURES: Registry[Callable[[RunRequest], dict]] = Registry("training procedure")


def resolve_settings(data_cfg: DataConfig, train_cfg: TrainConfig, teacher: str = ""
                     ) -> tuple[DataConfig, str]:
    """Checks the training settings, joins torchrun's group, and fills in what the
    environment decided (the data root, the teacher's absolute path) so the config on
    disk names what was used. Every kind of run starts here."""
    train_cfg.validate()
    distributed.setup(train_cfg.device)
    if data_cfg.data_root is None:
        data_cfg = replace(data_cfg, data_root=str(default_data_root()))
    return model_input_data(data_cfg, train_cfg), resolved_teacher(teacher)


def model_input_data(data_cfg: DataConfig, train_cfg: TrainConfig) -> DataConfig:
    """The data section with the input statistics the model's pretrained weights expect
    (``--pretrained imagenet``); unchanged otherwise."""
    stats = pretrained_input_stats(train_cfg.model, train_cfg.pretrained)
    return data_cfg if stats is None else with_input_stats(data_cfg, *stats)


def prepare_teacher_and_data(data_cfg: DataConfig, teacher_path: str, progress: bool
                             ) -> tuple[torch.nn.Module | None, TeacherView | None, PreparedData]:
    """The frozen teacher (if any), the view it reads (``None`` = the student's images) and
    the prepared data, checked against each other.

    The teacher is loaded first: building it draws from the global RNG, and every
    student is seeded after it, so a run and a sweep member draw alike.
    """
    teacher = view = meta = None
    if teacher_path:
        teacher, meta = load_teacher(teacher_path)
        view = TeacherView.for_teacher(meta, data_cfg.image_size, data_cfg.teacher_view,
                                       data_cfg.source_size)
    extra = (view.key,) if view is not None else ()
    # Rank 0 decodes and caches the data first; the barrier also keeps every rank's
    # checks ahead of rank 0's first write.
    with distributed.main_first():
        data = prepare_data(data_cfg, extra, progress=progress and distributed.is_main())
    if teacher is not None:
        check_teacher_data(teacher_path, meta, data)
    return teacher, view, data


# One entry, per process: (the grid cell it was prepared for, what was prepared).
_LAST_PREPARED: list = []


def prepared_once(cell: str, data_cfg: DataConfig, teacher_path: str, progress: bool
                  ) -> tuple[torch.nn.Module | None, TeacherView | None, PreparedData]:
    """``prepare_teacher_and_data`` for one cell of a grid (a sweep, a Pareto cell: ``cell``
    names it uniquely for one command), reused by the cell's next trial in this process:
    seeds that run one after another, in the driver or in one worker, load the teacher and
    read the cached data once per cell instead of once per seed. One entry only, so a grid
    of many cells holds one cell's data at a time; a fresh ``cell`` per command, so a
    process that outlives a grid (a Ray worker) never serves one command's data to the next."""
    if not _LAST_PREPARED or _LAST_PREPARED[0][0] != cell:
        _LAST_PREPARED.clear()  # free the old cell's data before the new one is read
        _LAST_PREPARED.append((cell, prepare_teacher_and_data(data_cfg, teacher_path, progress)))
    return _LAST_PREPARED[0][1]


def run_training(out: str | Path, data_cfg: DataConfig, train_cfg: TrainConfig,
                 distill_cfg: DistillConfig | None = None, *, resume: bool = False,
                 progress: bool = True, overwrite: bool = False, built: Any = None) -> dict:
    """A ``train`` run (no ``distill_cfg``) or a ``distill`` run; returns its metrics.

    ``built``: what ``distill_cfg.validate(train_cfg.label_smoothing)`` already returned,
    if the caller checked it early (``distill`` does, before an assistant trains); the
    run trains with that object rather than building its loss again.
    ``out`` is locked from here to the end (one rsdistill process per run directory);
    the procedure checks what it holds (``records.check_run_dir``) under the lock."""
    data_cfg, teacher = resolve_settings(data_cfg, train_cfg,
                                         distill_cfg.teacher if distill_cfg else "")
    procedure = "single"
    if distill_cfg is not None:
        # A copy, not a new config: its settings (α among them) were checked when it was
        # made, and construction would check them again.
        distill_cfg = copy.copy(distill_cfg)
        distill_cfg.teacher = teacher
        if built is None:
            built = distill_cfg.validate(train_cfg.label_smoothing)
        distill_cfg.check_teacher(distill_cfg.teacher, built)
        procedure = distill_cfg.descriptor.procedure
    record = run_record(data_cfg, train_cfg, distill_cfg)
    with run_dir_lock(out) as out:
        return PROCEDURES.get(procedure)(RunRequest(out, data_cfg, train_cfg, distill_cfg,
                                                    record, resume, progress, overwrite, built))
