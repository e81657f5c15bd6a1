"""Deep mutual learning: the loss's per-peer terms, one step updating every peer, and a
two-epoch ``distill --method dml`` run of different-architecture peers on the tiny tree."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import yaml

from rsdistill.cli.main import main
from rsdistill.experiments.mutual import MutualDistiller
from rsdistill.experiments.grid import SweepConfig
from rsdistill.errors import ConfigError
from rsdistill.losses import build_method
from rsdistill.models import build_model, count_parameters
from rsdistill.training.distiller import TrainStep
from rsdistill.losses import StepInputs, weighted_terms
from rsdistill.losses import MethodConfig


def _loss(temperature=1.0, **options):
    return build_method("dml", temperature=temperature, options=options)


def _distiller(names=("resnet8", "resnet8")):
    torch.manual_seed(0)
    peers = [build_model(n, num_classes=3, image_size=16) for n in names]
    return MutualDistiller(peers, _loss(), list(names), alpha=0.5)


def test_terms_are_named_per_peer_and_weighted():
    loss = _loss(temperature=2.0)
    torch.manual_seed(0)
    logits = [torch.randn(6, 4) for _ in range(3)]
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    terms = weighted_terms(loss, StepInputs(logits[0], labels, peer_logits=logits), 0.25)
    assert set(terms) == {f"{kind}_{i}" for kind in ("hard", "mutual") for i in range(3)}
    for i, z in enumerate(logits):
        assert terms[f"hard_{i}"] == pytest.approx(0.75 * float(F.cross_entropy(z, labels)))
        # Mean over the other peers of T²·KL(p_j ‖ p_i), weighted by α.
        kls = [4.0 * float(F.kl_div(F.log_softmax(z / 2, 1), F.softmax(o / 2, 1),
                                    reduction="batchmean"))
               for j, o in enumerate(logits) if j != i]
        assert terms[f"mutual_{i}"] == pytest.approx(0.25 * sum(kls) / len(kls), rel=1e-5)


def test_mutual_term_is_zero_when_the_peers_agree():
    z = torch.randn(5, 3)
    terms = _loss()(StepInputs(z, torch.tensor([0, 1, 2, 0, 1]), peer_logits=[z, z.clone()]))
    assert float(terms["mutual_0"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["mutual_1"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["hard_0"]) > 0


def test_a_peers_mutual_term_moves_only_that_peer():
    a, b = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    terms = _loss()(StepInputs(a, torch.tensor([0, 1, 2, 0]), peer_logits=[a, b]))
    terms["mutual_0"].backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert b.grad is None, "the other peer's prediction is a target, not trained by this term"


def test_one_step_updates_every_peer_and_the_state_holds_each_peer_once():
    d = _distiller()
    assert d.student is d.peers[0]
    assert not any(k.startswith("student.") for k in d.state_dict())
    # Default peers are two copies of the student's architecture, initialised differently.
    assert not torch.equal(d.peers[0].conv1.weight, d.peers[1].conv1.weight)
    before = [{k: v.clone() for k, v in p.state_dict().items()} for p in d.peers]
    opt = torch.optim.SGD(d.trainable_parameters(), lr=0.1)
    assert sum(p.numel() for p in d.trainable_parameters()) == \
        sum(count_parameters(p) for p in d.peers)
    d.train()
    x, y = torch.rand(8, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    logits, terms = d.forward_train(TrainStep(x, y))
    assert logits.shape == (8, 3) and set(terms) == {"hard_0", "mutual_0", "hard_1", "mutual_1"}
    opt.zero_grad()
    sum(terms.values()).backward()
    opt.step()
    for i, peer in enumerate(d.peers):
        moved = [k for k, v in peer.state_dict().items()
                 if v.is_floating_point() and not torch.equal(v, before[i][k])]
        assert moved, f"peer {i} was not updated"


def test_peers_must_start_with_the_student_and_number_two_or_more():
    assert _loss().peer_models("resnet8") == ["resnet8", "resnet8"]
    assert _loss(peers="resnet8,resnet14").peer_models("resnet8") == ["resnet8", "resnet14"]
    with pytest.raises(ConfigError, match="must start with 'resnet8'"):
        _loss(peers="resnet14,resnet8").peer_models("resnet8")
    with pytest.raises(ConfigError, match="two or more peers"):
        _loss(peers="resnet8")


def test_a_fused_sweep_refuses_dml():
    with pytest.raises(ConfigError, match="fused sweep"):
        SweepConfig(teacher="t", alphas=[0.5], method=MethodConfig(method="dml")).validate()


@pytest.fixture(scope="module")
def dml_run(tmp_path_factory, tiny_tree3, tiny_cache):
    """Two epochs of resnet8 + resnet14 peers, without a teacher."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("dml") / "run"
    rc = main(["distill", "--dataset", "folder", "--data-root", str(tiny_tree3), "--image-size",
               "16", "--cache-dir", str(tiny_cache), "--workers", "1", "--student", "resnet8",
               "--method", "dml", "--peers", "resnet8,resnet14", "--epochs", "2",
               "--batch-size", "8", "--latency-runs", "3", "--device", "cpu", "--no-progress",
               "--out", str(out)])
    assert rc == 0
    return out


def test_dml_run_reports_every_peer(dml_run):
    metrics = json.loads((dml_run / "metrics.json").read_text())
    peers = metrics["peers"]
    assert [p["model"] for p in peers] == ["resnet8", "resnet14"]
    assert [p["checkpoint"] for p in peers] == ["model.pt", "peer1.pt"]
    # Peer 0 is the run's student: the same scores as the run itself.
    assert peers[0]["accuracy"] == metrics["accuracy"] and peers[0]["f1_macro"] == metrics["f1_macro"]
    for p in peers:
        assert 0.0 <= p["accuracy"] <= 1.0 and 0.0 <= p["f1_macro"] <= 1.0
    assert metrics["run"]["model"] == "resnet8"
    assert metrics["run"]["extra_trainable_params"] == peers[1]["params"] > metrics["params"]
    config = yaml.safe_load((dml_run / "config.yaml").read_text())
    assert config["distill"]["method"] == "dml" and config["distill"]["teacher"] == ""
    assert config["distill"]["temperature"] == 1.0  # the paper's T, the method's default
    assert config["distill"]["method_options"] == {"peers": "resnet8,resnet14"}
    header = (dml_run / "epochs.csv").read_text().splitlines()[0].split(",")
    assert {"loss_hard_0", "loss_mutual_0", "loss_hard_1", "loss_mutual_1"} <= set(header)


def test_dml_peer_files_are_plain_models(dml_run, capsys):
    state = torch.load(dml_run / "model.pt", weights_only=True)
    assert state["meta"]["model"] == "resnet8"
    assert torch.load(dml_run / "peer1.pt", weights_only=True)["meta"]["model"] == "resnet14"
    assert main(["evaluate", str(dml_run / "peer1.pt"), "--json", "--latency-runs", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    peers = json.loads((dml_run / "metrics.json").read_text())["peers"]
    assert result["accuracy"] == pytest.approx(peers[1]["accuracy"])
