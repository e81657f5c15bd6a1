"""Deep mutual learning (Zhang et al., CVPR 2018): peers trained together, no teacher.

Every peer ``i`` learns from the labels and from the other peers' predictions:
``L_i = (1 - alpha) * CE(z_i, y) + alpha * T^2 * mean_{j != i} KL(p_j || p_i)``
with ``p = softmax(z / T)``. The paper weights CE and KL 1 : 1 at ``T = 1``; with this
package's convention ``alpha = 0.5`` gives the paper's 1 : 1 ratio (as for every method
here, both terms then carry a factor 0.5), and ``T = 1`` is this method's default.

The other peers' distributions are detached: peer ``i``'s term moves only peer ``i``,
so summing every peer's terms and taking one optimiser step updates each peer by its
own loss, with all forwards computed once per batch. The paper steps the peers one
after another, recomputing predictions in between; the simultaneous update used here
(as most public implementations do) differs from it only by that staleness.
"""

from __future__ import annotations

from typing import Callable

import torch

from rsdistill.errors import ConfigError
from rsdistill.losses.base import (
    DistillationLoss,
    HARD,
    SOFT,
    StepInputs,
    check_label_smoothing,
    check_temperature,
)
from rsdistill.losses.kd import kd_soft_loss
from rsdistill.losses.method import Method, register_method
from rsdistill.losses.supervised import hard_term


def parse_peers(peers: object) -> list[str]:
    """``"resnet8,resnet14"`` (or a list of names) as a list; ``""`` means the default."""
    if isinstance(peers, str):
        names = [n.strip() for n in peers.split(",") if n.strip()]
    elif isinstance(peers, (list, tuple)) and all(isinstance(n, str) for n in peers):
        names = [n.strip() for n in peers if n.strip()]
    else:
        raise ConfigError(f"peers must be comma-separated model names, e.g. resnet8,resnet14; "
                          f"got {peers!r}")
    if len(names) == 1:
        raise ConfigError(f"mutual learning needs two or more peers, got only {names[0]!r}; "
                          "e.g. --peers resnet8,resnet8")
    return names


class MutualLoss(DistillationLoss):
    """Named terms ``hard_<i>`` and ``mutual_<i>`` for every peer ``i``, from
    ``inputs.peer_logits`` (the ``"mutual"`` procedure runs every peer per step),
    unweighted: the distiller weighs every ``mutual_<i>`` by alpha and every ``hard_<i>``
    by 1 - alpha."""

    needs_teacher = False
    term_roles = {"hard": HARD, "mutual": SOFT}

    def __init__(self, temperature: float, label_smoothing: float = 0.0,
                 peers: str = "") -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.peer_names = parse_peers(peers)

    def peer_models(self, student: str) -> list[str]:
        """The architecture of every peer; peer 0 is the student the run is named by."""
        names = self.peer_names or [student, student]
        if names[0] != student:
            raise ConfigError(f"peer 0 is the student, so --peers must start with {student!r} "
                              f"(the --student), got {','.join(names)}")
        return names

    def role(self, name: str) -> str | None:
        # Peer i's terms are hard_<i> and mutual_<i>: the role is that of the prefix.
        return super().role(name.rsplit("_", 1)[0])

    def terms(self, inputs: StepInputs) -> dict[str, Callable[[], torch.Tensor]]:
        peer_logits, labels = inputs.peer_logits or [], inputs.labels
        if len(peer_logits) < 2:
            raise ValueError(f"MutualLoss needs the logits of two or more peers, "
                             f"got {len(peer_logits)}")
        terms: dict[str, Callable[[], torch.Tensor]] = {}
        for i, logits in enumerate(peer_logits):
            others = [z for j, z in enumerate(peer_logits) if j != i]

            def mutual(logits: torch.Tensor = logits, others: list = others) -> torch.Tensor:
                # kd_soft_loss detaches its target: peer j's prediction teaches peer i here
                # and is itself taught only by its own term.
                kls = [kd_soft_loss(logits, z, self.temperature) for z in others]
                return torch.stack(kls).mean()

            terms[f"hard_{i}"] = hard_term("dml", logits, labels, self.label_smoothing)
            terms[f"mutual_{i}"] = mutual
        return terms

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, "
                f"peers={','.join(self.peer_names) or 'two copies of the student'}, "
                f"label_smoothing={self.label_smoothing}")


# T = 1 is the paper's setting: plain softmax outputs, no softening.
register_method(Method("dml", "Zhang et al., CVPR 2018, no teacher: per peer i, "
                              "T²·mean_{j≠i} KL(p_j ‖ p_i) plus its own (1−α)·CE",
                       factory=MutualLoss, procedure="mutual", default_temperature=1.0,
                       teacher=False))
