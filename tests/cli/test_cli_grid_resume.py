"""``compare`` and ``pareto`` check ``--out`` as ``train`` and ``sweep`` do: ``--resume``
needs a folder that is there, a folder holding anything but a grid of the command's kind is
refused with or without it, a grid of its kind is continued only under ``--resume``, and
``--resume`` with ``--overwrite`` is refused. One error line, exit 2, nothing touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsdistill.cli.main import main
from rsdistill.runtime.rundir import COMPARE_FILE, LOCK_FILE, PARETO_FILE

pytest.importorskip("onnxruntime")

TRAIN = ["--epochs", "1", "--batch-size", "8", "--latency-runs", "1", "--device", "cpu",
         "--no-progress"]
GRID = {"compare": ["--student", "resnet8", "--methods", "kd", "--seeds", "1"],
        "pareto": ["--students", "resnet8", "--sizes", "16", "--seeds", "1", "--jobs", "1"]}
RECORD = {"compare": COMPARE_FILE, "pareto": PARETO_FILE}
WHAT = {"compare": "comparison", "pareto": "Pareto grid"}
COMMANDS = sorted(GRID)


def argv(command: str, teacher: Path, out: Path, *extra: str) -> list[str]:
    return [command, "--teacher", str(teacher), *GRID[command], *TRAIN, *extra,
            "--out", str(out)]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name != LOCK_FILE}


def refused(capsys, args: list[str], *needles) -> str:
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsdistill: error: "), lines
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_resume_needs_an_out_that_is_there(command, tiny_teacher, tmp_path, capsys):
    out = tmp_path / "typo"
    refused(capsys, argv(command, tiny_teacher, out, "--resume"),
            f"--resume: {out} does not exist", "leave out --resume")
    assert not out.exists()


def _foreign(command: str) -> dict[str, dict[str, str]]:
    other = next(c for c in COMMANDS if c != command)
    return {"a sweep": {"sweep.yaml": "kind: sweep\n", "results.json": "{}"},
            "the other grid": {RECORD[other]: f"kind: {other}\n"},
            "user files": {"notes.txt": "mine", "model.pt": "not a grid"}}


@pytest.mark.parametrize("case", ["a sweep", "the other grid", "user files"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_without_a_grid_of_its_kind_is_refused(command, case, tiny_teacher, tmp_path,
                                                        capsys):
    out = tmp_path / "out"
    out.mkdir()
    files = _foreign(command)[case]
    for name, text in files.items():
        (out / name).write_text(text)
    before = snapshot(out)
    for extra in ([], ["--resume"]):
        line = refused(capsys, argv(command, tiny_teacher, out, *extra), out,
                       f"holds no {WHAT[command]} to resume", "--overwrite")
        assert all(name in line for name in files)
        assert snapshot(out) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_grid_of_its_kind_continues_only_under_resume(command, tiny_teacher, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / RECORD[command]).write_text(f"kind: {command}\n")
    before = snapshot(out)
    refused(capsys, argv(command, tiny_teacher, out), out, f"already holds a {WHAT[command]}",
            "pass --resume to continue it", "--overwrite to replace it")
    refused(capsys, argv(command, tiny_teacher, out, "--resume", "--overwrite"),
            f"--resume continues the {WHAT[command]} in --out and --overwrite replaces it",
            "pass only one of them")
    assert snapshot(out) == before


def test_pareto_overwrite_retrains_its_cells_and_keeps_other_files(tiny_teacher, tmp_path,
                                                                   capsys):
    out = tmp_path / "front"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(argv("pareto", tiny_teacher, out, "--overwrite")) == 0
    model = out / "resnet8_16" / "seed0" / "alpha0.50_beta0" / "model.pt"
    first = model.stat().st_mtime_ns
    assert main(argv("pareto", tiny_teacher, out, "--resume")) == 0
    assert model.stat().st_mtime_ns == first  # continued: nothing trained again
    assert main(argv("pareto", tiny_teacher, out, "--overwrite")) == 0
    assert model.stat().st_mtime_ns != first  # replaced: the cell trained afresh
    assert (out / "notes.txt").read_text() == "mine"
