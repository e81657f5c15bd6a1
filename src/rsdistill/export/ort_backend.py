"""An exported ONNX model as a predictor backend, run by onnxruntime on the CPU.

It is called like a module (``logits = backend(x)`` on a float NCHW tensor), so the
metrics, batched prediction and latency/throughput code measure it unchanged.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import torch

from rsdistill.runtime.precision import Precision
from rsdistill.errors import ConfigError, ExportError
from rsdistill.export.contract import read_contract
from rsdistill.export.contract_check import check_graph


def import_optional(name: str):
    """An optional dependency, or a one-line error saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"{name} is not installed (a dependency of rsdistill); reinstall "
                          "rsdistill, or pip install onnx onnxruntime") from None


class OrtRunError(ExportError):
    """onnxruntime loaded the graph but cannot run it (e.g. a quantized kernel that refuses
    a feature map's shape); ``reason`` is onnxruntime's own first line, shortened."""

    def __init__(self, label: str, exc: Exception) -> None:
        self.reason = ort_reason(exc)
        super().__init__(f"ONNX Runtime cannot run {label}: {self.reason}")


def ort_reason(exc: Exception) -> str:
    """onnxruntime's error as one short line: what failed, without the prefixes it puts
    before it ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : ", often "Non-zero status code
    returned while running ")."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    return text.split("returned while running ", 1)[-1][:200]


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model: bytes | str | Path, threads: int = 0) -> None:
        """``model``: the serialized graph or a path; its own metadata gives the contract."""
        ort = import_optional("onnxruntime")
        if threads < 0:
            raise ConfigError(f"--inference-threads must be >= 0, got {threads}")
        opts = ort.SessionOptions()
        # 0 means what it means for the torch figures: torch's current thread count
        # (all physical cores unless set), so a torch and an ONNX timing are comparable.
        self.threads = threads or torch.get_num_threads()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        # Its failures reach the user as rsdistill's one line (below); onnxruntime's own
        # log would print each a second time, in colour, before it.
        opts.log_severity_level = 4
        source = model if isinstance(model, bytes) else str(model)
        label = "the exported model" if isinstance(model, bytes) else str(model)
        self.label = label
        try:
            self.session = ort.InferenceSession(source, sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigError(f"cannot load ONNX model {label}: {ort_reason(exc)}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.meta = read_contract(self.session.get_modelmeta().custom_metadata_map, label)
        check_graph(self.meta, list(self.session.get_inputs()[0].shape),
                    list(self.session.get_outputs()[0].shape), label)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().float().numpy())
        try:
            (logits,) = self.session.run(None, {self.input_name: array})
        except Exception as exc:  # onnxruntime raises its own exception types
            raise OrtRunError(self.label, exc) from None
        return torch.from_numpy(logits)

    def prepare(self, precision: Precision) -> "OnnxRuntimeBackend":
        # The graph is fp32 and runs on onnxruntime's CPU provider; autocast or a
        # device would not apply to it, so any other setting would be mislabelled.
        if precision.name != "fp32" or precision.device.type != "cpu":
            raise ConfigError(f"ONNX models are evaluated in fp32 on the CPU; got "
                              f"{precision.name} on {precision.device} (pass --precision fp32 "
                              "--inference-precision fp32 --device cpu)")
        return self

    def cost(self, image_size: int) -> dict:
        return {"params": self.meta["params"], "flops": self.meta["flops"]}

    def describe(self) -> dict:
        described = {"backend": self.name, "threads": self.threads}
        if self.meta.get("quantization"):
            # An int8 graph is fed float32 like any other; say what actually runs.
            described["quantized"] = "int8"
        return described
