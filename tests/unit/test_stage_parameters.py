"""``TdsaNet.stage_parameters``: each parameter in one stage, split where the taps are."""

from __future__ import annotations

import pytest
import torch

from tdsa.models import create_model
from tdsa.models.base import PARAM_STAGES


@pytest.mark.parametrize(("name", "options", "last_mid", "first_high"), [
    ("tdsa_vgg16", {"width": 0.25}, "features.31.bias", "features.34.weight"),
    ("tdsa_vgg16", {"width": 0.25, "stages": "side"}, "adapter_mid.1.bias",
     "features.34.weight"),
    ("tdsa_resnet18", {}, "adapter_mid.1.bias", "layer4.0.conv1.weight"),
    ("tdsa_resnet18", {"adapter": "widen"}, "layer3.1.body.4.bias", "layer4.0.body.0.weight"),
])
def test_every_parameter_is_in_one_stage(name: str, options: dict, last_mid: str,
                                         first_high: str) -> None:
    net = create_model(name, 4, input_size=64, **options)
    groups = net.stage_parameters()
    assert list(groups) == list(PARAM_STAGES)
    names = [n for stage in groups.values() for n, _ in stage]
    assert sorted(names) == sorted(n for n, _ in net.named_parameters())
    assert groups["mid"][-1][0] == last_mid and groups["high"][0][0] == first_high
    assert all(n.startswith("head.") for n, _ in groups["head"]) and groups["head"]
    assert not any(n.startswith("head.") for n, _ in groups["mid"] + groups["high"])
    # The mid tap depends on the mid stage only: no high parameter gets a gradient from it.
    net.forward_features(torch.rand(2, 3, 64, 64))["mid"].sum().backward()
    assert all(p.grad is None or not p.grad.any() for _, p in net.stage_parameters()["high"])
    assert all(p.grad is None for _, p in net.stage_parameters()["head"])


def test_a_parameter_outside_every_stage_is_named() -> None:
    net = create_model("tdsa_resnet18", 4)
    net.register_parameter("extra", torch.nn.Parameter(torch.zeros(1)))
    with pytest.raises(ValueError, match="'extra' is in no stage"):
        net.stage_parameters()
