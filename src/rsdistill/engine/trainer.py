"""One training loop for teachers and students.

Per epoch: augmented batches from the cached tensor, the distiller's named loss
terms summed and stepped, validation accuracy for model selection, and an atomic
checkpoint of everything needed to resume (weights, optimiser, schedule, RNG
streams, history). The test split is evaluated once, with the best weights.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import yaml
from tqdm import tqdm

from rsdistill.data.module import PreparedData
from rsdistill.engine import distributed
from rsdistill.engine.checkpoint import MODEL_FILE, STATE_FILE, load_state, save_model, save_state
from rsdistill.engine.distiller import Distiller, weight_stats
from rsdistill.engine.peers import peer_metrics, peer_models, save_peers, training_cost
from rsdistill.engine.environment import versions
from rsdistill.engine.optim import (OPTIMIZERS, SCHEDULES, build_optimizer, build_scheduler,
                                   parameter_groups)
from rsdistill.engine.precision import PRECISIONS, Precision, resolve_precision, torch_threads
from rsdistill.errors import ConfigError, TrainingError
from rsdistill.evaluation import classification_metrics, inference_report, predict, timed_predict
from rsdistill.evaluation.backends import Backend, as_backend
from rsdistill.io import atomic_write_text, read_json, write_json
from rsdistill.losses import check_label_smoothing
from rsdistill.models import first_weight_layer

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
EPOCHS_FILE = "epochs.csv"
VERSIONS_FILE = "versions.json"


@dataclass
class TrainConfig:
    model: str = "resnet8"
    epochs: int = 60
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    inference_precision: str = "fp32"
    latency_runs: int = 100
    inference_threads: int = 0  # 0 = torch's default (all cores)
    pretrained: str | None = None
    # The learning rate of the student's pretrained layers (all but the classifier) as a
    # fraction of --lr: a new head learns fast while the backbone moves gently.
    backbone_lr_scale: float = 1.0

    def validate(self) -> None:
        if self.inference_threads < 0:
            raise ConfigError(f"--inference-threads must be >= 0, got {self.inference_threads}")
        for name in ("epochs", "batch_size", "latency_runs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        # Also catches nan; torch would raise a bare ValueError (a traceback) for these.
        for name in ("weight_decay", "momentum", "backbone_lr_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")
        # Names are checked here, before any data is decoded.
        OPTIMIZERS.get(self.optimizer)
        SCHEDULES.get(self.schedule)
        for name in ("precision", "inference_precision"):
            if getattr(self, name) not in PRECISIONS:
                raise ConfigError(f"invalid --{name.replace('_', '-')} {getattr(self, name)!r}; "
                                  f"choose one of: {', '.join(PRECISIONS)}")
        check_label_smoothing(self.label_smoothing)
        distributed.check_config(self.batch_size, self.device)


class RunDirectory:
    """Files of one run; every write is atomic."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()

    def file(self, name: str) -> Path:
        return self.path / name

    def has_state(self) -> bool:
        return self.file(STATE_FILE).is_file()

    def write_config(self, config: dict) -> None:
        atomic_write_text(self.file(CONFIG_FILE), yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict:
        with open(self.file(CONFIG_FILE)) as fh:
            return yaml.safe_load(fh)

    def write_history(self, history: list[dict]) -> None:
        if not history:
            return
        keys = list(history[0])
        for row in history[1:]:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.file(EPOCHS_FILE), buf.getvalue())

    def metrics(self) -> dict:
        return read_json(self.file(METRICS_FILE))


