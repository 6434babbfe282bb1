"""One training process per run folder: the lock, the trainer that takes it, and two sweep
lanes that share runs through it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tdsa.cli import main
from tdsa.config import dump_config
from tdsa.engine import train
from tdsa.engine.run_lock import LOCK_NAME, RunBusyError, run_folder_lock
from tdsa.errors import ConfigError
from tdsa.experiments.grid import load_grid, run_grid, run_one

from .conftest import tiny_config

HOLD = """
import sys, time
from tdsa.engine.run_lock import run_folder_lock
with run_folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path: Path):
    """Start a process that holds the lock of ``run`` until it is killed."""
    procs = []

    def start(run: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_process_is_refused_and_a_killed_holder_leaves_no_stale_lock(
        tmp_path: Path, holder) -> None:
    run = tmp_path / "run"
    proc = holder(run)
    busy = rf"run: another process \(pid {proc.pid}\) is training this run; wait for it to finish"
    with pytest.raises(RunBusyError, match=busy) as info, run_folder_lock(run):
        pass
    assert info.value.exit_code == 2 and isinstance(info.value, ConfigError)
    proc.kill()
    proc.wait()
    with run_folder_lock(run):
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
        with run_folder_lock(run):  # this process holds it already: taken again
            pass
        assert (run / LOCK_NAME).is_file(), "the inner release keeps the outer lock"
    assert not (run / LOCK_NAME).exists(), "removed when the run lets go of it"


def test_a_path_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ConfigError, match="is an existing file, not a folder"), \
            run_folder_lock(path):
        pass


def test_train_stops_before_writing_when_another_process_trains_the_folder(
        tiny_root: Path, tmp_path: Path, holder, capsys) -> None:
    run = tmp_path / "busy"
    holder(run)
    with pytest.raises(RunBusyError):
        train(tiny_config(tiny_root, "train.epochs=1"), run)
    assert [p.name for p in run.iterdir()] == [LOCK_NAME], "nothing of the run was written"
    config = tmp_path / "c.yaml"
    dump_config(tiny_config(tiny_root, "train.epochs=1"), config)
    assert main(["train", "--config", str(config), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is training this run" in err[0], "one line, exit 2"


def test_two_lanes_given_the_same_runs_share_them(tiny_root: Path, tmp_path: Path,
                                                  holder) -> None:
    base = tmp_path / "base.yaml"
    dump_config(tiny_config(tiny_root, "train.epochs=1"), base)
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"base": str(base), "seeds": [0, 1], "variants": {
        "a": {"overrides": []}}}), encoding="utf-8")
    grid, out = load_grid(path), tmp_path / "runs"
    holder(out / "a" / "seed0")  # another lane is training seed 0
    assert run_one(grid, "a", 0, out, gradcam=False) is None, "left to the lane that holds it"
    assert not (out / "a" / "seed0" / "failed.json").exists(), "a busy run is not a failure"
    log = tmp_path / "log.txt"
    with log.open("w") as fh:
        results = run_grid(grid, out, gradcam=False, log=fh)
    assert [(r.variant, r.seed, r.status) for r in results] == [("a", 1, "ok")]
    assert "[ablate] a seed 0: another process is training it, skipped" in log.read_text()
    assert (out / "a" / "seed1" / "summary.json").is_file()
    assert not (out / "a" / "seed1" / LOCK_NAME).exists()
