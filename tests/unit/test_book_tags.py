"""The "Book:" docstring tags of ``tdsa/``: each names a section of the book that uses the
symbol; and the tag parser of ``book/_tools/api_page.py`` that reads them."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "book"


def _api_page() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdsa_api_page", BOOK / "_tools" / "api_page.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


api_page = _api_page()
TAGS = api_page.package_tags()


def _page_text(page: str) -> str:
    path = BOOK / page
    if path.suffix == ".ipynb":
        cells = nbformat.read(path, as_version=4).cells
        return "\n".join(c.source for c in cells if c.cell_type in ("markdown", "code"))
    return path.read_text(encoding="utf-8")


def test_the_package_has_tags() -> None:
    assert len(TAGS) >= 30, f"only {len(TAGS)} tagged docstrings found under tdsa/"
    assert {t.where for t in TAGS} >= {"tdsa.losses.ccmp", "tdsa.viz.plots.plot_gate_maps"}


@pytest.mark.parametrize("tag", TAGS, ids=lambda t: t.where)
def test_tag_names_a_section_that_uses_the_symbol(tag) -> None:
    refs = api_page.parse_tag(tag.doc)
    assert refs, f"{tag.location}: 'Book:' with no reference"
    for ref in refs:
        assert (BOOK / ref.page).is_file(), f"{tag.location}: {ref.label} has no page"
        last = tag.name.rpartition(".")[2]
        assert re.search(rf"\b{last}\b", _page_text(ref.page)), (
            f"{tag.location}: {ref.label} ({ref.page}) never names {last}")
        section = api_page.find_section(ref)
        assert api_page.mentions(section, tag.name, tag.module, method=tag.method), (
            f"{tag.location}: {ref.label}, *{ref.section}* does not use {tag.where}")


def test_the_issues_false_attributions_are_gone() -> None:
    where = {t.where: {r.page for r in api_page.parse_tag(t.doc)} for t in TAGS}
    assert "tdsa.models.registry.list_models" not in where
    assert where["tdsa.viz.plots.plot_training_curves"] == {
        "02_channel_constraint.ipynb", "04_training.ipynb", "07_reproducing.ipynb"}, (
        "the chapters that draw training curves call it (issue 24)")
    assert "02_channel_constraint.ipynb" not in where.get("tdsa.models.registry.create_model", ())
    assert where["tdsa.viz.plots.plot_gate_maps"] == {"06_attention_metrics.ipynb"}


def test_parse_tag_reads_chapters_pages_and_remarks() -> None:
    doc = ("Summary.\n\nBook: chapter 2, *The random channel mask* (the demo); code_vs_paper.md,\n"
           "*The two loss forms*.\n\nMore text.")
    assert api_page.parse_tag(doc) == (
        api_page.BookRef("02_channel_constraint.ipynb", "chapter 2", "The random channel mask"),
        api_page.BookRef("code_vs_paper.md", "code_vs_paper.md", "The two loss forms"),
    )
    assert api_page.parse_tag("No tag here.") == ()


@pytest.mark.parametrize("doc, message", [
    ("Book: chapter 4, Full training.", r"expected 'chapter N, \*Heading\*'"),
    ("Book: api.md.", r"got 'api\.md'"),
    ("Book: chapter 99, *Nowhere*.", r"chapter 99: expected one notebook"),
    ("Book: nowhere.md, *X*.", r"no page .*nowhere\.md"),
])
def test_parse_tag_rejects_a_bad_tag(doc: str, message: str) -> None:
    with pytest.raises(api_page.TagError, match=message):
        api_page.parse_tag(doc)


def test_find_section_names_the_missing_heading() -> None:
    ref = api_page.BookRef("02_channel_constraint.ipynb", "chapter 2", "No such heading")
    with pytest.raises(api_page.TagError, match=r"chapter 2 .* has no heading 'No such heading'"):
        api_page.find_section(ref)


def _notebook(path: Path, cells: list[tuple[str, str]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s) if k == "md" else nbformat.v4.new_code_cell(s)
                for k, s in cells]
    nbformat.write(nb, path)
    return path


def test_sections_slugs_and_extent(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "01_x.ipynb", [
        ("md", "# Title\n\nIntro."),
        ("code", "from tdsa.losses import ccmp\n# not a heading"),
        ("md", "## Discriminality: $L_{dis}$\n\n```\n# fenced, not a heading\n```"),
        ("code", "ccmp(x, 3)"),
        ("md", "## The `eval` command\n\n### Details"),
        ("code", "y = 1"),
        ("md", "## The `eval` command"),
    ])
    found = api_page.sections(path)
    assert [(s.level, s.slug) for s in found] == [
        (1, "title"), (2, "discriminality-"), (2, "the-eval-command"), (3, "details"),
        (2, "the-eval-command-1")]
    title, dis, command, details, _ = found
    assert "ccmp(x, 3)" in title.code and "ccmp(x, 3)" in dis.code
    assert "ccmp" not in command.code and "y = 1" in command.code and "y = 1" in details.code
    assert "# fenced" in dis.code and title.imports == {"ccmp"}


def _section(code: str = "", markdown: str = "", imports: tuple[str, ...] = ()) -> object:
    return api_page.Section("s", 2, "s", markdown, code, frozenset(imports))


def test_mentions_needs_the_symbol_itself_not_its_name() -> None:
    mentions = api_page.mentions
    assert not mentions(_section("subprocess.run(cmd)"), "run", "tdsa.experiments.grid")
    assert mentions(_section("run(args)", imports=("run",)), "run", "tdsa.experiments.grid")
    assert not mentions(_section('build_dataset(name, root, "train")'), "train", "tdsa.engine")
    assert mentions(_section("plan = book.run_plan(profile)"), "run_plan", "tdsa.experiments.book")
    assert mentions(_section(markdown="Call `ccmp(x, xi)` here."), "ccmp", "tdsa.losses")
    assert not mentions(_section(markdown="ccmp pools channels."), "ccmp", "tdsa.losses")
    assert mentions(_section("model.forward_features(x)"), "forward_features", method=True,
                    module="tdsa.models.base")
    assert not mentions(_section(markdown="see `tdsa.config`"), "config", "tdsa.experiments.grid",
                        method=True)
    assert mentions(_section("book.setup()", imports=("book",)), "tdsa.experiments.book")
    assert not mentions(_section(markdown="`tdsa.engine.evaluate(model)`"), "tdsa.engine.evaluate")
    assert mentions(_section("from tdsa.engine.checkpoint import load_model"),
                    "tdsa.engine.checkpoint")
