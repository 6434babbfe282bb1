"""The speed targets of the benchmarks and whether a result meets them."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "loss_head_fraction": ("<=", 0.03),
    "step_ratio_tdsa_over_ce": ("<=", 1.05),
    "step_ratio_tdsa_over_ce_resnet50": ("<=", 1.05),
    "data_speedup_over_pil": (">=", 1.5),
    "peak_mem_ratio": ("<=", 1.15),
    "cpu_precision_speedup": (">=", 2.0),
}


def targets_met(result: dict[str, Any]) -> dict[str, bool]:
    """Whether each measured key of :data:`TARGETS` meets its bound."""
    return {
        key: (result[key] <= bound if op == "<=" else result[key] >= bound)
        for key, (op, bound) in TARGETS.items()
        if key in result
    }
