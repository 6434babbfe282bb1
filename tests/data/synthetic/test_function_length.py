"""Every function of ``tdsa/data/synthetic/`` is short: at most 60 lines, docstring included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "tdsa" / "data" / "synthetic"
MODULES = sorted(PACKAGE.glob("*.py"))
MAX_LINES = 60


def function_lengths(source: str) -> list[tuple[str, int, int]]:
    """``(name, first line, lines)`` of every function and method in ``source``, nested ones
    included; ``lines`` is ``end_lineno - lineno + 1``, from ``def`` to its last line."""
    return [(node.name, node.lineno, node.end_lineno - node.lineno + 1)
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno is not None]


def test_function_lengths_counts_def_to_last_line() -> None:
    source = "def f():\n    x = 1\n    return x\n\nclass C:\n    def g(self):\n        pass\n"
    assert sorted(function_lengths(source)) == [("f", 1, 3), ("g", 6, 2)]


def test_the_package_is_found() -> None:
    assert PACKAGE / "__init__.py" in MODULES and len(MODULES) > 1


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_function_over_60_lines(path: Path) -> None:
    long = [(name, line, lines)
            for name, line, lines in function_lengths(path.read_text(encoding="utf-8"))
            if lines > MAX_LINES]
    assert not long, f"{path.name}: (function, line, lines) over {MAX_LINES} lines: {long}"
