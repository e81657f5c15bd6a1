"""Backends that run a grid's trials: ``local`` (processes on this machine, the default)
and ``ray`` (a Ray cluster, from one machine to many). Each registers itself in
``BACKENDS``; grids build :class:`Trial` s and call :func:`run_trials`."""

from rsdistill.experiments.backends import local, ray_backend  # noqa: F401  (registration)
from rsdistill.experiments.backends.base import BACKENDS, BackendConfig, TrialBatch
from rsdistill.experiments.backends.runner import run_trials
from rsdistill.experiments.backends.trial import Trial, TrialResult

__all__ = ["BACKENDS", "BackendConfig", "Trial", "TrialBatch", "TrialResult", "run_trials"]
