"""How the benchmarks time and count: medians of interleaved calls, the spread of paired
ratios, an operator profile and the arithmetic (FLOPs) of one call."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: Mapping[str, Callable[[], None]],
    device: torch.device,
    *,
    warmup: int,
    repeats: int,
    cpu_ms: dict[str, float] | None = None,
    samples: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """Median wall time (ms) of each function after warm-up, calls interleaved A B, B A, A B ...
    (the order flips every repeat so that neither arm always runs first). A dict passed as
    ``cpu_ms`` also receives each function's median process CPU time (ms) over the same calls:
    on a CPU shared with other work it counts only the time this process ran, where wall time
    also counts the time it waited for a core. A dict passed as ``samples`` receives every
    repeat's wall time (ms) per function, in repeat order (for :func:`paired_ratio_quartiles`).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    cpu_times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else reversed(names):
            fn = fns[name]
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
            cpu_times[name].append((time.process_time() - c0) * 1e3)
    if cpu_ms is not None:
        cpu_ms.update({name: statistics.median(ts) for name, ts in cpu_times.items()})
    if samples is not None:
        samples.update(times)
    return {name: statistics.median(ts) for name, ts in times.items()}


def paired_ratio_quartiles(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """First quartile, median and third quartile of the per-repeat ratios ``num[i] / den[i]``:
    two arms timed side by side in each repeat share that repeat's machine load, so the spread
    of their ratio shows how far a single ratio of medians can be trusted."""
    if len(num) != len(den) or not num:
        raise ValueError(f"paired samples of equal, non-zero length expected: got {len(num)} "
                         f"and {len(den)}")
    ratios = sorted(a / b for a, b in zip(num, den, strict=True))
    if len(ratios) == 1:
        return ratios * 3
    q1, q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return [q1, q2, q3]


def profile_ops(fn: Callable[[], Any], device: torch.device, top: int = 8) -> dict[str, float]:
    """Self time (ms) of the ``top`` most expensive operators of one call of ``fn``
    (``torch.profiler``; CUDA time on a GPU, CPU time otherwise)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    rows = sorted(prof.key_averages(), key=lambda e: getattr(e, attr), reverse=True)[:top]
    return {e.key: getattr(e, attr) / 1e3 for e in rows}


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of the convolutions and matmuls in one call of ``fn``
    (``torch.utils.flop_counter``; elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()
