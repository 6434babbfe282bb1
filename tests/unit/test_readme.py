"""The README's status section quotes the committed results, computed, never typed."""

from __future__ import annotations

import csv
import re
import statistics
from pathlib import Path

from tdsa.experiments.readme import status_facts

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"
STATISTIC = re.compile(r"[+\-−]?\d+\.\d ± \d+\.\d(?:% \(\d+ seeds\)| over \d+ seeds, [a-z ]+)?")
QUOTED = ("comparison: ce final top-1", "comparison: tdsa final top-1",
          "comparison: tdsa - ce final top-1", "comparison: mc_high - ce final top-1",
          "comparison: no_gate - ce final top-1", "fresh_draw: tdsa - ce final top-1",
          "comparison: tdsa evidence true - unused", "fresh_draw: tdsa evidence true - unused",
          "budget: E", "budget: ce change over the last doubling",
          "budget: tdsa change over the last doubling")
"""The facts the section must quote (the headline of each results file it summarises)."""


def _status_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split("## Status of the evidence", 1)[1].split("\n## ", 1)[0]


def _column(name: str, variant: str, column: str) -> dict[int, float]:
    with (RESULTS / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        return {int(r["seed"]): float(r[column]) for r in csv.DictReader(fh)
                if r["variant"] == variant and r["status"] == "ok"}


def _fmt(values: list[float]) -> str:
    return f"{statistics.fmean(values):+.1f} ± {statistics.stdev(values):.1f}"


def test_the_facts_are_the_results_computed_by_hand() -> None:
    facts = status_facts()
    ce, tdsa = (_column("comparison", v, "final_top1") for v in ("ce", "tdsa"))
    diffs = [tdsa[s] - ce[s] for s in sorted(ce.keys() & tdsa.keys())]
    assert facts["comparison: tdsa - ce final top-1"].startswith(
        f"{_fmt(diffs)} over {len(diffs)} seeds, ")
    assert facts["comparison: ce final top-1"] == (
        f"{statistics.fmean(ce.values()):.1f} ± {statistics.stdev(ce.values()):.1f}% "
        f"({len(ce)} seeds)")
    true, unused = (_column("fresh_draw", "tdsa", f"cf/fine/evidence/high/{w}")
                    for w in ("true", "unused"))
    contrast = [100 * (true[s] - unused[s]) for s in sorted(true)]
    assert facts["fresh_draw: tdsa evidence true - unused"].startswith(_fmt(contrast))
    with (RESULTS / "budget.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "ok"]
    top = max(int(float(r["epochs"])) for r in rows)
    for arm in ("ce", "tdsa"):
        def val(epochs: int, arm: str = arm) -> float:
            return statistics.fmean(float(r["final_val_top1"]) for r in rows
                                    if r["variant"] == f"{arm}_e{epochs}")
        assert facts[f"budget: {arm} change over the last doubling"] == \
            f"{val(top) - val(top // 2):+.1f}"


def test_the_status_section_quotes_the_facts_and_nothing_else() -> None:
    section, facts = _status_section(), status_facts()
    missing = [f"{label}: {facts[label]}" for label in QUOTED if facts[label] not in section]
    assert not missing, f"README's status section does not quote: {missing}"
    typed = [m.group(0) for m in STATISTIC.finditer(section)
             if not any(fact.startswith(m.group(0).replace("−", "-")) or
                        m.group(0).startswith(fact) for fact in facts.values())]
    assert not typed, f"statistics in the README that no results file gives: {typed}"
