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
import torch.nn.functional as F
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


def _matrix(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` as the out × in·k·k matrix it applies to each patch, float64, detached."""
    return weight.detach().reshape(weight.shape[0], -1).double()


def _row_weights(row_scale: torch.Tensor | None, rows: int) -> torch.Tensor:
    if row_scale is None:
        return torch.ones(rows, dtype=torch.float64)
    d = row_scale.detach().double().abs().reshape(-1)
    if d.numel() != rows:
        raise ConfigError(f"row scale has {d.numel()} entries for a layer with {rows} outputs")
    # A zero scale marks an output nothing downstream reads; keep it finite for the division.
    return d.clamp_min(float(d.max()) * 1e-12 if float(d.max()) > 0 else 1.0)


def _input_root(input_cov: torch.Tensor | None, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L, L⁻¹)`` with ``L = Σ^½`` of the input patches' covariance (identity if none)."""
    if input_cov is None:
        eye = torch.eye(cols, dtype=torch.float64)
        return eye, eye
    sigma = input_cov.detach().double()
    if sigma.shape != (cols, cols):
        raise ConfigError(f"input covariance is {tuple(sigma.shape)}, expected {(cols, cols)}")
    evals, evecs = torch.linalg.eigh((sigma + sigma.T) / 2)
    # A small ridge keeps directions the data never excites invertible without letting
    # them dominate: their error is weighed as almost nothing, not as infinite.
    evals = evals.clamp_min(float(evals.max().clamp_min(1e-12)) * 1e-8)
    return (evecs * evals.sqrt()) @ evecs.T, (evecs / evals.sqrt()) @ evecs.T


def weighted_singular_values(weight: torch.Tensor, row_scale: torch.Tensor | None = None,
                             input_cov: torch.Tensor | None = None) -> torch.Tensor:
    """Singular values of ``diag(row_scale)·W·Σ^½`` (W as an out × in·k·k matrix)."""
    matrix = _matrix(weight)
    root, _ = _input_root(input_cov, matrix.shape[1])
    return torch.linalg.svdvals(_row_weights(row_scale, matrix.shape[0])[:, None] * matrix @ root)


def _factors(weight: torch.Tensor, rank: int, row_scale: torch.Tensor | None = None,
             input_cov: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)``: the rank-``rank`` ``W ≈ B·A`` minimising ``E‖D(W − B·A)(x − m)‖²``.

    ``D = diag(row_scale)`` and ``x`` the layer's input patches with mean ``m`` and
    covariance ``Σ``; the minimiser is the truncated SVD of ``D·W·Σ^½`` mapped back
    (Eckart–Young in the weighted norm); the mean's share is restored exactly by a
    bias (see :func:`factorise`). Both ``None`` gives the plain SVD of W. Why weigh at
    all: image patches are far from isotropic (neighbouring pixels move together),
    and the BatchNorm after W₁ rescales each output, so the plain SVD's "small"
    components are not the ones the next layer can do without.
    """
    matrix = _matrix(weight)
    d = _row_weights(row_scale, matrix.shape[0])
    root, inv_root = _input_root(input_cov, matrix.shape[1])
    u, s, vh = torch.linalg.svd(d[:, None] * matrix @ root, full_matrices=False)
    sq = s[:rank].sqrt()
    a = (sq[:, None] * vh[:rank]) @ inv_root
    b = (u[:, :rank] / d[:, None]) * sq[None, :]
    return a.to(weight.dtype), b.to(weight.dtype)


def input_statistics(layer: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the patches (conv) or vectors (linear) ``layer`` applies to.

    ``inputs`` is a batch of what the layer receives; patches are taken with the
    layer's own kernel, stride, padding and dilation, so they are exactly its operands.
    """
    x = inputs.detach().double()
    if isinstance(layer, nn.Conv2d):
        # Other padding modes differ from zeros on border patches only, a fair stand-in
        # for the statistics.
        pad = layer.padding
        if pad == "valid":
            pad = 0
        elif pad == "same":
            pad = tuple(d * (k - 1) // 2 for d, k in zip(layer.dilation, layer.kernel_size))
        cols = F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=pad, stride=layer.stride)
        x = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    else:
        x = x.reshape(-1, x.shape[-1])
    mean = x.mean(0)
    centred = x - mean
    return mean, centred.T @ centred / max(1, x.shape[0])


def _conv_pair(conv: nn.Conv2d, rank: int, bias: bool) -> nn.Sequential:
    if conv.groups != 1:
        raise ConfigError(f"cannot factorise a grouped conv (groups={conv.groups}); "
                          "only ordinary convolutions are supported")
    reduce = nn.Conv2d(conv.in_channels, rank, conv.kernel_size, stride=conv.stride,
                       padding=conv.padding, dilation=conv.dilation, bias=False,
                       padding_mode=conv.padding_mode)
    expand = nn.Conv2d(rank, conv.out_channels, 1, bias=bias)
    return nn.Sequential(reduce, expand)


def _linear_pair(linear: nn.Linear, rank: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Linear(linear.in_features, rank, bias=False),
                         nn.Linear(rank, linear.out_features, bias=bias))


# Layer type -> the two-layer structure of rank R that replaces it (weights not set).
# Keyed by the exact class name, not isinstance: a subclass such as timm's Conv2dSame
# pads in its forward, which the plain pair below would silently drop.
FACTORISERS: Registry[Callable[[nn.Module, int, bool], nn.Sequential]] = Registry("factorisable layer type")
FACTORISERS.add("Conv2d", _conv_pair)
FACTORISERS.add("Linear", _linear_pair)


def low_rank_structure(layer: nn.Module, rank: int, bias: bool | None = None) -> nn.Sequential:
    """The untrained rank-``rank`` replacement of ``layer`` (same device and dtype).

    The second layer has a bias if ``layer`` has one or ``bias`` asks for it (the
    mean correction of a data-weighted truncation needs one).
    """
    limit = full_rank(layer)
    if not (isinstance(rank, int) and 1 <= rank <= limit):
        raise ConfigError(f"--rank must be an integer in [1, {limit}] for this layer "
                          f"(weight {tuple(layer.weight.shape)}), got {rank!r}")
    with_bias = layer.bias is not None or bool(bias)
    pair = FACTORISERS.get(type(layer).__name__)(layer, rank, with_bias)
    return pair.to(device=layer.weight.device, dtype=layer.weight.dtype)


def factorise(layer: nn.Module, rank: int, row_scale: torch.Tensor | None = None,
              input_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> nn.Sequential:
    """``layer`` replaced by a rank-``rank`` pair of layers, weights set.

    Without weights this is the truncated SVD; ``row_scale`` (one weight per output)
    and ``input_stats`` (the inputs' mean and covariance, :func:`input_statistics`)
    make it the truncation that is best for the scaled outputs on that input
    distribution, see :func:`_factors`. With ``input_stats`` the second layer gets a
    bias ``(W − W_R)·m`` so the mean output is unchanged.
    """
    mean, cov = input_stats if input_stats is not None else (None, None)
    pair = low_rank_structure(layer, rank, bias=mean is not None)
    a, b = _factors(layer.weight, rank, row_scale, cov)
    with torch.no_grad():
        pair[0].weight.copy_(a.reshape(pair[0].weight.shape))
        pair[1].weight.copy_(b.reshape(pair[1].weight.shape))
        if pair[1].bias is not None:
            shift = torch.zeros(layer.weight.shape[0], dtype=torch.float64)
            if mean is not None:
                full = _matrix(layer.weight)
                shift = (full - b.double() @ a.double()) @ mean.double()
            base = layer.bias.detach().double() if layer.bias is not None else 0.0
            pair[1].bias.copy_((base + shift).to(pair[1].bias.dtype))
    return pair


def following_batchnorm(model: nn.Module, name: str, image_size: int) -> tuple[str, nn.Module] | None:
    """The BatchNorm that directly consumes layer ``name``'s output, if one does.

    Found by the order modules run in on one dummy forward pass (not by registration
    order, which a model is free to choose), and accepted only if its width matches.
    """
    layer = model.get_submodule(name)
    order: list[str] = []
    handles = [m.register_forward_pre_hook(lambda _m, _x, n=n: order.append(n))
               for n, m in model.named_modules() if n and not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        first = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=first.device, dtype=first.dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if name not in order or order.index(name) + 1 >= len(order):
        return None
    nxt = order[order.index(name) + 1]
    bn = model.get_submodule(nxt)
    if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.num_features == layer.weight.shape[0] \
            and bn.running_var is not None:
        return nxt, bn
    return None


def batchnorm_scale(bn: nn.Module) -> torch.Tensor:
    """|γ|/√(running_var + ε): how much the BatchNorm amplifies each of its inputs."""
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_var)
    return gamma.abs() / torch.sqrt(bn.running_var + bn.eps)


def apply_low_rank(model: nn.Module, spec: dict | None) -> nn.Module:
    """Give ``model`` the structure a checkpoint's ``low_rank`` entry describes (in place).

    Only the structure: the weights come from the checkpoint's state dict afterwards.
    ``None`` (an ordinary checkpoint) leaves the model as it is.
    """
    if not spec:
        return model
    try:
        name, rank = spec["layer"], int(spec["rank"])
        bias = bool(spec.get("bias", False))
        layer = model.get_submodule(name)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"invalid low_rank entry {spec!r} in the checkpoint: {exc}") from None
    model.set_submodule(name, low_rank_structure(layer, rank, bias=bias))
    return model
