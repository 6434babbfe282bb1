"""Reading ablation results files and testing the paper's claim on them, seed by seed.

``python -m tdsa ablate`` writes ``results/NAME.csv`` (one row per run). This module reads
those rows back and asks the book's question of each *lever*, a pair of arms that share the
network, head, data, schedule and seeds and differ only in the loss: does the method arm beat
cross-entropy in test accuracy, and do its true-class high-level channels hit the fine parts
more often than a wrong class's channels, than chance and than the CE model's Grad-CAM? Each
comparison is a paired difference over the seeds both arms finished, counted only when its
mean exceeds 1.25 times its sample standard deviation over at least two seeds (about one
standard deviation is *borderline*: :func:`verdict`).

Book: chapter 5, *The results files*.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tdsa.errors import DataError
from tdsa.experiments.grid import PROVENANCE_KEYS

__all__ = [
    "BORDERLINE",
    "CLAIM_PARTS",
    "VERDICTS",
    "LeverCheck",
    "check_lever",
    "check_levers",
    "column_stats",
    "compare_in_words",
    "fine_key",
    "format_difference",
    "format_mean_std",
    "format_percent",
    "format_ratio",
    "format_verdicts",
    "lever_table",
    "paired",
    "read_header",
    "read_results",
    "read_sweep",
    "verdict",
    "verdict_rule",
]

TEXT_COLUMNS = ("variant", "status", "error", *PROVENANCE_KEYS)
REQUIRED = ("variant", "seed", "status", "final_top1", "best_top1")

CLAIM_PARTS = ("accuracy", "vs wrong class", "vs chance", "vs CE Grad-CAM")
"""The four comparisons of :class:`LeverCheck`, in order."""

Row = dict[str, object]


def fine_key(source: str) -> str:
    """The results column of a pointing-game source on the fine parts, e.g. ``"high"``.

    Book: chapter 6, *Counterfactual measures over seeds*.
    """
    return f"hit_rate/{source}/granularity:fine"


def read_results(path: str | Path) -> list[Row]:
    """The rows of a results CSV written by ``python -m tdsa ablate``; numbers as floats
    (NaN for empty cells). A missing file or column raises :class:`tdsa.errors.DataError`
    naming it.

    Book: chapter 5, *The results files*.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such results file (written by python -m tdsa ablate)")
    rows: list[Row] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected the "
                            "header written by python -m tdsa ablate")
        for line, raw in enumerate(reader, start=2):
            row: Row = {}
            for key, value in raw.items():
                if key in TEXT_COLUMNS:
                    row[key] = value
                    continue
                try:
                    row[key] = float(value) if value not in ("", None) else math.nan
                except ValueError:
                    raise DataError(f"{path}, line {line}: column {key!r} holds {value!r}, "
                                    "expected a number") from None
            rows.append(row)
    return rows


