"""Checkpoint and resume of a training run: where to resume from (read once, its config
parsed once), what a checkpoint holds (weights, optimiser, schedule, scaler, EMA, RNG,
position, metrics) and restoring it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdsa.config import Config
from tdsa.engine import checkpoint as ckpt_mod
from tdsa.engine.build import RunModel
from tdsa.engine.checkpoint import ResumePoint
from tdsa.errors import CheckpointError


@dataclass
class Progress:
    """Where a run stands: the epoch rows so far, the best epoch, the position to start at
    (``start_step`` and ``partial`` sums within ``start_epoch``) and the resumed checkpoint."""

    metrics: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"top1": -1.0, "epoch": 0})
    start_epoch: int = 0
    start_step: int = 0
    partial: dict[str, Any] | None = None
    resumed_from: str | None = None

    @classmethod
    def of(cls, ckpt: dict[str, Any], path: Path) -> Progress:
        """The progress stored in ``ckpt`` (read from ``path``)."""
        return cls(list(ckpt["metrics"]), dict(ckpt["best"]), int(ckpt["epoch"]),
                   int(ckpt.get("batch", 0)), ckpt.get("partial"), str(path))


def find_resume(out: Path, resume: str | Path | None) -> Path | None:
    """``resume`` (which must exist), else ``out/last.pt`` when there is one, else None."""
    if resume is not None:
        path = Path(resume)
        if not path.is_file():
            raise CheckpointError(f"--resume: checkpoint not found: {path}")
        return path
    last = out / "last.pt"
    return last if last.is_file() else None


def read_resume(out: Path, resume: str | Path | None) -> ResumePoint | None:
    """The checkpoint :func:`find_resume` finds, read; None when there is none."""
    path = find_resume(out, resume)
    return None if path is None else ResumePoint.read(path)


def restore(model: RunModel, ckpt: dict[str, Any]) -> None:
    """Load the optimiser, schedule, scaler, EMA and mask RNG states of ``ckpt`` (the weights
    are loaded when the network is built)."""
    try:
        model.optimizer.load_state_dict(ckpt["optimizer"])
        model.scheduler.load_state_dict(ckpt["scheduler"])
        model.scaler.load_state_dict(ckpt["scaler"])
        if model.ema is not None:
            if not ckpt.get("ema"):
                raise CheckpointError("the checkpoint has no EMA state but train.ema is on")
            model.ema.load_state_dict(ckpt["ema"])
        ckpt_mod.restore_rng(ckpt["rng"], model.mask_generator)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot resume from the checkpoint: {exc}") from None


def snapshot(model: RunModel, progress: Progress, cfg: Config, num_classes: int, epoch: int,
             batch: int = 0, partial: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint of the run after ``epoch`` epochs and ``batch`` steps of the next."""
    return ckpt_mod.new_checkpoint(
        model=model.net.state_dict(),
        optimizer=model.optimizer.state_dict(),
        scheduler=model.scheduler.state_dict(),
        scaler=model.scaler.state_dict(),
        ema=model.ema.state_dict() if model.ema is not None else None,
        epoch=epoch,
        batch=batch,
        partial=partial,
        metrics=list(progress.metrics),
        best=dict(progress.best),
        config=cfg.to_dict(),
        num_classes=num_classes,
        rng=ckpt_mod.capture_rng(model.mask_generator),
    )
