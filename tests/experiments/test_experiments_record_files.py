"""A grid's own record (compare.yaml, sweep.yaml, pareto.yaml) is read strictly: a damaged
or hand-edited one (a key twice, broken YAML, not a mapping) is one clear error line,
before anything trains."""

from __future__ import annotations

import pytest

from rsdistill.cli.main import main
from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.experiments.compare import check_same_comparison
from rsdistill.experiments.pareto import ParetoConfig, run_pareto
from rsdistill.experiments.sweep import check_sweep_dir
from rsdistill.runtime.rundir import COMPARE_FILE, PARETO_FILE, SWEEP_FILE
from rsdistill.training.config import TrainConfig

DAMAGED = {
    "duplicate": ("kind: x\ndata: {}\nkind: y\n", "gives the key 'kind' twice (line 3)"),
    "broken": ("kind: [x\n", "is not valid YAML"),
    "list": ("- kind\n- data\n", "holds a list, not the record of"),
    "empty": ("", "is empty, not the record of"),
}


def _one_line(exc: pytest.ExceptionInfo, path, needle: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and str(path) in message and needle in message


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_compare_record(tmp_path, damage):
    text, needle = DAMAGED[damage]
    path = tmp_path / COMPARE_FILE
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        check_same_comparison(path, {"kind": "compare"})
    _one_line(exc, path, needle)


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_sweep_record(tmp_path, damage):
    text, needle = DAMAGED[damage]
    (tmp_path / SWEEP_FILE).write_text(text)
    with pytest.raises(ConfigError) as exc:
        check_sweep_dir(tmp_path, {"kind": "sweep"}, resume=True, overwrite=False)
    _one_line(exc, tmp_path / SWEEP_FILE, needle)


def test_pareto_record(tmp_path, tiny_teacher, tiny_tree3, tiny_cache):
    text, needle = DAMAGED["duplicate"]
    (tmp_path / PARETO_FILE).write_text(text)
    data = DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=16,
                      cache_dir=str(tiny_cache), workers=1)
    cfg = ParetoConfig(teacher=str(tiny_teacher), students=["resnet8"], sizes=[16], seeds=1)
    with pytest.raises(ConfigError) as exc:
        run_pareto(tmp_path, data, TrainConfig(model="resnet8", epochs=1, device="cpu"), cfg,
                   resume=True, progress=False)
    _one_line(exc, tmp_path / PARETO_FILE, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == [PARETO_FILE]  # nothing trained


def test_the_command_says_it_in_one_line(tmp_path, tiny_teacher, tiny_cache, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / SWEEP_FILE).write_text("kind: sweep\nseeds: 1\nseeds: 2\n")
    code = main(["sweep", "--teacher", str(tiny_teacher), "--student", "resnet8", "--alphas",
                 "0.5", "--seeds", "1", "--epochs", "1", "--device", "cpu", "--cache-dir",
                 str(tiny_cache), "--no-progress", "--resume", "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(lines) == 1, lines
    assert lines[0].startswith("rsdistill: error: ") and "'seeds' twice (line 3)" in lines[0]