def read_header(path: str | Path) -> dict[str, str]:
    """The header of a results page (``Command``, ``Written``, ``Machine``, ``Base config``,
    ``Numbers``, ``Note``; see :func:`tdsa.experiments.grid.report_header`) from the
    ``RESULTS.json`` that ``python -m tdsa ablate`` writes beside the CSV. A missing or
    malformed file raises :class:`tdsa.errors.DataError` naming it.

    Book: chapter 5, *The results files*.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such results header (written by python -m tdsa ablate)")
    try:
        header = json.loads(path.read_text(encoding="utf-8"))["header"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: expected a JSON object with a 'header' mapping, as written by "
                        f"python -m tdsa ablate ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or not all(isinstance(v, str) for v in header.values()):
        raise DataError(f"{path}: 'header' must map labels to text, got {header!r}")
    return header


def _values(rows: Iterable[Row], variant: str, key: str, scale: float) -> dict[int, float]:
    out = {}
    for r in rows:
        if r["variant"] == variant and r["status"] == "ok":
            value = float(r.get(key, math.nan))  # type: ignore[arg-type]
            if not math.isnan(value):
                out[int(r["seed"])] = value * scale  # type: ignore[call-overload]
    return out


def column_stats(rows: Iterable[Row], variant: str, key: str,
                 scale: float = 1.0) -> tuple[float, float, list[float]]:
    """``(mean, sample std, values)`` of one column over a variant's finished runs; NaN
    mean without runs, NaN std with one.

    Book: chapter 6, *Counterfactual measures over seeds*.
    """
    values = list(_values(rows, variant, key, scale).values())
    if not values:
        return math.nan, math.nan, values
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), std, values


def paired(rows: Iterable[Row], a: tuple[str, str], b: tuple[str, str],
           scale: float = 1.0) -> tuple[float, float, int]:
    """Mean and sample std over the seeds both finished of ``(variant, column)`` ``a`` minus
    ``b``, and the number of those seeds.

    Book: chapter 6, *Counterfactual measures over seeds*.
    """
    rows = list(rows)
    left, right = _values(rows, *a, scale), _values(rows, *b, scale)
    diffs = [left[s] - right[s] for s in sorted(set(left) & set(right))]
    if not diffs:
        return math.nan, math.nan, 0
    return (statistics.fmean(diffs), statistics.stdev(diffs) if len(diffs) > 1 else math.nan,
            len(diffs))


BORDERLINE = (0.8, 1.25)
"""The band of ``|mean| / std`` that :func:`verdict` calls borderline: a paired mean about one
standard deviation from zero (within a factor 1.25 of it either way)."""

VERDICTS = ("higher", "lower", "borderline higher", "borderline lower", "no clear difference")
"""Every word :func:`verdict` returns; the book's qualitative words about a measured difference
are these, printed by code, never written by hand."""


def verdict(mean: float, std: float, n: int) -> str:
    """The book's word for a paired difference ``mean ± std`` over ``n`` seeds: ``"higher"`` /
    ``"lower"`` when ``|mean|`` exceeds 1.25 std over >= 2 seeds; ``"borderline higher"`` /
    ``"borderline lower"`` when ``|mean|`` is about one std (:data:`BORDERLINE`: from 0.8 to
    1.25 std); else ``"no clear difference"`` (also with fewer than two seeds or no spread
    measured).

    Book: chapter 6, *Counterfactual measures over seeds*.
    """
    if n < 2 or math.isnan(std) or math.isnan(mean):
        return "no clear difference"
    low, high = BORDERLINE
    size = abs(mean)
    side = "higher" if mean > 0 else "lower"
    if size > high * std:
        return side
    if size >= low * std and size > 0:
        return f"borderline {side}"
    return "no clear difference"


def verdict_rule() -> str:
    """The rule of :func:`verdict` in words, with the margins of :data:`BORDERLINE`.

    Book: chapter 6, *Counterfactual measures over seeds*.
    """
    low, high = BORDERLINE
    return (f"`higher` or `lower` when the size of the paired mean exceeds {high:g} standard "
            f"deviations over at least two seeds, `borderline` when it is {low:g} to {high:g} "
            "standard deviations, else `no clear difference`")


def format_verdicts(diffs: Mapping[str, tuple[float, float, int]]) -> str:
    """Each named :func:`paired` difference's :func:`verdict`, as ``"name word, name word"``
    in the mapping's order.

    Book: chapter 6, *Counterfactual measures over seeds*.
    """
    return ", ".join(f"{name} {verdict(*d)}" for name, d in diffs.items())


def compare_in_words(a: float, b: float) -> str:
    """How one run's ``a`` compares with its ``b``: ``"more than"``, ``"less than"`` or
    ``"as much as"``; ``"cannot be compared with"`` when either is NaN. A description of
    single numbers, not a :func:`verdict` (one run has no spread).

    Book: chapter 6, *Counterfactual measures on this chapter's runs*.
    """
    if math.isnan(a) or math.isnan(b):
        return "cannot be compared with"
    return "more than" if a > b else "less than" if a < b else "as much as"


@dataclass(frozen=True)
class LeverCheck:
    """The claim tested on one lever: the four paired differences of :data:`CLAIM_PARTS`
    (points; each ``(mean, std, seeds)``) and which of them are clearly positive.
    """

    lever: str
    ce: str
    arm: str
    diffs: tuple[tuple[float, float, int], ...]

    @property
    def failed(self) -> list[str]:
        """The parts of the claim that are not clearly positive."""
        return [name for name, d in zip(CLAIM_PARTS, self.diffs, strict=True)
                if verdict(*d) != "higher"]

    @property
    def holds(self) -> bool:
        """True when all four comparisons are clearly positive."""
        return not self.failed

    @property
    def seeds(self) -> int:
        """Seeds behind the accuracy comparison."""
        return self.diffs[0][2]


def check_lever(rows: Iterable[Row], lever: str, ce: str, arm: str) -> LeverCheck:
    """Test the claim on one pair of arms: ``arm`` - ``ce`` final top-1, then the true-class
    high-level fine-part hits of ``arm`` minus a wrong class's, minus chance, minus the CE
    arm's Grad-CAM (in points)."""
    rows = list(rows)
    true = (arm, fine_key("high"))
    diffs = [paired(rows, (arm, "final_top1"), (ce, "final_top1"))]
    diffs += [paired(rows, true, other, 100.0)
              for other in ((arm, fine_key("wrong_high")), (arm, fine_key("chance_high")),
                            (ce, fine_key("gradcam")))]
    return LeverCheck(lever, ce, arm, tuple(diffs))


