"""Whole training runs on a tiny tree: seeding, resume, checkpoints, non-finite losses.

Every run is resnet8 on 3 classes × 12 images at 16 px, 3 epochs of 3 steps, with the
default CPU precision (bf16 autocast + channels_last).
"""

from __future__ import annotations

import csv
import os
import pickle
import warnings

import pytest
import torch

from rsdistill.runtime.rundir import STATE_FILE
from rsdistill.models import load_model
from rsdistill.runtime.checkpoint import safe_load
from rsdistill.runtime.precision import resolve_precision
from rsdistill.experiments.procedures import run_training
from rsdistill.training.trainer import Trainer
from rsdistill.errors import CheckpointError, ConfigError, TrainingError
from rsdistill.io import atomic_torch_save
from rsdistill.losses.supervised import CrossEntropyLoss

QUALITY = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "per_class",
           "confusion_matrix")


def model_states(state: dict) -> dict:
    """The per-model part of a training state (a fused state nests it per member)."""
    if "members" in state:
        (member,) = state["members"].values()
        return member
    return state


def weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)["model"]


def last_weights(run_dir) -> dict[str, torch.Tensor]:
    return model_states(safe_load(run_dir / STATE_FILE))["model"]


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def epochs_rows(run_dir) -> list[dict]:
    with open(run_dir / "epochs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r.pop("epoch_seconds")
    return rows


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_tree3, tiny_cache):
    """One uninterrupted 3-epoch run, shared by the reproducibility and resume tests."""
    from rsdistill.data.module import DataConfig
    from rsdistill.training.config import TrainConfig

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("engine-ref") / "run"
    data = DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=16,
                      cache_dir=str(tiny_cache), workers=1)
    train = TrainConfig(model="resnet8", epochs=3, batch_size=8, lr=0.05, seed=0, device="cpu",
                        precision="auto", latency_runs=3)
    metrics = run_training(out, data, train, progress=False)
    return out, metrics


def test_run_directory_contents(reference_run):
    out, metrics = reference_run
    for name in ("model.pt", "last.pt", "config.yaml", "metrics.json", "epochs.csv",
                 "versions.json"):
        assert (out / name).is_file(), name
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "params", "flops"):
        assert key in metrics
    assert {"latency_ms_p50", "throughput_img_s", "test_seconds"} <= set(metrics["inference"])
    assert metrics["split"] == "test"
    # auto: whatever this CPU runs fastest, with the reason; metrics are always fp32.
    auto = resolve_precision("auto", "cpu")
    assert metrics["run"]["train_precision"]["precision"] == auto.name
    assert metrics["run"]["train_precision"]["channels_last"] is True
    assert metrics["run"]["train_precision"]["reason"] == auto.reason != ""
    assert metrics["evaluated_precision"] == "fp32"
    rows = epochs_rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    for col in ("loss", "train_accuracy", "val_accuracy", "lr", "nuclear_norm", "effective_rank"):
        assert col in rows[0], col
        assert all(r[col] != "" for r in rows), col
    assert float(rows[0]["nuclear_norm"]) > 0
    assert 1 <= int(rows[0]["effective_rank"]) <= 16
    # The cosine schedule ends the run at (about) zero.
    assert float(rows[-1]["lr"]) < 1e-6 < float(rows[0]["lr"])


def test_auto_on_a_cpu_without_native_bf16_trains_fp32_channels_last_and_says_why(
        tmp_path, tiny_tree3, tiny_cache, monkeypatch, caplog):
    from rsdistill.data.module import DataConfig
    from rsdistill.runtime import precision as precision_mod
    from rsdistill.training.config import TrainConfig

    monkeypatch.setattr(precision_mod, "onednn_runs_bf16", lambda: False)
    data = DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=16,
                      cache_dir=str(tiny_cache), workers=1)
    train = TrainConfig(model="resnet8", epochs=1, batch_size=8, device="cpu", latency_runs=2)
    with caplog.at_level("INFO", logger="rsdistill"):
        metrics = run_training(tmp_path / "run", data, train, progress=False)
    recorded = metrics["run"]["train_precision"]
    assert recorded["precision"] == "fp32" and recorded["channels_last"] is True
    assert recorded["reason"].startswith("cpu has no native bf16")
    announced = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training in")]
    assert announced == [f"training in fp32 + channels_last on cpu ({recorded['reason']}), "
                         f"{recorded['threads']} intra-op thread"
                         + ("" if recorded["threads"] == 1 else "s")]


