"""What a run records about itself (config.yaml) and the one check that a resume matches it.

The record is the resolved config: every default filled in, paths absolute, β resolved,
so ``evaluate`` and ``--resume`` rebuild exactly the run that was made.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from rsdistill.config import from_dict
from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.losses import MethodConfig
from rsdistill.runtime import distributed
from rsdistill.runtime.locks import clear_project_files
from rsdistill.runtime.rundir import (
    ASSISTANT_DIR,
    CONFIG_FILE,
    STARTED_RUN_FILES,
    RunDirectory,
    describe_entries,
    other_entries,
)
from rsdistill.training.config import TrainConfig

log = logging.getLogger(__name__)

# Where the data lives and how it is decoded never changes what a run computes.
LOCATION_KEYS = {"data_root", "cache_dir", "workers", "download"}


@dataclass
class DistillConfig(MethodConfig):
    """A ``distill`` run: its method settings and the teacher it distils from."""

    teacher: str = ""


def run_record(data_cfg: DataConfig, train_cfg: TrainConfig,
               distill_cfg: DistillConfig | None) -> dict:
    """The config.yaml of one run (β resolved, so a resume compares numbers)."""
    return {
        "kind": "distill" if distill_cfg is not None else "train",
        "data": asdict(data_cfg),
        "train": asdict(train_cfg),
        "distill": ({**asdict(distill_cfg), "nuclear_beta_resolved": distill_cfg.beta()}
                    if distill_cfg is not None else None),
    }


def config_diffs(old: dict, new: dict, sections: dict[str, type],
                 ignore: set[str] = frozenset()) -> list[str]:
    """``section.key: old -> new`` for every setting of ``sections`` (name -> its config
    class) that differs between two records, ``ignore``d keys aside.

    A key missing from a section counts as the class's default: configs are always
    written whole, so a missing key was added after ``old`` was written, and the old
    run behaved as that key's default does.
    """
    diffs = []
    for section, cls in sections.items():
        defaults = asdict(cls())
        a = {**defaults, **(old.get(section) or {})}
        b = {**defaults, **(new.get(section) or {})}
        for key in sorted(set(a) | set(b)):
            if key not in ignore and a.get(key) != b.get(key):
                diffs.append(f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return diffs


def check_resume(path: Path, old: dict, new: dict, sections: dict[str, type],
                 ignore: set[str] = frozenset(), hint: str = "") -> None:
    """Resuming with other settings would mix two runs in one directory: refuse it."""
    diffs = config_diffs(old, new, sections, LOCATION_KEYS | set(ignore))
    if diffs:
        raise ConfigError(f"--resume with different settings than {path}: "
                          + "; ".join(diffs[:5]) + hint)


RUN_SECTIONS = {"data": DataConfig, "train": TrainConfig, "distill": DistillConfig}


def refuse_other_files(out: Path, what: str, allowed: frozenset[str] = frozenset()) -> None:
    """A directory holding anything but ``allowed`` (besides its lock and temporary
    files) is not rsdistill's to write into: refused, listing what is there."""
    if other_entries(out, allowed):
        there = describe_entries(other_entries(out), out)
        raise ConfigError(f"{out} is not empty and holds no {what} to resume ({there}); choose "
                          "another --out, or pass --overwrite to replace the rsdistill files in "
                          "it (other files stay)")


def check_grid_dir(out: Path, record_file: str, what: str, resume: bool, overwrite: bool,
                   allowed: frozenset[str] = frozenset()) -> bool:
    """What a grid (sweep, comparison, Pareto grid) may do with ``out``, which this process
    has locked; True when ``out`` holds a grid of its kind (``record_file``) to continue,
    whose settings the caller then compares.

    As for a run: ``--overwrite`` clears what rsdistill wrote; a grid of its kind is
    continued only under ``--resume``; anything but ``allowed`` in a directory without
    one is refused, ``--resume`` or not."""
    if overwrite:
        if resume:
            raise ConfigError(f"--resume continues the {what} in --out and --overwrite "
                              "replaces it; pass only one of them")
        if distributed.is_main():
            clear_project_files(out)
        return False
    if not (out / record_file).is_file():
        refuse_other_files(out, what, allowed)
        return False
    if not resume:
        raise ConfigError(f"{out} already holds a {what}; pass --resume to continue it, "
                          "--overwrite to replace it, or choose another --out")
    return True


def check_run_dir(out: Path, record: dict, resume: bool, overwrite: bool = False, *,
                  has_state: bool | None = None) -> None:
    """What a run may do with ``out``, which this process has locked.

    ``--overwrite`` clears what rsdistill wrote there. A directory holding a run (default:
    its last.pt; born-again's top directory has none of its own, ``has_state`` says) is
    refused without ``--resume``; with it, the kind and settings must match config.yaml.
    Otherwise only an empty directory, or one a run left before its first complete epoch,
    is written into."""
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it; "
                          "pass only one of them")
    if overwrite:
        if distributed.is_main():
            clear_project_files(out)
        return
    run = RunDirectory(out)
    started = run.has_state() if has_state is None else has_state
    if started and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, "
                          "--overwrite to replace it, or choose another --out")
    if started:
        if run.file(CONFIG_FILE).is_file():
            old = run.read_config() or {}
            kinds = old.get("kind"), record.get("kind")
            if None not in kinds and kinds[0] != kinds[1]:
                raise ConfigError(f"{out} holds a {kinds[0]} run, not a {kinds[1]} run; "
                                  "choose another --out")
            check_resume(out / CONFIG_FILE, old, record, RUN_SECTIONS)
        return
    # A teacher assistant distilled for this run lives in its folder (--assistant).
    refuse_other_files(out, "run", STARTED_RUN_FILES | {ASSISTANT_DIR})
    if resume and run.file(CONFIG_FILE).is_file():
        log.info("%s holds no complete epoch yet; training starts at epoch 1", out)


def load_run_config(run_dir: Path) -> tuple[DataConfig, TrainConfig, DistillConfig | None]:
    """The sections of a run's config.yaml, as config objects."""
    record, (data, train) = RunDirectory(run_dir).read_sections("data", "train")
    data_cfg = from_dict(DataConfig, data, "data")
    train_cfg = from_dict(TrainConfig, train, "train")
    distill = record.get("distill")
    distill_cfg = None
    if distill:
        distill = {k: v for k, v in distill.items() if k != "nuclear_beta_resolved"}
        distill_cfg = from_dict(DistillConfig, distill, "distill")
    return data_cfg, train_cfg, distill_cfg
