"""Data-parallel training with ``torchrun``: process group, samplers, SyncBatchNorm, reductions.

``torchrun --nproc_per_node=N -m tdsa train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` starts NCCL on CUDA and gloo on the CPU. The train
sampler splits each *global* batch of a seeded per-epoch permutation across the ranks, so N
processes see exactly the samples one process with the same global batch would see; the eval
sampler shards the test set without padding, so every test image is counted once.
PyTorch's ``SyncBatchNorm`` runs only on accelerators: on the CPU :class:`AllReduceBatchNorm`
(an autograd all-reduce of the batch statistics) takes its place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce as autograd_all_reduce
from torch.utils.data import Sampler

from tdsa.errors import ConfigError


@dataclass
class DistInfo:
    """Rank, world size, local rank and device of this process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized_here: bool = False

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress bars."""
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device={name!r} but CUDA is not available on this machine")
    return torch.device(name)


def init_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's environment; start the process group when ``WORLD_SIZE`` > 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistInfo(device=dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    initialized_here = False
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world
        )
        initialized_here = True
    return DistInfo(rank, world, local_rank, dev, initialized_here)


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in one process)."""
    if info.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (no-op in one process); returns it.
    """
    if info.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def epoch_permutation(n: int, seed: int, epoch: int) -> list[int]:
    """The training order of epoch ``epoch``: a permutation of ``range(n)`` seeded by
    ``(seed, epoch)``, identical on every rank and on resume.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
    return rng.permutation(n).tolist()


class GlobalBatchSampler(Sampler[int]):
    """Training indices of one rank for one epoch.

    The epoch's permutation is cut into global batches of ``global_batch`` (the incomplete
    last one is dropped, as a train ``drop_last``); rank ``r`` takes the ``r``-th of
    ``world_size`` equal slices of each. ``start_step`` skips the first optimiser steps (a
    resume in the middle of an epoch). Use with a DataLoader of batch size
    ``global_batch / (world_size * accum_steps)``.
    """

    def __init__(
        self,
        n: int,
        global_batch: int,
        *,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        if global_batch % world_size:
            raise ConfigError(
                f"train.batch_size={global_batch} must be divisible by the number of "
                f"processes ({world_size})"
            )
        self.n, self.global_batch, self.seed, self.epoch = n, global_batch, seed, epoch
        self.rank, self.world_size, self.start_step = rank, world_size, start_step

    def steps(self) -> int:
        """Optimiser steps in a full epoch."""
        return self.n // self.global_batch

    def __iter__(self) -> Iterator[int]:
        perm = epoch_permutation(self.n, self.seed, self.epoch)
        share = self.global_batch // self.world_size
        for step in range(self.start_step, self.steps()):
            lo = step * self.global_batch + self.rank * share
            yield from perm[lo : lo + share]

    def __len__(self) -> int:
        return (self.steps() - self.start_step) * (self.global_batch // self.world_size)


class ShardSampler(Sampler[int]):
    """Contiguous, non-padding shard of ``range(n)`` for rank ``rank``: every index appears on
    exactly one rank, so summed counts cover each test image once.
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        self.lo = n * rank // world_size
        self.hi = n * (rank + 1) // world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.lo, self.hi))

    def __len__(self) -> int:
        return self.hi - self.lo


class AllReduceBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are computed over all ranks (any device).

    Two autograd all-reduces (sum, then centred sum of squares) give the global mean and
    biased variance; gradients flow back through them, as in ``SyncBatchNorm``. In one
    process, in eval mode, or without a process group it is plain batch norm.
    """

    def __init__(self, *args, group: dist.ProcessGroup | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.group = group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sync = (
            self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size(self.group) > 1
        )
        if not sync:
            return super().forward(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)
        acc = torch.promote_types(x.dtype, torch.float32)  # float32 under autocast, else x's
        xf = x.to(acc)
        count = torch.tensor([x.numel() / c], dtype=acc, device=x.device)
        first = autograd_all_reduce(torch.cat([xf.sum(dims), count]), group=self.group)
        n = first[-1]
        mean = first[:c] / n
        centred = xf - mean.view(shape)
        var = autograd_all_reduce((centred * centred).sum(dims), group=self.group) / n
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            assert self.num_batches_tracked is not None  # buffers exist when tracking
            assert self.running_mean is not None and self.running_var is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * n / (n - 1).clamp(min=1)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm layer with a cross-rank one: ``nn.SyncBatchNorm`` on CUDA,
    :class:`AllReduceBatchNorm` (in its own gloo group) elsewhere.
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    group = dist.new_group(backend="gloo") if dist.is_initialized() else None
    # Every rank is in the new group, so it is never NON_GROUP_MEMBER (-100).
    return _convert(model, cast(dist.ProcessGroup | None, group))


def _convert(module: nn.Module, group: dist.ProcessGroup | None) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        out = AllReduceBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            group=group,
        )
        with torch.no_grad():
            if module.affine:
                out.weight.copy_(module.weight)
                out.bias.copy_(module.bias)
            if module.track_running_stats:
                for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                    out.get_buffer(buffer).copy_(module.get_buffer(buffer))
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child, group))
    return out
