"""The calibration map of the embedded benchmark: accuracy of each arm against each knob of the
synthetic data, read from a grid (``configs/ablations/calibration.yaml``) and its results CSV.

A grid cell is a set of data knobs (``train_per_class``, ``num_classes``, ``fine_scale``,
``distractors``: the arguments of :func:`tdsa.data.synthetic.generate`) and each cell has a
cross-entropy arm (every auxiliary weight 0) and a TDSA arm. Nothing here names a variant: the
knobs and arms are read from each variant's resolved config, and the centre is the value of
each knob that most cells share (the grid varies one knob at a time around it).
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tdsa.config import Config, apply_overrides
from tdsa.data.synthetic import generate
from tdsa.experiments.evidence import Row, column_stats, paired
from tdsa.experiments.grid import Grid

__all__ = ["BAND", "KNOBS", "Band", "BandCheck", "Candidate", "Cell", "band_check", "centre",
           "centre_variants", "choose", "describe_change", "grid_cells", "holds_in", "knob_series",
           "plot_calibration", "tuned_mismatches", "tuning_candidates"]

KNOBS = ("train_per_class", "num_classes", "fine_scale", "distractors")
"""The data knobs of the map, as named by :func:`tdsa.data.synthetic.generate`."""

_DEFAULTS = {k: inspect.signature(generate).parameters[k].default for k in KNOBS}
_AUX = ("alpha_mid", "beta_mid", "alpha_high", "beta_high")


@dataclass(frozen=True)
class Cell:
    """One variant of a calibration grid: its arm (``ce`` or ``tdsa``) and data knobs."""

    variant: str
    arm: str
    knobs: tuple[tuple[str, Any], ...]

    def knob(self, name: str) -> Any:
        """The value of knob ``name`` in this cell."""
        return dict(self.knobs)[name]


def _cell(variant: str, cfg: Config) -> Cell:
    arm = "ce" if all(getattr(cfg.loss, k) == 0 for k in _AUX) else "tdsa"
    values = {k: cfg.data.synthetic.get(k, _DEFAULTS[k]) for k in KNOBS}
    return Cell(variant, arm, tuple(values.items()))


def grid_cells(grid: Grid) -> dict[str, Cell]:
    """Every variant of ``grid`` as a :class:`Cell` (from its resolved config).

    Book: chapter 5, *Calibration on val*.
    """
    return {name: _cell(name, grid.config(name, grid.seeds[0])) for name in grid.variants}


def centre(cells: Iterable[Cell]) -> dict[str, Any]:
    """The value of each knob that the most cells hold (ties: the first seen).

    Book: chapter 5, *Calibration on val*.
    """
    cells = list(cells)
    return {k: Counter(c.knob(k) for c in cells).most_common(1)[0][0] for k in KNOBS}


def centre_variants(cells: Mapping[str, Cell]) -> dict[str, str]:
    """``{arm: variant}``: the cell of each arm whose knobs are all at the :func:`centre`.

    Book: chapter 5, *Calibration on val*.
    """
    mid = centre(cells.values())
    return {c.arm: v for v, c in cells.items() if all(c.knob(k) == mid[k] for k in KNOBS)}


def describe_change(cell: Cell, mid: Mapping[str, Any]) -> str:
    """The knobs of ``cell`` that differ from the centre ``mid`` (:func:`centre`), as
    ``"knob = value, ..."``; ``"the centre"`` when none does.

    Book: chapter 5, *Calibration on val*.
    """
    moved = [f"{k} = {cell.knob(k)}" for k in mid if cell.knob(k) != mid[k]]
    return ", ".join(moved) or "the centre"


def knob_series(cells: Mapping[str, Cell], rows: Sequence[Row], knob: str, arm: str,
                key: str = "final_top1") -> list[tuple[Any, float, float, int]]:
    """``(value, mean, sample std, seeds)`` of column ``key`` for arm ``arm`` at each value
    of ``knob``, over the cells whose other knobs sit at the centre; sorted by value."""
    mid = centre(cells.values())
    out = []
    for cell in cells.values():
        others = all(cell.knob(k) == mid[k] for k in KNOBS if k != knob)
        if cell.arm != arm or not others:
            continue
        mean, std, values = column_stats(rows, cell.variant, key)
        if values:
            out.append((cell.knob(knob), mean, std, len(values)))
    return sorted(out, key=lambda t: t[0])


@dataclass(frozen=True)
class Band:
    """The benchmark's band for a cross-entropy cell (numbers in %): mean final top-1 in
    ``[low, high]``, at least ``times_chance`` x chance, and a mean train - final top-1 gap of
    at most ``max_gap`` points (it learns, is not saturated, and does not only memorise)."""

    low: float = 40.0
    high: float = 85.0
    times_chance: float = 5.0
    max_gap: float = 30.0

    def describe(self, split: str = "val") -> str:
        """The band's limits in words, the gap measured against ``split``'s top-1."""
        return (f"top-1 in [{self.low:g}, {self.high:g}]%, at least {self.times_chance:g}× "
                f"chance, train − {split} gap at most {self.max_gap:g} points")


BAND = Band()
"""The benchmark's band, which :func:`band_check` checks by default."""


