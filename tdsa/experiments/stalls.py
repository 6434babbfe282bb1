"""Seeds that stall: a run that ends far below its arm's other seeds, and what it recorded.

A seed is *stalled* when its final number lies more than ``k`` sample standard deviations below
the mean of the arm's **other** seeds. Leaving the seed out matters: measured against the mean
and std of all ``n`` seeds including itself, no seed can lie further than ``(n - 1) / sqrt(n)``
std from the mean (1.79 for five seeds), so "more than 2 std below the arm's mean" could never
fire. The epoch records a grid keeps for every run (``results/<grid>/curves.csv``, written by
:mod:`tdsa.experiments.grid`) say what the stalled run did: losses per term, gradient norms per
stage, train and val top-1 per epoch, after its run folder is gone
(:func:`tdsa.experiments.grid.read_curves`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from tdsa.experiments.evidence import Row

__all__ = ["Stall", "stalled_seeds"]


@dataclass(frozen=True)
class Stall:
    """One stalled seed: its value, the mean and std of the arm's other seeds, and how many of
    their standard deviations it lies below their mean (``z``, positive below)."""

    seed: int
    value: float
    others_mean: float
    others_std: float
    z: float


def stalled_seeds(rows: Iterable[Row], variant: str, column: str = "final_top1",
                  k: float = 2.0) -> list[Stall]:
    """The seeds of ``variant`` whose ``column`` lies more than ``k`` standard deviations of the
    other seeds below their mean (leave-one-out; needs three finished seeds), lowest first."""
    values = {int(r["seed"]): float(r[column])  # type: ignore[call-overload, arg-type]
              for r in rows if r["variant"] == variant and r["status"] == "ok"
              and not math.isnan(float(r.get(column, math.nan)))}  # type: ignore[arg-type]
    stalls = []
    for seed, value in values.items():
        others = [v for s, v in values.items() if s != seed]
        if len(others) < 2:
            continue
        mean, std = statistics.fmean(others), statistics.stdev(others)
        z = (mean - value) / std if std > 0 else (math.inf if value < mean else 0.0)
        if z > k:
            stalls.append(Stall(seed, value, mean, std, z))
    return sorted(stalls, key=lambda s: s.value)
