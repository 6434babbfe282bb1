"""The memory benchmark: peak tensor memory of a TDSA step against a CE step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tdsa.engine.precision import Precision
from tdsa.experiments.bench.arms import StepArm, model_and_batch

PEAK_MEM_METHOD = {
    "cpu": "torch.profiler profile_memory: running sum of allocator events, max over one step",
    "cuda": "torch.cuda.max_memory_allocated over one step (after reset_peak_memory_stats)",
}


def peak_allocated_bytes(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak bytes held by tensors allocated while ``fn()`` runs, above what was held before it
    (CPU: ``torch.profiler`` allocator events summed in time order, the running maximum; CUDA:
    ``max_memory_allocated`` minus ``memory_allocated`` at the start).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    )
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak


def bench_memory(
    device: torch.device, precision: Precision, *, num_classes: int, size: int, batch: int
) -> dict[str, Any]:
    """Peak tensor memory of a TDSA step vs a CE step on ``tdsa_vgg16`` (same network), each
    measured by :func:`peak_allocated_bytes` on a step after a warm-up step (so the optimiser's
    state already exists), its gradients freed just before (so that every block the step frees
    was allocated inside the measurement)."""
    peaks: dict[str, int] = {}
    for mode in ("ce", "tdsa"):
        model, x, y = model_and_batch("tdsa_vgg16", num_classes, size, batch, device, precision)
        arm = StepArm(model, mode, x, y, precision)
        arm()
        arm.opt.zero_grad(set_to_none=True)
        peaks[mode] = peak_allocated_bytes(arm, device)
        del model, arm, x, y
    return {
        "method": PEAK_MEM_METHOD[device.type],
        "ce_peak_mb": peaks["ce"] / 2**20,
        "tdsa_peak_mb": peaks["tdsa"] / 2**20,
        "peak_mem_ratio": peaks["tdsa"] / peaks["ce"],
    }
