"""The layout rule of ``tdsa/__init__.py``: library, experiments, book and commands layers."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from tdsa import cli

PACKAGE = Path(__file__).resolve().parents[2] / "tdsa"
LIBRARY = ("losses", "models", "data", "engine", "metrics", "viz", "validation", "errors",
           "resources", "config", "provenance")
UPPER_LAYERS = ("tdsa.experiments", "tdsa.ablate", "tdsa.evidence", "tdsa.calibration",
                "tdsa.localisation", "tdsa.counterfactual", "tdsa.bench", "tdsa.book",
                "tdsa.commands", "tdsa.cli")
SCRIPTS = {"__init__", "gpu_check"}  # tdsa/commands/ modules that are not a `tdsa` command
# Library imports of an upper layer not yet removed: tdsa.viz.twins takes encode_as_saved (the
# generator's JPEG round trip, which belongs in tdsa.data.synthetic) from tdsa.counterfactual.
KNOWN_UPWARD_IMPORTS: set[str] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module an ``import`` anywhere in ``source`` (module ``module``) may name: for
    ``from A import b`` both ``A`` and ``A.b``; relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _defines_command(tree: ast.Module) -> set[str]:
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            params = [a.arg for a in node.args.posonlyargs + node.args.args]
            if node.name == "add_arguments" or (node.name == "run" and params == ["args"]):
                found.add(node.name)
    return found


def test_imported_modules_reads_nested_relative_and_from_imports() -> None:
    source = ("import os\nfrom tdsa import book\n\ndef f():\n    from ..ablate import Grid\n"
              "    from . import plots\n")
    names = imported_modules(source, "tdsa.viz.maps")
    assert {"os", "tdsa", "tdsa.book", "tdsa.ablate", "tdsa.ablate.Grid", "tdsa.viz",
            "tdsa.viz.plots"} <= names
    assert "tdsa.viz" in imported_modules("from . import maps\n", "tdsa.viz", is_package=True)


def test_every_command_lives_in_tdsa_commands() -> None:
    for name, (module, _) in cli.COMMANDS.items():
        assert module == f"tdsa.commands.{name}", (name, module)
        mod = importlib.import_module(module)
        assert callable(mod.add_arguments) and callable(mod.run), module
    modules = {p.stem for p in (PACKAGE / "commands").glob("*.py")} - SCRIPTS
    assert modules == set(cli.COMMANDS), "one module per command, no other"


def test_only_the_commands_define_add_arguments_and_run() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "commands" or rel.as_posix() == "cli.py":
            continue
        found = _defines_command(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[rel.as_posix()] = found
    assert not offenders, f"command functions outside tdsa/commands/: {offenders}"


def test_the_library_imports_no_upper_layer() -> None:
    paths = [p for name in LIBRARY
             for p in ((PACKAGE / name).rglob("*.py") if (PACKAGE / name).is_dir()
                       else [PACKAGE / f"{name}.py"])]
    assert len(paths) > len(LIBRARY)
    bad = []
    for path in paths:
        module = _module_name(path)
        names = imported_modules(path.read_text(encoding="utf-8"), module,
                                 is_package=path.stem == "__init__")
        bad += [f"{module} imports {n}" for n in sorted(names)
                if any(n == up or n.startswith(up + ".") for up in UPPER_LAYERS)]
    assert set(bad) == KNOWN_UPWARD_IMPORTS, (
        f"{sorted(set(bad) - KNOWN_UPWARD_IMPORTS)} (a fixed known import leaves "
        f"KNOWN_UPWARD_IMPORTS: {sorted(KNOWN_UPWARD_IMPORTS - set(bad))})")
