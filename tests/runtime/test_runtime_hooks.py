"""Forward-hook feature taps, and that training with a feature method leaves no hook behind."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
import torch.nn as nn
import yaml

from rsdistill.training.distiller import Distiller, example_input
from rsdistill.runtime.hooks import FeatureTap, default_feature_layers, probe_feature_maps
from rsdistill.experiments.records import DistillConfig
from rsdistill.experiments.records import check_run_dir
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.grid import SweepConfig
from rsdistill.experiments.sweep import run_sweep
from rsdistill.training.members import Member
from rsdistill.runtime.rundir import RunDirectory
from rsdistill.training.trainer import Trainer
from rsdistill.errors import ConfigError
from rsdistill.losses import build_method
from rsdistill.models import build_model
from rsdistill.losses import MethodConfig


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_tap_records_the_named_outputs_in_order_and_forgets_them():
    model = build_model("resnet8", 3, 16).eval()
    x = torch.rand(2, 3, 16, 16)
    tap = FeatureTap(model, ["layer3", "layer1"])
    assert hook_count(model) == 2
    with torch.no_grad():
        model(x)
        stem = model.stem_pool(model.relu(model.bn1(model.conv1(x))))
        l1 = model.layer1(stem)
        l3 = model.layer3(model.layer2(l1))
    got = tap.take()
    assert torch.equal(got[0], l3) and torch.equal(got[1], l1)
    assert tap.outputs == {}
    with pytest.raises(RuntimeError, match="did not run"):
        tap.take()
    tap.remove()
    assert hook_count(model) == 0 and not tap.active
    tap.remove()  # idempotent


def test_tap_is_a_context_manager():
    model = build_model("wrn_16_1", 3, 16)
    with FeatureTap(model, default_feature_layers(model)) as tap:
        assert hook_count(model) == 3
        model(torch.rand(1, 3, 16, 16))
        assert [f.shape[1] for f in tap.take()] == [16, 32, 64]
    assert hook_count(model) == 0


def test_unknown_layer_lists_valid_names_and_registers_nothing():
    model = build_model("mobilenetv2", 3, 16)
    with pytest.raises(ConfigError, match=r"no layer 'layer9'.*layer1, layer2") as info:
        FeatureTap(model, ["layer1", "layer9"], "student")
    assert "\n" not in str(info.value) and "student" in str(info.value)
    assert hook_count(model) == 0
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(ConfigError, match=r"valid names include: 0, 1"):
        FeatureTap(plain, ["conv"])


def test_default_layers_are_the_declared_stages():
    assert default_feature_layers(build_model("resnet8", 3, 16)) == ("layer1", "layer2", "layer3")
    assert default_feature_layers(build_model("wrn_16_1", 3, 16)) == ("block1", "block2", "block3")
    assert len(default_feature_layers(build_model("mobilenetv2", 3, 16))) == 7
    with pytest.raises(ConfigError, match="--student-layers/--teacher-layers"):
        default_feature_layers(nn.Sequential(nn.Conv2d(3, 4, 3)))


def test_probe_reports_shapes_and_restores_the_mode():
    model = build_model("resnet8", 3, 32).train()
    shapes = probe_feature_maps(model, ["layer1", "layer3"], example_input(32))
    assert [tuple(s) for s in shapes] == [(1, 16, 32, 32), (1, 64, 8, 8)]
    assert model.training and hook_count(model) == 0


def test_distiller_close_removes_its_hooks_and_kd_taps_nothing():
    torch.manual_seed(0)
    student, teacher = build_model("resnet8", 3, 16), build_model("resnet8x4", 3, 16)
    kd = Distiller(student, build_method("kd", temperature=4.0), teacher, alpha=0.5,
                   student_layers=["layer1"])  # kd ignores layers
    assert not kd.uses_features and hook_count(student) == hook_count(teacher) == 0
    d = Distiller(student, build_method("at", temperature=4.0), teacher, alpha=0.5,
                  example_input=example_input(16))
    assert hook_count(student) == 3 and hook_count(teacher) == 3
    d.close()
    d.close()
    assert hook_count(student) == hook_count(teacher) == 0


# ----------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, tiny_tree3, tiny_cache):
    from rsdistill.data.module import DataConfig
    from rsdistill.training.config import TrainConfig

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("hooks-teacher") / "teacher"
    data = DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=16,
                      cache_dir=str(tiny_cache), workers=1)
    run_training(out, data, TrainConfig(model="resnet8", epochs=1, batch_size=8, device="cpu",
                                        latency_runs=3), progress=False)
    return out


def _spy_on_fit(monkeypatch) -> list:
    seen = []
    fit = Trainer.fit

    def spying_fit(self, *args, **kwargs):
        seen.extend(m.distiller for m in self.members)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", spying_fit)
    return seen


@pytest.mark.parametrize("interrupt", [False, True])
def test_training_removes_every_hook_when_it_ends(interrupt, teacher_run, tmp_path, tiny_data,
                                                  tiny_train, monkeypatch):
    seen = _spy_on_fit(monkeypatch)
    if interrupt:
        def interrupted(self):
            raise KeyboardInterrupt

        monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    distill = DistillConfig(teacher=str(teacher_run), method="fitnet", alpha=0.5)
    run = lambda: run_training(tmp_path / "s", tiny_data(), tiny_train(epochs=1), distill,
                               progress=False)
    if interrupt:
        with pytest.raises(KeyboardInterrupt):
            run()
    else:
        run()
    (d,) = seen
    assert d.student_layers == ("layer2",)
    assert hook_count(d.student) == 0 and hook_count(d.teacher) == 0
    if not interrupt:
        # The regressor was trained: it is in the resumable state, not in model.pt.
        state = torch.load(tmp_path / "s" / "last.pt", weights_only=True)
        (member,) = state["members"].values()
        assert any(k.startswith("loss.regressor.") for k in member["model"])
        assert member["optimizer"]["param_groups"][0]["params"] == \
            list(range(len(d.trainable_parameters())))
        model = torch.load(tmp_path / "s" / "model.pt", weights_only=True)["model"]
        assert set(model) == set(d.student.state_dict())


def test_fused_members_share_one_teacher_pass(teacher_run, tmp_path, tiny_data, tiny_train,
                                              monkeypatch):
    from rsdistill.data.module import prepare_data

    seen = _spy_on_fit(monkeypatch)
    calls = {"n": 0}
    outputs = Distiller.teacher_outputs

    def counting(self, images):
        calls["n"] += 1
        return outputs(self, images)

    monkeypatch.setattr(Distiller, "teacher_outputs", counting)
    sweep = SweepConfig(teacher=str(teacher_run), alphas=[0.25, 0.5], betas=["0"], seeds=1,
                        method=MethodConfig(method="at", student_layers=["layer2", "layer3"],
                                            teacher_layers=["layer2", "layer3"]))
    run_sweep(tmp_path / "sw", tiny_data(), tiny_train(epochs=1), sweep, progress=False)
    rows = (tmp_path / "sw" / "seed0" / "alpha0.50_beta0" / "epochs.csv").read_text()
    assert "loss_at" in rows
    # One teacher pass per training step, not one per member and step.
    steps = len(prepare_data(tiny_data(), progress=False).batches("train", 8, train=True))
    assert steps > 1 and calls["n"] == steps
    assert all(hook_count(d.student) == 0 for d in seen)
    assert hook_count(seen[0].teacher) == 0
    record = yaml.safe_load((tmp_path / "sw" / "seed0" / "alpha0.50_beta0" / "config.yaml")
                            .read_text())
    assert record["distill"]["student_layers"] == ["layer2", "layer3"]


def test_fused_members_must_tap_the_same_teacher_layers(teacher_run, tmp_path, tiny_data,
                                                        tiny_train):
    from rsdistill.data.module import prepare_data
    from rsdistill.models import load_model

    teacher, _ = load_model(teacher_run)
    members = []
    for i, layers in enumerate((["layer1"], ["layer2"])):
        d = Distiller(build_model("resnet8", 3, 16),
                      build_method("at", temperature=4.0), teacher, alpha=0.5,
                      student_layers=layers, teacher_layers=layers,
                      example_input=example_input(16))
        members.append(Member(f"m{i}", d, RunDirectory(tmp_path / f"m{i}"), {}, {}))
    with pytest.raises(ValueError, match="same teacher layers"):
        Trainer(tmp_path, prepare_data(tiny_data(), progress=False), members,
                      tiny_train(epochs=1), progress=False)
    for m in members:
        m.distiller.close()


def test_resume_of_a_run_written_before_the_method_keys(tmp_path):
    """A config.yaml without method_options/layers resumes with their defaults."""
    run = tmp_path / "old"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")  # only its existence matters here
    distill = DistillConfig(teacher="/t", alpha=0.3)
    old = {k: v for k, v in asdict(distill).items()
           if k not in ("method_options", "student_layers", "teacher_layers")}
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {}, "train": {}, "distill": old}))
    check_run_dir(run, {"data": {}, "train": {}, "distill": asdict(distill)}, True)
    changed = {**asdict(distill), "method_options": {"x": 1}}
    with pytest.raises(ConfigError, match="method_options"):
        check_run_dir(run, {"data": {}, "train": {}, "distill": changed}, True)


def test_resume_of_a_run_written_before_the_mixing_and_view_keys(tmp_path):
    """A data section without mix/mix_alpha/teacher_augment resumes with their defaults."""
    from rsdistill.data.module import DataConfig

    run = tmp_path / "old"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    data = DataConfig(dataset="ucmerced")
    old = {k: v for k, v in asdict(data).items()
           if k not in ("mix", "mix_alpha", "teacher_augment")}
    (run / "config.yaml").write_text(yaml.safe_dump({"data": old, "train": {}}))
    check_run_dir(run, {"data": asdict(data), "train": {}}, True)
    with pytest.raises(ConfigError, match="teacher_augment"):
        check_run_dir(run, {"data": asdict(replace(data, teacher_augment="independent")),
                                  "train": {}}, True)
