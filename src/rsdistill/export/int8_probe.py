"""``--activations auto``: int8 (S8S8) or uint8 (U8S8) activations, by what runs faster here.

Which one is faster depends on the processor and onnxruntime's kernels: on AVX2 x86
CPUs an S8S8 QDQ graph runs 1.3-2x *slower* than fp32 while U8S8 runs in about half
its time (bench/RESULTS.md); on CPUs with VNNI or on Arm, S8S8 can win. So, like
``--precision auto`` (runtime/precision.py), a small conv net is quantised both ways
and timed side by side once per machine and onnxruntime version; the verdict and why
are cached and travel in the int8 file's metadata.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rsdistill.evaluation.timing import interleaved_latency
from rsdistill.export.onnx_format import serialize_onnx
from rsdistill.export.ort_backend import OnnxRuntimeBackend, import_optional
from rsdistill.export.qdq import CalibrationImages, quantize_graph
from rsdistill.models import build_model, count_flops, count_parameters
from rsdistill.paths import default_cache_dir
from rsdistill.runtime.precision import machine_key, read_probe, resolve_precision, write_probe

PROBE_FILE = "int8-probe.json"
# int8 (the quantisation guide's first choice) unless uint8 is this much faster.
PROBE_MARGIN = 1.1
_SIZE = 32
_CLASSES = 21
PROBE_MODEL = "resnet8"


def _probe_onnx() -> bytes:
    # The default student: its residual blocks are where S8S8 and U8S8 differ (in a plain
    # conv stack onnxruntime fuses every conv either way, so a toy net would not tell).
    with torch.random.fork_rng():  # the probe must not move anyone's RNG streams
        torch.manual_seed(0)
        net = build_model(PROBE_MODEL, num_classes=_CLASSES, image_size=_SIZE).eval()
    meta = {"model": PROBE_MODEL, "image_size": _SIZE, "num_classes": _CLASSES,
            "classes": [f"class{i}" for i in range(_CLASSES)]}
    return serialize_onnx(net, meta, count_parameters(net), count_flops(net, _SIZE), None)


def measure_activation_speed() -> dict[str, float]:
    """Batch-1 p50 in ms of the probe net quantised with int8 and with uint8 activations."""
    fp32 = _probe_onnx()
    images = torch.rand(16, 3, _SIZE, _SIZE, generator=torch.Generator().manual_seed(0))
    shape = (3, _SIZE, _SIZE)
    backends = {}
    for activations in ("int8", "uint8"):
        reader = CalibrationImages(images, lambda x: x, "input", batch_size=8)
        # The quantiser keeps the fp32 graph's metadata, so the backend finds its contract.
        graph = quantize_graph(fp32, reader, "minmax", activations)
        backends[activations] = (OnnxRuntimeBackend(graph, threads=1), shape)
    timed = interleaved_latency(backends, resolve_precision("fp32", "cpu"), rounds=60, warmup=5)
    return {name: t["latency_ms_p50"] for name, t in timed.items()}


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
