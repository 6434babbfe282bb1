"""``python -m tdsa eval --checkpoint runs/NAME/best.pt [--dataset N --root R --split S]``.

Prints top-1 / top-5 / mean per-class accuracy and writes ``eval.json`` and
``confusion.csv`` (rows = true class, columns = predicted) to the checkpoint's folder or
``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tdsa.engine.checkpoint import check_output_dir


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
    from tdsa.engine.checkpoint_eval import evaluate_checkpoint, write_eval

    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    check_output_dir(out, "--out")
    result = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, root=args.root,
                                 split=args.split, batch_size=args.batch_size,
                                 workers=args.workers, device=args.device)
    report, confusion = write_eval(result, out)
    r = result.report
    print(
        f"{r['dataset']} {r['split']}: top-1 {r['top1']:.2f}%  top-5 {r['top5']:.2f}%  "
        f"mean per-class {r['mean_class_accuracy']:.2f}%  ({r['images']} images, epoch "
        f"{r['epoch']}, {r['precision']})"
    )
    if r["stored_test_top1"] is not None:
        print(f"stored test top-1 of this checkpoint (epoch {r['epoch']}): "
              f"{r['stored_test_top1']:.2f}%")
    print(f"wrote {report} and {confusion}")
    return 0
