"""The executed book: nbval over the staged notebooks, and the built pages in a real browser.

Runs on the output of ``book/_tools/build.py`` (``make test-book`` builds it in the smoke
profile first; the ``built_book`` fixture builds it if it is missing or stale). Screenshots of
every page are kept in ``_build/screenshots/`` for a human to look at.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import pytest
from book_helpers import BOOK, HTML, REPO, STAGED, toc_entries, toc_notebooks
from PIL import Image

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
                None)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--disable-background-networking", "--no-first-run", "--disable-component-update",
    "--disable-sync", "--window-size=1280,1700", "--virtual-time-budget=5000",
]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


def test_staged_notebooks_carry_their_outputs(built_book: Path) -> None:
    for name in toc_notebooks():
        nb = nbformat.read(STAGED / "book" / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count is not None for c in code), f"{name}: not fully executed"
        images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
        assert images, f"{name}: no figure in the executed notebook"
        injected = [c for c in code if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"], name


def test_nbval_lax_on_executed_notebooks(built_book: Path) -> None:
    notebooks = [str(STAGED / "book" / f"{name}.ipynb") for name in toc_notebooks()]
    checked = sum(
        "# NBVAL_CHECK_OUTPUT" in c.source
        for path in notebooks
        for c in nbformat.read(path, as_version=4).cells
    )
    assert checked >= len(notebooks), "every chapter has deterministic cells that nbval checks"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
         "-p", "no:cacheprovider", "--rootdir", str(STAGED), *notebooks],
        cwd=STAGED,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, "nbval failed:\n" + result.stdout[-6000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout), result.stdout[-2000:]


class _Page(HTMLParser):
    """What the tests need from a page's DOM: title, output images, classes, visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, set[str]]] = []
        self.title = ""
        self.h1: list[str] = []
        self.output_images: list[str] = []
        self.classes: set[str] = set()
        self.text: list[str] = []
        self.stderr_text: list[str] = []

    def _inside(self, cls: str) -> bool:
        return any(cls in classes for _, classes in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        self.classes |= classes
        if tag == "img" and self._inside("cell_output"):
            self.output_images.append(dict(attrs).get("src") or "")
        if tag not in VOID:
            self.stack.append((tag, classes))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        tags = [t for t, _ in self.stack]
        if "script" in tags or "style" in tags:
            return
        if "title" in tags:
            self.title += data
        if "h1" in tags:
            self.h1.append(data)
        if self._inside("stderr"):
            self.stderr_text.append(data)
        self.text.append(data)


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "the browser check needs Debian's chromium (apt-get install chromium)"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )


def _title(entry: str) -> str:
    path = REPO / f"{entry}.ipynb"
    if path.exists():
        source = nbformat.read(path, as_version=4).cells[0].source
    else:
        source = (REPO / f"{entry}.md").read_text()
    return source.splitlines()[0].removeprefix("# ").strip()


PAGES = toc_entries()


@pytest.mark.parametrize("entry", PAGES, ids=[Path(e).name for e in PAGES])
def test_page_in_headless_chromium(built_book: Path, entry: str) -> None:
    name = Path(entry).name
    page = HTML / f"{entry}.html"
    assert page.exists(), f"{page} was not built"
    shots = built_book / "screenshots"
    shots.mkdir(exist_ok=True)
    shot = shots / f"{name}.png"
    shot.unlink(missing_ok=True)
    taken = _chromium(f"--screenshot={shot}", page.as_uri())
    assert shot.exists(), f"no screenshot of {name}: {taken.stderr[-1000:]}"
    with Image.open(shot) as image:
        assert image.size == (1280, 1700)
        colours = image.convert("RGB").resize((320, 425)).getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 20, f"{name}: the screenshot is blank"

    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0 and "<html" in dom.stdout, dom.stderr[-1000:]
    parsed = _Page()
    parsed.feed(dom.stdout)
    title = _title(entry)
    assert title in parsed.title, f"{name}: <title> {parsed.title!r} lacks {title!r}"
    assert any(title in h for h in parsed.h1), f"{name}: no <h1> {title!r}"
    text = "".join(parsed.text)
    assert "Traceback" not in text, f"{name}: a traceback is shown"
    assert not parsed.classes & {"output_error", "traceback"}, f"{name}: an error output block"
    stderr = "".join(parsed.stderr_text)
    assert not re.search(r"Error|Warning|Traceback", stderr), f"{name}: stderr: {stderr[:500]}"
    if (BOOK / f"{name}.ipynb").exists():
        assert parsed.output_images, f"{name}: no figure from the notebook outputs"
        assert "tag_injected-parameters" not in parsed.classes, f"{name}: parameters shown"
        assert "# Parameters" not in text, f"{name}: the injected parameters cell is shown"
        assert "tag_parameters" in parsed.classes, f"{name}: the reader's parameters cell is hidden"


