"""ONNX export through ``torch.onnx.export``'s TorchScript-based exporter.

torch 2.9+ defaults to the torch.export-based (dynamo) exporter, which needs the
``onnxscript`` package; the TorchScript exporter (``dynamo=False``) needs only torch
and ``onnx``, works offline, and handles every model family here. It is deprecated
upstream, so its warnings are silenced; switching is one flag once onnxscript is a
dependency.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
from torch import nn

from rsdistill.errors import ConfigError
from rsdistill.export.contract import INPUT_NAME, OUTPUT_NAME, write_contract
from rsdistill.export.formats import EXPORT_FORMATS, ExportFormat
from rsdistill.export.ort_backend import OnnxRuntimeBackend, import_optional

# 17 runs on every current runtime (onnxruntime >= 1.11, TensorRT 8.5, OpenVINO);
# the TorchScript exporter goes up to 20. Below 11, Pad/Resize differ from torch.
DEFAULT_OPSET = 17
OPSETS = range(11, 21)


def _check_opset(opset: int) -> None:
    if opset not in OPSETS:
        raise ConfigError(f"--opset must be in [{OPSETS.start}, {OPSETS.stop - 1}] for the "
                          f"TorchScript ONNX exporter, got {opset}")


def serialize_onnx(model: nn.Module, meta: dict, params: int, flops: int,
                   opset: int | None) -> bytes:
    onnx = import_optional("onnx")
    opset = DEFAULT_OPSET if opset is None else opset
    _check_opset(opset)
    size = int(meta["image_size"])
    example = torch.zeros(2, 3, size, size)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              # Only the batch is free: the stem was built for this size.
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    except Exception as exc:  # the exporter raises many types, all with a first line worth showing
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"ONNX export of {meta['model']} (opset {opset}) failed: {first[:200]}") from None
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in write_contract(meta, params, flops).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (f"rsdistill {meta['model']} on {meta.get('dataset', '?')}: input "
                        f"(batch, 3, {size}, {size}) RGB scaled by 1/255 then (x - mean) / std "
                        "from metadata_props; output logits in the order of 'classes'")
    proto.producer_name = "rsdistill"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ConfigError(f"exported ONNX model fails onnx.checker: {str(exc).splitlines()[0][:200]}") from None
    return proto.SerializeToString()


def load_onnx(model: bytes | Path, threads: int = 0) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(model, threads)


EXPORT_FORMATS.add("onnx", ExportFormat(name="onnx", suffix=".onnx", serialize=serialize_onnx,
                                        load=load_onnx, default_opset=DEFAULT_OPSET))
