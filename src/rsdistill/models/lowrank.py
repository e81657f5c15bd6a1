"""Low-rank replacement of one weight layer by its truncated SVD.

A layer ``W`` read as the ``(out, in·k·k)`` matrix it applies to each input patch
(the same reading as the nuclear-norm penalty) is replaced by ``B·A`` with
``A = √S_R·V_Rᵀ`` (R × in·k·k) and ``B = U_R·√S_R`` (out × R). For a conv, ``A`` is a
k×k conv to R channels with the original stride/padding/dilation and ``B`` a 1×1 conv
R → out carrying the original bias; for a linear layer both are linear layers.
Splitting √S between the factors keeps both at the same scale (better conditioned
than putting S on one side), which matters once the model is quantised.

The replacement is made by module name (``model.set_submodule``), never by editing
model classes, and is described by a small dict ``{"layer": name, "rank": R}`` that
a checkpoint stores so ``load_model`` can rebuild the same structure.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from rsdistill.errors import CheckpointError, ConfigError
from rsdistill.registry import Registry


def full_rank(layer: nn.Module) -> int:
    """The largest rank the layer's weight matrix can have."""
    w = layer.weight
    return min(w.shape[0], w[0].numel())


def check_energy(energy: float) -> float:
    if not (math.isfinite(energy) and 0.0 < energy <= 1.0):
        raise ConfigError(f"--energy must be in (0, 1], got {energy!r}")
    return energy


def rank_for_energy(singular_values: torch.Tensor, energy: float) -> int:
    """Smallest R whose top-R singular values hold ``energy`` of ``Σ s²``."""
    check_energy(energy)
    s2 = singular_values.detach().double().square()
    total = float(s2.sum())
    if total <= 0.0:
        return 1
    share = torch.cumsum(s2, 0) / total
    # Relative slack so energy=1.0 is reached despite rounding in the cumulative sum.
    reached = share >= energy - 1e-12
    return int(torch.nonzero(reached)[0]) + 1


def _factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)`` with ``B @ A`` the best rank-``rank`` approximation of ``weight`` as a matrix."""
    matrix = weight.detach().reshape(weight.shape[0], -1).double()
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    root = s[:rank].sqrt()
    a = root[:, None] * vh[:rank]
    b = u[:, :rank] * root[None, :]
    return a.to(weight.dtype), b.to(weight.dtype)


def _conv_pair(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    if conv.groups != 1:
        raise ConfigError(f"cannot factorise a grouped conv (groups={conv.groups}); "
                          "only ordinary convolutions are supported")
    reduce = nn.Conv2d(conv.in_channels, rank, conv.kernel_size, stride=conv.stride,
                       padding=conv.padding, dilation=conv.dilation, bias=False,
                       padding_mode=conv.padding_mode)
    expand = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None)
    return nn.Sequential(reduce, expand)


def _linear_pair(linear: nn.Linear, rank: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(linear.in_features, rank, bias=False),
                         nn.Linear(rank, linear.out_features, bias=linear.bias is not None))


# Layer type -> the two-layer structure of rank R that replaces it (weights not set).
# Keyed by the exact class name, not isinstance: a subclass such as timm's Conv2dSame
# pads in its forward, which the plain pair below would silently drop.
FACTORISERS: Registry[Callable[[nn.Module, int], nn.Sequential]] = Registry("factorisable layer type")
FACTORISERS.add("Conv2d", _conv_pair)
FACTORISERS.add("Linear", _linear_pair)


def low_rank_structure(layer: nn.Module, rank: int) -> nn.Sequential:
    """The untrained rank-``rank`` replacement of ``layer`` (same device and dtype)."""
    limit = full_rank(layer)
    if not (isinstance(rank, int) and 1 <= rank <= limit):
        raise ConfigError(f"--rank must be an integer in [1, {limit}] for this layer "
                          f"(weight {tuple(layer.weight.shape)}), got {rank!r}")
    pair = FACTORISERS.get(type(layer).__name__)(layer, rank)
    return pair.to(device=layer.weight.device, dtype=layer.weight.dtype)


def factorise(layer: nn.Module, rank: int) -> nn.Sequential:
    """``layer`` replaced by its truncated SVD of rank ``rank``, weights set."""
    pair = low_rank_structure(layer, rank)
    a, b = _factors(layer.weight, rank)
    with torch.no_grad():
        pair[0].weight.copy_(a.reshape(pair[0].weight.shape))
        pair[1].weight.copy_(b.reshape(pair[1].weight.shape))
        if layer.bias is not None:
            pair[1].bias.copy_(layer.bias)
    return pair


def apply_low_rank(model: nn.Module, spec: dict | None) -> nn.Module:
    """Give ``model`` the structure a checkpoint's ``low_rank`` entry describes (in place).

    Only the structure: the weights come from the checkpoint's state dict afterwards.
    ``None`` (an ordinary checkpoint) leaves the model as it is.
    """
    if not spec:
        return model
    try:
        name, rank = spec["layer"], int(spec["rank"])
        layer = model.get_submodule(name)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"invalid low_rank entry {spec!r} in the checkpoint: {exc}") from None
    model.set_submodule(name, low_rank_structure(layer, rank))
    return model
