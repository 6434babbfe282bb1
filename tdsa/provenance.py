"""Which code made a result: :func:`code_version`, recorded in every run's ``summary.json``
and named in the header of every results file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tdsa import __version__

__all__ = ["code_version"]

_CHECKOUT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(_CHECKOUT), *args], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> str:
    """The code this process runs: ``"commit <sha>"`` in a clean git checkout of the
    repository, ``"commit <sha> + uncommitted changes to tdsa/ or configs/"`` in a modified
    one, else ``"tdsa <version> (not a git checkout)"`` (an installed wheel)."""
    if not (_CHECKOUT / "pyproject.toml").is_file() or _git("rev-parse", "--show-toplevel") \
            != str(_CHECKOUT):
        return f"tdsa {__version__} (not a git checkout)"
    sha = _git("rev-parse", "--short=12", "HEAD")
    if sha is None:
        return f"tdsa {__version__} (not a git checkout)"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "tdsa", "configs")
    return f"commit {sha}" + (" + uncommitted changes to tdsa/ or configs/" if dirty else "")
