"""Chapter 5's figures drawn by the package: the arms seed by seed, and the paired differences
of each lever."""

from __future__ import annotations

import math
import statistics

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex

from tdsa.experiments import book
from tdsa.experiments.evidence import CLAIM_PARTS, LeverCheck


def _row(variant: str, seed: int, top1: float, status: str = "ok") -> dict:
    return {"variant": variant, "seed": float(seed), "status": status, "final_top1": top1}


ROWS = [_row("ce", 0, 70.0), _row("ce", 1, 74.0), _row("ce", 2, 78.0),
        _row("tdsa", 0, 60.0), _row("tdsa", 1, 66.0), _row("tdsa", 2, 1.0, "failed"),
        _row("mc", 3, 50.0)]


def test_paired_seeds_join_the_arms_of_each_seed() -> None:
    ax = book.plot_paired_seeds(ROWS, ["ce", "tdsa", "mc"], [0, 1, 2, 3], chance=100 / 12,
                                title="the title")
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines["seed 0"].get_xdata()) == [0, 1]
    assert list(lines["seed 0"].get_ydata()) == [70.0, 60.0]
    assert list(lines["seed 2"].get_ydata()) == [78.0], "a failed run is no dot"
    assert list(lines["seed 3"].get_xdata()) == [2]
    assert to_hex(lines["seed 1"].get_color()) == to_hex("C1")
    assert list(lines["chance (8.3%)"].get_ydata()) == pytest.approx([100 / 12] * 2)
    bars = ax.containers
    assert [b.lines[0].get_xdata()[0] for b in bars] == pytest.approx([0.18, 1.18, 2.18])
    assert [b.lines[0].get_ydata()[0] for b in bars] == [74.0, 63.0, 50.0], "the means"
    ce_bar = bars[0].lines[2][0].get_segments()[0]
    assert ce_bar[1][1] - ce_bar[0][1] == pytest.approx(2 * statistics.stdev([70, 74, 78]))
    assert bars[2].lines[2][0].get_segments()[0][:, 1] == pytest.approx([50.0, 50.0]), (
        "one seed: no bar")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ce", "tdsa", "mc"]
    assert ax.get_title() == "the title" and ax.get_ylabel() == "final test top-1 (%)"
    plt.close(ax.figure)
    _, own = plt.subplots()
    assert book.plot_paired_seeds(ROWS, ["ce"], [0], ax=own) is own
    assert not any(line.get_label().startswith("chance") for line in own.lines)
    plt.close(own.figure)


def test_lever_differences_one_panel_per_part_coloured_by_verdict() -> None:
    nan = math.nan
    checks = [
        LeverCheck("lever one", "ce", "tdsa", ((5.0, 1.0, 3), (-5.0, 1.0, 3), (1.0, 1.0, 3),
                                               (0.1, 1.0, 3))),
        LeverCheck("a lever with a name far too long to fit in the figure's margin", "ce",
                   "tdsa_x", ((2.0, nan, 1), (0.0, 0.0, 0), (1.0, 1.0, 2), (-1.0, 1.0, 2))),
    ]
    fig = book.plot_lever_differences(checks, title="the title")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == list(CLAIM_PARTS)
    colours = [[to_hex(b.lines[0].get_color()) for b in ax.containers] for ax in axes]
    c = book.VERDICT_COLOURS
    assert colours == [[c["higher"], c["no clear difference"]],
                       [c["lower"]],  # no common seed: no point
                       [c["borderline higher"], c["borderline higher"]],
                       [c["no clear difference"], c["borderline lower"]]]
    first = axes[0].containers[0]
    assert first.lines[0].get_xdata()[0] == 5.0 and first.lines[0].get_ydata()[0] == 0
    assert first.lines[2][0].get_segments()[0][:, 0] == pytest.approx([4.0, 6.0])
    assert axes[0].containers[1].lines[2][0].get_segments()[0][:, 0] == pytest.approx(
        [2.0, 2.0]), "one seed: no bar"
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels[0] == "lever one (tdsa)" and labels[1].endswith("… (tdsa_x)")
    assert len(labels[1]) <= 36 + len(" (tdsa_x)")
    assert fig._suptitle.get_text() == ("the title\ngreen higher, red lower, pale: borderline, "
                                        "grey no clear difference")
    plt.close(fig)
