"""The book's API page, generated from the package's docstrings, and the "Book:" tag parser.

Usage: ``python book/_tools/api_page.py BOOK/api.md`` (``build.py`` runs it on the staged
``book/api.md`` before the HTML build; the committed ``book/api.md`` is the page's preamble).

A docstring names the book section that explains its symbol with one tag paragraph::

    Book: chapter 2, *The random channel mask*; intro.md, *The paper's idea*.

Each reference is ``chapter N, *Heading*`` (the notebook ``book/NN_*.ipynb``) or
``PAGE.md, *Heading*`` (a page of ``book/``), with the heading's text exactly as written
after its ``#``; references are separated by ``;`` and a parenthesised remark may follow a
reference. ``tests/unit/test_book_tags.py`` checks every tag of ``tdsa/`` against the book.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import re
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from mdit_py_plugins.dollarmath import dollarmath_plugin
from myst_parser.mdit_to_docutils.base import compute_unique_slug

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "book"
PACKAGE = REPO / "tdsa"

MODULES = (
    ("Losses", "tdsa.losses"),
    ("Models", "tdsa.models"),
    ("Data", "tdsa.data"),
    ("Configs", "tdsa.config"),
    ("Training and evaluation", "tdsa.engine"),
    ("Checkpoints", "tdsa.engine.checkpoint"),
    ("Run files", "tdsa.runfiles"),
    ("Attribution maps", "tdsa.attribution"),
    ("Visualisation", "tdsa.viz"),
    ("Metrics", "tdsa.metrics"),
    ("Localisation", "tdsa.experiments.localisation"),
    ("Counterfactual evidence", "tdsa.experiments.counterfactual"),
    ("Ablations", "tdsa.experiments.grid"),
    ("Evidence over seeds", "tdsa.experiments.evidence"),
    ("Book helpers", "tdsa.experiments.book"),
    ("Shipped resources", "tdsa.resources"),
)
"""The API page's sections: (title, module); each lists the module's public callables."""

_TAG = re.compile(r"(?:^|\n)[ \t]*Book:(?P<refs>.*?)(?=\n[ \t]*\n|\Z)", re.S)
_REF = re.compile(
    r"(?:chapter (?P<chapter>\d+)|(?P<page>\w+)\.md), \*(?P<section>[^*]+)\*(?: \([^()]*\))?"
)
_ROLE = re.compile(r":\w+:`~?([^`]+)`")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)


class TagError(ValueError):
    """A "Book:" tag that does not follow the grammar above, or names no page of the book."""


@dataclass(frozen=True)
class BookRef:
    """One reference of a tag: the page (``book/<page>``), its label and a heading."""

    page: str
    label: str
    section: str


@dataclass(frozen=True)
class Section:
    """A heading of a page and what lies under it up to the next heading of its level or above:
    ``markdown`` (its Markdown text), ``code`` (its code cells' source) and ``imports`` (the
    names the whole page imports from ``tdsa``)."""

    title: str
    level: int
    slug: str
    markdown: str
    code: str
    imports: frozenset[str]


@dataclass(frozen=True)
class Tagged:
    """A docstring of ``tdsa/`` with a tag: ``where`` (dotted name), ``location``
    (``file:line``), the symbol's ``name``, its ``module`` (None for a module's own
    docstring), whether it is a ``method``, and the docstring."""

    where: str
    location: str
    name: str
    module: str | None
    method: bool
    doc: str


def chapter_page(number: int, book: Path = BOOK) -> str:
    """The file name of chapter ``number``'s notebook (``02_channel_constraint.ipynb``)."""
    found = sorted(book.glob(f"{number:02d}_*.ipynb"))
    if len(found) != 1:
        raise TagError(f"chapter {number}: expected one notebook {book}/{number:02d}_*.ipynb, "
                       f"found {len(found)}")
    return found[0].name


def parse_tag(doc: str, book: Path = BOOK) -> tuple[BookRef, ...]:
    """The references of ``doc``'s "Book:" tag (empty without one); TagError if malformed."""
    match = _TAG.search(doc)
    if match is None:
        return ()
    text = " ".join(match["refs"].split()).removesuffix(".")
    refs = []
    for part in text.split(";"):
        ref = _REF.fullmatch(part.strip())
        if ref is None:
            raise TagError(f"tag {text!r}: expected 'chapter N, *Heading*' or "
                           f"'PAGE.md, *Heading*', got {part.strip()!r}")
        if ref["chapter"]:
            page, label = chapter_page(int(ref["chapter"]), book), f"chapter {ref['chapter']}"
        else:
            page, label = f"{ref['page']}.md", f"{ref['page']}.md"
            if not (book / page).is_file():
                raise TagError(f"tag {text!r}: no page {book / page}")
        refs.append(BookRef(page, label, ref["section"].strip()))
    return tuple(refs)


def _markdown_parser() -> MarkdownIt:
    return MarkdownIt("commonmark").use(dollarmath_plugin)


