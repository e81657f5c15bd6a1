"""Every file name a run directory (or a study made of runs) holds, and the directory itself.

One place names them, so a reader (evaluate, report, resume) and the writer can never
disagree about where something lives.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml

from rsdistill.io import atomic_write_text, read_json

# One training run.
MODEL_FILE = "model.pt"          # best weights + meta (rebuild and feed the model)
STATE_FILE = "last.pt"           # everything needed to resume
CONFIG_FILE = "config.yaml"      # the resolved config
METRICS_FILE = "metrics.json"
EPOCHS_FILE = "epochs.csv"
VERSIONS_FILE = "versions.json"
TENSORBOARD_DIR = "tensorboard"

# Studies made of runs.
SWEEP_FILE = "sweep.yaml"
SWEEP_RESULTS = "results.json"
SWEEP_ROWS_CSV = "results.csv"
SWEEP_AGGREGATE_CSV = "results_aggregate.csv"
SPEED_FILE = "speed.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
COMPARE_FILE = "compare.yaml"
COMPARE_RESULTS = "comparison.json"
COMPARE_CSV = "comparison.csv"
COMPARE_RUNS_CSV = "comparison_runs.csv"
COMPARE_MD = "comparison.md"
COMPARE_HTML = "comparison.html"
STUDY_FILE = "study.yaml"
FIGURES_DIR = "figures"


def peer_file(i: int) -> str:
    """The model file of dml's peer ``i`` (peer 0 is the student's model.pt)."""
    return f"peer{i}.pt"


def seed_dir(out: Path, seed: int) -> Path:
    return Path(out) / f"seed{seed}"


class RunDirectory:
    """Files of one run; every write is atomic."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()

    def file(self, name: str) -> Path:
        return self.path / name

    def has_state(self) -> bool:
        return self.file(STATE_FILE).is_file()

    def write_config(self, config: dict) -> None:
        atomic_write_text(self.file(CONFIG_FILE), yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict:
        with open(self.file(CONFIG_FILE)) as fh:
            return yaml.safe_load(fh)

    def write_history(self, history: list[dict]) -> None:
        if not history:
            return
        keys = list(history[0])
        for row in history[1:]:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.file(EPOCHS_FILE), buf.getvalue())

    def metrics(self) -> dict:
        return read_json(self.file(METRICS_FILE))
