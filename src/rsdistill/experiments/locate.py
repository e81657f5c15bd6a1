"""Which run a folder means: a study folder (what ``rsdistill run`` announces) or a sweep
folder given to a command that reads one run (export, evaluate, quantize, predict) is
its best student; given to ``report``, a study folder is its sweep. And the study's
headline, read from the sweep's results."""

from __future__ import annotations

from pathlib import Path

from rsdistill.errors import ConfigError
from rsdistill.experiments.stats import by_seed, paired_difference
from rsdistill.io import read_json
from rsdistill.runtime.rundir import (
    COMPARE_RESULTS, MODEL_FILE, STUDY_FILE, SWEEP_FILE, SWEEP_RESULTS,
)

STUDY_SWEEP = "sweep"
STUDY_TEACHER = "teacher"


def best_setting(results: dict) -> dict:
    """The aggregate row (α, β, means over seeds) with the best mean accuracy."""
    return max(results["aggregate"], key=lambda r: (r["accuracy_mean"], r["f1_macro_mean"]))


def best_sweep_runs(results: dict) -> tuple[str, list[str]]:
    """(label, run paths relative to the sweep) of the best setting, lowest seed first."""
    best = best_setting(results)
    rows = sorted((r for r in results["rows"]
                   if r["alpha"] == best["alpha"] and r["beta"] == best["beta"]),
                  key=lambda r: r["seed"])
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


def paired_lead(results: dict, best: dict, base: dict) -> str:
    """``best``'s accuracy minus ``base``'s of the same seed, and whether that stands out of
    the seed noise (``stats.paired_difference``), in words."""
    p = paired_difference(*(by_seed([r for r in results["rows"] if r["alpha"] == s["alpha"]
                                     and r["beta"] == s["beta"]]) for s in (best, base)))
    if p["distinguishable"] is None:
        lead = 100 * (best["accuracy_mean"] - base["accuracy_mean"])
        return f"{lead:+.2f} pt (fewer than two seeds pair them: seed noise cannot be judged)"
    where = "beyond" if p["distinguishable"] else "within"
    return (f"{100 * p['mean']:+.2f} ± {100 * p['std']:.2f} pt paired by seed over "
            f"{p['seeds']} seeds ({where} the seed noise: 95 % interval ± "
            f"{100 * p['ci95']:.2f} pt)")


def headline(results: dict) -> list[str]:
    """The study's result in three lines: teacher, best student and its lead over α = 0
    (same β), paired by seed, with whether its 95 % interval excludes 0."""
    lines = []
    teacher = results.get("teacher")
    if teacher:
        lines.append(f"teacher {teacher['model']}: test accuracy {100 * teacher['accuracy']:.2f} %")
    best = best_setting(results)
    n = best["seeds"]
    lines.append(f"best student {results['student']['model']} (α = {best['alpha']:g}, β = "
                 f"{best['beta']}): {100 * best['accuracy_mean']:.2f} ± "
                 f"{100 * best['accuracy_std']:.2f} % over {n} seed{'s' if n != 1 else ''}")
    base = next((r for r in results["aggregate"]
                 if r["alpha"] == 0 and r["beta"] == best["beta"]), None)
    if base is not None and base is not best:
        lines.append(f"lead over α = 0 (no distillation): {paired_lead(results, best, base)}")
    elif base is best:
        lines.append("no α > 0 beats α = 0 (training on the labels alone)")
    return lines
