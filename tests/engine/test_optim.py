"""Optimiser parameter groups and learning-rate schedules against slow references."""

from __future__ import annotations

import math

import pytest
import torch

from tdsa.config import OptimConfig, ScheduleConfig
from tdsa.engine.optim import build_optimizer, build_scheduler, lr_factor
from tdsa.models import create_model


def _reference(name: str, step: int, spe: int, total: int, warm: float, **kw) -> float:
    """Straight from the definitions, one case at a time."""
    epoch = step // spe
    w = 1.0
    if warm:
        w = min(1.0, (step + 1) / round(warm * spe))
    if name == "step":
        if kw.get("step_size"):
            return w * kw["gamma"] ** (epoch // kw["step_size"])
        passed = len([m for m in kw["milestones"] if m <= epoch])
        return w * kw["gamma"] ** passed
    if name == "cosine":
        t = step / spe
        p = 0.0 if t < warm else min(1.0, (t - warm) / (total - warm))
        lo = kw.get("min_lr_factor", 0.0)
        return w * (lo + (1 - lo) * (1 + math.cos(math.pi * p)) / 2)
    return w


@pytest.mark.parametrize(
    "kw",
    [
        {"name": "step", "milestones": [3, 5], "gamma": 0.1, "warmup_epochs": 0.0},
        {"name": "step", "milestones": [], "step_size": 2, "gamma": 0.8, "warmup_epochs": 1.0},
        {"name": "cosine", "warmup_epochs": 1.5, "min_lr_factor": 0.01},
        {"name": "cosine", "warmup_epochs": 0.0},
        {"name": "constant", "warmup_epochs": 2.0},
    ],
)
def test_lr_factor_matches_reference(kw: dict) -> None:
    cfg = ScheduleConfig(**kw)
    spe, total = 4, 7
    for step in range(spe * total):
        ref = _reference(kw["name"], step, spe, total, kw["warmup_epochs"],
                         **{k: v for k, v in kw.items() if k not in ("name", "warmup_epochs")})
        assert lr_factor(cfg, step, spe, total) == pytest.approx(ref, rel=1e-12), step


def test_per_epoch_schedule_is_constant_within_an_epoch() -> None:
    cfg = ScheduleConfig(name="cosine", per_iteration=False)
    values = [lr_factor(cfg, s, 5, 4) for s in range(20)]
    assert [values[i * 5] for i in range(4)] == pytest.approx(
        [(1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    assert all(values[i] == values[i - i % 5] for i in range(20))


def test_head_gets_its_own_learning_rate_and_scheduler_scales_both() -> None:
    model = create_model("tdsa_vgg16", 3, width=0.25, input_size=32)
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=0.01, head_lr=0.1))
    names = {g["name"]: g for g in opt.param_groups}
    head_ids = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in names["head"]["params"]} == head_ids
    n_all = sum(1 for _ in model.parameters())
    assert len(names["backbone"]["params"]) + len(head_ids) == n_all
    sched = build_scheduler(opt, ScheduleConfig(name="step", milestones=[1], gamma=0.5), 2, 3)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]
    for _ in range(2):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.005, 0.05])
    adamw = build_optimizer(model, OptimConfig(name="adamw", lr=1e-3, weight_decay=0.05))
    assert isinstance(adamw, torch.optim.AdamW)
    assert all(g["lr"] == 1e-3 and g["weight_decay"] == 0.05 for g in adamw.param_groups)