class _TensorBoard:
    """Per-epoch scalars to TensorBoard when it is installed; silently nothing otherwise."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is optional
            self.writer = None
        else:
            self.writer = SummaryWriter(str(log_dir))

    def log(self, row: dict, epoch: int) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "epoch":
                self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def evaluate_logits(model: torch.nn.Module, data: PreparedData, split: str,
                    precision: Precision) -> torch.Tensor:
    images = data.dataset.images[data.split[split]]
    return predict(model, images, data.normalizer, precision)


@dataclass
class Member:
    """One model being trained: its distiller, optimiser state, run directory and history."""

    name: str
    distiller: Distiller
    run: RunDirectory
    config_record: dict
    model_meta: dict
    optimizer: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    best_val: float = -1.0
    best_epoch: int = -1
    history: list[dict] = field(default_factory=list)

    def state(self) -> dict:
        return {"model": self.distiller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "best_val": self.best_val,
                "best_epoch": self.best_epoch, "history": self.history}

    def load(self, state: dict) -> None:
        self.distiller.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.best_val = float(state["best_val"])
        self.best_epoch = int(state["best_epoch"])
        self.history = list(state["history"])


def _first_non_finite(distiller: Distiller) -> str | None:
    """Name of the first trained parameter or buffer holding inf/nan (the teacher is frozen)."""
    for name, t in (*distiller.named_parameters(), *distiller.named_buffers()):
        if not name.startswith("teacher.") and t.is_floating_point() and not torch.isfinite(t).all():
            return name
    return None


class Trainer:
    """Trains one model, or several students in one pass over the data (a fused sweep).

    Fused members share everything that does not depend on the student: each batch is
    drawn and augmented once and the teacher runs once; then every member takes its
    own step. A member therefore sees exactly the batches a single run with the same
    seed would, and its result equals that run's.
    """

    def __init__(self, run_dir: Path, data: PreparedData, distiller: Distiller, cfg: TrainConfig,
                 config_record: dict, model_meta: dict, progress: bool = True) -> None:
        member = Member("model", distiller, RunDirectory(run_dir), config_record, model_meta)
        self._setup(Path(run_dir), data, [member], cfg, progress)

    @classmethod
    def fused(cls, state_dir: Path, data: PreparedData, members: list[Member], cfg: TrainConfig,
              progress: bool = True) -> "Trainer":
        self = cls.__new__(cls)
        self._setup(Path(state_dir), data, members, cfg, progress)
        return self

    def _setup(self, state_dir: Path, data: PreparedData, members: list[Member],
               cfg: TrainConfig, progress: bool) -> None:
        cfg.validate()
        self.state_dir = state_dir
        self.data = data
        self.cfg = cfg
        self.progress = progress
        distributed.setup(cfg.device)
        self.precision = resolve_precision(cfg.precision, cfg.device)
        if distributed.is_distributed():
            self.precision = replace(self.precision,
                                     device=distributed.device_for(self.precision.device))
        self.members = members
        steps_per_epoch = len(data.batches("train", cfg.batch_size, train=True))
        if steps_per_epoch == 0:
            raise ConfigError("the training split is empty; check --split-fractions")
        world = distributed.world_size()
        last = data.split["train"].numel() % cfg.batch_size
        if world > 1 and 0 < last < world:
            raise ConfigError(f"the last training batch holds {last} image(s), fewer than the "
                              f"{world} processes; choose a --batch-size that leaves none or "
                              f"at least {world} over")
        self.steps_per_epoch = steps_per_epoch
        for m in members:
            if distributed.is_distributed() and distributed.sync_bn():
                distributed.convert_sync_bn(m.distiller)
            self.precision.prepare_model(m.distiller)
            params = parameter_groups(m.distiller.trainable_parameters(), m.distiller.student,
                                      cfg.lr, cfg.backbone_lr_scale)
            m.optimizer = build_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay,
                                          cfg.momentum)
            m.scheduler = build_scheduler(cfg.schedule, m.optimizer, cfg.epochs * steps_per_epoch,
                                          cfg.warmup_epochs * steps_per_epoch)
        teachers = {id(m.distiller.teacher) for m in members if m.distiller.teacher is not None}
        if len(teachers) > 1:
            raise ValueError("fused members must share one teacher")
        # The teacher runs once per batch and its tapped maps go to every member, which
        # is right only if they all tap the same layers (a sweep shares method and layers).
        tapped = {m.distiller.teacher_layers for m in members if m.distiller.uses_features}
        if len(tapped) > 1:
            raise ValueError(f"fused members must tap the same teacher layers, got {sorted(tapped)}")
        views = {m.distiller.teacher_view for m in members if m.distiller.teacher is not None}
        if len(views) > 1:
            raise ValueError("fused members must share one teacher view")
        self.teacher_view = next(iter(views), None)
        if data.mix.enabled:
            if distributed.is_distributed():
                raise ConfigError("--mix is not supported under torchrun yet (an image's mixing "
                                  "partner may sit on another process's shard); drop --mix")
            hard_only = sorted({type(m.distiller.loss).__name__ for m in members
                                if not m.distiller.loss.soft_labels})
            if hard_only:
                raise ConfigError(f"--mix {data.mix.mode} gives mixed label distributions, which "
                                  f"{', '.join(hard_only)} cannot use (it needs one true class "
                                  "per image); drop --mix or choose kd, fitnet, at or dml")
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.epoch = 0
        self.train_seconds = 0.0
        # Optional: called before each epoch for the intra-op thread count (a sweep's seed
        # workers share the cores and rebalance as seeds finish).
        self.thread_budget: Callable[[], int] | None = None

    # Single-model conveniences.
    @property
    def distiller(self) -> Distiller:
        return self.members[0].distiller

    @property
    def run(self) -> RunDirectory:
        return self.members[0].run

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    # ------------------------------------------------------------------ state
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
        if self.epoch == 0 or not self.state_file.is_file():
            return "no checkpoint was written yet"
        return f"the last good checkpoint (epoch {self.epoch}) stays in {self.state_file}"

    # ------------------------------------------------------------------ loop
    def _teacher_logits(self, x: torch.Tensor
                        ) -> tuple[torch.Tensor | None, list[torch.Tensor] | None]:
        """The teacher's logits and tapped feature maps for this batch, computed once for
        all members (``(None, None)`` when no member needs the teacher)."""
        users = self._teacher_users()
        if not users:
            return None, None
        # Through a member that taps features, if any: its hooks record them. The other
        # members' hooks on the same teacher see the same pass; they drop it in forward_train.
        runner = next((d for d in users if d.uses_features), users[0])
        with self.precision.autocast():
            return runner.teacher_outputs(x)

    def _teacher_users(self) -> list:
        """The members' distillers whose loss needs the (shared) teacher's outputs."""
        return [m.distiller for m in self.members
                if m.distiller.teacher is not None and m.distiller.loss.needs_teacher]

    def _teacher_input_size(self) -> int | None:
        """The resolution the teacher reads (``None`` when no member needs a teacher)."""
        if not self._teacher_users():
            return None
        return self.teacher_view.image_size if self.teacher_view else self.data.dataset.image_size

    def _member_workers(self) -> int:
        """Threads stepping fused members side by side (1 = the plain loop).

        On a CPU a small student's step uses a second intra-op thread poorly (a resnet8 at
        batch 32 runs about as fast on one thread as on two), while two members stepped
        from two threads, one intra-op thread each, run 1.5× faster: conv kernels release
        the GIL. Never under torchrun (each step all-reduces in order) or on a GPU.
        """
        if len(self.members) < 2 or distributed.is_distributed() or self.precision.device.type != "cpu":
            return 1
        return max(1, min(len(self.members), torch.get_num_threads()))

    @contextlib.contextmanager
    def _members_side_by_side(self):
        """Yields ``each(fn)``: ``[fn(i) for i in range(len(members))]``, on the member
        threads when there are several (each with its share of the intra-op threads).

        Worker ``k`` runs every ``k``-th member, in order, so each member's arithmetic is
        exactly that of the plain loop; results come back in member order.
        """
        n = len(self.members)
        workers = self._member_workers()
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

    def _member_step(self, m: Member, step: int, batch, x: torch.Tensor, xt: torch.Tensor,
                     targets: torch.Tensor, teacher_logits, teacher_features, parallel: bool):
        """One optimiser step of one member; returns its loss, logits and named terms."""
        with self.precision.autocast():
            logits, terms = m.distiller.forward_train(
                x, targets, teacher_images=xt, teacher_logits=teacher_logits,
                teacher_features=teacher_features, epoch=self.epoch)
        loss = sum(terms.values())
        n = batch.labels.numel()
        if parallel:
            # Every rank must take part in the all-reduce; a non-finite loss on
            # any rank is flagged through it and raised on all of them.
            m.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if distributed.average_gradients(m.distiller.trainable_parameters(),
                                             n / batch.global_size,
                                             not bool(torch.isfinite(loss.detach()))):
                raise TrainingError(
                    f"loss of {m.run.path} became non-finite at epoch {self.epoch + 1}, "
                    f"step {step + 1} (on one of the processes); {self._last_good()}; "
                    "lower --lr or check the data")
        elif not torch.isfinite(loss):
            # detach(): float() of a tensor that requires grad warns on stderr,
            # which would break the CLI's one-line error.
            raise TrainingError(
                f"loss of {m.run.path} became {float(loss.detach())} at epoch "
                f"{self.epoch + 1}, step {step + 1}; {self._last_good()}; "
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
        seen = 0
        parallel = distributed.is_distributed()
        view = self.teacher_view
        batches = self.data.batches("train", self.cfg.batch_size, train=True,
                                    generator=self.generator, device=self.precision.device,
                                    shard=distributed.shard(),
                                    teacher_size=self._teacher_input_size(),
                                    teacher_normalizer=view.normalizer if view else None)
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", leave=False,
                   disable=None if self.progress and distributed.is_main() else True)
        with self._members_side_by_side() as each:
            for step, batch in enumerate(bar):
                x = self.precision.prepare_input(batch.images)
                # The teacher reads its own (higher-resolution) view of the same augmented scenes.
                xt = x if batch.teacher_images is None else \
                    self.precision.prepare_input(batch.teacher_images)
                teacher_logits, teacher_features = self._teacher_logits(xt)
                # Mixed label distributions under Mixup/CutMix, the class indices otherwise.
                targets = batch.labels if batch.targets is None else batch.targets
                n = batch.labels.numel()
                seen += n

                def run(i: int) -> None:
                    # Members are independent given the batch and the teacher's outputs.
                    loss, logits, terms = self._member_step(
                        self.members[i], step, batch, x, xt, targets, teacher_logits,
                        teacher_features, parallel)
                    correct[i] += int((logits.argmax(1) == batch.labels).sum())
                    acc = sums[i]
                    acc["loss"] = acc.get("loss", 0.0) + float(loss.detach()) * n
                    for k, v in terms.items():
                        acc[f"loss_{k}"] = acc.get(f"loss_{k}", 0.0) + float(v.detach()) * n

                each(run)
                best = max(range(len(self.members)), key=lambda i: correct[i])
                bar.set_postfix(loss=f"{sums[best]['loss'] / seen:.3f}",
                                acc=f"{correct[best] / seen:.3f}")
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
            # Sums over every rank's shard: the epoch's averages over the global batches.
            keys = [sorted(acc) for acc in sums]
            flat = [float(seen), *map(float, correct)]
            for acc, ks in zip(sums, keys):
                flat += [acc[k] for k in ks]
            flat = distributed.all_reduce_sum(flat, self.precision.device)
            seen, correct, pos = int(round(flat[0])), [int(round(c)) for c in
                                                      flat[1:1 + len(correct)]], 1 + len(correct)
            for acc, ks in zip(sums, keys):
                for k in ks:
                    acc[k], pos = flat[pos], pos + 1
        rows = []
        for i in range(len(self.members)):
            row = {k: v / seen for k, v in sums[i].items()}
            row["train_accuracy"] = correct[i] / seen
            rows.append(row)
        return rows

    def fit(self, resume: bool = False) -> list[dict] | dict:
        if resume and self.state_file.is_file():
            self.load(load_state(self.state_file))
            log.info("resuming %s at epoch %d/%d", self.state_dir, self.epoch, self.cfg.epochs)
        # Under torchrun only rank 0 validates and writes; the others wait at a barrier.
        main = distributed.is_main()
        if main:
            for m in self.members:
                m.run.write_config(m.config_record)
                write_json(m.run.file(VERSIONS_FILE), versions())
        boards = [_TensorBoard(m.run.file("tensorboard")) for m in self.members] if main else []
        val_labels = self.data.dataset.labels[self.data.split.val]
        try:
            while self.epoch < self.cfg.epochs:
                if self.thread_budget is not None:
                    torch.set_num_threads(self.thread_budget())
                start = time.perf_counter()
                rows = self.train_epoch()
                elapsed = time.perf_counter() - start
                self.train_seconds += elapsed
                self.epoch += 1
                if not main:
                    distributed.barrier()
                    continue
                val_accs = self._validate(val_labels)
                for m, row, board, val_acc in zip(self.members, rows, boards, val_accs):
                    if val_acc is None:
                        val_acc = row["train_accuracy"]
                    row = {"epoch": self.epoch, **row, "val_accuracy": val_acc,
                           "lr": m.scheduler.get_last_lr()[0],
                           "epoch_seconds": elapsed / len(self.members),
                           **m.distiller.first_layer_stats()}
                    # Ties keep the later epoch: with a decaying schedule it is better converged.
                    if val_acc >= m.best_val:
                        m.best_val, m.best_epoch = val_acc, self.epoch
                        save_model(m.run.file(MODEL_FILE), m.distiller.student,
                                   {**m.model_meta, "epoch": self.epoch, "val_accuracy": val_acc})
                        save_peers(m.distiller, m.run.path, m.model_meta, self.epoch)
                    m.history.append(row)
                    m.run.write_history(m.history)
                    board.log(row, self.epoch)
                save_state(self.state_file, self.state())
                best = max(self.members, key=lambda m: m.history[-1]["val_accuracy"])
                log.info("epoch %d/%d  %sloss %.4f  train %.3f  val %.3f  (%.1fs)", self.epoch,
                         self.cfg.epochs, f"best {best.name}: " if len(self.members) > 1 else "",
                         best.history[-1]["loss"], best.history[-1]["train_accuracy"],
                         best.history[-1]["val_accuracy"], elapsed)
                distributed.barrier()
        finally:
            for board in boards:
                board.close()
            # Training is over (or aborted): no hook may stay on the student or the teacher,
            # which callers keep using. finish() evaluates the reloaded model.pt.
            for m in self.members:
                m.distiller.close()
        results = [self.finish(m) for m in self.members] if main else None
        results = distributed.broadcast_object(results)
        return results[0] if len(results) == 1 else results

    def finish(self, m: Member | None = None) -> dict:
        from rsdistill.engine.checkpoint import load_model

        m = m or self.members[0]
        student, meta = load_model(m.run.file(MODEL_FILE))
        metrics = evaluate_model(student, meta, self.data, "test", self.precision,
                                 resolve_precision(self.cfg.inference_precision, self.cfg.device),
                                 self.cfg.latency_runs, self.cfg.inference_threads)
        metrics["run"] = {
            "kind": m.config_record.get("kind", "train"),
            "model": meta["model"],
            "checkpoint": MODEL_FILE,
            "best_epoch": m.best_epoch,
            "epochs": self.cfg.epochs,
            "val_accuracy": m.best_val,
            "fused_members": len(self.members),
            "train_seconds": round(self.train_seconds / len(self.members), 3),
            "seconds_per_epoch": round(self.train_seconds / len(self.members) / max(1, self.epoch), 3),
            "train_precision": self.precision.describe(),
        }
        if distributed.is_distributed():
            metrics["run"]["distributed"] = {"world_size": distributed.world_size(),
                                             "sync_bn": distributed.sync_bn()}
        metrics["run"].update(training_cost(m.distiller))
        if peer_models(m.distiller):
            metrics["peers"] = peer_metrics(m.distiller, m.run.path, metrics, self.data,
                                            self.precision)
        metrics["checkpoint_bytes"] = m.run.file(MODEL_FILE).stat().st_size
        # Of the evaluated (best-val) weights, not of the last epoch's.
        layer_name, layer = first_weight_layer(student)
        metrics["first_layer"] = {"name": layer_name, **weight_stats(layer.weight)}
        metrics["versions"] = versions()
        write_json(m.run.file(METRICS_FILE), metrics)
        return metrics


def evaluate_model(model: torch.nn.Module | Backend, meta: dict, data: PreparedData, split: str,
                   precision: Precision, timing_precision: Precision,
                   latency_runs: int = 100, inference_threads: int = 0) -> dict:
    """All metrics of ``model`` on ``split``: quality, size, cost and inference time.

    ``model`` is a module or any predictor backend (e.g. an exported ONNX model), so a
    deployed model is measured by exactly the code that measures its checkpoint.
    """
    backend = as_backend(model)
    images = data.dataset.images[data.split[split]]
    labels = data.dataset.labels[data.split[split]]
    logits = predict(backend.prepare(precision), images, data.normalizer, precision)
    metrics = classification_metrics(labels, logits.argmax(1), data.classes)
    metrics["split"] = split
    size = meta["image_size"]
    metrics.update(backend.cost(size))
    timed = backend.prepare(timing_precision)
    with torch_threads(inference_threads):
        _, seconds = timed_predict(timed, images, data.normalizer, timing_precision)
        inference = inference_report(timed, (3, size, size), timing_precision, n_runs=latency_runs)
    inference.update(backend.describe())
    inference["test_seconds"] = seconds
    inference["test_images"] = int(images.shape[0])
    metrics["inference"] = inference
    metrics["evaluated_precision"] = precision.name
    return metrics
