"""What a training pass writes as it goes, kept out of the loop itself.

The loop calls every callback at the start, for each member after each epoch (with the
epoch's row and whether validation improved), after each epoch once all members are
done, and at the end (also when aborted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from rsdistill.io import write_json
from rsdistill.runtime.checkpoint import save_model, save_state
from rsdistill.runtime.environment import versions
from rsdistill.runtime.rundir import MODEL_FILE, TENSORBOARD_DIR, VERSIONS_FILE
from rsdistill.training.members import Member
from rsdistill.training.peers import save_peers


class Trainer(Protocol):
    """What a callback reads of the training pass that calls it."""

    members: list[Member]
    epoch: int

    @property
    def state_file(self) -> Path: ...

    def state(self) -> dict: ...


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
    """config.yaml and versions.json first; model.pt (and dml's peers) whenever a
    member's validation accuracy improves; epochs.csv per member and the resumable
    last.pt after every epoch. Every write is atomic."""

    def on_fit_start(self, trainer: Trainer) -> None:
        for m in trainer.members:
            m.run.write_config(m.config_record)
            write_json(m.run.file(VERSIONS_FILE), versions())

    def on_member_epoch(self, trainer: Trainer, member: Member, row: dict,
                        improved: bool) -> None:
        if improved:
            meta = {**member.model_meta, "epoch": trainer.epoch, "val_accuracy": member.best_val}
            save_model(member.run.file(MODEL_FILE), member.distiller.student, meta)
            save_peers(member.distiller, member.run.path, member.model_meta, trainer.epoch)
        member.run.write_history(member.history)

    def on_epoch_end(self, trainer: Trainer) -> None:
        save_state(trainer.state_file, trainer.state())


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