class _Resources(HTMLParser):
    """The URLs a page loads by itself: scripts, stylesheets, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source") and a.get("src"):
            self.loaded.append(a["src"] or "")
        if tag == "link" and "stylesheet" in (a.get("rel") or "") and a.get("href"):
            self.loaded.append(a["href"] or "")


def test_no_page_loads_anything_remote(built_book: Path) -> None:
    pages = sorted(HTML.rglob("*.html"))
    assert pages, f"no HTML under {HTML}"
    for page in pages:
        parsed = _Resources()
        parsed.feed(page.read_text(encoding="utf-8"))
        remote = [u for u in parsed.loaded if re.match(r"(https?:)?//", u)]
        assert not remote, f"{page.relative_to(HTML)} loads {remote}"


def test_formulas_are_typeset_offline(built_book: Path) -> None:
    assert (HTML / "_mathjax" / "tex-chtml.js").is_file(), "MathJax was not copied"
    dom = _chromium("--dump-dom", (HTML / "book" / "intro.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-1000:]
    assert "<mjx-container" in dom.stdout, "MathJax did not typeset the intro's formulas"
    assert "tdsa_method.svg" in dom.stdout, "the method diagram is missing from the intro"


def test_no_page_shows_a_build_path(built_book: Path) -> None:
    """Pages and their downloadable notebooks show no path of the machine that built the book:
    not the checkout, its staging folder, the temporary folder or the home folder."""
    roots = sorted({str(REPO), str(STAGED.resolve()), tempfile.gettempdir() + "/",
                    str(Path.home()) + "/"})
    pages = sorted(p for p in HTML.rglob("*") if p.suffix in {".html", ".ipynb", ".js", ".txt"})
    assert any(p.suffix == ".ipynb" for p in pages), f"no notebook sources under {HTML}"
    for page in pages:
        text = page.read_text(encoding="utf-8")
        leaked = [root for root in roots if root in text]
        assert not leaked, f"{page.relative_to(HTML)} shows the build path(s) {leaked}"


def test_intro_shows_the_seconds_each_chapter_took_in_this_build(built_book: Path) -> None:
    """The intro's runtime table is the build's own measurement (book/_build_times.md, written
    by build.py), one row per executed chapter, not a hand-written estimate."""
    text = (HTML / "book" / "intro.html").read_text(encoding="utf-8")
    assert "Measured in the build of this copy of the book: profile" in text
    rows = re.findall(r"<td[^>]*>(?:<p>)?(\d+) s(?:</p>)?</td>", text)
    assert len(rows) == len(toc_notebooks()) + 1, f"one row per chapter and a total: {rows}"
    assert int(rows[-1]) >= max(int(r) for r in rows[:-1]), "the total is the largest"


# Issue 23: the layout at 1280 px. A script added to a copy of each page measures, once the page
# has loaded, the content column, every table and code block that is shown (not inside a
# collapsed cell) and every image, and writes the numbers into the page, which --dump-dom reads.
LAYOUT_PROBE = """
<script>
window.addEventListener("load", () => { setTimeout(() => {
  const article = document.querySelector("main .bd-article") || document.querySelector("main");
  const style = getComputedStyle(article);
  const column = article.clientWidth - parseFloat(style.paddingLeft)
    - parseFloat(style.paddingRight);
  const shown = (el) => el.getClientRects().length > 0 && !el.closest("details:not([open])");
  const what = (el) => {
    const section = el.closest("section");
    return (section && section.id ? section.id + ": " : "")
      + el.textContent.trim().replace(/\\s+/g, " ").slice(0, 70);
  };
  const out = {column: column, tables: [], code: [], math: [], figures: []};
  for (const t of document.querySelectorAll("main table")) {
    if (shown(t)) out.tables.push({width: t.offsetWidth, what: what(t)});
  }
  for (const p of document.querySelectorAll("main pre")) {
    if (shown(p)) out.code.push({width: Math.max(p.scrollWidth, p.offsetWidth), what: what(p)});
  }
  for (const m of document.querySelectorAll("main mjx-container[display='true']")) {
    const inner = m.querySelector("mjx-math");
    if (shown(m)) out.math.push({width: Math.max(m.scrollWidth,
      inner ? inner.getBoundingClientRect().width : 0), what: what(m)});
  }
  for (const img of document.querySelectorAll("main img")) {
    if (shown(img)) out.figures.push({natural: img.naturalWidth,
      shown: img.getBoundingClientRect().width, src: img.getAttribute("src")});
  }
  const result = document.createElement("div");
  result.id = "tdsa-layout-probe";
  result.textContent = JSON.stringify(out);
  document.body.appendChild(result);
}, 300); });
</script>
"""
MIN_TEXT_PX = 9.0  # the smallest text a figure shown below 60% of its width may keep
WIDE_FIGURE_PX = 900


def measure_layout(page: Path) -> dict[str, Any]:
    """The probe's numbers for one built page in headless Chromium at 1280 px: ``column``
    (the content column's width), ``tables``, ``code`` and ``math`` (displayed formulas;
    ``width``, ``what``) and ``figures`` (``natural``, ``shown``, ``src``), in CSS pixels."""
    copy = page.with_name(f"_layout_probe_{page.name}")
    html = page.read_text(encoding="utf-8")
    copy.write_text(html.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    found = None
    try:
        for _ in range(3):  # a loaded machine may end the virtual time before the page's load
            dom = _chromium("--dump-dom", "--virtual-time-budget=20000", copy.as_uri())
            found = re.search(r'<div id="tdsa-layout-probe"[^>]*>(.*?)</div>', dom.stdout,
                              re.DOTALL)
            if found:
                break
    finally:
        copy.unlink(missing_ok=True)
    assert found, f"{page.name}: the layout probe did not run: {dom.stderr[-800:]}"
    return dict(json.loads(unescape(found.group(1))))


def svg_text_px(src: Path, shown: float, natural: float) -> float | None:
    """The smallest text of an SVG figure drawn by the package, in CSS pixels at the width it
    is shown: the method diagram's smallest font (``tdsa.viz.diagram.MIN_FONT_PT``, points of
    the SVG's own units) scaled by shown / natural width. None for other images."""
    from tdsa.viz.diagram import MIN_FONT_PT

    if src.name != "tdsa_method.svg":
        return None
    return MIN_FONT_PT * 96 / 72 * shown / natural


