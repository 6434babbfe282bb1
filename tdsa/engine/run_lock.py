"""One training process per run folder.

While a run trains, its process holds an advisory lock on ``<run folder>/.lock``
(``fcntl.flock``), so a second process that would write the same checkpoints stops with a clear
error instead (two lanes of a sweep given the same runs share them out this way,
:func:`tdsa.experiments.grid.run_one`). The kernel drops the lock when the process ends, however
it ends, so no stale lock outlives a killed run; the file is removed when the run lets go of it,
and so are the folders it created if the run wrote nothing into them.
A process that holds the lock may take it again (a sweep holds it over training and scoring,
and training takes it too). Where ``fcntl`` does not exist (Windows) runs are not locked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tdsa.engine.checkpoint import check_output_dir
from tdsa.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunBusyError", "run_folder_lock"]

LOCK_NAME = ".lock"
"""The lock file inside a run folder while it trains (it holds the training process's pid)."""

_HELD: set[Path] = set()
"""The run folders whose lock this process holds."""


class RunBusyError(ConfigError):
    """Another live process is training the same run folder."""


@contextmanager
def run_folder_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the training lock of ``run_dir`` (created if missing; ConfigError where it cannot
    be) for the ``with`` block; :class:`RunBusyError` naming the holder's pid when another
    process holds it."""
    run_dir = Path(run_dir)
    key = run_dir.absolute()
    if fcntl is None or key in _HELD:  # Windows; or this process holds it already
        yield
        return
    check_output_dir(run_dir, "--out")
    created = [d for d in (key, *key.parents) if not d.exists()]  # deepest first
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunBusyError(f"{run_dir}: another process (pid {holder}) is training this run; "
                           "wait for it to finish or stop it") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _HELD.add(key)
        yield
    finally:
        _HELD.discard(key)
        path.unlink(missing_ok=True)
        handle.close()
        for folder in created:  # a run that wrote nothing (e.g. a config error) leaves no folder
            with suppress(OSError):  # not empty, or gone: another process uses it
                folder.rmdir()
