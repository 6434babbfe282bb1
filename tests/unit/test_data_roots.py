"""One root, one set of arguments: every generated dataset the book's chapters ask for comes
from :data:`tdsa.experiments.book.SYNTHETIC_SETS` through
:func:`tdsa.experiments.book.synthetic_data`, so building the book in one profile and then in
another on the same checkout never asks a root for other data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tdsa.config import apply_overrides, load_config
from tdsa.engine.build import ensure_synthetic
from tdsa.engine.distributed import DistInfo
from tdsa.errors import ConfigError
from tdsa.experiments import book

REPO = Path(__file__).resolve().parents[2]


def _plans(runs_root: Path) -> list[book.RunPlan]:
    plans = [book.run_plan("channel_constraint", p, runs_root=runs_root)
             for p in ("smoke", "cpu")]
    plans += [book.run_plan("training", p, arm=a, runs_root=runs_root)
              for p in ("smoke", "cpu") for a in ("ce", "tdsa")]
    return plans


def _data(plan_or_overrides: book.RunPlan | list[str]) -> tuple[str, dict]:
    """The (root, data.synthetic) a run would generate or check, resolved as the trainer does."""
    if isinstance(plan_or_overrides, book.RunPlan):
        cfg = apply_overrides(load_config(plan_or_overrides.config), plan_or_overrides.overrides)
    else:
        cfg = apply_overrides(load_config(book.config_path("smoke")), plan_or_overrides)
    return str(Path(cfg.data.root).resolve()), dict(cfg.data.synthetic)


def test_every_root_the_book_generates_is_asked_for_with_one_set_of_arguments(
        tmp_path: Path) -> None:
    asked: dict[str, list[dict]] = {}
    sources = [*_plans(tmp_path), *(book.synthetic_data(n) for n in book.SYNTHETIC_SETS)]
    for source in sources:
        root, args = _data(source)
        asked.setdefault(root, []).append(args)
    for root, argument_sets in asked.items():
        assert all(a == argument_sets[0] for a in argument_sets), root
    assert len(asked) >= 3  # synthetic (the book's default), synthetic-book-smoke, -cpu


def test_cpu_profile_data_then_smoke_build_on_one_checkout(tmp_path: Path) -> None:
    """What `make book` then `make test` did to one clone: chapter 7 (any profile) generated
    the smoke root, then chapter 2's smoke run checked it against its own arguments."""
    info = DistInfo()
    chapter7 = [*book.synthetic_data("smoke", tmp_path / "smoke"), "data.image_size=48"]
    cfg7 = apply_overrides(load_config(book.config_path("smoke")), chapter7)
    ensure_synthetic(cfg7.data, info)
    chapter2 = book.run_plan("channel_constraint", "smoke", root=tmp_path / "smoke",
                             runs_root=tmp_path / "runs")
    cfg2 = apply_overrides(load_config(chapter2.config), chapter2.overrides)
    ensure_synthetic(cfg2.data, info)  # raised ConfigError before: val_per_class None vs 4
    stored = json.loads((tmp_path / "smoke" / "tdsa_synthetic.json").read_text())["args"]
    assert stored["val_per_class"] == book.SYNTHETIC_SETS["smoke"]["val_per_class"]
    other = apply_overrides(cfg2, ["data.synthetic.val_per_class=0"])
    with pytest.raises(ConfigError, match="generated with other arguments"):
        ensure_synthetic(other.data, info)


def test_no_chapter_writes_a_generated_root_or_its_arguments_itself() -> None:
    for nb in sorted((REPO / "book").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "synthetic-book-" not in code, nb.name
        assert not re.search(r"data\.synthetic\.\w+=", code), nb.name


def test_unknown_set_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="synthetic set must be one of"):
        book.synthetic_data("tiny")
