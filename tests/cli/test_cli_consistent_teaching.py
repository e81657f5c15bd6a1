"""``distill --method fm`` with the view bank and a transfer set from the command line: the
options reach config.yaml, and bad values end in one error line before any training."""

from __future__ import annotations

import pytest
import yaml

from rsdistill.cli.main import main
from tests.cli.test_cli_compare import one_error_line

TRAIN = ["--epochs", "1", "--batch-size", "8", "--latency-runs", "2", "--device", "cpu",
         "--no-progress"]


def test_fm_from_a_bank_records_its_options(tiny_teacher, tmp_path):
    out = tmp_path / "fm"
    assert main(["distill", "--teacher", str(tiny_teacher), "--student", "resnet8",
                 "--method", "fm", "--crop-pad", "0.0625", "--mix", "cutmix", "--mix-prob", "0.5",
                 "--teacher-cache", "bank", "--bank-rounds", "3", "--bank-seed", "4",
                 "--cache-dir", str(tmp_path / "cache"), *TRAIN, "--out", str(out)]) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["distill"]["method"] == "fm" and cfg["distill"]["temperature"] == 1.0
    assert cfg["data"]["crop_pad"] == 0.0625 and cfg["data"]["mix_prob"] == 0.5
    assert (cfg["train"]["teacher_cache"], cfg["train"]["bank_rounds"],
            cfg["train"]["bank_seed"]) == ("bank", 3, 4)
    assert len(list((tmp_path / "cache" / "view-bank").glob("*/round-*.pt"))) == 3


@pytest.mark.parametrize("flags, needle", [
    (["--mix-prob", "1.5"], "--mix-prob"),
    (["--crop-pad", "-0.1"], "--crop-pad"),
    (["--teacher-cache", "bank", "--bank-rounds", "0"], "--bank-rounds"),
    (["--method", "fm", "--method-option", "hard_weight=1"], "hard_weight"),
    (["--transfer-set", "nowhere-at-all"], "--transfer-set nowhere-at-all"),
    (["--transfer-set", "aid", "--transfer-limit", "0"], "--transfer-limit"),
])
def test_bad_values_are_one_error_line(tiny_teacher, tmp_path, capsys, flags, needle):
    code = main(["distill", "--teacher", str(tiny_teacher), "--student", "resnet8", *flags, *TRAIN,
                 "--out", str(tmp_path / "bad")])
    assert code != 0
    assert needle in one_error_line(capsys.readouterr().err)
