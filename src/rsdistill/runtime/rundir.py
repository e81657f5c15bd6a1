"""Every file name a run directory (or a study made of runs) holds, and the directory itself.

One place names them, so a reader (evaluate, report, resume) and the writer can never
disagree about where something lives.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import yaml

from rsdistill.config import read_record
from rsdistill.errors import ConfigError
from rsdistill.io import atomic_write_text, is_temp_file_name, read_json

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
# A teacher assistant, distilled before the run that it teaches, inside that run's folder.
ASSISTANT_DIR = "assistant"
PARETO_FILE = "pareto.yaml"
PARETO_RESULTS = "pareto.json"
PARETO_CSV = "pareto.csv"
PARETO_MD = "pareto.md"
PARETO_HTML = "pareto.html"
FIGURES_DIR = "figures"
INT8_FILE = "int8.json"          # a report's int8 section

# Beside a model.pt.
ONNX_FILE = "model.onnx"         # rsdistill export's default output
INT8_ONNX_FILE = "model.int8.onnx"  # rsdistill quantize's default output

# Held while a process writes into the directory (runtime/locks.py).
LOCK_FILE = ".rsdistill.lock"
# Written by a grid's driver while a cluster runs its trials: each trial reads it back to
# prove its node sees the same --out (shared storage).
CLUSTER_TOKEN_FILE = ".rsdistill-cluster-token"

# Any of these says a directory holds something rsdistill wrote.
RUN_MARKERS = (STATE_FILE, CONFIG_FILE, MODEL_FILE, SWEEP_FILE, COMPARE_FILE, STUDY_FILE)
# What a run that never completed an epoch leaves: nothing a fresh start would lose.
STARTED_RUN_FILES = frozenset({CONFIG_FILE, VERSIONS_FILE, TENSORBOARD_DIR})

_PROJECT_FILES = frozenset({
    MODEL_FILE, STATE_FILE, CONFIG_FILE, METRICS_FILE, EPOCHS_FILE, VERSIONS_FILE,
    SWEEP_FILE, SWEEP_RESULTS, SWEEP_ROWS_CSV, SWEEP_AGGREGATE_CSV, SPEED_FILE, REPORT_MD,
    REPORT_HTML, COMPARE_FILE, COMPARE_RESULTS, COMPARE_CSV, COMPARE_RUNS_CSV, COMPARE_MD,
    COMPARE_HTML, STUDY_FILE, INT8_FILE, ONNX_FILE, INT8_ONNX_FILE, LOCK_FILE, PARETO_FILE,
    PARETO_RESULTS, PARETO_CSV, PARETO_MD, PARETO_HTML, CLUSTER_TOKEN_FILE,
})
_PEER_FILE = re.compile(r"peer\d+\.pt")
# Sub-runs: seeds, born-again generations, sweep members, a study's teacher and sweep, a
# teacher assistant.
_SUB_RUN_DIR = re.compile(r"(seed|gen)\d+|teacher|sweep|assistant|alpha\d+\.\d+_beta.+")
# Folders whose files rsdistill writes, and how those files' names end or begin.
_OWN_DIRS = {FIGURES_DIR: lambda n: n.endswith(".png"),
             TENSORBOARD_DIR: lambda n: n.startswith("events.out.tfevents.")}


def peer_file(i: int) -> str:
    """The model file of dml's peer ``i`` (peer 0 is the student's model.pt)."""
    return f"peer{i}.pt"


def seed_dir(out: Path, seed: int) -> Path:
    return Path(out) / f"seed{seed}"


# ----------------------------------------------------------------------------- what is ours

def is_project_file(name: str) -> bool:
    """Whether a file of this name, in a run, sweep, comparison or study directory, is one
    rsdistill writes there (an atomic write's leftover temporary file included)."""
    return name in _PROJECT_FILES or bool(_PEER_FILE.fullmatch(name)) or is_temp_file_name(name)


def project_dir_rule(directory: Path, name: str):
    """For a sub-folder ``name`` of a run-like directory: ``None`` when it is not one
    rsdistill makes, else the test its files must pass to be ours."""
    if name in _OWN_DIRS:
        return _OWN_DIRS[name]
    if _SUB_RUN_DIR.fullmatch(name):
        return is_project_file
    # A comparison's method folder holds nothing but its seeds' runs.
    try:
        entries = list(os.scandir(Path(directory) / name))
    except OSError:
        return None
    if entries and all(e.is_dir(follow_symlinks=False) and re.fullmatch(r"seed\d+", e.name)
                       for e in entries):
        return is_project_file
    return None


def other_entries(directory: Path, allowed: frozenset[str] = frozenset()) -> list[str]:
    """The names in ``directory`` besides ``allowed``, its lock file and temporary files
    (sorted; none when it does not exist)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n for n in names
                  if n not in allowed and n != LOCK_FILE and not is_temp_file_name(n))


def describe_entries(names: list[str], directory: Path | None = None, limit: int = 6) -> str:
    """``model.pt, notes/, metrics.json and 4 more``: a short listing for a message."""
    shown = [n + ("/" if directory is not None and (Path(directory) / n).is_dir() else "")
             for n in names[:limit]]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown) + more


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
        """config.yaml as a mapping; an empty, damaged or foreign one is a one-line error
        (a ``!!python`` tag is refused, never constructed)."""
        return read_record(self.file(CONFIG_FILE), "a run",
                           "restore it, or train the run again")

    def read_sections(self, *names: str) -> tuple[dict, list[dict]]:
        """config.yaml and its sections ``names``, each of which must be a mapping."""
        record = self.read_config()
        for name in names:
            if not isinstance(record.get(name), dict):
                raise ConfigError(f"{self.file(CONFIG_FILE)} has no '{name}' section, so it is "
                                  "not the record of a run; restore it, or train the run again")
        return record, [record[name] for name in names]

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
