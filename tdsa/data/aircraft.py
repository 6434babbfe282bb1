"""FGVC-Aircraft 2013b at the variant level (100 classes).

Official page: https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (10,000 images;
trainval 6,667 = train 3,334 + val 3,333; test 3,333). Images keep the 20-pixel copyright
banner at the bottom, as torchvision's loader does.

Splits: ``"train"`` is the field's training set, the official *trainval* (also accepted by
that name); ``"test"`` the official test set; ``"val"`` and ``"official_train"`` the two
halves of trainval. A parser rather than ``torchvision.datasets.FGVCAircraft`` so that a
missing file gets the same clear error as the other datasets.
"""

from __future__ import annotations

from tdsa.data.base import FGVCDataset, index_rows, read_lines, read_table
from tdsa.errors import DataError

_FILES = {"train": "trainval", "trainval": "trainval", "official_train": "train", "val": "val",
          "test": "test"}


class FGVCAircraft(FGVCDataset):
    """FGVC-Aircraft, variant level; ``root`` is ``fgvc-aircraft-2013b``, its parent or its
    ``data`` folder.
    """

    name = "aircraft"
    splits = ("train", "test", "trainval", "val", "official_train")
    tree = ("fgvc-aircraft-2013b/data/{variants.txt, images_variant_{trainval,train,val,test}"
            ".txt, images/<id>.jpg}")

    def _load(self) -> tuple[list[str], list[tuple[str, int]]]:
        data = next((c for c in (self.root / "fgvc-aircraft-2013b" / "data", self.root / "data",
                                 self.root) if (c / "variants.txt").is_file()), None)
        if data is None:
            raise DataError(f"aircraft: no variants.txt in {self.root}, {self.root / 'data'} or "
                            f"{self.root / 'fgvc-aircraft-2013b' / 'data'}; expected {self.tree}")
        variants_file = data / "variants.txt"
        classes = [line.strip() for _, line in read_lines(variants_file, dataset=self.name)
                   if line.strip()]
        label_of = {name: i for i, name in enumerate(classes)}
        split_file = data / f"images_variant_{_FILES[self.split]}.txt"
        samples = []
        rows = read_table(split_file, 2, dataset=self.name, tree=self.tree)
        for row in index_rows(rows, dataset=self.name).values():
            image_id, variant = row
            if variant not in label_of:
                raise DataError(f"aircraft: {split_file} line {row.line}: expected a variant "
                                f"listed in {variants_file}, got {variant!r}")
            samples.append((str(data / "images" / f"{image_id}.jpg"), label_of[variant]))
        return classes, samples
