"""The numbers of the README's *Status of the evidence*, computed from the committed results.

The section is prose written by hand; its numbers are not: :func:`status_facts` computes each
one from a results file with :mod:`tdsa.experiments.evidence` (means ± std over seeds, paired
differences with :func:`~tdsa.experiments.evidence.verdict`), ``tests/unit/test_readme.py``
fails when the README does not quote one of them verbatim or quotes a statistic that is none of
them, and ``python -m tdsa.experiments.readme`` prints them for whoever rewrites the section.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tdsa.experiments.book import (
    BUDGET_GRID,
    COMPARISON_GRID,
    FRESH_DRAW_GRID,
    converged_e,
    lever_pairs,
    results_path,
)
from tdsa.experiments.evidence import (
    Row,
    column_stats,
    format_difference,
    format_mean_std,
    paired,
    read_results,
    verdict,
)

__all__ = ["CONTRASTS", "status_facts"]

FINE = "cf/fine/"
"""The counterfactual columns of fine parts (the README quotes those)."""
CONTRASTS = {
    "evidence true - unused": ("evidence/high/true", "evidence/high/unused"),
    "mid in high - chance": ("nesting/mid_in_high", "nesting/chance"),
    "where true - control": ("where/high/true", "where/high/control"),
}
"""Counterfactual contrasts within one arm, paired by seed: label -> (column, minus column)."""


def _difference(rows: list[Row], a: tuple[str, str], b: tuple[str, str],
                scale: float = 1.0) -> str:
    diff = paired(rows, a, b, scale)
    return f"{format_difference(diff)} over {diff[2]} seeds, {verdict(*diff)}"


def _grid_facts(grid: str, rows: list[Row]) -> dict[str, str]:
    """Top-1 of each arm, each method arm minus its cross-entropy arm and the counterfactual
    contrasts of every arm, for one comparison ``grid``."""
    facts: dict[str, str] = {}
    for _, ce, arm in lever_pairs((grid,)):
        for variant in (ce, arm):
            mean, std, values = column_stats(rows, variant, "final_top1")
            facts[f"{grid}: {variant} final top-1"] = \
                f"{format_mean_std(mean, std)}% ({len(values)} seeds)"
        facts[f"{grid}: {arm} - {ce} final top-1"] = _difference(
            rows, (arm, "final_top1"), (ce, "final_top1"))
    variants = dict.fromkeys(v for pair in lever_pairs((grid,)) for v in pair[1:])
    for variant in variants:
        for column in CONTRASTS["evidence true - unused"]:
            mean, std, _ = column_stats(rows, variant, FINE + column, 100.0)
            facts[f"{grid}: {variant} {column}"] = f"{format_mean_std(mean, std)}%"
        for label, (a, b) in CONTRASTS.items():
            facts[f"{grid}: {variant} {label}"] = _difference(
                rows, (variant, FINE + a), (variant, FINE + b), 100.0)
    return facts


def status_facts(results_dir: str | Path | None = None) -> dict[str, str]:
    """Every number the README's status section may quote, by label, as the README writes it:
    ``"78.1 ± 2.0% (5 seeds)"`` (an arm's final test top-1), ``"-13.7 ± 6.4 over 5 seeds,
    lower"`` (a paired difference and its verdict), ``"11.8 ± 2.0%"`` (a counterfactual
    measure), ``"+9.5"`` (an arm's change of mean final val top-1 over the budget curve's last
    doubling) and ``"E = 64"``, from the comparison, the fresh draw and the budget curve."""
    folder = Path(results_dir) if results_dir is not None else results_path()
    facts: dict[str, str] = {}
    for grid in (COMPARISON_GRID, FRESH_DRAW_GRID):
        facts.update(_grid_facts(grid, read_results(folder / f"{grid}.csv")))
    budget = converged_e(folder)
    facts[f"{BUDGET_GRID}: E"] = f"E = {budget.epochs}"
    for arm, change in sorted(budget.changes.items()):
        facts[f"{BUDGET_GRID}: {arm} change over the last doubling"] = f"{change:+.1f}"
    return facts


if __name__ == "__main__":
    for label, text in status_facts(sys.argv[1] if len(sys.argv) > 1 else None).items():
        print(f"{label}: {text}")
