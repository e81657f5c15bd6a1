"""Training throughput: the engine under each precision setting vs a plain fp32 eager loop.

    python bench/train_throughput.py [--steps 40] [--warmup 5] [--repeats 3] [--threads N]
    python bench/train_throughput.py --steps 2 --warmup 1 --repeats 1   # smoke test
    # a CPU without native bf16, emulated on one that has it (oneDNN and ATen capped to AVX2):
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python bench/train_throughput.py

Every column trains the same architecture from the same initial weights on random uint8
images (32×32 by default), batch size 64, with SGD (lr 0.05, Nesterov momentum 0.9,
weight decay 5e-4).

* engine auto / fp32 / fp32 + channels_last: ``Trainer.train_epoch`` itself, i.e. batches
  from ``TensorBatches`` (shuffle, uint8 -> float, flips / 90° rotations / reflect-pad
  crops on the batch), ``Distiller.forward_train``, the finite-loss check, backward, the
  optimiser and cosine-schedule steps and the per-step bookkeeping, under what
  ``--precision auto`` picks on this CPU (bf16 autocast + channels_last where bf16 is
  native, fp32 + channels_last elsewhere), under ``--precision fp32`` (plain layout), and
  under fp32 with channels_last.
* fp32 eager loop: a plain loop, shuffled uint8 batch -> float / 255 (contiguous fp32),
  model, cross-entropy (KD + CE for the distillation row), backward, ``SGD.step``. It does
  no augmentation at all, so it does less work per image and the speedup is conservative.

Each column first runs ``--warmup`` steps (oneDNN builds its kernels for each shape on
first use), then ``--steps`` timed steps; this is repeated ``--repeats`` times, all
columns interleaved so background load hits them alike, and the median (or with
``--stat min`` the fastest) is reported.
Goals: auto >= engine fp32 on every CPU; >= 3x the eager loop where bf16 is native.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from rsdistill.data.augment import BatchAugment
from rsdistill.data.dataset import SceneDataset
from rsdistill.data.loader import Normalizer
from rsdistill.data.module import DataConfig, PreparedData
from rsdistill.data.splits import Split
from rsdistill.training.distiller import Distiller
from rsdistill.runtime.environment import cpu_name
from rsdistill.runtime.precision import Precision, resolve_precision
from rsdistill.training.config import TrainConfig
from rsdistill.runtime.rundir import RunDirectory
from rsdistill.training.members import Member
from rsdistill.training.trainer import Trainer
from rsdistill.losses import build_method
from rsdistill.models import build_model

GOAL = 3.0
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4
ALPHA, TEMPERATURE = 0.5, 4.0


@dataclass
class Case:
    label: str
    student: str
    teacher: str | None = None


def random_images(n: int, size: int, num_classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    return images, labels


def prepared(images: torch.Tensor, labels: torch.Tensor, n_train: int, num_classes: int
             ) -> PreparedData:
    """The engine's data object over random images; the first ``n_train`` form the train split."""
    size = images.shape[-1]
    ds = SceneDataset(name="random", classes=[f"c{i}" for i in range(num_classes)],
                      images=images, labels=labels, files=[f"{i}.png" for i in range(len(labels))],
                      image_size=size, source="random", fingerprint="random")
    empty = torch.zeros(0, dtype=torch.int64)
    split = Split(train=torch.arange(n_train), val=empty, test=empty)
    return PreparedData(DataConfig(dataset="folder", image_size=size), ds, split, Normalizer(),
                        BatchAugment())


def fresh_models(case: Case, num_classes: int, size: int, seed: int):
    torch.manual_seed(seed)
    student = build_model(case.student, num_classes, size)
    teacher = build_model(case.teacher, num_classes, size) if case.teacher else None
    return student, teacher


# The engine's settings compared per row: what --precision auto picks on this CPU, the
# plain fp32 eager baseline (--precision fp32) and fp32 with channels_last.
ENGINE_MODES = {
    "auto": lambda: resolve_precision("auto", "cpu"),
    "fp32": lambda: resolve_precision("fp32", "cpu"),
    "fp32_cl": lambda: Precision(torch.device("cpu"), None, True, reason="benchmark"),
}


class EngineRunner:
    def __init__(self, case: Case, images, labels, args, run_dir: Path, mode: str = "auto") -> None:
        student, teacher = fresh_models(case, args.num_classes, args.image_size, args.seed)
        bs = args.batch_size
        self.warm = prepared(images, labels, args.warmup * bs, args.num_classes)
        self.timed = prepared(images, labels, args.steps * bs, args.num_classes)
        if teacher is None:
            loss = build_method("none")
        else:
            loss = build_method("kd", temperature=TEMPERATURE)
        distiller = Distiller(student, loss, teacher=teacher, alpha=ALPHA)
        cfg = TrainConfig(model=case.student, epochs=1000, batch_size=bs, optimizer="sgd", lr=LR,
                          momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, schedule="cosine",
                          seed=args.seed, device="cpu", precision="auto", latency_runs=1)
        member = Member("model", distiller, RunDirectory(run_dir), {}, {})
        self.trainer = Trainer(run_dir, self.timed, [member], cfg, progress=False, callbacks=[])
        self.trainer.precision = self.trainer.teacher.precision = ENGINE_MODES[mode]()
        # The optimiser holds the parameters themselves, so a layout change keeps it valid.
        self.trainer.precision.prepare_model(distiller.student)
        if not self.trainer.precision.channels_last:
            distiller.to(memory_format=torch.contiguous_format)
        self.precision = self.trainer.precision

    def run(self, steps: int, warmup: int) -> float:
        """Seconds for ``steps`` timed steps after ``warmup`` untimed ones."""
        if warmup:
            self.trainer.data = self.warm
            self.trainer.train_epoch()
        self.trainer.data = self.timed
        start = time.perf_counter()
        self.trainer.train_epoch()
        return time.perf_counter() - start


