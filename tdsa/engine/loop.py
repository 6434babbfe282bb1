"""The epoch: its loaders (sample order from ``(seed, epoch)``), the optimiser steps with the
progress bar and the stop requests, the epoch's metrics row, and the evaluation of the splits
read after it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tdsa.config import Config
from tdsa.console import progress_bar, progress_enabled
from tdsa.data import FGVCDataset
from tdsa.engine.build import RunData, RunModel, SeededAugment
from tdsa.engine.distributed import DistInfo, GlobalBatchSampler, ShardSampler, all_reduce_sum
from tdsa.engine.evaluate import evaluate
from tdsa.engine.precision import Precision
from tdsa.engine.step import TERMS, FiniteGuard, RunningSums, TrainStep


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _loader_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class Loaders:
    """The training loader of an epoch (from a step within it) and the evaluation loaders."""

    def __init__(self, cfg: Config, info: DistInfo, micro: int) -> None:
        self.cfg, self.info, self.micro = cfg, info, micro

    def train(self, data: RunData, epoch: int, start_step: int) -> DataLoader:
        rt, info = self.cfg.runtime, self.info
        sampler = GlobalBatchSampler(len(data.train), self.cfg.train.batch_size, seed=rt.seed,
                                     epoch=epoch, rank=info.rank, world_size=info.world_size,
                                     start_step=start_step)
        gen = torch.Generator()
        gen.manual_seed(_loader_seed(rt.seed, epoch, info.rank, start_step))
        data.augment.epoch = epoch
        return self._loader(data.augment, self.micro, sampler, gen)

    def eval(self, dataset: FGVCDataset) -> DataLoader:
        sampler = ShardSampler(len(dataset), self.info.rank, self.info.world_size)
        bs = self.cfg.train.eval_batch_size or self.micro * self.cfg.train.accum_steps
        gen = torch.Generator()
        gen.manual_seed(_loader_seed(self.cfg.runtime.seed, 1 << 20))
        return self._loader(dataset, bs, sampler, gen)

    def _loader(self, ds: Dataset, bs: int, sampler: Any, gen: torch.Generator) -> DataLoader:
        workers = self.cfg.data.workers
        if workers:  # decode a cached split here once, not in each epoch's new workers
            base = ds.dataset if isinstance(ds, SeededAugment) else ds
            if isinstance(base, FGVCDataset):
                base.fill_cache()
        return DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=workers, generator=gen,
                          worker_init_fn=_seed_worker if workers else None,
                          pin_memory=self.info.device.type == "cuda", drop_last=False)


class EpochLoop:
    """Runs the optimiser steps of one epoch (:meth:`train`) and its evaluation
    (:meth:`evaluate`); the finite check is read when :meth:`FiniteGuard.due` and at the end
    of the epoch."""

    def __init__(self, cfg: Config, info: DistInfo, data: RunData, model: RunModel,
                 precision: Precision, guard: FiniteGuard, loaders: Loaders) -> None:
        self.cfg, self.info, self.data, self.model = cfg, info, data, model
        self.precision, self.guard, self.loaders = precision, guard, loaders
        self.step = TrainStep(model, cfg.train, precision, info.device, guard)

    def aux_scale(self, epoch: int, step: int) -> float:
        """The ramp factor of the auxiliary loss terms at ``step`` of ``epoch``."""
        ramp = self.cfg.loss.ramp_epochs
        return 1.0 if ramp <= 0 else min(1.0, (epoch + step / self.data.steps_per_epoch) / ramp)

    def train(self, epoch: int, start: int, partial: dict[str, Any] | None,
              stop: Callable[[], bool], save_partial: Callable[[int, dict[str, Any]], None]
              ) -> tuple[dict[str, Any], bool]:
        """Steps ``start ..`` of ``epoch`` (resuming ``partial`` sums when ``start``); on a
        ``stop()`` request mid-epoch, ``save_partial(step, partial)`` and return early.
        Returns the epoch's training row and whether it was interrupted."""
        steps = self.data.steps_per_epoch
        resumed = partial if start else None
        sums = RunningSums(self.info.device, resumed["sums"] if resumed else None)
        elapsed = float(resumed["time"]) if resumed else 0.0
        groups = self.model.optimizer.param_groups
        lr = list(resumed["lr"]) if resumed else [g["lr"] for g in groups]
        self.model.taps.train()
        batches = iter(self.loaders.train(self.data, epoch, start))
        bar = progress_bar(total=steps, initial=start, desc=f"epoch {epoch + 1}/"
                           f"{self.cfg.train.epochs}", dynamic_ncols=True,
                           disable=not (self.info.is_main
                                        and progress_enabled(self.cfg.runtime.progress)))
        t0, interrupted = time.perf_counter(), False
        for step in range(start, steps):
            self.step(batches, self.aux_scale(epoch, step), sums, epoch, step)
            bar.update(1)
            if bar.disable is False and (step % 5 == 0 or step == steps - 1):
                rate = sums.seen / (elapsed + time.perf_counter() - t0)
                bar.set_postfix({k: f"{v:.3f}" for k, v in sums.means().items() if k in TERMS}
                                | {"img/s": f"{rate:.0f}"})
            if self.guard.due(step):
                self.guard.check()
            if stop():
                interrupted = step + 1 < steps
                if interrupted:
                    save_partial(step + 1, {"sums": sums.tolist(), "lr": lr,
                                            "time": elapsed + time.perf_counter() - t0})
                break
        bar.close()
        self.guard.check()
        elapsed += time.perf_counter() - t0
        all_reduce_sum(sums.vector, self.info)
        return self._row(epoch, lr, sums, elapsed), interrupted

    def _row(self, epoch: int, lr: list[float], sums: RunningSums, elapsed: float
             ) -> dict[str, Any]:
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr[0]}
        if len(lr) > 1:
            row["lr_head"] = lr[-1]
        row["aux_scale"] = self.aux_scale(epoch, 0)
        means = sums.means()
        row |= {f"train_{k}": means[k] for k in TERMS}
        row["train_top1"] = means["top1"]
        row |= sums.grad_norms()
        row["epoch_time"] = elapsed
        row["images_per_s"] = sums.seen / max(elapsed, 1e-9)
        row["precision"] = self.precision.label
        return row

    def evaluate(self, epoch: int) -> dict[str, Any]:
        """``val_*`` and ``test_*`` (top1, top5, loss, images) of this epoch for the splits
        read at it, and ``eval_time``."""
        t0 = time.perf_counter()
        model = self.model.ema.module if self.model.ema is not None else self.model.net
        when = self.cfg.train.eval_test
        splits = [("val", self.data.val)] if self.data.val is not None else []
        if when == "every_epoch" or (when == "final" and epoch + 1 == self.cfg.train.epochs):
            splits.append(("test", self.data.test))
        row: dict[str, Any] = {}
        for name, dataset in splits:
            res = evaluate(model, self.loaders.eval(dataset), self.info.device,
                           self.data.num_classes, precision=self.precision,
                           reduce=self.info.distributed)
            row |= {f"{name}_top1": res["top1"], f"{name}_top5": res["top5"],
                    f"{name}_loss": res["loss"], f"{name}_images": res["n"]}
        row["eval_time"] = time.perf_counter() - t0
        return row
