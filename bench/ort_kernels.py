"""Which kernels ONNX Runtime runs for an fp32 and an int8 model, and whether its int8
GEMMs use the CPU's VNNI dot-product instructions.

    OMP_NUM_THREADS=1 python bench/ort_kernels.py MODEL.onnx [MODEL.int8.onnx ...] [--calls 2000] [--perf]

Per model: the node types of the graph onnxruntime actually runs after its optimisations
(a QDQ Conv fused into QLinearConv runs in integers; one left as Conv runs in float32
with its weights dequantised on every call), and the share of kernel time per op type
from onnxruntime's profiler (batch 1, 1 thread). With ``--perf`` (Linux ``perf`` and
``objdump`` needed) each model is also sampled by ``perf record`` and the share of CPU
samples that fall inside loops built of ``vpdpbusd(s)`` (AVX-512 VNNI / AVX-VNNI) is
reported: that share is non-zero only if onnxruntime dispatched its VNNI kernels.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

RUNNER = """
import sys, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = np.random.default_rng(0).random((1, *i.shape[1:])).astype(np.float32)
for _ in range(int(sys.argv[2])):
    s.run(None, {i.name: x})
"""


def session(model: Path, tmp: Path, profile: bool) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = 1, 1
    o.optimized_model_filepath = str(tmp / f"{model.name}.optimized.onnx")
    if profile:
        o.enable_profiling, o.profile_file_prefix = True, str(tmp / model.name)
    return ort.InferenceSession(str(model), o, providers=["CPUExecutionProvider"])


def kernels(model: Path, calls: int, tmp: Path) -> None:
    s = session(model, tmp, profile=True)
    inp = s.get_inputs()[0]
    x = np.random.default_rng(0).random((1, *inp.shape[1:])).astype(np.float32)
    for _ in range(calls):
        s.run(None, {inp.name: x})
    events = json.loads(Path(s.end_profiling()).read_text())
    nodes = collections.Counter(n.op_type for n in onnx.load(str(tmp / f"{model.name}.optimized.onnx")).graph.node)
    times = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            times[e["args"]["op_name"]] += e["dur"]
    total = sum(times.values())
    print(f"\n{model}: kernel time {total / calls:.1f} µs per call (profiled)")
    print("| op | nodes | µs per call | share |\n|---|---|---|---|")
    for op, t in times.most_common():
        print(f"| {op} | {nodes[op]} | {t / calls:.1f} | {100 * t / total:.1f} % |")


def vnni_addresses(library: Path) -> list[int]:
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True,
                         text=True, check=True).stdout
    return sorted(int(m.group(1), 16) for m in re.finditer(r"^\s*([0-9a-f]+):\s+(?:\{vex\}\s+)?vpdpbusds?\s",
                                                               out, re.M))


def vnni_share(model: Path, calls: int, tmp: Path, library: Path, addrs: list[int]) -> None:
    data = tmp / f"{model.name}.perf"
    runner = tmp / "runner.py"
    runner.write_text(RUNNER)
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", str(data), sys.executable, str(runner),
                    str(model), str(calls)], check=True, capture_output=True)
    report = subprocess.run(["perf", "report", "-i", str(data), "--dsos", library.name, "--sort", "sym",
                             "--stdio"], capture_output=True, text=True, check=True).stdout
    rows = [(float(p.rstrip("%")), int(a, 16)) for p, a in re.findall(r"^\s+([\d.]+%)\s+\[\.\]\s+(0x[0-9a-f]+)",
                                                                       report, re.M)]

    def in_vnni_loop(address: int, window: int = 64) -> bool:
        i = bisect.bisect_left(addrs, address - window)
        return i < len(addrs) and addrs[i] <= address + window

    share = sum(p for p, a in rows if in_vnni_loop(a))
    print(f"{model}: {share:.1f} % of all CPU samples within 64 bytes of a vpdpbusd(s) instruction "
          f"({sum(p for p, _ in rows):.1f} % in {library.name})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--perf", action="store_true", help="also measure the VNNI share with perf")
    args = ap.parse_args()
    ort.set_default_logger_severity(3)
    print(f"onnxruntime {ort.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            kernels(model, args.calls, Path(tmp))
        if args.perf:
            library = next(Path(ort.__file__).parent.joinpath("capi").glob("onnxruntime_pybind11_state*.so"))
            addrs = vnni_addresses(library)
            print(f"\n{library.name}: {len(addrs)} vpdpbusd(s) instructions")
            for model in args.models:
                vnni_share(model, args.calls * 3, Path(tmp), library, addrs)


if __name__ == "__main__":
    main()
