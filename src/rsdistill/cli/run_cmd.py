"""``rsdistill run``: the whole study (teacher, α sweeps with/without nuclear norm, report)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from rsdistill.cli.backend_options import add_backend_arguments, backend_config
from rsdistill.cli.report_cmd import INT8_HELP
from rsdistill.cli.training_args import add_seeds_arg
from rsdistill.cli.schema_args import add_section, given
from rsdistill.data.module import DataConfig
from rsdistill.experiments.study import (
    StudyConfig, StudySweep, describe_locations, load_study_config, run_study, study_stages,
)
from rsdistill.experiments.study_progress import StudyProgress
from rsdistill.experiments.locate import headline
from rsdistill.io import read_json
from rsdistill.report.sweep_report import write_report
from rsdistill.runtime.rundir import SWEEP_RESULTS

log = logging.getLogger(__name__)

STUDY_DATA_OPTIONS = ("dataset", "data_root", "download", "cache_dir", "allow_missing_classes")


def register(sub) -> None:
    p = sub.add_parser("run", help="run the whole study in one command",
                       description="Prepare data (--download fetches a missing archive), train "
                                   "the teacher, sweep α without and with the nuclear norm "
                                   "(β = α), evaluate and write the report. Without --config or "
                                   "--dataset: the UC Merced study (configs/ucmerced.yaml). "
                                   "Rerunning continues an interrupted study.")
    p.add_argument("--config", help="study config YAML (see configs/; default: the UC Merced "
                                    "study)")
    # The data options a study takes from the command line, over its config's data section.
    add_section(p, DataConfig, "data", only=STUDY_DATA_OPTIONS,
                overrides={"dataset": {"shown": f"the config's, else {DataConfig().dataset}"}})
    add_seeds_arg(p, StudySweep, shown="the config's")
    p.add_argument("--jobs", type=int, help="seeds trained side by side (overrides the config; "
                                            "0 = one per CPU core, 1 on a GPU)")
    p.add_argument("--out", help="study directory (default runs/<dataset>)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars (log lines only)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace what rsdistill wrote in the study directory and start afresh "
                        "(without it, rerunning continues the study there)")
    p.add_argument("--int8", action="store_true", help=INT8_HELP)
    add_backend_arguments(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    # No config: StudyConfig's defaults, which are configs/ucmerced.yaml's (a test
    # keeps the two equal), so a bare 'rsdistill run' is the UC Merced study.
    backend = backend_config(args)
    cfg = load_study_config(args.config) if args.config else StudyConfig()
    cfg.data = replace(cfg.data, **given(args, DataConfig))
    cfg.sweep = replace(cfg.sweep, **given(args, StudySweep))
    if args.jobs is not None:
        cfg.sweep.jobs = args.jobs
    if args.out:
        cfg.out = args.out
    elif not args.config:
        cfg.out = str(Path("runs") / cfg.data.dataset)
    log.info("%s", describe_locations(cfg))
    stages = StudyProgress(study_stages(cfg))
    sweep_dir = run_study(cfg, progress=args.progress, overwrite=args.overwrite,
                          backend=backend, stages=stages)
    stages.begin("report", "report")
    report = write_report(sweep_dir, int8=args.int8)
    stages.done("report")
    if (sweep_dir / SWEEP_RESULTS).is_file():  # the headline: what a newcomer looks for first
        for line in headline(read_json(sweep_dir / SWEEP_RESULTS)):
            print(line)
    print(f"wrote {report}")
    return 0
