"""Bad input at start-up: a run folder is one run, outputs and configs are checked before
anything is built, data errors exit 1 with the file and line, Ctrl-C exits 130.

Every case asserts the exit code and the message, and that nothing was left half-written.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tdsa.cli import main
from tdsa.config import Config, apply_overrides, dump_config, load_config
from tdsa.engine import checkpoint as ck
from tdsa.engine.trainer import train
from tdsa.errors import CheckpointError, ConfigError
from tdsa.losses import TDSALoss

from .conftest import REPO, tiny_config


def _tree_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def relative_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished 1-epoch run started in ``work/`` with a relative ``data.root`` and a
    relative ``--out``; its config file is ``work/run.yaml``."""
    work = tmp_path_factory.mktemp("rel") / "work"
    shutil.copytree(tiny_root, work / "data" / "tiny")
    cfg = tiny_config(Path("data/tiny"), "train.epochs=1")
    dump_config(cfg, work / "run.yaml")
    old = Path.cwd()
    os.chdir(work)
    try:
        train(cfg, "runs/one")
    finally:
        os.chdir(old)
    return {"work": work, "run": work / "runs" / "one", "config": work / "run.yaml"}


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_different_config_is_refused_and_the_folder_is_untouched(
    relative_run: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(relative_run["work"])
    before = _tree_hash(relative_run["run"])
    code, out, err = _cli(["train", "--config", "run.yaml", "--out", "runs/one",
                           "train.epochs=2", "optim.lr=0.5", "loss.alpha_mid=0",
                           "loss.beta_mid=0"], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("tdsa train: error: runs/one/last.pt belongs to a run with "
                               "another config; nothing was changed")
    assert lines[1:] == [
        "  loss.alpha_mid: run has 0.15, command gives 0.0",
        "  loss.beta_mid: run has 1.5, command gives 0.0",
        "  optim.lr: run has 0.05, command gives 0.5",
    ]
    assert "Traceback" not in err
    assert _tree_hash(relative_run["run"]) == before
    code, _, err = _cli(["train", "--config", "run.yaml", "--out", "runs/one",
                         "train.epochs=2", "optim.name=adamw"], capsys)
    assert code == 2
    assert "  optim.name: run has 'sgd', command gives 'adamw'" in err.splitlines()
    code, _, err = _cli(["train", "--out", "runs/one", "train.epochs=2", "optim.lr=0.5"],
                        capsys)
    assert code == 2 and "  optim.lr: run has 0.05, command gives 0.5" in err.splitlines()
    assert _tree_hash(relative_run["run"]) == before


def test_a_finished_run_rerun_says_so_and_writes_nothing(
    relative_run: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(relative_run["work"])
    before = _tree_hash(relative_run["run"])
    code, out, err = _cli(["train", "--config", "run.yaml", "--out", "runs/one",
                           "runtime.threads=2", "data.workers=0"], capsys)
    assert code == 0 and err == ""
    assert len(out.strip().splitlines()) == 1
    assert out.startswith("runs/one is already complete (1/1 epochs; final test top-1 ")
    assert out.strip().endswith("nothing to do (raise train.epochs to train further)")
    code, _, err = _cli(["train", "--config", "run.yaml", "--out", "runs/one", "optim.lr=0.1"],
                        capsys)
    assert code == 2 and "  optim.lr: run has 0.05, command gives 0.1" in err.splitlines()
    code, _, err = _cli(["train", "--config", "run.yaml", "--out", "runs/one",
                         "train.epochs=1", "runtime.stop_after_epoch=1"], capsys)
    assert code == 0
    assert _tree_hash(relative_run["run"]) == before


def test_config_differences_lists_what_may_change_in_one_place(tmp_path: Path) -> None:
    stored = apply_overrides(Config(), ["train.epochs=4", "data.root=data/x"])
    same = apply_overrides(Config(), [
        "train.epochs=9", f"data.root={os.path.abspath('data/x')}", "runtime.threads=3",
        "runtime.progress=true", "runtime.device=cpu", "runtime.stop_after_epoch=2",
        "data.workers=7", "runtime.tensorboard=true"])
    assert ck.config_differences(stored, same) == []
    assert set(ck.RESUME_MAY_CHANGE) == {
        "train.epochs", "runtime.stop_after_epoch", "runtime.threads", "runtime.progress",
        "runtime.device", "runtime.tensorboard", "data.workers"}
    other = apply_overrides(Config(), ["train.epochs=3", "data.root=data/y", "train.amp=bf16",
                                       "train.channels_last=true", "model.xi=[6, 3]"])
    assert ck.config_differences(stored, other) == [
        "data.root: run has 'data/x', command gives 'data/y'",
        "model.xi: run has [9, 3], command gives [6, 3]",
        "train.epochs: run has 4, command gives 3 (train.epochs can only grow on resume)",
        "train.amp: run has 'auto', command gives 'bf16'",
        "train.channels_last: run has 'auto', command gives True",
    ]


def test_more_epochs_and_run_time_switches_resume(
    tiny_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train(tiny_config(tiny_root, "train.epochs=1"), out)
    summary = train(tiny_config(tiny_root, "train.epochs=2", "runtime.threads=2"), out)
    assert summary["resumed_from"] == str(out / "last.pt")
    assert summary["epochs_completed"] == 2
    stored = torch.load(out / "last.pt", weights_only=True)["config"]
    assert stored["train"]["epochs"] == 2 and stored["runtime"]["threads"] == 2


def test_run_folder_stores_the_absolute_root_and_eval_runs_from_anywhere(
    relative_run: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    work, run = relative_run["work"], relative_run["run"]
    absolute = str(work / "data" / "tiny")
    stored = torch.load(run / "best.pt", weights_only=True)["config"]
    assert stored["data"]["root"] == absolute
    text = (run / "config.yaml").read_text()
    assert text.startswith(f"# data.root was given as 'data/tiny' (relative to {work})\n")
    assert f"root: {absolute}\n" in text
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = _cli(["eval", "--checkpoint", str(run / "best.pt"), "--out", "ev"], capsys)
    assert code == 0 and err == "" and "synthetic test: top-1" in out
    # The same run after its data moved away: the stored root is gone.
    moved = tmp_path / "moved"
    shutil.copytree(work / "data" / "tiny", moved)
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["config"]["data"]["root"] = str(tmp_path / "gone")
    torch.save(ckpt, tmp_path / "best.pt")
    code, out, err = _cli(["eval", "--checkpoint", str(tmp_path / "best.pt")], capsys)
    assert code == 1 and out == ""
    assert err.strip() == (
        f"tdsa eval: error: the run's dataset root {tmp_path / 'gone'} (stored in "
        f"{tmp_path / 'best.pt'}) does not exist here; pass --root PATH (the synthetic "
        "dataset's folder)")
    code, out, err = _cli(["eval", "--checkpoint", str(tmp_path / "best.pt"), "--root",
                           str(moved)], capsys)
    assert code == 0 and "synthetic test: top-1" in out


def test_out_that_is_a_file_or_not_writable_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # data.root does not exist: had the data been read first, this would be a data error.
    cfg = tiny_config(tmp_path / "no-such-data")
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match=r"^--out .*afile is an existing file, not a folder"):
        train(cfg, afile)
    with pytest.raises(ConfigError, match=r"--out .*afile/run cannot be created: .*afile is a "
                                          r"file, not a folder"):
        train(cfg, afile / "run")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked
                        else real_access(p, mode))
    with pytest.raises(ConfigError, match=rf"--out {locked}/run: its parent {locked} is not "
                                          r"writable: choose another folder"):
        train(cfg, locked / "run")
    assert list(locked.iterdir()) == []
    code, out, err = _cli(["eval", "--checkpoint", str(tmp_path / "none.pt"), "--out",
                           str(locked / "ev")], capsys)
    assert code == 2 and out == ""
    assert err.strip() == (f"tdsa eval: error: --out {locked}/ev: its parent {locked} is not "
                           "writable: choose another folder")
    code, _, err = _cli(["eval", "--checkpoint", str(tmp_path / "none.pt"), "--out",
                         str(afile)], capsys)
    assert code == 2 and "is an existing file, not a folder" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    with pytest.raises(ConfigError, match="is not writable"):
        ck.check_output_dir(locked / "run", "--out")


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["model.xi=[4, 3]"], r"model\.xi=\[4, 3\] is invalid with loss\.top_down=true: xi_mid "
                              r"must be a multiple of xi_high"),
        (["loss.keep_mid=100"], r"loss\.keep_mid=100 is invalid: expected an integer in "
                                r"\[1, 9\] \(model\.xi=\[9, 3\]\) or null"),
        (["loss.keep_high=0"], r"loss\.keep_high=0 is invalid: expected an integer in \[1, 3\]"),
        (["model.xi=[99999, 3]"], r"model\.xi\[0\] \(xi_mid\)=99999 is invalid: expected at "
                                  r"most 65536 channels per stage"),
        (["model.num_classes=200", "model.xi=[600, 3]"],
         r"model\.num_classes x model\.xi\[0\] = 200 x 600 = 120000 mid-level channels; at "
         r"most 65536 channels per stage"),
        (["optim.lr=.inf"], r"optim\.lr must be a finite number in \(0, inf\), got inf"),
        (["optim.head_lr=.nan"], r"optim\.head_lr must be a finite number in \(0, inf\), got nan"),
        (["optim.weight_decay=-1"], r"optim\.weight_decay=-1\.0 is outside the allowed range in "
                                    r"\[0, inf\)"),
        (["optim.momentum=1.5"], r"optim\.momentum=1\.5 is outside the allowed range in "
                                 r"\[0, 1\)"),
        (["optim.betas=[0.9, 1.0]"], r"optim\.betas=\[0\.9, 1\.0\] is invalid"),
        (["train.batch_size=10", "train.accum_steps=3"],
         r"train\.batch_size=10 is invalid: expected a multiple of train\.accum_steps=3"),
        (["train.ema_decay=1.0"], r"train\.ema_decay=1\.0 is outside the allowed range in "
                                  r"\[0, 1\)"),
        (["schedule.milestones=[5, 3]"], r"schedule\.milestones=\[5, 3\] is invalid"),
        (["loss.alpha_mid=.inf"], r"loss\.alpha_mid must be a finite number in \[0, inf\), "
                                  r"got inf"),
        (["train.eval_batch_size=0"], r"train\.eval_batch_size=0 is outside the allowed range "
                                      r">= 1"),
    ],
)
def test_cross_field_constraints_are_checked_when_the_config_is_made(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(Config(), overrides)


def test_config_file_constraints_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: {xi: [4, 3]}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: model\.xi=\[4, 3\] is invalid"):
        load_config(path)
    assert apply_overrides(Config(), ["model.xi=[4, 3]", "loss.top_down=false"]).model.xi == [4, 3]


def test_model_and_class_count_checks_come_before_the_data(
    tiny_root: Path, tmp_path: Path
) -> None:
    missing = tiny_config(tmp_path / "no-such-data", "data.image_size=16")
    with pytest.raises(ConfigError, match=r"model \(name='tdsa_vgg16'.*data\.image_size=16\): "
                                          r"input_size 16x16 is too small for the flatten head"):
        train(missing, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"unknown model 'tdsa_vgg99'"):
        train(tiny_config(tmp_path / "no-such-data", "model.name=tdsa_vgg99"), tmp_path / "r")
    big = tiny_config(tiny_root, "model.xi=[20000, 2]")
    with pytest.raises(ConfigError, match=r"4 classes\): model\.num_classes x model\.xi\[0\] = "
                                          r"4 x 20000 = 80000 mid-level channels"):
        train(big, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"data\.dataset='cubb' is unknown; valid datasets"):
        train(tiny_config(tiny_root, "data.dataset=cubb"), tmp_path / "run")


def test_data_errors_in_train_exit_1_naming_file_and_line(
    tiny_root: Path, tmp_path: Path, capsys
) -> None:
    root = tmp_path / "cub"
    shutil.copytree(tiny_root, root)
    split = root / "train_test_split.txt"
    lines = split.read_text().splitlines()
    lines[3] = "4 x"
    split.write_text("\n".join(lines) + "\n")
    config = tmp_path / "c.yaml"
    dump_config(tiny_config(root, "data.dataset=cub"), config)
    code, out, err = _cli(["train", "--config", str(config), "--out", str(tmp_path / "run")],
                          capsys)
    assert code == 1 and out == ""
    assert err.strip() == (
        f"tdsa train: error: cub: {split} line 4: expected field 2 to be one of '0', '1', "
        "got 'x' (in '4 x')")
    assert not (tmp_path / "run").exists()
    code, _, err = _cli(["train", "--config", str(config), "--out", str(tmp_path / "run"),
                         "data.options={crop: true}"], capsys)
    assert code == 2 and "unexpected keyword argument 'crop'" in err


def test_a_text_file_as_pretrained_or_checkpoint_is_one_line(
    tiny_root: Path, tmp_path: Path, capsys
) -> None:
    text = tmp_path / "text.pt"
    text.write_text("hello\n")
    config = tmp_path / "c.yaml"
    dump_config(tiny_config(tiny_root, f"model.pretrained={text}"), config)
    code, out, err = _cli(["train", "--config", str(config), "--out", str(tmp_path / "run")],
                          capsys)
    assert code == 1 and out == ""
    assert err.strip() == (
        f"tdsa train: error: model.pretrained: cannot read {text}: not a torch checkpoint or "
        "state dict (a torch.save file starts with a zip or pickle header; this one starts "
        "with b'hello\\n')")
    code, _, err = _cli(["eval", "--checkpoint", str(text)], capsys)
    assert code == 1
    assert err.strip() == (f"tdsa eval: error: cannot read checkpoint {text}: not a torch "
                           "checkpoint or state dict (a torch.save file starts with a zip or "
                           "pickle header; this one starts with b'hello\\n')")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pt: an empty file \(0 bytes\)"):
        ck.load_checkpoint(tmp_path / "empty.pt")


def test_ctrl_c_during_start_up_is_one_line_and_130(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def interrupted(name: str):
        raise KeyboardInterrupt

    monkeypatch.setattr("tdsa.cli.importlib.import_module", interrupted)
    assert main(["train", "--out", "x"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "tdsa train: interrupted\n" and captured.out == ""


def test_ctrl_c_inside_an_import_waits_for_the_import_then_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    real_import = importlib.import_module
    finished: list[str] = []

    def import_hit_by_ctrl_c(name: str):
        os.kill(os.getpid(), signal.SIGINT)  # delivered now, in the middle of the import
        module = real_import(name)
        finished.append(name)
        return module

    monkeypatch.setattr("tdsa.cli.importlib.import_module", import_hit_by_ctrl_c)
    # Ctrl-C as in a terminal: a background job (CI under `cmd &`) starts with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(["train", "--out", "x"]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert finished == ["torch", "tdsa.commands.train"]  # no import was cut short
    assert capsys.readouterr().err == "tdsa train: interrupted\n"


def test_ctrl_c_of_a_real_process_during_imports(tiny_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    dump_config(tiny_config(tiny_root), config)
    # SIGINT as in a terminal: a background job (CI under `cmd &`) inherits SIGINT ignored
    proc = subprocess.Popen([sys.executable, "-m", "tdsa", "train", "--config", str(config),
                             "--out", str(tmp_path / "run")], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 1


def test_masks_must_be_a_dict() -> None:
    loss = TDSALoss(2, xi_mid=2, xi_high=1)
    args = (torch.zeros(1, 2), torch.rand(1, 4, 4, 4), torch.rand(1, 2, 2, 2), torch.tensor([0]))
    with pytest.raises(TypeError, match=r"masks must be None or a dict with keys 'mid' and/or "
                                        r"'high' \(one 0/1 channel mask each\), got a tuple"):
        loss(*args, masks=(torch.ones(4), torch.ones(2)))


