"""Distillation runs: a frozen teacher, validated options, a refused mismatched teacher."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml

from rsdistill.runtime.rundir import STATE_FILE
from rsdistill.runtime.checkpoint import safe_load
from rsdistill.experiments.records import DistillConfig
from rsdistill.experiments.procedures import run_training
from rsdistill.training.trainer import Trainer
from rsdistill.errors import CheckpointError, ConfigError
from rsdistill.losses import KDLoss


def member_state(run_dir) -> dict:
    state = safe_load(run_dir / STATE_FILE)
    if "members" in state:
        (state,) = state["members"].values()
    return state


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, tiny_tree3, tiny_cache):
    from rsdistill.data.module import DataConfig
    from rsdistill.training.config import TrainConfig

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("engine-teacher") / "teacher"
    data = DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=16,
                      cache_dir=str(tiny_cache), workers=1)
    run_training(out, data, TrainConfig(model="resnet8", epochs=2, batch_size=8, device="cpu",
                                        latency_runs=3), progress=False)
    return out


def _distill(teacher, **kw) -> DistillConfig:
    return DistillConfig(teacher=str(teacher), **{"alpha": 0.5, "temperature": 4.0,
                                                  "nuclear_beta": "alpha", **kw})


@pytest.fixture(scope="module")
def distill_run(tmp_path_factory, teacher_run, tiny_tree3, tiny_cache):
    """A 3-epoch distillation; records the teacher module before and after training."""
    from rsdistill.data.module import DataConfig
    from rsdistill.training.config import TrainConfig

    torch.set_num_threads(1)
    seen = {}
    fit = Trainer.fit

    def spying_fit(self, *args, **kwargs):
        teacher = self.members[0].distiller.teacher
        seen["teacher"] = teacher
        seen["before"] = {k: v.clone() for k, v in teacher.state_dict().items()}
        seen["trainable"] = {id(p) for g in self.members[0].optimizer.param_groups
                             for p in g["params"]}
        return fit(self, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(Trainer, "fit", spying_fit)
    try:
        out = tmp_path_factory.mktemp("engine-distill") / "student"
        data = DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=16,
                          cache_dir=str(tiny_cache), workers=1)
        train = TrainConfig(model="resnet8", epochs=3, batch_size=8, device="cpu", latency_runs=3)
        metrics = run_training(out, data, train, _distill(teacher_run), progress=False)
    finally:
        mp.undo()
    return out, metrics, seen


def test_teacher_is_frozen_during_distillation(distill_run, teacher_run):
    out, _, seen = distill_run
    teacher = seen["teacher"]
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert not seen["trainable"] & {id(p) for p in teacher.parameters()}
    after = teacher.state_dict()
    for k, v in seen["before"].items():  # weights and batch-norm statistics
        assert torch.equal(after[k], v), k
    # ... and equal to the teacher's own file.
    teacher_file = torch.load(teacher_run / "model.pt", weights_only=True)["model"]
    saved = {k[len("teacher."):]: v for k, v in member_state(out)["model"].items()
             if k.startswith("teacher.")}
    assert saved.keys() == teacher_file.keys()
    for k in saved:
        assert torch.equal(saved[k], teacher_file[k]), k


def test_distill_run_records_its_loss_terms_and_beta(distill_run, teacher_run):
    out, metrics, _ = distill_run
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["kind"] == "distill"
    assert config["distill"]["teacher"] == str(teacher_run.resolve())
    assert config["distill"]["nuclear_beta"] == "alpha"
    assert config["distill"]["nuclear_beta_resolved"] == 0.5
    with open(out / "epochs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    for row in rows:
        soft, hard, nuc = (float(row[f"loss_{k}"]) for k in ("soft", "hard", "nuclear"))
        assert soft > 0 and hard > 0 and nuc > 0
        assert float(row["loss"]) == pytest.approx(soft + hard + nuc, rel=1e-5)
    assert metrics["run"]["kind"] == "distill"


def test_distill_resume_reaches_the_same_result(distill_run, teacher_run, tmp_path, tiny_data,
                                                tiny_train, monkeypatch):
    ref, ref_metrics, _ = distill_run
    out = tmp_path / "student"
    counter = {"epoch": 0, "step": 0}
    train_epoch, terms = Trainer.train_epoch, KDLoss.terms

    def counting_epoch(self):
        counter["epoch"] += 1
        counter["step"] = 0
        return train_epoch(self)

    def killing_terms(self, *args, **kwargs):
        counter["step"] += 1
        if counter["epoch"] == 2 and counter["step"] == 2:
            raise KeyboardInterrupt
        return terms(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", counting_epoch)
    monkeypatch.setattr(KDLoss, "terms", killing_terms)
    with pytest.raises(KeyboardInterrupt):
        run_training(out, tiny_data(), tiny_train(), _distill(teacher_run), progress=False)
    monkeypatch.setattr(KDLoss, "terms", terms)
    metrics = run_training(out, tiny_data(), tiny_train(), _distill(teacher_run), resume=True,
                           progress=False)
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "confusion_matrix"):
        assert metrics[key] == ref_metrics[key], key
    a, b = member_state(out)["model"], member_state(ref)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_teacher_of_other_classes_is_refused(teacher_run, tmp_path, tiny_data, tiny_train,
                                             tiny_tree4):
    out = tmp_path / "student"
    with pytest.raises(CheckpointError, match=r"3 classes.*4") as exc:
        run_training(out, tiny_data(tiny_tree4), tiny_train(), _distill(teacher_run),
                     progress=False)
    assert "\n" not in str(exc.value)
    assert not (out / STATE_FILE).exists()


def test_teacher_must_exist(tmp_path, tiny_data, tiny_train):
    with pytest.raises(CheckpointError, match="does not exist"):
        run_training(tmp_path / "s", tiny_data(), tiny_train(),
                     _distill(tmp_path / "no-teacher"), progress=False)


@pytest.mark.parametrize("options, pattern", [
    ({"alpha": 1.5}, "alpha"),
    ({"alpha": -0.1}, "alpha"),
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": -2.0}, "temperature"),
    ({"nuclear_beta": -1.0}, "beta"),
    ({"nuclear_beta": "-1"}, "beta"),
    ({"nuclear_beta": "lots"}, "beta"),
])
def test_invalid_distillation_options_fail_before_any_work(options, pattern, teacher_run,
                                                           tmp_path, tiny_data, tiny_train,
                                                           monkeypatch):
    import rsdistill.experiments.procedures as runs

    def no_data(*a, **k):
        raise AssertionError("data was prepared before the options were checked")

    monkeypatch.setattr(runs, "prepare_data", no_data)
    with pytest.raises(ConfigError, match=pattern):
        run_training(tmp_path / "s", tiny_data(), tiny_train(), _distill(teacher_run, **options),
                     progress=False)
    assert not (tmp_path / "s").exists()


def test_boundary_options_are_accepted():
    for cfg, beta in [(DistillConfig(alpha=0.0, nuclear_beta=0), 0.0),
                      (DistillConfig(alpha=1.0, nuclear_beta="alpha"), 1.0),
                      (DistillConfig(alpha=0.3, nuclear_beta="0.2"), 0.2)]:
        # validate() returns the loss it built: the run trains with that one.
        assert isinstance(cfg.validate(), KDLoss)
        assert cfg.beta() == pytest.approx(beta)
