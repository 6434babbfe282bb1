"""One optimiser step: micro-batches forward and backward, the running sums of the epoch's
loss terms and gradient norms, and the lazy check that stops a run whose loss became NaN or Inf.

The step never waits for the device: the sums and the non-finite flags stay on it, and
:class:`FiniteGuard` reads the flags every :data:`FINITE_CHECK_EVERY` steps, at the end of an
epoch and before any checkpoint is written, so a broken model is never saved.

The gradient norms (:data:`GRAD_NORM_KEYS` of the epoch row) are the L2 norms of each stage's
gradients (:meth:`tdsa.models.base.TdsaNet.stage_parameters`) and of all of them, taken after
the backward pass (under DDP: the all-reduced gradients, the same on every process) and the
GradScaler's unscaling, before clipping and the optimiser; the epoch row holds their mean over
the epoch's steps with finite gradients. Reading them changes no gradient or weight.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from tdsa.config import TrainConfig
from tdsa.engine.build import RunModel
from tdsa.engine.distributed import DistInfo, all_reduce_sum
from tdsa.engine.precision import Precision, autocast
from tdsa.errors import TdsaError
from tdsa.models.base import PARAM_STAGES

TERMS = ("total", "ce", "dis_mid", "div_mid", "dis_high", "div_high")
FINITE_CHECK_EVERY = 25
GRAD_NORM_KEYS = tuple(f"grad_norm/{s}" for s in (*PARAM_STAGES, "total"))
"""The epoch row's mean gradient norms: one per stage of
:data:`tdsa.models.base.PARAM_STAGES` (``mid``, ``high``, ``head``) and ``total``."""
_CORRECT, _SEEN = len(TERMS), len(TERMS) + 1
_NORMS = slice(len(TERMS) + 2, len(TERMS) + 2 + len(GRAD_NORM_KEYS))
_STEPS = _NORMS.stop


class NonFiniteLossError(TdsaError):
    """A loss term became NaN or Inf; the run stopped without saving the broken model.
    """


class RunningSums:
    """Image-weighted sums of the loss terms, correct predictions and images seen, and the
    sums of the steps' gradient norms with the number of steps they count, on the device (one
    float64 vector, all-reduced as one: under DDP every process adds the same norms, so the
    mean is unchanged). ``saved`` is :meth:`tolist` of an interrupted epoch; one saved before
    the gradient norms were recorded restores the loss sums, and the norms' mean then counts
    the steps after the resume."""

    def __init__(self, device: torch.device, saved: list[float] | None = None) -> None:
        self.vector = torch.zeros(_STEPS + 1, dtype=torch.float64, device=device)
        if saved is not None:
            self.vector[: len(saved)] += torch.tensor(saved, dtype=torch.float64, device=device)

    def add(self, values: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one micro-batch: its term ``values`` (per image means) and its predictions."""
        n = targets.numel()
        self.vector[: len(TERMS)] += values.double() * n
        self.vector[_CORRECT] += (logits.detach().argmax(dim=1) == targets).sum()
        self.vector[_SEEN] += n

    def add_grad_norms(self, norms: torch.Tensor) -> None:
        """Add one step's gradient norm per stage (:data:`~tdsa.models.base.PARAM_STAGES`
        order) and their total, unless one is not finite (a step the GradScaler skips)."""
        norms = norms.double()
        row = torch.cat([norms, torch.linalg.vector_norm(norms).reshape(1)])
        finite = torch.isfinite(row).all()
        self.vector[_NORMS] += torch.where(finite, row, 0.0)
        self.vector[_STEPS] += finite

    @property
    def seen(self) -> float:
        """Images summed so far (a device read)."""
        return float(self.vector[_SEEN])

    def means(self) -> dict[str, float]:
        """Per-image mean of every term and ``top1`` (%), over the images seen."""
        seen = max(self.seen, 1.0)
        out = {k: float(self.vector[i]) / seen for i, k in enumerate(TERMS)}
        return out | {"top1": float(self.vector[_CORRECT]) / seen * 100}

    def grad_norms(self) -> dict[str, float]:
        """The mean of each of :data:`GRAD_NORM_KEYS` over the steps counted (NaN when none):
        one device read."""
        *sums, steps = self.vector[_NORMS.start:].tolist()
        return {k: v / steps if steps else math.nan
                for k, v in zip(GRAD_NORM_KEYS, sums, strict=True)}

    def tolist(self) -> list[float]:
        return self.vector.tolist()


@torch.no_grad()
def stage_grad_norms(stages: Sequence[Sequence[nn.Parameter]], device: torch.device
                     ) -> torch.Tensor:
    """The L2 norm of the gradients of each group of ``stages`` (parameters without one left
    out; 0 for none), as one float64 vector on ``device``; no device read."""
    norms = []
    for params in stages:
        grads = [p.grad for p in params if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).double()
                     if grads else torch.zeros((), dtype=torch.float64, device=device))
    return torch.stack(norms)


