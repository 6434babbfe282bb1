"""Chapter 5 reads the results files that ``python -m tdsa ablate`` writes.

The chapter is run with papermill on results of the shipped grids written by the package's own
``tdsa.experiments.grid.write_results`` (so a change of the results format breaks this test, not the
published book), with numbers chosen so that its prose has one right answer (the previous
default's sweep is the committed one), and on an empty folder, where it must stop with one
clear error naming the command to run.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import papermill
import pytest
from book_helpers import BOOK, REPO

from tdsa.config import load_config
from tdsa.experiments import book
from tdsa.experiments.calibration import BAND, tuned_mismatches, tuning_candidates
from tdsa.experiments.evidence import check_levers, read_sweep
from tdsa.experiments.grid import RunResult, load_grid, write_results

CHAPTER = BOOK / "05_ablations.ipynb"


def _run(tmp_path: Path, results: Path) -> nbformat.NotebookNode:
    out = tmp_path / "05_ablations.ipynb"
    papermill.execute_notebook(
        str(CHAPTER), str(out), parameters={"profile": "smoke", "results_dir": str(results)},
        kernel_name="python3", cwd=str(BOOK), progress_bar=False,
    )
    return nbformat.read(out, as_version=4)


def _markdown_outputs(nb: nbformat.NotebookNode) -> str:
    return "\n".join(o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if "text/markdown" in o.get("data", {}))


def _runs(final: dict[str, list[float]], train: dict[str, list[float]] | None = None,
          **extra: dict[str, list[float]]) -> list[RunResult]:
    """One finished run per value of ``final`` (seed = position)."""
    out = []
    for variant, values in final.items():
        for seed, top1 in enumerate(values):
            row = {"final_top1": top1, "best_top1": top1 + 1.0, "best_epoch": 15.0,
                   "epochs": 16.0, "seconds": 150.0,
                   "final_train_top1": (train or {}).get(variant, [top1 + 10.0] * 5)[seed]}
            row |= {key: column[variant][seed] for key, column in extra.items()
                    if variant in column}
            out.append(RunResult(variant, seed, "ok", row))
    return out


def _winners() -> dict[str, str]:
    """Per arm, the tuning candidate that the shipped default config carries."""
    grids = [(load_grid("ablations/calibration"), []), (load_grid("ablations/tuning"), [])]
    budget = book.epoch_budget()
    cands = tuning_candidates(grids, seeds=book.TUNING_SEEDS, max_epochs=budget)
    winners = {}
    for arm in ("ce", "tdsa"):
        cfg = load_config(f"synthetic_{arm}")
        found = [c.variant for c in cands if c.arm == arm and c.epochs <= budget
                 and not tuned_mismatches(c, cands, cfg)]
        assert len(found) == 1, f"configs/synthetic_{arm}.yaml matches {found}"
        winners[arm] = found[0]
    return winners


def _results(tmp_path: Path, winners: dict[str, str]) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    for name in book.BOOK_GRIDS:  # the previous default: the committed sweep
        for suffix in (".csv", ".json"):
            shutil.copy(REPO / "results" / f"{name}{suffix}", results / f"{name}{suffix}")
    calibration = {"ce_centre": [60.0, 62.0, 64.0], "tdsa_centre": [55.0, 57.0, 59.0],
                   "ce_n40": [15.0, 17.0, 16.0], "tdsa_n40": [14.0, 16.0, 15.0],
                   "ce_fine15": [70.0]}
    write_results(load_grid("ablations/calibration"),
                  _runs(calibration, {"ce_n40": [90.0] * 3}), results / "calibration",
                  "python -m tdsa ablate --grid configs/ablations/calibration.yaml")
    tuning_grid = load_grid("ablations/tuning")
    tuning = {v: [40.0 + i, 40.0 + i] for i, v in enumerate(tuning_grid.variants)}
    single = next(v for v in tuning_grid.variants if v.startswith("tdsa_")
                  and v not in winners.values() and "ep32" not in v)
    tuning |= {"ce_ep32": [95.0, 96.0], single: [99.0]}  # over the budget; one seed only
    tuning |= {w: [90.0, 92.0] for w in winners.values() if w in tuning_grid.variants}
    write_results(tuning_grid, _runs(tuning), results / "tuning",
                  "python -m tdsa ablate --grid configs/ablations/tuning.yaml")
    # the budget curve (val): TDSA still gains 6 points from 32 to 64 epochs, so E = 64, not
    # converged; the comparison's configs train 16 epochs, below it
    budget = {"ce_e16": [70.0, 72.0], "ce_e32": [80.0, 82.0], "ce_e64": [80.5, 82.5],
              "tdsa_e16": [60.0, 62.0], "tdsa_e32": [70.0, 72.0], "tdsa_e64": [76.0, 78.0]}
    write_results(load_grid("ablations/budget"), _runs(budget, final_val_top1=budget),
                  results / "budget", "python -m tdsa ablate --grid configs/ablations/budget.yaml")
    # the joint tuning at E (val): cross-entropy's grid complete, TDSA's waiting for one seed
    joint_grid = load_grid("ablations/tuning_joint")
    joint = {v: [70.0, 72.0] for v in joint_grid.variants}
    joint |= {"ce_lr4e-3_wd0.05": [88.0, 90.0], "tdsa_lr2e-3_w0.15": [95.0]}
    write_results(joint_grid, _runs(joint), results / "tuning_joint",
                  "python -m tdsa ablate --grid configs/ablations/tuning_joint.yaml")
    # TDSA is 10, 11, 9 points above CE on seeds 0, 1, 2: paired difference +10.0 ± 1.0;
    # mc_high -5, -2, -8: -5.0 ± 3.0; no_gate +2, -2, +1: +0.3 ± 2.1.
    final = {"ce": [50.0, 40.0, 60.0], "tdsa": [60.0, 51.0, 69.0], "mc_high": [45.0, 38.0, 52.0],
             "no_gate": [52.0, 38.0, 61.0]}
    best = {v: [x + 3.0 for x in values] for v, values in final.items()}
    runs = _runs(final, {"ce": [70.0, 60.0, 80.0]}, test_best_top1=best)
    runs.append(RunResult("tdsa", 3, "failed", {}, "NonFiniteLossError: loss is nan"))
    write_results(load_grid("ablations/comparison"), runs, results / "comparison",
                  "python -m tdsa ablate --grid configs/ablations/comparison.yaml")
    return results


@pytest.mark.slow
def test_chapter_reads_the_results_and_states_them(tmp_path: Path) -> None:
    winners = _winners()
    nb = _run(tmp_path, _results(tmp_path, winners))
    text = _markdown_outputs(nb)
    assert "python -m tdsa ablate --grid configs/ablations/comparison.yaml" in text
    # calibration (val): the band per cross-entropy cell, and the sentence naming them
    assert "| ce_centre | the centre | 3 | 62.0 ± 2.0 | 7.4 | 10.0 ± 0.0 | 150 | **in** |" in text
    assert ("- ce_n40 is out: top-1 16.0 outside [40, 85]; top-1 16.0 < 5 x chance (8.3); "
            "train - top-1 gap 74.0 > 30") in text, "the reasons below the table"
    assert f"**In the band, on val** ({BAND.describe('val')}): " in text
    assert "ce_centre (the centre, 62.0%)" in text
    assert ("ce_n40 (top-1 16.0 outside [40, 85], top-1 16.0 < 5 x chance (8.3), train - top-1 "
            "gap 74.0 > 30)") in text
    assert "Fewer seeds than the grid's 3: ce_fine15 (1)." in text
    assert "Not run yet: " in text and "ce_k48" in text.split("Not run yet: ")[1].split(".")[0]
    assert ("At 40 training images per class (the previous default's number) cross-entropy's "
            "final val top-1 is 16.0 ± 1.0% against a final train top-1 74.0 points higher: it "
            "memorises the training set.") in text
    # the class count: the data's one-attribute neighbours beside the calibration cells
    assert "| 12 | none | 1.50 | 0 of 12 | 62.0 ± 2.0 (3) | 57.0 ± 2.0 (3) | 16 |" in text
    assert "| 48 | eye_ring | 1.75 | 48 of 48 | — | — | — |" in text
    # tuning (val): the best eligible candidate of each arm, over the budget and one seed out
    assert "Each arm's setting, chosen on val: " in text
    assert (f"Final val top-1 over seeds 0, 1, within the time budget of {book.epoch_budget()} "
            "epochs per run (validation split; test not read)") in text
    assert f"cross-entropy → `{winners['ce']}`" in text and f"TDSA → `{winners['tdsa']}`" in text
    assert "- ce_ep32 is excluded: 32 epochs > the budget's 16" in text
    assert " is excluded: 1 of 2 seeds finished" in text
    assert re.search(r"\| cross-entropy \| [\w.-]+ \| \*\*chosen\*\* \| \d \|", text), (
        "the choice is the third column: " + "\n".join(
            line for line in text.splitlines() if "chosen**" in line))
    assert "`ce_ep32` (95.5 ± 0.7% on val, 2 seed(s))" in text
    # the budget (val): E by the rule, the doubling that decided it, the comparison's epochs
    assert ("**E = 64 epochs, not converged**: no doubling measured keeps every arm's mean final "
            "val top-1 within 1 point (from 32 to 64 epochs: ce +0.5, tdsa +6.0 points)") in text
    assert "The committed comparison (`results/comparison`) trained 64 epochs, at E." in text
    # the joint tuning (val): a choice only where every cell of an arm's grid has both seeds
    assert "27 of 28 runs finished (seeds 0, 1; validation split, test not read)" in text
    assert "| 0.004 | **89.0 ± 1.4 (2)** | 71.0 ± 1.4 (2) |" in text, "CE's chosen cell"
    assert ("Chosen: `ce_lr4e-3_wd0.05` (cross-entropy, lr 4e-3, weight decay 0.05), 89.0 ± 1.4% "
            "over 2 seeds; its runs recorded no epoch curve") in text
    assert ("It lies at an end of its grid: the largest `optim.lr` tried (0.004) and the smallest "
            "`optim.weight_decay` tried (0.05); no value beyond was tried.") in text
    assert "| 0.002 | 71.0 ± 1.4 (2) | 95.0 (1) |" in text
    assert "No choice yet: 1 of 6 settings miss a seed" in text
    assert ("Whether the test grids train each arm's joint choice is checked once both arms have "
            "one.") in text, "TDSA has no choice yet"
    assert ("Joint tuning at E = 64 epochs on val: 27 of 28 runs finished; cross-entropy chose "
            "`ce_lr4e-3_wd0.05` (89.0 ± 1.4%); TDSA has no choice yet (1 of 6 settings miss a "
            "seed).") in text, "the bullet of the chapter's summary"
    # the comparison (test), paired by seed, and the band of cross-entropy on test
    assert "tdsa − ce: +10.0 ± 1.0 points over 3 seeds, **higher**" in text
    assert "mc_high − ce: -5.0 ± 3.0 points over 3 seeds, **lower**" in text
    assert "no_gate − ce: +0.3 ± 2.1 points over 3 seeds, **no clear difference**" in text
    assert ("**Cross-entropy at the default, on test:** final top-1 50.0 ± 10.0% (6.0× chance, "
            "8.3%), train − test gap 20.0 ± 0.0 points over 3 seeds: inside the band.") in text
    assert "Seeds finished so far (of 5): ce 3, tdsa 3, mc_high 3, no_gate 3" in text
    assert ("| tdsa | 3 | 60.0 ± 9.0 | +10.0 ± 1.0 | higher | 150 ± 0 | 63.0 ± 9.0 |"
            in text), "the field's best-on-test column, beside the final epoch"
    assert "*best on test*: best test top-1, selected on test" in text, "its legend"
    assert "`results/comparison` (loaded from the repository, not trained in this build): " \
           "test split; seeds 0, 1, 2" in text, "where the numbers come from"
    assert "`tdsa` (TDSA-Loss on a fresh draw)" in text, "the fresh draw's replication"
    # seeds that stall: three seeds are too few to judge; the fresh draw is not in this folder
    assert ("`results/comparison.csv` (final_top1, test split): no seed stalls in `ce`, `tdsa`, "
            "`mc_high`, `no_gate`.") in text
    assert "The results of `fresh_draw` are not in this copy (no ablation results in" in text
    assert "best test top-1, selected on test (the field's convention) (%)" in text
    assert "at the epoch selected on val" not in text, "a column without values is left out"
    # the previous default: its one lever table and claim, from the committed sweep
    sweep = read_sweep(REPO / "results", book.BOOK_GRIDS)
    assert book.claim_summary(check_levers(sweep, book.lever_pairs())) in text
    assert "| lever | CE arm | method arm | seeds |" in text
    # the exercises' measured effects (val)
    assert ("`ce_ep32` − `ce_centre`, final_top1: +34.5 ± 0.7 over 2 seeds (0, 1): **higher**"
            in text)
    assert "`ce_n80` − `ce_centre`, final_top1: not measured yet" in text
    assert "- At the previous default (40 images per class), " in text
    streams = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                        for o in c.get("outputs", []))
    assert "  failed: tdsa seed 3" in streams, "failed runs are shown"
    assert "results/comparison.csv (test split): 12 runs finished of 20" in streams
    assert "results/tuning_joint.csv (val split): 27 runs finished of 28" in streams
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 4, "calibration, budget, comparison and previous-default figures"


@pytest.mark.slow
def test_chapter_without_results_fails_with_one_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(papermill.PapermillExecutionError) as info:
        _run(tmp_path, empty)
    assert info.value.ename == "FileNotFoundError"
    assert f"no ablation results in {empty}" in info.value.evalue
    assert "python -m tdsa ablate --grid configs/ablations/calibration.yaml" in info.value.evalue
