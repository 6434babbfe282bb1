"""``python -m tdsa train --config configs/X.yaml [key=value ...] --out runs/NAME [--resume P]``.

Exit codes: 0 done (or stopped by ``runtime.stop_after_epoch``, or the run folder already
complete), 2 bad config (also a config that differs from the run folder's own), 1 other
errors (data, checkpoint, NaN loss), 130 / 143 stopped by SIGINT / SIGTERM after saving
``last.pt`` (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import math
import signal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tdsa train``.
    """
    parser.add_argument(
        "--config",
        help="a YAML file, or the name of a config shipped with tdsa (e.g. synthetic_tdsa, "
        "smoke, cub_vgg16_tdsa_scratch; the list is in an unknown name's error); optional "
        "when resuming",
    )
    parser.add_argument("--out", required=True, help="run folder (resumes if it has last.pt)")
    parser.add_argument("--resume", help="checkpoint to resume from (default: OUT/last.pt)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides, e.g. optim.lr=0.01 train.epochs=10",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``tdsa train``; print the final and best test top-1.
    """
    from tdsa.engine.trainer import train

    summary = train(args.config or None, args.out, overrides=args.overrides, resume=args.resume)
    if summary.get("already_complete"):
        print(
            f"{args.out} is already complete ({summary['epochs_completed']}/"
            f"{summary['epochs']} epochs; final test top-1 {summary['final_top1']:.2f}%, best "
            f"{summary['selected_on']} top-1 {summary['best_top1']:.2f}% at epoch "
            f"{summary['best_epoch']}): nothing to do "
            f"(raise train.epochs to train further)"
        )
        return 0
    if summary["stopped"] not in (None, "stop_after_epoch"):
        print(
            f"stopped by {summary['stopped']}: {args.out}/last.pt saved; run the same "
            f"command again to resume"
        )
        return 128 + int(signal.Signals[summary["stopped"]])
    if summary["epochs_completed"]:
        final = [f"test top-1 {summary['final_top1']:.2f}%  top-5 {summary['final_top5']:.2f}%"
                 ] if not math.isnan(summary["final_top1"]) else []
        if "final_val_top1" in summary:
            final.insert(0, f"val top-1 {summary['final_val_top1']:.2f}%")
        print(
            f"final (epoch {summary['epochs_completed']}): "
            f"{'  '.join(final) or 'test not read (train.eval_test=never)'}\n"
            f"best (epoch {summary['best_epoch']}): {summary['selected_on']} top-1 "
            f"{summary['best_top1']:.2f}%  [{summary['selection_note']}]\n"
            f"run folder: {summary['run_dir']}"
        )
    return 0
