"""Chapter 5's readers of the results files: a shipped grid with its results, the book's time
budget, the tuning candidates on val and the measured effect of an exercise."""

from __future__ import annotations

import csv
import dataclasses
import shutil
import statistics
from pathlib import Path

import pytest
import yaml

from tdsa.config import dump_config, load_config
from tdsa.experiments import book
from tdsa.experiments import grid as grid_module
from tdsa.experiments.evidence import read_header, read_results
from tdsa.experiments.grid import RunResult, load_grid, write_results

REPO = Path(__file__).resolve().parents[2]


def _runs(final: dict[str, list[float]]) -> list[RunResult]:
    """One finished run per value of ``final`` (seed = position)."""
    return [RunResult(variant, seed, "ok", {"final_top1": top1, "best_top1": top1,
                                            "final_train_top1": top1 + 5.0, "seconds": 10.0})
            for variant, values in final.items() for seed, top1 in enumerate(values)]


def test_grid_results_reads_the_grid_its_rows_and_header(tmp_path: Path) -> None:
    for suffix in (".csv", ".json"):
        shutil.copy(REPO / "results" / f"tuning{suffix}", tmp_path / f"tuning{suffix}")
    grid, rows, header = found = book.grid_results("tuning", tmp_path)
    assert found.grid is grid and grid.path == load_grid("ablations/tuning").path
    assert _keys(rows) == _keys(read_results(tmp_path / "tuning.csv")) and len(rows) == 22
    assert header == read_header(tmp_path / "tuning.json") and header["Command"]
    assert _keys(book.grid_results("tuning").rows) == _keys(
        read_results(REPO / "results" / "tuning.csv")), "the committed results by default"


def _keys(rows: list) -> list[tuple]:
    return [(r["variant"], r["seed"], r["status"], r["final_top1"]) for r in rows]


def test_grid_results_names_the_command_or_the_empty_file(tmp_path: Path) -> None:
    shutil.copy(REPO / "results" / "tuning.csv", tmp_path / "tuning.csv")
    with pytest.raises(FileNotFoundError) as info:
        book.grid_results("tuning", tmp_path)
    assert str(info.value).startswith(f"no ablation results in {tmp_path} for tuning: expected "
                                      "tuning.csv and tuning.json written by `python -m tdsa "
                                      "ablate --grid configs/ablations/tuning.yaml --out "
                                      "runs/ablate/tuning`")
    shutil.copy(REPO / "results" / "tuning.json", tmp_path / "tuning.json")
    with (tmp_path / "tuning.csv").open("w", newline="") as fh:
        csv.writer(fh).writerow(["variant", "seed", "status", "final_top1", "best_top1"])
    with pytest.raises(ValueError, match=r"tuning\.csv has no rows"):
        book.grid_results("tuning", tmp_path)


