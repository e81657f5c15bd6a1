"""The fine-tuning recipe: ``--pretrained imagenet`` fills in the training options a
command line leaves out; given options and every other start keep their values."""

from __future__ import annotations

import pytest

from rsdistill.cli.main import build_parser
from rsdistill.cli.training_args import train_config
from rsdistill.training.config import FINE_TUNE_RECIPE
from rsdistill.training.config import TrainConfig

LITE0 = "timm:tf_efficientnet_lite0"
COMMANDS = {
    "train": ["train", "--dataset", "ucmerced", "--model", LITE0],
    "distill": ["distill", "--teacher", "t", "--student", LITE0],
    "sweep": ["sweep", "--teacher", "t", "--student", LITE0],
}


def config(command: str, *argv: str) -> TrainConfig:
    return train_config(build_parser().parse_args([*COMMANDS[command], "--out", "o", *argv]))


def recipe_part(cfg: TrainConfig) -> dict:
    return {k: getattr(cfg, k) for k in FINE_TUNE_RECIPE}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_imagenet_weights_get_the_recipe(command):
    assert recipe_part(config(command, "--pretrained", "imagenet")) == FINE_TUNE_RECIPE


def test_options_given_win_over_the_recipe():
    cfg = config("train", "--pretrained", "imagenet", "--lr", "0.01", "--epochs", "3",
                 "--backbone-lr-scale", "1")
    assert (cfg.lr, cfg.epochs, cfg.backbone_lr_scale) == (0.01, 3, 1.0)
    rest = {k: v for k, v in FINE_TUNE_RECIPE.items() if k not in ("lr", "epochs", "backbone_lr_scale")}
    assert {k: getattr(cfg, k) for k in rest} == rest


@pytest.mark.parametrize("start", [[], ["--pretrained", "weights.pt"]])
def test_other_starts_keep_the_from_scratch_defaults(start):
    cfg = config("train", *start)
    assert recipe_part(cfg) == recipe_part(TrainConfig())
    assert cfg.pretrained == (start[1] if start else None)


def test_the_recipe_differs_from_the_defaults_it_replaces():
    """Otherwise the option help and the README would promise a change that is none."""
    assert recipe_part(TrainConfig()) != FINE_TUNE_RECIPE
    TrainConfig(model=LITE0, pretrained="imagenet", **FINE_TUNE_RECIPE).validate()
