"""Chapter 5 reads the results files that ``python -m tdsa ablate`` writes.

The chapter is run with papermill on results written by the package's own
``tdsa.ablate.write_results`` (so a change of the results format breaks this test, not the
published book), with numbers chosen so that its prose has one right answer, and on an empty
folder, where it must stop with one clear error naming the command to run.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest
import yaml
from book_helpers import BOOK, REPO

from tdsa.ablate import RunResult, load_grid, write_results

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


def _command(tmp_path: Path) -> str:
    return f"python -m tdsa ablate --grid {tmp_path / 'probe.yaml'} --out runs/ablate/probe"


def _results(tmp_path: Path) -> Path:
    grid_path = tmp_path / "probe.yaml"
    grid_path.write_text(yaml.safe_dump({
        "base": str(REPO / "configs" / "synthetic_tdsa.yaml"),
        "seeds": [0, 1, 2],
        "variants": {
            "ce": {"description": "cross-entropy only",
                   "overrides": ["loss.alpha_mid=0", "loss.beta_mid=0", "loss.alpha_high=0",
                                 "loss.beta_high=0"]},
            "tdsa": {"description": "full TDSA", "overrides": []},
        },
    }))
    grid = load_grid(grid_path)
    # TDSA is 10, 11, 9 points above CE on seeds 0, 1, 2: paired difference +10.0 ± 1.0.
    final = {"ce": [50.0, 40.0, 60.0], "tdsa": [60.0, 51.0, 69.0]}
    results = []
    for variant, values in final.items():
        for seed, top1 in enumerate(values):
            hits = {"high": 0.30, "wrong_high": 0.10, "chance_high": 0.05, "centre": 0.0,
                    "gradcam": 0.08}
            values = {"final_top1": top1, "best_top1": top1 + 2.0, "best_epoch": 20.0,
                      "epochs": 25.0, "seconds": 150.0}
            for source, rate in hits.items():
                values[f"hit_rate/{source}/granularity:fine"] = rate
                values[f"hit_rate/{source}/granularity:coarse"] = 0.5 * rate + 0.1
            results.append(RunResult(variant, seed, "ok", values))
    results.append(RunResult("tdsa", 3, "failed", {}, "NonFiniteLossError: loss is nan"))
    write_results(grid, results, tmp_path / "results" / "probe", _command(tmp_path))
    return tmp_path / "results"


@pytest.mark.slow
def test_chapter_reads_the_results_and_states_them(tmp_path: Path) -> None:
    nb = _run(tmp_path, _results(tmp_path))
    text = _markdown_outputs(nb)
    assert _command(tmp_path) in text, "the chapter states the command that produced the results"
    assert "| ce | cross-entropy only | 3 | 50.0 ± 10.0 | 52.0 ± 10.0 | 150 ± 0 |" in text
    assert "| tdsa | full TDSA | 3 | 60.0 ± 9.0 |" in text
    assert "tdsa vs ce: +10.0 ± 1.0 points over 3 seed(s), **higher**" in text
    assert "true-class channels vs a wrong class's channels: +20.0 ± 0.0" in text
    assert "**In these results TDSA does what the paper claims:**" in text
    assert ("| none (the book's regime: flattened head, 112 px) | ce | tdsa | 3 | 50.0 ± 10.0 | "
            "60.0 ± 9.0 | +10.0 ± 1.0 | +20.0 ± 0.0 | +25.0 ± 0.0 | +22.0 ± 0.0 | holds |") in text
    assert "**A regime where TDSA does what the paper claims:** tdsa (none" in text
    streams = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                        for o in c.get("outputs", []))
    assert "tdsa             seeds [0, 1, 2], failed [3]" in streams, "failed runs are shown"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 2, "accuracy and localisation plots"


@pytest.mark.slow
def test_chapter_without_results_fails_with_one_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(papermill.PapermillExecutionError) as info:
        _run(tmp_path, empty)
    assert info.value.ename == "FileNotFoundError"
    assert f"no ablation results in {empty}" in info.value.evalue
    assert "python -m tdsa ablate --grid configs/ablations/synthetic.yaml" in info.value.evalue
