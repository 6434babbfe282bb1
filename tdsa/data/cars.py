"""Stanford Cars (196 classes, 8,144 train / 8,041 test), from the original devkit.

Official page: https://ai.stanford.edu/~jkrause/cars/car_dataset.html (offline now; mirrors
keep the same files). The test labels come in ``cars_test_annos_withlabels.mat``, released
separately: it is looked for in ``devkit/`` and in the root. A parser rather than
``torchvision.datasets.StanfordCars``, which expects one fixed layout under
``stanford_cars/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tdsa.data.base import FGVCDataset
from tdsa.errors import DataError


def _loadmat(path: Path, key: str, tree: str, fields: tuple[str, ...] = ()) -> np.ndarray:
    """The 1-D array ``key`` of a devkit .mat file (a struct array with ``fields``, if given);
    DataError naming the file and the key otherwise."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    if not path.is_file():
        raise DataError(f"cars: missing annotation file {path}; expected {tree}")
    try:
        content = loadmat(path, squeeze_me=True)
    except (MatReadError, ValueError, OSError, TypeError, NotImplementedError) as exc:
        raise DataError(f"cars: {path}: expected a MATLAB .mat file ({exc})") from None
    if key not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise DataError(f"cars: {path}: expected the key {key!r}, got keys {found}")
    value = np.atleast_1d(content[key])
    if value.ndim != 1:
        raise DataError(f"cars: {path}: expected {key!r} to be a 1-D array, got shape "
                        f"{list(value.shape)}")
    missing = [f for f in fields if f not in (value.dtype.names or ())]
    if missing:
        raise DataError(f"cars: {path}: expected {key!r} to be a struct array with the fields "
                        f"{', '.join(fields)}, got fields {list(value.dtype.names or ())}")
    return value


class StanfordCars(FGVCDataset):
    """Stanford Cars; ``root`` holds ``devkit/``, ``cars_train/``, ``cars_test/`` (or is the
    parent of a ``stanford_cars`` folder that does).
    """

    name = "cars"
    carve_val = True
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
        annotations = _loadmat(annos_path, "annotations", self.tree, ("class", "fname"))
        samples = []
        for number, record in enumerate(annotations, 1):
            try:
                label = int(record["class"]) - 1
            except (TypeError, ValueError):
                raise DataError(f"cars: {annos_path}: annotations record {number}: expected an "
                                f"integer 'class', got {record['class']!r}") from None
            if not isinstance(record["fname"], str):
                raise DataError(f"cars: {annos_path}: annotations record {number}: expected a "
                                f"file name in 'fname', got {record['fname']!r}")
            if not 0 <= label < len(classes):
                raise DataError(f"cars: {annos_path}: annotations record {number}: expected a "
                                f"class in 1..{len(classes)} (cars_meta.mat), got {label + 1} "
                                f"(of {record['fname']})")
            samples.append((str(images / record["fname"]), label))
        return classes, samples
