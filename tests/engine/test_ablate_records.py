"""``tdsa ablate``: the results CSV as the record of finished runs, and counterfactual scores."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

import tdsa.engine
from tdsa.cli import main
from tdsa.config import dump_config
from tdsa.data.synthetic import generate
from tdsa.experiments.grid import load_grid, recorded_results
from tdsa.provenance import cpu_kind

from .conftest import SYNTH, tiny_config


@pytest.fixture(scope="module")
def val_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth-records") / "tiny"
    generate(root, **SYNTH, val_per_class=3)
    return root


def _grid(tmp: Path, root: Path, lr: str = "0.05", **keys) -> Path:
    base = tmp / "base.yaml"
    dump_config(tiny_config(root, "train.epochs=1", "data.val_split=val",
                            "train.eval_test=never"), base)
    path = tmp / "g.yaml"
    path.write_text(yaml.safe_dump({
        "base": str(base), "seeds": [0], "split": "val", **keys,
        "overrides": ["train.batch_size=16"],
        "variants": {"tdsa": {"description": "full TDSA", "overrides": [f"optim.lr={lr}"]}}}),
        encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_recorded_run_is_not_trained_again_and_a_changed_variant_is(
        val_root: Path, tmp_path: Path, monkeypatch) -> None:
    grid, out, results = _grid(tmp_path, val_root), tmp_path / "runs", tmp_path / "res" / "g"
    args = ["ablate", "--grid", str(grid), "--out", str(out), "--results", str(results),
            "--no-gradcam"]
    assert main(args) == 0
    first = _rows(results.with_suffix(".csv"))
    assert [r["status"] for r in first] == ["ok"]
    summary = json.loads((out / "tdsa" / "seed0" / "summary.json").read_text())
    assert summary["cpu"] == cpu_kind()
    assert [first[0][k] for k in ("code", "cpu", "precision")] == [
        summary["code"], summary["cpu"], summary["precision"]], "the row says what ran it"
    epochs = [json.loads(line) for line in
              (out / "tdsa" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    curve = _rows(results / "curves.csv")
    assert [int(float(r["epoch"])) for r in curve] == [e["epoch"] for e in epochs]
    for row, epoch in zip(curve, epochs, strict=True):
        assert row["variant"] == "tdsa" and row["seed"] == "0"
        assert float(row["val_top1"]) == pytest.approx(epoch["val_top1"])
        assert float(row["grad_norm/total"]) == pytest.approx(epoch["grad_norm/total"])
        assert "epoch_time" not in row and "precision" not in row
    first_curve = curve
    from tdsa.experiments.grid import read_curves

    assert [r["val_top1"] for r in read_curves(results)[("tdsa", 0)]] == pytest.approx(
        [e["val_top1"] for e in epochs])
    from tdsa.experiments.evidence import read_results

    assert read_results(results.with_suffix(".csv"))[0]["cpu"] == summary["cpu"]
    shutil.rmtree(out)  # a fresh clone: the run folders are gone, the results are committed

    calls: list[str] = []

    def no_training(cfg, run_dir, **kw):
        calls.append(str(run_dir))
        raise AssertionError("a recorded run was trained again")

    monkeypatch.setattr(tdsa.engine, "train", no_training)
    assert main(args) == 0
    assert calls == [] and _rows(results.with_suffix(".csv")) == first
    # the page is rewritten on another kind of machine: its header still names the runs' CPU
    # and precision, read from the rows, not this machine's
    monkeypatch.setattr("tdsa.experiments.grid.cpu_kind",
                        lambda: "Elsewhere CPU (no native bf16: fp32)")
    assert main([*args, "--report-only"]) == 0
    assert _rows(results.with_suffix(".csv")) == first
    header = json.loads(results.with_suffix(".json").read_text())["header"]
    assert header["CPU"] == summary["cpu"]
    assert header["Precision"].startswith(f"{summary['precision']} (train.amp=auto; as the runs")
    assert header["Code"].startswith(f"runs trained at `{summary['code']}`")
    assert _rows(results / "curves.csv") == first_curve, "the curve outlives the run folder"

    (tmp_path / "changed").mkdir()
    changed = _grid(tmp_path / "changed", val_root, lr="0.02")
    grid_obj = load_grid(changed)
    assert recorded_results(grid_obj, results) == {}, "the variant's config changed"
    assert recorded_results(load_grid(grid), results)[("tdsa", 0)].values[
        "final_top1"] == float(first[0]["final_top1"])
    with pytest.raises(AssertionError, match="trained again"):
        main(["ablate", "--grid", str(changed), "--out", str(out), "--results", str(results)])
    assert len(calls) == 1


def test_counterfactual_grids_score_every_run_and_tabulate_it(val_root: Path, tmp_path: Path
                                                              ) -> None:
    grid = _grid(tmp_path, val_root, counterfactual=True)
    out, results = tmp_path / "runs", tmp_path / "res" / "g"
    assert main(["ablate", "--grid", str(grid), "--out", str(out), "--results", str(results),
                 "--no-gradcam"]) == 0
    run = out / "tdsa" / "seed0"
    assert (run / "counterfactual.json").is_file()
    row = _rows(results.with_suffix(".csv"))[0]
    report = json.loads((run / "counterfactual.json").read_text())
    assert report["split"] == "val" and report["images"] == 4 * 3
    assert float(row["cf/all/reliance"]) == pytest.approx(report["all"]["reliance"])
    assert float(row["cf/fine/pairs"]) == report["granularity"]["fine"]["pairs"] > 0
    page = results.with_suffix(".md").read_text()
    assert "## Counterfactual twins, fine parts" in page
    assert "## Counterfactual twins, coarse parts" in page


def test_counterfactual_must_be_a_boolean(val_root: Path, tmp_path: Path) -> None:
    from tdsa.errors import ConfigError

    with pytest.raises(ConfigError, match="'counterfactual' must be true or false, got 'yes'"):
        load_grid(_grid(tmp_path, val_root, counterfactual="yes"))


def test_the_recorded_command_names_folders_inside_a_checkout_relative_to_it(
        val_root: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    grid, out = _grid(tmp_path, val_root), checkout / "runs" / "g"
    results = checkout / "results" / "g"
    assert main(["ablate", "--grid", str(grid), "--out", str(out), "--results", str(results),
                 "--no-gradcam"]) == 0
    command = " ".join(json.loads(results.with_suffix(".json").read_text())["commands"])
    assert "--out runs/g --results results/g" in command and str(checkout) not in command
    assert str(grid) in command, "a path outside any checkout is kept as given"
