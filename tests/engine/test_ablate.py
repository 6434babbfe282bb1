"""``tdsa ablate``: a tiny grid end to end (train, localise, tables), resuming, failures."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml

from tdsa.cli import main
from tdsa.config import dump_config, load_config
from tdsa.engine.trainer import NonFiniteLossError
from tdsa.errors import ConfigError
from tdsa.experiments.grid import RunResult, load_grid, markdown_report, run_grid

from .conftest import tiny_config

CE = ["loss.alpha_mid=0", "loss.beta_mid=0", "loss.alpha_high=0", "loss.beta_high=0"]


def _grid(tmp: Path, root: Path, variants: dict, seeds=(0, 1), extra=()) -> Path:
    base = tmp / "base.yaml"
    dump_config(tiny_config(root, "train.epochs=1", *extra), base)
    grid = {"base": str(base), "seeds": list(seeds), "note": "tiny test grid",
            "overrides": ["train.batch_size=16"], "variants": variants}
    path = tmp / "g.yaml"
    path.write_text(yaml.safe_dump(grid), encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def swept(tiny_root, tmp_path_factory):
    """Two variants x two seeds, run once through the CLI."""
    tmp = tmp_path_factory.mktemp("ablate")
    grid = _grid(tmp, tiny_root, {
        "ce": {"description": "cross-entropy", "overrides": CE},
        "tdsa": {"description": "full TDSA", "overrides": []},
    })
    out, results = tmp / "runs", tmp / "results" / "g"
    code = main(["ablate", "--grid", str(grid), "--out", str(out), "--results", str(results)])
    return code, grid, out, results


def test_sweep_writes_one_row_per_run_with_training_and_localisation_numbers(swept):
    code, _, out, results = swept
    assert code == 0
    rows = _rows(results.with_suffix(".csv"))
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("ce", "0"), ("tdsa", "0"), ("ce", "1"), ("tdsa", "1")]
    for r in rows:
        run_dir = out / r["variant"] / f"seed{r['seed']}"
        summary = json.loads((run_dir / "summary.json").read_text())
        loc = json.loads((run_dir / "localisation.json").read_text())
        assert r["status"] == "ok"
        for key in ("final_top1", "best_top1", "best_epoch"):
            assert float(r[key]) == pytest.approx(float(summary[key]))
        for key in ("hit_rate/high/granularity:fine", "hit_rate/wrong_high",
                    "hit_rate/gradcam/part:eye", "hit_rate/centre", "nesting/mid_in_high"):
            assert float(r[key]) == pytest.approx(loc[key], nan_ok=True)
        assert float(r["seconds"]) > 0
        cfg = load_config(run_dir / "config.yaml")
        assert cfg.runtime.seed == int(r["seed"])
        assert cfg.train.batch_size == 16  # the grid's overrides reach every run
        assert (cfg.loss.beta_high == 0) == (r["variant"] == "ce")
    # different seeds are different runs
    assert (out / "ce/seed0/last.pt").read_bytes() != (out / "ce/seed1/last.pt").read_bytes()


def test_markdown_has_mean_and_std_over_seeds_and_the_header(swept):
    _, grid, _, results = swept
    rows = _rows(results.with_suffix(".csv"))
    md = results.with_suffix(".md").read_text()
    for variant in ("ce", "tdsa"):
        vals = [float(r["final_top1"]) for r in rows if r["variant"] == variant]
        cell = f"{statistics.fmean(vals):.1f} ± {statistics.stdev(vals):.1f}"
        line = next(x for x in md.splitlines() if x.startswith(f"| {variant} | 2 |"))
        assert line.split(" | ")[2] == cell
    assert "python -m tdsa ablate --grid" in md
    assert "torch " in md and "CPU cores" in md and "tiny test grid" in md
    saved = yaml.safe_load((results / "configs" / "ce.yaml").read_text())
    assert saved["loss"]["alpha_high"] == 0 and saved["train"]["batch_size"] == 16
    assert load_config(results / "configs" / "tdsa.yaml").loss.beta_high == 1.5
    assert f"--grid {grid} --out" in md


def test_rerun_skips_finished_runs_and_report_only_trains_nothing(swept, monkeypatch, capsys):
    _, grid, out, results = swept
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("tdsa.engine.train", no_training)
    assert main(["ablate", "--grid", str(grid), "--out", str(out), "--results",
                 str(results), "--only", "tdsa", "--seeds", "1"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")} == before
    assert len(_rows(results.with_suffix(".csv"))) == 4  # the tables keep every finished run
    assert "tdsa seed 1: final" in capsys.readouterr().out
    assert main(["ablate", "--grid", str(grid), "--out", str(out), "--results",
                 str(results), "--report-only"]) == 0
    assert len(_rows(results.with_suffix(".csv"))) == 4
    assert "with `--report-only`" in results.with_suffix(".md").read_text()


def test_failed_variant_is_recorded_not_dropped(tiny_root, tmp_path, monkeypatch):
    grid_path = _grid(tmp_path, tiny_root, {
        "ok": {"description": "fine", "overrides": CE},
        "nan": {"description": "breaks", "overrides": ["optim.lr=0.5"]},
    }, seeds=(0,))
    from tdsa.engine import train as real_train

    def train(cfg, out_dir, **kwargs):
        if cfg.optim.lr == 0.5:
            raise NonFiniteLossError("loss term 'div_high' became nan at epoch 1, step 1")
        return real_train(cfg, out_dir, **kwargs)

    monkeypatch.setattr("tdsa.engine.train", train)
    results = tmp_path / "res"
    code = main(["ablate", "--grid", str(grid_path), "--out", str(tmp_path / "runs"),
                 "--results", str(results), "--no-gradcam"])
    assert code == 1
    rows = {r["variant"]: r for r in _rows(results.with_suffix(".csv"))}
    assert rows["ok"]["status"] == "ok" and rows["nan"]["status"] == "failed"
    assert "became nan" in rows["nan"]["error"]
    assert "hit_rate/gradcam" not in rows["ok"]
    md = results.with_suffix(".md").read_text()
    assert "| nan | 0 (+1 failed) |" in md and "nan seed 0: loss term" in md


def test_run_stopped_early_stops_the_sweep_and_the_same_command_resumes(tiny_root, tmp_path):
    grid_path = _grid(tmp_path, tiny_root, {"ce": {"description": "", "overrides": CE}},
                      seeds=(0,), extra=("train.epochs=2", "runtime.stop_after_epoch=1"))
    argv = ["ablate", "--grid", str(grid_path), "--out", str(tmp_path / "runs"),
            "--results", str(tmp_path / "res"), "--no-gradcam"]
    assert main(argv) == 130
    assert not (tmp_path / "res.csv").exists()
    assert main(argv) == 0
    summary = json.loads((tmp_path / "runs/ce/seed0/summary.json").read_text())
    assert summary["epochs_completed"] == 2 and summary["resumed_from"]
    row = _rows(tmp_path / "res.csv")[0]
    assert float(row["final_top1"]) == pytest.approx(summary["final_top1"])
    from tdsa.provenance import code_version

    assert summary["code"] == code_version(), "the run names the code that trained it"
    header = json.loads((tmp_path / "res.json").read_text())["header"]
    assert header["Code"].startswith(f"runs trained at `{code_version()}`; page written at")


@pytest.mark.parametrize(("grid", "message"), [
    ({"base": "nope.yaml", "variants": {"a": {}}}, "base config 'nope.yaml' not found"),
    ({"variants": {"a": {}}}, "'base' must be the path of a config YAML"),
    ({"base": "BASE", "seeds": [0, -1], "variants": {"a": {}}}, "'seeds' must be"),
    ({"base": "BASE", "variants": {}}, "'variants' must be a non-empty mapping"),
    ({"base": "BASE", "variants": {"a/b": {}}}, "variant name 'a/b'"),
    ({"base": "BASE", "variants": {"a": {"overides": []}}}, "variant 'a' must be a mapping"),
    ({"base": "BASE", "variants": {"a": {"overrides": ["loss.alpah=1"]}}},
     "variant 'a': .*unknown key 'loss.alpah'"),
    ({"base": "BASE", "variant": {}}, "unknown key\\(s\\) 'variant'"),
    ({"base": "BASE", "variants": {"a": {"config": "gone.yaml"}}},
     "variants.a.config config 'gone.yaml' not found"),
    ({"base": "BASE", "variants": {"a": {"seeds": [1, 1]}}},
     "'variants.a.seeds' must be a non-empty list of distinct integers"),
    ({"base": "BASE", "variants": {"a": {"seeds": 0}}}, "'variants.a.seeds' must be"),
    ({"base": "BASE", "variants": {"a": {"seeds": [[0]]}}}, "'variants.a.seeds' must be"),
])
def test_bad_grid_is_one_clear_error(tmp_path, grid, message):
    base = tmp_path / "base.yaml"
    base.write_text("train: {epochs: 1}\n")
    if grid.get("base") == "BASE":
        grid = {**grid, "base": str(base)}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(grid))
    with pytest.raises(ConfigError, match=message):
        load_grid(path)


def test_a_variant_config_replaces_the_base_for_that_arm_only(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 1}\noptim: {lr: 0.001}\n")
    (tmp_path / "other.yaml").write_text("train: {epochs: 1}\noptim: {lr: 0.002}\n")
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "overrides": ["train.epochs=3"],
                                    "variants": {"a": {}, "b": {"config": "other.yaml"}}}))
    grid = load_grid(path)
    a, b = grid.config("a", 0), grid.config("b", 0)
    assert (a.optim.lr, b.optim.lr) == (0.001, 0.002)
    assert a.train.epochs == b.train.epochs == 3  # the grid's overrides apply to both
    page = markdown_report(grid, [RunResult("b", 0, "ok", {"final_top1": 1.0})],
                                  "cmd")
    assert f"config `{tmp_path / 'other.yaml'}`" in page


def test_a_variant_with_seeds_of_its_own_runs_only_those(tmp_path, monkeypatch):
    (tmp_path / "base.yaml").write_text("train: {epochs: 1}\n")
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "seeds": [2, 0, 1], "variants": {
        "arm": {}, "pointer": {"seeds": [0]}, "late": {"seeds": [1, 7]}}}))
    grid = load_grid(path)
    assert grid.variant_seeds("arm") == [2, 0, 1] and grid.variant_seeds("pointer") == [0]
    assert grid.seed_order() == [2, 0, 1, 7] and grid.seed_order(["pointer"]) == [0]
    assert grid.runs == 3 + 1 + 2
    calls = []

    def run_one(grid, name, seed, out, **kwargs):
        calls.append((name, seed))
        return RunResult(name, seed, "ok", {"final_top1": 1.0, "best_top1": 1.0})

    monkeypatch.setattr("tdsa.experiments.grid.run_one", run_one)
    run_grid(grid, tmp_path / "runs")
    assert calls == [("arm", 2), ("arm", 0), ("pointer", 0), ("arm", 1), ("late", 1),
                     ("late", 7)]
    calls.clear()
    run_grid(grid, tmp_path / "runs", seeds=[1, 0], only=["pointer", "late"])
    assert calls == [("late", 1), ("pointer", 0)]


def test_unknown_only_variant_and_missing_grid_exit_2(tmp_path, capsys):
    base = tmp_path / "base.yaml"
    base.write_text("train: {epochs: 1}\n")
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"base": str(base), "variants": {"a": {}}}))
    assert main(["ablate", "--grid", str(path), "--out", str(tmp_path), "--only", "b"]) == 2
    assert "no variant(s) 'b'; variants: a" in capsys.readouterr().err
    assert main(["ablate", "--grid", str(tmp_path / "x.yaml"), "--out", str(tmp_path)]) == 2
    assert "grid file not found" in capsys.readouterr().err


def test_a_test_grid_of_runs_selected_on_val_labels_the_fields_number(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 1}\n")
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "variants": {"a": {}}}))
    grid = load_grid(path)
    values = {"final_top1": 61.0, "best_top1": 70.0, "best_epoch": 9.0, "final_val_top1": 66.0,
              "test_top1_at_best": 62.5, "test_best_top1": 64.0, "seconds": 10.0}
    page = markdown_report(grid, [RunResult("a", 0, "ok", values)], "cmd")
    header = ("| variant | n | final test top-1 | final val top-1 | best epoch (val) | "
              "test at best | best on test (field) | seconds/run |")
    assert header in page and "| a | 1 | 61.0 | 66.0 | 9.0 | 62.5 | 64.0 | 10.0 |" in page
    plain = markdown_report(grid, [RunResult("a", 0, "ok", {
        "final_top1": 61.0, "best_top1": 64.0, "best_epoch": 3.0, "seconds": 10.0})], "cmd")
    assert "*best* is selected on the test set" in plain and "final val top-1" not in plain
