"""Chapters only call the package: no function that reads results, formats numbers or draws a
figure is defined in a notebook (a teaching chapter may define a toy input, listed here with
why), and no cell repeats a constant the package holds (sets a name of the package to the
package's value, or writes the value of the hit radius or of xi)."""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import re

import nbformat
import pytest
from book_helpers import BOOK

import tdsa
from tdsa.metrics import DEFAULT_RADIUS
from tdsa.validation import DEFAULT_XI

NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
TOY_INPUTS = {
    "one_hot_maps": "chapter 2 builds a toy input: one-hot channel maps of a made-up class",
}
"""Functions a chapter may define, with why: toy inputs the chapter teaches on."""


def _code_cells(path):
    nb = nbformat.read(path, as_version=4)
    return [(c.get("id"), c.source) for c in nb.cells if c.cell_type == "code"]


def _tree(source: str) -> ast.Module:
    # IPython magics (%pip, !cmd) are not Python: a `pass` at their indentation stands in
    return ast.parse("\n".join(
        line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
        else line for line in source.splitlines()))


def _literal(node: ast.AST | None) -> object:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return None


def package_constants() -> dict[str, object]:
    """Every module-level UPPER_CASE name that a module of ``tdsa`` assigns a literal value
    (``DEFAULT_RADIUS = 0.12``), with that value."""
    found: dict[str, object] = {}
    for info in pkgutil.walk_packages(tdsa.__path__, "tdsa."):
        spec = importlib.util.find_spec(info.name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            value = _literal(node.value) if targets else None
            found.update({t.id: value for t in targets if value is not None
                          and isinstance(t, ast.Name) and re.fullmatch(r"[A-Z][A-Z0-9_]+", t.id)})
    return found


def test_package_constants_are_found() -> None:
    found = package_constants()
    assert found["DEFAULT_RADIUS"] == DEFAULT_RADIUS and found["TUNING_SEEDS"] == (0, 1)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_notebook_defines_a_function_but_a_toy_input(path) -> None:
    defined = {f"{node.name} (cell {cell})"
               for cell, source in _code_cells(path)
               for node in ast.walk(_tree(source))
               if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
               and node.name not in TOY_INPUTS}
    assert not defined, f"{path.name} defines {sorted(defined)}: move them into the package"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_repeats_a_package_constant(path) -> None:
    constants = package_constants()
    literals = {repr(DEFAULT_RADIUS): "tdsa.metrics.DEFAULT_RADIUS",
                repr(tuple(DEFAULT_XI)): "tdsa.validation.DEFAULT_XI",
                repr(list(DEFAULT_XI)): "tdsa.validation.DEFAULT_XI"}
    found = []
    for cell, source in _code_cells(path):
        for node in ast.walk(_tree(source)):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = _literal(node.value)
                found += [f"cell {cell} sets {t.id} = {value!r}, the package's constant"
                          for t in targets if isinstance(t, ast.Name) and t.id in constants
                          and value is not None and value == constants[t.id]]
            if isinstance(node, ast.Constant | ast.Tuple | ast.List):
                text = ast.unparse(node)
                if text in literals:
                    found.append(f"cell {cell} writes {text} (use {literals[text]})")
    assert not found, f"{path.name}: {found}"
