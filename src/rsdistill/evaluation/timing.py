"""Inference timing and batched prediction.

The caller prepares the model with ``precision.prepare_model`` once (or passes
any callable ``x -> logits`` from a predictor backend, see ``backends.py``); every
function here runs it in eval mode under ``torch.inference_mode()`` and
``precision.autocast()`` and puts each module's train/eval flag back afterwards,
so timing a model in the middle of training does not silently switch off
dropout or batch-norm updates.

Latency and throughput time the model's forward pass only: the random input is
placed on the device before the clock starts, because host-to-device copies
depend on the data pipeline, not on the model being compared.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import numpy as np
import torch

from rsdistill.runtime.precision import Precision
from rsdistill.errors import ConfigError


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    if not isinstance(model, torch.nn.Module):
        # A predictor backend (e.g. an onnxruntime session) has no train mode.
        yield
        return
    # Record every module, not just the root: a model may deliberately keep
    # some submodules (e.g. a frozen teacher backbone) in a different mode.
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _sync(precision: Precision) -> None:
    # CUDA kernels run asynchronously; without a sync the clock would measure
    # only the kernel launches.
    if precision.device.type == "cuda":
        torch.cuda.synchronize(precision.device)


def _check_shape(input_shape: tuple) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or any(s < 1 for s in shape):
        raise ConfigError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape!r}")
    return shape  # type: ignore[return-value]


def _check_count(name: str, value: int, minimum: int) -> None:
    if int(value) != value or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _random_input(batch: int, shape: tuple[int, int, int], precision: Precision) -> torch.Tensor:
    # A private generator keeps timing from disturbing the global RNG stream
    # that seeded training/evaluation relies on.
    gen = torch.Generator().manual_seed(0)
    return precision.prepare_input(torch.randn((batch, *shape), generator=gen))


def measure_latency(
    model: torch.nn.Module,
    input_shape: tuple,
    precision: Precision,
    n_runs: int = 100,
    warmup: int = 10,
) -> dict:
    """Batch-1 forward latency in milliseconds over ``n_runs`` timed calls."""
    shape = _check_shape(input_shape)
    _check_count("n_runs", n_runs, 1)
    _check_count("warmup", warmup, 0)
    x = _random_input(1, shape, precision)
    times_ms = np.empty(n_runs, dtype=np.float64)
    with _eval_mode(model), torch.inference_mode(), precision.autocast():
        for _ in range(warmup):
            model(x)
        _sync(precision)
        for i in range(n_runs):
            start = time.perf_counter()
            model(x)
            _sync(precision)
            times_ms[i] = (time.perf_counter() - start) * 1e3
    return {
        "latency_ms_p50": float(np.percentile(times_ms, 50)),
        "latency_ms_p95": float(np.percentile(times_ms, 95)),
        "latency_ms_mean": float(times_ms.mean()),
        "n_runs": int(n_runs),
    }


def measure_throughput(
    model: torch.nn.Module,
    input_shape: tuple,
    precision: Precision,
    batch_size: int = 256,
    n_batches: int = 5,
    warmup: int = 1,
) -> dict:
    """Images per second for repeated forward passes of one ``batch_size`` batch."""
    shape = _check_shape(input_shape)
    _check_count("batch_size", batch_size, 1)
    _check_count("n_batches", n_batches, 1)
    _check_count("warmup", warmup, 0)
    x = _random_input(batch_size, shape, precision)
    with _eval_mode(model), torch.inference_mode(), precision.autocast():
        for _ in range(warmup):
            model(x)
        _sync(precision)
        start = time.perf_counter()
        for _ in range(n_batches):
            model(x)
        _sync(precision)
        elapsed = time.perf_counter() - start
    # A clock that reports zero elapsed time (coarse timers, trivial models)
    # would otherwise give an infinite throughput in a report.
    elapsed = max(elapsed, 1e-9)
    return {"throughput_img_s": float(batch_size * n_batches / elapsed), "batch_size": int(batch_size)}


def predict(
    model: torch.nn.Module,
    images_uint8: torch.Tensor,
    to_input: Callable[[torch.Tensor], torch.Tensor],
    precision: Precision,
    batch_size: int = 256,
) -> torch.Tensor:
    """Logits ``(N, num_classes)`` float32 on CPU for uint8 images ``(N, 3, H, W)``.

    Each uint8 batch is moved to ``precision.device`` *before* ``to_input`` is
    applied: copying uint8 is a quarter of the bytes of float32, and scaling on
    the accelerator is cheap. ``to_input`` must therefore work on whichever
    device it receives (build any mean/std tensors on ``x.device``).
    """
    if not isinstance(images_uint8, torch.Tensor) or images_uint8.dim() != 4:
        raise ValueError("images_uint8 must be a 4-D tensor (N, C, H, W)")
    if images_uint8.dtype != torch.uint8:
        raise ValueError(f"images_uint8 must have dtype uint8, got {images_uint8.dtype}")
    if images_uint8.shape[0] == 0:
        raise ValueError("images_uint8 holds no images")
    _check_count("batch_size", batch_size, 1)
    outputs = []
    with _eval_mode(model), torch.inference_mode(), precision.autocast():
        for start in range(0, images_uint8.shape[0], batch_size):
            chunk = images_uint8[start : start + batch_size].to(precision.device, non_blocking=True)
            x = precision.prepare_input(to_input(chunk))
            # Under autocast the logits may be bf16/fp16; report them in float32.
            outputs.append(model(x).float().cpu())
    return torch.cat(outputs, dim=0)


def timed_predict(
    model: torch.nn.Module,
    images_uint8: torch.Tensor,
    to_input: Callable[[torch.Tensor], torch.Tensor],
    precision: Precision,
    batch_size: int = 256,
) -> tuple[torch.Tensor, float]:
    """:func:`predict` plus the wall-clock seconds of the whole pass.

    The pass is timed cold (no warm-up), including uint8 transfer, conversion
    and copying logits back, because that is what "inference time on the test
    split" means to someone running the model.
    """
    _sync(precision)
    start = time.perf_counter()
    logits = predict(model, images_uint8, to_input, precision, batch_size=batch_size)
    # predict ends with a device->host copy, which already waits for the GPU;
    # the explicit sync keeps that true should predict ever stop copying.
    _sync(precision)
    return logits, time.perf_counter() - start


def inference_report(
    model: torch.nn.Module,
    input_shape: tuple,
    precision: Precision,
    *,
    n_runs: int = 100,
    warmup: int = 10,
    throughput_batch: int = 256,
    throughput_batches: int = 5,
) -> dict:
    """Latency, throughput and the precision settings they were measured under, in one dict."""
    report = dict(precision.describe())
    report["input_shape"] = list(_check_shape(input_shape))
    report.update(measure_latency(model, input_shape, precision, n_runs=n_runs, warmup=warmup))
    report.update(
        measure_throughput(
            model, input_shape, precision, batch_size=throughput_batch, n_batches=throughput_batches
        )
    )
    return report


def interleaved_latency(
    predictors: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], tuple]],
    precision: Precision,
    *,
    rounds: int = 100,
    runs_per_round: int = 1,
    warmup: int = 10,
) -> dict[str, dict]:
    """Batch-1 latency of several models measured side by side in one process.

    ``predictors`` maps a name to ``(model, input_shape)``. The models take turns, a
    block of ``runs_per_round`` timed calls each, for ``rounds`` rounds, and the order
    reverses every round: a change in machine load (another process, CPU frequency,
    thermal state) then hits every model alike, so their ratio is fair on a loaded
    machine where back-to-back runs of :func:`measure_latency` drift apart. Models of
    the same input shape get identical inputs. Returns per-model p50/p95/mean in
    milliseconds over all timed calls.
    """
    if not predictors:
        raise ValueError("no models to time")
    _check_count("rounds", rounds, 1)
    _check_count("runs_per_round", runs_per_round, 1)
    _check_count("warmup", warmup, 0)
    inputs = {name: _random_input(1, _check_shape(shape), precision)
              for name, (_, shape) in predictors.items()}
    times: dict[str, list[float]] = {name: [] for name in predictors}
    order = list(predictors)
    with contextlib.ExitStack() as stack:
        for model, _ in predictors.values():
            stack.enter_context(_eval_mode(model))
        stack.enter_context(torch.inference_mode())
        stack.enter_context(precision.autocast())
        for name in order:
            model, x = predictors[name][0], inputs[name]
            for _ in range(warmup):
                model(x)
        _sync(precision)
        for r in range(rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                model, x = predictors[name][0], inputs[name]
                for _ in range(runs_per_round):
                    start = time.perf_counter()
                    model(x)
                    _sync(precision)
                    times[name].append((time.perf_counter() - start) * 1e3)
    out = {}
    for name, values in times.items():
        ms = np.asarray(values, dtype=np.float64)
        out[name] = {"latency_ms_p50": float(np.percentile(ms, 50)),
                     "latency_ms_p95": float(np.percentile(ms, 95)),
                     "latency_ms_mean": float(ms.mean()), "n_runs": int(ms.size)}
    return out
