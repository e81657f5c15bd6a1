"""How to step N small students on one batch fastest on a CPU.

    python bench/member_step.py --students 11 --batch-size 32 --rounds 10

Times one training step of every student (bf16 autocast + channels_last, SGD) on the same
batch, four ways: a plain loop with 1 intra-op thread, a plain loop with all cores as
intra-op threads, the loop split over worker threads (one intra-op thread each; what the
fused trainer does), and the students stacked with ``torch.func`` (``vmap`` over stacked
parameters turns the convolutions into grouped ones). Prints seconds per round (all N
students one step) and the speed-up over the 1-thread loop.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from rsdistill.models import build_model


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet8")
    ap.add_argument("--students", type=int, default=11)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    torch.manual_seed(0)
    models = [build_model(args.model, args.classes, args.image_size).to(memory_format=torch.channels_last)
              for _ in range(args.students)]
    opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in models]
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size).to(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch_size,))

    def step(i: int) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = models[i](x)
        loss = F.cross_entropy(out.float(), y)
        opts[i].zero_grad(set_to_none=True)
        loss.backward()
        opts[i].step()

    def timed(fn) -> float:
        fn()  # warm-up
        start = time.perf_counter()
        for _ in range(args.rounds):
            fn()
        return (time.perf_counter() - start) / args.rounds

    results = {}
    torch.set_num_threads(1)
    results["loop, 1 intra-op thread"] = timed(lambda: [step(i) for i in range(args.students)])
    torch.set_num_threads(cores)
    results[f"loop, {cores} intra-op threads"] = timed(lambda: [step(i) for i in range(args.students)])
    torch.set_num_threads(1)
    with ThreadPoolExecutor(cores) as pool:
        chunks = [range(k, args.students, cores) for k in range(cores)]
        results[f"{cores} worker threads × 1 intra-op thread"] = timed(
            lambda: [f.result() for f in [pool.submit(lambda c=c: [step(i) for i in c]) for c in chunks]])

    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    stacked_opt = torch.optim.SGD(params.values(), lr=0.01, momentum=0.9)

    def stacked_step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = vmap(lambda p, b, inp: functional_call(base, (p, b), (inp,)),
                       in_dims=(0, 0, None))(params, buffers, x)
        loss = F.cross_entropy(out.float().reshape(-1, args.classes), y.repeat(args.students))
        stacked_opt.zero_grad(set_to_none=True)
        loss.backward()
        stacked_opt.step()

    torch.set_num_threads(cores)
    results[f"torch.func stacked (grouped convs), {cores} threads"] = timed(stacked_step)

    ref = results["loop, 1 intra-op thread"]
    print(f"{args.students} × {args.model}, batch {args.batch_size}, {args.image_size} px, "
          f"{cores} cores, bf16 autocast + channels_last")
    print("| way | s per round | speed-up vs 1-thread loop |")
    print("|---|---|---|")
    for name, sec in results.items():
        print(f"| {name} | {sec:.3f} | {ref / sec:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
