"""A dataset's repr names its root without the machine's absolute path."""

from __future__ import annotations

from pathlib import Path

from tdsa.data import build_dataset
from tdsa.data.synthetic import generate

SYNTH = {"num_classes": 3, "train_per_class": 2, "test_per_class": 1, "image_size": 48}


def test_repr_is_relative_inside_the_working_folder_and_elided_outside(
        tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "work" / "data" / "birds"
    generate(root, **SYNTH)
    monkeypatch.chdir(tmp_path / "work")
    inside = repr(build_dataset("synthetic", root, "train"))
    assert inside == "SyntheticBirds(root='data/birds', split='train', images=6, classes=3)"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    outside = repr(build_dataset("synthetic", root, "test"))
    assert outside == "SyntheticBirds(root='.../birds', split='test', images=3, classes=3)"
    assert str(tmp_path) not in inside + outside
