"""Config sections from plain dicts: unknown keys and wrong types name the key."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from rsdistill.config import from_dict, to_dict
from rsdistill.data.module import DataConfig
from rsdistill.experiments.records import DistillConfig, load_run_config
from rsdistill.training.config import TrainConfig
from rsdistill.errors import ConfigError


def test_missing_keys_take_the_defaults():
    assert from_dict(TrainConfig, {}, "train") == TrainConfig()
    assert from_dict(TrainConfig, None, "train") == TrainConfig()


def test_values_are_taken_and_ints_widen_to_float():
    cfg = from_dict(TrainConfig, {"epochs": 5, "lr": 1, "model": "resnet8x4"}, "train")
    assert cfg.epochs == 5 and cfg.model == "resnet8x4"
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="learning_rate") as exc:
        from_dict(TrainConfig, {"epochs": 3, "learning_rate": 0.1}, "train")
    assert "'train'" in str(exc.value)
    assert "lr" in str(exc.value)  # the allowed keys are listed


@pytest.mark.parametrize("key, value", [
    ("epochs", "10"),     # a string is not an int
    ("epochs", 2.5),      # nor is a float
    ("epochs", True),     # nor a bool
    ("lr", "fast"),
    ("lr", None),         # not optional
    ("model", 8),
    ("pretrained", 3),
])
def test_wrong_type_is_named(key, value):
    with pytest.raises(ConfigError, match=rf"'train\.{key}'"):
        from_dict(TrainConfig, {key: value}, "train")


def test_optional_and_union_fields():
    assert from_dict(TrainConfig, {"pretrained": None}, "train").pretrained is None
    assert from_dict(DataConfig, {"workers": None}, "data").workers is None
    assert from_dict(DataConfig, {"workers": 2}, "data").workers == 2
    assert from_dict(DistillConfig, {"nuclear_beta": "alpha"}, "distill").nuclear_beta == "alpha"
    assert from_dict(DistillConfig, {"nuclear_beta": 0.5}, "distill").nuclear_beta == 0.5
    with pytest.raises(ConfigError, match="distill.nuclear_beta"):
        from_dict(DistillConfig, {"nuclear_beta": [0.5]}, "distill")


def test_bool_fields_take_only_bools():
    assert from_dict(DataConfig, {"hflip": False}, "data").hflip is False
    with pytest.raises(ConfigError, match="data.hflip"):
        from_dict(DataConfig, {"hflip": "no"}, "data")
    with pytest.raises(ConfigError, match="data.hflip"):
        from_dict(DataConfig, {"hflip": 0}, "data")


def test_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match="'data' must be a mapping"):
        from_dict(DataConfig, ["ucmerced"], "data")


def test_round_trip_through_yaml():
    train = TrainConfig(epochs=7, lr=1e-5, pretrained="w.pt")
    back = from_dict(TrainConfig, yaml.safe_load(yaml.safe_dump(to_dict(train))), "train")
    assert back == train


def _write_config(run_dir, record):
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(record, sort_keys=False))


def test_load_run_config_rebuilds_every_section(tmp_path):
    data = DataConfig(dataset="folder", data_root="/x", image_size=16)
    train = TrainConfig(epochs=2)
    distill = DistillConfig(teacher="/t", alpha=0.3, nuclear_beta="alpha")
    _write_config(tmp_path / "run", {
        "kind": "distill", "data": asdict(data), "train": asdict(train),
        "distill": {**asdict(distill), "nuclear_beta_resolved": 0.3},
    })
    d, t, k = load_run_config(tmp_path / "run")
    assert (d, t, k) == (data, train, distill)


def test_load_run_config_rejects_a_typo(tmp_path):
    _write_config(tmp_path / "run", {"kind": "train", "data": asdict(DataConfig()),
                                     "train": {**asdict(TrainConfig()), "epoch": 3},
                                     "distill": None})
    with pytest.raises(ConfigError, match="epoch"):
        load_run_config(tmp_path / "run")


def test_default_train_config_is_valid():
    TrainConfig().validate()


@pytest.mark.parametrize("overrides, pattern", [
    ({"epochs": 0}, "--epochs"),
    ({"batch_size": 0}, "--batch-size"),
    ({"latency_runs": 0}, "--latency-runs"),
    ({"lr": 0.0}, "--lr"),
    ({"lr": float("nan")}, "--lr"),
    ({"lr": float("inf")}, "--lr"),
    ({"momentum": -0.5}, "--momentum"),
    ({"weight_decay": -1e-4}, "--weight-decay"),
    ({"weight_decay": float("nan")}, "--weight-decay"),
    ({"warmup_epochs": -1}, "--warmup-epochs"),
    ({"optimizer": "lion"}, "optimizer 'lion'"),
    ({"schedule": "linear"}, "schedule 'linear'"),
    ({"precision": "fp64"}, "--precision"),
    ({"inference_precision": "int8"}, "--inference-precision"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
])
def test_invalid_train_options_are_config_errors(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        TrainConfig(**overrides).validate()


CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["ucmerced", "eurosat", "aid", "nwpu_resisc45"])
def test_shipped_study_configs_load_and_name_their_dataset(name):
    from rsdistill.experiments.study import load_study_config

    cfg = load_study_config(CONFIG_DIR / f"{name}.yaml")
    # Seeds and epochs are sized per dataset for a 2-core CPU; the grid is the study's.
    assert cfg.data.dataset == name and cfg.sweep.seeds >= 1
    assert cfg.sweep.betas == ["0", "alpha"]
    assert cfg.sweep.alphas == "0:0.5:0.1"


def test_run_dataset_ucmerced_without_a_config_is_the_shipped_ucmerced_study():
    from dataclasses import asdict

    from rsdistill.experiments.study import StudyConfig, load_study_config

    shipped, default = load_study_config(CONFIG_DIR / "ucmerced.yaml"), StudyConfig()
    for section in ("teacher", "student", "sweep"):
        assert asdict(getattr(shipped, section)) == asdict(getattr(default, section)), section
    assert shipped.data.image_size == default.data.image_size