def test_epoch_budget_is_the_default_configs_epochs(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    epochs = load_config("synthetic_ce").train.epochs
    assert book.epoch_budget() == epochs == load_config("synthetic_tdsa").train.epochs
    longer = load_config("synthetic_tdsa")
    longer.train.epochs = epochs + 1
    dump_config(longer, tmp_path / "synthetic_tdsa.yaml")
    shipped = book.config_path
    monkeypatch.setattr(book, "config_path", lambda name: tmp_path / f"{name}.yaml"
                        if name == "synthetic_tdsa" else shipped(name))
    with pytest.raises(ValueError, match="different numbers of epochs"):
        book.epoch_budget()


def test_tuned_candidates_rank_the_eligible_settings_of_each_arm(tmp_path: Path) -> None:
    calibration = {"ce_centre": [60.0, 62.0, 61.0], "tdsa_centre": [55.0, 57.0]}
    write_results(load_grid("ablations/calibration"), _runs(calibration), tmp_path / "calibration",
                  "python -m tdsa ablate --grid configs/ablations/calibration.yaml")
    tuning_grid = load_grid("ablations/tuning")
    tuning = {v: [40.0, 42.0] for v in tuning_grid.variants}
    tuning |= {"ce_lr2e-3": [70.0, 74.0], "ce_ep32": [95.0, 96.0], "tdsa_w2": [99.0],
               "tdsa_w0.5": [50.0, 52.0]}
    write_results(tuning_grid, _runs(tuning), tmp_path / "tuning",
                  "python -m tdsa ablate --grid configs/ablations/tuning.yaml")
    cands = book.tuned_candidates(tmp_path)
    by = {c.variant: c for c in cands}
    assert set(by) == {*tuning_grid.variants, "ce_centre", "tdsa_centre"}, "the centre joins"
    assert by["ce_centre"].top1 == (61.0, statistics.stdev([60.0, 62.0]), 2), (
        "seed 2 is not a tuning seed")
    assert by["ce_lr2e-3"].top1 == (72.0, statistics.stdev([70.0, 74.0]), 2)
    assert not by["ce_ep32"].eligible and by["ce_ep32"].reason == (
        f"32 epochs > the budget's {book.epoch_budget()}")
    assert not by["tdsa_w2"].eligible and by["tdsa_w2"].reason == "1 of 2 seeds finished"
    assert [c.variant for c in cands[:3]] == ["ce_ep32", "ce_lr2e-3", "ce_centre"]
    best = {arm: next(c.variant for c in cands if c.arm == arm and c.eligible)
            for arm in ("ce", "tdsa")}
    assert best == {"ce": "ce_lr2e-3", "tdsa": "tdsa_centre"}


def _write(path: Path, rows: list[tuple[str, int, float]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["variant", "seed", "status", "final_top1", "best_top1"])
        writer.writerows((v, s, "ok", top1, top1) for v, s, top1 in rows)


def test_measured_effect_in_a_results_folder_and_before_a_variant_ran(tmp_path: Path) -> None:
    _write(tmp_path / "calibration.csv", [("ce_centre", 0, 60.0), ("ce_centre", 1, 64.0),
                                          ("ce_n80", 0, 50.0), ("ce_n80", 1, 51.0)])
    _write(tmp_path / "tuning.csv", [("ce_ep32", 0, 70.0), ("ce_ep32", 2, 99.0)])
    grids = ("calibration", "tuning")
    # seed 0: 50 - 60, seed 1: 51 - 64 -> -11.5 ± 2.1; seed 2 of ce_ep32 has no partner
    assert book.measured_effect("ce_n80", "ce_centre", grids=grids, results_dir=tmp_path) == (
        "`ce_n80` − `ce_centre`, final_top1: -11.5 ± 2.1 over 2 seeds (0, 1): **lower**")
    assert book.measured_effect("ce_ep32", "ce_centre", grids=grids, results_dir=tmp_path) == (
        "`ce_ep32` − `ce_centre`, final_top1: +10.0 over 1 seed (0): **no clear difference**")
    assert book.measured_effect("ce_fine15", "ce_centre", grids=grids, results_dir=tmp_path,
                                required=False) == (
        "`ce_fine15` − `ce_centre`, final_top1: not measured yet")
    with pytest.raises(ValueError, match="no finished run of ce_fine15"):
        book.measured_effect("ce_fine15", "ce_centre", grids=grids, results_dir=tmp_path)
    assert book.measured_effect("ce_n80", "ce_centre", grids=("nope",), results_dir=tmp_path,
                                required=False).startswith("not measured in this copy")


def _joint_runs(final: dict[str, list[float]], rise: float) -> list[RunResult]:
    """Finished runs of the joint grid; every run's val curve gains ``rise`` per epoch over
    its 64 epochs and ends at its final top-1."""
    return [RunResult(variant, seed, "ok", {"final_top1": top1, "best_top1": top1,
                                            "final_train_top1": 99.0, "seconds": 10.0},
                      curve=[{"epoch": float(e), "val_top1": top1 - rise * (64 - e)}
                             for e in range(1, 65)])
            for variant, values in final.items() for seed, top1 in enumerate(values)]


@pytest.mark.parametrize(("rise", "words"), [
    (0.5, "moved by +4.0 points (mean over 2 seeds) against the 8 before: more than 1 point, "
          "so it **still rises at E**"),
    (0.1, "moved by +0.8 points (mean over 2 seeds) against the 8 before: within 1 point, "
          "flat at E")])
def test_joint_tuning_summary_chooses_an_arm_once_every_cell_finished(
        tmp_path: Path, rise: float, words: str) -> None:
    for suffix in (".csv", ".json"):
        shutil.copy(REPO / "results" / f"budget{suffix}", tmp_path / f"budget{suffix}")
    grid = load_grid("ablations/tuning_joint")
    top1 = {v: [80.0, 82.0] for v in grid.variants}
    top1 |= {"ce_lr4e-3_wd0.2": [90.0, 92.0], "tdsa_lr2e-3_w0.15": [88.0, 86.0],
             "tdsa_lr4e-3_w0.15": [95.0], "tdsa_published": [99.0, 97.0]}
    write_results(grid, _joint_runs(top1, rise), tmp_path / "tuning_joint",
                  "python -m tdsa ablate --grid configs/ablations/tuning_joint.yaml")
    text = book.joint_tuning_summary(tmp_path)
    assert text.startswith("27 of 28 runs finished (seeds 0, 1; validation split, test not "
                           "read), each at 64 epochs (E = 64).")
    assert "| 0.004 | 81.0 ± 1.4 (2) | **91.0 ± 1.4 (2)** |" in text, "CE's chosen cell"
    assert ("Chosen: `ce_lr4e-3_wd0.2` (cross-entropy, lr 4e-3, weight decay 0.2), 91.0 ± 1.4% "
            f"over 2 seeds; over its last 8 epochs its val top-1 {words}. It lies at an end of "
            "its grid: the largest `optim.lr` tried (0.004) and the largest "
            "`optim.weight_decay` tried (0.2); no value beyond was tried.") in text
    assert "| 0.004 | 81.0 ± 1.4 (2) | 95.0 (1) |" in text, "one seed: no std"
    assert "No choice yet: 1 of 6 settings miss a seed" in text, "TDSA waits for its last cell"
    assert "Chosen: `tdsa" not in text and "**" not in text.split("**TDSA**")[1].split(
        "Outside")[0], "no TDSA cell is chosen, least of all the published point"
    assert "`tdsa_published` (TDSA at the published weights 1.5/15" in text
    assert "98.0 ± 1.4% over 2 seeds" in text
    assert text.endswith(book.results_provenance("tuning_joint", tmp_path))


def test_joint_tuning_summary_without_the_files(tmp_path: Path) -> None:
    assert book.joint_tuning_summary(tmp_path).startswith(
        "The joint tuning's results are not in this copy (no ablation results in")


def test_joint_tuning_status_says_what_each_arm_chose(tmp_path: Path) -> None:
    for suffix in (".csv", ".json"):
        shutil.copy(REPO / "results" / f"budget{suffix}", tmp_path / f"budget{suffix}")
    grid = load_grid("ablations/tuning_joint")
    top1 = {v: [80.0, 82.0] for v in grid.variants if v.startswith("ce_")}
    top1 |= {"ce_lr1e-3_wd0.05": [84.0, 86.0], "tdsa_lr1e-3_w0.15": [70.0, 72.0]}
    write_results(grid, _joint_runs(top1, 0.0), tmp_path / "tuning_joint",
                  "python -m tdsa ablate --grid configs/ablations/tuning_joint.yaml")
    assert book.joint_tuning_status(tmp_path) == (
        "Joint tuning at E = 64 epochs on val: 14 of 28 runs finished; cross-entropy chose "
        "`ce_lr1e-3_wd0.05` (85.0 ± 1.4%); TDSA has no choice yet (5 of 6 settings miss a "
        "seed).")


def test_choice_differences_names_what_a_test_grid_changes_of_each_arms_choice(
        tmp_path: Path) -> None:
    for suffix in (".csv", ".json"):
        shutil.copy(REPO / "results" / f"budget{suffix}", tmp_path / f"budget{suffix}")
    joint = load_grid("ablations/tuning_joint")
    top1 = {v: [80.0, 82.0] for v in joint.variants}
    top1 |= {"ce_lr4e-3_wd0.2": [90.0, 92.0], "tdsa_lr2e-3_w0.15": [88.0, 86.0]}
    grid_file = tmp_path / "follow_up.yaml"
    with pytest.raises(FileNotFoundError, match="no ablation results in"):
        book.choice_differences(grid_file, tmp_path)
    write_results(joint, _joint_runs({**top1, "tdsa_lr1e-3_w0.15": [70.0]}, 0.0),
                  tmp_path / "tuning_joint", "python -m tdsa ablate")
    assert book.choice_differences(grid_file, tmp_path) is None, "TDSA has no choice yet"
    assert book.choice_carried(results_dir=tmp_path).startswith("Whether the test grids")
    write_results(joint, _joint_runs(top1, 0.0), tmp_path / "tuning_joint",
                  "python -m tdsa ablate --grid configs/ablations/tuning_joint.yaml")
    tdsa = joint.variants["tdsa_lr2e-3_w0.15"].overrides
    grid_file.write_text(yaml.safe_dump({
        "base": "configs/synthetic_tdsa.yaml", "seeds": [0, 1, 2], "split": "test",
        "overrides": [o for o in joint.overrides if o != "train.eval_test=never"]
        + ["data.root=data/elsewhere", "runtime.threads=2"],
        "variants": {
            "ce": {"config": "configs/synthetic_ce.yaml",
                   "overrides": joint.variants["ce_lr4e-3_wd0.2"].overrides},
            "tdsa": {"overrides": tdsa},
            "mc_high": {"overrides": [*tdsa, "loss.alpha_mid=0", "loss.beta_mid=0"]},
            "short": {"overrides": [*tdsa, "train.epochs=16"]}}}), encoding="utf-8")
    assert book.choice_differences(grid_file, tmp_path) == {
        "ce": {}, "tdsa": {},  # the data root, threads and test reading are not the recipe
        "mc_high": {"loss.alpha_mid": (0.15, 0.0), "loss.beta_mid": (1.5, 0.0)},
        "short": {"train.epochs": (64, 16)}}
    committed = book.choice_differences("comparison", tmp_path)
    assert committed is not None and committed["ce"] == {}, "the committed grid trains CE's"
    assert committed["tdsa"]["optim.lr"] == (0.002, 0.004), "this test's TDSA choice is lr 2e-3"
    text = book.choice_carried((str(grid_file),), tmp_path)
    assert "- `ce` of " in text and "trains its arm's joint choice." in text
    assert "`loss.alpha_mid` (0.15 chosen, 0.0 here)" in text


def test_a_chosen_cell_without_curves_is_read_from_the_comparison_of_its_recipe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for suffix in (".csv", ".json"):
        shutil.copy(REPO / "results" / f"budget{suffix}", tmp_path / f"budget{suffix}")
    joint = load_grid("ablations/tuning_joint")
    top1 = {v: [80.0, 82.0] for v in joint.variants}
    top1 |= {"ce_lr4e-3_wd0.2": [90.0, 92.0], "tdsa_lr2e-3_w0.15": [88.0, 86.0]}
    runs = [dataclasses.replace(r, curve=[]) if r.variant == "ce_lr4e-3_wd0.2" else r
            for r in _joint_runs(top1, 0.1)]
    write_results(joint, runs, tmp_path / "tuning_joint", "python -m tdsa ablate")
    comparison = tmp_path / "comparison.yaml"
    comparison.write_text(yaml.safe_dump({
        "base": "configs/synthetic_tdsa.yaml", "seeds": [0, 1, 2], "split": "test",
        "overrides": [o for o in joint.overrides if o != "train.eval_test=never"],
        "variants": {"ce": {"config": "configs/synthetic_ce.yaml",
                            "overrides": joint.variants["ce_lr4e-3_wd0.2"].overrides},
                     "tdsa": {"overrides": joint.variants["tdsa_lr1e-3_w0.15"].overrides}}}),
        encoding="utf-8")
    real = grid_module.resolve_config
    monkeypatch.setattr(grid_module, "resolve_config", lambda ref: comparison
                        if str(ref) == "ablations/comparison" else real(ref))
    write_results(load_grid("ablations/comparison"),
                  _joint_runs({"ce": [70.0, 72.0, 74.0], "tdsa": [60.0, 61.0, 62.0]}, 0.5),
                  tmp_path / "comparison", "python -m tdsa ablate")
    text = book.joint_tuning_summary(tmp_path)
    assert ("Chosen: `ce_lr4e-3_wd0.2` (cross-entropy, lr 4e-3, weight decay 0.2), 91.0 ± 1.4% "
            "over 2 seeds; its own runs kept no epoch curve; over the last 8 epochs of the "
            "comparison's `ce` runs (the same recipe) their val top-1 moved by +4.0 points "
            "(mean over 3 seeds) against the 8 before: more than 1 point, so it **still rises "
            "at E**.") in text
    assert ("Chosen: `tdsa_lr2e-3_w0.15` (TDSA, lr 2e-3, auxiliary weights 0.15/1.5), "
            "87.0 ± 1.4% over 2 seeds; over its last 8 epochs its val top-1 moved by +0.8 "
            "points") in text, "its own curves; the comparison's tdsa trains another cell"
    assert ("flat at E. It lies at an end of its grid: the largest `loss.alpha_mid`, "
            "`loss.beta_mid`, `loss.alpha_high`, `loss.beta_high` tried (0.15/1.5); no value "
            "beyond was tried.") in text, "lr 2e-3 is inside the grid's learning rates"


def test_the_committed_test_grids_train_each_arms_joint_choice() -> None:
    found = {g: book.choice_differences(g) for g in book.FOLLOW_UP_GRIDS}
    if any(d is None for d in found.values()):
        pytest.skip("the committed joint tuning has not chosen both arms yet")
    levers = {"mc_high": {"loss.alpha_mid", "loss.beta_mid"}, "no_gate": {"loss.top_down"}}
    for grid, diffs in found.items():
        assert diffs is not None
        for variant, d in diffs.items():
            allowed = levers.get(variant, set()) | (
                {"data.synthetic.seed"} if grid == book.FRESH_DRAW_GRID else set())
            assert set(d) <= allowed, f"{grid}.{variant} does not train its arm's choice: {d}"


def test_stall_summary_reads_why_from_the_curves_the_grid_kept(tmp_path: Path) -> None:
    grid = load_grid("ablations/comparison")
    final = {"ce": [80.0, 81.0, 79.0, 80.0, 82.0], "tdsa": [70.0, 71.0, 72.0, 70.0, 40.0],
             "mc_high": [60.0, 61.0, 62.0, 61.0, 60.0], "no_gate": [70.0, 72.0, 74.0, 71.0, 73.0]}
    runs = []
    for variant, values in final.items():
        for seed, top1 in enumerate(values):
            stalled = variant == "tdsa" and seed == 4
            curve = [{"epoch": float(e), "lr": 0.1,
                      "train_top1": (30.0 if stalled and e >= 3 else 10.0 * e + seed),
                      "grad_norm/high": (50.0 if stalled else 2.0 + seed / 10)}
                     for e in range(1, 9)] if variant != "no_gate" else []
            runs.append(RunResult(variant, seed, "ok", {"final_top1": top1, "best_top1": top1},
                                  curve=curve))
    write_results(grid, runs, tmp_path / "comparison", "python -m tdsa ablate ...")
    text = book.stall_summary("comparison", tmp_path)
    others = [70.0, 71.0, 72.0, 70.0]
    z = (statistics.fmean(others) - 40.0) / statistics.stdev(others)
    assert text.startswith("`results/comparison.csv` (final_top1, test split): no seed stalls "
                           "in `ce`, `mc_high`, `no_gate`.")
    assert (f"**`tdsa` seed 4** ends at 40.0% against 70.8 ± 1.0% of its other 4 seeds "
            f"({z:.1f} of their std below). Its train top-1 fell 2 std behind the other seeds' "
            "at epoch 4 and stayed behind to the end.") in text, "at 3 it still equals seed 0"
    last = [80.0, 81.0, 82.0, 83.0]  # the other seeds' train top-1 at the last epoch (an eighth)
    z_train = (30.0 - statistics.fmean(last)) / statistics.stdev(last)
    assert f"| train_top1 | 30 | 81.5 ± 1.3 | {z_train:+.1f} |" in text
    assert [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ")][1:] == [
        "| grad_norm/high", "| train_top1"], "largest |z| first, no schedule key"
    assert book.stall_summary("comparison", tmp_path, k=1e9).endswith(
        "no seed stalls in `ce`, `tdsa`, `mc_high`, `no_gate`.")
    assert book.stall_summary("fresh_draw", tmp_path).startswith(
        "The results of `fresh_draw` are not in this copy (no ablation results in")


def test_demonstration_note_sets_a_runs_epochs_against_the_budget_curves_e(
        tmp_path: Path) -> None:
    budget = {"ce_e16": [70.0, 72.0], "ce_e32": [80.0, 82.0], "ce_e64": [80.5, 82.5],
              "tdsa_e16": [60.0, 62.0], "tdsa_e32": [70.0, 72.0], "tdsa_e64": [70.5, 72.5]}
    runs = [RunResult(v, s, "ok", {"final_top1": t, "best_top1": t, "final_val_top1": t,
                                   "final_train_top1": t + 5.0})
            for v, values in budget.items() for s, t in enumerate(values)]
    write_results(load_grid("ablations/budget"), runs, tmp_path / "budget", "python -m tdsa ...")
    assert book.demonstration_note(16, tmp_path) == (
        "These runs trained 16 epochs: a demonstration that fits the book build's time budget, "
        "below the converged budget of the budget curve on val (E = 32 epochs; chapter 5), so "
        "their numbers are not the book's evidence.")
    assert book.demonstration_note(32, tmp_path).startswith(
        "These runs trained 32 epochs, at or above the converged budget")
    assert "E = 64 epochs, not converged" in book.demonstration_note(16)
    assert book.demonstration_note(16, tmp_path / "none").startswith(
        "The budget curve's results are not in this copy")


def test_class_count_table_sets_the_data_beside_the_calibration_cells(tmp_path: Path) -> None:
    calibration = {"ce_centre": [60.0, 62.0], "tdsa_centre": [55.0, 57.0], "ce_k48": [70.0],
                   "tdsa_k48": [40.0]}
    write_results(load_grid("ablations/calibration"), _runs(calibration),
                  tmp_path / "calibration", "python -m tdsa ablate ...")
    lines = book.class_count_table(tmp_path, counts=(12, 48)).splitlines()
    assert lines[2] == "| 12 | none | 1.50 | 0 of 12 | 61.0 ± 1.4 (2) | 56.0 ± 1.4 (2) | 16 |"
    assert lines[3].startswith("| 12 | eye_ring | 0.50 | 12 of 12 | — | — | — |")
    assert lines[4].startswith("| 48 | none | 6.12 | 0 of 48 | 70.0 (1) | 40.0 (1) |")
    assert lines[5].startswith("| 48 | eye_ring | 1.75 | 48 of 48 | — | — |")
    assert len([line for line in lines if line.startswith("| ")]) == 5, "2 counts x 2 + header"
