"""Device and numeric precision: one place decides autocast and memory format.

``auto`` decides from what the processor can do, not from the device type. bf16
autocast pays on a CPU only where bf16 is native (AVX512-BF16 or AMX on x86, the BF16
extension on Arm): there a small ResNet trains 2-3x faster than in fp32. Elsewhere
oneDNN emulates bf16 and the same step is 10-25x *slower* than fp32, so ``auto``
trains in fp32 there, with channels_last, which is still 1.2-1.5x faster than the
default layout for the conv nets used here (bench/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rsdistill.errors import ConfigError, WriteError
from rsdistill.io import write_json
from rsdistill.paths import default_cache_dir

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# CPU feature flags (Linux /proc/cpuinfo spelling) that mean bf16 arithmetic in hardware.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# oneDNN's ISA cap; when set, the hardware flags no longer say what oneDNN will use.
ISA_CAP_ENVS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
# bf16 must beat fp32 by this much in the probe to be chosen (noise margin).
PROBE_MARGIN = 1.2
PROBE_FILE = "precision-probe.json"


@dataclass(frozen=True)
class Precision:
    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool
    # Why these settings were chosen (``auto``) or that they were asked for.
    reason: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        names = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
        return names[self.autocast_dtype]

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def summary(self) -> str:
        """One line for the log: what runs and why."""
        layout = " + channels_last" if self.channels_last else ""
        mode = "fp32" if self.autocast_dtype is None else f"{self.name} autocast"
        return f"{mode}{layout} on {self.device}" + (f" ({self.reason})" if self.reason else "")

    def describe(self) -> dict:
        return {
            "device": str(self.device),
            "precision": self.name,
            "channels_last": self.channels_last,
            "threads": torch.get_num_threads(),
            "reason": self.reason,
        }


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"invalid --device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return device


# ---------------------------------------------------------------- CPU capability
def cpu_flags() -> set[str]:
    """The processor's feature flags as the kernel reports them (empty if unknown)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def onednn_runs_bf16() -> bool:
    """Whether oneDNN will run bf16 kernels at all (it reports False on AVX2-only CPUs)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_bf16_capability() -> tuple[bool | None, str]:
    """``(native, why)``: True/False when the hardware answers, None when only a
    measurement can tell (oneDNN runs bf16 but no native-bf16 flag is visible, e.g. an
    AVX-512 CPU without BF16, where oneDNN emulates it, or an ISA cap is set)."""
    if not onednn_runs_bf16():
        return False, "cpu has no native bf16 (oneDNN would emulate it)"
    caps = [f"{k}={os.environ[k]}" for k in ISA_CAP_ENVS if os.environ.get(k)]
    native = sorted(set(NATIVE_BF16_FLAGS) & cpu_flags())
    if native and not caps:
        return True, f"cpu has native bf16 ({', '.join(native)})"
    if caps:
        return None, f"oneDNN's ISA is capped ({', '.join(caps)})"
    return None, "oneDNN runs bf16 but the cpu reports no native bf16 flag"


def _probe_net() -> torch.nn.Module:
    # A few conv/BN/ReLU stages at the channel widths of the small students: enough to
    # show whether bf16 kernels are native (fast) or emulated (slow).
    layers, c_in = [], 3
    for c_out, stride in ((16, 1), (32, 2), (64, 2)):
        layers += [torch.nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                   torch.nn.BatchNorm2d(c_out), torch.nn.ReLU()]
        c_in = c_out
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(c_in, 10)]
    return torch.nn.Sequential(*layers)


def _steps_per_second(dtype: torch.dtype | None, steps: int = 6, warmup: int = 2) -> float:
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():  # the probe must not move the training RNG streams
        torch.manual_seed(0)
        net = _probe_net().to(memory_format=torch.channels_last)
    x = torch.randn(32, 3, 32, 32, generator=gen).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,), generator=gen)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / max(time.perf_counter() - start, 1e-9)


def machine_key() -> str:
    """Processor, torch and ISA caps: what a cached speed verdict is valid for."""
    parts = [platform.machine(), platform.processor(), torch.__version__,
             *sorted(cpu_flags()), *(f"{k}={os.environ.get(k, '')}" for k in ISA_CAP_ENVS)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def read_probe(file: Path, key: str) -> dict | None:
    """The verdict cached for this machine ``key`` in ``file``, or None."""
    try:
        cached = json.loads(Path(file).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return cached if isinstance(cached, dict) else None


def write_probe(file: Path, key: str, entry: dict) -> None:
    """Caches ``entry`` for this machine; a read-only cache only costs a new probe later."""
    try:
        try:
            entries = json.loads(Path(file).read_text())
        except (OSError, ValueError):
            entries = {}
        entries = entries if isinstance(entries, dict) else {}
        entries[key] = entry
        write_json(Path(file), entries)
    except (OSError, WriteError) as exc:
        log.debug("could not cache the probe in %s: %s", file, exc)


def probe_bf16(cache_dir: Path | None = None) -> tuple[bool, str]:
    """Measure a few training steps in fp32 and in bf16 autocast (both channels_last);
    the verdict is cached per machine so it is measured once, not per run."""
    file = Path(cache_dir or default_cache_dir()) / PROBE_FILE
    key = machine_key()
    cached = read_probe(file, key)
    if cached is not None and isinstance(cached.get("bf16"), bool):
        return cached["bf16"], cached.get("why", "measured earlier on this machine")
    fp32, bf16 = _steps_per_second(None), _steps_per_second(torch.bfloat16)
    faster = bf16 >= PROBE_MARGIN * fp32
    why = (f"measured: bf16 {bf16 / fp32:.2f}x the speed of fp32 on this cpu "
           f"(probe cached in {file})")
    write_probe(file, key, {"bf16": faster, "why": why, "fp32_steps_s": round(fp32, 2),
                            "bf16_steps_s": round(bf16, 2)})
    return faster, why


def _auto_cpu() -> tuple[str, str]:
    native, why = cpu_bf16_capability()
    if native is None:
        native, measured = probe_bf16()
        why = f"{why}; {measured}"
    if native:
        return "bf16", why
    return "fp32", f"{why}; fp32 + channels_last instead"


def resolve_precision(name: str = "auto", device: str | torch.device = "auto") -> Precision:
    if name not in PRECISIONS:
        raise ConfigError(f"invalid --precision {name!r}; choose one of: {', '.join(PRECISIONS)}")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    reason = "asked for"
    if name == "auto":
        if dev.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            reason = f"cuda {'supports' if name == 'bf16' else 'lacks'} bf16"
        else:
            name, reason = _auto_cpu()
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        # channels_last pays with reduced precision (oneDNN, tensor cores) and, on a CPU,
        # in fp32 too; an explicit "fp32" stays the plain eager baseline.
        return Precision(dev, dtype, channels_last=dtype is not None or dev.type == "cpu",
                         reason=reason)
    if name == "fp16" and dev.type == "cpu":
        raise ConfigError("--precision fp16 is not supported on CPU; use bf16 or fp32")
    if name == "bf16" and dev.type == "cpu" and cpu_bf16_capability()[0] is False:
        log.warning("--precision bf16 on a cpu without native bf16: oneDNN emulates it, which "
                    "is typically 10-25x slower than --precision fp32")
        reason = "asked for (emulated on this cpu)"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    return Precision(device=dev, autocast_dtype=dtype, channels_last=dtype is not None,
                     reason=reason)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` intra-op threads (0 = leave torch's setting alone).

    Batch-1 latency of a small CNN on a CPU depends strongly on the thread count
    (thread start-up costs more than the work), so timings name and can fix it.
    """
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
