"""Paths and helpers shared by the notebook tests (a uniquely named module, not conftest)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import yaml

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "book"
BUILD = REPO / "_build"
STAGED = BUILD / "src"
HTML = BUILD / "html"


def load_tool(name: str) -> ModuleType:
    """``book/_tools/<name>.py`` imported as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"tdsa_book_{name}",
                                                  BOOK / "_tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_build_module() -> ModuleType:
    """``book/_tools/build.py`` imported as a module."""
    return load_tool("build")


def toc_entries() -> list[str]:
    """The ``file:`` entries of ``_toc.yml`` (root first), e.g. ``book/01_data``."""
    build = load_build_module()
    return list(build.toc_files(yaml.safe_load((REPO / "_toc.yml").read_text())))


def toc_notebooks() -> list[str]:
    """Toc entries that are notebooks, as stems (``01_data``)."""
    return [Path(e).name for e in toc_entries() if (REPO / f"{e}.ipynb").exists()]
