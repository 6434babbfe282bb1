"""``python -m tdsa counterfactual --run runs/NAME [--split test]``: the counterfactual measures
of a run on synthetic data (:func:`tdsa.experiments.counterfactual.counterfactual_report`).

Prints one line per part (reliance, class evidence at the high stage, where the evidence is,
mid-in-high nesting) and writes the full report as JSON (``counterfactual_<split>.json`` in
the run folder, or ``--out``).
"""

from __future__ import annotations

import argparse
import math

import torch

from tdsa.errors import ConfigError
from tdsa.metrics import DEFAULT_RADIUS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tdsa counterfactual``."""
    parser.add_argument("--run", required=True, help="run folder (holds best.pt / last.pt)")
    parser.add_argument("--checkpoint", default="best.pt",
                        help="checkpoint file in the run folder, or a path (default: best.pt)")
    parser.add_argument("--split", default="test", help="synthetic split (default: test)")
    parser.add_argument("--root", help="synthetic dataset root (default: the run's)")
    parser.add_argument("--max-images", type=int, help="only the first N images of the split")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--radius", type=float, default=DEFAULT_RADIUS,
                        help=f"hit radius, fraction of the image side (default: {DEFAULT_RADIUS})")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="high-channel region threshold for nesting (default: 0.5)")
    parser.add_argument("--no-gradcam", action="store_true",
                        help="skip the Grad-CAM measures (one backward pass per batch)")
    parser.add_argument("--out", help="JSON file (default: RUN/counterfactual_<split>.json)")


def _pct(value: float) -> str:
    return "  n/a" if value is None or math.isnan(value) else f"{100 * value:5.1f}"


def run(args: argparse.Namespace) -> int:
    """Compute, print and save the counterfactual measures of one run."""
    from tdsa.engine.distributed import resolve_device
    from tdsa.experiments.counterfactual import counterfactual_report

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    report = counterfactual_report(
        args.run, args.split, checkpoint=args.checkpoint, root=args.root,
        max_images=args.max_images, batch_size=args.batch_size,
        device=resolve_device(args.device), radius=args.radius, threshold=args.threshold,
        gradcam=not args.no_gradcam, out=args.out,
    )
    print(f"counterfactual measures of {report['checkpoint']} on {report['split']} "
          f"({report['images']} images, {report['pairs']} twins), in %:")
    print(f"{'part':<8} {'reliance':>8} {'high true':>9} {'unused':>6} {'where high':>10} "
          f"{'chance':>6} {'mid in high':>11} {'chance':>6}")
    rows = {**report["parts"], **report["granularity"], "all": report["all"]}
    for name, r in rows.items():
        print(f"{name:<8} {_pct(r['reliance']):>8} {_pct(r['evidence/high/true']):>9} "
              f"{_pct(r['evidence/high/unused']):>6} {_pct(r['where/high/true']):>10} "
              f"{_pct(r['where/high/true_chance']):>6} {_pct(r['nesting/mid_in_high']):>11} "
              f"{_pct(r['nesting/chance']):>6}")
    target = args.out or f"{args.run}/counterfactual_{args.split}.json"
    print(f"wrote {target}")
    return 0
