"""Execute the book's notebooks with papermill and build the HTML with Jupyter Book.

Usage: ``python book/_tools/build.py --profile {smoke,cpu,gpu}``

1. Copy ``_config.yml``, ``_toc.yml`` and ``book/`` into the staging directory ``_build/src/``
   (papermill output never goes over ``book/``: the committed notebooks stay output-free).
2. Execute every notebook listed in ``_toc.yml`` there with papermill (``-p profile P``,
   kernel ``python3``, working directory = the staged ``book/``), and tag the injected
   parameters cell ``remove-cell`` so the book does not show it, and drop the progress-bar
   widgets (no widget state is saved; no page loads the widget manager from a CDN).
3. Write the staged ``book/_build_times.md`` (the seconds each notebook took in this build
   and the runs it trained here, with their precision, or that it loaded earlier ones; the
   intro includes it as its runtime table) and generate the staged ``book/api.md``
   from the package's docstrings (``api_page.py``), then
   ``jupyter-book build _build/src --all -W -n --keep-going``, HTML in ``_build/html``.
4. MathJax 3 (the npm package, installed once into ``_build/mathjax``) is copied into
   ``_build/html/_mathjax``, which ``_config.yml``'s ``mathjax_path`` points at, so formulas
   are typeset with no download when the book is read offline.

Per-notebook and total times are printed; any failure exits non-zero with one line naming
the notebook. Book: intro.md, *How to read and run the book*.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import nbformat
import papermill
import yaml

from tdsa.experiments.book import default_runs_root
from tdsa.provenance import cpu_kind

REPO = Path(__file__).resolve().parents[2]
PROFILES = ("smoke", "cpu", "gpu")
REMOVE_TAG = "remove-cell"
INJECTED_TAG = "injected-parameters"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STAMP = ".built"  # written into the staging dir after a complete build: holds the profile
MATHJAX = "mathjax@3.2.2"
MATHJAX_DIR = "_mathjax"  # beside the pages in _build/html; _config.yml's mathjax_path


class BuildError(Exception):
    """A failure reported as one line: what failed and where."""


def toc_files(toc: object) -> Iterator[str]:
    """Every ``file:`` entry of a parsed ``_toc.yml`` (root first), in reading order."""
    if isinstance(toc, dict):
        for key in ("root", "file"):
            if isinstance(toc.get(key), str):
                yield toc[key]
        for key in ("parts", "chapters", "sections"):
            for entry in toc.get(key) or ():
                yield from toc_files(entry)
    elif isinstance(toc, list):
        for entry in toc:
            yield from toc_files(entry)


def stage(repo: Path, src: Path) -> list[Path]:
    """Copy the book sources into ``src`` and return the staged notebooks listed in the toc."""
    for name in ("_config.yml", "_toc.yml", "book"):
        if not (repo / name).exists():
            raise BuildError(f"{repo / name} is missing: run from a checkout of the tdsa repo")
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    shutil.copy2(repo / "_config.yml", src / "_config.yml")
    shutil.copy2(repo / "_toc.yml", src / "_toc.yml")
    shutil.copytree(
        repo / "book",
        src / "book",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "_build"),
    )
    try:
        toc = yaml.safe_load((src / "_toc.yml").read_text())
    except yaml.YAMLError as exc:
        raise BuildError(f"_toc.yml is not valid YAML: {exc}") from exc
    notebooks = []
    for entry in toc_files(toc):
        path = src / (entry if entry.endswith(".ipynb") else f"{entry}.ipynb")
        if path.exists():
            notebooks.append(path)
    return notebooks


def prepare_for_html(path: Path) -> None:
    """Make an executed notebook a page: add the ``remove-cell`` tag to the cell papermill
    injected, so the book hides it, and drop the progress-bar widgets (papermill saves no
    widget state, so the page would show only a frozen "0%" and load the widget manager from
    a CDN; the trainer's one line per epoch stays as the record). Papermill's record of the
    notebook's paths becomes ``book/NAME.ipynb`` (the downloadable source shows no build
    folder)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if INJECTED_TAG in tags and REMOVE_TAG not in tags:
            cell.metadata["tags"] = [*tags, REMOVE_TAG]
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_MIME not in o.get("data", {})]
    nb.metadata.pop("widgets", None)
    record = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):  # the staging folder's absolute path
        if key in record:
            record[key] = f"book/{path.name}"
    nbformat.write(nb, path)


