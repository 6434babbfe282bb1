"""Optimiser (head vs backbone parameter groups) and learning-rate schedules.

The schedule is a :class:`torch.optim.lr_scheduler.LambdaLR` stepped once per optimiser
step; :func:`lr_factor` maps the optimiser step to a multiplier of each group's base rate.
With ``per_iteration`` the rate changes every step (cosine and warm-up are smooth; step
milestones still fall exactly on epoch boundaries); otherwise once per epoch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch.optim.lr_scheduler import LambdaLR

from tdsa.config import OptimConfig, ScheduleConfig

if TYPE_CHECKING:
    from tdsa.models.base import TdsaNet


def param_groups(model: TdsaNet, cfg: OptimConfig) -> list[dict]:
    """Two groups: ``backbone`` (lr = ``cfg.lr``) and ``head`` (the parameters of
    ``model.head``, the classifier behind ``forward_head``; lr = ``cfg.head_lr`` or
    ``cfg.lr``). Weight decay applies to both, as in the reference.
    """
    head_ids = {id(p) for p in model.head.parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    head = [p for p in model.head.parameters() if p.requires_grad]
    head_lr = cfg.lr if cfg.head_lr is None else cfg.head_lr
    groups = [
        {"params": backbone, "lr": cfg.lr, "name": "backbone"},
        {"params": head, "lr": head_lr, "name": "head"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: TdsaNet, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov, weight decay) or AdamW over :func:`param_groups`.
    """
    groups = param_groups(model, cfg)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    return torch.optim.AdamW(
        groups,
        lr=cfg.lr,
        betas=(cfg.betas[0], cfg.betas[1]),
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
    )


def lr_factor(cfg: ScheduleConfig, step: int, steps_per_epoch: int, total_epochs: int) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based).

    Warm-up: linear from ``1/(warmup steps)`` to 1 over ``warmup_epochs``. Then ``step``:
    ``gamma ** (milestones passed)`` (or ``gamma ** (epoch // step_size)``); ``cosine``:
    ``min + (1 - min) * (1 + cos(pi * p)) / 2`` with ``p`` the fraction of the post-warm-up
    epochs done; ``constant``: 1. Without ``per_iteration`` the epoch is an integer.
    """
    t = step / steps_per_epoch
    if not cfg.per_iteration:
        t = float(math.floor(t))
    warm = 1.0
    if cfg.warmup_epochs > 0:
        if cfg.per_iteration:
            warm_steps = max(1, round(cfg.warmup_epochs * steps_per_epoch))
            warm = min(1.0, (step + 1) / warm_steps)
        else:
            warm = min(1.0, (t + 1) / math.ceil(cfg.warmup_epochs))
    epoch = math.floor(t)
    if cfg.name == "step":
        if cfg.step_size is not None:
            main = cfg.gamma ** (epoch // cfg.step_size)
        else:
            main = cfg.gamma ** sum(1 for m in cfg.milestones if epoch >= m)
    elif cfg.name == "cosine":
        span = max(total_epochs - cfg.warmup_epochs, 1e-12)
        p = min(max((t - cfg.warmup_epochs) / span, 0.0), 1.0)
        main = cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * p))
    else:
        main = 1.0
    return warm * main


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int, total_epochs: int
) -> LambdaLR:
    """A ``LambdaLR`` over :func:`lr_factor`, to be stepped after every optimiser step.
    """

    def factor(step: int) -> float:
        return lr_factor(cfg, step, steps_per_epoch, total_epochs)

    return LambdaLR(optimizer, factor)
