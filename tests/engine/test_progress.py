"""Progress reporting: the per-epoch log line, the ``tdsa`` logger, progress bars, and what a
training prints to a pipe and in a notebook."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tdsa import console
from tdsa.config import Config, apply_overrides
from tdsa.engine.trainer import _aux_terms, train
from tdsa.runfiles import format_epoch_line

from .conftest import REPO, tiny_config

ROW = {
    "epoch": 3, "lr": 0.05, "lr_head": 0.1, "aux_scale": 1.0, "train_total": 2.34567,
    "train_ce": 1.5, "train_dis_mid": 0.25, "train_div_mid": 0.0125, "train_dis_high": 0.5,
    "train_div_high": 0.0625, "train_top1": 41.25, "epoch_time": 12.34, "images_per_s": 811.6,
    "precision": "bf16+channels_last", "test_top1": 38.875, "test_top5": 80.0,
    "test_loss": 1.9, "test_images": 20, "eval_time": 1.26,
}
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  loss \d+\.\d{3} \(ce ")


@pytest.fixture
def restore_tdsa_logger():
    """Leave the ``tdsa`` logger as the test found it."""
    logger = logging.getLogger("tdsa")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_epoch_line_holds_every_field_formatted():
    line = format_epoch_line(ROW, 16)
    assert line == (
        "epoch 3/16  loss 2.346 (ce 1.500 dis_mid 0.250 div_mid 0.013 dis_high 0.500 "
        "div_high 0.062)  train 41.2%  test 38.9%  lr 5.00e-02 (head 1.00e-01)  "
        "12.3 s + 1.3 s test  812 img/s  bf16+channels_last"
    )


def test_epoch_line_shows_only_the_terms_asked_for_and_optional_fields_when_present():
    row = {k: v for k, v in ROW.items() if k not in ("precision", "test_top1", "eval_time")}
    row["lr_head"] = row["lr"]
    line = format_epoch_line(row, 3, terms=("div_high",))
    assert line == ("epoch 3/3  loss 2.346 (ce 1.500 div_high 0.062)  train 41.2%  "
                    "lr 5.00e-02  12.3 s  812 img/s")


def test_aux_terms_are_those_with_a_nonzero_weight():
    cfg = apply_overrides(Config(), ["loss.alpha_mid=0", "loss.beta_high=0"])
    assert _aux_terms(cfg) == ("div_mid", "dis_high")
    ce = apply_overrides(Config(), [f"loss.{k}=0" for k in
                                    ("alpha_mid", "beta_mid", "alpha_high", "beta_high")])
    assert _aux_terms(ce) == ()
    assert _aux_terms(Config()) == ("dis_mid", "div_mid", "dis_high", "div_high")


def test_configure_logging_is_idempotent_and_quiet_keeps_warnings(restore_tdsa_logger):
    first, second = io.StringIO(), io.StringIO()
    console.configure_logging(stream=first)
    console.configure_logging(stream=second)
    child = logging.getLogger("tdsa.models")
    child.info("loaded %d tensors", 7)
    assert first.getvalue() == ""
    assert second.getvalue() == "loaded 7 tensors\n"
    quiet = io.StringIO()
    console.configure_logging(quiet=True, stream=quiet)
    child.info("not shown")
    child.warning("shown")
    assert quiet.getvalue() == "warning: shown\n"
    assert console.is_quiet()
    marked = [h for h in restore_tdsa_logger.handlers if getattr(h, "_tdsa_handler", False)]
    assert len(marked) == 1


def test_a_handler_on_sys_stdout_follows_its_redirection(restore_tdsa_logger):
    import contextlib

    console.configure_logging(stream=sys.stdout)
    redirected = io.StringIO()
    with contextlib.redirect_stdout(redirected):
        logging.getLogger("tdsa.train").info("epoch 1/1")
    assert redirected.getvalue() == "epoch 1/1\n"


def test_progress_enabled_follows_setting_terminal_notebook_and_quiet(restore_tdsa_logger,
                                                                       monkeypatch):
    console.configure_logging(stream=io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    monkeypatch.setattr(console, "in_notebook", lambda: False)
    assert console.progress_enabled(None) is False
    assert console.progress_enabled(True) is True
    assert console.progress_enabled(False) is False
    monkeypatch.setattr(console, "in_notebook", lambda: True)
    assert console.progress_enabled(None) is True
    assert console.progress_enabled(False) is False
    console.configure_logging(quiet=True, stream=io.StringIO())
    assert console.progress_enabled(True) is False
    assert console.progress_enabled(None) is False


def test_in_notebook_is_false_outside_a_kernel():
    assert console.in_notebook() is False


def test_trainer_logs_one_line_per_epoch(tiny_root: Path, tmp_path: Path, restore_tdsa_logger):
    stream = io.StringIO()
    console.configure_logging(stream=stream)
    summary = train(tiny_config(tiny_root, "train.epochs=2", "loss.alpha_high=0"), tmp_path)
    lines = stream.getvalue().splitlines()
    epoch_lines = [line for line in lines if EPOCH_LINE.match(line)]
    assert len(epoch_lines) == 2
    for line, row in zip(epoch_lines, summary["metrics"], strict=True):
        assert line == format_epoch_line(row, 2, ("dis_mid", "div_mid", "div_high"))
        assert "dis_high" not in line


def _smoke_cli(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tdsa", *extra, "train", "--config", "configs/smoke.yaml",
         "--out", str(tmp_path / "run"), f"data.root={tmp_path / 'data'}", "runtime.threads=1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )


def test_smoke_training_to_a_pipe_prints_one_line_per_epoch(tmp_path: Path):
    proc = _smoke_cli(tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    epochs = [EPOCH_LINE.match(line).groups() for line in lines if EPOCH_LINE.match(line)]
    assert epochs == [("1", "2"), ("2", "2")]
    rows = [json.loads(r) for r in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    for line, row in zip([x for x in lines if EPOCH_LINE.match(x)], rows, strict=True):
        assert f"train {row['train_top1']:.1f}%  test {row['test_top1']:.1f}%" in line
    assert lines[-1] == f"run folder: {tmp_path / 'run'}"
    assert "\r" not in proc.stderr and "it/s" not in proc.stderr  # no bar on a pipe


def test_quiet_flag_drops_the_epoch_lines_but_not_the_result(tmp_path: Path):
    proc = _smoke_cli(tmp_path, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not any(EPOCH_LINE.match(line) for line in proc.stdout.splitlines())
    assert "final (epoch 2): test top-1" in proc.stdout


NOTEBOOK_CODE = """\
import sys
from tdsa.config import apply_overrides, load_config
from tdsa.engine import train
from tdsa.console import configure_logging

