"""The common interface of every tdsa network: two feature taps and a classifier head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tdsa.errors import ConfigError
from tdsa.validation import check_positive_int, check_positive_ints, check_xi

__all__ = ["HEADS", "PARAM_STAGES", "TdsaNet", "adapter_1x1", "check_classes_xi", "init_conv_bn",
           "parse_input_size"]

HEADS = ("flatten", "gap")
PARAM_STAGES = ("mid", "high", "head")
"""The stages a network's parameters split into (:meth:`TdsaNet.stage_parameters`)."""


def check_classes_xi(num_classes: Any, xi: Any) -> tuple[int, tuple[int, int]]:
    """Validate ``num_classes`` (int >= 1) and ``xi`` (two ints >= 1); return them normalised.
    """
    num_classes = check_positive_int("num_classes", num_classes)
    xi_mid, xi_high = check_xi(xi)
    return num_classes, (xi_mid, xi_high)


def parse_input_size(input_size: Any) -> tuple[int, int]:
    """``224`` or ``(h, w)`` -> ``(h, w)``; anything else is a ConfigError.
    """
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        size = check_positive_int("input_size", input_size)
        return size, size
    height, width = check_positive_ints("input_size", input_size, 2, "(height, width)")
    return height, width


def init_conv_bn(module: nn.Module) -> None:
    """He-normal (fan-out) convolutions with zero bias, BatchNorm at weight 1 and bias 0.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def adapter_1x1(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 1x1 conv (no bias) + BN + ReLU: the side adapter that turns a trunk's features into
    ``out_channels`` class-coded channels (ResNet ``adapter="conv1x1"``, VGG ``stages="side"``).
    """
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class TdsaNet(nn.Module):
    """Base class: ``forward_features(x) -> {"mid", "high"}``, ``forward_head(high)``.

    ``mid`` has ``num_classes * xi[0]`` channels and ``high`` ``num_classes * xi[1]``;
    both are post-ReLU, class ``k`` owning the contiguous channels ``k*xi .. k*xi+xi-1``.
    ``default_cfg`` holds ``input_size`` (3, h, w), ``mean``, ``std`` (the normalisation its
    weights expect, from :mod:`tdsa.data.spec`), ``mid_stride``, ``high_stride``,
    ``architecture`` and ``torchvision_weights``.
    """

    num_classes: int
    xi: tuple[int, int]
    default_cfg: dict[str, Any]
    head: nn.Module

    def feature_hw(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Spatial sizes ``((hm, wm), (hh, wh))`` of the two taps for an input ``height x width``.
        """
        raise NotImplementedError

    def feature_shapes(self, input_size: int | tuple[int, int]) -> dict[str, tuple[int, int, int]]:
        """Shapes ``(C, H, W)`` of ``mid`` and ``high`` for an input size (int or (h, w)).
        """
        mid_hw, high_hw = self.feature_hw(*parse_input_size(input_size))
        c = self.num_classes
        return {"mid": (c * self.xi[0], *mid_hw), "high": (c * self.xi[1], *high_hw)}

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear ConfigError if ``x`` is not ``[B, 3, H, W]`` with H, W large enough.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ConfigError(
                f"{self.default_cfg['architecture']}: expected images [B, 3, H, W], "
                f"got a tensor of shape {list(x.shape)}"
            )
        _, high_hw = self.feature_hw(x.shape[2], x.shape[3])
        if min(high_hw) < 1:
            raise ConfigError(
                f"{self.default_cfg['architecture']}: input {x.shape[2]}x{x.shape[3]} is too "
                f"small: the high-level map would be {high_hw[0]}x{high_hw[1]} "
                f"(stride {self.default_cfg['high_stride']})"
            )

    def parameter_stage(self, name: str) -> str:
        """The stage of parameter ``name`` (as :meth:`named_parameters` calls it), one of
        :data:`PARAM_STAGES`: ``mid`` (the trunk up to and including the mid tap), ``high``
        (the trunk after the mid tap up to the high tap) or ``head`` (the classifier)."""
        raise NotImplementedError

    @staticmethod
    def _module_stage(name: str, stages: dict[str, str]) -> str:
        """The stage of parameter ``name`` by its top-level module, from ``stages``."""
        top = name.partition(".")[0]
        if top not in stages:
            raise ValueError(f"parameter {name!r} is in no stage: the stages' modules are "
                             f"{', '.join(stages)}")
        return stages[top]

    def stage_parameters(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """The named parameters of each stage of :data:`PARAM_STAGES`, in that order (see
        :meth:`parameter_stage`); every parameter is in exactly one stage."""
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {s: [] for s in PARAM_STAGES}
        for name, param in self.named_parameters():
            groups[self.parameter_stage(name)].append((name, param))
        return groups

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two taps ``{"mid": [B, c*xi_mid, Hm, Wm], "high": [B, c*xi_high, Hh, Wh]}``.

        Book: chapter 3, *High-to-mid nesting on real maps*.
        """
        raise NotImplementedError

    def forward_head(self, high: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` from the high-level features (the inference path).

        Book: chapter 7, *The reference recipe*.
        """
        return self.head(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for images ``x``.
        """
        return self.forward_head(self.forward_features(x)["high"])
