"""The models a training pass steps: one for a single run, several for a fused sweep.

A single run is a fused run with one member. :func:`build_members` is the one place a
member is made (seeded, its student built, then its loss and distiller), so a member
of a sweep starts exactly like the single run with the same settings and seed: the
same random numbers are drawn in the same order because it is the same code.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from rsdistill.data.module import PreparedData
from rsdistill.losses import MethodConfig
from rsdistill.models import build_model, classifier_layer
from rsdistill.runtime.environment import seed_everything
from rsdistill.runtime.precision import torch_threads
from rsdistill.runtime.checkpoint import model_object
from rsdistill.runtime.rundir import MODEL_FILE, RunDirectory
from rsdistill.training.config import TrainConfig
from rsdistill.training.distiller import Distiller, TeacherView, Trainable, example_input
from rsdistill.training.peers import peer_files


@dataclass
class Member:
    """One model being trained: its distiller, optimiser state, run directory and history."""

    name: str
    distiller: Trainable
    run: RunDirectory
    config_record: dict
    model_meta: dict
    optimizer: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    best_val: float = -1.0
    best_epoch: int = -1
    history: list[dict] = field(default_factory=list)
    # The model files of the best epoch so far (model.pt, dml's peer1.pt, ...), kept in
    # last.pt: the checkpoint alone then says what model.pt must be, and a resume rewrites
    # it should a kill or a full disk have come between the two writes.
    best_files: dict[str, dict] = field(default_factory=dict)

    def keep_best(self, epoch: int) -> None:
        """Snapshot the model files of ``epoch``, the new best."""
        meta = {**self.model_meta, "epoch": epoch, "val_accuracy": self.best_val}
        self.best_files = {MODEL_FILE: model_object(self.distiller.student, meta),
                           **peer_files(self.distiller, self.model_meta, epoch)}

    def state(self) -> dict:
        return {"model": self.distiller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "best_val": self.best_val,
                "best_epoch": self.best_epoch, "history": self.history,
                "best_files": self.best_files}

    def load(self, state: dict) -> None:
        self.distiller.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.best_val = float(state["best_val"])
        self.best_epoch = int(state["best_epoch"])
        self.history = list(state["history"])
        # A checkpoint written before the snapshot was part of it has none.
        self.best_files = dict(state.get("best_files") or {})


@dataclass
class MemberSpec:
    """What one member trains: its name, run directory, method (None = labels only), the
    config record its run directory gets, and the method's loss when the run already
    built it (``None``: the member builds its own)."""

    name: str
    run_dir: Path
    method: MethodConfig | None
    record: dict
    built: Any = None


def model_meta(model_name: str, data: PreparedData) -> dict:
    """What a model file records beside the weights to rebuild and feed the model."""
    return {
        "model": model_name,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "image_size": data.dataset.image_size,
        "dataset": data.dataset.name,
        "data_fingerprint": data.dataset.fingerprint,
        "normalization": data.normalizer.to_dict(),
        # The model reads image_size px made from source_size px images (None: decoded
        # straight to image_size): a teacher trained on a low-resolution student's view.
        "source_size": data.config.source_size,
    }


# (spec, train config, data, teacher, teacher view) -> distiller; called right after the
# member's seeding, so everything it initialises draws from the same stream in every run.
DistillerFactory = Callable[[MemberSpec, TrainConfig, PreparedData, "nn.Module | None",
                             "TeacherView | None"], Trainable]


def student_distiller(spec: MemberSpec, cfg: TrainConfig, data: PreparedData,
                      teacher: nn.Module | None, view: TeacherView | None) -> Distiller:
    """One student and its method's loss (plain cross-entropy without a method)."""
    student = build_model(cfg.model, data.num_classes, data.dataset.image_size,
                          pretrained=cfg.pretrained)
    method = spec.method if spec.method is not None else MethodConfig(method="none", alpha=0.0)
    loss = member_loss(spec, method, cfg)
    if spec.method is None:
        return Distiller(student, loss)
    # Built right after its student, under the member's seed: a FitNet regressor is then
    # initialised alike in a single run and in a sweep.
    return Distiller(student, loss, teacher=teacher, nuclear_beta=method.beta(),
                     alpha=method.alpha, student_layers=method.student_layers,
                     teacher_layers=method.teacher_layers,
                     example_input=example_input(data.dataset.image_size), teacher_view=view)


