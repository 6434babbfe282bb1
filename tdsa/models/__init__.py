"""Networks with two feature taps (``mid``, ``high``) for TDSA-Loss, and their registry.

``create_model("tdsa_vgg16", num_classes=200)`` is the published network;
``tdsa_resnet18/34/50/101`` port it to ResNet trunks.
"""

from tdsa.models import resnet as resnet
from tdsa.models import vgg as vgg
from tdsa.models.base import TdsaNet
from tdsa.models.heads import FlattenHead, GapHead
from tdsa.models.pretrained import LoadReport, load_pretrained
from tdsa.models.registry import (
    create_model,
    create_model_from_config,
    list_models,
    register_model,
)
from tdsa.models.resnet import TdsaResNet
from tdsa.models.vgg import TdsaVGG, vgg_layer_list

__all__ = [
    "FlattenHead",
    "GapHead",
    "LoadReport",
    "TdsaNet",
    "TdsaResNet",
    "TdsaVGG",
    "create_model",
    "create_model_from_config",
    "list_models",
    "load_pretrained",
    "register_model",
    "vgg_layer_list",
]
