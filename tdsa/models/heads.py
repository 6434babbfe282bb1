"""Classifier heads on the high-level features: the published flatten head and GAP."""

from __future__ import annotations

import torch
from torch import nn

from tdsa.errors import ConfigError
from tdsa.models.base import HEADS


class FlattenHead(nn.Module):
    """The published classifier: MaxPool 2 -> flatten -> BN -> FC ``hidden`` -> BN -> ELU -> FC.

    Sized for high-level features of shape ``(channels, *high_hw)``; other shapes raise a
    ConfigError that names the expected shape and the ``input_size`` it came from.
    """

    def __init__(
        self,
        channels: int,
        high_hw: tuple[int, int],
        num_classes: int,
        *,
        input_size: tuple[int, int],
        hidden: int = 512,
    ) -> None:
        super().__init__()
        pooled = (high_hw[0] // 2, high_hw[1] // 2)
        if min(pooled) < 1:
            raise ConfigError(
                f"input_size {input_size[0]}x{input_size[1]} is too small for the flatten "
                f"head: the high-level map is {high_hw[0]}x{high_hw[1]} and needs at least "
                "2x2 before its 2x2 max-pool; use a larger input_size or head='gap'"
            )
        self.expected = (channels, *high_hw)
        self.input_size = input_size
        in_features = channels * pooled[0] * pooled[1]
        self.pool = nn.MaxPool2d(2)
        self.bn0 = nn.BatchNorm1d(in_features)
        self.fc1 = nn.Linear(in_features, hidden)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.act = nn.ELU(inplace=True)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, high: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]``."""
        if tuple(high.shape[1:]) != self.expected:
            h, w = self.input_size
            raise ConfigError(
                f"the flatten head was built for high-level features {list(self.expected)} "
                f"(input_size {h}x{w}) but got {list(high.shape[1:])}: create the model "
                "with input_size=<your image size> or head='gap'"
            )
        x = torch.flatten(self.pool(high), 1)
        return self.fc2(self.act(self.bn1(self.fc1(self.bn0(x)))))


class GapHead(nn.Module):
    """Global average pooling + one linear layer (any input size; the ResNet default).
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, high: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]``."""
        return self.fc(torch.flatten(self.pool(high), 1))


def build_head(
    kind: str,
    channels: int,
    high_hw: tuple[int, int],
    num_classes: int,
    input_size: tuple[int, int],
) -> nn.Module:
    """``"flatten"`` (published) or ``"gap"``; anything else is a ConfigError.
    """
    if kind == "flatten":
        return FlattenHead(channels, high_hw, num_classes, input_size=input_size)
    if kind == "gap":
        return GapHead(channels, num_classes)
    raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {kind!r}")
