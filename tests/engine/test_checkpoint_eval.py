"""Evaluating a checkpoint (tdsa.engine.checkpoint_eval): the report, the stored accuracy, the
files, and the errors that name what does not fit."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tdsa.data.synthetic import generate
from tdsa.engine import checkpoint as ck
from tdsa.engine.checkpoint_eval import evaluate_checkpoint, stored_test_top1, write_eval
from tdsa.engine.trainer import train
from tdsa.errors import CheckpointError, ConfigError

from .conftest import tiny_config


@pytest.fixture(scope="module")
def run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    train(tiny_config(tiny_root, "train.epochs=2"), out)
    return out


def test_the_report_counts_every_image_and_recalls_the_stored_top1(run: Path) -> None:
    result = evaluate_checkpoint(run / "last.pt", device="cpu")
    r = result.report
    ckpt = ck.load_checkpoint(run / "last.pt")
    assert r["epoch"] == 2 and r["split"] == "test" and r["images"] == 20
    assert r["stored_test_top1"] == stored_test_top1(ckpt) == ckpt["metrics"][-1]["test_top1"]
    assert r["top1"] == pytest.approx(r["stored_test_top1"])
    assert len(result.classes) == 4 and list(r["per_class_accuracy"]) == result.classes
    assert [sum(row) for row in result.confusion] == [5, 5, 5, 5], "rows are true classes"
    assert sum(result.confusion[i][i] for i in range(4)) / 20 * 100 == pytest.approx(r["top1"])
    assert stored_test_top1({"epoch": 3, "metrics": ckpt["metrics"]}) is None


def test_the_checkpoint_is_read_once(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    reads: list[str] = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        reads.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    evaluate_checkpoint(run / "last.pt", device="cpu")
    assert reads == [str(run / "last.pt")]


def test_write_eval_writes_the_report_and_the_confusion_matrix(run: Path, tmp_path: Path) -> None:
    result = evaluate_checkpoint(run / "best.pt", device="cpu", batch_size=3, workers=0)
    report, confusion = write_eval(result, tmp_path / "new" / "folder")
    assert json.loads(report.read_text()) == result.report
    rows = list(csv.reader(confusion.open()))
    assert rows[0] == ["true\\pred", *result.classes]
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == result.confusion


def test_another_dataset_must_exist_and_have_the_trained_classes(
    run: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset 'cubb'; valid datasets: "):
        evaluate_checkpoint(run / "last.pt", dataset="cubb", device="cpu")
    three = tmp_path / "three"
    generate(three, num_classes=3, train_per_class=1, test_per_class=1, image_size=48, seed=0)
    with pytest.raises(CheckpointError, match=r"was trained on 4 classes but 'synthetic' at "
                                              rf"{three} has 3$"):
        evaluate_checkpoint(run / "last.pt", root=three, device="cpu")
