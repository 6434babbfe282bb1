"""Chapter text that must agree with the chapter's numbers: the closing sections, the method
diagram, no hand-written runtimes, and the helper that states a measured effect."""

from __future__ import annotations

import ast
import csv
import math
import re
import statistics
from pathlib import Path

import nbformat
import pytest
from book_helpers import BOOK, STAGED

from tdsa.experiments import book

CHAPTERS = ["01_data", "02_channel_constraint", "03_top_down_attention", "04_training",
            "05_ablations", "06_attention_metrics",
            "07_reproducing"]
DIAGRAM = "figures/tdsa_method.svg"
HANDWRITTEN_TIME = re.compile(
    r"\babout (a|an|one|two|three|four|five|ten|[\d.]+)( and a half)? (second|minute|hour)s?\b",
    re.IGNORECASE)


def _cells(name: str) -> list[nbformat.NotebookNode]:
    return nbformat.read(BOOK / f"{name}.ipynb", as_version=4).cells


def _heading(cells: list[nbformat.NotebookNode], title: str) -> int:
    found = [i for i, c in enumerate(cells)
             if c.cell_type == "markdown" and c.source.splitlines()[0] == f"## {title}"]
    assert len(found) == 1, f"expected one '## {title}' section, found {len(found)}"
    return found[0]


def _bullets(source: str) -> ast.List:
    """The list literal assigned to ``bullets`` in a summary cell."""
    lists = [node.value for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Assign) and isinstance(node.value, ast.List)
             and any(isinstance(t, ast.Name) and t.id == "bullets" for t in node.targets)]
    assert len(lists) == 1, "the summary cell assigns one list to `bullets`"
    return lists[0]


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_ends_with_what_we_measured_then_exercises(name: str) -> None:
    cells = _cells(name)
    measured, exercises = _heading(cells, "What we measured"), _heading(cells, "Exercises")
    assert measured < exercises, f"{name}: 'What we measured' comes before 'Exercises'"
    summary = cells[measured + 1]
    assert summary.cell_type == "code", f"{name}: the summary is computed in a code cell"
    assert "display(Markdown(" in summary.source, f"{name}: the summary cell prints Markdown"
    assert 3 <= len(_bullets(summary.source).elts) <= 5, f"{name}: three to five bullets"
    items = re.findall(r"^(\d+)\. \*\*", cells[exercises].source, flags=re.MULTILINE)
    assert 2 <= len(items) <= 4, f"{name}: two to four exercises, found {len(items)}"
    assert items == [str(i) for i in range(1, len(items) + 1)], f"{name}: numbered 1, 2, ..."
    assert all(c.cell_type == "code" for c in cells[exercises + 1:]), (
        f"{name}: only the measured effects' cell follows the exercises")


@pytest.mark.parametrize("name", ["02_channel_constraint", "03_top_down_attention"])
def test_method_diagram_in_chapters_2_and_3(name: str) -> None:
    assert (BOOK / DIAGRAM).is_file(), f"{DIAGRAM} is missing (drawn by tdsa.viz.diagram)"
    text = "\n".join(c.source for c in _cells(name) if c.cell_type == "markdown")
    assert re.search(rf"!\[[^\]]+\]\({re.escape(DIAGRAM)}\)", text), (
        f"{name}: no markdown image of {DIAGRAM} with alt text")
    assert DIAGRAM in (BOOK / "intro.md").read_text(), "the intro shows the diagram"


@pytest.mark.parametrize("name", CHAPTERS)
def test_no_handwritten_runtime_in_the_prose(name: str) -> None:
    for cell in _cells(name):
        if cell.cell_type == "markdown":
            found = HANDWRITTEN_TIME.search(cell.source)
            assert not found, f"{name}: '{found.group(0)}' is written by hand: print it from " \
                              "measured seconds"


def test_handwritten_runtime_pattern() -> None:
    assert HANDWRITTEN_TIME.search("about two and a half minutes per run")
    assert HANDWRITTEN_TIME.search("takes about 3 hours")
    assert not HANDWRITTEN_TIME.search("about the time printed below")


