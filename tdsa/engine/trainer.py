"""The training loop behind ``tdsa train`` and :func:`tdsa.engine.train`.

One epoch = ``len(train) // train.batch_size`` optimiser steps over a permutation seeded by
``(seed, epoch)``; each step may accumulate ``train.accum_steps`` micro-batches per process.
After every epoch the model (its EMA when ``train.ema``) is evaluated on every image of the
validation split (``data.val_split``, when set) and of the test split (``train.eval_test``:
every epoch, the final one only, or never), a row goes to ``metrics.jsonl``/``metrics.csv``,
``last.pt`` is written, and ``best.pt`` when the selection split's top-1 improved. The
selection split is val when there is one; otherwise test, the field's convention (its datasets
have no validation split), which the summary labels as model selection on the test set.

Exactness: on the CPU with ``runtime.deterministic`` a run stopped at an epoch boundary (or by
``runtime.stop_after_epoch``) and resumed ends bit-identical to one that never stopped. A
SIGINT/SIGTERM stops at the next optimiser step, saves ``last.pt`` with the position in the
epoch and exits with code 128 + signal number (130, 143); resuming from there is exact too.
Sample order comes from ``(seed, epoch)`` and each sample's augmentation from
``(seed, epoch, index)`` (:class:`SeededAugment`), so neither depends on the number of
processes or loader workers.

The pieces: :mod:`tdsa.engine.build` (runtime, data, network, loss, optimiser),
:mod:`tdsa.engine.step` (one optimiser step, running sums, the lazy NaN/Inf check),
:mod:`tdsa.engine.loop` (loaders, the epoch, its evaluation), :mod:`tdsa.engine.resume`
(checkpoint contents and restoring them); this module runs the epochs and writes the run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from tdsa.config import Config, apply_overrides, dump_config, load_config
from tdsa.data import resolve_data_config
from tdsa.engine import checkpoint as ckpt_mod
from tdsa.engine.build import (
    SeededAugment,
    build_data,
    build_model,
    check_model_config,
    configure_runtime,
    seed_everything,
)
from tdsa.engine.checkpoint import ResumePoint
from tdsa.engine.distributed import DistInfo, all_reduce_sum, cleanup, init_distributed
from tdsa.engine.loop import EpochLoop, Loaders
from tdsa.engine.precision import resolve_precision
from tdsa.engine.resume import Progress, read_resume, restore, snapshot
from tdsa.engine.run_lock import run_folder_lock
from tdsa.engine.step import TERMS, FiniteGuard, NonFiniteLossError
from tdsa.errors import ConfigError
from tdsa.provenance import code_version, cpu_kind
from tdsa.runfiles import MetricsWriter, format_epoch_line, write_summary

__all__ = ["TERMS", "NonFiniteLossError", "SeededAugment", "Trainer",
           "seed_everything", "train"]

log = logging.getLogger("tdsa.train")
SELECTION_NOTES = {
    "test": "best = the epoch with the highest test top-1 (model selection on the test set: "
    "these datasets have no validation split, as in the paper); final = the last epoch",
    "val": "best = the epoch with the highest val top-1 (model selection on the validation "
    "split; best_top1 is val top-1, test_top1_at_best the test top-1 of that epoch when test "
    "was read); final = the last epoch",
}


def _aux_terms(cfg: Config) -> tuple[str, ...]:
    """The auxiliary loss terms with a non-zero weight (``alpha_*`` weighs ``dis_*``,
    ``beta_*`` weighs ``div_*``): the ones the epoch line shows."""
    loss = cfg.loss
    weights = {"dis_mid": loss.alpha_mid, "div_mid": loss.beta_mid,
               "dis_high": loss.alpha_high, "div_high": loss.beta_high}
    return tuple(k for k, w in weights.items() if w != 0)


def _micro_batch(cfg: Config, info: DistInfo) -> int:
    """Images per process and micro-step: the global batch over processes x accumulation."""
    tr = cfg.train
    per_step = info.world_size * tr.accum_steps
    if tr.batch_size % per_step:
        raise ConfigError(f"train.batch_size={tr.batch_size} must be divisible by processes x "
                          f"train.accum_steps = {info.world_size} x {tr.accum_steps}")
    return tr.batch_size // per_step


class Trainer:
    """Builds data, model, loss, optimiser, schedule, scaler and EMA from a config (never
    changing it), resumes from a checkpoint if there is one, and runs :meth:`fit`.

    ``resume`` is a checkpoint path or one already read (:class:`ResumePoint`); by default
    ``out_dir/last.pt`` when there is one.
    """

    def __init__(
        self, cfg: Config, out_dir: str | Path, info: DistInfo,
        resume: str | Path | ResumePoint | None = None,
    ) -> None:
        self.info = info
        self.out, self.device = Path(out_dir), info.device
        # The run folder records where the data is absolutely (it may be evaluated from
        # elsewhere) and the root as given, for display.
        self.root_given = cfg.data.root
        self.cfg = cfg = dataclasses.replace(
            cfg, data=dataclasses.replace(cfg.data, root=os.path.abspath(cfg.data.root)))
        configure_runtime(cfg.runtime)
        # Every check comes before anything is built or written: nothing in the run folder
        # changes when one fails.
        ckpt_mod.check_output_dir(self.out, "--out")
        micro = _micro_batch(cfg, info)
        self.precision = resolve_precision(self.device, cfg.train.amp, cfg.train.channels_last)
        self.spec = resolve_data_config(cfg.data)
        self.signal_received: int | None = None
        start = resume if isinstance(resume, ResumePoint) else read_resume(self.out, resume)
        self.complete = False
        if start is not None:
            ckpt_mod.check_same_run(start.config, cfg, start.path)
            self.progress = Progress.of(start.state, start.path)
            if self.progress.start_epoch >= cfg.train.epochs:
                self.complete = True  # fit() only reports it
                return
        check_model_config(cfg)
        cfg, self.data = build_data(cfg, info, self.root_given)
        self.cfg = cfg  # model.num_classes filled in from the dataset
        self.model = build_model(cfg, info, self.precision, self.data, start)
        if start is not None:
            restore(self.model, start.state)
        else:
            self.progress = Progress()
        self.guard = FiniteGuard(self.device, info, self.progress.start_epoch)
        self.loop = EpochLoop(cfg, info, self.data, self.model, self.precision, self.guard,
                              Loaders(cfg, info, micro))
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            for stale in self.out.glob(".*.pt.*.tmp"):
                stale.unlink(missing_ok=True)

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The rows of the epochs done so far."""
        return self.progress.metrics

    @property
    def selection(self) -> str:
        """The split whose top-1 selects ``best.pt``: ``val`` when there is one, else ``test``."""
        return "val" if self.cfg.data.val_split else "test"

    def _save(self, names: tuple[str, ...], epoch: int, batch: int = 0,
              partial: dict[str, Any] | None = None) -> None:
        """Write the checkpoint to ``names`` (rank 0), after the finite check."""
        self.guard.check()
        if not self.info.is_main:
            return
        state = snapshot(self.model, self.progress, self.cfg, self.data.num_classes, epoch,
                         batch, partial)
        for name in names:
            ckpt_mod.atomic_save(state, self.out / name)

    def _stop_requested(self) -> bool:
        """A signal arrived (on any process: one all-reduce per step under DDP only)."""
        if not self.info.distributed:
            return self.signal_received is not None
        flag = torch.tensor([1.0 if self.signal_received else 0.0], device=self.device)
        all_reduce_sum(flag, self.info)
        if flag.item() > 0 and self.signal_received is None:
            self.signal_received = signal.SIGTERM
        return flag.item() > 0

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signal_received = signum

    def _epoch(self, epoch: int, writer: MetricsWriter | None) -> str | None:
        """Train, evaluate, record and checkpoint one epoch; why the run stops after it, if
        it does."""
        p = self.progress
        start = p.start_step if epoch == p.start_epoch else 0
        row, interrupted = self.loop.train(
            epoch, start, p.partial, self._stop_requested,
            lambda step, partial: self._save(("last.pt",), epoch, step, partial))
        if interrupted:
            assert self.signal_received is not None  # only a signal stops an epoch early
            return signal.Signals(self.signal_received).name
        row.update(self.loop.evaluate(epoch))
        p.metrics.append(row)
        key = f"{self.selection}_top1"
        improved = row[key] > p.best["top1"]
        if improved:
            p.best = {"top1": row[key], "epoch": epoch + 1}
        self._save(("last.pt", "best.pt") if improved else ("last.pt",), epoch + 1)
        self.guard.saved_epoch = epoch + 1
        if writer is not None:
            writer.write(p.metrics)
            log.info("%s", format_epoch_line(row, self.cfg.train.epochs, _aux_terms(self.cfg)))
        if self.signal_received is not None:
            return signal.Signals(self.signal_received).name
        stop_after = self.cfg.runtime.stop_after_epoch
        if stop_after == epoch + 1 and epoch + 1 < self.cfg.train.epochs:
            return "stop_after_epoch"
        return None

    def fit(self) -> dict[str, Any]:
        """Train from the start (or the resumed position) to ``train.epochs``; return the
        summary (also written to ``summary.json`` by rank 0).
        """
        if self.complete:
            return self._summary(None, 0.0, write=False) | {"already_complete": True}
        writer = None
        if self.info.is_main:
            note = "" if self.root_given == self.cfg.data.root else (
                f"# data.root was given as {self.root_given!r} (relative to {os.getcwd()})\n")
            (self.out / "config.yaml").write_text(note + dump_config(self.cfg), encoding="utf-8")
            writer = MetricsWriter(self.out, tensorboard=self.cfg.runtime.tensorboard)
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        stopped: str | None = None
        t_run = time.perf_counter()
        try:
            for epoch in range(self.progress.start_epoch, self.cfg.train.epochs):
                stopped = self._epoch(epoch, writer)
                if stopped is not None:
                    break
        finally:
            for sig, old in handlers.items():
                signal.signal(sig, old)
            if writer is not None:
                writer.close()
        return self._summary(stopped, time.perf_counter() - t_run)

    def _summary(self, stopped: str | None, seconds: float, write: bool = True
                 ) -> dict[str, Any]:
        p = self.progress
        final = p.metrics[-1] if p.metrics else {}
        summary = {
            "run_dir": str(self.out),
            "epochs_completed": len(p.metrics),
            "epochs": self.cfg.train.epochs,
            "final_top1": final.get("test_top1", math.nan),
            "final_top5": final.get("test_top5", math.nan),
            "final_train_top1": final.get("train_top1", math.nan),
            "best_top1": p.best["top1"] if p.metrics else math.nan,
            "best_epoch": p.best["epoch"],
            "selected_on": self.selection,
            "selection_note": SELECTION_NOTES[self.selection],
            **self._val_summary(),
            "stopped": stopped,
            "resumed_from": p.resumed_from,
            "data_root": self.cfg.data.root,
            "data_root_given": self.root_given,
            "data_spec": self.spec.to_dict(),
            "seconds": seconds,
            "precision": self.precision.label,
            "code": code_version(),
            "cpu": cpu_kind(),
            "metrics": list(p.metrics),
        }
        if self.info.is_main and write:
            write_summary(self.out, summary)
        return summary

    def _val_summary(self) -> dict[str, float]:
        """With a val split: its final top-1, the test top-1 at the val-selected epoch and
        the field's test-selected best (when test was read every epoch)."""
        metrics = self.progress.metrics
        if self.selection != "val" or not metrics:
            return {}
        out = {"final_val_top1": metrics[-1]["val_top1"]}
        at_best = metrics[self.progress.best["epoch"] - 1]
        if "test_top1" in at_best:
            out["test_top1_at_best"] = at_best["test_top1"]
        tested = [r for r in metrics if "test_top1" in r]
        if len(tested) == len(metrics):
            top = max(tested, key=lambda r: r["test_top1"])
            out |= {"test_best_top1": top["test_top1"], "test_best_epoch": top["epoch"]}
        return out


