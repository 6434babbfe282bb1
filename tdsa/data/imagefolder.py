"""A generic ``root/{train,test}/<class>/<image>`` tree (the reference code's layout).

Classes are the sorted sub-folder names of ``root/train`` (of ``root/test`` if there is no
train folder), so both splits share one label map. A ``root/val`` folder is the ``val`` split;
without one, ``val`` is a seeded, class-stratified carve-out of ``train``
(:class:`tdsa.data.base.FGVCDataset`).
"""

from __future__ import annotations

from tdsa.data.base import IMAGE_EXTENSIONS, FGVCDataset
from tdsa.errors import DataError


class ImageFolderDataset(FGVCDataset):
    """Images in ``root/<split>/<class>/*`` (jpg, jpeg, png, bmp, webp, tif).
    """

    name = "imagefolder"
    tree = "<root>/{train,test,val (optional)}/<class>/*.jpg"
    carve_val = True

    def _carves_val(self) -> bool:
        """Without a ``val/`` folder, ``val`` is carved out of ``train/``."""
        return not (self.root / "val").is_dir()

    def _load(self) -> tuple[list[str], list[tuple[str, int]]]:
        folder = self.root / self.split
        if not folder.is_dir():
            raise DataError(f"imagefolder: no {self.split}/ folder in {self.root}; "
                            f"expected {self.tree}")
        reference = self.root / "train" if (self.root / "train").is_dir() else folder
        classes = sorted(d.name for d in reference.iterdir() if d.is_dir())
        if not classes:
            raise DataError(f"imagefolder: no class folders in {reference}; expected {self.tree}")
        extra = sorted({d.name for d in folder.iterdir() if d.is_dir()} - set(classes))
        if extra:
            raise DataError(f"imagefolder: class folder {folder / extra[0]} has no counterpart "
                            f"in {reference}")
        samples: list[tuple[str, int]] = []
        for label, name in enumerate(classes):
            directory = folder / name
            if directory.is_dir():
                samples.extend((str(p), label) for p in sorted(directory.iterdir())
                               if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        return classes, samples
