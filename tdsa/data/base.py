"""Shared pieces of every dataset: RGB image decoding, corrupt-image handling, the base class.

Geometry convention: ``image_size``, ``parts`` and ``bbox`` are in the pixel frame of the
untransformed image that ``__getitem__`` decodes (the original image, or its bounding-box crop
when a dataset is built with ``crop_to_bbox=True``).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from tdsa.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

try:
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_jpeg as _decode_jpeg

    _RGB = ImageReadMode.RGB
except ImportError:  # a torchvision without image decoders: PIL decodes everything
    _decode_jpeg = None

Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive), integer pixels


def _read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read image file {path}: {exc}") from None


def _open(data: bytes, path: str | Path) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"not a readable image: {path} ({exc})") from None


def _to_rgb(image: Image.Image, path: str | Path) -> Image.Image:
    """Decode ``image`` and convert grayscale, CMYK, RGBA and palette images to RGB."""
    try:
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        return image.convert("RGB") if image.mode != "RGB" else _loaded(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"corrupt or truncated image: {path} ({exc})") from None


def _loaded(image: Image.Image) -> Image.Image:
    image.load()
    return image


def load_rgb(path: str | Path, box: Box | None = None) -> Image.Image:
    """Decode an image file into an RGB PIL image (cropped to ``box`` if given).

    Grayscale, CMYK, RGBA and palette images become RGB; a missing, corrupt or truncated file
    raises :class:`tdsa.errors.DataError` naming it. This is the plain decoder
    (``decoder="pil"``); :func:`decode_rgb` is the fast one.

    Book: chapter 1, *The data*.
    """
    image = _to_rgb(_open(_read_bytes(path), path), path)
    return image.crop(box) if box is not None else image


def decode_rgb(path: str | Path, *, min_side: int | None = None, box: Box | None = None
               ) -> torch.Tensor:
    """Decode an image file into a uint8 RGB tensor ``[3, H, W]``, fast.

    JPEGs whose (cropped) region is at least twice ``min_side`` on both sides are decoded by
    libjpeg at a reduced DCT scale (``PIL.Image.draft``), so the result keeps both sides
    ``>= min_side`` but costs a fraction of a full decode; other JPEGs go through
    ``torchvision.io.decode_jpeg`` (PIL if this torchvision has none), other formats through
    PIL. ``box`` is in the original image's pixels; the returned tensor is the crop (at the
    reduced scale, if any). Errors as :func:`load_rgb`.

    Book: chapter 1, *The data*.
    """
    data = _read_bytes(path)
    image = _open(data, path)
    width, height = image.size
    box_w, box_h = (box[2] - box[0], box[3] - box[1]) if box is not None else (width, height)
    if image.format == "JPEG" and min_side is not None and min(box_w, box_h) >= 2 * min_side:
        request = (math.ceil(min_side * width / box_w), math.ceil(min_side * height / box_h))
        image.draft("RGB", request)
    elif image.format == "JPEG" and _decode_jpeg is not None:
        tensor = _torchvision_decode(data, path)
        return tensor if box is None else tensor[:, box[1]:box[3], box[0]:box[2]]
    rgb = _to_rgb(image, path)
    if box is not None:
        sx, sy = rgb.size[0] / width, rgb.size[1] / height
        rgb = rgb.crop((math.floor(box[0] * sx), math.floor(box[1] * sy),
                        math.ceil(box[2] * sx), math.ceil(box[3] * sy)))
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)


def _torchvision_decode(data: bytes, path: str | Path) -> torch.Tensor:
    """libjpeg-turbo through torchvision: about 1.7x faster than PIL's decode + RGB copy."""
    try:
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its decoders in favour of torchcodec; PIL is the
            # fallback when they are gone.
            warnings.simplefilter("ignore", DeprecationWarning)
            return _decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                                mode=_RGB)
    except RuntimeError as exc:
        reason = str(exc).rsplit(", ", 1)[-1]
        raise DataError(f"corrupt or truncated image: {path} ({reason})") from None


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, without decoding pixels.

    Book: chapter 1, *The data*.
    """
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"not a readable image: {path} ({exc})") from None


def verify_image(path: str | Path) -> str | None:
    """Fully decode an image (JPEGs at 1/8 scale, which still reads every byte); return
    ``None`` if it is good, else the reason it is not.

    Book: chapter 1, *The data*.
    """
    try:
        image = _open(_read_bytes(path), path)
        image.draft("RGB", (1, 1))
        _to_rgb(image, path)
    except DataError as exc:
        return str(exc)
    return None


def read_table(path: Path, columns: int, *, dataset: str, tree: str) -> list[list[str]]:
    """Rows of a whitespace-separated annotation file; the last column keeps its spaces.

    A missing file or a short row raises :class:`DataError` naming the file (and, for a
    missing file, the expected tree).

    Book: chapter 1, *The data*.
    """
    if not path.is_file():
        raise DataError(f"{dataset}: missing annotation file {path}; expected {tree}")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            fields = line.split(maxsplit=columns - 1)
            if len(fields) != columns:
                raise DataError(f"{dataset}: {path} line {number}: expected {columns} fields, "
                                f"got {line.strip()!r}")
            fields[-1] = fields[-1].strip()
            rows.append(fields)
    return rows


def check_split(dataset: str, split: str, valid: Sequence[str]) -> str:
    """Return ``split`` if it is one of ``valid``, else raise ValueError listing them.

    Book: chapter 1, *The data*.
    """
    if split not in valid:
        raise ValueError(f"{dataset}: unknown split {split!r}; valid splits: {', '.join(valid)}")
    return split


class FGVCDataset(Dataset):
    """Base class of the tdsa datasets: items are ``(image, label)`` with 0-based int labels.

    Attributes: ``root``, ``split``, ``transform``, ``classes`` (names), ``samples``
    (``(path, label)``), ``targets`` (labels), ``num_classes``. Subclasses implement
    ``_load() -> (classes, samples)``. If ``transform`` has a ``from_file(path, box=None)``
    method (the fast transforms of :func:`tdsa.data.build_transforms` do), it decodes the file
    itself; otherwise the image is decoded to RGB PIL and passed to ``transform``.
    ``skip_corrupt=True`` verifies every image at construction and drops the bad ones with
    one warning.

    Book: chapter 1, *The data*.
    """

    name: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    tree: ClassVar[str] = ""

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None, *,
                 skip_corrupt: bool = False) -> None:
        self.split = check_split(self.name, split, self.splits)
        self.root = Path(root)
        self.transform = transform
        if not self.root.is_dir():
            raise DataError(f"{self.name}: dataset root {self.root} does not exist; "
                            f"expected {self.tree}")
        self.classes, self.samples = self._load()
        self.targets = [label for _, label in self.samples]
        if skip_corrupt:
            self._drop_corrupt()

    def _load(self) -> tuple[list[str], list[tuple[str, int]]]:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def crop_box(self, index: int) -> Box | None:
        """The integer crop applied to image ``index`` before the transform (None: no crop)."""
        return None

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        box = self.crop_box(index)
        from_file = getattr(self.transform, "from_file", None)
        if from_file is not None:
            return from_file(path, box=box), label
        image = load_rgb(path, box)
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def image_size(self, index: int) -> tuple[int, int]:
        """``(width, height)`` of image ``index`` (of its crop, if cropped), from the header.

        Book: chapter 6, *Visualising and measuring attention*.
        """
        box = self.crop_box(index)
        if box is not None:
            return box[2] - box[0], box[3] - box[1]
        return read_image_size(self.samples[index][0])

    def _keep(self, indices: list[int]) -> None:
        """Restrict the dataset to ``indices``; subclasses with per-image data extend this."""
        self.samples = [self.samples[i] for i in indices]
        self.targets = [self.targets[i] for i in indices]

    def _drop_corrupt(self) -> None:
        good = [i for i, (path, _) in enumerate(self.samples) if verify_image(path) is None]
        dropped = len(self.samples) - len(good)
        if dropped:
            warnings.warn(f"{self.name} ({self.split}): skipped {dropped} corrupt, unreadable "
                          f"or missing image(s) of {len(self.samples)} under {self.root}",
                          stacklevel=3)
            self._keep(good)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
                f"images={len(self)}, classes={self.num_classes})")
