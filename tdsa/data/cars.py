"""Stanford Cars (196 classes, 8,144 train / 8,041 test), from the original devkit.

Official page: https://ai.stanford.edu/~jkrause/cars/car_dataset.html (offline now; mirrors
keep the same files). The test labels come in ``cars_test_annos_withlabels.mat``, released
separately: it is looked for in ``devkit/`` and in the root. A parser rather than
``torchvision.datasets.StanfordCars``, which expects one fixed layout under
``stanford_cars/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tdsa.data.base import FGVCDataset
from tdsa.errors import DataError


def _loadmat(path: Path, key: str, tree: str) -> Any:
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"cars: missing annotation file {path}; expected {tree}")
    try:
        return np.atleast_1d(loadmat(path, squeeze_me=True)[key])
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise DataError(f"cars: {path} is not a devkit .mat file with {key!r} ({exc!r})") \
            from None


class StanfordCars(FGVCDataset):
    """Stanford Cars; ``root`` holds ``devkit/``, ``cars_train/``, ``cars_test/`` (or is the
    parent of a ``stanford_cars`` folder that does).

    Book: chapter 1, *The data*.
    """

    name = "cars"
    tree = ("<root>/{devkit/{cars_meta.mat, cars_train_annos.mat}, "
            "cars_test_annos_withlabels.mat (in devkit/ or root), cars_train/*.jpg, "
            "cars_test/*.jpg}")

    def _load(self) -> tuple[list[str], list[tuple[str, int]]]:
        base = next((c for c in (self.root, self.root / "stanford_cars")
                     if (c / "devkit").is_dir()), None)
        if base is None:
            raise DataError(f"cars: no devkit/ folder in {self.root} or "
                            f"{self.root / 'stanford_cars'}; expected {self.tree}")
        classes = [str(name) for name in _loadmat(base / "devkit" / "cars_meta.mat",
                                                  "class_names", self.tree)]
        if self.split == "train":
            annos_path, images = base / "devkit" / "cars_train_annos.mat", base / "cars_train"
        else:
            name = "cars_test_annos_withlabels.mat"
            annos_path = next((p for p in (base / "devkit" / name, base / name) if p.is_file()),
                              base / "devkit" / name)
            images = base / "cars_test"
        annotations = _loadmat(annos_path, "annotations", self.tree)
        samples = []
        for record in annotations:
            label = int(record["class"]) - 1
            if not 0 <= label < len(classes):
                raise DataError(f"cars: {annos_path}: class {label + 1} of {record['fname']} is "
                                f"outside 1..{len(classes)} (cars_meta.mat)")
            samples.append((str(images / str(record["fname"])), label))
        return classes, samples
