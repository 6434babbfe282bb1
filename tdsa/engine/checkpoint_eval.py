"""Evaluating a saved checkpoint on a dataset split (behind ``tdsa eval``): its accuracy
report, with the test top-1 the training run stored for that epoch, and its confusion matrix.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from tdsa.engine.checkpoint import load_checkpoint, model_from_checkpoint
from tdsa.engine.distributed import resolve_device
from tdsa.engine.evaluate import evaluate
from tdsa.engine.precision import resolve_precision
from tdsa.errors import CheckpointError, ConfigError, DataError

__all__ = ["CheckpointEval", "evaluate_checkpoint", "stored_test_top1", "write_eval"]


@dataclass(frozen=True)
class CheckpointEval:
    """The evaluation of a checkpoint: ``report`` (what ``eval.json`` holds: checkpoint,
    epoch, dataset, root, split, images, top1, top5, mean_class_accuracy, per_class_accuracy,
    stored_test_top1, precision), the class names and the confusion matrix (rows = true
    class, columns = predicted)."""

    report: dict[str, Any]
    classes: list[str]
    confusion: list[list[int]]


def stored_test_top1(ckpt: dict[str, Any]) -> float | None:
    """The test top-1 the training run recorded for the checkpoint's epoch, if any."""
    for row in ckpt.get("metrics", []):
        if row.get("epoch") == ckpt["epoch"] and "test_top1" in row:
            return float(row["test_top1"])
    return None


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    dataset: str | None = None,
    root: str | Path | None = None,
    split: str = "test",
    batch_size: int | None = None,
    workers: int | None = None,
    device: str = "auto",
) -> CheckpointEval:
    """Evaluate ``checkpoint`` (its EMA weights when the run used EMA) on every image of
    ``split`` of ``dataset`` at ``root`` (default: the run's dataset and root; another dataset
    gets none of the run's dataset options), in batches of ``batch_size`` (default: the run's
    eval batch size) with ``workers`` loader workers (default: the run's), at the run's
    precision resolved for ``device`` (auto, cpu or cuda).
    """
    from tdsa.data import from_config, list_datasets

    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location=dev)
    model, cfg = model_from_checkpoint(ckpt, checkpoint, map_location=dev)
    num_classes = int(model.num_classes)
    d = cfg.data
    name, where = dataset or d.dataset, root or d.root
    if name not in list_datasets():
        raise ConfigError(f"unknown dataset {name!r}; valid datasets: {', '.join(list_datasets())}")
    if root is None and not Path(where).exists():
        raise DataError(
            f"the run's dataset root {where} (stored in {checkpoint}) does not exist here; "
            f"pass --root PATH (the {name} dataset's folder)"
        )
    options = d.options if name == d.dataset else {}
    images = from_config(dataclasses.replace(d, dataset=name, root=str(where), options=options),
                         split)
    if int(images.num_classes) != num_classes:
        raise CheckpointError(
            f"{checkpoint} was trained on {num_classes} classes but {name!r} at {where} "
            f"has {images.num_classes}"
        )
    tr = cfg.train
    bs = batch_size or tr.eval_batch_size or tr.batch_size // tr.accum_steps
    loader = DataLoader(images, batch_size=bs, shuffle=False, drop_last=False,
                        num_workers=d.workers if workers is None else workers)
    precision = resolve_precision(dev, tr.amp, tr.channels_last)
    with torch.inference_mode():
        res = evaluate(model, loader, dev, num_classes, precision=precision)
    classes = [str(c) for c in getattr(images, "classes", range(num_classes))]
    report = {
        "checkpoint": str(checkpoint),
        "epoch": int(ckpt["epoch"]),
        "dataset": name,
        "root": str(where),
        "split": split,
        "images": res["n"],
        "top1": res["top1"],
        "top5": res["top5"],
        "mean_class_accuracy": res["mean_class"],
        "per_class_accuracy": dict(zip(classes, res["per_class"], strict=True)),
        "stored_test_top1": stored_test_top1(ckpt),
        "precision": precision.label,
    }
    return CheckpointEval(report, classes, res["confusion"].tolist())


def write_eval(result: CheckpointEval, out: str | Path) -> tuple[Path, Path]:
    """Write ``eval.json`` (the report) and ``confusion.csv`` (rows = true class, columns =
    predicted) to the folder ``out`` (created if needed); return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report, confusion = out / "eval.json", out / "confusion.csv"
    report.write_text(json.dumps(result.report, indent=2) + "\n")
    with confusion.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true\\pred", *result.classes])
        for cls, row in zip(result.classes, result.confusion, strict=True):
            w.writerow([cls, *row])
    return report, confusion
