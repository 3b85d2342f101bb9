"""Architectures, training and safe (safetensors) persistence of classifiers.

``create(arch, input_shape=..., num_classes=...)`` builds a :class:`Classifier`;
``names()`` lists the architectures. One file per family, one registry line each.
"""

from stealguard.models.base import Classifier
from stealguard.models.io import ModelCard, load_card, load_model, save_model
from stealguard.models.lenet import build_lenet
from stealguard.models.mlp import build_mlp
from stealguard.models.quantization import QuantizedClassifier, build_quantized, quantize, quantize_victim
from stealguard.models.registry import check_input_shape, create, names, register
from stealguard.models.resnet import build_resnet18
from stealguard.models.resnet9 import build_resnet9, build_resnet9_w64
from stealguard.models.training import (
    accuracy_on,
    augment_crop_flip,
    fit,
    predict_logits,
    predict_proba,
    soft_cross_entropy,
)
from stealguard.models.vgg import build_vgg16_bn

register("mlp", build_mlp)
register("lenet", build_lenet)
register("vgg16_bn", build_vgg16_bn)
register("resnet18", build_resnet18)
register("resnet9", build_resnet9)
register("resnet9_w64", build_resnet9_w64)

__all__ = [
    "Classifier",
    "ModelCard",
    "QuantizedClassifier",
    "accuracy_on",
    "augment_crop_flip",
    "build_quantized",
    "check_input_shape",
    "create",
    "fit",
    "load_card",
    "load_model",
    "names",
    "predict_logits",
    "predict_proba",
    "quantize",
    "quantize_victim",
    "register",
    "save_model",
    "soft_cross_entropy",
]
