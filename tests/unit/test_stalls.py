"""Stalled seeds (leave-one-out) and the curves a grid keeps for every run."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from tdsa.errors import DataError
from tdsa.experiments.grid import read_curves
from tdsa.experiments.stalls import stalled_seeds


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


def test_two_seeds_are_too_few_to_judge() -> None:
    assert stalled_seeds(_rows([90.0, 10.0]), "tdsa") == []


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
