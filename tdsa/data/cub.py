"""CUB-200-2011 (and the embedded ``synthetic`` dataset, written in CUB's format).

Official page: https://www.vision.caltech.edu/datasets/cub_200_2011/ (200 classes,
5,994 train / 5,794 test). Every annotation file is ``<image_id> <fields...>`` with 1-based ids.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tdsa.data.base import Box, FGVCDataset, read_image_size, read_table
from tdsa.errors import DataError

SYNTHETIC_META = "tdsa_synthetic.json"


class CUBFormatDataset(FGVCDataset):
    """A dataset in CUB-200-2011's on-disk format, with part locations and bounding boxes.

    ``parts(index)`` is a float array ``[P, 3]`` of ``(x, y, visible)`` in ``part_names``
    order; ``bbox(index)`` is ``(x, y, w, h)``. Both are in the frame of the untransformed
    image ``__getitem__`` decodes: with ``crop_to_bbox=True`` the image is cropped to its
    bounding box (rounded out to whole pixels) and parts and box are shifted accordingly.

    Book: chapter 1, *The data*.
    """

    folder: ClassVar[str] = "CUB_200_2011"
    sparse_labels: ClassVar[bool] = False

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None, *,
                 crop_to_bbox: bool = False, skip_corrupt: bool = False) -> None:
        self.crop_to_bbox = crop_to_bbox
        super().__init__(root, split, transform, skip_corrupt=skip_corrupt)

    def _resolve(self) -> Path:
        for candidate in (self.root, self.root / self.folder):
            if (candidate / "images.txt").is_file():
                return candidate
        raise DataError(f"{self.name}: {self.root} is not a {self.folder} root (no images.txt "
                        f"in it or in {self.root / self.folder}); expected {self.tree}")

    def _table(self, base: Path, name: str, columns: int) -> list[list[str]]:
        return read_table(base / name, columns, dataset=self.name, tree=self.tree)

    def _load(self) -> tuple[list[str], list[tuple[str, int]]]:
        base = self._resolve()
        self.base = base
        images = dict(self._table(base, "images.txt", 2))
        labels = dict(self._table(base, "image_class_labels.txt", 2))
        split_of = dict(self._table(base, "train_test_split.txt", 2))
        class_names = {int(cid): name for cid, name in self._table(base, "classes.txt", 2)}
        boxes = {row[0]: tuple(float(v) for v in row[1:])
                 for row in self._table(base, "bounding_boxes.txt", 5)}
        part_rows = self._table(base, "parts/parts.txt", 2)
        locs = self._table(base, "parts/part_locs.txt", 5)

        used = sorted({int(c) for c in labels.values()}) if self.sparse_labels \
            else sorted(class_names)
        missing = sorted(set(used) - set(class_names))
        if missing:
            raise DataError(f"{self.name}: class id {missing[0]} used in "
                            f"{base / 'image_class_labels.txt'} is not in {base / 'classes.txt'}")
        label_of = {cid: i for i, cid in enumerate(used)}
        part_ids = sorted(int(pid) for pid, _ in part_rows)
        part_index = {pid: i for i, pid in enumerate(part_ids)}
        self.part_names = [dict((int(p), n) for p, n in part_rows)[pid] for pid in part_ids]

        unsplit = next((iid for iid in images if iid not in split_of), None)
        if unsplit is not None:
            raise DataError(f"{self.name}: image id {unsplit} has no entry in "
                            f"{base / 'train_test_split.txt'}")
        wanted = "1" if self.split == "train" else "0"
        self.image_ids = [iid for iid in images if split_of.get(iid) == wanted]
        for iid in self.image_ids:
            for table, file in ((labels, "image_class_labels.txt"),
                                (boxes, "bounding_boxes.txt")):
                if iid not in table:
                    raise DataError(f"{self.name}: image id {iid} has no entry in {base / file}")
            if int(labels[iid]) not in label_of:
                raise DataError(f"{self.name}: image id {iid} has class id {labels[iid]} which is "
                                f"not in {base / 'classes.txt'}")
        row_of = {iid: i for i, iid in enumerate(self.image_ids)}
        self._parts = np.zeros((len(self.image_ids), len(part_ids), 3), dtype=np.float32)
        for iid, pid, x, y, visible in locs:
            if iid in row_of and int(pid) in part_index:
                self._parts[row_of[iid], part_index[int(pid)]] = (float(x), float(y),
                                                                  float(visible))
        self._boxes = [boxes[iid] for iid in self.image_ids]
        self._crops: dict[int, Box] = {}
        classes = [class_names[cid] for cid in used]
        samples = [(str(base / "images" / images[iid]), label_of[int(labels[iid])])
                   for iid in self.image_ids]
        return classes, samples

    def _keep(self, indices: list[int]) -> None:
        super()._keep(indices)
        self.image_ids = [self.image_ids[i] for i in indices]
        self._boxes = [self._boxes[i] for i in indices]
        self._parts = self._parts[indices]
        self._crops = {}

    def crop_box(self, index: int) -> Box | None:
        """The bounding box rounded out to whole pixels and clipped to the image, when
        ``crop_to_bbox`` is set; else None."""
        if not self.crop_to_bbox:
            return None
        if index not in self._crops:
            width, height = read_image_size(self.samples[index][0])
            x, y, w, h = self._boxes[index]
            self._crops[index] = (max(0, math.floor(x)), max(0, math.floor(y)),
                                  min(width, math.ceil(x + w)), min(height, math.ceil(y + h)))
        return self._crops[index]

    def parts(self, index: int) -> np.ndarray:
        """Part locations ``[P, 3]`` = ``(x, y, visible)`` of image ``index`` (invisible parts
        are ``(0, 0, 0)``), in the frame of the image ``__getitem__`` decodes.

        Book: chapter 6, *Visualising and measuring attention*.
        """
        parts = self._parts[index].copy()
        box = self.crop_box(index)
        if box is not None:
            visible = parts[:, 2] > 0
            parts[visible, 0] -= box[0]
            parts[visible, 1] -= box[1]
        return parts

    def bbox(self, index: int) -> tuple[float, float, float, float]:
        """Bounding box ``(x, y, w, h)`` of image ``index``, in the same frame as ``parts``.

        Book: chapter 6, *Visualising and measuring attention*.
        """
        x, y, w, h = self._boxes[index]
        box = self.crop_box(index)
        if box is not None:
            x, y = x - box[0], y - box[1]
        return x, y, w, h


class CUB200(CUBFormatDataset):
    """CUB-200-2011: 200 bird species, 5,994 train / 5,794 test images, 15 parts.

    ``root`` is the ``CUB_200_2011`` folder or its parent.

    Book: chapter 1, *The data*.
    """

    name = "cub"
    tree = ("CUB_200_2011/{images.txt, classes.txt, image_class_labels.txt, "
            "train_test_split.txt, bounding_boxes.txt, images/<NNN.Name>/*.jpg, "
            "parts/{parts.txt, part_locs.txt}}")


class SyntheticBirds(CUBFormatDataset):
    """The embedded synthetic fine-grained dataset (:mod:`tdsa.data.synthetic`), read with the
    CUB loader plus its metadata ``tdsa_synthetic.json``.

    ``meta`` is the parsed metadata; ``discriminative_parts`` maps the names of the parts
    that carry a class attribute to their granularity (``"fine"`` or ``"coarse"``).
    ``generate=True`` generates the dataset with the generator's defaults if ``root`` has no
    metadata file yet; a dict of :func:`tdsa.data.synthetic.generate` keyword arguments
    generates it with those (a no-op if ``root`` already holds exactly that dataset).

    Book: chapter 1, *The data*.
    """

    name = "synthetic"
    tree = (f"<root>/{{{SYNTHETIC_META}, images.txt, classes.txt, image_class_labels.txt, "
            "train_test_split.txt, bounding_boxes.txt, images/, parts/}} as written by "
            "`python -m tdsa data synth --root <root>`")

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None, *,
                 crop_to_bbox: bool = False, skip_corrupt: bool = False,
                 generate: bool | Mapping[str, Any] = False) -> None:
        root = Path(root)
        if isinstance(generate, Mapping) or (generate and not (root / SYNTHETIC_META).is_file()):
            from tdsa.data.synthetic import generate as generate_dataset

            # With explicit arguments the generator returns at once if root already holds
            # exactly that dataset, and refuses (clearly) if it holds another one.
            generate_dataset(root, **(dict(generate) if isinstance(generate, Mapping) else {}))
        super().__init__(root, split, transform, crop_to_bbox=crop_to_bbox,
                         skip_corrupt=skip_corrupt)

    def _load(self) -> tuple[list[str], list[tuple[str, int]]]:
        path = self.root / SYNTHETIC_META
        if not path.is_file():
            raise DataError(f"synthetic: {self.root} has no {SYNTHETIC_META} (not a complete "
                            f"synthetic dataset); generate it with `python -m tdsa data synth "
                            f"--root {self.root}` or pass generate=True")
        try:
            self.meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            self.discriminative_parts = {p["name"]: p["granularity"] for p in self.meta["parts"]
                                         if p["granularity"] is not None}
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"synthetic: {path} is not valid synthetic metadata ({exc!r})") \
                from None
        return super()._load()
