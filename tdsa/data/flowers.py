"""Oxford Flowers-102 (102 classes; train 1,020 + val 1,020, test 6,149).

Official page: https://www.robots.ox.ac.uk/~vgg/data/flowers/102/. Splits: ``"train"`` is
train + val (2,040 images, as the field trains), ``"test"`` the official test set (6,149);
``"official_train"`` and ``"val"`` are the two halves. Class names are torchvision's list (the
official files only number the classes). A parser rather than
``torchvision.datasets.Flowers102``, which insists on the archive's MD5 sums and a
``flowers-102`` sub-folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tdsa.data.base import FGVCDataset
from tdsa.errors import DataError

_SET_KEYS = {"train": ("trnid", "valid"), "official_train": ("trnid",), "val": ("valid",),
             "test": ("tstid",)}


class Flowers102(FGVCDataset):
    """Flowers-102; ``root`` holds ``jpg/``, ``imagelabels.mat`` and ``setid.mat`` (or is the
    parent of a ``flowers-102`` folder that does).
    """

    name = "flowers102"
    splits = ("train", "test", "official_train", "val")
    tree = "<root>/{imagelabels.mat, setid.mat, jpg/image_NNNNN.jpg}"

    def _mat(self, path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The 1-D integer arrays ``keys`` of a .mat file; DataError naming file and key."""
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError

        if not path.is_file():
            raise DataError(f"flowers102: missing annotation file {path}; expected {self.tree}")
        try:
            content = loadmat(path, squeeze_me=True)
        except (MatReadError, ValueError, OSError, TypeError, NotImplementedError) as exc:
            raise DataError(f"flowers102: {path}: expected a MATLAB .mat file ({exc})") from None
        arrays = {}
        for key in keys:
            if key not in content:
                found = sorted(k for k in content if not k.startswith("__"))
                raise DataError(f"flowers102: {path}: expected the key {key!r}, got keys {found}")
            value = np.atleast_1d(content[key])
            if value.ndim != 1 or value.size == 0 or value.dtype.kind not in "iuf" or (
                    value.dtype.kind == "f" and not np.all(value == np.round(value))):
                raise DataError(f"flowers102: {path}: expected {key!r} to be a non-empty 1-D "
                                f"array of integers, got shape {list(value.shape)} of "
                                f"{value.dtype}")
            arrays[key] = value.astype(int)
        return arrays

    def _load(self) -> tuple[list[str], list[tuple[str, int]]]:
        from torchvision.datasets import Flowers102 as TorchvisionFlowers

        base = next((c for c in (self.root, self.root / "flowers-102")
                     if (c / "imagelabels.mat").is_file()), None)
        if base is None:
            raise DataError(f"flowers102: no imagelabels.mat in {self.root} or "
                            f"{self.root / 'flowers-102'}; expected {self.tree}")
        labels = self._mat(base / "imagelabels.mat", ("labels",))["labels"]
        setid = self._mat(base / "setid.mat", _SET_KEYS[self.split])
        ids = np.concatenate([setid[k] for k in _SET_KEYS[self.split]])
        names = TorchvisionFlowers.classes
        if labels.min() < 1 or labels.max() > len(names):
            raise DataError(f"flowers102: {base / 'imagelabels.mat'}: labels must lie in "
                            f"1..{len(names)}, found {labels.min()}..{labels.max()}")
        samples = []
        for image_id in sorted(int(i) for i in ids):
            if not 1 <= image_id <= len(labels):
                raise DataError(f"flowers102: {base / 'setid.mat'}: image id {image_id} is "
                                f"outside 1..{len(labels)} (imagelabels.mat)")
            samples.append((str(base / "jpg" / f"image_{image_id:05d}.jpg"),
                            int(labels[image_id - 1]) - 1))
        return list(names[: labels.max()]), samples
