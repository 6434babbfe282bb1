"""The command line: dispatch, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tdsa import cli
from tdsa.errors import ConfigError, DataError


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize(("error", "code"), [(ConfigError("bad key 'optim.lrr'"), 2),
                                             (DataError("missing images.txt"), 1)])
def test_user_errors_become_one_line_and_exit_code(monkeypatch, capsys, error, code):
    import tdsa.commands.bench

    def boom(args):
        raise error

    monkeypatch.setattr(tdsa.commands.bench, "run", boom)
    assert cli.main(["bench", "--quick"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tdsa bench: error: {error}"]


def test_unknown_command_exits_2():
    proc = subprocess.run([sys.executable, "-m", "tdsa", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr and "Traceback" not in proc.stderr
