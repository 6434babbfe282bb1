"""Reading a generated root: :class:`SyntheticBirds`, the CUB-format reader plus the metadata
and the generator's own validation split."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tdsa.data.base import read_lines
from tdsa.data.cub import CUBFormatDataset
from tdsa.data.synthetic.metadata import METADATA_FILE, SPLITS, VAL_FOLDER
from tdsa.data.synthetic.writer import generate as generate_dataset
from tdsa.errors import DataError


class SyntheticBirds(CUBFormatDataset):
    """The embedded synthetic fine-grained dataset (:mod:`tdsa.data.synthetic`), read with the
    CUB loader plus its metadata ``tdsa_synthetic.json``.

    ``meta`` is the parsed metadata; ``discriminative_parts`` maps the names of the parts
    that carry a class attribute to their granularity (``"fine"`` or ``"coarse"``).
    ``generate=True`` generates the dataset with the generator's defaults if ``root`` has no
    metadata file yet; a dict of :func:`tdsa.data.synthetic.generate` keyword arguments
    generates it with those (a no-op if ``root`` already holds exactly that dataset).

    Split ``val`` reads the validation images the generator wrote into ``root/val/`` (with
    ``val_per_class``); ``train_minus_val`` is ``train`` (no train image is a val image).
    """

    name = "synthetic"
    splits = SPLITS
    tree = (f"<root>/{{{METADATA_FILE}, images.txt, classes.txt, image_class_labels.txt, "
            "train_test_split.txt, bounding_boxes.txt, images/, parts/, val/ (optional)}} as "
            "written by `python -m tdsa data synth --root <root> [--val-per-class N]`")

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None, *,
                 crop_to_bbox: bool = False, skip_corrupt: bool = False,
                 generate: bool | Mapping[str, Any] = False,
                 val_fraction: float | None = None, val_seed: int | None = None) -> None:
        root = Path(root)
        if isinstance(generate, Mapping) or (generate and not (root / METADATA_FILE).is_file()):
            # With explicit arguments the generator returns at once if root already holds
            # exactly that dataset, and refuses (clearly) if it holds another one.
            generate_dataset(root, **(dict(generate) if isinstance(generate, Mapping) else {}))
        super().__init__(root, split, transform, crop_to_bbox=crop_to_bbox,
                         skip_corrupt=skip_corrupt, val_fraction=val_fraction,
                         val_seed=val_seed)

    def _resolve(self) -> Path:
        if self.split != "val":
            return super()._resolve()
        base = self.root / VAL_FOLDER
        if not self.meta.get("args", {}).get("val_per_class") or \
                not (base / "images.txt").is_file():
            raise DataError(
                f"synthetic: {self.root} has no val split (it was generated without "
                f"val_per_class, so there is no {base / 'images.txt'}); regenerate it with its "
                f"arguments plus val_per_class=N and overwrite=True (`python -m tdsa data synth "
                f"--root {self.root} ... --val-per-class N --overwrite`): its train and test "
                f"images stay byte-identical"
            )
        return base

    def _load(self) -> tuple[list[str], list[tuple[str, int]]]:
        path = self.root / METADATA_FILE
        if not path.is_file():
            raise DataError(f"synthetic: {self.root} has no {METADATA_FILE} (not a complete "
                            f"synthetic dataset); generate it with `python -m tdsa data synth "
                            f"--root {self.root}` or pass generate=True")
        text = "\n".join(line for _, line in read_lines(path, dataset=self.name))
        try:
            self.meta: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as exc:
            got = text.splitlines()[exc.lineno - 1] if text.strip() else ""
            raise DataError(f"synthetic: {path} line {exc.lineno}: expected JSON ({exc.msg}), "
                            f"got {got.strip()!r}") from None
        try:
            self.discriminative_parts = {p["name"]: p["granularity"] for p in self.meta["parts"]
                                         if p["granularity"] is not None}
        except (KeyError, TypeError) as exc:
            raise DataError(f"synthetic: {path}: expected a 'parts' list of objects with 'name' "
                            f"and 'granularity', got {type(exc).__name__}: {exc}") from None
        return super()._load()
