"""Joint tuning's readers on a hand-made grid and hand-made result rows and curves."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from tdsa.config import Config, dump_config
from tdsa.errors import ConfigError
from tdsa.experiments.grid import Grid, Variant, load_grid
from tdsa.experiments.joint_tuning import (
    OUTSIDE,
    crossing,
    joint_candidates,
    joint_choice,
    late_rise,
)

CE = ["loss.alpha_mid=0", "loss.beta_mid=0", "loss.alpha_high=0", "loss.beta_high=0"]


def _weights(w: str) -> list[str]:
    return [f"loss.alpha_mid={w}", f"loss.alpha_high={w}", "loss.ramp_epochs=5"]


def _grid(tmp_path: Path, drop: str = "") -> Grid:
    base = tmp_path / "base.yaml"
    dump_config(Config(), base)
    variants = {}
    for lr in ("0.001", "0.002"):
        for wd in ("0.05", "0.2"):
            variants[f"ce_lr{lr}_wd{wd}"] = Variant("", "", [f"optim.lr={lr}",
                                                             f"optim.weight_decay={wd}", *CE])
        for w in ("0.1", "0.2"):
            variants[f"tdsa_lr{lr}_w{w}"] = Variant("", "", [f"optim.lr={lr}", *_weights(w)])
    variants["tdsa_published"] = Variant("", "", ["optim.lr=0.001", *_weights("1.5")],
                                         eligible=False)
    variants.pop(drop, None)
    return Grid(tmp_path / "joint.yaml", base, [0, 1], [], variants, split="val")


def _row(variant: str, seed: int, top1: float) -> dict:
    return {"variant": variant, "seed": seed, "status": "ok", "final_top1": top1,
            "best_top1": top1}


TOP1 = {"ce_lr0.001_wd0.05": (80, 82), "ce_lr0.001_wd0.2": (85, 87),
        "ce_lr0.002_wd0.05": (90, 70), "ce_lr0.002_wd0.2": (84, 84),
        "tdsa_lr0.001_w0.1": (70, 72), "tdsa_lr0.001_w0.2": (75, 73),
        "tdsa_lr0.002_w0.1": (79, 81), "tdsa_lr0.002_w0.2": (60, 62),
        "tdsa_published": (95, 97)}
ROWS = [_row(v, s, float(t)) for v, pair in TOP1.items() for s, t in enumerate(pair)]


def test_an_arm_is_chosen_only_when_every_cell_of_its_grid_has_every_seed(
        tmp_path: Path) -> None:
    grid = _grid(tmp_path)
    rows = [r for r in ROWS if not (r["variant"] == "tdsa_lr0.002_w0.2" and r["seed"] == 1)]
    cands = joint_candidates(grid, rows, seeds=[0, 1], epochs=Config().train.epochs)
    assert joint_choice(cands, "tdsa") is None, "one TDSA cell misses seed 1"
    chosen = joint_choice(cands, "ce")
    assert chosen is not None and chosen.variant == "ce_lr0.001_wd0.2", "best mean, 86 > 84 > 80"
    complete = joint_candidates(grid, ROWS, seeds=[0, 1], epochs=Config().train.epochs)
    by = {c.variant: c for c in complete}
    assert by["tdsa_published"].top1[0] == 96.0 and not by["tdsa_published"].eligible
    assert by["tdsa_published"].reason == OUTSIDE
    tdsa = joint_choice(complete, "tdsa")
    assert tdsa is not None and tdsa.variant == "tdsa_lr0.002_w0.1", "never the outside point"
    assert by["ce_lr0.002_wd0.05"].top1 == (80.0, statistics.stdev([90.0, 70.0]), 2)


def test_a_budget_below_the_grids_epochs_leaves_no_choice(tmp_path: Path) -> None:
    cands = joint_candidates(_grid(tmp_path), ROWS, seeds=[0, 1],
                             epochs=Config().train.epochs - 1)
    assert joint_choice(cands, "ce") is None
    with pytest.raises(ValueError, match="no variant of arm 'mc'"):
        joint_choice(cands, "mc")


def test_the_crossing_is_read_from_the_overrides(tmp_path: Path) -> None:
    cands = joint_candidates(_grid(tmp_path), ROWS, seeds=[0, 1], epochs=1000)
    ce = crossing(cands, "ce")
    assert (ce.row_key, ce.column_keys) == ("optim.lr", ("optim.weight_decay",))
    assert ce.rows == ("0.001", "0.002") and ce.columns == (("0.05",), ("0.2",))
    assert ce.cells[("0.002", ("0.05",))].variant == "ce_lr0.002_wd0.05"
    assert ce.edges(ce.cells[("0.002", ("0.05",))]) == [
        "the largest `optim.lr` tried (0.002)", "the smallest `optim.weight_decay` tried (0.05)"]
    tdsa = crossing(cands, "tdsa")
    assert tdsa.column_keys == ("loss.alpha_mid", "loss.alpha_high"), "they move together"
    assert tdsa.columns == (("0.1", "0.1"), ("0.2", "0.2")), "the published point is outside"
    assert len(tdsa.cells) == 4
    assert tdsa.edges(tdsa.cells[("0.001", ("0.2", "0.2"))])[1] == (
        "the largest `loss.alpha_mid`, `loss.alpha_high` tried (0.2)"), "one value per column"


def test_a_grid_that_does_not_cross_its_settings_is_refused(tmp_path: Path) -> None:
    cands = joint_candidates(_grid(tmp_path, drop="ce_lr0.002_wd0.2"), ROWS, seeds=[0, 1],
                             epochs=1000)
    with pytest.raises(ValueError, match=r"no variant sets optim.lr=0.002 with "
                                         r"optim.weight_decay=0.2"):
        crossing(cands, "ce")
    grid = _grid(tmp_path)
    grid.variants["ce_twin"] = Variant("", "", ["optim.lr=0.001", "optim.weight_decay=0.05",
                                                *CE])
    with pytest.raises(ValueError, match=r"set the same optim\.lr and optim\.weight_decay"):
        crossing(joint_candidates(grid, ROWS, seeds=[0, 1], epochs=1000), "ce")
    one = {k: v for k, v in _grid(tmp_path).variants.items() if "wd0.05" in k}
    grid_one = Grid(tmp_path / "one.yaml", grid.base, [0], [], one, split="val")
    with pytest.raises(ValueError, match="not two settings"):
        crossing(joint_candidates(grid_one, [], seeds=[0], epochs=1000), "ce")


def test_late_rise_against_a_by_hand_reading_of_the_curves() -> None:
    up = [{"epoch": e, "val_top1": 50.0 + 2.0 * e} for e in range(1, 17)]
    flat = [{"epoch": e, "val_top1": 90.0 + (e % 2)} for e in range(1, 17)]
    curves = {("a", 0): up, ("a", 1): flat, ("a", 2): up[:3], ("b", 0): up}
    rise = late_rise(curves, "a", [0, 1, 2, 3])
    assert rise.window == 2, "an eighth of 16 epochs"
    by_hand_up = (up[14]["val_top1"] + up[15]["val_top1"]) / 2 \
        - (up[12]["val_top1"] + up[13]["val_top1"]) / 2
    by_hand_flat = (flat[14]["val_top1"] + flat[15]["val_top1"]) / 2 \
        - (flat[12]["val_top1"] + flat[13]["val_top1"]) / 2
    assert rise.per_seed == {0: by_hand_up, 1: by_hand_flat}, "seed 2 too short, 3 has none"
    assert by_hand_up == 4.0 and by_hand_flat == 0.0
    assert rise.mean == 2.0
    assert math.isnan(late_rise(curves, "c", [0]).mean), "no curve, no rise"
    assert late_rise(curves, "a", [0], fraction=0.25).per_seed == {0: 8.0}


def test_the_eligible_key_of_a_grid_file(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    dump_config(Config(), base)
    path = tmp_path / "g.yaml"
    path.write_text(f"base: {base}\nseeds: [0]\nvariants:\n  a: {{overrides: []}}\n"
                    "  b: {overrides: [], eligible: false}\n", encoding="utf-8")
    grid = load_grid(path)
    assert grid.variants["a"].eligible and not grid.variants["b"].eligible
    path.write_text(f"base: {base}\nseeds: [0]\nvariants:\n  b: {{eligible: 'no'}}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"variants.b.eligible must be true or false, "
                                          r"got 'no'"):
        load_grid(path)
    shipped = load_grid("configs/ablations/tuning_joint.yaml")
    assert [v for v, spec in shipped.variants.items() if not spec.eligible] == \
        ["tdsa_published", "tdsa_published_bf16"]