def execute(notebook: Path, profile: str) -> float:
    """Run one staged notebook in place with papermill; return the wall time in seconds."""
    start = time.perf_counter()
    cells = nbformat.read(notebook, as_version=4).cells
    if not any("parameters" in c.metadata.get("tags", []) for c in cells):
        raise BuildError(f"notebook book/{notebook.name} has no cell tagged 'parameters' "
                         "(papermill needs one to set the profile)")
    try:
        papermill.execute_notebook(
            str(notebook),
            str(notebook),
            parameters={"profile": profile},
            kernel_name="python3",
            cwd=str(notebook.parent),
            progress_bar=False,
            log_output=False,
        )
    except papermill.PapermillExecutionError as exc:
        first = str(exc.evalue).strip().splitlines()
        detail = first[0] if first else ""
        raise BuildError(
            f"notebook book/{notebook.name} failed in cell {exc.exec_count}: "
            f"{exc.ename}: {detail}"
        ) from exc
    except Exception as exc:
        raise BuildError(f"notebook book/{notebook.name} could not be executed: "
                         f"{type(exc).__name__}: {exc}") from exc
    prepare_for_html(notebook)
    return time.perf_counter() - start


def run_summaries(runs_root: Path) -> dict[Path, float]:
    """Every run folder's ``summary.json`` under ``runs_root`` with its modification time (the
    trainer writes it when a run finishes): compared before and after a notebook, it says
    which runs the notebook trained and which it loaded."""
    if not runs_root.is_dir():
        return {}
    return {p: p.stat().st_mtime for p in runs_root.rglob("summary.json")}


def trained_runs(before: dict[Path, float], after: dict[Path, float]) -> list[Path]:
    """The summaries that are new or rewritten in ``after``: the runs trained in between."""
    return sorted(p for p, t in after.items() if before.get(p) != t)


def describe_runs(trained: list[Path]) -> str:
    """A table cell: the run folders a notebook trained in this build, with the precision each
    recorded, or that it trained none (it loaded the runs an earlier build left)."""
    if not trained:
        return "none trained here (earlier runs loaded, if any)"
    out = []
    for summary in trained:
        try:
            precision = json.loads(summary.read_text(encoding="utf-8")).get("precision", "?")
        except (OSError, ValueError):
            precision = "?"
        out.append(f"`{summary.parent.name}` ({precision})")
    return "trained now: " + ", ".join(out)


def write_build_times(src: Path, profile: str, seconds: dict[str, float],
                      trained: dict[str, list[Path]] | None = None, cpu: str = "") -> Path:
    """Write the staged ``book/_build_times.md``: one row per executed notebook with the
    seconds it took in this build and the runs it trained here (their precision) or that it
    trained none, the total, the profile, the machine's core count and its CPU."""
    trained = trained or {}
    rows = [f"| {{doc}}`{Path(name).stem}` | {secs:.0f} s | "
            f"{describe_runs(trained.get(name, []))} |" for name, secs in seconds.items()]
    text = "\n".join([
        f"Measured in the build of this copy of the book: profile `{profile}`, "
        f"{os.cpu_count()} CPU cores{f' ({cpu})' if cpu else ''}, the notebooks one after "
        "another. A chapter whose runs an earlier build left in the runs folder loads them "
        "instead of training: its seconds are then those of loading, and the numbers it shows "
        "are those runs'.", "",
        "| chapter | seconds | runs |", "|---|---|---|", *rows,
        f"| total | {sum(seconds.values()):.0f} s | |", ""])
    target = src / "book" / "_build_times.md"
    target.write_text(text, encoding="utf-8")
    return target


def write_api_page(src: Path) -> float:
    """Generate the staged ``book/api.md`` from the docstrings (``api_page.py``, beside this
    script; the committed page is its preamble); return seconds."""
    start = time.perf_counter()
    script = Path(__file__).with_name("api_page.py")
    result = subprocess.run([sys.executable, str(script), str(src / "book" / "api.md")],
                            check=False)
    if result.returncode != 0:
        raise BuildError(f"book/_tools/api_page.py failed with exit code {result.returncode} "
                         "(the line above names the docstring)")
    return time.perf_counter() - start


