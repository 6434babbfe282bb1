"""The ``tdsa`` command line: ``python -m tdsa <command> ...``.

Each command lives in its own module, ``tdsa.commands.<name>``, that exposes
``add_arguments(parser)`` and ``run(args) -> int``; this file only wires them together and
turns user-facing errors (:class:`tdsa.errors.TdsaError`) into one line on stderr and a
non-zero exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from tdsa import __version__
from tdsa.errors import TdsaError

_QUIET_HELP = "print warnings and errors only: no per-epoch lines, no progress bars"

# command name -> (module, help). Modules are imported lazily so `tdsa --help` is fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("tdsa.commands.train", "train a model from a YAML config"),
    "eval": ("tdsa.commands.eval", "evaluate a checkpoint on a test split"),
    "data": ("tdsa.commands.data", "generate the synthetic dataset or check a dataset root"),
    "visualize": ("tdsa.commands.visualize", "save channel maps, top-down gates and overlays"),
    "ablate": ("tdsa.commands.ablate", "run a grid of loss variants x seeds and tabulate them"),
    "bench": ("tdsa.commands.bench", "benchmark the loss head, training steps and data pipeline"),
    "counterfactual": ("tdsa.commands.counterfactual", "counterfactual twin measures of a run"),
}


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C while the heavy extension modules import, then raise it.

    A ``KeyboardInterrupt`` that lands inside torch's C++ start-up either aborts the process
    (SIGABRT from pybind11) or makes Python end by SIGINT instead of the exit code it was
    given; raised after the import, it reaches :func:`main` and becomes exit 130. Only the
    main thread's default handler is replaced (an ignored SIGINT stays ignored).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The top-level parser; only the chosen command's module is imported."""
    parser = argparse.ArgumentParser(prog="tdsa", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tdsa {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help=_QUIET_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            try:
                with interrupts_deferred():
                    importlib.import_module("torch")
                    mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                parser.error(f"command {name!r} is not available in this version of tdsa")
            mod.add_arguments(cmd)
            cmd.set_defaults(_run=mod.run)
        _add_quiet(cmd)
    return parser


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` on a command and on each of its actions (``tdsa data check ... --quiet``)."""
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help=_QUIET_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_quiet(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tdsa`` and the ``tdsa`` console script.

    Ctrl-C at any point (importing torch, building the data, training) exits with 130 and
    one line on stderr.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        chosen = next((a for a in argv if a in COMMANDS), None)
        print(f"tdsa{' ' + chosen if chosen else ''}: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    args = build_parser(argv).parse_args(argv)
    from tdsa.console import configure_logging  # after parsing: `--help` stays fast

    # Per-epoch lines and other facts go to stdout with the command's results (so `| tee`
    # keeps them); errors go to stderr.
    configure_logging(quiet=args.quiet, stream=sys.stdout)
    try:
        return int(args._run(args) or 0)
    except TdsaError as exc:
        print(f"tdsa {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
