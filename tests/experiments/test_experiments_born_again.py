"""Self-distillation (``--method self``): the teacher-free virtual teacher and loss, the
variant options, and two-epoch CLI runs of both variants without ``--teacher``, where
born-again's generation k+1 must distil from generation k."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

import rsdistill.experiments.procedures as runs
import rsdistill.experiments.single as single
from rsdistill.cli.main import main
from rsdistill.errors import ConfigError
from rsdistill.losses import (
    GenerationsPlan,
    StepInputs,
    build_method,
    method_descriptor,
    teacher_free_soft_loss,
    virtual_teacher,
    weighted_terms,
)


def _self(**options):
    return build_method("self", alpha=0.5, temperature=4.0, options=options)


def test_virtual_teacher_puts_a_on_the_label_and_sums_to_one():
    labels = torch.tensor([2, 0, 4])
    p = virtual_teacher(labels, num_classes=5, a=0.9)
    assert p.shape == (3, 5) and p.dtype == torch.float32
    torch.testing.assert_close(p.sum(1), torch.ones(3))
    torch.testing.assert_close(p[torch.arange(3), labels], torch.full((3,), 0.9))
    others = p.clone()
    others[torch.arange(3), labels] = float("nan")
    rest = others[~others.isnan()]
    torch.testing.assert_close(rest, torch.full_like(rest, 0.1 / 4))


def test_teacher_free_loss_is_minimal_where_the_student_matches_the_virtual_teacher():
    t, a = 4.0, 0.9
    labels = torch.tensor([0, 1, 2, 1])
    # softmax(s / T) equals the virtual teacher exactly for s = T·log p_virtual.
    match = (t * virtual_teacher(labels, 3, a).log()).requires_grad_(True)
    loss = teacher_free_soft_loss(match, labels, a, t)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-5)
    loss.backward()
    assert float(match.grad.abs().max()) < 1e-5
    torch.manual_seed(0)
    for _ in range(5):
        moved = match.detach() + torch.randn(4, 3)
        assert float(teacher_free_soft_loss(moved, labels, a, t)) > float(loss.detach())


def test_teacher_free_loss_weights_and_one_hot_virtual_teacher():
    loss = _self(variant="teacher_free", a=1.0)
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    terms = weighted_terms(loss, StepInputs(logits, labels), 0.5)
    assert set(terms) == {"virtual", "hard"}
    assert all(math.isfinite(float(v)) for v in terms.values()), "a = 1 has exact zeros: no nan"
    # At a = 1 the virtual teacher is one-hot: T²·KL = T²·CE(s / T).
    ce_soft = torch.nn.functional.cross_entropy(logits / 4.0, labels)
    assert float(terms["virtual"]) == pytest.approx(0.5 * 16.0 * float(ce_soft), rel=1e-5)
    assert not loss.needs_teacher


@pytest.mark.parametrize("options, needle", [
    ({"variant": "nope"}, "born_again, teacher_free"),
    ({"a": 0.9}, "variant=teacher_free"),                       # a with the default born_again
    ({"variant": "teacher_free", "generations": 3}, "variant=born_again"),
    ({"variant": "teacher_free", "a": 0.0}, "(0, 1]"),
    ({"generations": 1}, ">= 2"),
])
def test_variant_options_are_checked(options, needle):
    with pytest.raises(ConfigError) as err:
        _self(**options)
    assert needle in str(err.value)


def test_born_again_is_the_default_variant_and_trains_generations():
    plan = _self()
    assert isinstance(plan, GenerationsPlan) and not isinstance(plan, torch.nn.Module)
    assert method_descriptor("self", {}).procedure == "generations"
    assert plan.generations == 2 and not plan.needs_teacher


def data_args(tree, cache) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--image-size", "16",
            "--cache-dir", str(cache), "--workers", "1"]


TRAIN = ["--epochs", "2", "--batch-size", "8", "--latency-runs", "3", "--device", "cpu",
         "--no-progress"]


def test_teacher_free_run_needs_no_teacher(tmp_path, tiny_tree3, tiny_cache):
    out = tmp_path / "tf"
    assert main(["distill", *data_args(tiny_tree3, tiny_cache), "--student", "resnet8",
                 "--method", "self", "--method-option", "variant=teacher_free", *TRAIN,
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["run"]["extra_trainable_params"] == 0
    header = (out / "epochs.csv").read_text().splitlines()[0].split(",")
    assert "loss_virtual" in header and "loss_hard" in header
    assert yaml.safe_load((out / "config.yaml").read_text())["distill"]["teacher"] == ""


@pytest.fixture(scope="module")
def born_again(tmp_path_factory, tiny_tree3, tiny_cache):
    """A two-generation run, with every teacher the engine loads recorded."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("born-again") / "run"
    loaded = []
    original = runs.load_teacher

    def spy(path, data=None):
        teacher, meta = original(path, data)
        loaded.append((path, {k: v.clone() for k, v in teacher.state_dict().items()}))
        return teacher, meta

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runs, "load_teacher", spy)
        assert main(["distill", *data_args(tiny_tree3, tiny_cache), "--student", "resnet8",
                     "--method", "self", "--method-option", "generations=2", *TRAIN,
                     "--out", str(out)]) == 0
    return out, loaded


