"""What tdsa shows while it works: the ``tdsa`` logger's handler and the tqdm progress bars.

:func:`configure_logging` gives the ``tdsa`` logger a handler (the CLI calls it for every
command, notebooks call it with ``stream=sys.stdout``); :func:`progress_enabled` decides whether
progress bars are shown and :func:`progress_bar` makes one. It sits at the base of the library,
so the data downloads and the training loop share it.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any, TextIO

__all__ = ["LOGGER_NAME", "configure_logging", "in_notebook", "is_quiet", "progress_bar",
           "progress_enabled"]

LOGGER_NAME = "tdsa"
_HANDLER_MARK = "_tdsa_handler"


class _Formatter(logging.Formatter):
    """Info lines as they are; warnings and errors prefixed with their level."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


class _Handler(logging.StreamHandler):
    """A stream handler; given ``sys.stdout`` or ``sys.stderr`` it looks the stream up again
    for every record, so a later redirection (``contextlib.redirect_stdout``, a test's
    capture) is followed instead of writing to a replaced stream."""

    def __init__(self, stream: TextIO) -> None:
        self.std = next((n for n in ("stdout", "stderr") if getattr(sys, n) is stream), None)
        super().__init__(stream)

    def emit(self, record: logging.LogRecord) -> None:
        if self.std is not None:
            self.stream = getattr(sys, self.std)
        super().emit(record)


def configure_logging(quiet: bool = False, stream: TextIO | None = None) -> None:
    """Give the ``tdsa`` logger one handler writing to ``stream`` (default ``sys.stderr``).

    Info messages (the per-epoch line, "loaded N tensors", ...) are shown unless ``quiet``, which
    keeps warnings and errors only and turns progress bars off. Idempotent: a second call
    replaces the handler of the first (so lines are never doubled); the ``tdsa`` logger then
    no longer propagates to the root logger.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            logger.removeHandler(handler)
    handler = _Handler(sys.stderr if stream is None else stream)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(_Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def is_quiet() -> bool:
    """True when :func:`configure_logging` was last called with ``quiet=True``."""
    logger = logging.getLogger(LOGGER_NAME)
    configured = any(getattr(h, _HANDLER_MARK, False) for h in logger.handlers)
    return configured and not logger.isEnabledFor(logging.INFO)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (a notebook, Colab, or papermill executing one)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_enabled(setting: bool | None) -> bool:
    """Whether to show progress bars for ``runtime.progress = setting``: never when false or
    when logging is quiet; always when true; when null, on a terminal (stderr is a tty) or in
    a Jupyter kernel.
    """
    if setting is False or is_quiet():
        return False
    if setting:
        return True
    return in_notebook() or sys.stderr.isatty()


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm bar: ``tqdm.auto`` (a widget) in a Jupyter kernel that has ``ipywidgets``, else
    the text bar (also in a kernel without ``ipywidgets``, where ``tqdm.auto`` would warn
    "IProgress not found"). The bar is kept (``leave``) in a notebook, erased on a terminal
    (the epoch line follows it), unless ``leave`` is given. Keyword arguments go to tqdm.
    """
    notebook = in_notebook()
    kwargs.setdefault("leave", notebook)
    if notebook and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(**kwargs)
