"""``tdsa data synth|check`` through ``tdsa.cli.main`` and through ``python -m tdsa``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tdsa.cli import main
from tdsa.commands.data import OFFICIAL_SIZES

REPO = Path(__file__).resolve().parents[2]


def test_check_reports_classes_and_split_sizes(cub_root, capsys, monkeypatch):
    root, _ = cub_root
    monkeypatch.setitem(OFFICIAL_SIZES, "cub", {"train": 6, "test": 3})
    assert main(["data", "check", "--dataset", "cub", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"cub at {root}: 3 classes (001.Bird_1, 002.Bird_2, 003.Bird_3)" in out
    assert "train: 6 images (2-2 per class, 3 classes present)" in out
    assert "test: 3 images (1-1 per class, 3 classes present)" in out
    assert "all images readable" in out
    assert "SHORT" not in out and "differ" not in out


def test_check_says_which_split_is_short_of_the_official_size(cub_root, capsys):
    root, _ = cub_root  # 6 / 3 images: a CUB root far from complete must not pass
    assert OFFICIAL_SIZES["cub"] == {"train": 5994, "test": 5794}
    assert main(["data", "check", "--dataset", "cub", "--root", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "    SHORT: 5,994 images expected (official), 5,988 fewer (an incomplete download " \
        "or extraction?)" in out
    assert "    SHORT: 5,794 images expected (official), 5,791 fewer (an incomplete download " \
        "or extraction?)" in out
    assert out[-1] == ("split sizes differ from the official ones: train (6 of 5,994), "
                       "test (3 of 5,794); pass --any-size to accept a deliberate subset")
    assert main(["data", "check", "--dataset", "cub", "--root", str(root), "--any-size"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "warning: split sizes differ from the official ones: train (6 of 5,994)")


def test_check_one_short_split_and_a_too_large_one(cub_root, capsys, monkeypatch):
    root, _ = cub_root
    monkeypatch.setitem(OFFICIAL_SIZES, "cub", {"train": 7, "test": 2})
    assert main(["data", "check", "--dataset", "cub", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "  train: 6 images (2-2 per class, 3 classes present)\n    SHORT: 7 images " \
        "expected (official), 1 fewer" in out
    assert "  test: 3 images (1-1 per class, 3 classes present)\n    TOO LARGE: 2 images " \
        "expected (official), 1 more\n" in out
    assert "train (6 of 7), test (3 of 2)" in out


def test_check_without_official_sizes_passes_with_a_note(imagefolder_root, capsys):
    root, _ = imagefolder_root
    assert main(["data", "check", "--dataset", "imagefolder", "--root", str(root)]) == 0
    assert "(imagefolder has no official split sizes to compare with)" in capsys.readouterr().out


def test_official_sizes_are_consistent_with_the_releases():
    """The table against facts stated elsewhere: the papers' train/test totals and the
    official halves adding up to the field's train split."""
    assert {k: v["train"] + v["test"] for k, v in OFFICIAL_SIZES.items()} == {
        "cub": 11788, "nabirds": 48562, "aircraft": 10000, "cars": 16185, "flowers102": 8189}
    for name in ("aircraft", "flowers102"):
        sizes = OFFICIAL_SIZES[name]
        assert sizes["official_train"] + sizes["val"] == sizes["train"]


def test_check_lists_missing_and_unreadable_files_and_exits_1(cub_root, capsys):
    root, expected = cub_root
    truncated = expected["test"][0]["path"]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) - 60])
    expected["train"][2]["path"].unlink()
    assert main(["data", "check", "--dataset", "cub", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"image file not found: {expected['train'][2]['path']}" in out
    assert f"corrupt or truncated image: {truncated}" in out
    assert "2 missing or unreadable image(s)" in out


def test_check_one_split(cub_root, capsys):
    root, _ = cub_root
    assert main(["data", "check", "--dataset", "cub", "--root", str(root),
                 "--split", "test", "--any-size"]) == 0
    out = capsys.readouterr().out
    assert "test: 3 images" in out and "train:" not in out


def test_check_wrong_root_is_one_line_without_traceback(tmp_path, capsys):
    code = main(["data", "check", "--dataset", "aircraft", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("tdsa data: error: aircraft: no variants.txt")
    assert "fgvc-aircraft-2013b/data/{variants.txt" in err


def test_check_through_python_m_tdsa(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    wrong = subprocess.run([sys.executable, "-m", "tdsa", "data", "check", "--dataset", "cub",
                            "--root", str(tmp_path / "missing")],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert wrong.returncode == 1
    assert "Traceback" not in wrong.stderr and wrong.stderr.count("\n") == 1
    assert f"cub: dataset root {tmp_path / 'missing'} does not exist" in wrong.stderr


@pytest.mark.skipif(importlib.util.find_spec("tdsa.data.synthetic") is None,
                    reason="tdsa.data.synthetic not written yet")
def test_synth_generates_and_reports_counts(tmp_path, capsys):
    root = tmp_path / "synthetic"
    args = ["data", "synth", "--root", str(root), "--num-classes", "3", "--train-per-class", "2",
            "--test-per-class", "1", "--image-size", "48", "--seed", "4"]
    assert main(args) == 0
    assert "3 classes, 6 train / 3 test images" in capsys.readouterr().out
    assert main(["data", "check", "--dataset", "synthetic", "--root", str(root)]) == 0
    assert "SHORT" not in capsys.readouterr().out  # the sizes its metadata states
    images = root / "images.txt"
    images.write_text("".join(images.read_text().splitlines(keepends=True)[:-2]))
    assert main(["data", "check", "--dataset", "synthetic", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "  train: 5 images (1-2 per class, 3 classes present)\n    SHORT: 6 images expected " \
        "(tdsa_synthetic.json), 1 fewer" in out
    assert "split sizes differ from the tdsa_synthetic.json ones: train (5 of 6), test (2 of 3)" \
        in out
    assert main([*args[:-1], "5"]) != 0  # other args on an existing root, without --overwrite
    assert "tdsa data: error:" in capsys.readouterr().err
    assert main([*args[:-1], "5", "--overwrite"]) == 0
