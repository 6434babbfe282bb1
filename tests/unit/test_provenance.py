"""tdsa.provenance.code_version: the commit a run or a results page was made from."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _version_in(root: Path) -> str:
    """code_version() as a fresh process importing the package from ``root`` reports it."""
    done = subprocess.run(
        [sys.executable, "-c", "from tdsa.provenance import code_version; print(code_version())"],
        cwd=root, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}, capture_output=True,
        text=True, check=True)
    return done.stdout.strip()


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A one-commit git repository holding a copy of the package."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    root = tmp_path / "repo"
    shutil.copytree(REPO / "tdsa", root / "tdsa", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "configs").mkdir()
    (root / "configs" / "a.yaml").write_text("x: 1\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'tdsa'\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    return root


def test_a_clean_checkout_is_named_by_its_commit(checkout: Path) -> None:
    sha = _git(checkout, "rev-parse", "--short=12", "HEAD")
    assert _version_in(checkout) == f"commit {sha}"


def test_a_changed_package_or_config_says_so_and_other_files_do_not(checkout: Path) -> None:
    sha = _git(checkout, "rev-parse", "--short=12", "HEAD")
    (checkout / "notes.txt").write_text("untracked, not code\n")
    assert _version_in(checkout) == f"commit {sha}"
    (checkout / "configs" / "a.yaml").write_text("x: 2\n")
    assert _version_in(checkout) == f"commit {sha} + uncommitted changes to tdsa/ or configs/"


def test_a_copy_outside_git_is_named_by_the_package_version(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    shutil.copytree(REPO / "tdsa", root / "tdsa", ignore=shutil.ignore_patterns("__pycache__"))
    from tdsa import __version__

    assert _version_in(root) == f"tdsa {__version__} (not a git checkout)"


def _kind_with(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from tdsa.provenance import cpu_kind; print(cpu_kind())"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env}, capture_output=True,
        text=True, check=True)
    return done.stdout.strip()


def test_cpu_kind_names_the_cpu_and_how_it_computes_bf16() -> None:
    from tdsa.hardware import cpu_hardware_bf16, cpu_has_native_bf16
    from tdsa.provenance import cpu_kind, cpu_name

    kind = cpu_kind()
    assert kind.startswith(cpu_name() + " (")
    if cpu_has_native_bf16():
        assert kind.endswith("(native bf16)")
    elif not cpu_hardware_bf16():
        assert kind.endswith("(no native bf16: fp32)")
    capped = _kind_with({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"})
    if cpu_hardware_bf16():  # a CPU with the instructions, run on its AVX2 kernels
        assert capped.endswith("(bf16 in hardware, capped to AVX2 kernels by "
                               "ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA: fp32)")
    else:
        assert capped.endswith("(no native bf16: fp32)")


def test_checkout_relative_keeps_machine_folders_out_of_a_recorded_path(tmp_path: Path) -> None:
    from tdsa.provenance import checkout_relative

    main, worktree = tmp_path / "main", tmp_path / "sweep-abc"
    (main / ".git").mkdir(parents=True)
    worktree.mkdir()
    (worktree / ".git").write_text("gitdir: ../main/.git/worktrees/sweep-abc\n")  # a worktree
    assert checkout_relative(str(main / "results" / "tuning_joint")) == "results/tuning_joint"
    assert checkout_relative(str(worktree / "runs" / "ablate" / "g")) == "runs/ablate/g"
    assert checkout_relative(str(tmp_path / "elsewhere" / "x")) == str(tmp_path / "elsewhere" /
                                                                      "x"), "no checkout"
    assert checkout_relative("runs/ablate/g") == "runs/ablate/g"
    assert checkout_relative("--only") == "--only"
