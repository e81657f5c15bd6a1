"""``--activations auto``: int8 (S8S8) or uint8 (U8S8) activations, by what runs faster here.

Which one is faster depends on the processor and onnxruntime's kernels: on AVX2 x86
CPUs an S8S8 QDQ graph runs 1.3-2x *slower* than fp32 while U8S8 runs in about half
its time (bench/RESULTS.md); on CPUs with VNNI or on Arm, S8S8 can win. So, like
``--precision auto`` (runtime/precision.py), a small conv net is quantised both ways
and timed side by side once per machine and onnxruntime version; the verdict and why
are cached and travel in the int8 file's metadata.
"""

from __future__ import annotations

import io
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from rsdistill.export.ort_backend import import_optional
from rsdistill.export.qdq import CalibrationImages, quantize_graph
from rsdistill.models import build_model
from rsdistill.paths import default_cache_dir
from rsdistill.runtime.precision import machine_key, read_probe, write_probe

PROBE_FILE = "int8-probe.json"
# int8 (the quantisation guide's first choice) unless uint8 is this much faster.
PROBE_MARGIN = 1.1
_SIZE = 32
PROBE_MODEL = "resnet8"


def _probe_onnx() -> bytes:
    # The default student: its residual blocks are where S8S8 and U8S8 differ (in a plain
    # conv stack onnxruntime fuses every conv either way, so a toy net would not tell).
    with torch.random.fork_rng():  # the probe must not move anyone's RNG streams
        torch.manual_seed(0)
        net = build_model(PROBE_MODEL, num_classes=21, image_size=_SIZE).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, _SIZE, _SIZE),), buf, dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return buf.getvalue()


def _median_ms(sessions: dict[str, object], rounds: int = 60, warmup: int = 5) -> dict[str, float]:
    x = np.random.default_rng(0).random((1, 3, _SIZE, _SIZE), dtype=np.float32)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    order = list(sessions)
    for r in range(warmup + rounds):
        for name in order:  # alternating, reversed each round: load changes hit both alike
            start = time.perf_counter()
            sessions[name].run(None, {"input": x})
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
        order.reverse()
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def measure_activation_speed() -> dict[str, float]:
    """Batch-1 p50 in ms of the probe net quantised with int8 and with uint8 activations."""
    ort = import_optional("onnxruntime")
    fp32 = _probe_onnx()
    images = torch.rand(16, 3, _SIZE, _SIZE, generator=torch.Generator().manual_seed(0))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sessions = {}
    for activations in ("int8", "uint8"):
        reader = CalibrationImages(images, lambda x: x, "input", batch_size=8)
        graph = quantize_graph(fp32, reader, "minmax", activations)
        sessions[activations] = ort.InferenceSession(graph, sess_options=opts,
                                                     providers=["CPUExecutionProvider"])
    return _median_ms(sessions)


def choose_activations(cache_dir: Path | None = None) -> tuple[str, str]:
    """``(activation type, why)`` for this machine, measured once and then cached."""
    ort = import_optional("onnxruntime")
    file = Path(cache_dir or default_cache_dir()) / PROBE_FILE
    key = f"{machine_key()}-ort{ort.__version__}"
    cached = read_probe(file, key)
    if cached is not None and cached.get("activations") in ("int8", "uint8"):
        return cached["activations"], cached.get("why", "measured earlier on this machine")
    ms = measure_activation_speed()
    chosen = "uint8" if ms["int8"] > PROBE_MARGIN * ms["uint8"] else "int8"
    why = (f"auto: measured on this cpu, {PROBE_MODEL} with uint8 activations (U8S8) runs in "
           f"{ms['uint8'] / ms['int8']:.2f}x the time of int8 (S8S8) with onnxruntime "
           f"{ort.__version__} (probe cached in {file})")
    write_probe(file, key, {"activations": chosen, "why": why,
                            "int8_ms": round(ms["int8"], 4), "uint8_ms": round(ms["uint8"], 4)})
    return chosen, why
