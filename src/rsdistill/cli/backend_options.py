"""The options saying where a grid's trials run (``--backend`` and its settings), shared by
every command that runs a grid: sweep, pareto, compare and run. Generated from
:class:`BackendConfig` (see schema_args), which holds their defaults."""

from __future__ import annotations

import argparse

from rsdistill.cli.schema_args import add_section, given
from rsdistill.experiments.backends import BackendConfig


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("backend", "where the trials (seeds, cells, runs) run; "
                                                 "see docs/cluster.md")
    add_section(group, BackendConfig, None)


def backend_config(args: argparse.Namespace) -> BackendConfig:
    cfg = BackendConfig(**given(args, BackendConfig))
    cfg.validate()
    return cfg
