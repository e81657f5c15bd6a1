"""Classifier architectures: small-input teacher/student families plus any timm model.

Importing this package registers every family in :data:`MODELS`.
"""

from rsdistill.models.registry import MODELS, build_model, check_model_name, list_model_names
from rsdistill.models import mobilenetv2, resnet_small, wrn  # noqa: F401  (registers families)
from rsdistill.models.common import classifier_layer
from rsdistill.models.profile import (
    count_flops,
    count_parameters,
    describe_models,
    first_weight_layer,
)
from rsdistill.models.loading import load_model

__all__ = [
    "MODELS",
    "build_model",
    "check_model_name",
    "list_model_names",
    "count_parameters",
    "count_flops",
    "first_weight_layer",
    "classifier_layer",
    "describe_models",
    "load_model",
]
