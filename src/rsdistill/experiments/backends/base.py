"""Where a grid's trials run: the backend's settings, the batch it gets, the registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from rsdistill.config import option
from rsdistill.errors import ConfigError
from rsdistill.experiments.backends.trial import Trial, TrialResult
from rsdistill.registry import Registry


# name -> run(batch, cfg) (see ``Backend`` below); made before BackendConfig, whose
# --backend offers its names.
BACKENDS: Registry[Backend] = Registry("backend")


@dataclass(frozen=True)
class BackendConfig:
    """Where a grid's trials run; each field is a command-line option (schema_args)."""

    name: str = option("local", flag="--backend", choices=BACKENDS.names,
                       help="local: processes on this machine; ray: a Ray cluster "
                            "(pip install 'rsdistill[ray]')")
    # None starts a Ray instance on this machine's cores for the grid.
    address: str | None = option(
        None, flag="--ray-address", metavar="auto|HOST:PORT",
        shown="none: start Ray on this machine's cores for this run",
        help="the Ray cluster to join ('auto': the one this machine belongs to)")
    # None: local = the thread budget shared by the trials running; Ray = 1.
    cpus_per_trial: int | None = option(
        None, shown="Ray 1; local: the cores shared by the trials running",
        help="CPUs (and intra-op threads) of each trial")
    gpus_per_trial: float = option(0.0, help="GPUs of each trial on Ray, fractions allowed")
    max_retries: int = option(3, help="times a trial whose worker died runs again from its "
                                      "last.pt")

    def validate(self) -> None:
        # A backend may name what it needs installed (``run.check``): refused here, before
        # anything trains.
        getattr(BACKENDS.get(self.name), "check", lambda: None)()
        if self.cpus_per_trial is not None and self.cpus_per_trial < 1:
            raise ConfigError(f"--cpus-per-trial must be >= 1, got {self.cpus_per_trial}")
        if self.gpus_per_trial < 0:
            raise ConfigError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial:g}")
        if self.max_retries < 0:
            raise ConfigError(f"--max-retries must be >= 0, got {self.max_retries}")
        if self.address and self.name != "ray":
            raise ConfigError("--ray-address needs --backend ray")


@dataclass(frozen=True)
class TrialBatch:
    """Trials still to run, and how the grid that made them trains."""
    trials: list[Trial]
    out: Path                 # the grid's directory (every trial's run dir is below it)
    jobs: int = 0             # local backend: trials side by side (0 = one per core)
    precision: str = "auto"
    device: str = "cpu"
    progress: bool = True
    what: str = "grid"        # the grid in its ETA's words: "sweep", "Pareto grid"


# run(batch, cfg): yields (trial, result) as each trial finishes; raises on a trial that
# failed for good. Closing the iterator early stops the trials still running.
Backend = Callable[[TrialBatch, BackendConfig], Iterator[tuple[Trial, TrialResult]]]
