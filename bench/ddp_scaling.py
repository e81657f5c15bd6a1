"""Data-parallel scaling: training images/s for 1, 2, ..., N processes.

    # every world size from 1 to N, one torchrun each (a Markdown table at the end):
    python bench/ddp_scaling.py --launch 4 --model resnet8x4 --batch-size 256
    # one world size, launched by yourself:
    torchrun --nproc-per-node 4 bench/ddp_scaling.py --model resnet8x4 --batch-size 256
    # CPU smoke test (gloo):
    python bench/ddp_scaling.py --launch 2 --device cpu --precision fp32 --steps 2 --warmup 1 \\
        --batch-size 8 --images 32 --image-size 16

Each step is the engine's data-parallel step: every process draws the global batch's
order and augmentation from the same generator and keeps its shard
(``TensorBatches(shard=...)``), runs ``Distiller.forward_train`` (cross-entropy) under the
chosen precision, and the gradients are averaged with ``average_gradients`` (one
all-reduce) before the SGD step. ``--batch-size`` is the global batch, so the work per
step is the same at every world size and images/s should grow with it. Data are random
uint8 images held on each process (as the cached dataset is), so disk and decoding are
left out. Rank 0 prints ``world_size,images_per_s,step_ms``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--launch", type=int, default=0, metavar="N",
                   help="run torchrun for world sizes 1..N and print a table")
    p.add_argument("--model", default="resnet8")
    p.add_argument("--batch-size", type=int, default=256, help="global batch (default 256)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--images", type=int, default=4096, help="synthetic training images")
    p.add_argument("--classes", type=int, default=21)
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    return p.parse_args(argv)


def bench(args: argparse.Namespace) -> None:
    from rsdistill.data.augment import BatchAugment
    from rsdistill.data.loader import Normalizer, TensorBatches
    from rsdistill.runtime import distributed
    from rsdistill.training.distiller import Distiller
    from rsdistill.runtime.precision import resolve_precision
    from rsdistill.losses import build_method
    from rsdistill.training.distiller import TrainStep
    from rsdistill.models import build_model

    distributed.check_config(args.batch_size, args.device)
    distributed.setup(args.device)
    precision = resolve_precision(args.precision, args.device)
    device = distributed.device_for(precision.device)
    from dataclasses import replace
    precision = replace(precision, device=device)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, args.image_size, args.image_size),
                           dtype=torch.uint8, generator=g)
    labels = torch.randint(0, args.classes, (args.images,), generator=g)
    model = build_model(args.model, args.classes, args.image_size)
    distiller = Distiller(model, build_method("none"))
    precision.prepare_model(distiller)
    params = distiller.trainable_parameters()
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    batches = TensorBatches(images, labels, torch.arange(args.images), args.batch_size,
                            Normalizer(), shuffle=True, augment=BatchAugment(), drop_last=True,
                            generator=torch.Generator().manual_seed(1), device=device,
                            shard=distributed.shard())

    def stream():
        while True:
            yield from batches

    it = stream()

    def step() -> None:
        batch = next(it)
        x = precision.prepare_input(batch.images)
        with precision.autocast():
            _, terms = distiller.forward_train(TrainStep(x, batch.labels))
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if distributed.is_distributed():
            distributed.average_gradients(params, batch.labels.numel() / batch.global_size, False)
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        distributed.barrier()

    distiller.train()
    for _ in range(args.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    if distributed.is_main():
        world = distributed.world_size()
        print(f"{world},{args.steps * args.batch_size / seconds:.1f},"
              f"{1000 * seconds / args.steps:.2f}", flush=True)
    distributed.cleanup()


def launch(args: argparse.Namespace, argv: list[str]) -> None:
    rest = []
    skip = False
    for a in argv:  # drop --launch N; each torchrun gets the other options
        if skip:
            skip = False
        elif a == "--launch":
            skip = True
        elif not a.startswith("--launch="):
            rest.append(a)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    rows = []
    for world in range(1, args.launch + 1):
        if args.batch_size % world:
            print(f"skipping world size {world}: --batch-size {args.batch_size} is not "
                  "divisible by it", file=sys.stderr)
            continue
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               "--nproc-per-node", str(world), __file__, *rest],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-3000:])
            raise SystemExit(f"world size {world} failed")
        line = [ln for ln in proc.stdout.splitlines() if ln.count(",") == 2][-1]
        w, ips, ms = line.split(",")
        rows.append((int(w), float(ips), float(ms)))
    base = rows[0][1] if rows else 1.0
    print(f"model {args.model}, global batch {args.batch_size}, {args.image_size} px, "
          f"device {args.device}, precision {args.precision}")
    print("| processes | images/s | ms/step | speedup | efficiency |")
    print("|---:|---:|---:|---:|---:|")
    for w, ips, ms in rows:
        print(f"| {w} | {ips:.0f} | {ms:.1f} | {ips / base:.2f}x | {ips / base / w:.0%} |")


if __name__ == "__main__":
    argv = sys.argv[1:]
    ns = parse_args(argv)
    if ns.launch:
        launch(ns, argv)
    else:
        bench(ns)