def _blocks(path: Path) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` of a page in reading order: ``markdown`` and ``code`` blocks."""
    if path.suffix == ".ipynb":
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type in ("markdown", "code"):
                yield cell.cell_type, cell.source
        return
    text = path.read_text(encoding="utf-8")
    parts = re.split(r"(^```[^\n]*\n.*?^```[ \t]*$)", text, flags=re.S | re.M)
    for part in parts:
        yield ("code", part) if part.startswith("```") else ("markdown", part)


def sections(path: Path) -> list[Section]:
    """Every heading of a notebook or Markdown page, with the anchor MyST gives it (the
    ``myst_heading_anchors`` slug) and the text beneath it."""
    md = _markdown_parser()
    chunks: list[tuple[int, str, list[tuple[str, str]]]] = []  # (level, title, blocks)
    for kind, text in _blocks(path):
        if kind == "code":
            if chunks:
                chunks[-1][2].append(("code", text))
            continue
        fenced = False
        for line in text.splitlines():
            fence = bool(_FENCE.match(line))
            fenced ^= fence
            heading = None if fenced or fence else _HEADING.match(line)
            if heading:
                chunks.append((len(heading[1]), heading[2], []))
            elif chunks:
                chunks[-1][2].append(("code" if fenced or fence else "markdown", line + "\n"))
    imports = frozenset(_tdsa_imports("\n".join(t for k, t in _blocks(path) if k == "code")))
    slugs: list[str] = []
    result = []
    for i, (level, title, _) in enumerate(chunks):
        tree = SyntaxTreeNode(md.parse(f"{'#' * level} {title}\n"))
        slugs.append(compute_unique_slug(tree.children[0], slugs))
        below = [chunks[i]]
        for later in chunks[i + 1:]:
            if later[0] <= level:
                break
            below.append(later)
        blocks = [b for chunk in below for b in chunk[2]]
        sub_titles = "".join(f"{t}\n" for _, t, _ in below[1:])
        result.append(Section(
            title=title,
            level=level,
            slug=slugs[-1],
            markdown=sub_titles + "".join(t for k, t in blocks if k == "markdown"),
            code="\n".join(t for k, t in blocks if k == "code"),
            imports=imports,
        ))
    return result


def find_section(ref: BookRef, book: Path = BOOK) -> Section:
    """The section ``ref`` names; TagError if its page has no such heading."""
    found = [s for s in sections(book / ref.page) if s.title == ref.section]
    if not found:
        raise TagError(f"{ref.label} ({ref.page}) has no heading {ref.section!r}")
    return found[0]


def _uses(code: str) -> tuple[set[str], set[tuple[str, str]]]:
    """``(bare identifiers, (owner, attribute) pairs)`` of Python source: ``f(x.y)`` gives
    ``{f, x}`` and ``{(x, y)}``. Strings and comments are skipped, and so are IPython ``!``
    and ``%`` lines; source that does not tokenize is read as plain words."""
    lines = [line for line in code.splitlines() if not line.lstrip().startswith(("!", "%"))]
    bare: set[str] = set()
    attrs: set[tuple[str, str]] = set()
    previous: list[tokenize.TokenInfo] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if token.type == tokenize.NAME:
                if previous and previous[-1].string == ".":
                    owner = previous[-2].string if len(previous) > 1 else ""
                    attrs.add((owner, token.string))
                else:
                    bare.add(token.string)
            if token.type in (tokenize.NAME, tokenize.OP):
                previous = [*previous[-1:], token]
    except (tokenize.TokenError, SyntaxError):
        bare = set(re.findall(r"\w+", code))
        attrs = set(re.findall(r"(\w*)\.(\w+)", code))
    return bare, attrs


def _tdsa_imports(code: str) -> set[str]:
    """The names bound by ``from tdsa... import ...`` statements (``as`` names included)."""
    names: set[str] = set()
    for match in re.finditer(r"^\s*from tdsa(?:\.\w+)* import (\([^)]*\)|[^\n]*)", code, re.M):
        for item in match[1].strip("()").replace("\n", " ").split(","):
            words = item.split()
            if words:
                names.add(words[-1])
    return names


def mentions(section: Section, name: str, module: str | None = None, *,
             method: bool = False) -> bool:
    """Whether ``section`` uses a symbol in its code (code cells, fenced blocks, inline code).

    A module (``name`` dotted, ``module`` None) is used when its name is written out (not
    called: ``tdsa.engine.evaluate(...)`` is the function), or, for ``tdsa.X`` or
    ``tdsa.P.X``, when ``X`` is imported from ``tdsa`` or ``tdsa.P`` and used
    (``from tdsa.experiments import book``). A method is used as ``.name``.
    A function or class of ``module`` is used under its name when the page imports it from
    ``tdsa``, as ``part.name`` for a part of its module's path (``book.run_plan``), or named
    in inline code.
    """
    inline = " ".join(m[2] for m in _INLINE_CODE.finditer(section.markdown))
    bare, attrs = _uses(section.code)
    if module is None:
        parent, _, last = name.rpartition(".")
        imported = (parent == "tdsa" or parent.startswith("tdsa.")) and last in section.imports
        written = re.compile(rf"\b{re.escape(name)}(?![\w(])")
        return (bool(written.search(section.code) or written.search(inline))
                or (imported and any(owner == last for owner, _ in attrs)))
    if method:
        return (any(attr == name for _, attr in attrs)
                or bool(re.search(rf"\.{name}\(", inline)))
    parts = set(module.split("."))
    return ((name in bare and name in section.imports)
            or any(attr == name and owner in parts for owner, attr in attrs)
            or bool(re.search(rf"\b{name}\b", inline)))


