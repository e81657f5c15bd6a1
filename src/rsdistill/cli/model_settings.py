"""Data and measurement settings for a model file, shared by evaluate, export and compress.

A model beside a ``config.yaml`` (a run directory) takes its data section and its
precision/timing settings from there, each overridable on the command line; a bare
model file needs the data options.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rsdistill.training.config import THREADS_ZERO, TrainConfig
from rsdistill.cli.common import add_data_args, data_config
from rsdistill.cli.schema_args import add_section
from rsdistill.data.module import DataConfig
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


# The measurement settings of a model file: TrainConfig's options, whose default is the
# run's own (read from its config.yaml; TrainConfig's for a bare model file).
MEASUREMENT = ("precision", "inference_precision", "device", "latency_runs", "inference_threads")
_RUNS = {"shown": "the run's"}


def add_measurement_args(p: argparse.ArgumentParser, only: tuple[str, ...] = MEASUREMENT,
                         helps: dict[str, str] | None = None) -> None:
    """The measurement options in ``only`` (``helps``: a command's own wording of one),
    then the data options."""
    overrides = {
        "precision": {"help": "precision for the metrics",
                      "shown": "fp32, whatever the run trained in, so they match the exported "
                               "model's"},
        "inference_precision": {**_RUNS, "help": "precision for the latency and throughput "
                                                 "figures"},
        "device": {**_RUNS, "help": "auto, cpu or cuda"},
        "latency_runs": {"shown": f"the run's, else {TrainConfig().latency_runs}"},
        "inference_threads": {"shown": f"the run's setting; {THREADS_ZERO}"}}
    for key, text in (helps or {}).items():
        overrides[key] = {**overrides[key], "help": text}
    add_section(p, TrainConfig, "measurement", only=only, overrides=overrides)
    add_data_args(p, dataset_required=False, training=False)


def model_settings(args: argparse.Namespace, model_file: Path) -> ModelSettings:
    run_dir = model_file.parent
    given = {k: getattr(args, k, None) for k in MEASUREMENT}
    if (run_dir / CONFIG_FILE).is_file():
        base_data, train, _ = load_run_config(run_dir)
        data, from_run = data_config(args, base_data), True
    else:
        # A bare model file: TrainConfig's defaults, the settings a run would have had.
        train = TrainConfig()
        data, from_run = (data_config(args) if getattr(args, "dataset", None) else None), False
    # The metrics are in fp32 whatever the run trained in, to match the exported model's.
    defaults = {**{k: getattr(train, k) for k in MEASUREMENT}, "precision": "fp32"}
    values = {k: defaults[k] if v is None else v for k, v in given.items()}
    return ModelSettings(data=data, from_run=from_run, **values)


def require_data(settings: ModelSettings, model_file: Path) -> DataConfig:
    if settings.data is None:
        raise ConfigError(f"{model_file} has no config.yaml beside it; pass --dataset and data options")
    return settings.data
