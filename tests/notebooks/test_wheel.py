"""The book from an installed wheel, without the repository: what a Colab reader gets.

The wheel is built from the working tree, installed with ``--no-deps`` into a fresh virtual
environment whose only other packages are this project's dependencies (a ``.pth`` line adds
the project venv's site-packages; a ``.pth`` *line* does not run the ``.pth`` files inside that
folder, so the editable install of ``tdsa`` stays out). Everything then runs in a working
folder outside the clone: every chapter in the ``smoke`` profile with papermill, on a kernel
of that environment, and ``python -m tdsa train --config NAME``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from book_helpers import BOOK, REPO, toc_notebooks

SOURCES = ("pyproject.toml", "README.md", "tdsa", "configs", "results")


@dataclass(frozen=True)
class Installed:
    python: Path  # the fresh environment's interpreter
    work: Path  # a working folder outside the clone
    env: dict[str, str]  # environment for its subprocesses (JUPYTER_PATH: its own kernel)


def _run(command: list[str | Path], env: dict[str, str], cwd: Path,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    assert result.returncode == 0, (f"{' '.join(map(str, command))} failed "
                                    f"({result.returncode}):\n{result.stdout[-3000:]}"
                                    f"\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel of the working tree in a fresh venv, and a working folder outside the clone."""
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # The project venv's setuptools builds it offline; without one, pip fetches it (isolated).
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    _run([*pip, "wheel", "--no-deps", *isolation, "-w", base / "dist", src], env, base)
    wheel = next((base / "dist").glob("tdsa-*.whl"))

    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], env, base)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     env, base).stdout.strip())
    (site / "tdsa_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([*pip, "--python", python, "install", "--no-deps", "--no-index", wheel], env, base)

    kernel = base / "jupyter" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tdsa wheel)", "language": "python"}))
    env |= {"JUPYTER_PATH": str(base / "jupyter"), "MPLBACKEND": "agg"}
    work = base / "work"
    work.mkdir()
    return Installed(python, work, env)


def test_tdsa_is_the_installed_wheel_not_the_repository(installed: Installed) -> None:
    probe = ("import sys, tdsa, tdsa.experiments.book, tdsa.resources; print(tdsa.__file__); "
             "print(tdsa.resources.resource_root()); print(tdsa.experiments.book.repo_root()); "
             "print(any('__editable__' in str(m) for m in sys.meta_path))")
    out = _run([installed.python, "-c", probe], installed.env, installed.work).stdout.split("\n")
    venv = installed.python.parents[1]
    assert Path(out[0]).is_relative_to(venv), f"tdsa imported from {out[0]}, not the wheel"
    assert Path(out[1]) == Path(out[0]).parent, "configs and results come from the package"
    assert out[2:4] == ["None", "False"], "no checkout, no editable finder"
    assert not Path(out[0]).is_relative_to(REPO)


def test_train_by_config_name_from_any_folder(installed: Installed) -> None:
    command = [installed.python, "-m", "tdsa", "train", "--config", "synthetic_tdsa",
               "--out", "runs/by-name", "data.root=data/by-name",
               "data.synthetic.num_classes=4", "data.synthetic.train_per_class=4",
               "data.synthetic.test_per_class=2", "data.synthetic.image_size=48",
               "data.image_size=48", "data.workers=0", "train.batch_size=8", "train.epochs=1",
               "runtime.threads=1"]
    _run(command, installed.env, installed.work)
    summary = json.loads((installed.work / "runs" / "by-name" / "summary.json").read_text())
    assert summary["epochs_completed"] == 1
    assert (installed.work / "data" / "by-name").is_dir(), "a relative root is the working folder's"


def _kernel_probe(installed: Installed) -> list[str]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys, tdsa\nprint(sys.executable)\nprint(tdsa.__file__)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = installed.work / "probe.ipynb"
    nbformat.write(nb, path)
    script = ("import papermill, sys; papermill.execute_notebook(sys.argv[1], sys.argv[1], "
              "kernel_name='python3', progress_bar=False)")
    _run([installed.python, "-c", script, path], installed.env, installed.work)
    return nbformat.read(path, as_version=4).cells[0].outputs[0]["text"].split()


@pytest.mark.slow
def test_every_chapter_runs_from_the_wheel(installed: Installed) -> None:
    executable, module = _kernel_probe(installed)
    assert Path(executable) == installed.python, "the kernel is the fresh environment's python"
    assert Path(module).is_relative_to(installed.python.parents[1])
    chapters = installed.work / "book"
    chapters.mkdir()
    names = toc_notebooks()
    assert len(names) >= 7
    for name in names:
        shutil.copy2(BOOK / f"{name}.ipynb", chapters / f"{name}.ipynb")
    script = """
import sys, time
import papermill
for path in sys.argv[1:]:
    start = time.perf_counter()
    try:
        papermill.execute_notebook(path, path, parameters={"profile": "smoke"},
                                   kernel_name="python3", progress_bar=False)
    except papermill.PapermillExecutionError as exc:
        sys.exit(f"{path}: cell {exc.exec_count}: {exc.ename}: {exc.evalue}")
    print(f"{path}: {time.perf_counter() - start:.1f} s", flush=True)
"""
    start = time.perf_counter()
    done = _run([installed.python, "-c", script,
                 *(chapters / f"{n}.ipynb" for n in names)], installed.env, installed.work,
                timeout=600)
    print(done.stdout, f"all chapters: {time.perf_counter() - start:.0f} s")
    assert len(done.stdout.strip().splitlines()) == len(names)
    assert not any(p.name == "pyproject.toml" for p in installed.work.rglob("pyproject.toml"))
    assert (installed.work / "runs" / "book" / "smoke").is_dir(), "runs under the working folder"
