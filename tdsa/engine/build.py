"""Building a run from its config: runtime switches, the datasets and the network with its loss,
optimiser, schedule, scaler and EMA (the pieces :class:`tdsa.engine.trainer.Trainer` holds).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from tdsa.config import Config, DataConfig, RuntimeConfig
from tdsa.data import FGVCDataset, from_config
from tdsa.engine import checkpoint as ckpt_mod
from tdsa.engine.allocator import keep_freed_memory
from tdsa.engine.distributed import DistInfo, barrier, convert_sync_batchnorm
from tdsa.engine.ema import ModelEMA
from tdsa.engine.optim import build_optimizer, build_scheduler
from tdsa.engine.precision import Precision
from tdsa.errors import ConfigError, DataError
from tdsa.models import create_model_from_config
from tdsa.models.base import TdsaNet
from tdsa.models.pretrained import load_state_strict


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_runtime(rt: RuntimeConfig) -> None:
    """Thread count, deterministic algorithms (or the cuDNN autotuner), host memory kept
    between steps (:func:`~tdsa.engine.allocator.keep_freed_memory`) and the seeds."""
    keep_freed_memory()
    if rt.threads:
        torch.set_num_threads(rt.threads)
    if rt.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True
    seed_everything(rt.seed)


class SeededAugment(Dataset):
    """Wraps a training set so the random augmentation of sample ``i`` in epoch ``e`` is drawn
    from a torch RNG seeded by ``(seed, e, i)`` (the global RNG is forked and restored).

    So the augmentations do not depend on the number of processes, loader workers, or where a
    resumed run starts: N processes see exactly the images one process sees.
    """

    def __init__(self, dataset: FGVCDataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        sample_seed = ((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index) % 2**63
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            return self.dataset[index]


@dataclass
class RunData:
    """The splits of a run: ``train`` (through ``augment``), ``test``, ``val`` (or None)."""

    train: FGVCDataset
    test: FGVCDataset
    val: FGVCDataset | None
    augment: SeededAugment
    num_classes: int
    steps_per_epoch: int


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


def ensure_synthetic(d: DataConfig, info: DistInfo) -> None:
    """With ``data.generate`` on synthetic data: generate a missing root (rank 0, the others
    wait), or check that an existing one was generated with ``data.synthetic`` (its
    ``unique_part`` compared even when not given: it changes the classes)."""
    from tdsa.data.synthetic import check_unique_part, generate

    if d.dataset != "synthetic" or not d.generate:
        return
    check_unique_part(d.synthetic.get("unique_part"), "data.synthetic.unique_part")
    meta = Path(d.root) / "tdsa_synthetic.json"
    if meta.is_file():
        _check_synthetic(meta, {"unique_part": None, **d.synthetic})
        return
    if info.is_main:
        try:
            generate(d.root, **d.synthetic)
        except TypeError as exc:
            raise ConfigError(f"data.synthetic: {exc}") from None
    barrier(info)


def build_data(cfg: Config, info: DistInfo, root_given: str) -> tuple[Config, RunData]:
    """The run's splits (:func:`tdsa.data.from_config`) and ``cfg`` with ``model.num_classes``
    filled in from the train split (a new config, validated with it)."""
    d = cfg.data
    ensure_synthetic(d, info)
    train = from_config(d, d.train_split, train=True)
    test = from_config(d, "test")
    val = from_config(d, d.val_split) if d.val_split else None
    k = int(train.num_classes)
    if cfg.model.num_classes not in (None, k):
        raise ConfigError(f"model.num_classes={cfg.model.num_classes} but dataset "
                          f"{d.dataset!r} at {d.root} has {k} classes")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_classes=k))
    cfg.validate(f"data.root {root_given} ({k} classes)")
    steps = len(train) // cfg.train.batch_size
    if steps < 1:
        raise DataError(f"{d.root}: the train split has {len(train)} images, fewer than "
                        f"train.batch_size={cfg.train.batch_size}")
    return cfg, RunData(train, test, val, SeededAugment(train, cfg.runtime.seed), k, steps)


def check_model_config(cfg: Config) -> None:
    """Build the network on the meta device (no memory, no weights): the model name, its
    options and the image size against the head are checked before any data is read."""
    m = cfg.model
    try:
        with torch.device("meta"):
            create_model_from_config(cfg, m.num_classes or 1)
    except (ValueError, TypeError) as exc:  # ConfigError is a ValueError
        raise ConfigError(f"model (name={m.name!r}, xi={m.xi}, options={m.options}, "
                          f"data.image_size={cfg.data.image_size}): {exc}") from None


class Taps(nn.Module):
    """One forward returning ``(logits, mid, high)``, so DDP sees a single call."""

    def __init__(self, model: TdsaNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.model.forward_features(x)
        return self.model.forward_head(feats["high"]), feats["mid"], feats["high"]


@dataclass
class RunModel:
    """The network (``net``; ``taps`` wraps it for the training forward, under DDP and
    ``torch.compile`` when on) and what updates it."""

    net: TdsaNet
    taps: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    mask_generator: torch.Generator


def build_network(cfg: Config, info: DistInfo, precision: Precision, num_classes: int,
                  start: ckpt_mod.ResumePoint | None) -> TdsaNet:
    """The network of ``cfg`` (the weights of the checkpoint ``start`` when resuming, else its
    init or pretrained weights), on the device, SyncBN under DDP when asked, channels_last
    when on."""
    if start is not None:
        ckpt_mod.check_compatible(start.state, start.config, cfg, num_classes, start.path)
    net = create_model_from_config(
        cfg, num_classes, pretrained=False if start is not None else cfg.model.pretrained)
    if start is not None:
        load_state_strict(net, start.state["model"], str(start.path))
    sync_bn = cfg.runtime.sync_bn if cfg.runtime.sync_bn is not None else info.distributed
    if sync_bn and info.distributed:
        # Only the batch-norm layers inside are replaced: the network keeps its class.
        net = cast(TdsaNet, convert_sync_batchnorm(net, info.device))
    net.to(info.device, dtype=precision.dtype)
    if precision.channels_last:
        net.to(memory_format=torch.channels_last)
    return net


def build_criterion(cfg: Config, net: TdsaNet) -> nn.Module:
    """The :class:`tdsa.losses.TDSALoss` of ``cfg.loss`` (every field but the schedule's
    ``ramp_epochs``) for the network it trains: its class count and its ``xi``."""
    from tdsa.losses import TDSALoss

    weights = {k: v for k, v in dataclasses.asdict(cfg.loss).items() if k != "ramp_epochs"}
    return TDSALoss(net.num_classes, xi_mid=net.xi[0], xi_high=net.xi[1], **weights)


def build_model(cfg: Config, info: DistInfo, precision: Precision, data: RunData,
                start: ckpt_mod.ResumePoint | None) -> RunModel:
    """:func:`build_network` and its loss, optimiser, schedule, gradient scaler, EMA and the
    seeded generator of the loss's random masks."""
    net = build_network(cfg, info, precision, data.num_classes, start)
    dev = info.device
    taps: nn.Module = Taps(net)
    if info.distributed:
        taps = nn.parallel.DistributedDataParallel(
            taps, device_ids=[dev.index] if dev.type == "cuda" else None)
    if cfg.train.compile:
        taps = cast(nn.Module, torch.compile(taps))  # an OptimizedModule for a module
    criterion = build_criterion(cfg, net)
    optimizer = build_optimizer(net, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.schedule, data.steps_per_epoch, cfg.train.epochs)
    scaler = torch.amp.GradScaler(dev.type, enabled=precision.amp == "fp16")
    ema = ModelEMA(net, cfg.train.ema_decay) if cfg.train.ema else None
    mask_generator = torch.Generator(device=dev)
    mask_generator.manual_seed(cfg.runtime.seed)
    return RunModel(net, taps, criterion, optimizer, scheduler, scaler, ema, mask_generator)
