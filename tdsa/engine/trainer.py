"""The training loop behind ``tdsa train`` and :func:`tdsa.engine.train`.

One epoch = ``len(train) // train.batch_size`` optimiser steps over a permutation seeded by
``(seed, epoch)``; each step may accumulate ``train.accum_steps`` micro-batches per process.
After every epoch the model (its EMA when ``train.ema``) is evaluated on every test image,
a row goes to ``metrics.jsonl``/``metrics.csv``, ``last.pt`` is written, and ``best.pt`` when
test top-1 improved. "Best" is model selection on the test set (the datasets of the field have
no validation split): the summary labels it so and also reports the final epoch.

Exactness: on the CPU with ``runtime.deterministic`` a run stopped at an epoch boundary (or by
``runtime.stop_after_epoch``) and resumed ends bit-identical to one that never stopped. A
SIGINT/SIGTERM stops at the next optimiser step, saves ``last.pt`` with the position in the
epoch and exits with code 128 + signal number (130, 143); resuming from there is exact too.
Sample order comes from ``(seed, epoch)`` and each sample's augmentation from
``(seed, epoch, index)`` (:class:`SeededAugment`), so neither depends on the number of
processes or loader workers.

Book: chapter 4, *Full training*.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tdsa.config import Config, apply_overrides, dump_config, load_config
from tdsa.engine import checkpoint as ckpt_mod
from tdsa.engine.distributed import (
    DistInfo,
    GlobalBatchSampler,
    ShardSampler,
    all_reduce_sum,
    barrier,
    cleanup,
    convert_sync_batchnorm,
    init_distributed,
)
from tdsa.engine.ema import ModelEMA
from tdsa.engine.evaluate import autocast, evaluate
from tdsa.engine.logging import (
    MetricsWriter,
    format_epoch_line,
    progress_bar,
    progress_enabled,
)
from tdsa.engine.optim import build_optimizer, build_scheduler
from tdsa.engine.precision import resolve_precision
from tdsa.errors import CheckpointError, ConfigError, DataError, TdsaError
from tdsa.models.pretrained import load_state_strict

TERMS = ("total", "ce", "dis_mid", "div_mid", "dis_high", "div_high")
log = logging.getLogger("tdsa.train")
TIME_KEYS = ("epoch_time", "eval_time", "images_per_s")
SELECTION_NOTE = (
    "best = the epoch with the highest test top-1 (model selection on the test set: these "
    "datasets have no validation split, as in the paper); final = the last epoch"
)


def _aux_terms(cfg: Config) -> tuple[str, ...]:
    """The auxiliary loss terms with a non-zero weight (``alpha_*`` weighs ``dis_*``,
    ``beta_*`` weighs ``div_*``): the ones the epoch line shows."""
    loss = cfg.loss
    weights = {"dis_mid": loss.alpha_mid, "div_mid": loss.beta_mid,
               "dis_high": loss.alpha_high, "div_high": loss.beta_high}
    return tuple(k for k, w in weights.items() if w != 0)


class NonFiniteLossError(TdsaError):
    """A loss term became NaN or Inf; the run stopped without saving the broken model.

    Book: chapter 4, *Full training*.
    """


class _Taps(nn.Module):
    """One forward returning ``(logits, mid, high)``, so DDP sees a single call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.model.forward_features(x)
        return self.model.forward_head(feats["high"]), feats["mid"], feats["high"]