class FiniteGuard:
    """Records on the device the first micro-step where a loss term is not finite: which
    terms, their values, the epoch and step. :meth:`check` reads it (one sync, all-reduced
    over processes) and raises :class:`NonFiniteLossError` naming the first bad term and
    ``saved_epoch``, the epoch ``last.pt`` holds (0: none written yet)."""

    def __init__(self, device: torch.device, info: DistInfo, saved_epoch: int = 0) -> None:
        self.info, self.saved_epoch, self.every = info, saved_epoch, FINITE_CHECK_EVERY
        self.flags = torch.zeros(len(TERMS), device=device)
        self.values = torch.zeros(len(TERMS), device=device)
        self.epoch = torch.full((), -1, dtype=torch.long, device=device)
        self.step = torch.full((), -1, dtype=torch.long, device=device)

    def observe(self, values: torch.Tensor, epoch: int, step: int) -> None:
        """Note ``values`` of one micro-step (no device read, no host-to-device copy)."""
        bad = ~torch.isfinite(values)
        first = bad.any() & (self.epoch < 0)
        self.flags = torch.where(first, bad.float(), self.flags)
        self.values = torch.where(first, values, self.values)
        self.epoch = torch.where(first, epoch, self.epoch)
        self.step = torch.where(first, step, self.step)

    def due(self, step: int) -> bool:
        """Whether to :meth:`check` after optimiser step ``step`` (0-based) of an epoch."""
        return (step + 1) % self.every == 0

    def check(self) -> None:
        """Raise when a term was not finite on any process since the guard was made."""
        flags = self.flags.clone()
        all_reduce_sum(flags, self.info)
        if not bool(flags.any()):
            return
        local = bool(self.flags.any())
        shown = self.flags if local else flags
        order = [*TERMS[1:], "total"]
        name = next(k for k in order if shown[TERMS.index(k)] > 0)
        value = float(self.values[TERMS.index(name)]) if local else float("nan")
        where = (f"at epoch {int(self.epoch) + 1}, step {int(self.step) + 1}" if local
                 else "on another process")
        kept = (f"last.pt keeps epoch {self.saved_epoch}" if self.saved_epoch
                else "no checkpoint was written yet")
        raise NonFiniteLossError(
            f"loss term {name!r} became {value} {where}: stopped ({kept}; nothing was saved "
            f"after it). Lower optim.lr, set train.grad_clip, or use train.amp=none"
        )


class TrainStep:
    """One optimiser step of ``train.accum_steps`` micro-batches (DDP all-reduces only on the
    last), the gradient norms per stage, gradient clipping, the optimiser, schedule and EMA
    updates."""

    def __init__(self, model: RunModel, tr: TrainConfig, precision: Precision,
                 device: torch.device, guard: FiniteGuard) -> None:
        self.m, self.tr, self.precision, self.device = model, tr, precision, device
        self.guard = guard
        self.stages = [[p for _, p in group if p.requires_grad]
                       for group in model.net.stage_parameters().values()]

    def __call__(self, batches: Iterator[Any], aux: float, sums: RunningSums, epoch: int,
                 step: int) -> None:
        m, tr = self.m, self.tr
        m.optimizer.zero_grad(set_to_none=True)
        for micro in range(tr.accum_steps):
            images, targets = next(batches)
            last = micro == tr.accum_steps - 1
            ddp = m.taps if isinstance(m.taps, nn.parallel.DistributedDataParallel) else None
            with ddp.no_sync() if ddp is not None and not last else nullcontext():
                self._micro(images, targets, aux, sums, epoch, step)
        m.scaler.unscale_(m.optimizer)  # what scaler.step does otherwise (a no-op when off)
        sums.add_grad_norms(stage_grad_norms(self.stages, self.device))
        if tr.grad_clip > 0:
            nn.utils.clip_grad_norm_(m.net.parameters(), tr.grad_clip)
        m.scaler.step(m.optimizer)
        m.scaler.update()
        m.scheduler.step()
        if m.ema is not None:
            m.ema.update(m.net)

    def _micro(self, images: torch.Tensor, targets: torch.Tensor, aux: float,
               sums: RunningSums, epoch: int, step: int) -> None:
        m, dev = self.m, self.device
        images = images.to(dev, dtype=self.precision.dtype, non_blocking=True)
        targets = targets.to(dev, non_blocking=True)
        if self.precision.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(dev, self.precision.amp):
            logits, mid, high = m.taps(images)
            out = m.criterion(logits, mid, high, targets, generator=m.mask_generator,
                              aux_scale=aux)
        values = torch.stack([out[k].detach().double() for k in TERMS])  # exact for fp32, fp64
        self.guard.observe(values, epoch, step)
        m.scaler.scale(out["total"] / self.tr.accum_steps).backward()
        sums.add(values, logits, targets)
