"""The Makefile's set-up: the PyTorch wheel index reaches pip's command line only when asked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _setup_commands(*variables: str) -> list[str]:
    """The commands ``make setup`` would run (``-n``: printed, not run; ``-B``: as on a fresh
    machine), one per line."""
    if shutil.which("make") is None:
        pytest.skip("needs GNU make")
    out = subprocess.run(["make", "-n", "-B", "setup", *variables], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if "pip install" in line]


def test_torch_index_installs_torch_from_it_before_the_package() -> None:
    url = "https://example.invalid/whl/cpu"
    lines = _setup_commands(f"TORCH_INDEX={url}")
    torch_lines = [i for i, line in enumerate(lines) if f"--index-url {url}" in line]
    package = next(i for i, line in enumerate(lines) if "-e " in line)
    assert len(torch_lines) == 1 and torch_lines[0] < package
    assert "torch torchvision" in lines[torch_lines[0]]
    assert url not in lines[package]


def test_default_setup_takes_torch_with_the_package_from_the_default_index() -> None:
    lines = _setup_commands()
    assert not any("--index-url" in line for line in lines)
    assert any("-e '.[dev,book,gradcam]'" in line for line in lines)
