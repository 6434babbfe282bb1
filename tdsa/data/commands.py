"""``python -m tdsa data synth|check``: generate the synthetic dataset or check a dataset root.

Book: chapter 1, *The data*.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from tdsa.data import build_dataset, list_datasets, verify_image

_SYNTH_OPTIONS = ("num_classes", "train_per_class", "test_per_class", "image_size", "seed")
_SHOW = 10  # problem files listed per split


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth`` and ``check`` sub-commands to the ``data`` parser.

    Book: chapter 1, *The data*.
    """
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    synth = sub.add_parser("synth", help="generate the embedded synthetic dataset",
                           description="Generate the synthetic dataset (CUB-200-2011 format). "
                           "Options left out take the generator's defaults.")
    synth.add_argument("--root", type=Path, default=Path("data/synthetic"),
                       help="output folder (default: data/synthetic)")
    for option in _SYNTH_OPTIONS:
        synth.add_argument(f"--{option.replace('_', '-')}", type=int, default=None)
    synth.add_argument("--overwrite", action="store_true",
                       help="replace an existing dataset generated with other arguments")
    check = sub.add_parser("check", help="check a dataset root: classes, split sizes, "
                           "missing or unreadable images",
                           description="Load a dataset root, print its classes and split sizes, "
                           "and decode every image. Exits 1 if a file is missing or unreadable.")
    check.add_argument("--dataset", required=True, choices=list_datasets())
    check.add_argument("--root", type=Path, required=True)
    check.add_argument("--split", action="append", default=None,
                       help="split to check (repeatable; default: train and test)")


def run(args: argparse.Namespace) -> int:
    """Run ``data synth`` or ``data check``; returns the exit code.

    Book: chapter 1, *The data*.
    """
    if args.action == "synth":
        return _synth(args)
    return _check(args)


def _synth(args: argparse.Namespace) -> int:
    from tdsa.data.synthetic import generate

    options = {name: getattr(args, name) for name in _SYNTH_OPTIONS
               if getattr(args, name) is not None}
    path = generate(args.root, overwrite=args.overwrite, **options)
    dataset = {split: build_dataset("synthetic", path, split) for split in ("train", "test")}
    print(f"synthetic dataset in {path}: {dataset['train'].num_classes} classes, "
          f"{len(dataset['train'])} train / {len(dataset['test'])} test images")
    return 0


def _check(args: argparse.Namespace) -> int:
    splits = args.split or ["train", "test"]
    datasets = {split: build_dataset(args.dataset, args.root, split) for split in splits}
    first = datasets[splits[0]]
    names = ", ".join(first.classes[:5]) + (", ..." if first.num_classes > 5 else "")
    print(f"{args.dataset} at {args.root}: {first.num_classes} classes ({names})")
    problems = 0
    for split, dataset in datasets.items():
        counts = Counter(dataset.targets)
        spread = (f"{min(counts.values())}-{max(counts.values())} per class, "
                  f"{len(counts)} classes present" if counts else "empty")
        print(f"  {split}: {len(dataset)} images ({spread})")
        bad = []
        for path, _ in tqdm(dataset.samples, desc=f"decoding {split}", leave=False,
                            disable=None):
            reason = verify_image(path)
            if reason is not None:
                bad.append(reason)
        for reason in bad[:_SHOW]:
            print(f"    {reason}")
        if len(bad) > _SHOW:
            print(f"    ... and {len(bad) - _SHOW} more")
        problems += len(bad)
    if problems:
        print(f"{problems} missing or unreadable image(s)")
        return 1
    print("all images readable")
    return 0
