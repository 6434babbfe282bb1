"""Where the book's numbers come from (issue 23): committed results, runs of this build."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from tdsa.experiments import book
from tdsa.experiments.grid import RunResult, load_grid, write_results
from tdsa.provenance import cpu_kind

REPO = Path(__file__).resolve().parents[2]


def _grid(tmp_path: Path) -> Path:
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({
        "base": str(REPO / "configs" / "synthetic_tdsa.yaml"), "seeds": [0, 1], "split": "val",
        "variants": {"tdsa": {"overrides": []}}}))
    return path


def test_results_provenance_names_split_seeds_precision_machine_and_commands(
        tmp_path: Path) -> None:
    out = tmp_path / "results"
    grid = load_grid(_grid(tmp_path))
    runs = [RunResult("tdsa", s, "ok", {"final_top1": 40.0 + s, "best_top1": 41.0})
            for s in (0, 1)]
    write_results(grid, runs[:1], out / "g", "python -m tdsa ablate --grid g.yaml --seeds 0")
    write_results(grid, runs, out / "g", "python -m tdsa ablate --grid g.yaml --seeds 1")
    text = book.results_provenance("g", out)
    assert text.startswith("`results/g` (loaded from the repository, not trained in this build): "
                           "val split; seeds 0, 1 (2 runs finished); precision ")
    assert "train.amp=auto" in text and f"CPU {cpu_kind()}" in text
    assert ("by `python -m tdsa ablate --grid g.yaml --seeds 0`; resumed with `python -m tdsa "
            "ablate --grid g.yaml --seeds 1`.") in text
    assert "the last call only" not in text
    assert book.results_provenance("nope", out).startswith("`results/nope`: not in this copy")


def test_results_provenance_of_a_file_written_before_the_header_had_cpu_and_precision() -> None:
    text = book.results_provenance("calibration")
    assert "val split; seeds 0, 1, 2" in text
    assert "precision train.amp=auto, channels_last=auto (auto: bf16 + channels_last" in text
    assert "CPU model not recorded" in text
    assert "(the last call only: this file was written before the results kept every " in text


def test_run_provenance_says_trained_now_or_loaded(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"precision": "fp32", "seconds": 12.4}))
    monkeypatch.setattr(book, "_SESSION_START", time.time() - 60)
    now = book.run_provenance(run)
    assert now.endswith(f": trained now, in this build, 12 s, fp32, on {cpu_kind()}")
    os.utime(run / "summary.json", (0.0, 86400.0))  # 1970-01-02: an earlier session
    assert book.run_provenance(run).endswith(
        ": loaded, trained earlier (1970-01-02 00:00 UTC, 12 s, fp32; the CPU of that session "
        "is not recorded)")


def test_comparison_summary_of_the_fresh_draw() -> None:
    text = book.comparison_summary(grid=book.FRESH_DRAW_GRID)
    assert text.startswith("Committed results (`results/fresh_draw.csv`, final_top1 on the test "
                           "split")
    assert "`tdsa` (TDSA-Loss on a fresh draw)" in text and "over 5 seeds: **" in text
    assert "`results/fresh_draw` (loaded from the repository" in text