def test_model_selection_uses_val_and_test_is_scored_with_the_best_weights(reference_run):
    out, metrics = reference_run
    rows = epochs_rows(out)
    vals = [float(r["val_accuracy"]) for r in rows]
    best = max(vals)
    best_epoch = max(i + 1 for i, v in enumerate(vals) if v == best)  # ties keep the later
    assert metrics["run"]["best_epoch"] == best_epoch
    model, meta = load_model(out)
    assert meta["epoch"] == best_epoch
    assert meta["val_accuracy"] == pytest.approx(best)


def test_the_best_val_epoch_is_kept_and_described(tmp_path, tiny_data, tiny_train, monkeypatch):
    # Validation is perfect after epoch 1 and wrong afterwards: epoch 1 must be the model.
    import rsdistill.training.trainer as trainer_mod
    from rsdistill.losses import effective_rank, nuclear_norm
    from rsdistill.models import first_weight_layer

    calls = {"val": 0}
    real = trainer_mod.evaluate_logits

    def scripted_val(model, data, split, precision):
        logits = real(model, data, split, precision)
        if split == "val":
            calls["val"] += 1
            labels = data.dataset.labels[data.split[split]]
            onehot = torch.nn.functional.one_hot(labels, data.num_classes).float()
            return onehot if calls["val"] == 1 else onehot.roll(1, dims=1)
        return logits

    monkeypatch.setattr(trainer_mod, "evaluate_logits", scripted_val)
    out = tmp_path / "run"
    metrics = run_training(out, tiny_data(), tiny_train(), progress=False)
    assert calls["val"] == 3
    assert metrics["run"]["best_epoch"] == 1
    assert metrics["run"]["val_accuracy"] == 1.0
    model, meta = load_model(out)
    assert meta["epoch"] == 1
    # metrics.json describes model.pt (epoch 1), not the last epoch's weights.
    name, layer = first_weight_layer(model)
    assert metrics["first_layer"]["nuclear_norm"] == pytest.approx(
        float(nuclear_norm(layer.weight.detach())), rel=1e-6)
    assert metrics["first_layer"]["effective_rank"] == effective_rank(layer.weight)
    # The test split is scored once, with those weights.
    from rsdistill.data.module import prepare_data
    from rsdistill.runtime.precision import resolve_precision
    from rsdistill.evaluation.evaluate import evaluate_model

    again = evaluate_model(model, meta, prepare_data(tiny_data(), progress=False), "test",
                           resolve_precision("auto", "cpu"), resolve_precision("fp32", "cpu"), 1)
    for key in QUALITY:
        assert again[key] == metrics[key], key
    rows = epochs_rows(out)
    assert float(rows[0]["nuclear_norm"]) == pytest.approx(metrics["first_layer"]["nuclear_norm"],
                                                           rel=1e-6)
    assert float(rows[-1]["nuclear_norm"]) != pytest.approx(metrics["first_layer"]["nuclear_norm"],
                                                             rel=1e-6)
    assert not torch.equal(layer.weight, last_weights(out)[f"student.{name}.weight"])


def test_same_seed_same_metrics_and_weights(reference_run, tmp_path, tiny_data, tiny_train):
    ref, ref_metrics = reference_run
    metrics = run_training(tmp_path / "again", tiny_data(), tiny_train(), progress=False)
    for key in QUALITY:
        assert metrics[key] == ref_metrics[key], key
    assert_same_tensors(weights(tmp_path / "again"), weights(ref))
    assert_same_tensors(last_weights(tmp_path / "again"), last_weights(ref))
    assert epochs_rows(tmp_path / "again") == epochs_rows(ref)


