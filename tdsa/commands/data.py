"""``python -m tdsa data synth|check|download``: generate the synthetic dataset, check a dataset
root against the official split sizes, or download and verify a public dataset.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from tdsa.console import progress_bar, progress_enabled
from tdsa.data import build_dataset, list_datasets, verify_image

_SYNTH_OPTIONS = ("num_classes", "train_per_class", "test_per_class", "val_per_class",
                  "image_size", "seed")
_SHOW = 10  # problem files listed per split

#: Images per split of the official releases (``data check`` compares with them). The
#: synthetic set is compared with the sizes its metadata states; ``imagefolder`` has none.
OFFICIAL_SIZES: dict[str, dict[str, int]] = {
    "cub": {"train": 5994, "test": 5794},
    "nabirds": {"train": 23929, "test": 24633},
    "aircraft": {"train": 6667, "trainval": 6667, "official_train": 3334, "val": 3333,
                 "test": 3333},
    "cars": {"train": 8144, "test": 8041},
    "flowers102": {"train": 2040, "official_train": 1020, "val": 1020, "test": 6149},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth``, ``check`` and ``download`` sub-commands to the ``data`` parser.
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
                           "compare the sizes with the official ones and decode every image. "
                           "Exits 1 if a file is missing or unreadable or a split's size "
                           "differs from the official one.")
    check.add_argument("--dataset", required=True, choices=list_datasets())
    check.add_argument("--root", type=Path, required=True)
    check.add_argument("--split", action="append", default=None,
                       help="split to check (repeatable; default: train and test)")
    check.add_argument("--any-size", action="store_true",
                       help="accept split sizes that differ from the official ones (a "
                       "deliberate subset): a warning instead of exit 1")
    from tdsa.data.download import downloadable

    download = sub.add_parser(
        "download", help="download a public dataset, verify its checksum, extract it",
        description="Download the official archive of a dataset into ROOT (resuming a partial "
        "download), verify its MD5 and extract it into the tree the loader reads "
        "(cub: ROOT/CUB_200_2011, aircraft: ROOT/fgvc-aircraft-2013b, flowers102: "
        "ROOT/flowers-102). cars and nabirds have no official direct link: the command says "
        "where to get them.")
    download.add_argument("name", choices=downloadable())
    download.add_argument("--root", type=Path, required=True, help="where the dataset goes")
    download.add_argument("--url", help="mirror URL, file:// URL or local path of the archive "
                          "(a URL ending in / serves every file under its official name)")
    download.add_argument("--md5", help="MD5 of the --url archive when it is not the official "
                          "file (default: the official checksum)")
    download.add_argument("--keep-archive", action="store_true",
                          help="keep the downloaded archive in ROOT after extracting it")


def run(args: argparse.Namespace) -> int:
    """Run ``data synth``, ``data check`` or ``data download``; returns the exit code.
    """
    if args.action == "synth":
        return _synth(args)
    if args.action == "download":
        return _download(args)
    return _check(args)


def _download(args: argparse.Namespace) -> int:
    from tdsa.data.download import download

    folder = download(args.name, args.root, url=args.url, md5=args.md5,
                      keep_archive=args.keep_archive)
    print(f"{args.name} downloaded, verified and extracted into {folder}; check it with "
          f"`python -m tdsa data check --dataset {args.name} --root {args.root}`")
    return 0


def expected_sizes(name: str, dataset: Any) -> dict[str, int] | None:
    """The number of images each split of ``name`` should have: the official sizes
    (:data:`OFFICIAL_SIZES`), the sizes a synthetic dataset's metadata states, or None when
    there are none (``imagefolder``).
    """
    if name == "synthetic":
        args = dataset.meta["args"]
        n = args["num_classes"]
        sizes = {"train": n * args["train_per_class"], "test": n * args["test_per_class"]}
        sizes["train_minus_val"] = sizes["train"]
        if args.get("val_per_class"):
            sizes["val"] = n * args["val_per_class"]
        return sizes
    return OFFICIAL_SIZES.get(name)


def _synth(args: argparse.Namespace) -> int:
    from tdsa.data.synthetic import generate

    options = {name: getattr(args, name) for name in _SYNTH_OPTIONS
               if getattr(args, name) is not None}
    path = generate(args.root, overwrite=args.overwrite, **options)
    splits = ("train", "test", "val") if options.get("val_per_class") else ("train", "test")
    dataset = {split: build_dataset("synthetic", path, split) for split in splits}
    counts = " / ".join(f"{len(dataset[split])} {split}" for split in splits)
    print(f"synthetic dataset in {path}: {dataset['train'].num_classes} classes, "
          f"{counts} images")
    return 0


def _check(args: argparse.Namespace) -> int:
    splits = args.split or ["train", "test"]
    datasets = {split: build_dataset(args.dataset, args.root, split) for split in splits}
    first = datasets[splits[0]]
    names = ", ".join(first.classes[:5]) + (", ..." if first.num_classes > 5 else "")
    print(f"{args.dataset} at {args.root}: {first.num_classes} classes ({names})")
    expected = expected_sizes(args.dataset, first)
    basis = "tdsa_synthetic.json" if args.dataset == "synthetic" else "official"
    if expected is None:
        print(f"  ({args.dataset} has no official split sizes to compare with)")
    problems = 0
    wrong_size = []
    for split, dataset in datasets.items():
        mismatch = _check_size(split, dataset, (expected or {}).get(split), basis)
        if mismatch:
            wrong_size.append(mismatch)
        problems += _check_images(split, dataset)
    print(f"{problems} missing or unreadable image(s)" if problems else "all images readable")
    _print_size_verdict(wrong_size, basis, args.any_size)
    return 1 if problems or (wrong_size and not args.any_size) else 0


def _check_size(split: str, dataset: Any, want: int | None, basis: str) -> str | None:
    """Print a split's size and spread over the classes, and whether it is short of or larger
    than ``want``; returns ``"split (n of want)"`` when it differs, else None."""
    counts = Counter(dataset.targets)
    spread = (f"{min(counts.values())}-{max(counts.values())} per class, "
              f"{len(counts)} classes present" if counts else "empty")
    print(f"  {split}: {len(dataset)} images ({spread})")
    if want is None or len(dataset) == want:
        return None
    short = len(dataset) < want
    print(f"    {'SHORT' if short else 'TOO LARGE'}: {want:,} images expected "
          f"({basis}), {abs(want - len(dataset)):,} {'fewer' if short else 'more'}"
          + (" (an incomplete download or extraction?)" if short else ""))
    return f"{split} ({len(dataset):,} of {want:,})"


def _check_images(split: str, dataset: Any) -> int:
    """Decode every image of a split, print the first problems; returns how many there are."""
    bad = []
    for path, _ in progress_bar(iterable=dataset.samples, desc=f"decoding {split}",
                                leave=False, disable=not progress_enabled(None)):
        reason = verify_image(path)
        if reason is not None:
            bad.append(reason)
    for reason in bad[:_SHOW]:
        print(f"    {reason}")
    if len(bad) > _SHOW:
        print(f"    ... and {len(bad) - _SHOW} more")
    return len(bad)


def _print_size_verdict(wrong_size: list[str], basis: str, any_size: bool) -> None:
    """The splits whose size differs from the ``basis`` ones: a warning with ``--any-size``,
    else the error line with its remedy."""
    if not wrong_size:
        return
    sizes = ", ".join(wrong_size)
    if any_size:
        print(f"warning: split sizes differ from the {basis} ones: {sizes} (accepted: "
              f"--any-size)")
    else:
        print(f"split sizes differ from the {basis} ones: {sizes}; pass --any-size to "
              f"accept a deliberate subset")