def check_levers(rows: Iterable[Row],
                 pairs: Sequence[tuple[str, str, str]]) -> list[LeverCheck]:
    """:func:`check_lever` for every ``(lever, baseline arm, method arm)`` of ``pairs`` (from
    the grid files: :func:`tdsa.experiments.grid.lever_pairs`) whose two arms have finished runs in
    ``rows``.

    Book: chapter 5, *TDSA against cross-entropy, lever by lever (previous default)*.
    """
    rows = list(rows)
    known = {r["variant"] for r in rows if r["status"] == "ok"}
    return [check_lever(rows, *p) for p in pairs if {p[1], p[2]} <= known]


def format_difference(d: tuple[float, float, int]) -> str:
    """A :func:`paired` difference as ``"+mean ± std"`` (one decimal; no ``± std`` for one
    seed), or ``"n/a"`` when no seed is common to both sides.
    """
    mean, std, n = d
    return "n/a" if n == 0 else f"{mean:+.1f}" + ("" if math.isnan(std) else f" ± {std:.1f}")


def format_mean_std(mean: float, std: float, digits: int = 1) -> str:
    """``"mean ± std"`` with ``digits`` decimals; ``"n/a"`` for a NaN mean, no ``± std`` for a
    NaN std (one seed).

    Book: chapter 6, *Counterfactual measures over seeds*.
    """
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")


def format_percent(share: float, digits: int = 1) -> str:
    """A share (a fraction, e.g. a hit rate) in percent with ``digits`` decimals, the number
    only (no ``%``); ``"n/a"`` for NaN (nothing counted).

    Book: chapter 6, *Counterfactual measures on this chapter's runs*.
    """
    return format_mean_std(100.0 * share, math.nan, digits)


def format_ratio(a: float, b: float, digits: int = 1) -> str:
    """``a / b`` as ``"2.5×"`` with ``digits`` decimals; ``"n/a"`` when either is NaN or ``b``
    is zero.

    Book: chapter 6, *What the pointing game says*.
    """
    if math.isnan(a) or math.isnan(b) or b == 0:
        return "n/a"
    return f"{a / b:.{digits}f}×"


def _top1(rows: Sequence[Row], variant: str) -> str:
    return format_mean_std(*column_stats(rows, variant, "final_top1")[:2])


_PART_HEADERS = {"accuracy": "method − CE top-1", "vs wrong class": "fine: true − wrong",
                 "vs chance": "fine: true − chance", "vs CE Grad-CAM": "fine: true − CE Grad-CAM"}


def lever_table(rows: Iterable[Row], checks: Sequence[LeverCheck],
                parts: Sequence[str] = CLAIM_PARTS) -> str:
    """A Markdown table of :func:`check_levers`: per lever its two arms, the seeds, the mean ±
    std test top-1 of both (when ``"accuracy"`` is in ``parts``), the paired differences of
    ``parts`` (points) and whether the whole claim holds.

    Book: chapter 5, *TDSA against cross-entropy, lever by lever (previous default)*.
    """
    rows = list(rows)
    unknown = [p for p in parts if p not in CLAIM_PARTS]
    if unknown:
        raise ValueError(f"parts must be among {', '.join(CLAIM_PARTS)}, got {unknown}")
    top1 = "accuracy" in parts
    head = ["lever", "CE arm", "method arm", "seeds"]
    head += ["CE top-1 (%)", "method top-1 (%)"] if top1 else []
    head += [_PART_HEADERS[p] for p in parts] + ["claim"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for c in checks:
        cells = [c.lever, c.ce, c.arm, str(c.seeds)]
        cells += [_top1(rows, c.ce), _top1(rows, c.arm)] if top1 else []
        cells += [format_difference(c.diffs[CLAIM_PARTS.index(p)]) for p in parts]
        cells.append("holds" if c.holds else "fails: " + ", ".join(c.failed))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_sweep(results_dir: str | Path, grids: Sequence[str]) -> list[Row]:
    """The rows of several results files (``results_dir/<grid>.csv``) as one sweep, for lever
    pairs whose arms come from more than one grid. A variant found in two files raises
    :class:`tdsa.errors.DataError` (its seeds would be mixed), as does a missing file.
    """
    rows: list[Row] = []
    owner: dict[object, str] = {}
    for grid in grids:
        path = Path(results_dir) / f"{grid}.csv"
        for row in read_results(path):
            first = owner.setdefault(row["variant"], path.name)
            if first != path.name:
                raise DataError(f"{path}: variant {row['variant']!r} is also in {first}; the "
                                "grids of one sweep need distinct variant names")
            rows.append(row)
    return rows
