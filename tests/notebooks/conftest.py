"""The built book for the notebook tests.

``make test-book`` runs ``book/_tools/build.py --profile smoke`` before ``pytest
tests/notebooks``; when the staged book is missing or older than its sources, the
``built_book`` fixture runs that build itself, so ``pytest tests/notebooks`` also works alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from book_helpers import BOOK, BUILD, REPO, STAGED


def _stale() -> bool:
    stamp = STAGED / ".built"
    if not stamp.exists():
        return True
    newest = max(
        p.stat().st_mtime
        for p in [REPO / "_toc.yml", REPO / "_config.yml", *BOOK.rglob("*")]
        if p.is_file()
    )
    return newest > stamp.stat().st_mtime


@pytest.fixture(scope="session")
def built_book() -> Path:
    """The staged, executed book and its HTML; built in the smoke profile if stale."""
    if _stale():
        result = subprocess.run(
            [sys.executable, str(BOOK / "_tools" / "build.py"), "--profile", "smoke"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, (
            "book/_tools/build.py --profile smoke failed:\n" + result.stdout + result.stderr
        )
    return BUILD
