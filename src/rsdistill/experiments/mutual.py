"""Deep mutual learning in the ordinary training loop: the ``"mutual"`` procedure.

:class:`MutualDistiller` implements the trainer's
:class:`~rsdistill.training.distiller.Trainable`: ``forward_train`` returns peer 0's logits
and every peer's named loss terms, so the loop sums them, takes one optimiser step over
all peers' parameters and selects on peer 0's validation accuracy. ``student`` is peer 0,
so model.pt, ``evaluate`` and resuming work unchanged; the other peers are saved beside
it (``peer1.pt``, ...) at the same epoch and reported in ``metrics.json["peers"]``.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch import nn

from rsdistill.data.module import PreparedData
from rsdistill.experiments.procedures import PROCEDURES, RunRequest
from rsdistill.experiments.single import single_spec, train_members
from rsdistill.losses import MutualLoss, NuclearNormPenalty, StepInputs, weighted_terms
from rsdistill.models import build_model, first_weight_layer
from rsdistill.training.config import TrainConfig
from rsdistill.training.distiller import TeacherView, TrainStep, weight_stats
from rsdistill.training.members import MemberSpec, member_loss

log = logging.getLogger(__name__)


class MutualDistiller(nn.Module):
    """Two or more peers trained from scratch together, no frozen teacher."""

    # No teacher, so no teacher view or tapped layers, and no features.
    teacher = None
    teacher_view = None
    teacher_layers = None
    needs_teacher = False
    uses_features = False
    soft_labels = True
    method_name = "MutualLoss"

    def __init__(self, peers: Sequence[nn.Module], loss: MutualLoss,
                 peer_names: Sequence[str], nuclear_beta: float = 0.0, *,
                 alpha: float) -> None:
        super().__init__()
        if len(peers) < 2 or len(peers) != len(peer_names):
            raise ValueError(f"MutualDistiller needs two or more peers, each with its model "
                             f"name; got {len(peers)} peers and {len(peer_names)} names")
        self.peers = nn.ModuleList(peers)
        self.peer_names = list(peer_names)
        self.loss = loss
        self.alpha = alpha  # blends every peer's mutual and hard terms
        # The nuclear norm compresses the deployed model's first layer: peer 0's only.
        self.nuclear = NuclearNormPenalty(nuclear_beta) if nuclear_beta > 0 else None
        self.first_layer_name, self.first_layer = first_weight_layer(peers[0])

    @property
    def student(self) -> nn.Module:
        # A property, not a second attribute: the state dict then holds each peer once.
        return self.peers[0]

    def peer_models(self) -> list[tuple[nn.Module, str]]:
        """The peers other than the student, with their model names (saved beside model.pt)."""
        return list(zip(self.peers[1:], self.peer_names[1:]))

    def close(self) -> None:
        """Nothing to remove: no hooks are registered."""

    def teacher_outputs(self, images: torch.Tensor):
        raise ValueError("mutual learning has no teacher")

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.student(images)

    def forward_train(self, step: TrainStep) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Peer 0's logits and the terms of every peer; each peer's forward runs once."""
        logits = [peer(step.images) for peer in self.peers]
        terms = weighted_terms(self.loss, StepInputs(logits[0], step.targets, peer_logits=logits,
                                                     epoch=step.epoch), self.alpha)
        if self.nuclear is not None:
            terms.update(self.nuclear(self.first_layer.weight))
        return logits[0], terms

    def first_layer_stats(self) -> dict[str, float]:
        return weight_stats(self.first_layer.weight)


def mutual_distiller(spec: MemberSpec, cfg: TrainConfig, data: PreparedData,
                     teacher: nn.Module | None, view: TeacherView | None) -> MutualDistiller:
    loss = member_loss(spec, spec.method, cfg)
    names = loss.peer_models(cfg.model)
    if teacher is not None:
        log.info("dml trains its peers without a teacher; --teacher only supplied defaults "
                 "for the data options")
    # Built in order right after seeding: peer 0 starts exactly like a student trained
    # from scratch with the same seed, and every peer gets its own initialisation.
    peers = [build_model(name, data.num_classes, data.dataset.image_size,
                         pretrained=cfg.pretrained if i == 0 else None)
             for i, name in enumerate(names)]
    return MutualDistiller(peers, loss, names, nuclear_beta=spec.method.beta(),
                           alpha=spec.method.alpha)


@PROCEDURES.register("mutual")
def train_mutual(req: RunRequest) -> dict:
    # Checked before any data is decoded: a --peers list not starting with the student.
    req.built.peer_models(req.train_cfg.model)
    (metrics,) = train_members(req, [single_spec(req)], factory=mutual_distiller)
    return metrics
