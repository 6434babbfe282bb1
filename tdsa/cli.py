"""The ``tdsa`` command line: ``python -m tdsa <command> ...``.

Each command lives in its own module that exposes ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them together and turns user-facing errors
(:class:`tdsa.errors.TdsaError`) into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tdsa import __version__
from tdsa.errors import TdsaError

# command name -> (module, help). Modules are imported lazily so `tdsa --help` is fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("tdsa.engine.commands_train", "train a model from a YAML config"),
    "eval": ("tdsa.engine.commands_eval", "evaluate a checkpoint on a test split"),
    "data": ("tdsa.data.commands", "generate the synthetic dataset or check a dataset root"),
    "visualize": ("tdsa.viz.commands", "save channel maps, top-down gates and overlays"),
    "ablate": ("tdsa.ablate", "run a grid of loss variants x seeds and tabulate them"),
    "bench": ("tdsa.bench", "benchmark the loss head, training steps and data pipeline"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The top-level parser; only the chosen command's module is imported."""
    parser = argparse.ArgumentParser(prog="tdsa", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tdsa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                parser.error(f"command {name!r} is not available in this version of tdsa")
            mod.add_arguments(cmd)
            cmd.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tdsa`` and the ``tdsa`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except TdsaError as exc:
        print(f"tdsa {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"tdsa {args.command}: interrupted", file=sys.stderr)
        return 130