class SeededAugment(Dataset):
    """Wraps a training set so the random augmentation of sample ``i`` in epoch ``e`` is drawn
    from a torch RNG seeded by ``(seed, e, i)`` (the global RNG is forked and restored).

    So the augmentations do not depend on the number of processes, loader workers, or where a
    resumed run starts: N processes see exactly the images one process sees.

    Book: chapter 4, *Full training*.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        sample_seed = ((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index) % 2**63
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            return self.dataset[index]


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _loader_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _check_synthetic(meta: Path, wanted: dict[str, Any]) -> None:
    """ConfigError when an existing synthetic root was generated with other arguments."""
    try:
        stored = json.loads(meta.read_text())["args"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{meta}: unreadable synthetic-dataset metadata ({exc})") from None
    diff = {k: (stored.get(k), v) for k, v in wanted.items() if stored.get(k) != v}
    if diff:
        shown = ", ".join(f"{k}: {a!r} there vs {b!r} asked" for k, (a, b) in diff.items())
        raise ConfigError(
            f"data.root {meta.parent} holds a synthetic dataset generated with other "
            f"arguments ({shown}); delete it or choose another data.root"
        )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices).

    Book: chapter 4, *Full training*.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Builds data, model, loss, optimiser, schedule, scaler and EMA from a config, resumes
    from a checkpoint if there is one, and runs :meth:`fit`.

    Book: chapter 4, *Full training*.
    """

    def __init__(
        self, cfg: Config, out_dir: str | Path, info: DistInfo, resume: str | Path | None = None
    ) -> None:
        self.cfg, self.info = cfg, info
        self.out = Path(out_dir)
        self.device = info.device
        rt, tr = cfg.runtime, cfg.train
        # The run folder records where the data is absolutely (it may be evaluated from
        # elsewhere) and the root as given, for display.
        self.root_given = cfg.data.root
        cfg.data.root = os.path.abspath(cfg.data.root)
        if rt.threads:
            torch.set_num_threads(rt.threads)
        if rt.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True
        seed_everything(rt.seed)
        # Every check comes before anything is built or written: nothing in the run folder
        # changes when one fails.
        ckpt_mod.check_output_dir(self.out, "--out")
        per_step = info.world_size * tr.accum_steps
        if tr.batch_size % per_step:
            raise ConfigError(
                f"train.batch_size={tr.batch_size} must be divisible by processes x "
                f"train.accum_steps = {info.world_size} x {tr.accum_steps}"
            )
        self.micro = tr.batch_size // per_step
        self.precision = resolve_precision(self.device, tr.amp, tr.channels_last)
        self.signal_received: int | None = None
        resume_path = self._resume_path(resume)
        ckpt = ckpt_mod.load_checkpoint(resume_path) if resume_path else None
        self.complete = False
        if ckpt is not None:
            ckpt_mod.check_same_run(ckpt, cfg, resume_path)
            if int(ckpt["epoch"]) >= tr.epochs:
                self._already_complete(ckpt, resume_path)
                return
        self._check_model_config(cfg.model.num_classes or 1)
        self._build_data()
        self._build_model(resume_path, ckpt)
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            for stale in self.out.glob(".*.pt.*.tmp"):
                stale.unlink(missing_ok=True)

    def _check_model_config(self, num_classes: int) -> None:
        """Build the network on the meta device (no memory, no weights): the model name, its
        options and the image size against the head are checked before any data is read."""
        from tdsa.models import create_model

        m = self.cfg.model
        try:
            with torch.device("meta"):
                create_model(m.name, num_classes, xi=tuple(m.xi), pretrained=False,
                             **ckpt_mod.model_kwargs(self.cfg))
        except (ValueError, TypeError) as exc:  # ConfigError is a ValueError
            raise ConfigError(f"model (name={m.name!r}, xi={m.xi}, options={m.options}, "
                              f"data.image_size={self.cfg.data.image_size}): {exc}") from None

    def _already_complete(self, ckpt: dict[str, Any], path: Path) -> None:
        """The run in ``ckpt`` has done all its epochs: :meth:`fit` only reports it."""
        self.complete = True
        self.metrics = list(ckpt["metrics"])
        self.best = dict(ckpt["best"])
        self.resumed_from = str(path)

    # ---- construction -------------------------------------------------------------------
    def _build_data(self) -> None:
        from tdsa.data import build_dataset, build_transforms, list_datasets
        from tdsa.data.synthetic import generate

        d = self.cfg.data
        where = f"data (dataset={d.dataset!r}, root={self.root_given!r})"
        if d.dataset not in list_datasets():
            raise ConfigError(f"data.dataset={d.dataset!r} is unknown; valid datasets: "
                              f"{', '.join(list_datasets())}")
        try:
            train_tf = build_transforms(d.regime, d.image_size, train=True, resize=d.resize)
            test_tf = build_transforms(d.regime, d.image_size, train=False, resize=d.resize)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if d.dataset == "synthetic" and d.generate:
            meta = Path(d.root) / "tdsa_synthetic.json"
            if not meta.is_file():
                if self.info.is_main:
                    try:
                        generate(d.root, **d.synthetic)
                    except TypeError as exc:
                        raise ConfigError(f"data.synthetic: {exc}") from None
                barrier(self.info)
            else:
                _check_synthetic(meta, d.synthetic)
        try:
            self.train_set = build_dataset(d.dataset, d.root, "train", train_tf, **d.options)
            self.test_set = build_dataset(d.dataset, d.root, "test", test_tf, **d.options)
        except (ConfigError, TypeError) as exc:  # an unknown split or option: the config's
            raise ConfigError(f"{where}: {exc}") from None
        except ValueError as exc:  # anything else a reader rejects is the data's fault
            raise DataError(f"{where}: {exc}") from None
        self.train_augment = SeededAugment(self.train_set, self.cfg.runtime.seed)
        k = int(self.train_set.num_classes)
        if self.cfg.model.num_classes not in (None, k):
            raise ConfigError(
                f"model.num_classes={self.cfg.model.num_classes} but dataset {d.dataset!r} at "
                f"{d.root} has {k} classes"
            )
        self.cfg.model.num_classes = k
        self.cfg.validate(f"data.root {self.root_given} ({k} classes)")
        self.num_classes = k
        self.steps_per_epoch = len(self.train_set) // self.cfg.train.batch_size
        if self.steps_per_epoch < 1:
            raise DataError(
                f"{d.root}: the train split has {len(self.train_set)} images, fewer than "
                f"train.batch_size={self.cfg.train.batch_size}"
            )

    def _resume_path(self, resume: str | Path | None) -> Path | None:
        if resume is not None:
            path = Path(resume)
            if not path.is_file():
                raise CheckpointError(f"--resume: checkpoint not found: {path}")
            return path
        last = self.out / "last.pt"
        return last if last.is_file() else None

    def _build_model(self, resume_path: Path | None, ckpt: dict[str, Any] | None) -> None:
        from tdsa.losses import TDSALoss
        from tdsa.models import create_model

        cfg, info, dev = self.cfg, self.info, self.device
        if ckpt is not None:
            ckpt_mod.check_compatible(ckpt, cfg, self.num_classes, resume_path)
        net = create_model(
            cfg.model.name,
            self.num_classes,
            xi=tuple(cfg.model.xi),
            pretrained=False if ckpt is not None else cfg.model.pretrained,
            **ckpt_mod.model_kwargs(cfg),
        )
        if ckpt is not None:
            load_state_strict(net, ckpt["model"], str(resume_path))
        sync_bn = cfg.runtime.sync_bn if cfg.runtime.sync_bn is not None else info.distributed
        if sync_bn and info.distributed:
            net = convert_sync_batchnorm(net, dev)
        net.to(dev)
        if self.precision.channels_last:
            net.to(memory_format=torch.channels_last)
        self.net = net
        taps: nn.Module = _Taps(net)
        if info.distributed:
            taps = nn.parallel.DistributedDataParallel(
                taps, device_ids=[dev.index] if dev.type == "cuda" else None
            )
        if cfg.train.compile:
            taps = torch.compile(taps)
        self.taps = taps
        lc = cfg.loss
        self.criterion = TDSALoss(
            self.num_classes,
            xi_mid=cfg.model.xi[0],
            xi_high=cfg.model.xi[1],
            alpha_mid=lc.alpha_mid,
            beta_mid=lc.beta_mid,
            alpha_high=lc.alpha_high,
            beta_high=lc.beta_high,
            top_down=lc.top_down,
            keep_mid=lc.keep_mid,
            keep_high=lc.keep_high,
            div_temperature=lc.div_temperature,
        )
        self.optimizer = build_optimizer(net, cfg.optim)
        self.scheduler = build_scheduler(
            self.optimizer, cfg.schedule, self.steps_per_epoch, cfg.train.epochs
        )
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.precision.amp == "fp16")
        self.ema = ModelEMA(net, cfg.train.ema_decay) if cfg.train.ema else None
        self.mask_generator = torch.Generator(device=dev)
        self.mask_generator.manual_seed(cfg.runtime.seed)
        self.metrics: list[dict[str, Any]] = []
        self.start_epoch, self.start_step, self.partial = 0, 0, None
        self.best = {"top1": -1.0, "epoch": 0}
        if ckpt is not None:
            self._restore(ckpt)
            self.resumed_from = str(resume_path)
        else:
            self.resumed_from = None

    def _restore(self, ckpt: dict[str, Any]) -> None:
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
            if self.ema is not None:
                if not ckpt.get("ema"):
                    raise CheckpointError("the checkpoint has no EMA state but train.ema is on")
                self.ema.load_state_dict(ckpt["ema"])
            ckpt_mod.restore_rng(ckpt["rng"], self.mask_generator)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"cannot resume from the checkpoint: {exc}") from None
        self.metrics = list(ckpt["metrics"])
        self.best = dict(ckpt["best"])
        self.start_epoch = int(ckpt["epoch"])
        self.start_step = int(ckpt.get("batch", 0))
        self.partial = ckpt.get("partial")

    # ---- checkpoints --------------------------------------------------------------------
    def _checkpoint(self, epoch: int, batch: int, partial: dict | None) -> dict[str, Any]:
        return ckpt_mod.new_checkpoint(
            model=self.net.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            ema=self.ema.state_dict() if self.ema is not None else None,
            epoch=epoch,
            batch=batch,
            partial=partial,
            metrics=list(self.metrics),
            best=dict(self.best),
            config=self.cfg.to_dict(),
            num_classes=self.num_classes,
            rng=ckpt_mod.capture_rng(self.mask_generator),
        )

    def _save(
        self, names: tuple[str, ...], epoch: int, batch: int = 0, partial: dict | None = None
    ) -> None:
        if not self.info.is_main:
            return
        state = self._checkpoint(epoch, batch, partial)
        for name in names:
            ckpt_mod.atomic_save(state, self.out / name)

    # ---- loaders ------------------------------------------------------------------------
    def _train_loader(self, epoch: int, start_step: int) -> DataLoader:
        rt = self.cfg.runtime
        sampler = GlobalBatchSampler(
            len(self.train_set),
            self.cfg.train.batch_size,
            seed=rt.seed,
            epoch=epoch,
            rank=self.info.rank,
            world_size=self.info.world_size,
            start_step=start_step,
        )
        gen = torch.Generator()
        gen.manual_seed(_loader_seed(rt.seed, epoch, self.info.rank, start_step))
        self.train_augment.epoch = epoch
        return self._loader(self.train_augment, self.micro, sampler, gen)

    def _test_loader(self) -> DataLoader:
        sampler = ShardSampler(len(self.test_set), self.info.rank, self.info.world_size)
        bs = self.cfg.train.eval_batch_size or self.micro * self.cfg.train.accum_steps
        gen = torch.Generator()
        gen.manual_seed(_loader_seed(self.cfg.runtime.seed, 1 << 20))
        return self._loader(self.test_set, bs, sampler, gen)

    def _loader(self, ds: Dataset, bs: int, sampler: Any, gen: torch.Generator) -> DataLoader:
        workers = self.cfg.data.workers
        return DataLoader(
            ds,
            batch_size=bs,
            sampler=sampler,
            num_workers=workers,
            generator=gen,
            worker_init_fn=_seed_worker if workers else None,
            pin_memory=self.device.type == "cuda",
            drop_last=False,
        )

    # ---- training -----------------------------------------------------------------------
    def _aux_scale(self, epoch: int, step: int) -> float:
        ramp = self.cfg.loss.ramp_epochs
        return 1.0 if ramp <= 0 else min(1.0, (epoch + step / self.steps_per_epoch) / ramp)

    def _show_progress(self) -> bool:
        return self.info.is_main and progress_enabled(self.cfg.runtime.progress)

    def _train_epoch(self, epoch: int) -> tuple[dict[str, Any], bool]:
        cfg, dev = self.cfg, self.device
        tr = cfg.train
        start = self.start_step if epoch == self.start_epoch else 0
        sums = torch.zeros(len(TERMS) + 2, dtype=torch.float64, device=dev)
        elapsed = 0.0
        if start and self.partial is not None:
            sums += torch.tensor(self.partial["sums"], dtype=torch.float64, device=dev)
            elapsed = float(self.partial["time"])
        lr = [g["lr"] for g in self.optimizer.param_groups]
        if start and self.partial is not None:
            lr = list(self.partial["lr"])
        self.taps.train()
        loader = iter(self._train_loader(epoch, start))
        bar = progress_bar(
            total=self.steps_per_epoch,
            initial=start,
            disable=not self._show_progress(),
            desc=f"epoch {epoch + 1}/{tr.epochs}",
            dynamic_ncols=True,
        )
        t0 = time.perf_counter()
        interrupted = False
        for step in range(start, self.steps_per_epoch):
            aux = self._aux_scale(epoch, step)
            self.optimizer.zero_grad(set_to_none=True)
            for micro in range(tr.accum_steps):
                images, targets = next(loader)
                self._micro_step(images, targets, aux, sums, micro, epoch, step)
            if tr.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.net.parameters(), tr.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.net)
            bar.update(1)
            if bar.disable is False and (step % 5 == 0 or step == self.steps_per_epoch - 1):
                seen = max(float(sums[-1]), 1.0)
                bar.set_postfix(
                    {k: f"{float(sums[i]) / seen:.3f}" for i, k in enumerate(TERMS)}
                    | {"img/s": f"{seen / (elapsed + time.perf_counter() - t0):.0f}"}
                )
            if self._stop_requested():
                interrupted = step + 1 < self.steps_per_epoch
                if interrupted:
                    partial = {
                        "sums": sums.tolist(),
                        "lr": lr,
                        "time": elapsed + time.perf_counter() - t0,
                    }
                    self._save(("last.pt",), epoch, step + 1, partial)
                break
        bar.close()
        elapsed += time.perf_counter() - t0
        all_reduce_sum(sums, self.info)
        seen = max(float(sums[-1]), 1.0)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr[0]}
        if len(lr) > 1:
            row["lr_head"] = lr[-1]
        row["aux_scale"] = self._aux_scale(epoch, 0)
        for i, k in enumerate(TERMS):
            row[f"train_{k}"] = float(sums[i]) / seen
        row["train_top1"] = float(sums[len(TERMS)]) / seen * 100
        row["epoch_time"] = elapsed
        row["images_per_s"] = float(sums[-1]) / max(elapsed, 1e-9)
        row["precision"] = self.precision.label
        return row, interrupted

    def _micro_step(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        aux: float,
        sums: torch.Tensor,
        micro: int,
        epoch: int,
        step: int,
    ) -> None:
        tr, dev = self.cfg.train, self.device
        images = images.to(dev, non_blocking=True)
        targets = targets.to(dev, non_blocking=True)
        if self.precision.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        last = micro == tr.accum_steps - 1
        sync = (
            self.taps.no_sync()
            if isinstance(self.taps, nn.parallel.DistributedDataParallel) and not last
            else nullcontext()
        )
        with sync:
            with autocast(dev, self.precision.amp):
                logits, mid, high = self.taps(images)
                out = self.criterion(
                    logits, mid, high, targets, generator=self.mask_generator, aux_scale=aux
                )
            values = torch.stack([out[k].detach().float() for k in TERMS])
            self._check_finite(values, epoch, step)
            self.scaler.scale(out["total"] / tr.accum_steps).backward()
        n = targets.numel()
        sums[: len(TERMS)] += values.double() * n
        sums[len(TERMS)] += (logits.detach().argmax(dim=1) == targets).sum()
        sums[-1] += n

    def _check_finite(self, values: torch.Tensor, epoch: int, step: int) -> None:
        bad = (~torch.isfinite(values)).to(torch.float32)
        all_reduce_sum(bad, self.info)
        if bool(bad.any()):
            order = [*TERMS[1:], "total"]
            name = next(k for k in order if bad[TERMS.index(k)] > 0)
            kept = (
                f"last.pt keeps epoch {self.start_epoch_done}"
                if self.start_epoch_done
                else "no checkpoint was written yet"
            )
            raise NonFiniteLossError(
                f"loss term {name!r} became {float(values[TERMS.index(name)])} at epoch "
                f"{epoch + 1}, step {step + 1}: stopped ({kept}; nothing was saved after it). "
                f"Lower optim.lr, set train.grad_clip, or use train.amp=none"
            )

    def _stop_requested(self) -> bool:
        flag = torch.tensor([1.0 if self.signal_received else 0.0], device=self.device)
        all_reduce_sum(flag, self.info)
        if flag.item() > 0 and self.signal_received is None:
            self.signal_received = signal.SIGTERM
        return flag.item() > 0

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signal_received = signum

    # ---- the run ------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train from the start (or the resumed position) to ``train.epochs``; return the
        summary (also written to ``summary.json`` by rank 0).

        Book: chapter 4, *Full training*.
        """
        cfg = self.cfg
        if self.complete:
            return self._summary(None, 0.0, write=False) | {"already_complete": True}
        writer = None
        if self.info.is_main:
            note = "" if self.root_given == cfg.data.root else (
                f"# data.root was given as {self.root_given!r} (relative to {os.getcwd()})\n")
            (self.out / "config.yaml").write_text(note + dump_config(cfg), encoding="utf-8")
            writer = MetricsWriter(self.out, tensorboard=cfg.runtime.tensorboard)
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        stopped: str | None = None
        self.start_epoch_done = self.start_epoch
        t_run = time.perf_counter()
        try:
            for epoch in range(self.start_epoch, cfg.train.epochs):
                row, interrupted = self._train_epoch(epoch)
                if interrupted:
                    stopped = signal.Signals(self.signal_received).name
                    break
                t0 = time.perf_counter()
                model = self.ema.module if self.ema is not None else self.net
                res = evaluate(
                    model,
                    self._test_loader(),
                    self.device,
                    self.num_classes,
                    amp=self.precision.amp,
                    channels_last=self.precision.channels_last,
                    reduce=self.info.distributed,
                )
                row.update(
                    test_top1=res["top1"],
                    test_top5=res["top5"],
                    test_loss=res["loss"],
                    test_images=res["n"],
                    eval_time=time.perf_counter() - t0,
                )
                self.metrics.append(row)
                improved = row["test_top1"] > self.best["top1"]
                if improved:
                    self.best = {"top1": row["test_top1"], "epoch": epoch + 1}
                self._save(("last.pt", "best.pt") if improved else ("last.pt",), epoch + 1)
                self.start_epoch_done = epoch + 1
                if writer is not None:
                    writer.write(self.metrics)
                    log.info("%s", format_epoch_line(row, cfg.train.epochs, _aux_terms(cfg)))
                if self.signal_received is not None:
                    stopped = signal.Signals(self.signal_received).name
                    break
                if cfg.runtime.stop_after_epoch == epoch + 1 and epoch + 1 < cfg.train.epochs:
                    stopped = "stop_after_epoch"
                    break
        finally:
            for sig, old in handlers.items():
                signal.signal(sig, old)
            if writer is not None:
                writer.close()
        return self._summary(stopped, time.perf_counter() - t_run)

    def _summary(self, stopped: str | None, seconds: float, write: bool = True
                 ) -> dict[str, Any]:
        final = self.metrics[-1] if self.metrics else {}
        summary = {
            "run_dir": str(self.out),
            "epochs_completed": len(self.metrics),
            "epochs": self.cfg.train.epochs,
            "final_top1": final.get("test_top1", math.nan),
            "final_top5": final.get("test_top5", math.nan),
            "best_top1": self.best["top1"] if self.metrics else math.nan,
            "best_epoch": self.best["epoch"],
            "selection_note": SELECTION_NOTE,
            "stopped": stopped,
            "resumed_from": self.resumed_from,
            "data_root": self.cfg.data.root,
            "data_root_given": self.root_given,
            "seconds": seconds,
            "precision": self.precision.label,
            "metrics": list(self.metrics),
        }
        if self.info.is_main and write:
            (self.out / "summary.json").write_text(
                json.dumps({k: v for k, v in summary.items() if k != "metrics"}, indent=2) + "\n"
            )
        return summary


def train(
    config: Config | str | Path,
    out_dir: str | Path,
    *,
    overrides: tuple[str, ...] | list[str] = (),
    resume: str | Path | None = None,
) -> dict[str, Any]:
    """Train from a :class:`~tdsa.config.Config` or YAML path into the run folder ``out_dir``.

    ``overrides`` are dotted ``key=value`` strings. Resumes from ``resume`` or, when
    ``out_dir/last.pt`` exists, from there. Under ``torchrun`` each process calls this; only
    rank 0 writes files. Returns the summary: ``final_top1``, ``best_top1`` (selected on the
    test set, see ``selection_note``), ``best_epoch``, ``run_dir``, ``stopped`` (None,
    ``stop_after_epoch`` or a signal name) and the per-epoch ``metrics``.

    Book: chapter 4, *Full training*.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    cfg = apply_overrides(cfg, overrides)
    info = init_distributed(cfg.runtime.device)
    try:
        return Trainer(cfg, out_dir, info, resume).fit()
    finally:
        cleanup(info)