@dataclass
class BandCheck:
    """Whether a cell's cross-entropy arm sits in the benchmark's band (numbers in %)."""

    variant: str
    top1: tuple[float, float, int]
    gap: tuple[float, float, int]
    chance: float
    seconds: float
    in_band: bool
    reasons: list[str]


def band_check(cells: Mapping[str, Cell], rows: Sequence[Row], variant: str,
               band: Band = BAND) -> BandCheck:
    """Check one cross-entropy cell against ``band``: mean final top-1 in
    ``[band.low, band.high]`` and at least ``band.times_chance`` x chance (100 / classes), mean
    train - final gap at most ``band.max_gap`` points. ``reasons`` names each failed
    condition.

    Book: chapter 5, *Calibration on val*.
    """
    cell = cells[variant]
    mean, std, values = column_stats(rows, variant, "final_top1")
    gap = paired(rows, (variant, "final_train_top1"), (variant, "final_top1"))
    chance = 100.0 / cell.knob("num_classes")
    secs = column_stats(rows, variant, "seconds")[0]
    reasons = []
    if not values:
        reasons.append("no finished run")
    else:
        if not band.low <= mean <= band.high:
            reasons.append(f"top-1 {mean:.1f} outside [{band.low:g}, {band.high:g}]")
        if mean < band.times_chance * chance:
            reasons.append(f"top-1 {mean:.1f} < {band.times_chance:g} x chance ({chance:.1f})")
        if gap[2] and gap[0] > band.max_gap:
            reasons.append(f"train - top-1 gap {gap[0]:.1f} > {band.max_gap:g}")
    return BandCheck(variant, (mean, std, len(values)), gap, chance, secs, not reasons,
                     reasons)


def plot_calibration(cells: Mapping[str, Cell], rows: Sequence[Row], *,
                     key: str = "final_top1", ylabel: str = "final val top-1 (%)",
                     title: str = "") -> Any:
    """One panel per knob that the grid varies: mean ± std over seeds of ``key`` for each
    arm against the knob's value (others at the centre), with chance as a dotted line, and
    ``title`` above the panels. The panels sit two to a row (about 650 px wide at the book's
    90 dpi, so the page shows the figure at its natural size, text at 10 points).

    Book: chapter 5, *Calibration on val*.
    """
    import matplotlib.pyplot as plt

    varied = [k for k in KNOBS if len({c.knob(k) for c in cells.values()}) > 1]
    cols = min(2, max(len(varied), 1))
    rows_ = math.ceil(max(len(varied), 1) / cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(3.6 * cols, 2.7 * rows_), sharey=True,
                             squeeze=False)
    for ax in axes.flat[len(varied):]:
        ax.set_visible(False)
    mid = centre(cells.values())
    for ax, knob in zip(axes.flat, varied, strict=False):
        values = sorted({c.knob(knob) for c in cells.values()
                         if all(c.knob(k) == mid[k] for k in KNOBS if k != knob)})
        for arm, marker, label in (("ce", "o", "CE"), ("tdsa", "s", "TDSA")):
            series = knob_series(cells, rows, knob, arm, key)
            if series:
                ax.errorbar([values.index(v) for v, *_ in series], [m for _, m, _, _ in series],
                            yerr=[0.0 if math.isnan(s) else s for _, _, s, _ in series],
                            marker=marker, capsize=3, label=label)
        ax.set_xticks(range(len(values)), [str(v) for v in values])
        chance = [100.0 / (v if knob == "num_classes" else mid["num_classes"]) for v in values]
        ax.plot(range(len(values)), chance, ":", color="grey", label="chance")
        ax.set_title(knob.replace("_", " "))
        ax.set_xlabel(knob)
    for row in axes:
        row[0].set_ylabel(ylabel)
    axes[0][0].legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Candidate:
    """One setting of an arm in a tuning budget: its mean ± std final top-1 over the seeds
    asked for (``n`` of them finished), its epochs, and whether it may be chosen
    (``reason`` says why not)."""

    grid: Grid
    variant: str
    arm: str
    top1: tuple[float, float, int]
    epochs: int
    eligible: bool
    reason: str

    def changes(self) -> list[str]:
        """The settings the variant changes: its overrides without its data root and, for a
        cross-entropy arm, the zeroed loss weights (``[]`` for a grid's centre)."""
        return [o for o in self.grid.variants[self.variant].overrides
                if not o.startswith("data.root=")
                and not (self.arm == "ce" and o.startswith("loss.") and o.endswith("=0"))]

    def describe(self) -> str:
        """What the candidate changes, in words: its variant's description, or ``"no change:
        the calibration centre"`` for the centre cell (:meth:`changes` empty).

        Book: chapter 5, *Tuning on val*.
        """
        if not self.changes():
            return "no change: the calibration centre"
        return self.grid.variants[self.variant].description


