"""GPU paths that the CPU tests only cover through CPU equivalents: the loss under bf16 and fp16
autocast against the float64 CPU reference, channels_last, ``torch.compile``, and an AMP
training that stops after epoch 1 and resumes bit-exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tdsa.config import Config, apply_overrides
from tdsa.engine.precision import resolve_precision
from tdsa.engine.trainer import train
from tdsa.losses import TDSALoss, random_channel_mask
from tdsa.models import create_model

DEV = torch.device("cuda")
# Tolerances against the fp64 reference, whose inputs are the same values rounded to the
# autocast dtype: relative error of each loss term, and ||grad - ref|| / ||ref|| of each input's
# gradient (a norm, not elementwise: the channel max routes a tie's gradient to either channel;
# measured with CPU autocast: 0.038 bf16 / 0.007 fp16 for mid, terms within 1e-5).
TOL = {"bf16": 2e-2, "fp16": 5e-3}
GRAD_TOL = {"bf16": 0.08, "fp16": 0.02}


def _inputs(dtype: torch.dtype, k: int = 20, b: int = 4):
    gen = torch.Generator().manual_seed(0)
    mid = torch.relu(torch.randn(b, k * 9, 28, 28, generator=gen)).to(dtype)
    high = torch.relu(torch.randn(b, k * 3, 14, 14, generator=gen)).to(dtype)
    logits = torch.randn(b, k, generator=gen).to(dtype)
    targets = torch.randint(0, k, (b,), generator=gen)
    masks = {
        "mid": random_channel_mask(k, 9, generator=gen),
        "high": random_channel_mask(k, 3, generator=gen),
    }
    return logits, mid, high, targets, masks


def _loss_and_grads(device, autocast_dtype, logits, mid, high, targets, masks, ref: bool):
    crit = TDSALoss(logits.shape[1])
    leaves = [t.detach().to(device, torch.float64 if ref else t.dtype).requires_grad_()
              for t in (logits, mid, high)]
    ctx = (torch.autocast("cuda", dtype=autocast_dtype) if autocast_dtype is not None
           else torch.autocast("cpu", enabled=False))
    with ctx:
        out = crit(*leaves, targets.to(device), {k: m.to(device) for k, m in masks.items()})
    out["total"].backward()
    terms = {k: float(v.detach()) for k, v in out.items()}
    return terms, [t.grad.double().cpu() for t in leaves]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_loss_under_cuda_autocast_matches_the_fp64_cpu_reference(amp: str) -> None:
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    args = _inputs(dtype)
    ref_terms, ref_grads = _loss_and_grads("cpu", None, *args, ref=True)
    terms, grads = _loss_and_grads(DEV, dtype, *args, ref=False)
    for key, want in ref_terms.items():
        assert terms[key] == pytest.approx(want, rel=TOL[amp], abs=1e-4), key
    for name, got, want in zip(("logits", "mid", "high"), grads, ref_grads, strict=True):
        assert ((got - want).norm() / want.norm()).item() <= GRAD_TOL[amp], name


@pytest.fixture
def no_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    """fp32 convolutions and matmuls in full fp32 (cuDNN allows TF32 by default)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def _net(**kw):
    torch.manual_seed(0)
    return create_model("tdsa_vgg16", 12, input_size=112, width=0.25, **kw).to(DEV)


def test_channels_last_gives_the_same_features_and_gradients(no_tf32) -> None:
    x = torch.randn(4, 3, 112, 112, device=DEV)
    outs = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        net = _net().to(memory_format=fmt)
        feats = net.forward_features(x.contiguous(memory_format=fmt))
        (feats["mid"].square().mean() + net.forward_head(feats["high"]).sum()).backward()
        outs.append((feats["mid"].detach(), feats["high"].detach(),
                     next(net.parameters()).grad.detach()))
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a.contiguous(), b.contiguous(), atol=1e-3, rtol=1e-3)


def test_torch_compile_matches_eager_on_cuda(no_tf32) -> None:
    from tdsa.engine.trainer import _Taps

    net = _net()
    x = torch.randn(4, 3, 112, 112, device=DEV)
    eager = _Taps(net)(x)
    compiled = torch.compile(_Taps(net))(x)
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def _config(root: Path, *extra: str) -> Config:
    return apply_overrides(Config(), [
        "data.dataset=synthetic", f"data.root={root}", "data.image_size=32", "data.workers=0",
        "model.options={width: 0.25}", "optim.name=sgd", "optim.lr=0.05", "train.epochs=2",
        "train.batch_size=8", "train.amp=auto", "train.channels_last=auto",
        "runtime.device=cuda", "runtime.deterministic=true", "runtime.progress=false",
        "loss.alpha_mid=0.15", "loss.beta_mid=1.5", "loss.alpha_high=0.15",
        "loss.beta_high=1.5", *extra,
    ])


def test_amp_training_stops_after_epoch_1_and_resumes_bit_exactly(
    tiny_cuda_root: Path, tmp_path: Path
) -> None:
    cfg = _config(tiny_cuda_root)
    label = resolve_precision(DEV, "auto", "auto").label
    straight = train(cfg, tmp_path / "straight")
    first = train(cfg, tmp_path / "resumed", overrides=["runtime.stop_after_epoch=1"])
    assert first["stopped"] == "stop_after_epoch" and first["epochs_completed"] == 1
    resumed = train(cfg, tmp_path / "resumed")
    assert resumed["resumed_from"].endswith("last.pt")
    assert straight["precision"] == resumed["precision"] == label
    a = torch.load(tmp_path / "straight/last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed/last.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["scaler"] == b["scaler"]
    assert straight["final_top1"] == resumed["final_top1"]
