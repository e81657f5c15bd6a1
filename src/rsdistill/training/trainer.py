"""The training loop, for one model or several students in one pass over the data.

Per epoch: augmented batches from the cached tensor, each member's named loss terms
summed and stepped, validation accuracy for model selection; callbacks write the files
(checkpoints, history, TensorBoard). A single run is a pass with one member; a fused
sweep's members share everything that does not depend on the student: each batch is
drawn and augmented once and the teacher runs once, then every member takes its own
step. A member therefore sees exactly the batches a single run with the same seed
would, and its result equals that run's. The test split is evaluated once at the end,
with each member's best weights (``training/results.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from rsdistill.data.module import PreparedData
from rsdistill.errors import ConfigError, TrainingError, WriteError
from rsdistill.evaluation.evaluate import evaluate_logits
from rsdistill.io import kill_point
from rsdistill.losses.method import soft_label_methods
from rsdistill.runtime import distributed
from rsdistill.runtime.checkpoint import load_state, save_state
from rsdistill.runtime.optim import build_optimizer, build_scheduler
from rsdistill.runtime.precision import resolve_precision
from rsdistill.runtime.rundir import STATE_FILE
from rsdistill.training.callbacks import Callback, default_callbacks
from rsdistill.training.config import TrainConfig
from rsdistill.training.distiller import Trainable, TrainStep
from rsdistill.training.members import Member, members_side_by_side, parameter_groups
from rsdistill.training.results import StageReporter, final_metrics
from rsdistill.training.teacher_pass import SharedTeacher

log = logging.getLogger(__name__)


def _first_non_finite(distiller: Trainable) -> str | None:
    """Name of the first trained parameter or buffer holding inf/nan (the teacher is frozen)."""
    for name, t in (*distiller.named_parameters(), *distiller.named_buffers()):
        if not name.startswith("teacher.") and t.is_floating_point() and not torch.isfinite(t).all():
            return name
    return None


class Trainer:
    """Trains ``members`` (one or more) in one pass per epoch; state lives in ``state_dir``."""

    def __init__(self, state_dir: Path, data: PreparedData, members: list[Member],
                 cfg: TrainConfig, *, progress: bool = True, announce: bool = True,
                 callbacks: list[Callback] | None = None, teacher_file: Path | None = None
                 ) -> None:
        cfg.validate()
        if not members:
            raise ValueError("a training pass needs at least one member")
        self.state_dir = Path(state_dir)
        self.data = data
        self.cfg = cfg
        self.progress = progress
        self.members = members
        self.callbacks = default_callbacks() if callbacks is None else callbacks
        distributed.setup(cfg.device)
        self.precision = resolve_precision(cfg.precision, cfg.device)
        if distributed.is_distributed():
            self.precision = replace(self.precision,
                                     device=distributed.device_for(self.precision.device))
        if announce and distributed.is_main():
            log.info("training in %s, %d intra-op thread%s", self.precision.summary(),
                     torch.get_num_threads(), "" if torch.get_num_threads() == 1 else "s")
        self.steps_per_epoch = len(data.batches("train", cfg.batch_size, train=True))
        if self.steps_per_epoch == 0:
            raise ConfigError("the training split is empty; check --split-fractions")
        self._check_world(data, cfg)
        for m in members:
            if distributed.is_distributed() and cfg.sync_bn:
                distributed.convert_sync_bn(m.distiller)
            self.precision.prepare_model(m.distiller)
            params = parameter_groups(m.distiller.trainable_parameters(), m.distiller.student,
                                      cfg.lr, cfg.backbone_lr_scale)
            m.optimizer = build_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay,
                                          cfg.momentum)
            total = cfg.epochs * self.steps_per_epoch
            m.scheduler = build_scheduler(cfg.schedule, m.optimizer, total,
                                          cfg.warmup_epochs * self.steps_per_epoch)
        self.teacher = SharedTeacher([m.distiller for m in members], data, self.precision,
                                     teacher_file)
        self._check_mix()
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.epoch = 0
        # The last epoch last.pt holds (the last complete one).
        self.saved_epoch = 0
        self.train_seconds = 0.0
        # Optional: called before each epoch for the intra-op thread count (a sweep's seed
        # workers share the cores and rebalance as seeds finish).
        self.thread_budget: Callable[[], int] | None = None
        # (epochs left in this pass, seconds of the last epoch) -> the ETA the caller
        # knows (e.g. a whole sweep's), appended to each epoch's log line.
        self.eta: Callable[[int, float], str] | None = None

    def _check_world(self, data: PreparedData, cfg: TrainConfig) -> None:
        world, last = distributed.world_size(), data.split["train"].numel() % cfg.batch_size
        if world > 1 and 0 < last < world:
            raise ConfigError(f"the last training batch holds {last} image(s), fewer than the "
                              f"{world} processes; choose a --batch-size that leaves none or "
                              f"at least {world} over")

    def _check_mix(self) -> None:
        if self.data.config.transfer_set:
            # Its images have no label: only a teacher's soft targets can teach them.
            unfit = sorted({m.distiller.method_name for m in self.members
                            if not (m.distiller.needs_teacher and m.distiller.soft_labels)})
            if unfit:
                raise ConfigError(f"--transfer-set images have no labels and are taught by the "
                                  f"teacher, which {', '.join(unfit)} (at this --alpha) does "
                                  f"not use; distil with --method fm or kd --alpha > 0")
        if not self.data.mix.enabled:
            return
        if distributed.is_distributed():
            raise ConfigError("--mix is not supported under torchrun yet (an image's mixing "
                              "partner may sit on another process's shard); drop --mix")
        hard_only = sorted({m.distiller.method_name for m in self.members
                            if not m.distiller.soft_labels})
        if hard_only:
            raise ConfigError(f"--mix {self.data.mix.mode} gives mixed label distributions, "
                              f"which {', '.join(hard_only)} cannot use (it needs one true "
                              f"class per image); drop --mix or choose one of: "
                              f"{', '.join(soft_label_methods())}")

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def state(self) -> dict:
        return {
            "epoch": self.epoch,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "train_seconds": self.train_seconds,
            "members": {m.name: m.state() for m in self.members},
        }

    def load(self, state: dict) -> None:
        for m in self.members:
            m.load(state["members"][m.name])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = int(state["epoch"])
        self.train_seconds = float(state["train_seconds"])

    def _last_good(self) -> str:
        if self.saved_epoch == 0:
            return "no checkpoint was written yet"
        return f"the last good checkpoint (epoch {self.saved_epoch}) stays in {self.state_file}"

    def _saved(self) -> str:
        """What survives a failed write, and how to go on."""
        k = self.saved_epoch
        if k == 0:
            return "no epoch was saved yet; fix that and run again"
        done = "training is complete and" if k == self.cfg.epochs else \
            (f"epochs 1-{k} are" if k > 1 else "epoch 1 is")
        then = "evaluate it" if k == self.cfg.epochs else f"continue from epoch {k + 1}"
        return f"{done} saved in {self.state_file}: fix that and rerun with --resume to {then}"

    def _save_state(self) -> None:
        """The commit point of an epoch: every other file follows last.pt."""
        save_state(self.state_file, self.state())
        self.saved_epoch = self.epoch

    def _teacher_outputs(self, x: torch.Tensor, batch=None):
        return self.teacher.outputs(x, batch)

    def _members_side_by_side(self):
        """``each(fn)`` over the members, on worker threads where that is faster."""
        cpu = self.precision.device.type == "cpu" and not distributed.is_distributed()
        return members_side_by_side(len(self.members), cpu)

    def _validate(self, val_labels: torch.Tensor) -> list[float | None]:
        """Validation accuracy of every member (``None`` without a validation split),
        on the member threads like the training steps."""
        if not val_labels.numel():
            return [None] * len(self.members)

        def accuracy(i: int) -> float:
            logits = evaluate_logits(self.members[i].distiller.student, self.data, "val",
                                     self.precision)
            return float((logits.argmax(1) == val_labels).float().mean())

        with self._members_side_by_side() as each:
            return each(accuracy)

    def _member_step(self, m: Member, step_no: int, step: TrainStep, n: int, global_n: int,
                     parallel: bool):
        """One optimiser step of one member; returns its loss, logits and named terms."""
        with self.precision.autocast():
            logits, terms = m.distiller.forward_train(step)
        loss = sum(terms.values())
        if parallel:
            # Every rank must take part in the all-reduce; a non-finite loss on
            # any rank is flagged through it and raised on all of them.
            m.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if distributed.average_gradients(m.distiller.trainable_parameters(), n / global_n,
                                             not bool(torch.isfinite(loss.detach()))):
                raise TrainingError(
                    f"loss of {m.run.path} became non-finite at epoch {self.epoch + 1}, "
                    f"step {step_no + 1} (on one of the processes); {self._last_good()}; "
                    "lower --lr or check the data")
        elif not torch.isfinite(loss):
            # detach(): float() of a tensor that requires grad warns on stderr,
            # which would break the CLI's one-line error.
            raise TrainingError(
                f"loss of {m.run.path} became {float(loss.detach())} at epoch "
                f"{self.epoch + 1}, step {step_no + 1}; {self._last_good()}; "
                "lower --lr or check the data"
            )
        if not parallel:
            m.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        m.optimizer.step()
        m.scheduler.step()
        return loss, logits, terms

    def train_epoch(self) -> list[dict]:
        """One pass over the training split; returns one row of averages per member."""
        for m in self.members:
            m.distiller.train()
        sums = [dict[str, float]() for _ in self.members]
        correct = [0] * len(self.members)
        seen = labelled = 0  # a transfer set's images (label -100) count for no accuracy
        parallel = distributed.is_distributed()
        view = self.teacher.view
        if self.teacher.bank is not None:  # stored views and logits: no teacher pass
            batches = self.teacher.bank_batches(self.epoch, self.cfg.batch_size, self.generator,
                                                self.precision.device)
        else:
            batches = self.data.batches("train", self.cfg.batch_size, train=True,
                                        generator=self.generator, device=self.precision.device,
                                        shard=distributed.shard(),
                                        teacher_view=self.teacher.view_key(),
                                        teacher_normalizer=view.normalizer if view else None)
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", leave=False,
                   disable=None if self.progress and distributed.is_main() else True)
        with self._members_side_by_side() as each:
            for step_no, batch in enumerate(bar):
                kill_point("step")
                x = self.precision.prepare_input(batch.images)
                # The teacher reads its own (higher-resolution) view of the same augmented scenes.
                xt = x if batch.teacher_images is None else \
                    self.precision.prepare_input(batch.teacher_images)
                teacher_logits, teacher_features = self._teacher_outputs(xt, batch)
                # Mixed label distributions under Mixup/CutMix, the class indices otherwise.
                targets = batch.labels if batch.targets is None else batch.targets
                step = TrainStep(x, targets, xt, teacher_logits, teacher_features, self.epoch)
                n = batch.labels.numel()
                seen += n
                labelled += int((batch.labels >= 0).sum())

                def run(i: int) -> None:
                    # Members are independent given the batch and the teacher's outputs.
                    loss, logits, terms = self._member_step(self.members[i], step_no, step, n,
                                                            batch.global_size, parallel)
                    correct[i] += int((logits.argmax(1) == batch.labels).sum())
                    acc = sums[i]
                    acc["loss"] = acc.get("loss", 0.0) + float(loss.detach()) * n
                    for k, v in terms.items():
                        acc[f"loss_{k}"] = acc.get(f"loss_{k}", 0.0) + float(v.detach()) * n

                each(run)
                best = max(range(len(self.members)), key=lambda i: correct[i])
                bar.set_postfix(loss=f"{sums[best]['loss'] / seen:.3f}",
                                acc=f"{correct[best] / max(labelled, 1):.3f}")
        # A finite loss can still take a step to inf/nan weights (the last step of an
        # epoch is never followed by a loss check): never validate or checkpoint those.
        for m in self.members:
            bad = _first_non_finite(m.distiller)
            if bad is not None:
                raise TrainingError(
                    f"weights of {m.run.path} became non-finite ({bad}) at epoch "
                    f"{self.epoch + 1}; {self._last_good()}; lower --lr or check the data"
                )
        if parallel:
            seen, labelled, correct = self._reduce_sums(seen, labelled, correct, sums)
        rows = []
        for i in range(len(self.members)):
            row = {k: v / seen for k, v in sums[i].items()}
            row["train_accuracy"] = correct[i] / max(labelled, 1)
            rows.append(row)
        return rows

    def _reduce_sums(self, seen: int, labelled: int, correct: list[int], sums: list[dict]
                     ) -> tuple[int, int, list[int]]:
        """Sums over every rank's shard: the epoch's averages over the global batches."""
        keys = [sorted(acc) for acc in sums]
        flat = [float(seen), float(labelled), *map(float, correct)]
        for acc, ks in zip(sums, keys):
            flat += [acc[k] for k in ks]
        flat = distributed.all_reduce_sum(flat, self.precision.device)
        seen, labelled = int(round(flat[0])), int(round(flat[1]))
        correct = [int(round(c)) for c in flat[2:2 + len(correct)]]
        pos = 2 + len(correct)
        for acc, ks in zip(sums, keys):
            for k in ks:
                acc[k], pos = flat[pos], pos + 1
        return seen, labelled, correct

    def fit(self, resume: bool = False) -> list[dict]:
        """Trains to the last epoch (continuing last.pt with ``resume``); returns every
        member's metrics, in member order."""
        if resume and self.state_file.is_file():
            self.load(load_state(self.state_file))
            self.saved_epoch = self.epoch
            log.info("resuming %s at epoch %d/%d", self.state_dir, self.epoch, self.cfg.epochs)
        # Under torchrun only rank 0 validates and writes; the others wait at a barrier.
        main = distributed.is_main()
        callbacks = self.callbacks if main else []
        val_labels = self.data.dataset.labels[self.data.split.val]
        if self.cfg.teacher_cache != "off" and self.epoch < self.cfg.epochs:
            self.teacher.build_cache(self.cfg, self.progress and main)
        try:
            for cb in callbacks:
                cb.on_fit_start(self)
            while self.epoch < self.cfg.epochs:
                self._epoch(val_labels, main, callbacks)
        except WriteError as exc:
            raise WriteError(f"{exc}; {self._saved()}") from exc.__cause__
        finally:
            for cb in callbacks:
                cb.on_fit_end(self)
            # Training is over (or aborted): no hook may stay on the student or the teacher,
            # which callers keep using. The metrics come from the reloaded model.pt.
            for m in self.members:
                m.distiller.close()
        results = self._final_metrics() if main else None
        return distributed.broadcast_object(results)

    def _final_metrics(self) -> list[dict]:
        n = len(self.members)
        stage = StageReporter(self.progress and distributed.is_main(), n)
        try:
            results = [final_metrics(m, self.data, self.cfg, self.precision, self.train_seconds,
                                     self.epoch, n, self.teacher.cache_seconds,
                                     stage=stage.named(m.name if n > 1 else ""))
                       for m in self.members]
            stage.summary([m.name for m in self.members], results)
            return results
        except WriteError as exc:
            raise WriteError(f"{exc}; {self._saved()}") from exc.__cause__
        finally:
            stage.close()

    def _epoch(self, val_labels: torch.Tensor, main: bool, callbacks: list[Callback]) -> None:
        if self.thread_budget is not None:
            torch.set_num_threads(self.thread_budget())
        start = time.perf_counter()
        rows = self.train_epoch()
        elapsed = time.perf_counter() - start
        self.train_seconds += elapsed
        self.epoch += 1
        if not main:
            distributed.barrier()
            return
        for m, row, val_acc in zip(self.members, rows, self._validate(val_labels)):
            if val_acc is None:
                val_acc = row["train_accuracy"]
            row = {"epoch": self.epoch, **row, "val_accuracy": val_acc,
                   "lr": m.scheduler.get_last_lr()[0],
                   "epoch_seconds": elapsed / len(self.members),
                   **m.distiller.first_layer_stats()}
            # Ties keep the later epoch: with a decaying schedule it is better converged.
            improved = val_acc >= m.best_val
            if improved:
                m.best_val, m.best_epoch = val_acc, self.epoch
                m.keep_best(self.epoch)
            m.history.append(row)
            for cb in callbacks:
                cb.on_member_epoch(self, m, row, improved)
        self._save_state()
        for cb in callbacks:
            cb.on_epoch_end(self)
        best = max(self.members, key=lambda m: m.history[-1]["val_accuracy"])
        eta = "" if self.eta is None else f"; {self.eta(self.cfg.epochs - self.epoch, elapsed)}"
        log.info("epoch %d/%d  %sloss %.4f  train %.3f  val %.3f  (%.1fs%s)", self.epoch,
                 self.cfg.epochs, f"best {best.name}: " if len(self.members) > 1 else "",
                 best.history[-1]["loss"], best.history[-1]["train_accuracy"],
                 best.history[-1]["val_accuracy"], elapsed, eta)
        distributed.barrier()
