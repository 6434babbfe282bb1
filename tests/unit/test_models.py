"""Tests of tdsa.models: shapes, the published layer list, taps, heads, weight loading."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from tdsa.config import Config
from tdsa.errors import CheckpointError, ConfigError
from tdsa.models import (
    TdsaVGG,
    create_model,
    create_model_from_config,
    list_models,
    register_model,
    registry,
    vgg_layer_list,
)
from tdsa.models.resnet import WideBlock

C = 5
XI = (9, 3)
IMAGENET_MEAN = (0.485, 0.456, 0.406)


def out_len(n: int, kernel: int, stride: int, pad: int) -> int:
    """PyTorch's output length of a conv/pool window (floor mode)."""
    return (n + 2 * pad - kernel) // stride + 1


def reference_hw(name: str, n: int, dilated_layer4: bool = False) -> tuple[int, int]:
    """(mid, high) side lengths for an n x n input, from the layer windows."""
    if name == "tdsa_vgg16":
        mid = out_len(out_len(out_len(n, 2, 2, 0), 2, 2, 0), 2, 2, 0)
        return mid, out_len(mid, 2, 2, 0)
    x = out_len(out_len(n, 7, 2, 3), 3, 2, 1)  # conv1, maxpool
    mid = out_len(out_len(x, 3, 2, 1), 3, 2, 1)  # layer2, layer3
    return mid, mid if dilated_layer4 else out_len(mid, 3, 2, 1)


def model_cases() -> list[tuple[str, dict]]:
    cases: list[tuple[str, dict]] = []
    for name in list_models():
        if name == "tdsa_vgg16":
            cases += [(name, {"width": 0.25}), (name, {"head": "gap", "width": 0.5})]
        else:
            cases += [(name, {"adapter": "conv1x1"}), (name, {"adapter": "widen"})]
    return [*cases, ("tdsa_resnet18", {"head": "flatten"})]


CASES = model_cases()
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CASES]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def vgg200() -> nn.Module:
    torch.manual_seed(0)
    return create_model("tdsa_vgg16", num_classes=200).eval()


def randomise_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics, so that a wrong load cannot pass by accident."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def test_list_models_has_the_contract_names() -> None:
    assert set(list_models()) >= {
        "tdsa_vgg16",
        "tdsa_resnet18",
        "tdsa_resnet34",
        "tdsa_resnet50",
        "tdsa_resnet101",
    }


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_shapes_at_two_sizes_and_forward_is_head_of_features(name: str, kw: dict) -> None:
    for size in (64, 96):
        model = create_model(name, C, xi=XI, input_size=size, **kw).eval()
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            feats = model.forward_features(x)
            logits = model(x)
            via_head = model.forward_head(feats["high"])
        mid_n, high_n = reference_hw(name, size)
        assert feats["mid"].shape == (2, C * XI[0], mid_n, mid_n)
        assert feats["high"].shape == (2, C * XI[1], high_n, high_n)
        assert logits.shape == (2, C)
        assert feats["mid"].min() >= 0 and feats["high"].min() >= 0  # post-ReLU taps
        torch.testing.assert_close(logits, via_head, rtol=0, atol=0)
        assert model.feature_shapes(size) == {
            "mid": (C * XI[0], mid_n, mid_n),
            "high": (C * XI[1], high_n, high_n),
        }
        assert model.num_classes == C and model.xi == XI
        cfg = model.default_cfg
        assert cfg["input_size"] == (3, size, size)
        assert size // cfg["mid_stride"] == mid_n and size // cfg["high_stride"] == high_n
        assert len(cfg["mean"]) == 3 and len(cfg["std"]) == 3


def test_published_network_at_224(vgg200: nn.Module) -> None:
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats = vgg200.forward_features(x)
        logits = vgg200(x)
    assert feats["mid"].shape == (1, 1800, 28, 28)
    assert feats["high"].shape == (1, 600, 14, 14)
    assert logits.shape == (1, 200)
    assert vgg200.default_cfg["input_size"] == (3, 224, 224)
    assert (vgg200.default_cfg["mid_stride"], vgg200.default_cfg["high_stride"]) == (8, 16)


