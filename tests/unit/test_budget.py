"""The converged budget E, checked against hand-made curves with known answers."""

from __future__ import annotations

import math

import matplotlib
import pytest

from tdsa.experiments.budget import Budget, budget_points, converged_budget, plot_budget_curve

matplotlib.use("Agg")


def _rows(curves: dict[str, dict[int, list[float]]]) -> list[dict]:
    """Results rows of a budget grid: ``curves[arm][epochs]`` = final val top-1 per seed
    (train = val + 10)."""
    return [{"variant": f"{arm}_e{e}", "seed": s, "status": "ok", "final_val_top1": v,
             "final_train_top1": v + 10}
            for arm, by_e in curves.items() for e, vals in by_e.items()
            for s, v in enumerate(vals)]


def test_points_average_the_seeds_of_each_arm_and_budget() -> None:
    rows = _rows({"ce": {16: [70, 72, 74]}, "tdsa": {32: [60, 64]}})
    rows.append({"variant": "ce_e16", "seed": 9, "status": "failed", "final_val_top1": "nan",
                 "final_train_top1": "nan"})
    rows.append({"variant": "ce_centre", "seed": 0, "status": "ok", "final_val_top1": 1,
                 "final_train_top1": 1})
    ce, tdsa = budget_points(rows)
    assert (ce.arm, ce.epochs, ce.seeds) == ("ce", 16, (0, 1, 2))
    assert ce.val_mean == 72 and ce.val_std == pytest.approx(2.0) and ce.train_mean == 82
    assert (tdsa.arm, tdsa.epochs, tdsa.val_mean) == ("tdsa", 32, 62)


@pytest.mark.parametrize(("curves", "expected"), [
    # TDSA still rises from 16 to 32 (+8), both flat from 32 to 64: E = 32
    ({"ce": {16: [78, 79], 32: [79, 80], 64: [79.5, 80]},
      "tdsa": {16: [64, 66], 32: [72, 74], 64: [73, 74.5]}}, Budget(32, True, {})),
    # flat from the start: E = 16
    ({"ce": {16: [78], 32: [78.5], 64: [78]}, "tdsa": {16: [70], 32: [70.9], 64: [71]}},
     Budget(16, True, {})),
    # one arm still rises at the last doubling: the largest budget, not converged
    ({"ce": {16: [78], 32: [79], 64: [79]}, "tdsa": {16: [60], 32: [66], 64: [70]}},
     Budget(64, False, {})),
    # a decrease beyond the tolerance also counts as a change
    ({"ce": {16: [80], 32: [77], 64: [77.5]}, "tdsa": {16: [70], 32: [70], 64: [70]}},
     Budget(32, True, {})),
    # 64 measured for one arm only: the common budgets are 16 and 32
    ({"ce": {16: [78], 32: [78.2], 64: [79]}, "tdsa": {16: [70], 32: [74]}},
     Budget(32, False, {})),
])
def test_converged_budget_is_the_smallest_budget_whose_doubling_changes_no_arm(
        curves, expected: Budget) -> None:
    got = converged_budget(budget_points(_rows(curves)))
    assert (got.epochs, got.converged) == (expected.epochs, expected.converged)
    if got.converged:  # the changes are those of E -> 2E, by hand from the means
        for arm, by_e in curves.items():
            ref = sum(by_e[2 * got.epochs]) / len(by_e[2 * got.epochs]) \
                - sum(by_e[got.epochs]) / len(by_e[got.epochs])
            assert got.changes[arm] == pytest.approx(ref)
            assert abs(ref) <= 1.0
    else:  # the changes are those of the last doubling both arms measured, or none
        last = max((b for b in curves["ce"] if 2 * b in curves["ce"] and 2 * b in curves["tdsa"]
                    and b in curves["tdsa"]), default=None)
        assert set(got.changes) == (set() if last is None else set(curves))
        for arm, by_e in curves.items():
            if last is not None:
                ref = sum(by_e[2 * last]) / len(by_e[2 * last]) - sum(by_e[last]) / len(by_e[last])
                assert got.changes[arm] == pytest.approx(ref)


def test_exactly_one_point_counts_as_no_change_and_nothing_measured_is_an_error() -> None:
    flat = {"ce": {8: [50.0], 16: [51.0]}, "tdsa": {8: [40.0], 16: [39.0]}}
    assert converged_budget(budget_points(_rows(flat))).epochs == 8
    with pytest.raises(ValueError, match="no finished budget runs"):
        converged_budget([])


def test_the_curve_draws_val_and_train_per_arm() -> None:
    points = budget_points(_rows({"ce": {16: [70, 72], 32: [75, 77]},
                                  "tdsa": {16: [60, 62], 32: [70, 71]}}))
    ax = plot_budget_curve(points)
    labels = sorted(t.get_text() for t in ax.get_legend().get_texts())
    assert labels == ["ce train", "ce val", "tdsa train", "tdsa val"]
    assert [int(t) for t in ax.get_xticks()] == [16, 32]
    assert not math.isnan(points[0].val_std)
    assert ax.get_title() == ""
    assert plot_budget_curve(points, title="the curve").get_title() == "the curve"


def _write_budget(folder, curves, compared_epochs=None) -> None:
    """A results folder holding a budget grid's CSV and, when given, a comparison whose
    resolved configs trained ``compared_epochs``."""
    import csv

    from tdsa.experiments.evidence import REQUIRED

    rows = _rows(curves)
    columns = list(dict.fromkeys([*REQUIRED, "final_val_top1", "final_train_top1"]))
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "budget.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, row["final_val_top1"]) for c in columns})
    if compared_epochs is not None:
        (folder / "comparison" / "configs").mkdir(parents=True)
        for arm in ("ce", "tdsa"):
            (folder / "comparison" / "configs" / f"{arm}.yaml").write_text(
                f"train:\n  epochs: {compared_epochs}\n")


def test_the_book_says_e_the_deciding_changes_and_where_the_comparison_stands(tmp_path) -> None:
    from tdsa.experiments.book import budget_summary

    rising = {"ce": {16: [78, 80], 32: [84, 86], 64: [90, 92]},
              "tdsa": {16: [60, 64], 32: [78, 80], 64: [82, 84]}}
    _write_budget(tmp_path / "a", rising, compared_epochs=16)
    text = budget_summary(tmp_path / "a")
    assert text.startswith("**E = 64 epochs, not converged**")
    assert "(from 32 to 64 epochs: ce +6.0, tdsa +4.0 points)" in text  # by hand from the means
    assert "trained 16 epochs, below E" in text
    flat = {"ce": {16: [78], 32: [85], 64: [85.5]}, "tdsa": {16: [60], 32: [80], 64: [79.2]}}
    _write_budget(tmp_path / "b", flat, compared_epochs=32)
    text = budget_summary(tmp_path / "b")
    assert text.startswith("**E = 32 epochs**: doubling it to 64 changes no arm's mean final "
                           "val top-1 by more than 1 point (ce +0.5, tdsa -0.8)")
    assert "trained 32 epochs, at E." in text
    assert budget_summary(tmp_path / "none").startswith("The budget curve's results are not in")
