"""Joint tuning at the converged budget: each arm's grid crosses two settings, and an arm is
chosen only when every cell of its grid has every seed.

The variants of a joint-tuning grid (``configs/ablations/tuning_joint.yaml``) are ranked as
:class:`~tdsa.experiments.calibration.Candidate` s by
:func:`~tdsa.experiments.calibration.tuning_candidates`; a variant that the grid file marks
``eligible: false`` (a labelled point outside the grid, such as the published loss weights) is
reported and never chosen. The settings an arm's grid crosses are read from its variants'
overrides: the keys whose values differ between them, the first as the rows of the crossing and
the others (which move together, e.g. the four auxiliary weights) as its columns. Whether the
chosen setting still improves at the end of its runs is read from the epoch records the grid
keeps (:func:`tdsa.experiments.grid.read_curves`).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tdsa.experiments.calibration import Candidate, choose, tuning_candidates
from tdsa.experiments.evidence import Row
from tdsa.experiments.grid import Grid

__all__ = ["OUTSIDE", "Crossing", "LateRise", "crossing", "inside", "joint_candidates",
           "joint_choice", "late_rise"]

OUTSIDE = "outside the grid: reported, never chosen"
"""The reason a variant marked ``eligible: false`` in its grid file is not a candidate."""


def joint_candidates(grid: Grid, rows: Sequence[Row], *, seeds: Sequence[int],
                     epochs: int) -> list[Candidate]:
    """Every variant of a joint-tuning ``grid`` with its result ``rows`` as a ranked
    :class:`~tdsa.experiments.calibration.Candidate`: eligible when every seed of ``seeds``
    finished, it trains at most ``epochs`` epochs and its grid file does not mark it
    ``eligible: false`` (reason :data:`OUTSIDE`).

    Book: chapter 5, *Joint tuning at E*.
    """
    ranked = tuning_candidates([(grid, rows)], seeds=seeds, max_epochs=epochs)
    return [c if grid.variants[c.variant].eligible
            else dataclasses.replace(c, eligible=False, reason=OUTSIDE) for c in ranked]


def inside(candidates: Sequence[Candidate], arm: str) -> list[Candidate]:
    """The candidates of ``arm`` inside its grid: all but those marked ``eligible: false``."""
    return [c for c in candidates if c.arm == arm and c.reason != OUTSIDE]


def joint_choice(candidates: Sequence[Candidate], arm: str) -> Candidate | None:
    """The setting ``arm`` chooses: the best eligible candidate, once **every** variant of
    its grid (those not marked ``eligible: false``) is eligible; None while any cell still
    misses a seed (an early choice could flip when the last cells finish). ValueError when
    the arm has no variant in the grid.

    Book: chapter 5, *Joint tuning at E*.
    """
    cells = inside(candidates, arm)
    if not cells:
        raise ValueError(f"no variant of arm {arm!r} in the joint grid")
    return choose(cells, arm) if all(c.eligible for c in cells) else None


@dataclass(frozen=True)
class Crossing:
    """The settings an arm's grid crosses: ``row_key`` takes the values ``rows``; the keys of
    ``column_keys`` take the value tuples ``columns`` together; ``cells`` maps each
    ``(row, column)`` to its candidate."""

    arm: str
    row_key: str
    rows: tuple[str, ...]
    column_keys: tuple[str, ...]
    columns: tuple[tuple[str, ...], ...]
    cells: Mapping[tuple[str, tuple[str, ...]], Candidate]

    def edges(self, candidate: Candidate) -> list[str]:
        """Where ``candidate`` sits at an end of an axis of the crossing, in words, e.g.
        ``["the largest `optim.lr` tried (0.004)"]``: a value beyond it was not tried.

        Book: chapter 5, *Joint tuning at E*.
        """
        (row, column), = (k for k, c in self.cells.items() if c.variant == candidate.variant)
        axes = [(f"`{self.row_key}`", row, self.rows),
                (", ".join(f"`{k}`" for k in self.column_keys), "/".join(dict.fromkeys(column)),
                 tuple("/".join(dict.fromkeys(c)) for c in self.columns))]
        out = []
        for key, value, values in axes:
            if len(values) > 1 and value in (values[0], values[-1]):
                end = "largest" if value == values[-1] else "smallest"
                out.append(f"the {end} {key} tried ({value})")
        return out


def _overrides(candidate: Candidate) -> dict[str, str]:
    pairs = (o.split("=", 1) for o in candidate.grid.variants[candidate.variant].overrides)
    return {key: value for key, value in pairs if key != "data.root"}


def _numeric(value: str) -> tuple[float, str]:
    try:
        return float(value), value
    except ValueError:
        return math.inf, value


def crossing(candidates: Sequence[Candidate], arm: str) -> Crossing:
    """How the grid of ``arm`` crosses its settings (its candidates but those outside the
    grid): ValueError when fewer than two settings vary, or when a combination of their
    values is missing or given twice (then the grid does not cross them).

    Book: chapter 5, *Joint tuning at E*.
    """
    cells_of_arm = inside(candidates, arm)
    settings = {c.variant: _overrides(c) for c in cells_of_arm}
    keys = list(dict.fromkeys(k for s in settings.values() for k in s))
    varying = [k for k in keys if len({s.get(k) for s in settings.values()}) > 1]
    if len(varying) < 2:
        raise ValueError(f"arm {arm!r}: its variants vary {varying or 'nothing'}, not two "
                         "settings")
    row_key, column_keys = varying[0], tuple(varying[1:])
    cells: dict[tuple[str, tuple[str, ...]], Candidate] = {}
    for c in cells_of_arm:
        s = settings[c.variant]
        cell = (s.get(row_key, ""), tuple(s.get(k, "") for k in column_keys))
        if cell in cells:
            raise ValueError(f"arm {arm!r}: {c.variant} and {cells[cell].variant} set the same "
                             f"{row_key} and {', '.join(column_keys)}")
        cells[cell] = c
    rows = tuple(sorted({r for r, _ in cells}, key=_numeric))
    columns = tuple(sorted({col for _, col in cells},
                           key=lambda col: tuple(_numeric(v) for v in col)))
    missing = [(r, col) for r in rows for col in columns if (r, col) not in cells]
    if missing:
        raise ValueError(f"arm {arm!r}: no variant sets {row_key}={missing[0][0]} with "
                         + ", ".join(f"{k}={v}" for k, v in zip(column_keys, missing[0][1],
                                                                 strict=True)))
    return Crossing(arm, row_key, rows, column_keys, columns, cells)


@dataclass(frozen=True)
class LateRise:
    """How much a setting's runs still gained at their end: per seed, the mean of ``key`` over
    the last ``window`` epochs minus its mean over the ``window`` epochs before
    (``per_seed``), and the mean of those over the seeds that recorded a curve."""

    key: str
    window: int
    per_seed: Mapping[int, float]

    @property
    def mean(self) -> float:
        """The mean rise over the seeds with a curve (NaN when none recorded one)."""
        return statistics.fmean(self.per_seed.values()) if self.per_seed else math.nan


def late_rise(curves: Mapping[tuple[str, int], Sequence[Mapping[str, float]]], variant: str,
              seeds: Sequence[int], *, key: str = "val_top1", fraction: float = 0.125
              ) -> LateRise:
    """The :class:`LateRise` of ``variant``'s runs over ``seeds`` from their epoch records
    (``curves`` as :func:`tdsa.experiments.grid.read_curves` returns them); the window is
    ``fraction`` of the epochs the runs recorded (at least one). Seeds without a curve, or
    with fewer than two windows of epochs, are left out.

    Book: chapter 5, *Joint tuning at E*.
    """
    lengths = [len(curves[(variant, s)]) for s in seeds if curves.get((variant, s))]
    window = max(1, round(fraction * max(lengths))) if lengths else 1
    per_seed = {}
    for seed in seeds:
        values = [float(r[key]) for r in curves.get((variant, seed), []) if key in r]
        if len(values) >= 2 * window:
            per_seed[seed] = (statistics.fmean(values[-window:])
                              - statistics.fmean(values[-2 * window:-window]))
    return LateRise(key, window, per_seed)
