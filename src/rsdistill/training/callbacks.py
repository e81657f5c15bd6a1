"""What a training pass writes as it goes, kept out of the loop itself.

The loop calls every callback at the start (after loading last.pt when resuming), for
each member after each epoch (with the epoch's row and whether validation improved),
after each epoch once all members are done and last.pt is written, and at the end
(also when aborted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from rsdistill.io import atomic_torch_save, write_json
from rsdistill.runtime.environment import versions
from rsdistill.runtime.rundir import TENSORBOARD_DIR, VERSIONS_FILE
from rsdistill.training.members import Member


class Trainer(Protocol):
    """What a callback reads of the training pass that calls it."""

    members: list[Member]
    epoch: int


class Callback:
    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_member_epoch(self, trainer: Trainer, member: Member, row: dict,
                        improved: bool) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer) -> None:
        pass

    def on_fit_end(self, trainer: Trainer) -> None:
        pass


class RunFiles(Callback):
    """config.yaml and versions.json first; after every epoch, once the trainer has
    written last.pt (the commit), each member's epochs.csv and, when its validation
    accuracy improved, its model.pt (and dml's peers). Every write is atomic.

    So no file ever gets ahead of last.pt; a kill or a full disk between last.pt and the
    others leaves them an epoch behind, and a resume rewrites them from last.pt first.
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        for m in trainer.members:
            m.run.write_config(m.config_record)
            write_json(m.run.file(VERSIONS_FILE), versions())
            if trainer.epoch > 0:
                write_member_files(m)

    def on_epoch_end(self, trainer: Trainer) -> None:
        for m in trainer.members:
            write_member_files(m, models=m.best_epoch == trainer.epoch)


def write_member_files(member: Member, models: bool = True) -> None:
    """The member's epochs.csv and (with ``models``) its best model files, as its state
    (last.pt) has them."""
    if models:
        for name, obj in member.best_files.items():
            atomic_torch_save(obj, member.run.file(name))
    member.run.write_history(member.history)


class TensorBoard(Callback):
    """Per-epoch scalars to TensorBoard when it is installed; silently nothing otherwise."""

    def __init__(self) -> None:
        self.writers: dict[str, object] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is optional
            return
        self.writers = {m.name: SummaryWriter(str(Path(m.run.path) / TENSORBOARD_DIR))
                        for m in trainer.members}

    def on_member_epoch(self, trainer: Trainer, member: Member, row: dict,
                        improved: bool) -> None:
        writer = self.writers.get(member.name)
        if writer is None:
            return
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "epoch":
                writer.add_scalar(key, value, trainer.epoch)
        writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


def default_callbacks() -> list[Callback]:
    return [RunFiles(), TensorBoard()]
