"""The calibration map's readers on a hand-made grid and hand-made result rows."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest

from tdsa.ablate import Grid, Variant
from tdsa.calibration import band_check, centre, grid_cells, knob_series, plot_calibration
from tdsa.config import Config, dump_config

CE = ["loss.alpha_mid=0", "loss.beta_mid=0", "loss.alpha_high=0", "loss.beta_high=0"]


@pytest.fixture
def grid(tmp_path: Path) -> Grid:
    base = tmp_path / "base.yaml"
    dump_config(Config(), base)
    cells = {"c": [], "n40": ["data.synthetic.train_per_class=40"],
             "k24": ["data.synthetic.num_classes=24"]}
    variants = {}
    for cell, ov in cells.items():
        variants[f"ce_{cell}"] = Variant(f"ce_{cell}", "", [*ov, *CE])
        variants[f"tdsa_{cell}"] = Variant(f"tdsa_{cell}", "", list(ov))
    return Grid(tmp_path / "g.yaml", base, [0, 1], ["data.synthetic.train_per_class=160"],
                variants, split="val")


def _row(variant: str, seed: int, top1: float, train: float, seconds: float = 100.0) -> dict:
    return {"variant": variant, "seed": seed, "status": "ok", "final_top1": top1,
            "best_top1": top1, "final_train_top1": train, "seconds": seconds}


ROWS = [
    _row("ce_c", 0, 70.0, 80.0), _row("ce_c", 1, 74.0, 90.0),
    _row("tdsa_c", 0, 71.0, 75.0), _row("tdsa_c", 1, 77.0, 79.0),
    _row("ce_n40", 0, 15.0, 88.0), _row("ce_n40", 1, 17.0, 90.0),
    _row("tdsa_n40", 0, 16.0, 80.0),
    _row("ce_k24", 0, 50.0, 70.0), _row("ce_k24", 1, 52.0, 75.0),
]


def test_cells_read_arm_and_knobs_from_the_resolved_configs(grid: Grid) -> None:
    cells = grid_cells(grid)
    assert {v: c.arm for v, c in cells.items()} == {
        "ce_c": "ce", "tdsa_c": "tdsa", "ce_n40": "ce", "tdsa_n40": "tdsa", "ce_k24": "ce",
        "tdsa_k24": "tdsa"}
    assert cells["ce_n40"].knob("train_per_class") == 40
    assert cells["tdsa_k24"].knob("num_classes") == 24
    assert cells["ce_c"].knob("fine_scale") == 1.0 and cells["ce_c"].knob("distractors") is True
    assert centre(cells.values()) == {"train_per_class": 160, "num_classes": 12,
                                      "fine_scale": 1.0, "distractors": True}


def test_knob_series_keeps_the_other_knobs_at_the_centre(grid: Grid) -> None:
    cells = grid_cells(grid)
    ce = knob_series(cells, ROWS, "train_per_class", "ce")
    assert [(v, n) for v, _, _, n in ce] == [(40, 2), (160, 2)], "k24 is not on this axis"
    assert ce[0][1] == 16.0 and ce[0][2] == pytest.approx(statistics.stdev([15.0, 17.0]))
    tdsa = knob_series(cells, ROWS, "train_per_class", "tdsa")
    assert tdsa[0][:2] == (40, 16.0) and math.isnan(tdsa[0][2]) and tdsa[0][3] == 1
    assert [v for v, *_ in knob_series(cells, ROWS, "num_classes", "ce")] == [12, 24]
    assert knob_series(cells, ROWS, "num_classes", "tdsa") == [
        (12, 74.0, pytest.approx(statistics.stdev([71.0, 77.0])), 2)]


def test_band_check_names_each_failed_condition(grid: Grid) -> None:
    cells = grid_cells(grid)
    ok = band_check(cells, ROWS, "ce_c")
    assert ok.in_band and ok.reasons == [] and ok.top1[:2] == (72.0, pytest.approx(2.828, 1e-3))
    assert ok.gap[0] == pytest.approx(((80 - 70) + (90 - 74)) / 2)
    assert ok.chance == pytest.approx(100 / 12) and ok.seconds == 100.0
    low = band_check(cells, ROWS, "ce_n40")
    assert not low.in_band
    assert low.reasons == ["top-1 16.0 outside [40, 85]", "top-1 16.0 < 5 x chance (8.3)",
                           "train - top-1 gap 73.0 > 30"]
    k24 = band_check(cells, ROWS, "ce_k24")
    assert k24.in_band and k24.chance == pytest.approx(100 / 24)
    strict = band_check(cells, ROWS, "ce_k24", times_chance=13.0)
    assert strict.reasons == ["top-1 51.0 < 13 x chance (4.2)"]
    assert band_check(cells, ROWS, "tdsa_k24").reasons == ["no finished run"]


def test_plot_has_one_panel_per_varied_knob_with_both_arms(grid: Grid) -> None:
    fig = plot_calibration(grid_cells(grid), ROWS)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["train per class", "num classes"]
    # one error-bar container per arm and panel; TDSA has no 24-class run: one point
    assert len(axes[0].containers) == 2 and len(axes[1].containers) == 2
    assert list(axes[0].containers[0].lines[0].get_ydata()) == [16.0, 72.0]
    tdsa_classes = axes[1].containers[1].lines[0]
    assert list(tdsa_classes.get_xdata()) == [0] and list(tdsa_classes.get_ydata()) == [74.0]
    chance = next(line for line in axes[1].lines if line.get_label() == "chance")
    assert list(chance.get_ydata()) == pytest.approx([100 / 12, 100 / 24])
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["40", "160"]
