"""An exported file's contract is checked before any image is fed through it.

The metadata is plain text anyone can edit (or a tool can damage): an ``input_size`` of
999999 made predict try to allocate terabytes, one that disagrees with the graph ended
in an onnxruntime traceback, a ``std`` of 0 gave NaN probabilities without a word and a
short ``classes`` list named the wrong class. Every value is checked on its own, then
against the graph it describes; each refusal is one line that says to export again.
"""

from __future__ import annotations

import math

from rsdistill.errors import CheckpointError

# Far above any image size a CNN here is trained at; an ONNX graph with free spatial
# dims (not ours: ours fixes them) is bounded by this instead of by the graph.
MAX_INPUT_SIZE = 8192
CHANNELS = 3
_AGAIN = "export the model again with 'rsdistill export'"


def _refuse(source: str, what: str) -> CheckpointError:
    return CheckpointError(f"{source} has inconsistent rsdistill metadata: {what}; the file "
                           f"was edited or damaged: {_AGAIN}")


def _finite_list(value, name: str, source: str) -> list[float]:
    numbers = value if isinstance(value, list) else []
    if len(numbers) != CHANNELS or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in numbers):
        raise _refuse(source, f"{name} is not a list of {CHANNELS} finite numbers")
    return [float(v) for v in numbers]


def check_values(meta: dict, source: str) -> None:
    """The contract's values, each on its own terms (``meta`` as read_contract makes it)."""
    size = meta["image_size"]
    if not 1 <= size <= MAX_INPUT_SIZE:
        raise _refuse(source, f"input_size {size} is outside 1..{MAX_INPUT_SIZE}")
    norm = meta["normalization"]
    mean, std = norm["mean"], norm["std"]
    if (mean is None) != (std is None):
        raise _refuse(source, "mean and std are not both lists or both null")
    if mean is not None:
        _finite_list(mean, "mean", source)
        if min(_finite_list(std, "std", source)) <= 0:
            raise _refuse(source, "std has a value that is not above 0")
    classes = meta["classes"]
    if not isinstance(classes, list) or not classes or not all(
            isinstance(c, str) and c for c in classes):
        raise _refuse(source, "classes is not a non-empty list of names")
    if len(set(classes)) != len(classes):
        raise _refuse(source, "classes names a class twice")


def _fixed(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def check_graph(meta: dict, input_shape: list, output_shape: list, source: str) -> None:
    """The contract against the graph: (batch, 3, S, S) in, (batch, len(classes)) out.
    Dimensions the graph leaves free (strings or None) cannot disagree."""
    size = meta["image_size"]
    if len(input_shape) != 4:
        raise _refuse(source, f"the graph's input has {len(input_shape)} dimensions, not 4 "
                              "(batch, 3, S, S), which does not match the layout")
    expected = (CHANNELS, size, size)
    for axis, (have, want) in enumerate(zip(input_shape[1:], expected), start=1):
        if _fixed(have) is not None and have != want:
            shown = "×".join(str(d) for d in input_shape[1:])
            raise _refuse(source, f"input_size {size} disagrees with the graph, which takes "
                                  f"{shown} inputs")
    if len(output_shape) != 2:
        raise _refuse(source, f"the graph's output has {len(output_shape)} dimensions, not 2 "
                              "(batch, classes), which does not match the classes")
    logits = _fixed(output_shape[1])
    if logits is not None and logits != len(meta["classes"]):
        raise _refuse(source, f"classes names {len(meta['classes'])} classes but the graph "
                              f"outputs {logits} logits")
