"""The budget curve and the converged budget E: how many epochs a fair comparison trains.

A budget grid (``configs/ablations/budget.yaml``) trains each arm at several epoch budgets with
warm-up and ramp scaled to the budget, on val only. The *converged budget* E is the smallest
budget at which doubling it changes no arm's mean final val top-1 by more than
:data:`TOLERANCE` points; when no measured pair of budgets satisfies that, E is the largest
budget measured and :attr:`Budget.converged` is False (the curve still rises there).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TOLERANCE = 1.0
"""Points of mean final val top-1 within which doubling the budget counts as no change."""

_VARIANT = re.compile(r"^(?P<arm>.+)_e(?P<epochs>\d+)$")


@dataclass(frozen=True)
class BudgetPoint:
    """One arm at one budget: final val and train top-1 (%) over its finished seeds."""

    arm: str
    epochs: int
    seeds: tuple[int, ...]
    val: tuple[float, ...]
    train: tuple[float, ...]

    @property
    def val_mean(self) -> float:
        return statistics.fmean(self.val)

    @property
    def val_std(self) -> float:
        return statistics.stdev(self.val) if len(self.val) > 1 else math.nan

    @property
    def train_mean(self) -> float:
        return statistics.fmean(self.train)

    @property
    def train_std(self) -> float:
        return statistics.stdev(self.train) if len(self.train) > 1 else math.nan


@dataclass(frozen=True)
class Budget:
    """The converged budget: ``epochs`` (E), whether the rule found it (``converged``) and the
    change of each arm's mean val top-1 over the doubling that decided it: from E to 2E when
    converged, else over the last doubling measured (from E/2 to E; empty when the grid has
    no doubling)."""

    epochs: int
    converged: bool
    changes: Mapping[str, float]


def budget_points(rows: Iterable[Mapping[str, Any]]) -> list[BudgetPoint]:
    """The :class:`BudgetPoint` of every ``<arm>_e<epochs>`` variant in a budget grid's results
    rows (``final_val_top1``, ``final_train_top1``; finished runs only), sorted by arm, epochs."""
    found: dict[tuple[str, int], list[tuple[int, float, float]]] = {}
    for row in rows:
        match = _VARIANT.match(str(row["variant"]))
        if not match or row.get("status") != "ok":
            continue
        key = (match["arm"], int(match["epochs"]))
        found.setdefault(key, []).append(
            (int(row["seed"]), float(row["final_val_top1"]), float(row["final_train_top1"])))
    points = []
    for (arm, epochs), runs in sorted(found.items()):
        runs.sort()
        points.append(BudgetPoint(arm, epochs, tuple(r[0] for r in runs),
                                  tuple(r[1] for r in runs), tuple(r[2] for r in runs)))
    return points


def converged_budget(points: Sequence[BudgetPoint], tolerance: float = TOLERANCE) -> Budget:
    """E by the rule of the module docstring, over the arms that every budget measured: the
    smallest budget b with 2b measured for every arm and every arm's ``|mean(2b) - mean(b)|
    <= tolerance``; else the largest budget measured for every arm, not converged."""
    by_arm: dict[str, dict[int, BudgetPoint]] = {}
    for p in points:
        by_arm.setdefault(p.arm, {})[p.epochs] = p
    if not by_arm:
        raise ValueError("no finished budget runs")
    common = sorted(set.intersection(*(set(b) for b in by_arm.values())))
    if not common:
        raise ValueError("no budget was measured for every arm")
    changes: dict[str, float] = {}
    for b in common:
        if 2 * b not in common:
            continue
        changes = {arm: pts[2 * b].val_mean - pts[b].val_mean for arm, pts in by_arm.items()}
        if all(abs(c) <= tolerance for c in changes.values()):
            return Budget(b, True, changes)
    return Budget(common[-1], False, changes)


def plot_budget_curve(points: Sequence[BudgetPoint], ax: Any = None, title: str = "") -> Any:
    """Final val (solid) and train (dashed) top-1 against the epoch budget, mean ± std over
    seeds, one colour per arm, under ``title``; returns the axes (on a new figure when ``ax``
    is None).

    Book: chapter 5, *The budget: how long to train*.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.2))
    arms = sorted({p.arm for p in points})
    for i, arm in enumerate(arms):
        pts = sorted((p for p in points if p.arm == arm), key=lambda p: p.epochs)
        x = [p.epochs for p in pts]
        colour = f"C{i}"
        for mean, std, style, split in (("val_mean", "val_std", "-", "val"),
                                        ("train_mean", "train_std", "--", "train")):
            ys = [getattr(p, mean) for p in pts]
            errs = [0.0 if math.isnan(getattr(p, std)) else getattr(p, std) for p in pts]
            ax.errorbar(x, ys, yerr=errs, fmt=f"o{style}", color=colour, capsize=3,
                        label=f"{arm} {split}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({p.epochs for p in points}))
    ax.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("epochs (budget)")
    ax.set_ylabel("final top-1 (%)")
    ax.legend(fontsize=9, ncol=2)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
