"""One training loop for teachers and students.

Per epoch: augmented batches from the cached tensor, the distiller's named loss
terms summed and stepped, validation accuracy for model selection, and an atomic
checkpoint of everything needed to resume (weights, optimiser, schedule, RNG
streams, history). The test split is evaluated once, with the best weights.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import yaml
from tqdm import tqdm

from rsdistill.data.module import PreparedData
from rsdistill.engine.checkpoint import MODEL_FILE, STATE_FILE, load_state, save_model, save_state
from rsdistill.engine.distiller import Distiller
from rsdistill.engine.environment import versions
from rsdistill.engine.optim import build_optimizer, build_scheduler
from rsdistill.engine.precision import Precision, resolve_precision
from rsdistill.errors import ConfigError, TrainingError
from rsdistill.evaluation import classification_metrics, inference_report, predict, timed_predict
from rsdistill.io import atomic_write_text, read_json, write_json
from rsdistill.models import count_flops, count_parameters

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
EPOCHS_FILE = "epochs.csv"
VERSIONS_FILE = "versions.json"


@dataclass
class TrainConfig:
    model: str = "resnet8"
    epochs: int = 60
    batch_size: int = 64
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
    pretrained: str | None = None

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "latency_runs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ConfigError("--weight-decay and --warmup-epochs must be >= 0")


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


class Trainer:
    def __init__(self, run_dir: Path, data: PreparedData, distiller: Distiller, cfg: TrainConfig,
                 config_record: dict, model_meta: dict, progress: bool = True) -> None:
        cfg.validate()
        self.run = RunDirectory(run_dir)
        self.data = data
        self.cfg = cfg
        self.config_record = config_record
        self.model_meta = model_meta
        self.progress = progress
        self.precision = resolve_precision(cfg.precision, cfg.device)
        self.distiller = distiller
        self.precision.prepare_model(distiller)
        steps_per_epoch = len(data.batches("train", cfg.batch_size, train=True))
        if steps_per_epoch == 0:
            raise ConfigError("the training split is empty; check --split")
        self.steps_per_epoch = steps_per_epoch
        self.optimizer = build_optimizer(cfg.optimizer, distiller.trainable_parameters(), cfg.lr,
                                         cfg.weight_decay, cfg.momentum)
        self.scheduler = build_scheduler(cfg.schedule, self.optimizer, cfg.epochs * steps_per_epoch,
                                         cfg.warmup_epochs * steps_per_epoch)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.epoch = 0
        self.best_val = -1.0
        self.best_epoch = -1
        self.history: list[dict] = []
        self.train_seconds = 0.0

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        return {
            "epoch": self.epoch,
            "model": self.distiller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "train_seconds": self.train_seconds,
        }

    def load(self, state: dict) -> None:
        self.distiller.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = int(state["epoch"])
        self.best_val = float(state["best_val"])
        self.best_epoch = int(state["best_epoch"])
        self.history = list(state["history"])
        self.train_seconds = float(state["train_seconds"])

    # ------------------------------------------------------------------ loop
    def train_epoch(self) -> dict:
        d = self.distiller
        d.train()
        sums: dict[str, float] = {}
        correct = seen = 0
        batches = self.data.batches("train", self.cfg.batch_size, train=True,
                                    generator=self.generator, device=self.precision.device)
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", leave=False,
                   disable=None if self.progress else True)
        for step, batch in enumerate(bar):
            x = self.precision.prepare_input(batch.images)
            with self.precision.autocast():
                logits, terms = d.forward_train(x, batch.labels)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {float(loss)} at epoch {self.epoch + 1}, step {step + 1}; "
                    f"the last good checkpoint (epoch {self.epoch}) stays in "
                    f"{self.run.file(STATE_FILE)}; lower --lr or check the data"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            n = batch.labels.numel()
            seen += n
            correct += int((logits.argmax(1) == batch.labels).sum())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * n
            for k, v in terms.items():
                sums[f"loss_{k}"] = sums.get(f"loss_{k}", 0.0) + float(v.detach()) * n
            bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}", acc=f"{correct / seen:.3f}")
        row = {k: v / seen for k, v in sums.items()}
        row["train_accuracy"] = correct / seen
        return row

    def fit(self, resume: bool = False) -> dict:
        if resume and self.run.has_state():
            self.load(load_state(self.run.file(STATE_FILE)))
            log.info("resuming %s at epoch %d/%d", self.run.path, self.epoch, self.cfg.epochs)
        self.run.write_config(self.config_record)
        write_json(self.run.file(VERSIONS_FILE), versions())
        board = _TensorBoard(self.run.file("tensorboard"))
        try:
            while self.epoch < self.cfg.epochs:
                start = time.perf_counter()
                row = {"epoch": self.epoch + 1, **self.train_epoch()}
                elapsed = time.perf_counter() - start
                self.train_seconds += elapsed
                val_logits = evaluate_logits(self.distiller.student, self.data, "val", self.precision)
                val_labels = self.data.dataset.labels[self.data.split.val]
                val_acc = float((val_logits.argmax(1) == val_labels).float().mean()) \
                    if val_labels.numel() else row["train_accuracy"]
                row.update(val_accuracy=val_acc, lr=self.scheduler.get_last_lr()[0],
                           epoch_seconds=elapsed, **self.distiller.first_layer_stats())
                self.epoch += 1
                # Ties keep the later epoch: with a decaying schedule it is the better-converged one.
                if val_acc >= self.best_val:
                    self.best_val, self.best_epoch = val_acc, self.epoch
                    save_model(self.run.file(MODEL_FILE), self.distiller.student,
                               {**self.model_meta, "epoch": self.epoch, "val_accuracy": val_acc})
                self.history.append(row)
                save_state(self.run.file(STATE_FILE), self.state())
                self.run.write_history(self.history)
                board.log(row, self.epoch)
                log.info("epoch %d/%d  loss %.4f  train %.3f  val %.3f  (%.1fs)", self.epoch,
                         self.cfg.epochs, row["loss"], row["train_accuracy"], val_acc, elapsed)
        finally:
            board.close()
        return self.finish()

    def finish(self) -> dict:
        from rsdistill.engine.checkpoint import load_model

        student, meta = load_model(self.run.file(MODEL_FILE))
        metrics = evaluate_model(student, meta, self.data, "test", self.precision,
                                 resolve_precision(self.cfg.inference_precision, self.cfg.device),
                                 self.cfg.latency_runs)
        metrics["run"] = {
            "kind": self.config_record.get("kind", "train"),
            "model": meta["model"],
            "checkpoint": MODEL_FILE,
            "best_epoch": self.best_epoch,
            "epochs": self.cfg.epochs,
            "val_accuracy": self.best_val,
            "train_seconds": round(self.train_seconds, 3),
            "seconds_per_epoch": round(self.train_seconds / max(1, len(self.history)), 3),
            "train_precision": self.precision.describe(),
        }
        metrics["checkpoint_bytes"] = self.run.file(MODEL_FILE).stat().st_size
        metrics["first_layer"] = {"name": self.distiller.first_layer_name,
                                  **self.distiller.first_layer_stats()}
        metrics["versions"] = versions()
        write_json(self.run.file(METRICS_FILE), metrics)
        return metrics


def evaluate_model(model: torch.nn.Module, meta: dict, data: PreparedData, split: str,
                   precision: Precision, timing_precision: Precision,
                   latency_runs: int = 100) -> dict:
    """All metrics of ``model`` on ``split``: quality, size, cost and inference time."""
    model = precision.prepare_model(model)
    images = data.dataset.images[data.split[split]]
    labels = data.dataset.labels[data.split[split]]
    logits = predict(model, images, data.normalizer, precision)
    metrics = classification_metrics(labels, logits.argmax(1), data.classes)
    metrics["split"] = split
    size = meta["image_size"]
    metrics["params"] = count_parameters(model)
    metrics["flops"] = count_flops(model.float().to(memory_format=torch.contiguous_format), size)
    timed = timing_precision.prepare_model(model)
    _, seconds = timed_predict(timed, images, data.normalizer, timing_precision)
    inference = inference_report(timed, (3, size, size), timing_precision, n_runs=latency_runs)
    inference["test_seconds"] = seconds
    inference["test_images"] = int(images.shape[0])
    metrics["inference"] = inference
    metrics["evaluated_precision"] = precision.name
    return metrics
