"""Evaluation that counts every test image: top-1, top-5, per-class accuracy, confusion matrix.

Book: chapter 7, *The recipe's code path, run*.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from tdsa.engine.precision import Precision, autocast, resolve_precision
from tdsa.metrics import confusion_matrix, per_class_accuracy, topk_correct


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str,
    num_classes: int,
    *,
    precision: Precision | None = None,
    reduce: bool = False,
) -> dict[str, Any]:
    """Evaluate ``model`` on every batch of ``loader`` (in eval mode; the mode is restored).

    Returns ``n`` (images), ``top1`` and ``top5`` (%), ``loss`` (mean cross-entropy),
    ``per_class`` (list of % per class, NaN for a class without images), ``mean_class``
    (% averaged over classes) and ``confusion`` (``[K, K]`` int64, rows = true class). With
    ``reduce`` the counts are summed over the ranks of the process group (each rank must see
    a disjoint shard, e.g. :class:`~tdsa.engine.distributed.ShardSampler`). ``precision`` is a
    resolved :class:`~tdsa.engine.precision.Precision` (a run's); None means what
    :func:`~tdsa.engine.precision.resolve_precision` picks for ``device`` (bf16 +
    channels_last where native).

    Book: chapter 4, *Evaluating a checkpoint: `tdsa eval`*.
    """
    device = torch.device(device)
    if precision is None:
        precision = resolve_precision(device)
    was_training = model.training
    model.eval()
    correct = torch.zeros(2, dtype=torch.float64, device=device)
    loss_sum = torch.zeros(1, dtype=torch.float64, device=device)
    count = torch.zeros(1, dtype=torch.float64, device=device)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    try:
        for images, targets in loader:
            images = images.to(device, dtype=precision.dtype, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            if precision.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision.amp):
                logits = model(images)
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            hits = topk_correct(logits, targets, ks=(1, 5))
            correct += torch.tensor([hits[1], hits[5]], dtype=torch.float64, device=device)
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
            count += targets.numel()
            confusion += confusion_matrix(logits.argmax(dim=1), targets, num_classes)
    finally:
        model.train(was_training)
    if reduce and dist.is_available() and dist.is_initialized():
        for t in (correct, loss_sum, count, confusion):
            dist.all_reduce(t)
    n = int(count.item())
    per_class = per_class_accuracy(confusion.cpu()) * 100
    denom = max(n, 1)
    return {
        "n": n,
        "top1": float(correct[0]) / denom * 100,
        "top5": float(correct[1]) / denom * 100,
        "loss": float(loss_sum.item()) / denom,
        "per_class": per_class.tolist(),
        "mean_class": float(per_class.nanmean()) if n else float("nan"),
        "confusion": confusion.cpu(),
    }
