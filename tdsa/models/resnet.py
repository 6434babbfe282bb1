"""ResNet trunks with TDSA taps: mid = layer3, high = layer4, by 1x1 adapters or widened stages."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torchvision
from torch import nn

from tdsa.data.spec import IMAGENET_MEAN, IMAGENET_STD
from tdsa.errors import ConfigError
from tdsa.models.base import (
    TdsaNet,
    adapter_1x1,
    check_classes_xi,
    init_conv_bn,
    parse_input_size,
)
from tdsa.models.heads import build_head
from tdsa.models.registry import register_model
from tdsa.validation import DEFAULT_XI, check_bool, check_choice

# arch -> (bottleneck blocks?, blocks in layer3, blocks in layer4, torchvision weights)
_SPECS: dict[str, tuple[bool, int, int, str]] = {
    "resnet18": (False, 2, 2, "ResNet18_Weights.IMAGENET1K_V1"),
    "resnet34": (False, 6, 3, "ResNet34_Weights.IMAGENET1K_V1"),
    "resnet50": (True, 6, 3, "ResNet50_Weights.IMAGENET1K_V2"),
    "resnet101": (True, 23, 3, "ResNet101_Weights.IMAGENET1K_V2"),
}
ADAPTERS = ("conv1x1", "widen")
_MID_MODULES = ("conv1", "bn1", "layer1", "layer2", "layer3", "adapter_mid")


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)
    return [conv, nn.BatchNorm2d(out_ch)]


class WideBlock(nn.Module):
    """A residual block that emits exactly ``out_channels`` (no divisibility required).

    Basic: 3x3 -> 3x3. Bottleneck: 1x1 -> 3x3 -> 1x1 with inner width
    ``max(1, round(out_channels / 4))`` (600 outputs -> 150 planes, as in torchvision).
    The shortcut is a strided 1x1 conv + BN when the shape changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, bottleneck: bool) -> None:
        super().__init__()
        if bottleneck:
            inner = max(1, round(out_channels / 4))
            body = [
                *_conv_bn(in_channels, inner, 1),
                nn.ReLU(inplace=True),
                *_conv_bn(inner, inner, 3, stride),
                nn.ReLU(inplace=True),
                *_conv_bn(inner, out_channels, 1),
            ]
        else:
            body = [
                *_conv_bn(in_channels, out_channels, 3, stride),
                nn.ReLU(inplace=True),
                *_conv_bn(out_channels, out_channels, 3),
            ]
        self.body = nn.Sequential(*body)
        self.shortcut = (
            nn.Sequential(*_conv_bn(in_channels, out_channels, 1, stride))
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(body(x) + shortcut(x))``."""
        return self.relu(self.body(x) + self.shortcut(x))


def _wide_stage(
    in_channels: int, out_channels: int, blocks: int, bottleneck: bool
) -> nn.Sequential:
    layers = [WideBlock(in_channels, out_channels, 2, bottleneck)]
    layers += [WideBlock(out_channels, out_channels, 1, bottleneck) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _halve(n: int, stride: bool) -> int:
    """Output length of a stride-2 ResNet layer (k3/p1 or k7/p3 or k1/p0): ceil(n / 2)."""
    return (n + 1) // 2 if stride else n


class TdsaResNet(TdsaNet):
    """A torchvision ResNet trunk with ``mid`` at layer3 and ``high`` at layer4.

    ``adapter="conv1x1"``: the standard trunk (ImageNet weights load by name), mid = 1x1
    conv+BN+ReLU side branch on layer3 to c*xi_mid, high = the same on layer4 to c*xi_high.
    ``adapter="widen"``: layer3/layer4 rebuilt so their blocks emit c*xi_mid / c*xi_high
    channels themselves (serial mid -> high, as published; no ImageNet weights there).
    """

    def __init__(
        self,
        arch: str,
        num_classes: int,
        xi: tuple[int, int] = DEFAULT_XI,
        *,
        adapter: str = "conv1x1",
        head: str = "gap",
        input_size: int | tuple[int, int] = 448,
        replace_stride_with_dilation: Sequence[bool] | None = None,
    ) -> None:
        super().__init__()
        num_classes, xi = check_classes_xi(num_classes, xi)
        size = parse_input_size(input_size)
        bottleneck, blocks3, blocks4, weights = _SPECS[arch]
        adapter = check_choice("adapter", adapter, ADAPTERS)
        dilation = self._check_dilation(replace_stride_with_dilation, adapter, bottleneck)
        self.num_classes = num_classes
        self.xi = xi
        self.dilation = dilation
        trunk = getattr(torchvision.models, arch)(
            weights=None, replace_stride_with_dilation=list(dilation) if bottleneck else None
        )
        self.conv1, self.bn1, self.relu, self.maxpool = (
            trunk.conv1,
            trunk.bn1,
            trunk.relu,
            trunk.maxpool,
        )
        self.layer1, self.layer2 = trunk.layer1, trunk.layer2
        expansion = 4 if bottleneck else 1
        mid_ch, high_ch = num_classes * xi[0], num_classes * xi[1]
        self.adapter_mid: nn.Module
        self.adapter_high: nn.Module
        if adapter == "conv1x1":
            self.layer3, self.layer4 = trunk.layer3, trunk.layer4
            self.adapter_mid = adapter_1x1(256 * expansion, mid_ch)
            self.adapter_high = adapter_1x1(512 * expansion, high_ch)
            init_conv_bn(self.adapter_mid)
            init_conv_bn(self.adapter_high)
        else:
            self.layer3 = _wide_stage(128 * expansion, mid_ch, blocks3, bottleneck)
            self.layer4 = _wide_stage(mid_ch, high_ch, blocks4, bottleneck)
            init_conv_bn(self.layer3)
            init_conv_bn(self.layer4)
            self.adapter_mid = nn.Identity()
            self.adapter_high = nn.Identity()
        mid_stride = 4 * (1 if dilation[0] else 2) * (1 if dilation[1] else 2)
        self.default_cfg = {
            "architecture": f"tdsa_{arch}",
            "adapter": adapter,
            "input_size": (3, *size),
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "mid_stride": mid_stride,
            "high_stride": mid_stride * (1 if dilation[2] else 2),
            "torchvision_weights": weights,
        }
        _, high_hw = self.feature_hw(*size)
        self.head = build_head(head, high_ch, high_hw, num_classes, size)

    @staticmethod
    def _check_dilation(
        value: Sequence[bool] | None, adapter: str, bottleneck: bool
    ) -> tuple[bool, bool, bool]:
        if value is None:
            return (False, False, False)
        if len(value) != 3:
            raise ConfigError(f"replace_stride_with_dilation must be three booleans, got {value!r}")
        flags = [check_bool(f"replace_stride_with_dilation[{i}]", v) for i, v in enumerate(value)]
        if any(flags) and adapter != "conv1x1":
            raise ConfigError(
                "replace_stride_with_dilation is only supported with adapter='conv1x1'"
            )
        if any(flags) and not bottleneck:
            raise ConfigError(
                "replace_stride_with_dilation needs bottleneck blocks (resnet50/101): "
                "torchvision's BasicBlock does not support dilation"
            )
        return (flags[0], flags[1], flags[2])

    def feature_hw(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """conv1 and maxpool halve (ceil), then layer2..4 unless replaced by dilation."""
        d = self.dilation

        def mid_high(n: int) -> tuple[int, int]:
            mid = _halve(_halve(_halve(_halve(n, True), True), not d[0]), not d[1])
            return mid, _halve(mid, not d[2])

        (mh, hh), (mw, hw) = mid_high(height), mid_high(width)
        return (mh, mw), (hh, hw)

    def parameter_stage(self, name: str) -> str:
        """The stem, layer1..3 and ``adapter_mid`` are ``mid``, layer4 and ``adapter_high``
        are ``high``, the classifier is ``head``."""
        return self._module_stage(name, {**dict.fromkeys(_MID_MODULES, "mid"),
                                         "layer4": "high", "adapter_high": "high",
                                         "head": "head"})

    def _layer3(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``mid`` from layer3 (through its adapter), ``high`` from layer4 (through its)."""
        l3 = self._layer3(x)
        high = self.adapter_high(self.layer4(l3))
        return {"mid": self.adapter_mid(l3), "high": high}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; skips the mid-level side branch, which only the losses use."""
        return self.forward_head(self.adapter_high(self.layer4(self._layer3(x))))


def _builder(arch: str) -> Callable[..., TdsaResNet]:
    def build(
        num_classes: int,
        *,
        xi: tuple[int, int] = DEFAULT_XI,
        adapter: str = "conv1x1",
        head: str = "gap",
        input_size: int | tuple[int, int] = 448,
        replace_stride_with_dilation: Sequence[bool] | None = None,
    ) -> TdsaResNet:
        return TdsaResNet(
            arch,
            num_classes,
            xi,
            adapter=adapter,
            head=head,
            input_size=input_size,
            replace_stride_with_dilation=replace_stride_with_dilation,
        )

    build.__name__ = build.__qualname__ = f"tdsa_{arch}"
    build.__doc__ = (
        f"TDSA on a torchvision {arch}: mid = layer3, high = layer4, ``adapter`` "
        "'conv1x1' (default, keeps ImageNet weights) or 'widen'; ``head`` 'gap' (default) "
        "or 'flatten' (sized from ``input_size``, default 448)."
    )
    return register_model(build)


tdsa_resnet18 = _builder("resnet18")
tdsa_resnet34 = _builder("resnet34")
tdsa_resnet50 = _builder("resnet50")
tdsa_resnet101 = _builder("resnet101")
