"""The precision benchmark: the book's training step on the CPU in fp32 against the auto
precision."""

from __future__ import annotations

from typing import Any

import torch

from tdsa.engine.precision import Precision, resolve_precision
from tdsa.experiments.bench.arms import book_arm
from tdsa.experiments.bench.timing import time_interleaved


def bench_precision(book: dict[str, Any], *, warmup: int, repeats: int) -> dict[str, Any]:
    """One TDSA training step of the book's network on the CPU in fp32 (contiguous) vs the auto
    precision; ``cpu_precision_speedup`` = fp32 time / auto time (> 1: auto is faster)."""
    auto = resolve_precision("cpu")
    arms = {"fp32": book_arm(book, Precision("none", False)), "auto": book_arm(book, auto)}
    ms = time_interleaved(arms, torch.device("cpu"), warmup=warmup, repeats=repeats)
    return {
        "network": {k: book[k] for k in ("name", "num_classes", "size", "batch", "options")},
        "auto_precision": auto.label,
        "fp32_ms": ms["fp32"],
        "auto_ms": ms["auto"],
        "cpu_precision_speedup": ms["fp32"] / ms["auto"],
    }
