"""The published TDSA network: VGG16-BN with conv4_3 widened to 9c and conv5_3 to 3c."""

from __future__ import annotations

import torch
from torch import nn

from tdsa.data.spec import PUBLISHED_MEAN, PUBLISHED_STD
from tdsa.models.base import (
    TdsaNet,
    adapter_1x1,
    check_classes_xi,
    init_conv_bn,
    parse_input_size,
)
from tdsa.models.heads import build_head
from tdsa.models.registry import register_model
from tdsa.validation import DEFAULT_XI, check_choice, check_number

# VGG16-BN ("D") up to conv5_3, without pool 5; "mid"/"high" are the class-coded convs.
_VGG16_PLAN: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    "mid",
    "M",
    512,
    512,
    "high",
)


STAGES = ("serial", "side")


def vgg_layer_list(
    num_classes: int, xi: tuple[int, int], width: float = 1.0, stages: str = "serial"
) -> list[int | str]:
    """The trunk's layer list: conv out-channels and ``"M"`` (2x2 max-pool), e.g. for 200
    classes ``64,64,M,128,128,M,256,256,256,M,512,512,1800,M,512,512,600``. With
    ``stages="side"`` conv4_3 and conv5_3 keep VGG16's own 512 (times ``width``).
    """
    out: list[int | str] = []
    for v in _VGG16_PLAN:
        if v == "M":
            out.append("M")
        elif v in ("mid", "high") and stages == "serial":
            out.append(num_classes * xi[0 if v == "mid" else 1])
        else:
            out.append(max(1, round((512 if v in ("mid", "high") else int(v)) * width)))
    return out


class TdsaVGG(TdsaNet):
    """VGG16-BN trunk with two class-coded convs: ``mid`` (c*xi_mid, stride 8) and ``high``
    (c*xi_high, stride 16), and the published flatten head (or GAP).

    ``stages="serial"`` (published): conv4_3 itself emits the c*xi_mid channels and feeds the
    next block, conv5_3 emits c*xi_high. ``stages="side"`` (ablation): the plain VGG16 trunk,
    with ``mid`` and ``high`` taken by 1x1 conv+BN+ReLU adapters on conv4_3 and conv5_3, the
    mid adapter being a side branch (as in the ResNet ports' ``adapter="conv1x1"``).

    ``features`` is indexed like torchvision's ``vgg16_bn().features``, so torchvision
    weights load by name wherever the shapes agree.
    """

    def __init__(
        self,
        num_classes: int,
        xi: tuple[int, int] = DEFAULT_XI,
        *,
        width: float = 1.0,
        head: str = "flatten",
        input_size: int | tuple[int, int] = 224,
        stages: str = "serial",
    ) -> None:
        super().__init__()
        num_classes, xi = check_classes_xi(num_classes, xi)
        width = check_number("width", width, low=0.0, open_low=True)
        stages = check_choice("stages", stages, STAGES)
        size = parse_input_size(input_size)
        self.num_classes = num_classes
        self.xi = xi
        layers: list[nn.Module] = []
        in_ch = 3
        self.mid_index = -1  # index in `features` of the ReLU after the c*xi_mid conv
        trunk_mid = 0  # conv4_3's out-channels
        plan = vgg_layer_list(num_classes, xi, width, stages)
        for kind, v in zip(_VGG16_PLAN, plan, strict=True):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.BatchNorm2d(int(v))]
            layers.append(nn.ReLU(inplace=True))
            in_ch = int(v)
            if kind == "mid":
                self.mid_index, trunk_mid = len(layers) - 1, in_ch
        self.features = nn.Sequential(*layers)
        self.adapter_mid: nn.Module = nn.Identity()
        self.adapter_high: nn.Module = nn.Identity()
        if stages == "side":
            self.adapter_mid = adapter_1x1(trunk_mid, num_classes * xi[0])
            self.adapter_high = adapter_1x1(in_ch, num_classes * xi[1])
        self.default_cfg = {
            "architecture": "tdsa_vgg16",
            "stages": stages,
            "input_size": (3, *size),
            "mean": PUBLISHED_MEAN,
            "std": PUBLISHED_STD,
            "mid_stride": 8,
            "high_stride": 16,
            "torchvision_weights": "VGG16_BN_Weights.IMAGENET1K_V1",
        }
        _, high_hw = self.feature_hw(*size)
        self.head = build_head(head, num_classes * xi[1], high_hw, num_classes, size)
        init_conv_bn(self)

    def feature_hw(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Three 2x2 pools before ``mid``, one more before ``high`` (floor division)."""
        mid = (height // 8, width // 8)
        return mid, (mid[0] // 2, mid[1] // 2)

    def parameter_stage(self, name: str) -> str:
        """``features`` up to the mid conv's ReLU and ``adapter_mid`` are ``mid``, the rest of
        ``features`` and ``adapter_high`` are ``high``, the classifier is ``head``."""
        top, _, rest = name.partition(".")
        if top == "features":
            return "mid" if int(rest.partition(".")[0]) <= self.mid_index else "high"
        return self._module_stage(name, {"adapter_mid": "mid", "adapter_high": "high",
                                         "head": "head"})

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``mid`` = ReLU output of the c*xi_mid conv, ``high`` = that of the c*xi_high conv."""
        self.check_input(x)
        mid = x
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self.mid_index:
                mid = x
        return {"mid": self.adapter_mid(mid), "high": self.adapter_high(x)}


@register_model
def tdsa_vgg16(
    num_classes: int,
    *,
    xi: tuple[int, int] = DEFAULT_XI,
    width: float = 1.0,
    head: str = "flatten",
    input_size: int | tuple[int, int] = 224,
    stages: str = "serial",
) -> TdsaVGG:
    """The published TDSA network (VGG16-BN, no pool 5); ``width=0.25`` is the compact
    CPU version, ``head="gap"`` the GAP ablation, ``stages="side"`` the side-adapter ablation.

    Book: chapter 2, *A short training run and its per-class channels*.
    """
    return TdsaVGG(num_classes, xi, width=width, head=head, input_size=input_size, stages=stages)

