"""The generated API page (``book/_tools/api_page.py``): every public symbol with its
signature, and each "explained in" a link to a section of a notebook that uses the symbol."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from myst_parser.mdit_to_docutils.base import default_slugify

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "book"
TERM = re.compile(r"^`(?P<module>tdsa(?:\.\w+)*)\.(?P<name>\w+)\((?P<args>.*)\)`$")
LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<page>[\w.]+)#(?P<slug>[\w-]+)\)")


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


api_page = _load("tdsa_api_page", BOOK / "_tools" / "api_page.py")


@pytest.fixture(scope="module")
def page() -> dict[str, tuple[str, list[re.Match[str]]]]:
    """``{"tdsa.mod.name": (signature args, links)}`` read back from the rendered page."""
    entries: dict[str, tuple[str, list[re.Match[str]]]] = {}
    current = None
    for line in api_page.render().splitlines():
        term = TERM.match(line)
        if term:
            current = f"{term['module']}.{term['name']}"
            entries[current] = (term["args"], [])
        elif current and line.startswith("  Explained in "):
            entries[current][1].extend(LINK.finditer(line))
    return entries


def _heading_slug(title: str) -> str:
    """MyST's anchor of a heading: the GitHub slug of its text without the math."""
    return default_slugify(re.sub(r"\$[^$]+\$", "", title).replace("`", ""))


def _section_sources(path: Path, slug: str) -> str:
    """The cells under the heading of ``path`` whose anchor is ``slug``, up to the next heading
    of its level or above (first occurrence only; none of the book's headings repeat)."""
    out: list[str] = []
    level = None
    for cell in nbformat.read(path, as_version=4).cells:
        lines = cell.source.splitlines() if cell.cell_type == "markdown" else [cell.source]
        for line in lines:
            heading = re.match(r"(#+) (.+)", line) if cell.cell_type == "markdown" else None
            if heading and level is not None and len(heading[1]) <= level:
                return "\n".join(out)
            if heading and level is None and _heading_slug(heading[2].strip()) == slug:
                level = len(heading[1])
            if level is not None:
                out.append(line)
    assert level is not None, f"{path.name} has no heading with the anchor #{slug}"
    return "\n".join(out)


def test_every_public_symbol_is_listed_with_its_signature(page) -> None:
    for _, module_name in api_page.MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            key = f"{module_name}.{name}"
            assert key in page, f"the API page does not list {key}"
            params = inspect.signature(obj).parameters
            args = page[key][0]
            assert all(p in args for p in params), f"{key}: signature ({args}) lacks a parameter"
    assert page["tdsa.losses.ccmp"][0] == "features, xi"


def test_every_link_is_a_section_that_uses_the_symbol(page) -> None:
    links = [(key, link) for key, (_, found) in page.items() for link in found]
    assert len(links) >= 30, f"only {len(links)} 'explained in' links"
    for key, link in links:
        path = BOOK / link["page"]
        assert path.is_file(), f"{key}: link to a missing page {link['page']}"
        if path.suffix != ".ipynb":
            continue
        text = _section_sources(path, link["slug"])
        name = key.rpartition(".")[2]
        assert re.search(rf"\b{name}\b", text), (
            f"{key}: {link['page']}#{link['slug']} does not mention {name}")


def test_the_issues_attributions_are_fixed(page) -> None:
    def pages(key: str) -> set[str]:
        return {link["page"] for link in page[key][1]}

    assert "02_channel_constraint.ipynb" not in pages("tdsa.models.create_model")
    assert pages("tdsa.models.list_models") == set(), "no chapter uses list_models"
    assert pages("tdsa.viz.plot_training_curves") == {
        "02_channel_constraint.ipynb", "04_training.ipynb", "07_reproducing.ipynb"}, (
        "the chapters that draw training curves call it (issue 24)")
    assert pages("tdsa.viz.plot_gate_maps") == {"06_attention_metrics.ipynb"}
    ccmp = page["tdsa.losses.ccmp"][1]
    assert [link["slug"] for link in ccmp] == ["a-stages-feature-map-and-cross-channel-max-pooling"]


def test_summary_is_the_first_paragraph_with_roles_as_code() -> None:
    doc = "A map of :func:`tdsa.viz.maps.to_image`\nover two lines.\n\nSecond paragraph."
    assert api_page.summary(doc) == "A map of `tdsa.viz.maps.to_image` over two lines."


def test_a_bad_tag_fails_the_page_with_one_line(tmp_path: Path) -> None:
    book = tmp_path / "book"
    book.mkdir()
    (book / "api.md").write_text("# API reference\n")
    result = subprocess.run([sys.executable, str(BOOK / "_tools" / "api_page.py"),
                             str(book / "api.md")], capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stderr
    assert re.fullmatch(r"api_page: chapter \d+: expected one notebook .*\n", result.stderr)
    assert (book / "api.md").read_text() == "# API reference\n", "nothing written on failure"


def test_build_writes_the_page_into_the_staged_book(tmp_path: Path) -> None:
    build = _load("tdsa_book_build", BOOK / "_tools" / "build.py")
    build.stage(REPO, tmp_path / "src")
    build.write_api_page(tmp_path / "src")
    text = (tmp_path / "src" / "book" / "api.md").read_text()
    assert text.startswith((BOOK / "api.md").read_text().rstrip())
    assert "`tdsa.losses.ccmp(features, xi)`" in text
    assert "](02_channel_constraint.ipynb#the-random-channel-mask)" in text
    assert "`tdsa.losses.ccmp" not in (BOOK / "api.md").read_text(), "committed: preamble only"