def test_vgg_layer_list_is_the_published_one(vgg200: nn.Module) -> None:
    published = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 1800, "M"]
    published += [512, 512, 600]
    assert vgg_layer_list(200, (9, 3)) == published
    seen: list[int | str] = []
    mods = list(vgg200.features)
    for i, m in enumerate(mods):
        if isinstance(m, nn.MaxPool2d):
            seen.append("M")
        elif isinstance(m, nn.Conv2d):
            assert (m.kernel_size, m.padding, m.stride) == ((3, 3), (1, 1), (1, 1))
            assert isinstance(mods[i + 1], nn.BatchNorm2d)
            assert isinstance(mods[i + 2], nn.ReLU)
            seen.append(m.out_channels)
    assert seen == published  # 13 convs, 4 pools, no pool 5
    assert sum(isinstance(s, int) for s in seen) == 13
    assert isinstance(mods[-1], nn.ReLU)
    head = vgg200.head
    assert head.bn0.num_features == 600 * 7 * 7
    assert (head.fc1.in_features, head.fc1.out_features) == (600 * 7 * 7, 512)
    assert isinstance(head.act, nn.ELU) and head.fc2.out_features == 200
    quarter = vgg_layer_list(200, (9, 3), width=0.25)
    assert [v for v in quarter if v != "M"] == [
        16,
        16,
        32,
        32,
        64,
        64,
        64,
        128,
        128,
        1800,
        128,
        128,
        600,
    ]
    assert vgg_layer_list(7, (4, 2))[12] == 28 and vgg_layer_list(7, (4, 2))[-1] == 14


