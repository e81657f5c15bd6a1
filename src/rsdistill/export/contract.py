"""The preprocessing contract of an exported model, as plain string key/value pairs.

A deployed model is useless without knowing how to feed it: the file carries the
input size, the pixel scaling, the per-channel mean/std (or none), the class names
in output order, and where the model came from. Values are strings (what ONNX
``metadata_props`` hold); lists and ``null`` are JSON so any runtime can parse them.
``rsdistill evaluate model.onnx`` rebuilds its preprocessing from these alone.

Version 2 adds how an image becomes the uint8 tensor training saw (decoder, colour
conversion, resize filter and its antialiasing, aspect handling, layout, dtype): a
deployer who resized with another filter got another top-1 on 7 of 24 images. The
values come from the data layer's own constants, so the file cannot describe a
resize that training did not do. Version 1 files (without these keys) still load.

Version 3 adds how samples of other bit depths become 8-bit (``samples_*``, ``bands``):
following ``convert('RGB')`` alone, a 16-bit grey PNG clipped to white and a float32
TIFF came out black, and another class won than the one ``rsdistill predict`` gives.
"""

from __future__ import annotations

import json

from rsdistill import __version__
from rsdistill.data.decode import COLOR_MODE, RESAMPLE
from rsdistill.data.pixels import RULE_8BIT, RULE_BANDS, RULE_FLOAT, RULE_INTEGER
from rsdistill.data.loader import Normalizer
from rsdistill.errors import CheckpointError, ConfigError
from rsdistill.export.contract_check import check_values

CONTRACT_VERSION = "3"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
SCALE = "1/255"

# Keys every exported file must carry; ``read_contract`` refuses a file without them.
REQUIRED = ("rsdistill_contract", "input_size", "scale", "mean", "std", "classes", "model")

# How an image file becomes the model's input (contract versions 2 and 3). Pillow's resize
# widens its filter by the downscale factor, i.e. it antialiases; torchvision's tensor
# resize and OpenCV do not by default, which is why the filter alone is not enough.
PREPROCESSING = {
    "decoder": "Pillow",
    # Before the colour conversion, by the sample type of the file (version 3).
    "samples_8bit": RULE_8BIT,
    "samples_integer": RULE_INTEGER,
    "samples_float": RULE_FLOAT,
    "bands": RULE_BANDS,
    "color_mode": COLOR_MODE,  # Image.convert(COLOR_MODE): palette, grey, CMYK, alpha -> RGB
    "channel_order": "RGB",
    "resize_library": "Pillow",
    "resize_filter": RESAMPLE.name.lower(),  # Image.Resampling.<upper-cased name>
    "resize_antialias": "true",
    # Image.resize((input_size, input_size)) on the whole image: no crop, no padding.
    "resize_aspect": "stretch",
    # Resized as 8-bit RGB (Pillow rounds and clips to 0..255), then scaled.
    "resize_dtype": "uint8",
    "layout": "NCHW",
    "input_dtype": "float32",
    # After multiplying by ``scale`` and before (x - mean) / std.
    "value_range": "[0, 1]",
}
PREPROCESSING_RECIPE = (
    "samples to 8 bits (16-bit: v >> 8; float: round(clip(v, 0, 1) * 255), NaN -> 0; "
    "1 band repeated, bands 1-3 of more as RGB), then "
    f"Image.open(f).convert('{COLOR_MODE}').resize((S, S), Image.Resampling.{RESAMPLE.name}) with Pillow "
    "(antialiased, aspect not kept, no crop); uint8 HWC -> float32 * 1/255; "
    "(x - mean) / std per channel unless mean/std are null; HWC -> CHW; stack to NCHW")


def check_single_resize(meta: dict) -> None:
    """The contract describes one resize; a model trained on images reduced to a smaller
    size first (``--source-size``, a teacher taught on a student's view) has two."""
    if meta.get("source_size"):
        raise ConfigError(f"{meta['model']} reads {meta['image_size']} px images made from "
                          f"{meta['source_size']} px ones (--source-size); it is meant as a "
                          "teacher, and its two-step resize has no deployment contract")


def write_contract(meta: dict, params: int, flops: int) -> dict[str, str]:
    """String metadata for a model whose checkpoint meta is ``meta``."""
    check_single_resize(meta)
    norm = meta.get("normalization") or {}
    size = int(meta["image_size"])
    props = {
        "rsdistill_contract": CONTRACT_VERSION,
        "producer": f"rsdistill {__version__}",
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        # What a caller does to a decoded RGB image before the model sees it.
        "input_layout": "NCHW float32 RGB",
        "input_size": str(size),
        "input_shape": json.dumps(["batch", 3, size, size]),
        "scale": SCALE,
        "mean": json.dumps(norm.get("mean")),
        "std": json.dumps(norm.get("std")),
        "classes": json.dumps(list(meta["classes"])),
        "num_classes": str(int(meta["num_classes"])),
        "model": str(meta["model"]),
        "dataset": str(meta.get("dataset", "")),
        # Of the source model (the exporter folds BN into convs, so counting the
        # ONNX initializers would not give the model's parameter count).
        "params": str(int(params)),
        "flops": str(int(flops)),
        **PREPROCESSING,
        "preprocessing": PREPROCESSING_RECIPE,
    }
    if meta.get("low_rank"):
        props["low_rank"] = json.dumps(meta["low_rank"])
    return props


def read_contract(props: dict[str, str], source: str) -> dict:
    """A checkpoint-like ``meta`` dict (model, classes, image_size, normalization, …)."""
    missing = [k for k in REQUIRED if k not in props]
    if missing:
        raise CheckpointError(f"{source} has no rsdistill preprocessing metadata "
                              f"(missing {', '.join(missing)}); export it with 'rsdistill export'")
    if props["scale"] != SCALE:
        raise CheckpointError(f"{source}: unsupported input scale {props['scale']!r} (expected {SCALE})")
    try:
        classes = json.loads(props["classes"])
        meta = {
            "model": props["model"],
            "num_classes": len(classes),
            "classes": classes,
            "image_size": int(props["input_size"]),
            "dataset": props.get("dataset", ""),
            "normalization": {"scale": SCALE, "mean": json.loads(props["mean"]),
                              "std": json.loads(props["std"])},
            "params": int(props.get("params", 0)),
            "flops": int(props.get("flops", 0)),
        }
        if "low_rank" in props:
            meta["low_rank"] = json.loads(props["low_rank"])
        if "quantization" in props:
            meta["quantization"] = json.loads(props["quantization"])
        meta["contract_version"] = props["rsdistill_contract"]
        # Absent from version 1 files, which were written by the same data layer.
        meta["preprocessing"] = {k: props[k] for k in PREPROCESSING if k in props}
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: malformed rsdistill metadata: {exc}") from None
    check_values(meta, source)
    return meta


def normalizer_from_meta(meta: dict) -> Normalizer:
    """The preprocessing a model expects, from its checkpoint or export metadata."""
    norm = meta.get("normalization") or {}
    mean, std = norm.get("mean"), norm.get("std")
    return Normalizer(tuple(mean) if mean else None, tuple(std) if std else None)
