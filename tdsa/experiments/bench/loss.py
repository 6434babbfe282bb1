"""The loss benchmark: the loss head alone against a whole TDSA training step."""

from __future__ import annotations

from typing import Any

import torch

from tdsa.engine.precision import Precision, autocast
from tdsa.experiments.bench.arms import StepArm, model_and_batch
from tdsa.experiments.bench.timing import profile_ops, time_interleaved
from tdsa.losses import TDSALoss


def bench_loss(
    device: torch.device,
    precision: Precision,
    *,
    num_classes: int,
    size: int,
    batch: int,
    warmup: int,
    repeats: int,
) -> dict[str, Any]:
    """The loss head alone (gate + both channel-constraint stages + CE, forward + backward) vs a
    full ``tdsa_vgg16`` TDSA training step on the same shapes, both in ``precision``."""
    model, x, y = model_and_batch("tdsa_vgg16", num_classes, size, batch, device, precision)
    with torch.no_grad(), autocast(device, precision.amp):
        feats = model.forward_features(x)
        logits = model.forward_head(feats["high"])
    mid0, high0, logits0 = feats["mid"].detach(), feats["high"].detach(), logits.detach()
    criterion = TDSALoss(num_classes)
    generator = torch.Generator(device=device).manual_seed(0)

    def head() -> None:
        mid = mid0.clone().requires_grad_()
        high = high0.clone().requires_grad_()
        lg = logits0.clone().requires_grad_()
        with autocast(device, precision.amp):
            out = criterion(lg, mid, high, y, generator=generator)
        out["total"].backward()

    step = StepArm(model, "tdsa", x, y, precision)
    ms = time_interleaved({"head": head, "step": step}, device, warmup=warmup, repeats=repeats)
    return {
        "shapes": {"mid": list(mid0.shape), "high": list(high0.shape)},
        "head_ms": ms["head"],
        "step_ms": ms["step"],
        "loss_head_fraction": ms["head"] / ms["step"],
        "head_profile_ms": profile_ops(head, device),
    }
