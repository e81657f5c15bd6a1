"""The options saying where a grid's trials run (``--backend`` and its settings), shared by
every command that runs a grid: sweep, pareto, compare and run."""

from __future__ import annotations

import argparse

from rsdistill.experiments.backends import BACKENDS, BackendConfig


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    d = BackendConfig()
    g = parser.add_argument_group("backend", "where the trials (seeds, cells, runs) run; see "
                                             "docs/cluster.md")
    g.add_argument("--backend", choices=BACKENDS.names(), default=d.name,
                   help="local: processes on this machine (default); ray: a Ray cluster "
                        "(pip install 'rsdistill[ray]')")
    g.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                   help="the Ray cluster to join ('auto': the one this machine belongs to); "
                        "default: start Ray on this machine's cores for this run")
    g.add_argument("--cpus-per-trial", type=int, default=None,
                   help="CPUs (and intra-op threads) of each trial (default: Ray 1; local: "
                        "the cores shared by the trials running)")
    g.add_argument("--gpus-per-trial", type=float, default=d.gpus_per_trial,
                   help="GPUs of each trial on Ray, fractions allowed (default 0)")
    g.add_argument("--max-retries", type=int, default=d.max_retries,
                   help=f"times a trial whose worker died runs again from its last.pt "
                        f"(default {d.max_retries})")


def backend_config(args: argparse.Namespace) -> BackendConfig:
    cfg = BackendConfig(name=args.backend, address=args.ray_address,
                        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                        max_retries=args.max_retries)
    cfg.validate()
    return cfg
