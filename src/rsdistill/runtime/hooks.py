"""Intermediate feature maps read through forward hooks, addressed by module name.

Feature-based distillation needs a stage's output, which a classifier's ``forward``
does not return. A forward hook records it as a side effect, so no model is rewritten
or wrapped and a checkpoint of the student stays loadable by a plain ``build_model``.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from rsdistill.errors import ConfigError

# How many valid names an error message lists: enough to show the naming scheme.
_NAMES_SHOWN = 8


def layer_hint(model: nn.Module) -> str:
    """A few valid layer names of ``model``, for error messages."""
    names = list(getattr(model, "stage_names", ()) or ())
    if not names:
        names = [name for name, _ in model.named_children()]
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown + (", ..." if len(names) > _NAMES_SHOWN else "") if names else "(none)"


def default_feature_layers(model: nn.Module, flag: str = "--student-layers/--teacher-layers"
                           ) -> tuple[str, ...]:
    """The stages a model declares for feature hooks (its ``stage_names``).

    Only the small-input families declare them; for any other model (a ``timm:`` one)
    the stages are a choice the user has to make, so this asks for them.
    """
    names = tuple(getattr(model, "stage_names", ()) or ())
    if not names:
        raise ConfigError(
            f"{type(model).__name__} declares no feature stages; pass {flag} with module "
            f"names such as: {layer_hint(model)}"
        )
    return names


class FeatureTap:
    """Forward hooks on named submodules of ``model`` that keep each one's latest output.

    ``outputs`` maps name -> tensor of the last forward pass; :meth:`take` returns them
    in the order of ``names`` and forgets them, so a training step does not keep the
    previous step's activations alive. :meth:`remove` (or leaving a ``with`` block)
    removes every hook again.
    """

    def __init__(self, model: nn.Module, names: Iterable[str], owner: str = "model") -> None:
        self.names = tuple(names)
        if not self.names:
            raise ConfigError(f"no layers to tap on the {owner}")
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        modules = {}
        for name in self.names:
            # get_submodule("") is the model itself: its output is the logits, never a map.
            try:
                if not name:
                    raise AttributeError(name)
                modules[name] = model.get_submodule(name)
            except AttributeError:
                raise ConfigError(
                    f"the {owner} ({type(model).__name__}) has no layer {name!r}; "
                    f"valid names include: {layer_hint(model)}"
                ) from None
        # Validated before anything is registered: a bad name leaves no stray hook behind.
        for name, module in modules.items():
            self._handles.append(module.register_forward_hook(self._recorder(name)))

    def _recorder(self, name: str):
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self.outputs[name] = output

        return record

    def take(self) -> list[torch.Tensor]:
        """The latest output of every tapped layer, in ``names`` order; then forgets them."""
        missing = [n for n in self.names if n not in self.outputs]
        if missing:
            raise RuntimeError(f"layer(s) {', '.join(missing)} did not run in the last forward "
                               "pass (or their hooks were removed)")
        features = [self.outputs[n] for n in self.names]
        self.outputs.clear()
        return features

    def clear(self) -> None:
        self.outputs.clear()

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.outputs.clear()

    def __enter__(self) -> "FeatureTap":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


@torch.no_grad()
def probe_feature_maps(model: nn.Module, names: Sequence[str], example_input: torch.Tensor,
                       owner: str = "model") -> list[torch.Size]:
    """Shapes ``(N, C, H, W)`` of the named layers' outputs for ``example_input``.

    The dry run is in eval mode (restored afterwards) so batch-norm running statistics
    are not moved by it, and under ``no_grad``. A layer whose output is not a 4-D
    feature map is a :class:`ConfigError`: the feature losses compare spatial maps.
    """
    was_training = model.training
    model.eval()
    try:
        with FeatureTap(model, names, owner) as tap:
            model(example_input)
            outputs = tap.take()
    finally:
        model.train(was_training)
    shapes = []
    for name, out in zip(names, outputs):
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"layer {name!r} of the {owner} gives {got}, not an (N, C, H, W) "
                              f"feature map; choose a stage such as: {layer_hint(model)}")
        shapes.append(out.shape)
    return shapes
