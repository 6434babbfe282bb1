"""Model selection on a validation split: what is read when (``train.eval_test``), which epoch
``best.pt`` holds, what the summary and the epoch line say, and ``tdsa ablate`` on val."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from tdsa.config import Config, apply_overrides, dump_config
from tdsa.data.synthetic import generate
from tdsa.engine.trainer import train
from tdsa.errors import ConfigError
from tdsa.experiments.grid import load_grid, run_one, write_results
from tdsa.runfiles import format_epoch_line

from .conftest import SYNTH, tiny_config


@pytest.fixture(scope="module")
def val_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine's tiny synthetic set plus 3 val images per class."""
    root = tmp_path_factory.mktemp("synth-val") / "tiny"
    generate(root, **SYNTH, val_per_class=3)
    return root


def _config(root: Path, *extra: str) -> Config:
    return tiny_config(root, "data.val_split=val", *extra)


def _first_argmax(values: list[float]) -> int:
    """1-based index of the first maximum (the trainer keeps the earliest best epoch)."""
    return max(range(len(values)), key=lambda i: (values[i], -i)) + 1


def test_eval_test_never_reads_only_val_and_best_pt_holds_the_val_best_epoch(
        val_root: Path, tmp_path: Path) -> None:
    summary = train(_config(val_root, "train.eval_test=never", "train.epochs=4"), tmp_path / "r")
    rows = summary["metrics"]
    assert all("test_top1" not in r and "test_images" not in r for r in rows)
    assert all(r["val_images"] == 4 * 3 for r in rows), "every val image is counted"
    val = [r["val_top1"] for r in rows]
    assert summary["selected_on"] == "val" and "validation split" in summary["selection_note"]
    assert summary["best_epoch"] == _first_argmax(val)
    assert summary["best_top1"] == max(val)
    assert summary["final_val_top1"] == val[-1]
    assert math.isnan(summary["final_top1"]) and "test_best_top1" not in summary
    assert summary["final_train_top1"] == rows[-1]["train_top1"]
    best = torch.load(tmp_path / "r/best.pt", weights_only=True)
    assert best["epoch"] == summary["best_epoch"]
    written = json.loads((tmp_path / "r/summary.json").read_text())
    assert written["selected_on"] == "val" and written["best_epoch"] == summary["best_epoch"]


def test_eval_test_final_reads_test_once_at_the_last_epoch(val_root: Path, tmp_path: Path
                                                           ) -> None:
    summary = train(_config(val_root, "train.eval_test=final"), tmp_path / "r")
    rows = summary["metrics"]
    assert ["test_top1" in r for r in rows] == [False, False, True]
    assert rows[-1]["test_images"] == 4 * 5
    assert summary["final_top1"] == rows[-1]["test_top1"]
    if summary["best_epoch"] == len(rows):
        assert summary["test_top1_at_best"] == rows[-1]["test_top1"]
    else:
        assert "test_top1_at_best" not in summary


def test_val_every_epoch_reports_the_fields_test_best_beside_the_val_choice(
        val_root: Path, tmp_path: Path) -> None:
    summary = train(_config(val_root, "train.epochs=4"), tmp_path / "r")
    rows = summary["metrics"]
    test = [r["test_top1"] for r in rows]
    val = [r["val_top1"] for r in rows]
    assert summary["best_epoch"] == _first_argmax(val)
    assert summary["test_top1_at_best"] == test[summary["best_epoch"] - 1]
    assert summary["test_best_top1"] == max(test)
    assert summary["test_best_epoch"] == _first_argmax(test)


def test_without_a_val_split_selection_stays_on_test(val_root: Path, tmp_path: Path) -> None:
    summary = train(tiny_config(val_root), tmp_path / "r")
    assert summary["selected_on"] == "test" and "test set" in summary["selection_note"]
    assert summary["best_top1"] == max(r["test_top1"] for r in summary["metrics"])
    assert all("val_top1" not in r for r in summary["metrics"])


@pytest.mark.parametrize(("overrides", "named"), [
    (["train.eval_test=never"], "train.eval_test='never' needs data.val_split"),
    (["train.eval_test=sometimes", "data.val_split=val"], "train.eval_test='sometimes'"),
    (["data.val_split=test"], "data.val_split='test' is invalid"),
    (["data.val_split=train"], "data.val_split='train' is invalid"),
])
def test_inconsistent_split_settings_name_the_key(overrides: list[str], named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        apply_overrides(Config(), overrides)


def test_epoch_line_shows_val_and_what_was_evaluated() -> None:
    row = {"epoch": 2, "train_total": 1.5, "train_ce": 1.2, "train_top1": 40.0, "lr": 1e-3,
           "epoch_time": 10.0, "images_per_s": 99.0, "val_top1": 35.25, "eval_time": 1.5}
    line = format_epoch_line(row, 16, ())
    assert "train 40.0%  val 35.2%  lr" in line and "10.0 s + 1.5 s val " in line
    assert "test" not in line
    line = format_epoch_line(row | {"test_top1": 30.0}, 16, ())
    assert "val 35.2%  test 30.0%" in line and "+ 1.5 s val + test" in line


def _val_grid(tmp: Path, root: Path, split: str = "val", extra: tuple[str, ...] = ()) -> Path:
    base = tmp / "base.yaml"
    dump_config(_config(root, "train.epochs=1", "train.eval_test=never", *extra), base)
    path = tmp / "g.yaml"
    path.write_text(yaml.safe_dump({
        "base": str(base), "seeds": [0], "split": split, "overrides": ["train.batch_size=16"],
        "variants": {"tdsa": {"description": "full TDSA", "overrides": []}}}), encoding="utf-8")
    return path


def test_a_val_grid_localises_on_val_and_labels_every_number(val_root: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    import tdsa.experiments.localisation

    seen: list[tuple[str, int]] = []

    def fake_localisation(model, dataset, **kw):
        seen.append((dataset.split, len(dataset)))
        return {"hit_rate/high/granularity:fine": 0.5}

    monkeypatch.setattr(tdsa.experiments.localisation, "evaluate_localisation", fake_localisation)
    grid = load_grid(_val_grid(tmp_path, val_root))
    assert grid.split == "val"
    res = run_one(grid, "tdsa", 0, tmp_path / "runs")
    assert seen == [("val", 4 * 3)]
    summary = json.loads((tmp_path / "runs/tdsa/seed0/summary.json").read_text())
    assert res.status == "ok" and res.values["final_top1"] == summary["final_val_top1"]
    assert res.values["final_train_top1"] == summary["final_train_top1"]
    csv_path, md_path = write_results(grid, [res], tmp_path / "results/g", "cmd")
    page = md_path.read_text()
    assert "## Validation accuracy" in page and "## Test accuracy" not in page
    assert "every val image" in page
    header = json.loads(csv_path.with_suffix(".json").read_text())["header"]
    assert header["Split"].startswith("val: every number on this page is from the validation")
    with csv_path.open(newline="") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["final_top1"]) == summary["final_val_top1"]


def test_a_val_grid_needs_val_split_in_its_runs(val_root: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    dump_config(tiny_config(val_root, "train.epochs=1"), base)
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"base": str(base), "split": "val", "variants": {
        "a": {"description": "", "overrides": []}}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape("'split: val' needs data.val_split")):
        load_grid(path)
    with pytest.raises(ConfigError, match="'split' must be one of test, val, got 'train'"):
        load_grid(_val_grid(tmp_path, val_root, split="train"))
