"""Seeds that stall: a run that ends far below its arm's other seeds, and what it recorded.

A seed is *stalled* when its final number lies more than ``k`` sample standard deviations below
the mean of the arm's **other** seeds. Leaving the seed out matters: measured against the mean
and std of all ``n`` seeds including itself, no seed can lie further than ``(n - 1) / sqrt(n)``
std from the mean (1.79 for five seeds), so "more than 2 std below the arm's mean" could never
fire. The epoch records a grid keeps for every run (``results/<grid>/curves.csv``, written by
:mod:`tdsa.experiments.grid`) say what the stalled run did: losses per term, gradient norms per
stage, train and val top-1 per epoch, after its run folder is gone.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tdsa.errors import DataError
from tdsa.experiments.evidence import Row

__all__ = ["Stall", "read_curves", "stalled_seeds"]


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


def read_curves(results_path: str | Path) -> dict[tuple[str, int], list[dict[str, float]]]:
    """The epoch records of a grid's runs, ``results_path/curves.csv`` (``results_path`` is
    ``results/<grid>`` without a suffix), by ``(variant, seed)``, each in epoch order."""
    path = Path(results_path) / "curves.csv"
    if not path.is_file():
        raise DataError(f"{path}: no such curves file (written by python -m tdsa ablate)")
    curves: dict[tuple[str, int], list[dict[str, float]]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            curves.setdefault((row["variant"], int(row["seed"])), []).append(
                {k: float(v) for k, v in row.items() if k not in ("variant", "seed") and v})
    return {key: sorted(rows, key=lambda r: r["epoch"]) for key, rows in curves.items()}