def train(
    config: Config | str | Path | None,
    out_dir: str | Path,
    *,
    overrides: tuple[str, ...] | list[str] = (),
    resume: str | Path | None = None,
) -> dict[str, Any]:
    """Train from a :class:`~tdsa.config.Config` or YAML path into the run folder ``out_dir``.

    ``overrides`` are dotted ``key=value`` strings. Resumes from ``resume`` or, when
    ``out_dir/last.pt`` exists, from there; ``config`` None continues that checkpoint's own
    config (the checkpoint is read once). Under ``torchrun`` each process calls this; only
    rank 0 writes files. Returns the summary: ``final_top1`` (test, NaN when test was not
    read), ``final_train_top1``, ``best_top1`` and ``best_epoch`` (on the split named by
    ``selected_on``, see ``selection_note``), with a val split also ``final_val_top1``,
    ``test_top1_at_best``, ``test_best_top1``; ``run_dir``, ``stopped`` (None,
    ``stop_after_epoch`` or a signal name) and the per-epoch ``metrics``.

    Book: chapter 4, *Train, or load the finished runs*.
    """
    start: str | Path | ResumePoint | None = resume
    if config is None:
        source = Path(resume) if resume is not None else Path(out_dir) / "last.pt"
        if not source.is_file():
            raise ConfigError(f"--config is required (no checkpoint to resume from at {source})")
        start = ResumePoint.read(source)
        cfg = apply_overrides(start.config, overrides)
    elif isinstance(config, Config):
        cfg = apply_overrides(config, overrides)
    else:
        cfg = load_config(config, overrides)
    info = init_distributed(cfg.runtime.device)
    try:
        # one process per run folder: a second one stops here (RunBusyError) before writing
        with run_folder_lock(out_dir) if info.is_main else nullcontext():
            trainer = Trainer(cfg, out_dir, info, start)
            del start  # a checkpoint read here is not kept in memory while training
            return trainer.fit()
    finally:
        cleanup(info)
