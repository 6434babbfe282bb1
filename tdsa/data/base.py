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

from tdsa.errors import ConfigError, DataError
from tdsa.validation import check_int, check_number

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

try:
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_jpeg as _decode_jpeg

    _RGB = ImageReadMode.RGB
except ImportError:  # a torchvision without image decoders: PIL decodes everything
    _decode_jpeg = None

Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive), integer pixels
Column = type | tuple[str, ...]  # the kind of an annotation column, see read_table


def _read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read image file {path}: {exc}") from None


def _open(data: bytes, path: str | Path) -> Image.Image:
    if not data:
        raise DataError(f"not a readable image: {path} (empty file, 0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise DataError(f"not a readable image: {path} (not a known image format, "
                        f"{len(data)} bytes starting {data[:8]!r})") from None
    except (OSError, ValueError) as exc:
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
    """
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except UnidentifiedImageError:
        size = Path(path).stat().st_size
        reason = "empty file, 0 bytes" if size == 0 else f"not a known image format, {size} bytes"
        raise DataError(f"not a readable image: {path} ({reason})") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"not a readable image: {path} ({exc})") from None


def verify_image(path: str | Path) -> str | None:
    """Fully decode an image (JPEGs at 1/8 scale, which still reads every byte); return
    ``None`` if it is good, else the reason it is not.
    """
    try:
        image = _open(_read_bytes(path), path)
        image.draft("RGB", (1, 1))
        _to_rgb(image, path)
    except DataError as exc:
        return str(exc)
    return None


class Row(list):
    """The fields of one annotation line, with ``line`` (1-based) and ``path`` for messages."""

    line: int
    path: Path


def _expected(kind: Column) -> str:
    if kind is int:
        return "an integer"
    if kind is float:
        return "a finite number"
    if isinstance(kind, tuple):
        return "one of " + ", ".join(repr(v) for v in kind)
    return "text"


def _convert(text: str, kind: Column) -> Any:
    """``text`` as ``kind``; ValueError when it is not one."""
    if kind is int:
        return int(text)
    if kind is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    if isinstance(kind, tuple):
        if text not in kind:
            raise ValueError(text)
        return text
    return text


def read_lines(path: Path, *, dataset: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of every line of a UTF-8 text file; a byte that is not UTF-8
    raises :class:`DataError` naming the file and the line.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{dataset}: cannot read {path}: {exc.strerror or exc}") from None
    lines = []
    for number, chunk in enumerate(raw.splitlines(), 1):
        try:
            lines.append((number, chunk.decode("utf-8")))
        except UnicodeDecodeError:
            shown = chunk.decode("utf-8", errors="backslashreplace")
            raise DataError(f"{dataset}: {path} line {number}: expected UTF-8 text, "
                            f"got {shown!r}") from None
    return lines


def read_table(path: Path, columns: int, *, dataset: str, tree: str,
               types: Sequence[Column] | None = None) -> list[Row]:
    """Rows of a whitespace-separated annotation file; the last column keeps its spaces.

    ``types`` gives each column's kind: ``str``, ``int``, ``float`` (finite) or a tuple of the
    allowed strings; fields are converted to it. A missing file, a short row, a field of the
    wrong kind or a byte that is not UTF-8 raises :class:`DataError` as one line
    ``FILE line N: what was expected, got 'TEXT'`` (for a missing file: the expected tree).
    """
    if not path.is_file():
        raise DataError(f"{dataset}: missing annotation file {path}; expected {tree}")
    kinds = list(types) if types is not None else [str] * columns
    rows = []
    for number, line in read_lines(path, dataset=dataset):
        if not line.strip():
            continue
        fields = line.split(maxsplit=columns - 1)
        if len(fields) != columns:
            raise DataError(f"{dataset}: {path} line {number}: expected {columns} fields, "
                            f"got {line.strip()!r}")
        fields[-1] = fields[-1].strip()
        row = Row()
        for index, (text, kind) in enumerate(zip(fields, kinds, strict=True), 1):
            try:
                row.append(_convert(text, kind))
            except ValueError:
                raise DataError(f"{dataset}: {path} line {number}: expected field {index} to be "
                                f"{_expected(kind)}, got {text!r} (in {line.strip()!r})") from None
        row.line, row.path = number, path
        rows.append(row)
    return rows


def index_rows(rows: Sequence[Row], *, dataset: str) -> dict[Any, Row]:
    """``{first field: row}``; an id that appears twice raises :class:`DataError` naming the
    file and both lines.
    """
    index: dict[Any, Row] = {}
    for row in rows:
        first = index.setdefault(row[0], row)
        if first is not row:
            raise DataError(f"{dataset}: {row.path} line {row.line}: expected a new id, got "
                            f"{str(row[0])!r} (already on line {first.line})")
    return index


def check_split(dataset: str, split: str, valid: Sequence[str]) -> str:
    """Return ``split`` if it is one of ``valid``, else raise ConfigError (a ValueError)
    listing them.
    """
    if split not in valid:
        raise ConfigError(f"{dataset}: unknown split {split!r}; valid splits: {', '.join(valid)}")
    return split


VAL_FRACTION = 0.1
"""Default share of each class's train images held out as ``val`` where no official val exists."""
VAL_SEED = 0
"""Default seed of that hold-out."""
CARVED_SPLITS = ("val", "train_minus_val")
"""The splits carved out of ``train`` for datasets without an official validation split."""


def stratified_holdout(labels: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """Sorted positions in ``labels`` of a seeded, class-stratified hold-out (a val split).

    A class with ``n >= 2`` images gives ``min(n - 1, max(1, floor(fraction * n + 0.5)))``
    of them, so every class keeps at least one training image and has at least one held out;
    a class with one image keeps it. The images of class ``c`` are chosen by a permutation
    from ``numpy.random.default_rng([seed, c])``: the same labels, fraction and seed give the
    same hold-out, and one class's choice does not depend on the other classes. Bad
    ``fraction`` or ``seed`` raise :class:`tdsa.errors.ConfigError`.
    """
    fraction = check_val_fraction(fraction)
    seed = check_val_seed(seed)
    values = np.asarray(labels, dtype=np.int64).reshape(-1)
    if values.size and values.min() < 0:
        raise ValueError(f"labels must be 0-based class indices, got {int(values.min())}")
    held = []
    for label in np.unique(values):
        members = np.flatnonzero(values == label)
        n = members.size
        if n < 2:
            continue
        k = min(n - 1, max(1, math.floor(fraction * n + 0.5)))
        order = np.random.default_rng([seed, int(label)]).permutation(n)
        held.append(members[order[:k]])
    return np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)


def check_val_fraction(value: Any) -> float:
    """``value`` if it is a number strictly between 0 and 1, else ConfigError."""
    return check_number("val_fraction", value, 0.0, 1.0, open_low=True, open_high=True)


def check_val_seed(value: Any) -> int:
    """``value`` if it is a non-negative integer, else ConfigError."""
    return check_int("val_seed", value, low=0)


class FGVCDataset(Dataset):
    """Base class of the tdsa datasets: items are ``(image, label)`` with 0-based int labels.

    Attributes: ``root``, ``split``, ``transform``, ``classes`` (names), ``samples``
    (``(path, label)``), ``targets`` (labels), ``num_classes``. Subclasses implement
    ``_load() -> (classes, samples)``. If ``transform`` has a ``from_file(path, box=None)``
    method (the fast transforms of :func:`tdsa.data.build_transforms` do), it decodes the file
    itself; otherwise the image is decoded to RGB PIL and passed to ``transform``.
    ``skip_corrupt=True`` verifies every image at construction and drops the bad ones with
    one warning.

    Datasets without an official validation split (``carve_val``: CUB, Cars, NABirds, an
    image folder without ``val/``) also have the splits ``val`` and ``train_minus_val``: a
    seeded, class-stratified hold-out of ``train`` (:func:`stratified_holdout` with
    ``val_fraction``, default 0.1, and ``val_seed``, default 0) and the rest of ``train``.
    ``train`` stays the official full training set (the field's protocol): tune on
    ``train_minus_val`` + ``val``, then train the chosen setting on ``train``, test on
    ``test``. Next to an official val split, ``train_minus_val`` is the official train split.
    """

    name: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    tree: ClassVar[str] = ""
    carve_val: ClassVar[bool] = False

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[Any], Any] | None = None, *,
                 skip_corrupt: bool = False, val_fraction: float | None = None,
                 val_seed: int | None = None) -> None:
        carved = tuple(s for s in CARVED_SPLITS if self.carve_val and s not in self.splits)
        requested = check_split(self.name, split, self.splits + carved)
        self.root = Path(root)
        self.transform = transform
        if not self.carve_val and (val_fraction is not None or val_seed is not None):
            raise ConfigError(f"{self.name}: val_fraction and val_seed apply only to datasets "
                              f"without an official val split; {self.name} has its own val")
        self.val_fraction = VAL_FRACTION if val_fraction is None \
            else check_val_fraction(val_fraction)
        self.val_seed = VAL_SEED if val_seed is None else check_val_seed(val_seed)
        if not self.root.is_dir():
            raise DataError(f"{self.name}: dataset root {self.root} does not exist; "
                            f"expected {self.tree}")
        carve = requested in CARVED_SPLITS and self._carves_val()
        # _load reads self.split: both carved splits come out of the official train split, and
        # next to an official val, train_minus_val is the official train split itself.
        self.split = "train" if carve or requested == "train_minus_val" else requested
        self.classes, self.samples = self._load()
        self.targets = [label for _, label in self.samples]
        self.split = requested
        if carve:
            held = set(stratified_holdout(self.targets, self.val_fraction,
                                          self.val_seed).tolist())
            self._keep([i for i in range(len(self.targets)) if (i in held) == (requested == "val")])
        if skip_corrupt:
            self._drop_corrupt()

    def _carves_val(self) -> bool:
        """Whether ``val`` and ``train_minus_val`` are carved out of ``train`` at this root."""
        return self.carve_val

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

    def fill_cache(self) -> int:
        """Decode (and resize) every image not yet in the transform's cache, when the
        transform keeps one (:meth:`tdsa.data.transforms.FastTransform.enable_cache`); the
        number decoded. Loader worker processes started after it read the pixels from the
        cache instead of decoding them again in every epoch."""
        prepared = getattr(self.transform, "prepared", None)
        cache = getattr(self.transform, "cache", None)
        if prepared is None or cache is None:
            return 0
        missing = [i for i, (path, _) in enumerate(self.samples)
                   if (str(path), self.crop_box(i)) not in cache]
        for i in missing:
            prepared(self.samples[i][0], self.crop_box(i))
        return len(missing)

    def image_size(self, index: int) -> tuple[int, int]:
        """``(width, height)`` of image ``index`` (of its crop, if cropped), from the header.

        Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
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
        """The class, root, split and sizes; the root relative to the working folder when it
        lies inside it, else ``.../<folder name>`` (no machine's absolute path is printed)."""
        root = self.root.resolve()
        try:
            shown = str(root.relative_to(Path.cwd().resolve()))
        except ValueError:
            shown = f".../{root.name}"
        return (f"{type(self).__name__}(root={shown!r}, split={self.split!r}, "
                f"images={len(self)}, classes={self.num_classes})")
