"""Data-parallel training under ``torchrun``: process group, shards, gradient averaging.

Launched by ``torchrun --nproc-per-node N -m rsdistill train|distill|sweep ...`` the
environment names ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`setup` then joins
the process group (nccl on CUDA, one GPU per local rank; gloo on CPU). Without torchrun
(or with ``WORLD_SIZE=1``) every function here is a no-op and training is exactly the
single-process loop.

Every rank draws the same permutation and augmentation from the same generator and
keeps its slice of each global batch (``--batch-size`` images in all). After each
backward pass the gradients are averaged with one all-reduce, each rank's gradient of
its own mean loss weighted by its share of the global batch: the result is the
gradient of the global batch's mean loss, as in a single process (up to float
summation order). That is what DistributedDataParallel does; it is done here directly
because a training step is ``Distiller.forward_train`` (a teacher, hooks on tapped
layers, several students in a fused sweep), not one ``forward`` that DDP could wrap,
and because unequal shards (the last, partial batch) must be weighted by their size.
The modules are never wrapped, so checkpoints hold plain state dicts that load under
any world size.

Only rank 0 validates, writes files and logs; the others wait at a barrier.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

import torch
from torch import nn

from rsdistill.errors import ConfigError

def launched_world_size() -> int:
    """The world size torchrun asked for (1 when not launched by it)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def launched_rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def local_rank() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    return torch.distributed.get_world_size() if initialized() else 1


def rank() -> int:
    return torch.distributed.get_rank() if initialized() else 0


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    return rank() == 0


def check_config(batch_size: int, device: str, sync_bn: bool = False) -> None:
    """Checks that need only the launch environment, before any data is decoded."""
    world = launched_world_size()
    if world <= 1:
        return
    if batch_size % world:
        raise ConfigError(f"--batch-size {batch_size} is the global batch and must be divisible "
                          f"by the number of processes ({world}); e.g. --batch-size "
                          f"{max(world, batch_size // world * world)}")
    if sync_bn and device == "cpu":
        raise ConfigError("--sync-bn needs CUDA: torch's SyncBatchNorm only syncs GPU tensors; "
                          "on CPU each process normalises its own shard")


def setup(device_name: str = "auto") -> None:
    """Join torchrun's process group (idempotent; nothing without torchrun)."""
    if launched_world_size() <= 1 or initialized():
        return
    from rsdistill.runtime.precision import resolve_device

    device = resolve_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(local_rank())
        backend = "nccl"
    else:
        backend = "gloo"
    torch.distributed.init_process_group(backend)


def cleanup() -> None:
    if initialized():
        torch.distributed.destroy_process_group()


def device_for(device: torch.device) -> torch.device:
    """Each process's own GPU under torchrun (``cuda:LOCAL_RANK``)."""
    if is_distributed() and device.type == "cuda":
        return torch.device("cuda", local_rank())
    return device


def shard() -> tuple[int, int] | None:
    """``(rank, world_size)`` when distributed, else ``None``."""
    return (rank(), world_size()) if is_distributed() else None


def shard_bounds(n: int, part: tuple[int, int]) -> tuple[int, int]:
    """This rank's ``[start, end)`` of a global batch of ``n``: equal shards when ``n`` is
    divisible by the world size, otherwise sizes differ by at most one."""
    r, w = part
    return n * r // w, n * (r + 1) // w


def barrier() -> None:
    if is_distributed():
        torch.distributed.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. decodes and caches the dataset), then the others."""
    if not is_distributed():
        yield
        return
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    if not is_distributed():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def average_gradients(params: Sequence[nn.Parameter], weight: float, bad: bool) -> bool:
    """Replace each gradient by the weighted sum over ranks (``weight`` = this rank's share
    of the global batch); returns whether any rank flagged ``bad`` (a non-finite loss).

    One all-reduce over a flat buffer. A parameter without a gradient contributes zeros
    and keeps ``None`` when no rank produced one for it.
    """
    params = list(params)
    ref = next((p for p in params if p.grad is not None), params[0] if params else None)
    device = ref.device if ref is not None else torch.device("cpu")
    pieces = []
    for p in params:
        g = p.grad
        pieces.append(g.detach().float().reshape(-1) * weight if g is not None
                      else torch.zeros(p.numel(), device=device))
    pieces.append(torch.tensor([1.0 if bad else 0.0], device=device))
    flat = torch.cat(pieces)
    torch.distributed.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        piece = flat[offset:offset + n].view(p.shape)
        offset += n
        if p.grad is not None:
            p.grad.copy_(piece)
        elif piece.any():
            p.grad = piece.to(p.dtype).clone().contiguous(
                memory_format=_memory_format(p))
    return bool(flat[-1] > 0)


def _memory_format(p: torch.Tensor) -> torch.memory_format:
    if p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) \
            and not p.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def convert_sync_bn(distiller: nn.Module) -> None:
    """BatchNorm -> SyncBatchNorm in every trained child of ``distiller`` (not the frozen
    teacher, which runs in eval mode). Same state-dict keys, so checkpoints are unchanged."""
    for name, child in list(distiller.named_children()):
        if name == "teacher":
            continue
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(child)
        if converted is not child:
            setattr(distiller, name, converted)
