"""Data and measurement settings for a model file, shared by evaluate, export and compress.

A model beside a ``config.yaml`` (a run directory) takes its data section and its
precision/timing settings from there, each overridable on the command line; a bare
model file needs the data options.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rsdistill.training.config import TrainConfig
from rsdistill.cli.common import THREADS_ZERO, add_data_args, data_config
from rsdistill.data.module import DataConfig
from rsdistill.runtime.precision import PRECISIONS
from rsdistill.experiments.records import load_run_config
from rsdistill.runtime.rundir import CONFIG_FILE
from rsdistill.errors import ConfigError


@dataclass
class ModelSettings:
    data: DataConfig | None  # None: no config.yaml and no --dataset
    precision: str
    inference_precision: str
    device: str
    latency_runs: int
    inference_threads: int
    from_run: bool


def add_measurement_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=PRECISIONS,
                   help="precision for the metrics (default fp32, whatever the run trained in, "
                        "so they match the exported model's)")
    p.add_argument("--inference-precision", choices=PRECISIONS,
                   help="precision for the latency and throughput figures (default: the run's)")
    p.add_argument("--device", help="auto, cpu or cuda (default: the run's)")
    p.add_argument("--latency-runs", type=int,
                   help="timed batch-1 calls for the latency figures (default: the run's, else 100)")
    p.add_argument("--inference-threads", type=int,
                   help=f"CPU threads for the latency figures (default: the run's setting; {THREADS_ZERO})")
    add_data_args(p, dataset_required=False, training=False)


def model_settings(args: argparse.Namespace, model_file: Path) -> ModelSettings:
    run_dir = model_file.parent
    given = {k: getattr(args, k, None) for k in ("precision", "inference_precision", "device",
                                                "latency_runs", "inference_threads")}
    if (run_dir / CONFIG_FILE).is_file():
        base_data, train, _ = load_run_config(run_dir)
        defaults = {"precision": "fp32", "inference_precision": train.inference_precision,
                    "device": train.device, "latency_runs": train.latency_runs,
                    "inference_threads": train.inference_threads}
        data, from_run = data_config(args, base_data), True
    else:
        # A bare model file: TrainConfig's defaults, the settings a run would have had.
        d = TrainConfig()
        defaults = {"precision": "fp32", "inference_precision": d.inference_precision,
                    "device": d.device, "latency_runs": d.latency_runs,
                    "inference_threads": d.inference_threads}
        data, from_run = (data_config(args) if getattr(args, "dataset", None) else None), False
    values = {k: defaults[k] if v is None else v for k, v in given.items()}
    return ModelSettings(data=data, from_run=from_run, **values)


def require_data(settings: ModelSettings, model_file: Path) -> DataConfig:
    if settings.data is None:
        raise ConfigError(f"{model_file} has no config.yaml beside it; pass --dataset and data options")
    return settings.data
