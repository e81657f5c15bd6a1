"""Function matching (Beyer et al., CVPR 2022): the student matches the teacher's
prediction on exactly the augmented (cropped, flipped, mixed) image it sees.

The loss is the KL of :mod:`rsdistill.losses.kd` at T = 1 and nothing else: there is no
label term by default, because on a mixed or cropped view the teacher's prediction is
the target and the true label of the unmixed scene is not. ``hard_weight`` adds the
cross-entropy with the (mixed) labels as the ablation. What makes it function matching
is the data side: the teacher labels the student's very view (``--teacher-augment same``,
the default), mixing and crops are drawn once and applied to both views, and the views
can come from a stored bank (``--teacher-cache bank``).
"""

from __future__ import annotations

import math

from rsdistill.errors import ConfigError
from rsdistill.losses.kd import KDLoss
from rsdistill.losses.method import Method, register_method


def function_matching(temperature: float = 1.0, hard_weight: float = 0.0,
                      label_smoothing: float = 0.0) -> KDLoss:
    """``(1 - hard_weight)·T²·KL(p_t ‖ p_s) + hard_weight·CE``; ``--alpha`` is not read.

    KD's terms (``soft`` and ``hard``, unweighted), with the loss's own blend:
    ``own_alpha = 1 - hard_weight`` takes the place of the run's alpha in the distiller.
    """
    if not (isinstance(hard_weight, (int, float)) and math.isfinite(hard_weight)
            and 0.0 <= hard_weight < 1.0):
        raise ConfigError(f"fm: hard_weight must be a number in [0, 1) (the share of the "
                          f"label loss), got {hard_weight!r}")
    loss = KDLoss(temperature, label_smoothing)
    loss.own_alpha = 1.0 - float(hard_weight)
    return loss


register_method(Method("fm", "function matching (Beyer et al. 2022): KL to the teacher on the "
                       "student's own augmented view, T = 1, no label loss by default",
                       factory=function_matching, default_temperature=1.0))
