"""The ``ray`` backend: every trial a Ray task, on one machine or a cluster of many.

Ray schedules the tasks by their resources (``--cpus-per-trial``, ``--gpus-per-trial``)
and reruns a task whose worker process or node died (``--max-retries``); the rerun
resumes from the trial's last.pt, so a retry repeats at most one epoch. Results and
caches are files under ``--out``, so every node must see it: the driver writes a token
file there that each trial reads back before it trains, and the driver checks that it
sees every results file a trial wrote. Ray is optional (``pip install 'rsdistill[ray]'``).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from rsdistill.errors import ConfigError, TrainingError
from rsdistill.experiments.backends.base import BACKENDS, BackendConfig, TrialBatch
from rsdistill.experiments.backends.trial import (
    StorageToken,
    Trial,
    TrialResult,
    enter_worker,
    execute_trial,
    new_token,
    scheduled,
    not_shared_error,
)
from rsdistill.experiments.seeds import usable_cores
from rsdistill.io import atomic_write_text

log = logging.getLogger(__name__)

INSTALL_HINT = "--backend ray needs Ray: pip install 'rsdistill[ray]'"
# A results file a trial wrote on another node may take a moment to show on NFS (its
# attribute cache); after this long, the driver calls --out not shared.
VISIBLE_WAIT_S = 10.0
REACH_TIMEOUT_S = 5.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def _ray_trial(trial: Trial, cpus: int, token: StorageToken, log_level: int) -> TrialResult:
    """In a Ray worker: the trial with ``cpus`` intra-op threads."""
    enter_worker(trial, cpus, log_level)
    result = execute_trial(trial, thread_budget=lambda: cpus, token=token)
    # Several Ray nodes may share a host name (or a machine): name the node too.
    node = import_ray().get_runtime_context().get_node_id()[:8]
    return replace(result, node=f"{result.node}/{node}")


def _connect(ray, cfg: BackendConfig) -> bool:
    """Joins the cluster (or starts a Ray instance here); True when this call started it."""
    if ray.is_initialized():
        return False
    options = dict(include_dashboard=False, logging_level=logging.WARNING)
    try:
        if cfg.address:
            _check_reachable(cfg.address)
            ray.init(address=cfg.address, **options)
        else:
            # The cores this process may use (taskset); Ray finds the GPUs itself.
            ray.init(num_cpus=usable_cores(), **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {cfg.address}" if cfg.address else "on this machine"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot start or reach a Ray cluster {where} ({first}); start one "
                          "with 'ray start --head' (see docs/cluster.md) or leave out "
                          "--ray-address to use this machine alone") from None
    return True


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable HOST:PORT for minutes; a refused TCP connection is known
    at once."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto" or a ray:// client address: Ray answers those quickly itself
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address}: {exc.strerror or exc}") from None


def _check_fits(ray, cpus: int, gpus: float) -> None:
    """A task no node can hold would wait forever: refuse it at once."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
        most = max((r.get("CPU", 0) for r in nodes), default=0)
        gpu = f" and {gpus:g} GPU(s)" if gpus else ""
        raise ConfigError(f"no node of the Ray cluster has {cpus} CPU(s){gpu} for one trial "
                          f"(the largest has {most:g} CPUs); lower --cpus-per-trial or "
                          "--gpus-per-trial")


def _slots(ray, cpus: int, gpus: float) -> int:
    """Trials the cluster runs at once: on each live node, as many as its CPUs (and GPUs)
    hold."""
    total = 0
    for r in (n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")):
        fit = int(r.get("CPU", 0) // cpus)
        total += min(fit, int(r.get("GPU", 0) // gpus)) if gpus else fit
    return max(1, total)


def _failure(ray, exc: Exception, trial: Trial, retries: int) -> Exception:
    """What a failed trial raises in the driver: the trial's own error where it raised one,
    else one line saying the worker died and how to continue."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception):
            return cause
    if isinstance(exc, ray.exceptions.TaskCancelledError):
        return KeyboardInterrupt()
    return TrainingError(f"{trial.label}: its Ray worker was lost {retries + 1} time(s) "
                         f"({type(exc).__name__}); {trial.run_dir} keeps every finished "
                         "epoch in its last.pt: rerun with --resume (or raise "
                         "--max-retries) to continue")


def _wait_visible(trial: Trial, result: TrialResult, out) -> None:
    deadline = time.monotonic() + VISIBLE_WAIT_S
    while not trial.done():
        if time.monotonic() > deadline:
            missing = next(p for p in trial.results if not p.is_file())
            raise not_shared_error(out, result.node, f"{missing} written there is not "
                                   "visible to the driver")
        time.sleep(0.2)


@BACKENDS.register("ray")
def run_ray(batch: TrialBatch, cfg: BackendConfig) -> Iterator[tuple[Trial, TrialResult]]:
    ray = import_ray()
    started = _connect(ray, cfg)
    token = new_token(batch.out)
    try:
        cpus = cfg.cpus_per_trial or 1
        _check_fits(ray, cpus, cfg.gpus_per_trial)
        trials = scheduled(batch.trials, batch.what, _slots(ray, cpus, cfg.gpus_per_trial))
        atomic_write_text(Path(token.path), token.value)
        task = ray.remote(_ray_trial)
        options = dict(num_cpus=cpus, num_gpus=cfg.gpus_per_trial, max_retries=cfg.max_retries,
                       retry_exceptions=False)
        level = logging.getLogger("rsdistill").getEffectiveLevel()
        refs = {task.options(name=t.label, **options).remote(t, cpus, token, level): t
                for t in trials}
        log.info("%d trials on Ray (%g CPUs in the cluster), %d at a time, %d CPU(s)%s each",
                 len(refs), ray.cluster_resources().get("CPU", 0), trials[0].schedule.slots, cpus,
                 f" and {cfg.gpus_per_trial:g} GPU(s)" if cfg.gpus_per_trial else "")
        yield from _collect(ray, refs, cfg, batch.out)
    finally:
        _remove(token)
        if started:
            ray.shutdown()


def _collect(ray, refs: dict, cfg: BackendConfig, out) -> Iterator[tuple[Trial, TrialResult]]:
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            trial = refs[ready[0]]
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                raise _failure(ray, exc, trial, cfg.max_retries) from None
            _wait_visible(trial, result, out)
            yield trial, result
    except BaseException:
        # Ctrl-C, a failed trial or the caller stopping early: stop the others now. Each
        # keeps its last.pt (written atomically after every epoch), so rerunning continues.
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def _remove(token: StorageToken) -> None:
    try:
        Path(token.path).unlink(missing_ok=True)
    except OSError as exc:
        log.debug("could not remove %s: %s", token.path, exc)


run_ray.check = import_ray