def member_loss(spec: MemberSpec, method: MethodConfig, cfg: TrainConfig) -> Any:
    """The loss the run built for this member, or a new one (a sweep member's own)."""
    return spec.built if spec.built is not None else method.build(cfg.label_smoothing)


def build_members(specs: list[MemberSpec], cfg: TrainConfig, data: PreparedData,
                  teacher: nn.Module | None = None, view: TeacherView | None = None,
                  factory: DistillerFactory = student_distiller) -> list[Member]:
    """Every member seeded with ``cfg.seed`` and built in order."""
    members = []
    for spec in specs:
        seed_everything(cfg.seed)  # each starts as a single run with this seed would
        distiller = factory(spec, cfg, data, teacher, view)
        members.append(Member(spec.name, distiller, RunDirectory(spec.run_dir), spec.record,
                              model_meta(cfg.model, data)))
    return members


def member_workers(n: int, cpu: bool) -> int:
    """Threads stepping ``n`` fused members side by side (1 = the plain loop)."""
    return max(1, min(n, torch.get_num_threads())) if cpu and n > 1 else 1


@contextlib.contextmanager
def members_side_by_side(n: int, cpu: bool):
    """Yields ``each(fn)``: ``[fn(i) for i in range(n)]``, on member threads when there
    are several members on a CPU (each thread with its share of the intra-op threads).

    On a CPU a small student's step uses a second intra-op thread poorly (a resnet8 at
    batch 32 runs about as fast on one thread as on two), while two members stepped from
    two threads, one intra-op thread each, run 1.5x faster: conv kernels release the GIL.
    Not under torchrun (each step all-reduces in order) or on a GPU (``cpu=False``).
    Worker ``k`` runs every ``k``-th member, in order, so each member's arithmetic is
    exactly that of the plain loop; results come back in member order.
    """
    workers = member_workers(n, cpu)
    if workers == 1:
        yield lambda fn: [fn(i) for i in range(n)]
        return
    with torch_threads(max(1, torch.get_num_threads() // workers)), \
            ThreadPoolExecutor(workers) as pool:
        def each(fn):
            chunks = [range(k, n, workers) for k in range(workers)]
            futures = [pool.submit(lambda c=c: [(i, fn(i)) for i in c]) for c in chunks]
            out = [None] * n
            for f in futures:
                for i, value in f.result():
                    out[i] = value
            return out

        yield each


def parameter_groups(trainable: Iterable[nn.Parameter], model: nn.Module, lr: float,
                     backbone_lr_scale: float) -> list[dict] | list[nn.Parameter]:
    """The optimiser's parameter groups for a fine-tune.

    The parameters of ``model`` except its classifier learn at ``lr × backbone_lr_scale``;
    the head and anything else trainable (another peer, a loss's regressor: all new)
    at ``lr``. The full-rate group comes first, so the logged learning rate stays the
    peak ``lr``'s. A scale of 1 gives the plain parameter list (one group, as before).
    """
    trainable = list(trainable)
    if backbone_lr_scale == 1.0:
        return trainable
    head_ids = {id(p) for p in classifier_layer(model).parameters()}
    slow_ids = {id(p) for p in model.parameters() if id(p) not in head_ids}
    fast = [p for p in trainable if id(p) not in slow_ids]
    slow = [p for p in trainable if id(p) in slow_ids]
    groups = [{"params": fast}, {"params": slow, "lr": lr * backbone_lr_scale}]
    return [g for g in groups if g["params"]]
