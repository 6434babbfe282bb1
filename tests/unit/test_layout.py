"""The layout rule of ``tdsa/__init__.py``, checked by folder: the library, ``experiments/`` and
the commands (``commands/``, ``cli.py``, ``__main__.py``) import only their own layer or the
ones below it; no modules of ``tdsa`` import each other in a cycle; one module per command."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

from tdsa import cli

PACKAGE = Path(__file__).resolve().parents[2] / "tdsa"
LAYERS = ("the library", "tdsa.experiments", "the commands")
"""The layers from the bottom up: a module may import its own layer and the ones before it."""
SCRIPTS = {"__init__", "gpu_check"}  # tdsa/commands/ modules that are not a `tdsa` command


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_sources() -> dict[str, tuple[str, bool]]:
    """Every module of ``tdsa/`` (its dotted name): its source and whether it is a package."""
    return {_module_name(path): (path.read_text(encoding="utf-8"), path.stem == "__init__")
            for path in sorted(PACKAGE.rglob("*.py"))}


def _import_statements(source: str, module: str,
                       is_package: bool) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(A, names)`` for every ``from A import names`` anywhere in ``source`` (module
    ``module``; relative imports resolved) and ``(A, ())`` for every ``import A``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base, tuple(alias.name for alias in node.names)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module an ``import`` anywhere in ``source`` (module ``module``) may name: for
    ``from A import b`` both ``A`` and ``A.b``; relative imports resolved."""
    names: set[str] = set()
    for base, members in _import_statements(source, module, is_package):
        names.add(base)
        names.update(f"{base}.{member}" for member in members)
    return names


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the layer that the folder of ``module`` (a dotted name
    under ``tdsa``) puts it in."""
    top = module.split(".")[1] if module.count(".") else ""
    if top == "experiments":
        return 1
    if top in ("commands", "cli", "__main__"):
        return 2
    return 0


def import_graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the modules of ``sources`` its file imports anywhere (function-local imports
    too). ``from A import b`` imports ``A.b`` where that is a module, else ``A``; importing a
    module also runs the packages above it, which count unless they hold the importer (its
    own packages are running already)."""
    graph: dict[str, set[str]] = {}
    for module, (source, is_package) in sources.items():
        targets = set()
        for base, members in _import_statements(source, module, is_package):
            named = [f"{base}.{m}" if f"{base}.{m}" in sources else base for m in members]
            for target in named or [base]:
                parts = target.split(".")
                targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        graph[module] = {t for t in targets & set(sources)
                         if not (module == t or module.startswith(t + "."))}
    return graph


def _reachable(graph: Mapping[str, Set[str]], start: str) -> set[str]:
    """The nodes of ``graph`` reached from ``start`` along one edge or more."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def import_cycles(graph: Mapping[str, Set[str]]) -> list[list[str]]:
    """The modules of each import cycle of ``graph``: every strongly connected component of more
    than one module (the modules that reach each other), each sorted, in sorted order."""
    nodes = set(graph).union(*graph.values())
    reach = {node: _reachable(graph, node) for node in nodes}
    components = {tuple(sorted(m for m in reach[node] if node in reach[m]))
                  for node in nodes if node in reach[node]}
    return sorted(list(c) for c in components if len(c) > 1)


def _defines_command(tree: ast.Module) -> set[str]:
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            params = [a.arg for a in node.args.posonlyargs + node.args.args]
            if node.name == "add_arguments" or (node.name == "run" and params == ["args"]):
                found.add(node.name)
    return found


def test_imported_modules_reads_nested_relative_and_from_imports() -> None:
    source = ("import os\nfrom tdsa.experiments import book\n\ndef f():\n"
              "    from ..experiments.grid import Grid\n    from . import plots\n")
    names = imported_modules(source, "tdsa.viz.maps")
    assert {"os", "tdsa.experiments", "tdsa.experiments.book", "tdsa.experiments.grid",
            "tdsa.experiments.grid.Grid", "tdsa.viz", "tdsa.viz.plots"} <= names
    assert "tdsa.viz" in imported_modules("from . import maps\n", "tdsa.viz", is_package=True)


def test_the_folder_gives_the_layer() -> None:
    assert [layer_of(m) for m in ("tdsa", "tdsa.losses", "tdsa.engine.loop", "tdsa.viz")] == [0] * 4
    assert layer_of("tdsa.experiments") == layer_of("tdsa.experiments.bench.step") == 1
    assert [layer_of(m) for m in ("tdsa.cli", "tdsa.__main__", "tdsa.commands.bench")] == [2] * 3


def test_import_cycles_finds_every_cycle_of_a_hand_made_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f", "a"}, "f": {"e"},
             "g": {"a", "d"}}
    assert import_cycles(graph) == [["a", "b", "c"], ["e", "f"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []
    assert import_cycles({"x": {"y"}, "y": {"x"}, "z": {"y"}}) == [["x", "y"]]


def test_import_graph_follows_function_local_relative_and_package_imports() -> None:
    sources = {
        "tdsa.p": ("from tdsa.p.a import f\n", True),
        "tdsa.p.a": ("import os\n\ndef f():\n    from . import b\n", False),
        "tdsa.p.b": ("from tdsa.p.a import f as g\n", False),
        "tdsa.q": ("def h():\n    from tdsa.p.b import g\n", True),
        "tdsa.q.c": ("from tdsa.p import f\n", False),
    }
    graph = import_graph(sources)
    assert graph == {"tdsa.p": {"tdsa.p.a"}, "tdsa.p.a": {"tdsa.p.b"}, "tdsa.p.b": {"tdsa.p.a"},
                     "tdsa.q": {"tdsa.p", "tdsa.p.b"}, "tdsa.q.c": {"tdsa.p"}}
    assert import_cycles(graph) == [["tdsa.p.a", "tdsa.p.b"]]
    # importing tdsa.y.z runs tdsa/y/__init__.py, which imports tdsa.y.w, which imports tdsa.x
    through_a_package = import_graph({
        "tdsa.x": ("def f():\n    import tdsa.y.z\n", False),
        "tdsa.y": ("from tdsa.y.w import v\n", True),
        "tdsa.y.w": ("import tdsa.x\n", False),
        "tdsa.y.z": ("", False),
    })
    assert through_a_package["tdsa.x"] == {"tdsa.y", "tdsa.y.z"}
    assert import_cycles(through_a_package) == [["tdsa.x", "tdsa.y", "tdsa.y.w"]]


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


def test_no_layer_imports_a_layer_above_it() -> None:
    sources = package_sources()
    assert {layer_of(m) for m in sources} == {0, 1, 2}, "every layer has modules"
    bad = sorted(
        f"{module} ({LAYERS[layer_of(module)]}) imports {name} ({LAYERS[layer_of(name)]})"
        for module, (source, is_package) in sources.items()
        for name in imported_modules(source, module, is_package)
        if name.startswith("tdsa.") and layer_of(name) > layer_of(module))
    assert not bad, "imports from a lower layer into a higher one:\n" + "\n".join(bad)


def test_no_import_cycle_between_modules_of_tdsa() -> None:
    graph = import_graph(package_sources())
    assert sum(map(len, graph.values())) > len(graph), "the graph has the package's imports"
    cycles = import_cycles(graph)
    assert not cycles, (
        "modules of tdsa that import each other in a cycle (importing a.b.c also runs the "
        "packages a.b and a above it):\n") + "\n".join(
        " <-> ".join(cycle) + " (" + "; ".join(
            f"{m} imports {', '.join(sorted(graph[m] & set(cycle)))}" for m in cycle) + ")"
        for cycle in cycles)