def test_claims_that_the_figures_contradicted_are_gone() -> None:
    """Issue 15: sentences a reader found contradicted by the numbers beside them."""
    text = {name: " ".join("\n".join(c.source for c in _cells(name)).split())
            for name in CHAPTERS}
    assert "the class channels become discriminative" not in text["02_channel_constraint"]
    assert "settle on different parts" not in text["02_channel_constraint"]
    assert "only a tendency" not in text["03_top_down_attention"]
    assert "0.5 would be no preference" not in text["03_top_down_attention"]
    assert "print(train)" not in text["01_data"], "a dataset's repr shows its absolute root"


def _write_grid(path: Path, rows: list[tuple[str, int, float]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["variant", "seed", "status", "final_top1", "best_top1", "score"])
        for variant, seed, top1 in rows:
            writer.writerow([variant, seed, "ok", top1, top1, top1 / 100])


def test_measured_effect_pairs_by_seed_over_the_grids(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    base = {0: 10.0, 1: 14.0, 2: 12.0}
    arm = {0: 13.0, 1: 15.0, 3: 40.0}  # seed 3 has no partner and must be left out
    _write_grid(tmp_path / "synthetic.csv", [("ce", s, v) for s, v in base.items()])
    _write_grid(tmp_path / "levers.csv", [("ce_n80", s, v) for s, v in arm.items()])
    monkeypatch.setattr(book, "results_path", lambda: tmp_path)
    diffs = [arm[s] - base[s] for s in (0, 1)]
    mean, std = statistics.fmean(diffs), statistics.stdev(diffs)
    assert (mean, round(std, 4)) == (2.0, 1.4142)
    text = book.measured_effect("ce_n80", "ce")
    assert text == (f"`ce_n80` − `ce`, final_top1: +{mean:.1f} ± {std:.1f} over 2 seeds (0, 1): "
                    "**higher**")
    scaled = book.measured_effect("ce_n80", "ce", column="score", scale=100.0)
    assert scaled.startswith("`ce_n80` − `ce`, score: +2.0 ± 1.4 over 2 seeds (0, 1)")
    assert book.measured_effect("ce", "ce_n80").endswith("**lower**")
    _write_grid(tmp_path / "levers.csv", [("ce_n80", 0, 30.0), ("ce_n80", 1, 10.0)])
    assert book.measured_effect("ce_n80", "ce").endswith("**no clear difference**")
    with pytest.raises(ValueError, match="tdsa_gap"):
        book.measured_effect("tdsa_gap", "ce")


def test_measured_effect_without_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(book, "results_path", lambda: tmp_path)
    assert book.measured_effect("ce_n80", "ce").startswith("not measured in this copy")


def test_comparison_summary_pairs_each_method_arm_with_its_ce(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ce = {0: 70.0, 1: 74.0, 2: 72.0}
    rows = [("ce", s, v) for s, v in ce.items()]
    rows += [("tdsa", s, v + d) for (s, v), d in zip(ce.items(), (3.0, 5.0, 4.0), strict=True)]
    rows += [("mc_high", s, v - 1.0) for s, v in ce.items()]
    rows += [("no_gate", 0, 60.0), ("no_gate", 1, 90.0)]
    _write_grid(tmp_path / "comparison.csv", rows)
    monkeypatch.setattr(book, "results_path", lambda: tmp_path)
    text = book.comparison_summary()
    assert "`tdsa` (TDSA-Loss at the default regime) 76.0 ± 3.0% against `ce` 72.0 ± 2.0%" in text
    assert "paired difference +4.0 ± 1.0 points over 3 seeds: **higher**" in text
    assert "`mc_high` (MC-Loss on the high stage only) 71.0 ± 2.0%" in text
    assert "-1.0 ± 0.0 points over 3 seeds: **lower**" in text
    assert "+3.0 ± 18.4 points over 2 seeds: **no clear difference**" in text
    (tmp_path / "comparison.csv").unlink()
    assert book.comparison_summary().startswith("The comparison's results are not in")


def test_measured_effect_on_the_committed_results() -> None:
    text = book.measured_effect("ce_n80", "ce")
    assert re.fullmatch(r"`ce_n80` − `ce`, final_top1: [+-]\d+\.\d ± \d+\.\d over 3 seeds "
                        r"\(0, 1, 2\): \*\*(higher|lower|(borderline )?(higher|lower)|"
                        r"no clear difference)\*\*", text), text
    one = book.measured_effect("ce_ep32", "ce_centre", grids=("tuning", "calibration"))
    assert " over 1 seed (0): " in one, "a one-seed point says so"
    assert not math.isnan(float(text.split(": ")[1].split(" ")[0]))


@pytest.mark.parametrize("name", CHAPTERS)
def test_executed_summary_has_its_bullets_and_no_machine_path(built_book: Path, name: str) -> None:
    nb = nbformat.read(STAGED / "book" / f"{name}.ipynb", as_version=4)
    measured = _heading(nb.cells, "What we measured")
    outputs = [o["data"]["text/markdown"] for o in nb.cells[measured + 1].outputs
               if "text/markdown" in o.get("data", {})]
    assert len(outputs) == 1, f"{name}: the summary cell displays one Markdown block"
    bullets = [line for line in outputs[0].splitlines() if line.startswith("- ")]
    assert 3 <= len(bullets) <= 5 and "nan" not in outputs[0], outputs[0]
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
            text += str(output.get("data", {}).get("text/markdown", ""))
            assert str(built_book.parent) not in text, f"{name}: a machine path in an output"


def test_first_test_images_are_the_test_split_through_the_test_transform(tmp_path: Path) -> None:
    from tdsa.config import apply_overrides, load_config
    from tdsa.data import build_dataset, build_transforms
    from tdsa.data.synthetic import generate

    root = generate(tmp_path / "birds", num_classes=2, train_per_class=2, test_per_class=3,
                    image_size=48)
    cfg = apply_overrides(load_config("smoke"), ["data.dataset=synthetic", f"data.root={root}",
                                                 "data.image_size=32"])
    images, labels = book.first_test_images(cfg, limit=4)
    reference = build_dataset("synthetic", root, "test",
                              transform=build_transforms("scratch", 32, train=False))
    assert images.shape == (4, 3, 32, 32) and labels.tolist() == reference.targets[:4]
    for i in range(4):
        assert (images[i] == reference[i][0]).all(), f"test image {i} differs"
    everything, _ = book.first_test_images(cfg)
    assert len(everything) == len(reference) == 6, "the limit only cuts, never pads"
    cropped = apply_overrides(cfg, ["data.options.crop_to_bbox=true"])
    images, _ = book.first_test_images(cropped, limit=2)
    reference = build_dataset("synthetic", root, "test", crop_to_bbox=True,
                              transform=build_transforms("scratch", 32, train=False))
    assert all((images[i] == reference[i][0]).all() for i in range(2)), "data.options apply"
    assert not (images[0] == everything[0]).all(), "the crop changes the image"


def _generator_defaults() -> dict[str, object]:
    import inspect

    from tdsa.data.synthetic import generate

    return {n: p.default for n, p in inspect.signature(generate).parameters.items()}


def test_data_regime_reads_the_configs_synthetic_section(tmp_path: Path) -> None:
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text("data: {dataset: synthetic, synthetic: {num_classes: 5, "
                      "train_per_class: 7, test_per_class: 3}}\n")
    assert book.data_regime(config) == "5 classes with 7 training and 3 test images each"
    config.write_text("data: {dataset: synthetic, synthetic: {num_classes: 5, "
                      "train_per_class: 7, val_per_class: 2, test_per_class: 3}}\n")
    assert book.data_regime(config) == (
        "5 classes with 7 training, 2 validation and 3 test images each")
    config.write_text("data: {dataset: synthetic, synthetic: {train_per_class: 9}}\n")
    defaults = _generator_defaults()
    assert book.data_regime(config) == (f"{defaults['num_classes']} classes with 9 training and "
                                        f"{defaults['test_per_class']} test images each")
    shipped = yaml.safe_load(book.config_path("synthetic_tdsa").read_text())["data"]["synthetic"]
    assert book.data_regime() == (
        f"{shipped['num_classes']} classes with {shipped['train_per_class']} training, "
        f"{shipped['val_per_class']} validation and {shipped['test_per_class']} test images each")
    config.write_text("data: {dataset: cub}\n")
    with pytest.raises(ValueError, match="not a config of the synthetic data"):
        book.data_regime(config)


@pytest.mark.parametrize("grid, variant", [("synthetic", None), ("precision", None),
                                           ("precision_n160", None), ("levers", "tdsa_long")])
def test_grid_regime_reads_the_grid_file(grid: str, variant: str | None) -> None:
    """Against the grid file and its base config read by hand: the last override of a key wins,
    and a key no file sets is the generator's default."""
    import yaml

    spec = yaml.safe_load(book.config_path(f"ablations/{grid}").read_text())
    base = yaml.safe_load((book.repo_root() / spec["base"]).read_text())
    name = variant or next(iter(spec["variants"]))
    overrides = dict(o.split("=", 1) for o in
                     spec.get("overrides", []) + spec["variants"][name].get("overrides", []))
    epochs = int(overrides.get("train.epochs", base["train"]["epochs"]))
    per_class = int(overrides.get("data.synthetic.train_per_class", base["data"]["synthetic"].get(
        "train_per_class", _generator_defaults()["train_per_class"])))
    assert book.grid_regime(grid, variant) == (
        f"{epochs} epochs, {per_class} training images per class, {len(spec['seeds'])} seeds")


def test_versus_states_a_gap_in_points() -> None:
    assert book.versus(71.26, 70.0) == "1.3 points above cross-entropy"
    assert book.versus(60.0, 70.0) == "10.0 points below cross-entropy"
    assert book.versus(70.04, 70.0) == "level with cross-entropy"
    assert book.versus(69.96, 70.0, name="CE") == "level with CE"
    assert book.versus(70.06, 70.0) == "0.1 points above cross-entropy"


# Words that state a measured difference. In the chapters they may only come from computed output
# (tdsa.experiments.evidence.verdict / format_difference printed by a code cell), never from
# Markdown written by hand; Markdown may still quote the verdict's words as code (`higher`) when it
# explains the rule. Words that describe a setting ("larger fine parts") or the rule ("exceeds its
# standard deviation") are not in the list.
COMPARATIVE = re.compile(
    r"\b(clearly|significant(ly)?|higher|lower|better|worse|outperform\w*|underperform\w*|"
    r"beats?|improv(e|es|ed|ement|ing)|no clear difference|borderline|more often|less often|"
    r"superior|inferior|greater than|more than|less than)\b", re.IGNORECASE)
_CODE_OR_MATH = re.compile(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$", re.DOTALL)


def comparative_words(markdown: str) -> list[str]:
    """The comparative words of ``markdown`` outside code spans, code blocks and math."""
    return [m.group(0) for m in COMPARATIVE.finditer(_CODE_OR_MATH.sub(" ", markdown))]


def test_comparative_words_pattern() -> None:
    assert comparative_words("TDSA is clearly better than CE") == ["clearly", "better"]
    assert comparative_words("the hit rate is higher, no clear difference") == [
        "higher", "no clear difference"]
    assert comparative_words("TDSA outperforms CE; it improves top-1 more often") == [
        "outperforms", "improves", "more often"]
    assert comparative_words("called `higher` or `lower` by the rule") == []
    assert comparative_words("```python\nbetter = 1\n```\n$a > b$ lower-case") == ["lower"]
    assert comparative_words("Larger fine parts; its mean exceeds its std") == []


@pytest.mark.parametrize("page", [*CHAPTERS, *sorted(p.stem for p in BOOK.glob("*.md"))])
def test_no_handwritten_comparative_word_about_a_measured_difference(page: str) -> None:
    """Issue 23: every qualitative word about a difference comes from tdsa.experiments.evidence's
    rule, in computed output; hand-written Markdown states no comparison."""
    path = BOOK / f"{page}.md"
    sources = ([path.read_text(encoding="utf-8")] if path.exists()
               else [c.source for c in _cells(page) if c.cell_type == "markdown"])
    found = [(word, source[:60]) for source in sources for word in comparative_words(source)]
    assert not found, (f"{page}: hand-written comparative words {found}: print them from "
                       "tdsa.experiments.evidence.verdict in a code cell, or state no comparison")
