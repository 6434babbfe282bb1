"""CUB-200-2011, and the reader of its on-disk format that NABirds and the synthetic birds
(:class:`tdsa.data.synthetic.SyntheticBirds`) build on.

Official page: https://www.vision.caltech.edu/datasets/cub_200_2011/ (200 classes,
5,994 train / 5,794 test). Every annotation file is ``<image_id> <fields...>`` with 1-based ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tdsa.data.base import (
    Box,
    Column,
    FGVCDataset,
    Row,
    index_rows,
    read_image_size,
    read_table,
)
from tdsa.errors import DataError


class CUBFormatDataset(FGVCDataset):
    """A dataset in CUB-200-2011's on-disk format, with part locations and bounding boxes.

    ``parts(index)`` is a float array ``[P, 3]`` of ``(x, y, visible)`` in ``part_names``
    order; ``bbox(index)`` is ``(x, y, w, h)``. Both are in the frame of the untransformed
    image ``__getitem__`` decodes: with ``crop_to_bbox=True`` the image is cropped to its
    bounding box (rounded out to whole pixels) and parts and box are shifted accordingly.
    """

    folder: ClassVar[str] = "CUB_200_2011"
    sparse_labels: ClassVar[bool] = False

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None, *,
                 crop_to_bbox: bool = False, skip_corrupt: bool = False,
                 val_fraction: float | None = None, val_seed: int | None = None) -> None:
        self.crop_to_bbox = crop_to_bbox
        super().__init__(root, split, transform, skip_corrupt=skip_corrupt,
                         val_fraction=val_fraction, val_seed=val_seed)

    def _resolve(self) -> Path:
        for candidate in (self.root, self.root / self.folder):
            if (candidate / "images.txt").is_file():
                return candidate
        raise DataError(f"{self.name}: {self.root} is not a {self.folder} root (no images.txt "
                        f"in it or in {self.root / self.folder}); expected {self.tree}")

    def _table(self, base: Path, name: str, columns: int,
               types: tuple[Column, ...]) -> dict[Any, Row]:
        rows = read_table(base / name, columns, dataset=self.name, tree=self.tree, types=types)
        return index_rows(rows, dataset=self.name)

    def _load(self) -> tuple[list[str], list[tuple[str, int]]]:
        base = self._resolve()
        self.base = base
        images = {iid: row[1] for iid, row in self._table(base, "images.txt", 2,
                                                          (str, str)).items()}
        label_rows = self._table(base, "image_class_labels.txt", 2, (str, int))
        split_of = {iid: row[1] for iid, row in self._table(
            base, "train_test_split.txt", 2, (str, ("0", "1"))).items()}
        class_names = {cid: row[1] for cid, row in self._table(base, "classes.txt", 2,
                                                               (int, str)).items()}
        boxes = {iid: tuple(row[1:]) for iid, row in self._table(
            base, "bounding_boxes.txt", 5, (str, float, float, float, float)).items()}
        part_rows = self._table(base, "parts/parts.txt", 2, (int, str))
        locs = read_table(base / "parts/part_locs.txt", 5, dataset=self.name, tree=self.tree,
                          types=(str, int, float, float, float))
        labels = {iid: row[1] for iid, row in label_rows.items()}

        unknown = next((r for r in label_rows.values() if r[1] not in class_names), None)
        if unknown is not None:
            raise DataError(f"{self.name}: {unknown.path} line {unknown.line}: expected a class "
                            f"id listed in {base / 'classes.txt'}, got '{unknown[1]}'")
        used = sorted(set(labels.values())) if self.sparse_labels else sorted(class_names)
        label_of = {cid: i for i, cid in enumerate(used)}
        part_ids = sorted(part_rows)
        part_index = {pid: i for i, pid in enumerate(part_ids)}
        self.part_names = [part_rows[pid][1] for pid in part_ids]

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
        row_of = {iid: i for i, iid in enumerate(self.image_ids)}
        self._parts = np.zeros((len(self.image_ids), len(part_ids), 3), dtype=np.float32)
        for iid, pid, x, y, visible in locs:
            if iid in row_of and pid in part_index:
                self._parts[row_of[iid], part_index[pid]] = (x, y, visible)
        self._boxes = [boxes[iid] for iid in self.image_ids]
        self._crops: dict[int, Box] = {}
        classes = [class_names[cid] for cid in used]
        samples = [(str(base / "images" / images[iid]), label_of[labels[iid]])
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

        Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
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

        Book: chapter 6, *Measuring: the pointing game against the part annotations*.
        """
        x, y, w, h = self._boxes[index]
        box = self.crop_box(index)
        if box is not None:
            x, y = x - box[0], y - box[1]
        return x, y, w, h


class CUB200(CUBFormatDataset):
    """CUB-200-2011: 200 bird species, 5,994 train / 5,794 test images, 15 parts.

    ``root`` is the ``CUB_200_2011`` folder or its parent.
    """

    name = "cub"
    carve_val = True
    tree = ("CUB_200_2011/{images.txt, classes.txt, image_class_labels.txt, "
            "train_test_split.txt, bounding_boxes.txt, images/<NNN.Name>/*.jpg, "
            "parts/{parts.txt, part_locs.txt}}")

