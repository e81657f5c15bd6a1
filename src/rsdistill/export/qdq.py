"""The QDQ graph of an fp32 ONNX model, by ONNX Runtime static quantisation: the
calibration reader and the quantiser, shared by ``quantize_onnx`` and the probe that
picks the activation type (``int8_probe.py``)."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from rsdistill.export.ort_backend import import_optional
from rsdistill.registry import Registry

# ``--calibration-method`` -> the name of onnxruntime's CalibrationMethod member.
CALIBRATION_METHODS: Registry[str] = Registry("calibration method")
CALIBRATION_METHODS.add("minmax", "MinMax")
CALIBRATION_METHODS.add("entropy", "Entropy")
CALIBRATION_METHODS.add("percentile", "Percentile")

# ``--activations`` -> onnxruntime's QuantType member; weights are always QInt8.
# int8 (S8S8) is the guide's first choice; on x86, onnxruntime's CPU provider fuses
# QDQ convs into QLinearConv only partly for int8 activations (bench/RESULTS.md), so
# uint8 (U8S8, the docstring's advice for x86) is offered for speed.
ACTIVATION_TYPES: Registry[str] = Registry("activation type")
ACTIVATION_TYPES.add("int8", "QInt8")
ACTIVATION_TYPES.add("uint8", "QUInt8")

CALIBRATION_BATCH = 32


class CalibrationImages:
    """Feeds onnxruntime's calibrator float32 batches, preprocessed by the file's contract.

    Implements onnxruntime's ``CalibrationDataReader`` protocol: ``get_next`` returns an
    input dict, then ``None``; ``len`` and ``set_range`` (in batches) serve its strided
    mode, which :func:`quantize_graph` uses to collect one batch at a time. That keeps
    memory to one batch's activations, and lets the histogram methods (entropy,
    percentile) accept a last batch smaller than the others.
    """

    def __init__(self, images_uint8: torch.Tensor, to_input, input_name: str,
                 batch_size: int = CALIBRATION_BATCH) -> None:
        self.batches = [to_input(images_uint8[i:i + batch_size]).numpy().astype(np.float32)
                        for i in range(0, images_uint8.shape[0], batch_size)]
        self.input_name = input_name
        self.set_range(0, len(self.batches))

    def get_next(self) -> dict | None:
        if self.position >= self.end:
            return None
        self.position += 1
        return {self.input_name: self.batches[self.position - 1]}

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.position, self.end = start_index, min(end_index, len(self.batches))


@contextlib.contextmanager
def _quiet_onnxruntime():
    """onnxruntime.quantization logs progress on the root logger (which the CLI prints)
    and prints its histogram progress to stdout (where ``--json`` goes); its C++ side
    warns about every initializer it folds. None of it is for the user."""
    ort = import_optional("onnxruntime")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
        ort.set_default_logger_severity(2)


def quantize_graph(fp32: bytes, reader: CalibrationImages, method: str, activations: str = "int8") -> bytes:
    """The QDQ graph of ``fp32`` with int8 weights (metadata not yet set)."""
    onnx = import_optional("onnx")
    quant = import_optional("onnxruntime.quantization")
    with tempfile.TemporaryDirectory(prefix="rsdistill-quantize-") as tmp, _quiet_onnxruntime():
        source, prepared, out = (Path(tmp) / n for n in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(fp32)
        quant.quant_pre_process(str(source), str(prepared))
        reader.set_range(0, len(reader))
        quant.quantize_static(
            str(prepared), str(out), reader, quant_format=quant.QuantFormat.QDQ,
            activation_type=getattr(quant.QuantType, ACTIVATION_TYPES.get(activations)),
            weight_type=quant.QuantType.QInt8,
            per_channel=True,
            calibrate_method=getattr(quant.CalibrationMethod, CALIBRATION_METHODS.get(method)),
            extra_options={"CalibStridedMinMax": 1})
        proto = onnx.load(str(out))
    return proto.SerializeToString()


