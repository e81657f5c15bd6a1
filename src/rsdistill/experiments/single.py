"""The ``"single"`` procedure: one student trained with its method's loss per step.

It is a training pass with one member, built by the same ``build_members`` as every
member of a fused sweep.
"""

from __future__ import annotations

from rsdistill.experiments.procedures import PROCEDURES, RunRequest, prepare_teacher_and_data
from rsdistill.experiments.records import check_run_dir
from rsdistill.runtime.checkpoint import resolve_model_path
from rsdistill.training.members import DistillerFactory, MemberSpec, build_members, student_distiller
from rsdistill.training.trainer import Trainer


def train_members(req: RunRequest, specs: list[MemberSpec],
                  factory: DistillerFactory = student_distiller) -> list[dict]:
    """Everything a run does around its members: the run-directory checks, the teacher
    and data, the members, the training pass."""
    check_run_dir(req.out, req.record, req.resume, req.overwrite)
    teacher_path = req.distill_cfg.teacher if req.distill_cfg is not None else ""
    teacher, view, data = prepare_teacher_and_data(req.data_cfg, teacher_path, req.progress)
    members = build_members(specs, req.train_cfg, data, teacher, view, factory)
    trainer = Trainer(req.out, data, members, req.train_cfg, progress=req.progress,
                      teacher_file=resolve_model_path(teacher_path) if teacher_path else None)
    return trainer.fit(resume=req.resume)


def single_spec(req: RunRequest) -> MemberSpec:
    return MemberSpec("model", req.out, req.distill_cfg, req.record, built=req.built)


@PROCEDURES.register("single")
def train_single(req: RunRequest) -> dict:
    (metrics,) = train_members(req, [single_spec(req)])
    return metrics
