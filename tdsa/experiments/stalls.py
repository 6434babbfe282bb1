"""Seeds that stall: a run that ends far below its arm's other seeds, and what it recorded.

A seed is *stalled* when its final number lies more than ``k`` sample standard deviations below
the mean of the arm's **other** seeds. Leaving the seed out matters: measured against the mean
and std of all ``n`` seeds including itself, no seed can lie further than ``(n - 1) / sqrt(n)``
std from the mean (1.79 for five seeds), so "more than 2 std below the arm's mean" could never
fire. The epoch records a grid keeps for every run (``results/<grid>/curves.csv``, written by
:mod:`tdsa.experiments.grid`) say what the stalled run did: losses per term, gradient norms per
stage, train and val top-1 per epoch, after its run folder is gone
(:func:`tdsa.experiments.grid.read_curves`): :func:`fell_behind` finds the epoch from which it
stayed behind the other seeds, and :func:`curve_deviations` ranks what it recorded at its end by
how far it lies from the same record of the other seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tdsa.experiments.evidence import Row

__all__ = ["Deviation", "Stall", "curve_deviations", "fell_behind", "stalled_seeds"]

Curves = Mapping[tuple[str, int], Sequence[Mapping[str, float]]]
"""Epoch records by ``(variant, seed)``, as :func:`tdsa.experiments.grid.read_curves` returns."""

SCHEDULE_KEYS = ("epoch", "lr", "lr_head", "aux_scale", "val_images", "test_images")
"""Recorded keys that the schedule or the data fix, the same in every seed: never deviations."""


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
    other seeds below their mean (leave-one-out), lowest first. It needs four finished seeds:
    against the standard deviation of two others, the outer of any three evenly spaced values
    lies 2.12 std away."""
    values = {int(r["seed"]): float(r[column])  # type: ignore[call-overload, arg-type]
              for r in rows if r["variant"] == variant and r["status"] == "ok"
              and not math.isnan(float(r.get(column, math.nan)))}  # type: ignore[arg-type]
    stalls = []
    for seed, value in values.items():
        others = [v for s, v in values.items() if s != seed]
        if len(others) < 3:
            continue
        mean, std, z = _z(value, others)
        if -z > k:
            stalls.append(Stall(seed, value, mean, std, -z))
    return sorted(stalls, key=lambda s: s.value)


def _z(value: float, others: Sequence[float]) -> tuple[float, float, float]:
    """``(mean, std, z)`` of ``value`` against ``others`` (z signed, infinite when the others
    agree exactly and ``value`` does not)."""
    mean, std = statistics.fmean(others), statistics.stdev(others)
    if std > 0:
        return mean, std, (value - mean) / std
    return mean, std, 0.0 if value == mean else math.copysign(math.inf, value - mean)


def fell_behind(curves: Curves, variant: str, seed: int, others: Sequence[int], *,
                key: str = "train_top1", k: float = 2.0) -> int | None:
    """The first epoch from which ``seed``'s ``key`` lies more than ``k`` standard deviations of
    the ``others`` seeds below their mean at that epoch, and stays there to its last epoch;
    None when its last epoch is not such an epoch (or fewer than two other seeds recorded it).

    Book: chapter 5, *Seeds that stall*.
    """
    def by_epoch(s: int) -> dict[float, float]:
        return {r["epoch"]: r[key] for r in curves.get((variant, s), []) if key in r}

    own, rest = by_epoch(seed), [by_epoch(s) for s in others if s != seed]
    behind: int | None = None
    for epoch in sorted(own):
        values = [r[epoch] for r in rest if epoch in r]
        if len(values) >= 2 and _z(own[epoch], values)[2] < -k:
            behind = int(epoch) if behind is None else behind
        else:
            behind = None
    return behind


@dataclass(frozen=True)
class Deviation:
    """One quantity a run recorded, averaged over its last epochs, against the same average of
    the other seeds (``z``: signed, in their standard deviations)."""

    key: str
    value: float
    others_mean: float
    others_std: float
    z: float


def curve_deviations(curves: Curves, variant: str, seed: int, others: Sequence[int], *,
                     fraction: float = 0.125) -> list[Deviation]:
    """Every quantity ``seed``'s run recorded (per-term losses, gradient norms per stage,
    train and val top-1, ...; not the schedule's :data:`SCHEDULE_KEYS`), averaged over the last
    ``fraction`` of its epochs (at least one), against the same average of each of the
    ``others`` seeds that recorded it (two at least): largest ``|z|`` first. Empty when the
    seed recorded no curve.

    Book: chapter 5, *Seeds that stall*.
    """
    def tail(s: int) -> dict[str, float]:
        rows = list(curves.get((variant, s), []))
        if not rows:
            return {}
        last = rows[-max(1, round(fraction * len(rows))):]
        keys = [k for k in last[0] if k not in SCHEDULE_KEYS and all(k in r for r in last)]
        return {k: statistics.fmean(r[k] for r in last) for k in keys}

    own, rest = tail(seed), [tail(s) for s in others if s != seed]
    out = []
    for key, value in own.items():
        values = [r[key] for r in rest if key in r]
        if len(values) >= 2:
            mean, std, z = _z(value, values)
            out.append(Deviation(key, value, mean, std, z))
    return sorted(out, key=lambda d: -abs(d.z))