def slow_vgg(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The published network written out with functional ops (eval-mode BN)."""
    feats = {}
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    plan = vgg_layer_list(model.num_classes, model.xi, width=0.25)
    ci = 0
    for v in plan:
        if v == "M":
            x = F.max_pool2d(x, 2)
            continue
        conv, bn = convs[ci], bns[ci]
        x = F.conv2d(x, conv.weight, conv.bias, padding=1)
        x = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        x = torch.clamp(x, min=0)
        ci += 1
        if ci == 10:
            feats["mid"] = x
    feats["high"] = x
    h = model.head
    z = F.max_pool2d(x, 2).reshape(x.shape[0], -1)
    z = F.batch_norm(z, h.bn0.running_mean, h.bn0.running_var, h.bn0.weight, h.bn0.bias)
    z = F.linear(z, h.fc1.weight, h.fc1.bias)
    z = F.batch_norm(z, h.bn1.running_mean, h.bn1.running_var, h.bn1.weight, h.bn1.bias)
    z = torch.where(z > 0, z, torch.exp(z) - 1)
    feats["logits"] = F.linear(z, h.fc2.weight, h.fc2.bias)
    return feats


def test_vgg_taps_and_head_match_a_functional_reference() -> None:
    model = create_model("tdsa_vgg16", C, width=0.25, input_size=(64, 80)).eval()
    randomise_bn(model)
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
        ref = slow_vgg(model, x)
    assert feats["mid"].shape == (2, 45, 8, 10) and feats["high"].shape == (2, 15, 4, 5)
    torch.testing.assert_close(feats["mid"], ref["mid"])
    torch.testing.assert_close(feats["high"], ref["high"])
    torch.testing.assert_close(logits, ref["logits"])


def test_vgg_side_stages_keep_the_plain_trunk_and_branch_the_mid_tap() -> None:
    model = create_model("tdsa_vgg16", C, width=0.25, input_size=64, stages="side").eval()
    randomise_bn(model)
    convs = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    assert convs == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]
    x = torch.randn(2, 3, 64, 64)

    def adapter(seq: nn.Module, z: torch.Tensor) -> torch.Tensor:
        conv, bn = seq[0], seq[1]
        z = F.conv2d(z, conv.weight)
        z = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0,
                         bn.eps)
        return torch.clamp(z, min=0)

    with torch.no_grad():
        trunk = []
        z = x
        for layer in model.features:
            z = layer(z)
            trunk.append(z)
        feats = model.forward_features(x)
        ref_mid = adapter(model.adapter_mid, trunk[model.mid_index])
        ref_high = adapter(model.adapter_high, z)
        assert feats["mid"].shape == (2, C * 9, 8, 8) and feats["high"].shape == (2, C * 3, 4, 4)
        torch.testing.assert_close(feats["mid"], ref_mid)
        torch.testing.assert_close(feats["high"], ref_high)
        # a side branch: the mid adapter does not feed the high tap
        model.adapter_mid[0].weight.mul_(-3.0)
        torch.testing.assert_close(model.forward_features(x)["high"], feats["high"])
    with pytest.raises(ValueError, match=r"stages='x' is invalid: expected one of serial, side$"):
        create_model("tdsa_vgg16", C, width=0.25, input_size=64, stages="x")


def test_widened_resnet_stages_emit_exactly_c_xi_channels() -> None:
    model = create_model("tdsa_resnet50", 7, xi=(5, 2), adapter="widen", input_size=64)
    assert len(model.layer3) == 6 and len(model.layer4) == 3
    assert isinstance(model.adapter_mid, nn.Identity)
    for block in model.layer3:
        assert block.body[-1].num_features == 35  # 7 * 5, not a multiple of 4
    for block in model.layer4:
        assert block.body[-1].num_features == 14
    # The authors' MC-Loss advice: 200 classes x 3 -> planes 150, 600 outputs.
    block = WideBlock(1800, 600, 2, bottleneck=True)
    widths = [m.out_channels for m in block.body if isinstance(m, nn.Conv2d)]
    assert widths == [150, 150, 600]
    assert block.body[3].stride == (2, 2) and block.shortcut[0].stride == (2, 2)
    basic = create_model("tdsa_resnet18", 3, xi=(3, 1), adapter="widen", input_size=64)
    assert [b.body[-1].num_features for b in basic.layer4] == [3, 3]


def test_every_parameter_gets_a_gradient_in_training() -> None:
    for name, kw in [("tdsa_vgg16", {"width": 0.25}), ("tdsa_resnet18", {})]:
        model = create_model(name, C, input_size=64, **kw).train()
        feats = model.forward_features(torch.randn(2, 3, 64, 64))
        loss = model.forward_head(feats["high"]).sum() + feats["mid"].mean()
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert missing == [], name


def test_resnet_odd_and_non_square_sizes_round_up() -> None:
    model = create_model("tdsa_resnet18", C, head="flatten", input_size=(80, 72)).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 80, 72))
        logits = model(torch.randn(1, 3, 80, 72))
    (mh, hh), (mw, hw) = reference_hw("tdsa_resnet18", 80), reference_hw("tdsa_resnet18", 72)
    assert (mh, hh, mw, hw) == (5, 3, 5, 3)
    assert feats["mid"].shape[2:] == (mh, mw) and feats["high"].shape[2:] == (hh, hw)
    assert model.feature_shapes((80, 72))["high"] == (C * XI[1], hh, hw)
    assert logits.shape == (1, C)


def test_resnet_dilation_keeps_layer4_resolution() -> None:
    model = create_model(
        "tdsa_resnet50", C, input_size=64, replace_stride_with_dilation=(False, False, True)
    ).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 64, 64))
    mid_n, high_n = reference_hw("tdsa_resnet50", 64, dilated_layer4=True)
    assert feats["mid"].shape[-1] == mid_n == feats["high"].shape[-1] == high_n
    assert model.default_cfg["high_stride"] == 16
    with pytest.raises(ConfigError, match="bottleneck"):
        create_model("tdsa_resnet18", C, replace_stride_with_dilation=(False, False, True))
    with pytest.raises(ConfigError, match="conv1x1"):
        create_model(
            "tdsa_resnet50", C, adapter="widen", replace_stride_with_dilation=(False, True, True)
        )


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="tdsa_vgg") as info:
        create_model("vgg_tdsa", C)
    for name in list_models():
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"widht": 0.5}, "widht"),
        ({"head": "mlp"}, "head must be one of flatten, gap"),
        ({"width": 0}, "width"),
        ({"xi": (9,)}, "xi"),
        ({"input_size": (64, 64, 3)}, "input_size"),
        ({"input_size": 16}, "too small for the flatten head"),
    ],
)
def test_bad_options_give_a_clear_config_error(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_model("tdsa_vgg16", C, **kw)


def test_bad_resnet_options() -> None:
    with pytest.raises(ConfigError,
                       match=r"adapter='wide' is invalid: expected one of conv1x1, widen$"):
        create_model("tdsa_resnet18", C, adapter="wide")
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("tdsa_resnet18", 0)


def test_create_model_from_config_is_create_model_with_the_configs_model() -> None:
    cfg = Config()
    cfg.model.name, cfg.model.xi, cfg.model.options = "tdsa_vgg16", [4, 2], {"width": 0.25}
    cfg.data.image_size = 64
    torch.manual_seed(0)
    built = create_model_from_config(cfg, C)
    torch.manual_seed(0)
    direct = create_model("tdsa_vgg16", C, xi=(4, 2), width=0.25, input_size=64)
    assert built.xi == (4, 2) and built.default_cfg["input_size"] == (3, 64, 64)
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(),
                                                 direct.state_dict().values(), strict=True))
    cfg.model.options["input_size"] = 96  # an explicit option wins over data.image_size
    cfg.model.num_classes = 3
    assert create_model_from_config(cfg).default_cfg["input_size"] == (3, 96, 96)
    assert create_model_from_config(cfg).num_classes == 3
    cfg.model.num_classes = None
    with pytest.raises(ConfigError, match=r"model\.num_classes is not set"):
        create_model_from_config(cfg)

def test_wrong_input_sizes_give_a_clear_error() -> None:
    model = create_model("tdsa_vgg16", C, width=0.25, input_size=64).eval()
    with pytest.raises(ConfigError, match=r"input_size 64x64.*\[15, 6, 6\]"):
        model(torch.randn(1, 3, 96, 96))
    gap = create_model("tdsa_vgg16", C, width=0.25, head="gap").eval()
    with pytest.raises(ConfigError, match="input 8x8 is too small"):
        gap(torch.randn(1, 3, 8, 8))
    with pytest.raises(ConfigError, match=r"\[B, 3, H, W\]"):
        gap(torch.randn(1, 1, 64, 64))


@pytest.mark.parametrize(
    ("name", "kw"),
    [("tdsa_vgg16", {"width": 0.25}), ("tdsa_resnet50", {"adapter": "widen", "head": "flatten"})],
)
def test_channels_last_gives_the_same_output(name: str, kw: dict) -> None:
    model = create_model(name, C, input_size=64, **kw).eval()
    randomise_bn(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        ref_mid = model.forward_features(x)["mid"]
        model = model.to(memory_format=torch.channels_last)
        xl = x.contiguous(memory_format=torch.channels_last)
        out = model(xl)
        mid = model.forward_features(xl)["mid"]
    # Different kernels, different float summation order: equal up to float32 rounding.
    for got, want in ((out, ref), (mid, ref_mid)):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4 * want.abs().max().item())


def test_bf16_autocast_on_cpu_runs() -> None:
    model = create_model("tdsa_vgg16", C, width=0.25, input_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            feats = model.forward_features(x)
            out = model.forward_head(feats["high"])
    assert feats["mid"].dtype == torch.bfloat16 and out.shape == (2, C)
    assert torch.isfinite(out.float()).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05


def test_tdsa_state_dict_round_trips(tmp_path) -> None:
    kw = {"adapter": "widen", "input_size": 64, "head": "flatten"}
    src = create_model("tdsa_resnet18", C, **kw).eval()
    randomise_bn(src)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = src(x)
    plain, ckpt = tmp_path / "model.pt", tmp_path / "best.pt"
    torch.save(src.state_dict(), plain)
    torch.save({"model": src.state_dict(), "epoch": 3, "version": "0.1.0"}, ckpt)
    for path in (plain, str(ckpt)):
        dst = create_model("tdsa_resnet18", C, pretrained=path, **kw).eval()
        with torch.no_grad():
            torch.testing.assert_close(dst(x), ref, rtol=0, atol=0)
        assert dst.pretrained_report.kind == "tdsa"
        assert dst.pretrained_report.not_loaded == []
    with pytest.raises(CheckpointError, match=r"model\.pt.*num_classes=6.*shape mismatch"):
        create_model("tdsa_resnet18", C + 1, pretrained=plain, **kw)


def test_torchvision_resnet_trunk_loads_by_name(tmp_path) -> None:
    tv = torchvision.models.resnet18().eval()
    randomise_bn(tv)
    path = tmp_path / "resnet18.pth"
    torch.save(tv.state_dict(), path)
    model = create_model("tdsa_resnet18", C, pretrained=path).eval()
    report = model.pretrained_report
    assert report.kind == "torchvision"
    assert report.skipped == {"fc.weight": "not in the model", "fc.bias": "not in the model"}
    assert all(k.startswith(("adapter_", "head.")) for k in report.not_loaded)
    assert model.default_cfg["mean"] == IMAGENET_MEAN
    taps: dict[str, torch.Tensor] = {}
    tv.layer3.register_forward_hook(lambda m, i, o: taps.__setitem__("l3", o))
    tv.layer4.register_forward_hook(lambda m, i, o: taps.__setitem__("l4", o))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tv(x)
        feats = model.forward_features(x)
    for key, tap in (("mid", "l3"), ("high", "l4")):
        conv, bn = getattr(model, f"adapter_{key}")[:2]
        ref = F.relu(
            F.batch_norm(
                F.conv2d(taps[tap], conv.weight),
                bn.running_mean,
                bn.running_var,
                bn.weight,
                bn.bias,
                False,
                0.0,
                bn.eps,
            )
        )
        torch.testing.assert_close(feats[key], ref)


def test_torchvision_vgg_features_load_and_mismatches_are_reported(tmp_path) -> None:
    vgg = torchvision.models.vgg
    tv_features = vgg.make_layers(vgg.cfgs["D"], batch_norm=True).eval()
    randomise_bn(tv_features)
    path = tmp_path / "vgg16_bn.pth"
    torch.save({f"features.{k}": v for k, v in tv_features.state_dict().items()}, path)
    model = create_model("tdsa_vgg16", C, input_size=64, pretrained=path).eval()
    report = model.pretrained_report
    # conv4_3 (30) + its BN (31) are 9c wide, conv5_1 (34) reads 9c channels, conv5_3 (40) +
    # its BN (41) are 3c wide: those modules are skipped whole; everything else loads.
    assert {k.rpartition(".")[0] for k in report.skipped} == {
        "features.30",
        "features.31",
        "features.34",
        "features.40",
        "features.41",
    }
    assert "features.0.weight" in report.loaded and "features.35.weight" in report.loaded
    assert "features.30.weight (module shape mismatch" in report.summary()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.features[:30](x), tv_features[:30](x))
    with pytest.raises(CheckpointError, match=r"no tensor in .*vgg16_bn\.pth fits tdsa_vgg16"):
        create_model("tdsa_vgg16", C, width=0.5, input_size=64, pretrained=path)


def test_pretrained_true_uses_torchvision_weights(monkeypatch) -> None:
    urls: list[str] = []
    tv_state = torchvision.models.resnet18().state_dict()

    def fake_download(url: str, *args, **kwargs) -> dict:
        urls.append(url)
        return tv_state

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", fake_download)
    model = create_model("tdsa_resnet18", C, pretrained=True)
    assert urls == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url]
    assert torch.equal(model.conv1.weight, tv_state["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, tv_state["layer4.1.bn2.running_var"])
    assert model.pretrained_report.source == "ResNet18_Weights.IMAGENET1K_V1"


def test_pretrained_true_offline_says_to_pass_a_path(monkeypatch) -> None:
    urls: list[str] = []

    def offline(url: str, *args, **kwargs) -> dict:
        urls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(CheckpointError, match=r"VGG16_BN_Weights\.IMAGENET1K_V1.*pretrained=PATH"):
        create_model("tdsa_vgg16", C, width=0.25, input_size=64, pretrained=True)
    assert urls == [torchvision.models.VGG16_BN_Weights.IMAGENET1K_V1.url]


def test_missing_or_unreadable_weights_file(tmp_path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=r"not found: .*nope\.pt"):
        create_model("tdsa_resnet18", C, pretrained=missing)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"cannot read .*junk\.pt"):
        create_model("tdsa_resnet18", C, pretrained=junk)
    with pytest.raises(ConfigError, match="pretrained must be"):
        create_model("tdsa_resnet18", C, pretrained=1.0)


def test_register_model_adds_a_builder(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model
    def tiny_vgg(num_classes: int, *, xi: tuple[int, int] = (9, 3), input_size: int = 64):
        model = TdsaVGG(num_classes, xi, width=0.125, input_size=input_size)
        del model.default_cfg["torchvision_weights"]
        return model

    assert "tiny_vgg" in list_models()
    model = create_model("tiny_vgg", 3, xi=(2, 1))
    assert model.forward_features(torch.randn(1, 3, 64, 64))["mid"].shape == (1, 6, 8, 8)
    with pytest.raises(ValueError, match="already registered"):
        register_model(tiny_vgg)
    with pytest.raises(ConfigError, match="tdsa_vgg16 has no torchvision weights"):
        create_model("tiny_vgg", 3, pretrained=True)
    with pytest.raises(ConfigError, match="accepts: input_size"):
        create_model("tiny_vgg", 3, width=1.0)
