"""Which run a folder means: a study folder (what ``rsdistill run`` announces) or a sweep
folder given to a command that reads one run (export, evaluate, quantize, predict) is
its best student; given to ``report``, a study folder is its sweep. And the study's
headline, read from the sweep's results."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from rsdistill.errors import ConfigError
from rsdistill.experiments.stats import by_seed, paired_difference
from rsdistill.io import read_json
from rsdistill.losses import resolve_beta
from rsdistill.runtime.rundir import (
    COMPARE_RESULTS, MODEL_FILE, STUDY_FILE, SWEEP_FILE, SWEEP_RESULTS,
)

STUDY_SWEEP = "sweep"
STUDY_TEACHER = "teacher"


def best_of(settings: list[dict]) -> dict:
    """The setting (an aggregate row: means over seeds) with the best mean accuracy; macro
    F1 breaks a tie, then the first row wins."""
    return max(settings, key=lambda r: (r["accuracy_mean"], r["f1_macro_mean"]))


def setting_runs(rows: list[dict], setting: dict) -> list[dict]:
    """The per-seed rows of one (α, β) setting."""
    return [r for r in rows if r["alpha"] == setting["alpha"] and r["beta"] == setting["beta"]]


def best_sweep_runs(results: dict) -> tuple[str, list[str]]:
    """(label, run paths relative to the sweep) of the best setting, lowest seed first."""
    best = best_of(results["aggregate"])
    rows = sorted(setting_runs(results["rows"], best), key=lambda r: r["seed"])
    return f"α = {best['alpha']:g}, β = {best['beta']}", [r["run"] for r in rows]


def _is_study(path: Path) -> bool:
    return (path / STUDY_FILE).is_file()


def _choices(path: Path) -> str:
    found = [str(path / name) for name in (STUDY_TEACHER, STUDY_SWEEP)
             if (path / name).is_dir()]
    return ", ".join(found) if found else "nothing trained yet"


def report_dir(path: str | Path) -> Path:
    """The folder ``report`` writes into: a study's sweep, else ``path`` itself."""
    path = Path(path).expanduser()
    if _is_study(path) and not (path / SWEEP_RESULTS).is_file() \
            and not (path / COMPARE_RESULTS).is_file():
        return path / STUDY_SWEEP
    return path


def run_dir(path: str | Path) -> tuple[Path, str | None]:
    """(the run a model-reading command uses, a note saying which when it chose one).

    A run directory, a model file or anything else is returned unchanged (the command's
    own checks apply). A study or sweep folder is its best student's first seed; one
    whose sweep has not finished is an error naming what it holds.
    """
    path = Path(path).expanduser()
    if not path.is_dir() or (path / MODEL_FILE).is_file():
        return path, None
    study = path if _is_study(path) else None
    sweep = path / STUDY_SWEEP if study else path
    if not (sweep / SWEEP_FILE).is_file():
        return path, None
    if not (sweep / SWEEP_RESULTS).is_file():
        raise ConfigError(f"{path} is a {'study' if study else 'sweep'} whose sweep has not "
                          f"finished (no {SWEEP_RESULTS}); pass one of its runs: "
                          f"{_choices(study) if study else 'a seed<k>/<member> folder'}")
    label, runs = best_sweep_runs(read_json(sweep / SWEEP_RESULTS))
    chosen = sweep / runs[0]
    teacher = f"; the teacher is {study / STUDY_TEACHER}" if study else ""
    return chosen, (f"{path} is a {'study' if study else 'sweep'}: using its best student "
                    f"{chosen} ({label}, seed 0 of {len(runs)}){teacher}")


class Lead(NamedTuple):
    """The best setting against the student trained without rsdistill, paired by seed:
    what the study's headline and the sweep's report both state."""
    best: dict
    base: dict | None     # the α = 0 setting it is measured against; None: no α = 0 run
    plain: bool           # base is the plain scratch student (α = 0, β = 0)
    paired: dict | None   # stats.paired_difference of best − base; None without a base


def _is_plain(setting: dict) -> bool:
    # β = alpha at α = 0 is β = 0: the grid trains that cell once, as the plain student.
    return setting["alpha"] == 0 and resolve_beta(setting["beta"], 0.0) == 0


def baseline(aggregate: list[dict], best: dict) -> tuple[dict | None, bool]:
    """(the baseline setting, whether it is the plain scratch student). The baseline is
    what a user gets without rsdistill, α = 0 and β = 0; a grid without β = 0 falls back to
    α = 0 at ``best``'s β (the nuclear norm alone)."""
    plain = sorted((r for r in aggregate if _is_plain(r)), key=lambda r: r["beta"] != "0")
    if plain:
        return plain[0], True
    return next((r for r in aggregate if r["alpha"] == 0 and r["beta"] == best["beta"]),
                None), False


def paired_with(rows: list[dict], setting: dict, base: dict) -> dict:
    """``setting``'s accuracy minus ``base``'s of the same seed (``stats.paired_difference``)."""
    return paired_difference(by_seed(setting_runs(rows, setting)),
                             by_seed(setting_runs(rows, base)))


def scratch_lead(results: dict) -> Lead:
    """The best setting of a sweep's results and its lead over the baseline (``baseline``)."""
    best = best_of(results["aggregate"])
    base, plain = baseline(results["aggregate"], best)
    paired = None if base is None else paired_with(results["rows"], best, base)
    return Lead(best, base, plain, paired)


def baseline_text(lead: Lead) -> str:
    """Which baseline ``lead`` is measured against, in words (``lead.base`` is set)."""
    if lead.plain:
        return "the scratch student (α = 0, β = 0, no distillation)"
    return f"α = 0 at β = {lead.base['beta']} (no distillation; the sweep has no β = 0 run)"


def paired_lead(lead: Lead) -> str:
    """``lead``'s paired difference and whether it stands out of the seed noise, in words."""
    p = lead.paired
    if p["distinguishable"] is None:
        diff = 100 * (lead.best["accuracy_mean"] - lead.base["accuracy_mean"])
        return f"{diff:+.2f} pt (fewer than two seeds pair them: seed noise cannot be judged)"
    where = "beyond" if p["distinguishable"] else "within"
    return (f"{100 * p['mean']:+.2f} ± {100 * p['std']:.2f} pt paired by seed over "
            f"{p['seeds']} seeds ({where} the seed noise: 95 % interval ± "
            f"{100 * p['ci95']:.2f} pt)")


def headline(results: dict) -> list[str]:
    """The study's result in three lines: teacher, best student and its lead over the
    scratch student (``scratch_lead``), paired by seed, with whether its 95 % interval
    excludes 0."""
    lines = []
    teacher = results.get("teacher")
    if teacher:
        lines.append(f"teacher {teacher['model']}: test accuracy {100 * teacher['accuracy']:.2f} %")
    lead = scratch_lead(results)
    best, n = lead.best, lead.best["seeds"]
    lines.append(f"best student {results['student']['model']} (α = {best['alpha']:g}, β = "
                 f"{best['beta']}): {100 * best['accuracy_mean']:.2f} ± "
                 f"{100 * best['accuracy_std']:.2f} % over {n} seed{'s' if n != 1 else ''}")
    if lead.base is None:
        return lines
    if best["alpha"] == 0:
        lines.append("no α > 0 beats α = 0 (training on the labels alone)")
    else:
        lines.append(f"lead over {baseline_text(lead)}: {paired_lead(lead)}")
    return lines