def layout_problems(page: Path, layout: Mapping[str, Any]) -> list[str]:
    """What does not fit: tables, code blocks and displayed formulas wider than the column,
    figures wider than
    900 px shown below 60% of their width whose text falls under 9 px (or is not known), and
    the method diagram, whose text size is known, when its text falls under 9 px."""
    column = float(layout["column"])
    problems = [f"table {t['width']:.0f} px > column {column:.0f} px: {t['what']}"
                for t in layout["tables"] if t["width"] > column + 1]
    problems += [f"code {c['width']:.0f} px > column {column:.0f} px: {c['what']}"
                 for c in layout["code"] if c["width"] > column + 1]
    problems += [f"formula {m['width']:.0f} px > column {column:.0f} px: {m['what']}"
                 for m in layout.get("math", []) if m["width"] > column + 1]
    for f in layout["figures"]:
        natural, shown = float(f["natural"]), float(f["shown"])
        text = svg_text_px((page.parent / f["src"]).resolve(), shown, natural) if natural else None
        if text is not None and text < MIN_TEXT_PX:  # a drawing whose text size is known
            problems.append(f"figure text {text:.1f} px < {MIN_TEXT_PX:g} px: {f['src']}")
            continue
        if natural <= WIDE_FIGURE_PX or shown >= 0.6 * natural:
            continue
        if text is None:
            problems.append(f"figure {natural:.0f} px shown at {shown:.0f} px "
                            f"({shown / natural:.0%}), text "
                            + ("unknown" if text is None else f"{text:.1f} px") + f": {f['src']}")
    return problems


@pytest.mark.parametrize("entry", PAGES, ids=[Path(e).name for e in PAGES])
def test_page_fits_the_content_column_at_1280_px(built_book: Path, entry: str) -> None:
    """Issue 23: at 1280 px no table or code block outside a collapsed cell is wider than the
    content column, and no figure wider than 900 px natural is shown below 60% of its width
    unless its text stays at least 9 px."""
    page = HTML / f"{entry}.html"
    layout = measure_layout(page)
    assert layout["column"] >= 600, f"{page.name}: content column {layout['column']} px"
    problems = layout_problems(page, layout)
    assert not problems, f"{page.name} at 1280 px:\n" + "\n".join(problems)


def test_layout_check_fails_on_what_does_not_fit(tmp_path: Path) -> None:
    layout = {"column": 800.0,
              "tables": [{"width": 800.0, "what": "fits"}, {"width": 950.0, "what": "wide"}],
              "code": [{"width": 801.5, "what": "overflows"}],
              "math": [{"width": 790.0, "what": "formula"}],
              "figures": [{"natural": 1200, "shown": 700, "src": "a.png"},
                          {"natural": 1200, "shown": 800, "src": "b.png"},
                          {"natural": 880, "shown": 300, "src": "c.png"}]}
    problems = layout_problems(tmp_path / "page.html", layout)
    assert [p.split(":")[-1].strip() for p in problems] == ["wide", "overflows", "a.png"]
    from tdsa.viz.diagram import MIN_FONT_PT

    diagram = {"natural": 1152, "src": "_images/tdsa_method.svg"}
    readable = 9.0 / (MIN_FONT_PT * 96 / 72) * 1152  # the width at which its text is 9 px
    for shown, fails in ((readable + 1, False), (readable - 5, True)):
        layout = {"column": 800.0, "tables": [], "code": [],
                  "figures": [dict(diagram, shown=shown)]}
        assert bool(layout_problems(tmp_path / "page.html", layout)) is fails, shown
