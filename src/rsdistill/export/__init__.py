"""Deployment: exported models (registry of formats) with their preprocessing contract,
parity-checked against the checkpoint, and loadable as predictor backends."""

from rsdistill.export import onnx_format  # noqa: F401  (registers "onnx")
from rsdistill.export.exporter import ExportResult, export_checkpoint
from rsdistill.export.formats import EXPORT_FORMATS, ExportFormat, format_for_file
from rsdistill.export.parity import PARITY_ATOL, Parity, check_parity

__all__ = [
    "EXPORT_FORMATS",
    "ExportFormat",
    "ExportResult",
    "PARITY_ATOL",
    "Parity",
    "check_parity",
    "export_checkpoint",
    "format_for_file",
]
