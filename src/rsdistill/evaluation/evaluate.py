"""Every metric of a model on one split: quality, size, cost and inference time."""

from __future__ import annotations

import torch

from typing import Callable

from rsdistill.data.module import PreparedData
from rsdistill.evaluation.backends import Backend, as_backend
from rsdistill.evaluation.metrics import classification_metrics
from rsdistill.evaluation.timing import inference_report, predict, timed_predict
from rsdistill.runtime.precision import Precision, torch_threads


def evaluate_logits(model: torch.nn.Module, data: PreparedData, split: str,
                    precision: Precision) -> torch.Tensor:
    images = data.dataset.images[data.split[split]]
    return predict(model, images, data.normalizer, precision)


def evaluate_model(model: torch.nn.Module | Backend, meta: dict, data: PreparedData, split: str,
                   precision: Precision, timing_precision: Precision,
                   latency_runs: int = 100, inference_threads: int = 0,
                   stage: Callable[[str], None] | None = None) -> dict:
    """All metrics of ``model`` on ``split``: quality, size, cost and inference time.

    ``model`` is a module or any predictor backend (e.g. an exported ONNX model), so a
    deployed model is measured by exactly the code that measures its checkpoint.
    ``stage`` is told what starts next (the timing runs take seconds).
    """
    stage = stage or (lambda _: None)
    backend = as_backend(model)
    images = data.dataset.images[data.split[split]]
    labels = data.dataset.labels[data.split[split]]
    n = int(images.shape[0])
    stage(f"{split} split: predicting {n} images in {precision.name}")
    logits = predict(backend.prepare(precision), images, data.normalizer, precision)
    metrics = classification_metrics(labels, logits.argmax(1), data.classes)
    metrics["split"] = split
    size = meta["image_size"]
    metrics.update(backend.cost(size))
    timed = backend.prepare(timing_precision)
    with torch_threads(inference_threads):
        threads = torch.get_num_threads()
        on = f"in {timing_precision.name} on {threads} thread{'s' if threads > 1 else ''}"
        stage(f"timing the {split} split ({n} images) {on}")
        _, seconds = timed_predict(timed, images, data.normalizer, timing_precision)
        stage(f"timing batch-1 latency: {latency_runs} runs {on}")
        inference = inference_report(timed, (3, size, size), timing_precision, n_runs=latency_runs)
    inference.update(backend.describe())
    inference["test_seconds"] = seconds
    inference["test_images"] = int(images.shape[0])
    metrics["inference"] = inference
    metrics["evaluated_precision"] = precision.name
    return metrics