def test_generation_k_plus_1_distils_from_generation_k(born_again):
    out, loaded = born_again
    gen0, gen1 = out / "gen0", out / "gen1"
    for gen in (gen0, gen1):
        assert {"model.pt", "last.pt", "metrics.json", "config.yaml", "epochs.csv"} <= \
            {p.name for p in gen.iterdir()}
    c0 = yaml.safe_load((gen0 / "config.yaml").read_text())
    c1 = yaml.safe_load((gen1 / "config.yaml").read_text())
    assert c0["kind"] == "train" and c0["distill"] is None      # generation 0: labels only
    assert c1["distill"]["method"] == "kd" and c1["distill"]["teacher"] == str(gen0)
    assert c1["distill"]["alpha"] == 0.5 and c1["distill"]["temperature"] == 4.0
    # The teacher generation 1 trained with is generation 0's best model.pt, weight for weight.
    (path, weights), = loaded
    assert path == str(gen0)
    saved = torch.load(gen0 / "model.pt", weights_only=True)["model"]
    assert weights.keys() == saved.keys()
    assert all(torch.equal(weights[k], saved[k]) for k in saved)


def test_the_run_directory_holds_the_last_generation(born_again):
    out, _ = born_again
    assert (out / "model.pt").read_bytes() == (out / "gen1" / "model.pt").read_bytes()
    metrics = json.loads((out / "metrics.json").read_text())
    last = json.loads((out / "gen1" / "metrics.json").read_text())
    assert metrics["accuracy"] == last["accuracy"]
    assert [g["run"] for g in metrics["generations"]] == ["gen0", "gen1"]
    assert metrics["run"]["method"] == "self" and metrics["run"]["variant"] == "born_again"
    first = json.loads((out / "gen0" / "metrics.json").read_text())
    assert metrics["run"]["train_seconds"] == pytest.approx(
        first["run"]["train_seconds"] + last["run"]["train_seconds"], abs=2e-3)
    assert yaml.safe_load((out / "config.yaml").read_text())["distill"]["method"] == "self"


def test_born_again_rerun_needs_resume_and_skips_finished_generations(born_again, tiny_tree3,
                                                                      tiny_cache, capsys):
    out, _ = born_again
    args = ["distill", *data_args(tiny_tree3, tiny_cache), "--student", "resnet8", "--method",
            "self", "--method-option", "generations=2", *TRAIN, "--out", str(out)]
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    stamps = {g: (out / g / "metrics.json").stat().st_mtime_ns for g in ("gen0", "gen1")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(single, "train_members",
                   lambda *a, **k: pytest.fail("a finished generation retrained"))
        assert main([*args, "--resume"]) == 0
    assert stamps == {g: (out / g / "metrics.json").stat().st_mtime_ns for g in ("gen0", "gen1")}