configure_logging(stream=sys.stdout)
cfg = apply_overrides(load_config(CONFIG), [f"data.root={DATA}", "runtime.threads=1"])
summary = train(cfg, OUT)
"""


def test_notebook_shows_epoch_lines_and_a_progress_bar(tmp_path: Path):
    nbformat = pytest.importorskip("nbformat")
    papermill = pytest.importorskip("papermill")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        f"CONFIG = {str(REPO / 'configs/smoke.yaml')!r}\nDATA = {str(tmp_path / 'data')!r}\n"
        f"OUT = {str(tmp_path / 'run')!r}")
    nb.cells = [params, nbformat.v4.new_code_cell(NOTEBOOK_CODE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    source, executed = tmp_path / "progress.ipynb", tmp_path / "progress.out.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(str(source), str(executed), kernel_name="python3",
                               cwd=str(tmp_path), progress_bar=False,
                               execution_timeout=600)
    outputs = nbformat.read(executed, as_version=4).cells[1].outputs
    stdout = "".join(o.get("text", "") for o in outputs
                     if o.output_type == "stream" and o.name == "stdout")
    epochs = [m.groups() for m in map(EPOCH_LINE.match, stdout.splitlines()) if m]
    assert epochs == [("1", "2"), ("2", "2")]
    everything = json.dumps([dict(o) for o in outputs])
    assert "IProgress" not in everything and "TqdmExperimentalWarning" not in everything
    bars = [o for o in outputs if o.output_type == "display_data"
            and "application/vnd.jupyter.widget-view+json" in o.data]
    if bars:  # ipywidgets installed: tqdm.auto's widget bar, kept after each epoch
        assert [b.data["text/plain"].split(":")[0] for b in bars] == ["epoch 1/2", "epoch 2/2"]
        # the stored text is the bar as first displayed; 96 images / batch 16 = 6 steps
        assert all(re.search(r"\| 0/6 \[", b.data["text/plain"]) for b in bars)
    else:  # the text bar on stderr
        stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
        assert "epoch 1/2: 100%" in stderr and "epoch 2/2: 100%" in stderr


def test_progress_bar_kind_and_leave(monkeypatch):
    from tqdm.std import tqdm as text_tqdm

    bar = console.progress_bar(total=3, disable=True)
    assert type(bar) is text_tqdm and bar.leave is False  # terminal: erased, the line follows
    monkeypatch.setattr(console, "in_notebook", lambda: True)
    real_find_spec = console.importlib.util.find_spec
    monkeypatch.setattr(console.importlib.util, "find_spec",
                        lambda name: None if name == "ipywidgets" else real_find_spec(name))
    bar = console.progress_bar(total=3, disable=True)
    assert type(bar) is text_tqdm and bar.leave is True  # kernel without ipywidgets
    # (a kernel with ipywidgets gets tqdm.auto's widget: the notebook test above)


def test_quiet_is_a_global_and_a_per_command_flag():
    from tdsa.cli import build_parser

    for argv, quiet in ((["train", "--out", "x"], False), (["-q", "train", "--out", "x"], True),
                        (["train", "--out", "x", "--quiet"], True),
                        (["data", "check", "--quiet", "--dataset", "cub", "--root", "r"], True)):
        assert build_parser(argv).parse_args(argv).quiet is quiet, argv
