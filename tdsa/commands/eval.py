"""``python -m tdsa eval --checkpoint runs/NAME/best.pt [--dataset N --root R --split S]``.

Prints top-1 / top-5 / mean per-class accuracy and writes ``eval.json`` and
``confusion.csv`` (rows = true class, columns = predicted) to the checkpoint's folder or
``--out``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from tdsa.engine.checkpoint import check_output_dir, load_checkpoint, load_model
from tdsa.engine.distributed import resolve_device
from tdsa.engine.evaluate import evaluate
from tdsa.engine.precision import resolve_precision
from tdsa.errors import CheckpointError, ConfigError, DataError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tdsa eval``.
    """
    parser.add_argument("--checkpoint", required=True, help="a last.pt or best.pt")
    parser.add_argument("--dataset", help="dataset name (default: the run's)")
    parser.add_argument(
        "--root", help="dataset root (default: the run's, stored as an absolute path)"
    )
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--batch-size", type=int, help="default: the run's eval batch size")
    parser.add_argument("--workers", type=int, help="loader workers (default: the run's)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--out", help="folder for eval.json and confusion.csv (default: the checkpoint's folder)"
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint; print and save its accuracy.
    """
    from tdsa.data import from_config, list_datasets

    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    check_output_dir(out, "--out")
    device = resolve_device(args.device)
    model, cfg = load_model(args.checkpoint, map_location=device)
    num_classes = int(model.num_classes)
    ckpt = load_checkpoint(args.checkpoint)
    d = cfg.data
    name, root = args.dataset or d.dataset, args.root or d.root
    if name not in list_datasets():
        raise ConfigError(f"unknown dataset {name!r}; valid datasets: {', '.join(list_datasets())}")
    if args.root is None and not Path(root).exists():
        raise DataError(
            f"the run's dataset root {root} (stored in {args.checkpoint}) does not exist here; "
            f"pass --root PATH (the {name} dataset's folder)"
        )
    options = d.options if name == d.dataset else {}
    dataset = from_config(dataclasses.replace(d, dataset=name, root=str(root), options=options),
                          args.split)
    if int(dataset.num_classes) != num_classes:
        raise CheckpointError(
            f"{args.checkpoint} was trained on {num_classes} classes but {name!r} at {root} "
            f"has {dataset.num_classes}"
        )
    tr = cfg.train
    bs = args.batch_size or tr.eval_batch_size or tr.batch_size // tr.accum_steps
    workers = d.workers if args.workers is None else args.workers
    loader = DataLoader(dataset, batch_size=bs, shuffle=False, drop_last=False, num_workers=workers)
    precision = resolve_precision(device, tr.amp, tr.channels_last)
    with torch.inference_mode():
        res = evaluate(model, loader, device, num_classes, precision=precision)
    out.mkdir(parents=True, exist_ok=True)
    classes = list(getattr(dataset, "classes", range(num_classes)))
    stored = _stored_top1(ckpt)
    report = {
        "checkpoint": str(args.checkpoint),
        "epoch": int(ckpt["epoch"]),
        "dataset": name,
        "root": str(root),
        "split": args.split,
        "images": res["n"],
        "top1": res["top1"],
        "top5": res["top5"],
        "mean_class_accuracy": res["mean_class"],
        "per_class_accuracy": dict(zip(map(str, classes), res["per_class"], strict=True)),
        "stored_test_top1": stored,
        "precision": precision.label,
    }
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    with (out / "confusion.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true\\pred", *classes])
        for cls, row in zip(classes, res["confusion"].tolist(), strict=True):
            w.writerow([cls, *row])
    print(
        f"{name} {args.split}: top-1 {res['top1']:.2f}%  top-5 {res['top5']:.2f}%  "
        f"mean per-class {res['mean_class']:.2f}%  ({res['n']} images, epoch {ckpt['epoch']}, "
        f"{precision.label})"
    )
    if stored is not None:
        print(f"stored test top-1 of this checkpoint (epoch {ckpt['epoch']}): {stored:.2f}%")
    print(f"wrote {out / 'eval.json'} and {out / 'confusion.csv'}")
    return 0


def _stored_top1(ckpt: dict) -> float | None:
    """The test top-1 the training run recorded for the checkpoint's epoch, if any."""
    for row in ckpt.get("metrics", []):
        if row.get("epoch") == ckpt["epoch"] and "test_top1" in row:
            return float(row["test_top1"])
    return None
