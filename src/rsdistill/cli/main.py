"""The ``rsdistill`` command: subcommands are registered by the modules in this package."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys

from rsdistill import __version__
from rsdistill.errors import RsdistillError
from rsdistill.io import describe_os_error, os_error_of

# Each module adds its subcommand(s) with ``register(subparsers)``.
COMMAND_MODULES = ("data_cmd", "models_cmd", "train_cmd", "evaluate_cmd", "sweep_cmd", "report_cmd", "run_cmd",
                   "compare_cmd", "pareto_cmd",
                   "export_cmd", "compress_cmd", "quantize_cmd", "predict_cmd")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="rsdistill",
        description="Knowledge distillation for remote-sensing scene classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"rsdistill {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"rsdistill.cli.{name}").register(sub)
    return parser


# A folder that is read-only or full, or not ours to write: the user's to fix, never a bug.
_ENVIRONMENT_FAULTS = {errno.ENOSPC: "cannot write", errno.EDQUOT: "cannot write",
                       errno.EROFS: "cannot write", errno.EFBIG: "cannot write",
                       errno.EACCES: "cannot access", errno.EPERM: "cannot access"}


def environment_fault(exc: BaseException) -> str | None:
    """One line for a failed write that no rsdistill code turned into an error (a folder
    made on the way, a library's own file), or None when ``exc`` is something else."""
    cause = os_error_of(exc)
    if cause is None or cause.errno not in _ENVIRONMENT_FAULTS:
        return None
    where = f" {cause.filename}" if cause.filename else ""
    return f"{_ENVIRONMENT_FAULTS[cause.errno]}{where}: {describe_os_error(cause)}"


# Advice in errors names command-line flags; under 'rsdistill run' most settings live in
# the study config instead, and rerunning the command is what continues it.
_RUN_SPELLINGS = {"--resume": "the same command (it continues where it stopped)"}
_FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def adapt_advice(text: str, parser: argparse.ArgumentParser, command: str) -> str:
    """``text`` with every flag that ``command`` does not have (but another command has)
    named as ``run`` users set it: its key in the study config. Other commands unchanged."""
    if command != "run":
        return text
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    own = set(sub.choices[command]._option_string_actions)
    known = {f for p in sub.choices.values() for f in p._option_string_actions}

    def spell(m: re.Match) -> str:
        flag = m.group(0)
        if flag in own or flag not in known:
            return flag
        return _RUN_SPELLINGS.get(flag, f"'{flag[2:].replace('-', '_')}' in the study config")
    return _FLAG.sub(spell, text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from rsdistill.runtime import distributed

    # Under torchrun (several processes) only rank 0 logs and prints; errors still show.
    quiet = distributed.launched_world_size() > 1 and distributed.launched_rank() != 0
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=logging.WARNING if quiet else level,
                        format="rsdistill: %(message)s", stream=sys.stderr)
    stdout = sys.stdout
    if quiet:
        sys.stdout = open(os.devnull, "w")
    try:
        return int(args.func(args) or 0)
    except RsdistillError as exc:
        print(f"rsdistill: error: {adapt_advice(str(exc), parser, args.command)}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        line = environment_fault(exc)
        if line is None:
            raise
        print(f"rsdistill: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rsdistill: interrupted", file=sys.stderr)
        return 130
    finally:
        if quiet:
            sys.stdout.close()
            sys.stdout = stdout
        distributed.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