def test_another_seed_gives_other_weights(reference_run, tmp_path, tiny_data, tiny_train):
    ref, _ = reference_run
    run_training(tmp_path / "seed1", tiny_data(), tiny_train(seed=1, epochs=1), progress=False)
    a, b = last_weights(tmp_path / "seed1"), last_weights(ref)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_resume_after_a_kill_mid_epoch_reaches_the_same_result(
        reference_run, tmp_path, tiny_data, tiny_train, monkeypatch):
    ref, ref_metrics = reference_run
    out = tmp_path / "killed"
    epoch = {"n": 0, "step": 0}
    train_epoch, terms = Trainer.train_epoch, CrossEntropyLoss.terms

    def counting_epoch(self):
        epoch["n"] += 1
        epoch["step"] = 0
        return train_epoch(self)

    def killing_terms(self, *args, **kwargs):
        epoch["step"] += 1
        # Killed in epoch 2 after one optimiser step there: the in-memory weights,
        # optimiser, schedule and RNG streams have all moved past the checkpoint.
        if epoch["n"] == 2 and epoch["step"] == 2:
            raise KeyboardInterrupt
        return terms(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", counting_epoch)
    monkeypatch.setattr(CrossEntropyLoss, "terms", killing_terms)
    with pytest.raises(KeyboardInterrupt):
        run_training(out, tiny_data(), tiny_train(), progress=False)
    assert epoch["n"] == 2
    state = safe_load(out / STATE_FILE)
    assert state["epoch"] == 1
    assert not (out / "metrics.json").exists()
    monkeypatch.setattr(CrossEntropyLoss, "terms", terms)

    # Consume the global RNG in between: the resumed run must restore it, not rely on it.
    torch.rand(1000)
    metrics = run_training(out, tiny_data(), tiny_train(), resume=True, progress=False)
    assert epoch["n"] == 4  # epochs 2 and 3 ran again, epoch 1 did not
    for key in QUALITY:
        assert metrics[key] == ref_metrics[key], key
    assert metrics["run"]["best_epoch"] == ref_metrics["run"]["best_epoch"]
    assert_same_tensors(weights(out), weights(ref))
    assert_same_tensors(last_weights(out), last_weights(ref))
    assert epochs_rows(out) == epochs_rows(ref)


def test_resume_of_a_finished_run_only_re_evaluates(reference_run, tmp_path, tiny_data,
                                                    tiny_train, monkeypatch):
    ref, ref_metrics = reference_run
    out = tmp_path / "done"
    run_training(out, tiny_data(), tiny_train(epochs=1), progress=False)
    calls = []
    monkeypatch.setattr(Trainer, "train_epoch", lambda self: calls.append(1))
    metrics = run_training(out, tiny_data(), tiny_train(epochs=1), resume=True, progress=False)
    assert calls == []
    assert metrics["run"]["epochs"] == 1


def test_resume_with_other_settings_is_refused(tmp_path, tiny_data, tiny_train):
    out = tmp_path / "run"
    run_training(out, tiny_data(), tiny_train(epochs=1), progress=False)
    with pytest.raises(ConfigError, match="train.lr"):
        run_training(out, tiny_data(), tiny_train(epochs=1, lr=0.1), resume=True, progress=False)


def test_existing_run_dir_without_resume_is_refused(reference_run, tiny_data, tiny_train):
    ref, _ = reference_run
    before = (ref / "model.pt").read_bytes()
    with pytest.raises(ConfigError, match="--resume"):
        run_training(ref, tiny_data(), tiny_train(), progress=False)
    assert (ref / "model.pt").read_bytes() == before


def test_checkpoint_holds_everything_to_resume_and_loads_weights_only(reference_run):
    ref, _ = reference_run
    # weights_only=True must be enough: no pickled code in a checkpoint.
    state = torch.load(ref / STATE_FILE, map_location="cpu", weights_only=True)
    assert state["epoch"] == 3
    assert isinstance(state["generator"], torch.Tensor)
    assert isinstance(state["torch_rng"], torch.Tensor)
    member = model_states(state)
    assert {"model", "optimizer", "scheduler"} <= set(member)
    assert member["optimizer"]["state"], "momentum buffers are part of the state"
    assert member["scheduler"]["last_epoch"] == 9  # 3 epochs × 3 steps
    assert any(k.startswith("student.") for k in member["model"])
    assert len(member["history"]) == 3
    model = torch.load(ref / "model.pt", map_location="cpu", weights_only=True)
    assert {"format", "model", "meta"} <= set(model)
    # Saved in the default layout, whatever the training memory format was.
    assert all(t.is_contiguous() for t in model["model"].values())


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "rsdistill-model/1", "meta": _Payload()}, path)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        safe_load(path)
    with pytest.raises(CheckpointError):
        load_model(path)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"epoch": 1}, path)

    def dies_halfway(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert safe_load(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_checkpoint_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "last.pt"
    atomic_torch_save({"epoch": 1, "w": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="cannot read"):
        safe_load(path)


def _nan_from_epoch(monkeypatch, bad_epoch: int) -> None:
    epoch = {"n": 0}
    train_epoch, terms = Trainer.train_epoch, CrossEntropyLoss.terms

    def counting_epoch(self):
        epoch["n"] += 1
        return train_epoch(self)

    def nan_terms(self, *args, **kwargs):
        computed = terms(self, *args, **kwargs)
        if epoch["n"] >= bad_epoch:
            computed = {k: (lambda f=f: f() * float("nan")) for k, f in computed.items()}
        return computed

    monkeypatch.setattr(Trainer, "train_epoch", counting_epoch)
    monkeypatch.setattr(CrossEntropyLoss, "terms", nan_terms)


def test_non_finite_loss_stops_with_the_epoch_and_keeps_the_last_good_checkpoint(
        tmp_path, tiny_data, tiny_train, monkeypatch):
    out = tmp_path / "nan"
    _nan_from_epoch(monkeypatch, bad_epoch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the message must not come with warnings
        with pytest.raises(TrainingError) as exc:
            run_training(out, tiny_data(), tiny_train(), progress=False)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "nan" in msg and "epoch 2" in msg and "last.pt" in msg
    state = safe_load(out / STATE_FILE)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in model_states(state)["model"].values()
               if v.is_floating_point())
    model, meta = load_model(out)
    assert meta["epoch"] == 1
    assert not (out / "metrics.json").exists()


def test_non_finite_loss_in_the_first_epoch_does_not_claim_a_checkpoint(
        tmp_path, tiny_data, tiny_train, monkeypatch):
    out = tmp_path / "nan1"
    _nan_from_epoch(monkeypatch, bad_epoch=1)
    with pytest.raises(TrainingError, match=r"at epoch 1\b") as exc:
        run_training(out, tiny_data(), tiny_train(), progress=False)
    assert not (out / STATE_FILE).exists()
    assert "epoch 0" not in str(exc.value)


def test_weights_that_overflow_stop_the_run_before_they_are_checkpointed(
        tmp_path, tiny_data, tiny_train, monkeypatch):
    # One step per epoch whose loss is finite but whose update leaves inf weights:
    # no loss check follows it, and those weights must not become "the last good checkpoint".
    out = tmp_path / "overflow"
    step = torch.optim.SGD.step

    def overflowing_step(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][-1].fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", overflowing_step)
    with pytest.raises(TrainingError, match=r"non-finite.*at epoch 1\b") as exc:
        run_training(out, tiny_data(), tiny_train(batch_size=64), progress=False)
    assert "no checkpoint was written yet" in str(exc.value)
    assert not (out / STATE_FILE).exists()
    assert not (out / "model.pt").exists()
