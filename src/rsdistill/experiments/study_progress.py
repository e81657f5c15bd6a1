"""The whole study's progress: a line as each stage starts, and one as it ends with the
time it took and an ETA for the rest of the study.

The ETA is the measured pace (seconds per epoch over the stages timed so far) times the
epochs left. A stage's epochs count its runs one after another (the sweep: epochs ×
seeds): seeds trained side by side share the cores one run had alone, so the machine's
epochs per second stay about the same. Until a stage that trains has been timed, the
ETA is unknown; a stage found complete (a resumed study) is not a measurement.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    epochs: int = 0  # epochs it trains, all its runs counted one after another


def seconds_per_epoch(stages: list[Stage], took: dict[str, float | None]) -> float | None:
    """The pace of the timed stages that train; None before one has been timed."""
    timed = [s for s in stages if s.epochs > 0 and took.get(s.name) is not None]
    if not timed:
        return None
    return sum(took[s.name] for s in timed) / sum(s.epochs for s in timed)


def epochs_left(stages: list[Stage], took: dict[str, float | None]) -> int:
    return sum(s.epochs for s in stages if s.name not in took)


def eta_seconds(stages: list[Stage], took: dict[str, float | None]) -> float | None:
    """Seconds left for the stages not finished (``took``: the finished ones, None for
    one found complete); 0 when none of them trains; None while the pace is unknown."""
    left = epochs_left(stages, took)
    if left == 0:
        return 0.0
    pace = seconds_per_epoch(stages, took)
    return None if pace is None else pace * left


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def eta_text(seconds_left: float, what: str, basis: str = "") -> str:
    """``"sweep done at about 14:31 UTC (12 min 05 s left)"``: the one ETA format of a
    study's log, in the sweep's epoch lines and the study's stage lines alike."""
    end = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_left)
    return f"{what} done at about {end:%H:%M} UTC ({duration(seconds_left)} left" \
        f"{': ' + basis if basis else ''})"


def study_eta(stages: list[Stage], took: dict[str, float | None]) -> str:
    eta = eta_seconds(stages, took)
    if eta is None:
        return "ETA unknown (no training stage timed yet)"
    left = epochs_left(stages, took)
    if left == 0:
        return "nothing left to train"
    return eta_text(eta, "study", f"{left} epochs at {seconds_per_epoch(stages, took):.2f} "
                                  "s/epoch so far")


def stage_done_line(stages: list[Stage], name: str, took: dict[str, float | None],
                    elapsed: float) -> str:
    """The line for stage ``name`` finished (``took`` holds it already)."""
    index = [s.name for s in stages].index(name) + 1
    spent = took[name]
    how = "already complete" if spent is None else f"done in {duration(spent)}"
    return (f"stage {index}/{len(stages)} {name} {how}; study {duration(elapsed)} so far, "
            f"{study_eta(stages, took)}")


@dataclass
class StudyProgress:
    """Times the stages of one study as they start and finish, and logs their lines."""

    stages: list[Stage]
    clock: Callable[[], float] = time.monotonic
    took: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._start = self._stage_start = self.clock()

    def begin(self, name: str, what: str) -> None:
        index = [s.name for s in self.stages].index(name) + 1
        self._stage_start = self.clock()
        log.info("stage %d/%d: %s", index, len(self.stages), what)

    def done(self, name: str, measured: bool = True) -> str:
        now = self.clock()
        self.took[name] = now - self._stage_start if measured else None
        self._stage_start = now
        line = stage_done_line(self.stages, name, self.took, now - self._start)
        log.info("%s", line)
        return line