def _docstring_nodes(tree: ast.Module, module: str) -> Iterator[tuple[str, ast.AST, bool]]:
    """``(where, node, method)`` for the module and every class and function in it."""
    yield module, tree, False
    stack: list[tuple[str, ast.AST]] = [(module, tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                where = f"{prefix}.{child.name}"
                yield where, child, isinstance(node, ast.ClassDef)
                stack.append((where, child))


def package_tags(package: Path = PACKAGE) -> list[Tagged]:
    """Every docstring of the package's source with a "Book:" tag (read with ``ast``)."""
    tagged = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for where, node, method in _docstring_nodes(tree, module):
            doc = ast.get_docstring(node)  # type: ignore[arg-type]
            if doc and "Book:" in doc:
                location = f"{path.relative_to(package.parent)}:{getattr(node, 'lineno', 1)}"
                is_module = node is tree
                tagged.append(Tagged(
                    where=where,
                    location=location,
                    name=module if is_module else where.rpartition(".")[2],
                    module=None if is_module else module,
                    method=method,
                    doc=doc,
                ))
    return tagged


def signature(obj: object) -> str:
    """``name(a, b=1, *, c=None, **kw)``: a callable's parameters without annotations."""
    parts: list[str] = []
    star = False
    for p in inspect.signature(obj).parameters.values():  # type: ignore[arg-type]
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            star = True
        elif p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
        else:
            if p.kind is p.KEYWORD_ONLY and not star:
                parts.append("*")
                star = True
            parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return f"{obj.__name__}({', '.join(parts)})"  # type: ignore[attr-defined]


def summary(doc: str) -> str:
    """A docstring's first paragraph on one line, roles (``:func:`x```) as inline code."""
    first = doc.strip().split("\n\n")[0]
    return _ROLE.sub(r"`\1`", " ".join(first.split()))


@dataclass(frozen=True)
class Entry:
    """One symbol of the API page."""

    module: str
    name: str
    signature: str
    summary: str
    refs: tuple[BookRef, ...]


def public_names(module: object) -> list[str]:
    """A module's ``__all__`` (else the public names it defines) that are classes or functions."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, o in vars(module).items()
                 if not n.startswith("_") and getattr(o, "__module__", None) == module.__name__]
    return [n for n in names
            if inspect.isclass(getattr(module, n)) or inspect.isfunction(getattr(module, n))]


def entries(book: Path = BOOK) -> list[tuple[str, str, list[Entry]]]:
    """``(title, module, entries)`` of every section of the page, in :data:`MODULES` order."""
    result = []
    for title, name in MODULES:
        module = importlib.import_module(name)
        items = []
        for symbol in public_names(module):
            obj = getattr(module, symbol)
            doc = inspect.getdoc(obj) or ""
            items.append(Entry(name, symbol, signature(obj), summary(doc), parse_tag(doc, book)))
        result.append((title, name, items))
    return result


def link(ref: BookRef, book: Path = BOOK) -> str:
    """A Markdown link to the section ``ref`` names (TagError if it does not exist)."""
    return f"[{ref.label}, *{ref.section}*]({ref.page}#{find_section(ref, book).slug})"


def render(book: Path = BOOK) -> str:
    """The API page: the preamble (``book/api.md`` as committed), then one section per
    module."""
    lines = [(book / "api.md").read_text(encoding="utf-8").rstrip(), ""]
    for title, name, items in entries(book):
        module = importlib.import_module(name)
        lines += [f"## {title}: `{name}`", "", summary(inspect.getdoc(module) or ""), ""]
        for e in items:
            where = "; ".join(link(r, book) for r in e.refs)
            lines += [f"`{e.module}.{e.signature}`", f": {e.summary or '(no docstring)'}"]
            if where:
                lines += ["", f"  Explained in {where}."]
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Write the page over ``argv[0]``, the preamble ``api.md`` of a book folder (its notebooks
    are the ones linked); one line on stderr and exit 1 on a bad tag."""
    if len(argv) != 1:
        print("usage: python book/_tools/api_page.py BOOK/api.md", file=sys.stderr)
        return 2
    try:
        text = render(Path(argv[0]).parent)
    except TagError as exc:
        print(f"api_page: {exc}", file=sys.stderr)
        return 1
    Path(argv[0]).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