def build_html(src: Path, out_root: Path) -> float:
    """Build the HTML of the staged book into ``out_root/_build/html``; return seconds."""
    start = time.perf_counter()
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book) if jupyter_book.exists() else "jupyter-book",
               "build", str(src), "--all", "-W", "-n", "--keep-going",
               "--path-output", str(out_root)]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise BuildError(f"jupyter-book build failed with exit code {result.returncode} "
                         "(the warnings above name the page)")
    return time.perf_counter() - start


def install_mathjax(build: Path, html: Path) -> float:
    """Copy MathJax 3's ``es5`` bundle into ``html/_mathjax`` (npm-installed into
    ``build/mathjax`` on first use); return seconds."""
    start = time.perf_counter()
    package = build / "mathjax" / "node_modules" / "mathjax"
    if not (package / "es5" / "tex-chtml.js").is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise BuildError("npm is needed once to install MathJax for the offline book "
                             "(Debian: apt-get install npm)")
        result = subprocess.run(
            [npm, "install", "--prefix", str(build / "mathjax"), "--no-audit", "--no-fund",
             "--silent", MATHJAX], check=False)
        if result.returncode != 0 or not (package / "es5" / "tex-chtml.js").is_file():
            raise BuildError(f"npm install {MATHJAX} failed (exit {result.returncode})")
    target = html / MATHJAX_DIR
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(package / "es5", target)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Stage, execute and build; print times. Returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=PROFILES, default="cpu",
                        help="notebook profile: smoke (seconds), cpu (default), gpu")
    parser.add_argument("--no-html", action="store_true",
                        help="execute the notebooks only, skip the jupyter-book build")
    parser.add_argument("--only", nargs="+", metavar="NOTEBOOK",
                        help="execute only these notebooks (file names, e.g. 02_channel_"
                             "constraint.ipynb) and build no HTML")
    parser.add_argument("--stage-dir", type=Path,
                        help="stage and execute in this folder instead of _build/src (so two "
                             "--only runs can work side by side)")
    args = parser.parse_args(argv)

    build = REPO / "_build"
    src = args.stage_dir.resolve() if args.stage_dir else build / "src"
    total = time.perf_counter()
    try:
        notebooks = stage(REPO, src)
        if args.only:
            unknown = sorted(set(args.only) - {n.name for n in notebooks})
            if unknown:
                raise BuildError(f"--only: {', '.join(unknown)} not in _toc.yml; notebooks: "
                                 f"{', '.join(n.name for n in notebooks)}")
            notebooks = [n for n in notebooks if n.name in args.only]
            args.no_html = True
        print(f"build: profile {args.profile}, {len(notebooks)} notebooks staged in {src}",
              flush=True)
        times: dict[str, float] = {}
        trained: dict[str, list[Path]] = {}
        runs_root, cpu = default_runs_root(), cpu_kind()
        for notebook in notebooks:
            before = run_summaries(runs_root)
            times[notebook.name] = execute(notebook, args.profile)
            trained[notebook.name] = trained_runs(before, run_summaries(runs_root))
            print(f"build: {notebook.name:<32} {times[notebook.name]:7.1f} s", flush=True)
        if not args.no_html:
            write_build_times(src, args.profile, times, trained, cpu)
            seconds = write_api_page(src)
            print(f"build: {'API page from the docstrings':<32} {seconds:7.1f} s", flush=True)
            seconds = build_html(src, REPO)
            print(f"build: {'jupyter-book build':<32} {seconds:7.1f} s", flush=True)
            seconds = install_mathjax(build, build / "html")
            print(f"build: {'MathJax for offline reading':<32} {seconds:7.1f} s", flush=True)
            (src / STAMP).write_text(args.profile + "\n")
    except BuildError as exc:
        print(f"build: error: {exc}", file=sys.stderr)
        return 1
    print(f"build: total {time.perf_counter() - total:.1f} s"
          + ("" if args.no_html else f"; HTML in {build / 'html'}"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