def tuning_candidates(sources: Sequence[tuple[Grid, Sequence[Row]]], *, seeds: Sequence[int],
                      max_epochs: int, key: str = "final_top1") -> list[Candidate]:
    """Every variant of ``sources`` (grids with their result rows) whose data knobs are the
    last grid's centre, as a :class:`Candidate`: so the centre cell of a calibration grid
    joins the one-change-at-a-time variants of a tuning grid. A candidate is eligible when
    every seed of ``seeds`` finished and it trains at most ``max_epochs`` epochs (the time
    budget). Sorted by arm, then mean ``key`` (best first).

    Book: chapter 5, *Tuning on val*.
    """
    mid = centre(grid_cells(sources[-1][0]).values())
    wanted = set(seeds)
    out = []
    for grid, rows in sources:
        for name, cell in grid_cells(grid).items():
            if any(cell.knob(k) != mid[k] for k in KNOBS):
                continue
            kept = [r for r in rows if int(r["seed"]) in wanted]  # type: ignore[call-overload]
            mean, std, values = column_stats(kept, name, key)
            epochs = grid.config(name, grid.seeds[0]).train.epochs
            reason = ("" if len(values) == len(wanted) else
                      f"{len(values)} of {len(wanted)} seeds finished")
            if epochs > max_epochs:
                reason = f"{epochs} epochs > the budget's {max_epochs}"
            out.append(Candidate(grid, name, cell.arm, (mean, std, len(values)), epochs,
                                 not reason, reason))
    return sorted(out, key=lambda c: (c.arm, -c.top1[0] if not math.isnan(c.top1[0])
                                      else math.inf))


def choose(candidates: Sequence[Candidate], arm: str) -> Candidate:
    """The eligible candidate of ``arm`` with the highest mean (ValueError if none).

    Book: chapter 5, *Tuning on val*.
    """
    eligible = [c for c in candidates if c.arm == arm and c.eligible]
    if not eligible:
        raise ValueError(f"no eligible candidate for arm {arm!r}")
    return max(eligible, key=lambda c: c.top1[0])


def holds_in(candidate: Candidate, cfg: Config) -> bool:
    """Whether ``cfg`` has every setting that the candidate's variant changes
    (:meth:`Candidate.changes`): e.g. whether a committed default config carries the setting
    chosen on val.

    Book: chapter 5, *Tuning on val*.
    """
    return apply_overrides(cfg, candidate.changes()).to_dict() == cfg.to_dict()


_MISSING = object()


def _lookup(tree: Mapping[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


def tuned_mismatches(candidate: Candidate, candidates: Sequence[Candidate],
                     cfg: Config) -> dict[str, tuple[Any, Any]]:
    """The settings that the ``candidates`` of ``candidate``'s arm change (the keys of their
    overrides, but the data root) on which ``cfg`` differs from ``candidate``'s resolved
    config, as ``{key: (chosen value, cfg's value)}``. Empty when ``cfg`` carries the choice
    and none of the other candidates' changes, which :func:`holds_in` does not check.

    Book: chapter 5, *Tuning on val*.
    """
    keys = sorted({o.split("=", 1)[0] for c in candidates if c.arm == candidate.arm
                   for o in c.grid.variants[c.variant].overrides} - {"data.root"})
    chosen = candidate.grid.config(candidate.variant, candidate.grid.seeds[0]).to_dict()
    given = cfg.to_dict()
    pairs = {k: (_lookup(chosen, k), _lookup(given, k)) for k in keys}
    return {k: (None if a is _MISSING else a, None if b is _MISSING else b)
            for k, (a, b) in pairs.items() if a != b}