class EagerRunner:
    """The plain fp32 loop every PyTorch tutorial writes."""

    def __init__(self, case: Case, images, labels, args) -> None:
        self.model, self.teacher = fresh_models(case, args.num_classes, args.image_size, args.seed)
        self.model.train()
        if self.teacher is not None:
            self.teacher.eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM,
                                   weight_decay=WEIGHT_DECAY, nesterov=True)
        self.images, self.labels = images, labels
        self.batch_size = args.batch_size
        self.generator = torch.Generator().manual_seed(args.seed)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        if self.teacher is None:
            return ce
        with torch.no_grad():
            t_logits = self.teacher(x)
        kd = F.kl_div(F.log_softmax(logits / TEMPERATURE, 1), F.log_softmax(t_logits / TEMPERATURE, 1),
                      log_target=True, reduction="batchmean") * TEMPERATURE ** 2
        return ALPHA * kd + (1 - ALPHA) * ce

    def _steps(self, n: int) -> None:
        order = torch.randperm(n * self.batch_size, generator=self.generator)
        for b in range(n):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[idx].float().div_(255.0)
            y = self.labels[idx]
            loss = self._loss(x, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            float(loss.detach())  # a loop logs its loss; this also waits for the step

    def run(self, steps: int, warmup: int) -> float:
        if warmup:
            self._steps(warmup)
        start = time.perf_counter()
        self._steps(steps)
        return time.perf_counter() - start


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return ", ".join(f for f in wanted if f in flags) or "none of " + "/".join(wanted)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet8,resnet8x4",
                    help="comma-separated models trained alone (default resnet8,resnet8x4)")
    ap.add_argument("--distill", default="resnet8x4:resnet8",
                    help="teacher:student distillation rows, comma-separated; '' for none")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--num-classes", type=int, default=21)
    ap.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before each measurement")
    ap.add_argument("--repeats", type=int, default=3, help="measurements per column")
    ap.add_argument("--stat", choices=("median", "min"), default="median",
                    help="median of the repeats, or the fastest (least disturbed by other "
                         "load on a shared machine)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name in ("batch_size", "image_size", "num_classes", "steps", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [Case(m, m) for m in args.models.split(",") if m.strip()]
    for pair in filter(None, (p.strip() for p in args.distill.split(","))):
        teacher, _, student = pair.partition(":")
        cases.append(Case(f"KD {teacher}→{student}", student, teacher))
    n = max(args.steps, args.warmup, 1) * args.batch_size
    images, labels = random_images(n, args.image_size, args.num_classes, args.seed)
    precision = resolve_precision("auto", "cpu")
    caps = ", ".join(f"{k}={os.environ[k]}" for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
                     if os.environ.get(k))
    print(f"# training throughput, {cpu_name()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, CPU flags: {cpu_flags()}"
          + (f"; ISA capped by {caps}" if caps else ""))
    print(f"# auto = {precision.summary()}")
    print("# engine columns: Trainer.train_epoch with augmented TensorBatches; eager loop: plain "
          "fp32 PyTorch loop, contiguous, no augmentation")
    print(f"# batch {args.batch_size}, {args.image_size}×{args.image_size}, {args.num_classes} "
          f"classes, {args.warmup} warm-up + {args.steps} timed steps, {args.stat} of "
          f"{args.repeats}")
    print()
    print("| step | engine auto img/s | engine fp32 img/s | engine fp32 + channels_last img/s "
          "| fp32 eager loop img/s | auto / engine fp32 | auto / eager loop |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    speedups = []
    with tempfile.TemporaryDirectory(prefix="rsdistill-bench-") as tmp:
        for i, case in enumerate(cases):
            runners = {mode: EngineRunner(case, images, labels, args, Path(tmp) / f"run{i}{mode}",
                                          mode) for mode in ENGINE_MODES}
            runners["eager"] = EagerRunner(case, images, labels, args)
            times = {name: [] for name in runners}
            for _ in range(args.repeats):  # interleaved, so background load hits all alike
                for name, runner in runners.items():
                    times[name].append(runner.run(args.steps, args.warmup))
            images_timed = args.steps * args.batch_size
            pick = statistics.median if args.stat == "median" else min
            rate = {name: images_timed / pick(t) for name, t in times.items()}
            speedups.append((rate["auto"] / rate["fp32"], rate["auto"] / rate["eager"]))
            print(f"| {case.label} | {rate['auto']:,.0f} | {rate['fp32']:,.0f} | "
                  f"{rate['fp32_cl']:,.0f} | {rate['eager']:,.0f} | "
                  f"{rate['auto'] / rate['fp32']:.2f}× | {rate['auto'] / rate['eager']:.2f}× |",
                  flush=True)
    print()
    worst_fp32 = min(a for a, _ in speedups)
    print(f"goal auto >= engine fp32: {'met' if worst_fp32 >= 1 else 'NOT met'} "
          f"(lowest {worst_fp32:.2f}×)")
    if precision.name == "bf16":
        worst = min(b for _, b in speedups)
        print(f"goal auto >= {GOAL:.0f}× the eager loop (native bf16): "
              f"{'met' if worst >= GOAL else 'NOT met'} (lowest {worst:.2f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
