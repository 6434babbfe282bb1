"""Stalled seeds (leave-one-out) and the curves a grid keeps for every run."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from tdsa.errors import DataError
from tdsa.experiments.grid import read_curves
from tdsa.experiments.stalls import curve_deviations, fell_behind, stalled_seeds


def _rows(values: list[float], variant: str = "tdsa") -> list[dict[str, object]]:
    return [{"variant": variant, "seed": float(s), "status": "ok", "final_top1": v}
            for s, v in enumerate(values)]


def test_a_seed_far_below_the_others_is_stalled_and_the_rest_are_not() -> None:
    values = [80.0, 81.0, 79.0, 82.0, 60.0]
    rows = [*_rows(values), *_rows([10.0, 90.0, 50.0], "ce"),
            {"variant": "tdsa", "seed": 9.0, "status": "failed", "final_top1": math.nan}]
    stalls = stalled_seeds(rows, "tdsa")
    expected = []
    for seed, value in enumerate(values):  # the rule, written out
        others = values[:seed] + values[seed + 1:]
        z = (statistics.mean(others) - value) / statistics.stdev(others)
        if z > 2:
            expected.append((seed, z))
    assert [(s.seed, pytest.approx(s.z)) for s in stalls] == expected == [(4, pytest.approx(
        20.5 / statistics.stdev([80.0, 81.0, 79.0, 82.0])))]
    assert stalls[0].others_mean == 80.5 and stalls[0].value == 60.0
    assert stalled_seeds(rows, "tdsa", k=100.0) == []


def test_with_the_seed_included_five_seeds_could_never_be_two_std_below() -> None:
    values = [80.0, 80.0, 80.0, 80.0, 0.0]  # the most extreme five seeds can be
    inclusive = (statistics.mean(values) - 0.0) / statistics.stdev(values)
    assert inclusive == pytest.approx(4 / math.sqrt(5)) and inclusive < 2
    stalls = stalled_seeds(_rows(values), "tdsa")
    assert [s.seed for s in stalls] == [4] and stalls[0].z == math.inf


def test_three_seeds_are_too_few_to_judge() -> None:
    even = [70.0, 75.0, 80.0]
    loo = (statistics.mean(even[1:]) - even[0]) / statistics.stdev(even[1:])
    assert loo == pytest.approx(1.5 * math.sqrt(2)) and loo > 2, "the rule would always fire"
    assert stalled_seeds(_rows(even), "tdsa") == []
    assert [s.seed for s in stalled_seeds(_rows([*even, 72.0]), "tdsa")] == []
    assert [s.seed for s in stalled_seeds(_rows([75.0, 75.5, 74.5, 40.0]), "tdsa")] == [3]


def test_read_curves_orders_each_runs_epochs(tmp_path: Path) -> None:
    folder = tmp_path / "grid"
    folder.mkdir()
    (folder / "curves.csv").write_text(
        "variant,seed,epoch,val_top1,grad_norm/mid\n"
        "tdsa,1,2,50.0,3.5\ntdsa,1,1,40.0,\nce,0,1,45.0,2.0\n", encoding="utf-8")
    curves = read_curves(folder)
    assert list(curves) == [("tdsa", 1), ("ce", 0)]
    assert curves[("tdsa", 1)] == [{"epoch": 1.0, "val_top1": 40.0},
                                   {"epoch": 2.0, "val_top1": 50.0, "grad_norm/mid": 3.5}]
    with pytest.raises(DataError, match=r"nope[/\\]curves\.csv: no such curves file"):
        read_curves(tmp_path / "nope")


def _curve(top1: list[float], grad: float) -> list[dict[str, float]]:
    return [{"epoch": float(e), "lr": 0.1, "train_top1": t, "grad_norm/high": grad + e}
            for e, t in enumerate(top1, start=1)]


CURVES = {("tdsa", 0): _curve([10, 30, 50, 70, 90, 95], 1.0),
          ("tdsa", 1): _curve([12, 32, 52, 72, 92, 96], 1.2),
          ("tdsa", 2): _curve([11, 31, 51, 71, 91, 97], 0.8),
          ("tdsa", 3): _curve([11, 20, 22, 23, 25, 26], 9.0),  # stays behind from epoch 2
          ("tdsa", 4): _curve([11, 31, 30, 72, 92, 96], 1.1)}  # lags at epoch 3 only


def test_fell_behind_is_the_first_epoch_of_the_last_stretch_behind() -> None:
    others = [0, 1, 2, 3, 4]
    assert fell_behind(CURVES, "tdsa", 3, others) == 2
    assert fell_behind(CURVES, "tdsa", 4, [0, 1, 2]) is None, "behind at epoch 3, then caught up"
    cut = {key: rows[:3] for key, rows in CURVES.items()}
    assert fell_behind(cut, "tdsa", 4, [0, 1, 2]) == 3, "behind at its last epoch"
    assert fell_behind(CURVES, "tdsa", 0, others) is None
    assert fell_behind(CURVES, "tdsa", 3, [0, 3]) is None, "one other seed is too few"
    assert fell_behind(CURVES, "tdsa", 3, others, k=1e9) is None


def test_curve_deviations_against_a_by_hand_reading_of_the_last_epochs() -> None:
    devs = curve_deviations(CURVES, "tdsa", 3, [0, 1, 2, 4], fraction=2 / 6)
    assert [d.key for d in devs] == ["train_top1", "grad_norm/high"], "largest |z| first; no lr"
    by = {d.key: d for d in devs}
    others = [statistics.fmean([90, 95]), statistics.fmean([92, 96]), statistics.fmean([91, 97]),
              statistics.fmean([92, 96])]
    mean, std = statistics.fmean(others), statistics.stdev(others)
    assert by["train_top1"].value == 25.5 and by["train_top1"].others_mean == pytest.approx(mean)
    assert by["train_top1"].z == pytest.approx((25.5 - mean) / std) and by["train_top1"].z < -50
    grads = [1.0 + 5.5, 1.2 + 5.5, 0.8 + 5.5, 1.1 + 5.5]
    assert by["grad_norm/high"].z == pytest.approx(
        (9.0 + 5.5 - statistics.fmean(grads)) / statistics.stdev(grads))
    assert curve_deviations(CURVES, "tdsa", 7, [0, 1, 2]) == [], "no curve, nothing to read"
    same = {("a", s): [{"epoch": 1.0, "val_top1": 50.0}] for s in range(3)}
    same[("a", 2)] = [{"epoch": 1.0, "val_top1": 40.0}]
    assert curve_deviations(same, "a", 2, [0, 1])[0].z == -math.inf, "the others agree exactly"
