"""The notebooks as committed in ``book/``, the table of contents, and ``build.py`` itself."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest
from book_helpers import BOOK, REPO, load_build_module, load_tool, toc_entries

NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
PROFILES = {"smoke", "cpu", "gpu"}
repository = load_tool("repository")
URL = repository.repository_url()
COLAB = URL.replace("https://github.com/", "https://colab.research.google.com/github/") + \
    "/blob/main/book/{}"
INSTALL = f"git+{URL}"


def test_book_has_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3, f"expected the chapter notebooks in {BOOK}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name} cell {index} has outputs: strip them"
        assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"
        assert "papermill" not in cell.metadata, f"{path.name} cell {index}: papermill metadata"
    assert "papermill" not in nb.metadata, f"{path.name} was overwritten by papermill output"


def _parameters(nb: nbformat.NotebookNode, name: str) -> dict[str, object]:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name}: expected exactly one cell tagged 'parameters'"
    values: dict[str, object] = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign), f"{name}: the parameters cell only assigns"
        for target in node.targets:
            assert isinstance(target, ast.Name)
            values[target.id] = ast.literal_eval(node.value)
    return values


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell(path: Path) -> None:
    values = _parameters(nbformat.read(path, as_version=4), path.name)
    assert values.get("profile") == "cpu", f"{path.name}: default profile must be 'cpu'"
    assert values["profile"] in PROFILES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_badge_and_install_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    assert first_md.source.startswith("# "), f"{path.name}: the first cell is the chapter title"
    assert "colab-badge.svg" in first_md.source, f"{path.name}: no Colab badge in the first cell"
    assert COLAB.format(path.name) in first_md.source, f"{path.name}: badge points elsewhere"
    assert nb.cells.index(first_md) == 0
    install = next(c for c in nb.cells if c.cell_type == "code")
    assert "google.colab" in install.source and INSTALL in install.source, (
        f"{path.name}: the first code cell must install tdsa when running on Colab"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_links_the_api_page(path: Path) -> None:
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    assert "{doc}`api`" in text, f"{path.name}: link the API reference"


def test_toc_lists_every_page_and_only_existing_ones() -> None:
    entries = toc_entries()
    assert entries[0] == "book/intro"
    for entry in entries:
        assert (REPO / f"{entry}.md").exists() or (REPO / f"{entry}.ipynb").exists(), entry
    listed = {Path(e).name for e in entries}
    pages = {p.stem for p in BOOK.iterdir() if p.suffix in {".md", ".ipynb"}}
    assert pages == listed, f"not in _toc.yml: {pages - listed}"


def test_toc_files_walks_parts_chapters_sections() -> None:
    build = load_build_module()
    toc = {
        "root": "intro",
        "parts": [
            {"caption": "A", "chapters": [{"file": "a", "sections": [{"file": "a1"}]}]},
            {"chapters": [{"file": "b"}, {"url": "https://example.org", "title": "x"}]},
        ],
    }
    assert list(build.toc_files(toc)) == ["intro", "a", "a1", "b"]


def _notebook(tmp_path: Path, *sources: str, parameters: bool = True) -> Path:
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    if parameters:
        cells[0].metadata["tags"] = ["parameters"]
    path = tmp_path / "book" / "99_probe.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def test_execute_injects_profile_and_hides_the_injected_cell(tmp_path: Path) -> None:
    build = load_build_module()
    path = _notebook(tmp_path, 'profile = "cpu"', "import os\nprint(profile, os.getcwd())")
    build.execute(path, "smoke")
    nb = nbformat.read(path, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert "remove-cell" in injected[0].metadata["tags"]
    assert "parameters" not in injected[0].metadata["tags"]
    printed = nb.cells[-1].outputs[0]["text"].split()
    assert printed == ["smoke", str(path.parent)], "profile injected, cwd = the notebook's folder"


def test_execute_failure_is_one_line_naming_the_notebook(tmp_path: Path) -> None:
    build = load_build_module()
    path = _notebook(tmp_path, 'profile = "cpu"', "raise RuntimeError('boom')")
    with pytest.raises(build.BuildError) as info:
        build.execute(path, "smoke")
    message = str(info.value)
    assert "\n" not in message
    assert "99_probe.ipynb" in message and "RuntimeError" in message and "boom" in message


def test_execute_requires_a_parameters_cell(tmp_path: Path) -> None:
    build = load_build_module()
    path = _notebook(tmp_path, "x = 1", parameters=False)
    with pytest.raises(build.BuildError, match=r"99_probe\.ipynb.*parameters"):
        build.execute(path, "smoke")


def test_stage_copies_sources_and_never_writes_to_book(tmp_path: Path) -> None:
    build = load_build_module()
    repo = tmp_path / "repo"
    (repo / "book").mkdir(parents=True)
    (repo / "_config.yml").write_text("title: t\n")
    (repo / "_toc.yml").write_text(json.dumps(
        {"format": "jb-book", "root": "book/intro",
         "chapters": [{"file": "book/01_a"}, {"file": "book/notes"}]}))
    (repo / "book" / "intro.md").write_text("# Intro\n")
    (repo / "book" / "notes.md").write_text("# Notes\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(nb, repo / "book" / "01_a.ipynb")
    nbformat.write(nb, repo / "book" / "02_unlisted.ipynb")
    src = tmp_path / "out" / "src"
    (src / "stale.txt").parent.mkdir(parents=True)
    (src / "stale.txt").write_text("old")
    notebooks = build.stage(repo, src)
    assert notebooks == [src / "book" / "01_a.ipynb"], "only notebooks listed in the toc"
    assert not (src / "stale.txt").exists(), "the staging dir starts clean"
    assert (src / "_config.yml").exists() and (src / "book" / "notes.md").exists()


def test_stage_reports_a_missing_toc(tmp_path: Path) -> None:
    build = load_build_module()
    (tmp_path / "book").mkdir()
    (tmp_path / "_config.yml").write_text("title: t\n")
    with pytest.raises(build.BuildError, match=r"_toc\.yml is missing"):
        build.stage(tmp_path, tmp_path / "src")


def _code(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_installs_the_pinned_release_with_the_book_extras(path: Path) -> None:
    from tdsa import __version__

    install = _code(path)[0]
    line = f'%pip install -q "tdsa[book] @ {INSTALL}@v{__version__}"'
    assert line in install, f"{path.name}: the install cell must run {line}"
    guarded = install.splitlines()[install.splitlines().index(f"    {line}") - 1]
    assert guarded == 'if "google.colab" in sys.modules:', f"{path.name}: install on Colab only"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapters_that_train_take_a_runs_root(path: Path) -> None:
    trains = any(re.search(r"\b(load_or_train|train)\(", s) for s in _code(path))
    values = _parameters(nbformat.read(path, as_version=4), path.name)
    assert ("runs_root" in values) == trains, f"{path.name}: runs_root iff the chapter trains"
    if trains:
        assert values["runs_root"] is None, "default: tdsa.experiments.book.default_runs_root()"


def test_no_helper_is_defined_twice_or_by_the_package() -> None:
    """Notebooks explain and call: a function two chapters need, or one the package has,
    lives in the package (tdsa.experiments.book for the notebooks' own needs)."""
    import tdsa.viz
    from tdsa.experiments import book

    owners: dict[str, str] = {}
    for path in NOTEBOOKS:
        source = "\n".join(s for s in _code(path) if "%pip" not in s)
        source = re.sub(r"(?m)^%.*$", "", source)  # IPython line magics (%matplotlib inline)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef):
                assert node.name not in owners, (
                    f"{node.name} is defined in {owners[node.name]} and {path.name}: move it "
                    "into tdsa.experiments.book")
                assert not hasattr(book, node.name) and not hasattr(tdsa.viz, node.name), (
                    f"{path.name} defines {node.name}, which the package has: call it")
                owners[node.name] = path.name


def test_build_times_name_the_runs_each_chapter_trained(tmp_path: Path) -> None:
    """Issue 23: the intro's table of build times says which runs the build trained (with their
    precision) and which chapters loaded the runs an earlier build left."""
    import json
    import os

    build = load_build_module()
    runs = tmp_path / "runs"
    old = runs / "training-ce-seed0" / "summary.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"precision": "fp32"}))
    before = build.run_summaries(runs)
    new = runs / "training-tdsa-seed0" / "summary.json"
    new.parent.mkdir()
    new.write_text(json.dumps({"precision": "bf16+channels_last"}))
    os.utime(old, (1.0, 1.0))  # rewritten: trained again
    trained = build.trained_runs(before, build.run_summaries(runs))
    assert trained == [old, new]
    assert build.trained_runs(before, before) == []
    assert build.describe_runs(trained) == ("trained now: `training-ce-seed0` (fp32), "
                                            "`training-tdsa-seed0` (bf16+channels_last)")
    assert build.describe_runs([]).startswith("none trained here")
    (tmp_path / "book").mkdir()
    page = build.write_build_times(tmp_path, "smoke", {"04_training.ipynb": 61.4},
                                   {"04_training.ipynb": trained}, cpu="a CPU (native bf16)")
    text = page.read_text(encoding="utf-8")
    assert f"{os.cpu_count()} CPU cores (a CPU (native bf16))" in text
    assert "| {doc}`04_training` | 61 s | trained now: `training-ce-seed0` (fp32)" in text
    assert build.run_summaries(tmp_path / "nowhere") == {}


def test_every_project_link_names_the_configured_repository() -> None:
    found = {path.relative_to(REPO).as_posix(): repository.project_links(
        path.read_text(encoding="utf-8")) for path in repository.pages()}
    assert sum(len(v) for v in found.values()) >= 2 * len(NOTEBOOKS) + 2, found
    wrong = {page: links for page, links in found.items()
             if any(link != repository.slug(URL) for link in links)}
    assert not wrong, f"links to another address than _config.yml's {URL}: {wrong}"
    assert f"url    = {{{URL}}}" in (BOOK / "intro.md").read_text(encoding="utf-8")


def test_the_rewrite_tool_moves_project_links_only() -> None:
    text = ("[![Open In Colab](b.svg)](https://colab.research.google.com/github/old/tdsa/blob/"
            "main/book/01.ipynb)\n%pip install \"tdsa[book] @ git+https://github.com/old/tdsa@v0.1"
            "\"\n[x](https://github.com/old/tdsa/blob/main/data/README.md) and "
            "[issue](https://github.com/PRIS-CV/Mutual-Channel-Loss/issues/16), "
            "[file](https://github.com/other/repo/blob/main/x.py)\n  url    = {https://github.com/"
            "old/tdsa},\n")
    assert repository.project_links(text) == ["old/tdsa"] * 3 + ["other/repo", "old/tdsa"]
    moved = repository.rewrite(text, "old/tdsa", "new-owner/tdsa2")
    assert repository.project_links(moved) == ["new-owner/tdsa2"] * 3 + [
        "other/repo", "new-owner/tdsa2"]
    assert "PRIS-CV/Mutual-Channel-Loss/issues/16" in moved and "other/repo/blob" in moved
    assert moved.replace("new-owner/tdsa2", "old/tdsa") == text
    with pytest.raises(ValueError, match=r"expected https://github\.com/OWNER/NAME"):
        repository.slug("https://gitlab.com/a/b")
