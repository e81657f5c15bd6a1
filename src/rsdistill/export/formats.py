"""Registry of export formats: ``rsdistill export --format NAME`` looks its format up here.

A format turns a loaded model (fp32, eval mode) plus its checkpoint meta into the
bytes of one file carrying the preprocessing contract, and loads such a file back as
a predictor backend, which is how the parity check and ``rsdistill evaluate`` run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from rsdistill.evaluation.backends import Backend
from rsdistill.registry import Registry


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str
    # (model, meta, params, flops, opset or None) -> file contents
    serialize: Callable[[nn.Module, dict, int, int, int | None], bytes]
    # (file contents or path, intra-op threads) -> backend; its ``meta`` is the contract
    load: Callable[[bytes | Path, int], Backend]
    default_opset: int | None = None


EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")


def format_for_file(path: str | Path) -> ExportFormat | None:
    """The format whose files end like ``path``, or None (e.g. a torch checkpoint)."""
    suffix = Path(path).suffix.lower()
    return next((EXPORT_FORMATS.get(n) for n in EXPORT_FORMATS
                 if EXPORT_FORMATS.get(n).suffix == suffix), None)
