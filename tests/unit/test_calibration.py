"""The calibration map's readers on a hand-made grid and hand-made result rows."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest

from tdsa.config import Config, apply_overrides, dump_config
from tdsa.experiments.calibration import (
    BAND,
    Band,
    band_check,
    centre,
    centre_variants,
    choose,
    describe_change,
    grid_cells,
    holds_in,
    knob_series,
    plot_calibration,
    tuned_mismatches,
    tuning_candidates,
)
from tdsa.experiments.grid import Grid, Variant

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
    strict = band_check(cells, ROWS, "ce_k24", Band(times_chance=13.0))
    assert strict.reasons == ["top-1 51.0 < 13 x chance (4.2)"]
    assert band_check(cells, ROWS, "tdsa_k24").reasons == ["no finished run"]
    narrow = band_check(cells, ROWS, "ce_c", Band(low=73.0, high=80.0, max_gap=12.0))
    assert narrow.reasons == ["top-1 72.0 outside [73, 80]", "train - top-1 gap 13.0 > 12"]


def test_the_band_in_words(grid: Grid) -> None:
    cells = grid_cells(grid)
    assert band_check(cells, ROWS, "ce_n40") == band_check(cells, ROWS, "ce_n40", BAND)
    assert Band(12.5, 90.0, 2.0, 7.0).describe() == (
        "top-1 in [12.5, 90]%, at least 2× chance, train − val gap at most 7 points")
    assert Band(12.5, 90.0, 2.0, 7.0).describe("test") == (
        "top-1 in [12.5, 90]%, at least 2× chance, train − test gap at most 7 points")


def test_centre_variants_and_the_change_of_each_cell(grid: Grid) -> None:
    cells = grid_cells(grid)
    assert centre_variants(cells) == {"ce": "ce_c", "tdsa": "tdsa_c"}
    mid = centre(cells.values())
    assert describe_change(cells["ce_c"], mid) == "the centre"
    assert describe_change(cells["tdsa_n40"], mid) == "train_per_class = 40"
    assert describe_change(cells["ce_k24"], mid) == "num_classes = 24"
    off = {**mid, "fine_scale": 2.0, "distractors": False}
    assert describe_change(cells["ce_k24"], off) == (
        "num_classes = 24, fine_scale = 1.0, distractors = True"), "every knob off, in order"


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
    assert fig._suptitle is None
    titled = plot_calibration(grid_cells(grid), ROWS, title="the map")
    assert titled._suptitle.get_text() == "the map"


def _tuning(tmp_path: Path) -> Grid:
    base = tmp_path / "base.yaml"
    dump_config(Config(), base)
    variants = {
        "ce_lr2": Variant("ce_lr2", "ce at lr 2e-3", ["optim.lr=0.002", *CE]),
        "ce_long": Variant("ce_long", "", ["train.epochs=600", *CE]),
        "tdsa_w2": Variant("tdsa_w2", "", ["loss.alpha_high=0.3"]),
    }
    return Grid(tmp_path / "t.yaml", base, [0, 1], ["data.synthetic.train_per_class=160"],
                variants, split="val")


def test_tuning_candidates_join_the_centre_cell_and_rank_within_each_arm(grid: Grid,
                                                                         tmp_path: Path) -> None:
    tuning = _tuning(tmp_path)
    rows = [_row("ce_lr2", 0, 80.0, 90.0), _row("ce_lr2", 1, 76.0, 90.0),
            _row("ce_long", 0, 95.0, 99.0), _row("ce_long", 1, 93.0, 99.0),
            _row("tdsa_w2", 0, 60.0, 70.0), _row("tdsa_w2", 2, 99.0, 99.0)]
    cands = tuning_candidates([(grid, ROWS), (tuning, rows)], seeds=[0, 1], max_epochs=300)
    by = {c.variant: c for c in cands}
    assert set(by) == {"ce_c", "tdsa_c", "ce_lr2", "ce_long", "tdsa_w2"}, "off-centre cells out"
    assert by["ce_lr2"].top1 == (78.0, statistics.stdev([80.0, 76.0]), 2)
    assert not by["ce_long"].eligible and "600 epochs > the budget's 300" in by["ce_long"].reason
    assert by["tdsa_w2"].top1[2] == 1 and "1 of 2 seeds finished" in by["tdsa_w2"].reason
    assert [c.variant for c in cands if c.arm == "ce"] == ["ce_long", "ce_lr2", "ce_c"]
    assert choose(cands, "ce").variant == "ce_lr2", "the best eligible, not the best"
    assert choose(cands, "tdsa").variant == "tdsa_c"
    assert by["ce_c"].describe() == "no change: the calibration centre"
    assert by["tdsa_c"].describe() == "no change: the calibration centre"
    assert by["ce_lr2"].describe() == "ce at lr 2e-3", "the variant's description"
    with pytest.raises(ValueError, match="no eligible candidate for arm 'mc'"):
        choose(cands, "mc")


def test_holds_in_checks_the_changed_setting_only(grid: Grid, tmp_path: Path) -> None:
    tuning = _tuning(tmp_path)
    cands = {c.variant: c for c in tuning_candidates([(tuning, [])], seeds=[0],
                                                     max_epochs=1000)}
    ce_tuned = Config()
    ce_tuned.optim.lr = 0.002
    assert holds_in(cands["ce_lr2"], ce_tuned), "the zeroed loss weights are not required"
    assert not holds_in(cands["ce_lr2"], Config())
    assert not holds_in(cands["tdsa_w2"], ce_tuned)


def test_tuned_mismatches_also_catch_another_candidates_change(grid: Grid,
                                                               tmp_path: Path) -> None:
    tuning = _tuning(tmp_path)
    cands = tuning_candidates([(grid, []), (tuning, [])], seeds=[0], max_epochs=1000)
    by = {c.variant: c for c in cands}
    tuned = apply_overrides(Config(), ["optim.lr=0.002", *CE])
    assert tuned_mismatches(by["ce_lr2"], cands, tuned) == {}
    assert tuned_mismatches(by["ce_lr2"], cands, apply_overrides(Config(), CE)) == {
        "optim.lr": (0.002, Config().optim.lr)}
    longer = apply_overrides(tuned, ["train.epochs=600"])
    assert holds_in(by["ce_lr2"], longer), "holds_in sees only the chosen change"
    assert tuned_mismatches(by["ce_lr2"], cands, longer) == {
        "train.epochs": (Config().train.epochs, 600)}
    # the centre cell changes nothing: any setting a candidate of its arm changes is checked
    assert tuned_mismatches(by["ce_c"], cands, tuned) == {"optim.lr": (Config().optim.lr, 0.002)}
    # the TDSA arm's keys are its own candidates' (loss.alpha_high), not cross-entropy's
    assert tuned_mismatches(by["tdsa_c"], cands, apply_overrides(Config(), ["optim.lr=0.002"])) \
        == {}
