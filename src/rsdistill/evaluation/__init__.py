"""Evaluation: classification metrics, inference timing and batched prediction."""

from rsdistill.evaluation.metrics import classification_metrics, confusion_matrix
from rsdistill.evaluation.timing import (
    inference_report,
    measure_latency,
    interleaved_latency,
    measure_throughput,
    predict,
    timed_predict,
)

__all__ = [
    "classification_metrics",
    "confusion_matrix",
    "inference_report",
    "measure_latency",
    "interleaved_latency",
    "measure_throughput",
    "predict",
    "timed_predict",
]
