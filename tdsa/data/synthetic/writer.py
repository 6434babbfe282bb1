"""Writing the synthetic dataset: :func:`generate` renders every image and writes it, with its
annotations, in CUB-200-2011's on-disk format, then the metadata."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import IO, Any

from PIL import Image
from tqdm import tqdm

from tdsa.data.synthetic.attributes import PARTS, check_unique_part
from tdsa.data.synthetic.classes import check_num_classes, choose_classes, class_name
from tdsa.data.synthetic.metadata import (
    GENERATOR_VERSION,
    METADATA_FILE,
    VAL_FOLDER,
    build_metadata,
)
from tdsa.data.synthetic.random_streams import image_rng
from tdsa.data.synthetic.render import RENDER_ARGS, render_bird
from tdsa.errors import ConfigError, DataError
from tdsa.validation import check_bool, check_int, check_number

DEFAULT_ROOT = "data/synthetic"

_OUTPUTS = (
    "images",
    "parts",
    "images.txt",
    "classes.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
    VAL_FOLDER,
    METADATA_FILE + ".tmp",
)


def generate(
    root: str | Path = DEFAULT_ROOT, *, num_classes: int = 12, train_per_class: int = 40,
    test_per_class: int = 30, image_size: int = 128, seed: int = 0, fine_scale: float = 1.0,
    distractors: bool = True, jpeg_quality: int = 92, min_scale: float = 0.85,
    max_scale: float = 1.15, max_rotation: float = 25.0, noise_std: float = 8.0,
    val_per_class: int = 0, unique_part: str | None = None, overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write the synthetic bird dataset under ``root`` in CUB-200-2011's on-disk format.

    Files: ``images/<NNN.Name>/<file>.jpg``, ``images.txt``, ``classes.txt``,
    ``image_class_labels.txt``, ``train_test_split.txt``, ``bounding_boxes.txt``,
    ``parts/parts.txt``, ``parts/part_locs.txt`` and, written last as the completion marker,
    ``tdsa_synthetic.json`` (arguments, parts, attributes, classes). If ``root`` already holds
    a complete dataset made with the same arguments and version, nothing is written. A root
    that is non-empty without the marker, or was made with other arguments, raises
    :class:`tdsa.errors.DataError` unless ``overwrite=True``. Bad arguments raise
    :class:`tdsa.errors.ConfigError` (a ``ValueError``). The same arguments give
    byte-identical files. Returns ``root`` as a :class:`pathlib.Path`.

    ``val_per_class > 0`` also writes a validation split of that many images per class into
    ``root/val/``, a CUB-format tree of its own (the same files; every image is marked ``0``
    in its ``train_test_split.txt``), so the CUB loader reads ``root`` exactly as without it.
    Validation images come from their own random stream (:func:`image_rng` with ``val=True``):
    the train and test files are byte-identical with and without them, and the metadata
    records ``val_per_class`` only when it is positive.

    ``unique_part`` (one of :data:`UNIQUE_PARTS`, e.g. ``"eye_ring"``) gives each class a value
    of that attribute no other class has (:func:`choose_classes`); the metadata records it, and
    the attribute's extra values under ``attributes``, only when it is set, so ``None`` writes
    the files it wrote before the option existed.

    Book: chapter 1, *Generating the dataset*.
    """
    args = _checked_args(
        num_classes=num_classes, train_per_class=train_per_class, test_per_class=test_per_class,
        image_size=image_size, seed=seed, fine_scale=fine_scale, distractors=distractors,
        jpeg_quality=jpeg_quality, min_scale=min_scale, max_scale=max_scale,
        max_rotation=max_rotation, noise_std=noise_std, val_per_class=val_per_class,
        unique_part=unique_part,
    )
    check_bool("overwrite", overwrite)
    root = Path(root)
    if not _prepare_root(root, args, overwrite):
        _write_dataset(root, args, progress)
    return root


def encode_as_saved(image: Image.Image, quality: int) -> Image.Image:
    """``image`` through the generator's JPEG encoding (as the files on disk are)."""
    buffer = io.BytesIO()
    _save_jpeg(image, buffer, quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def _save_jpeg(image: Image.Image, target: Path | IO[bytes], quality: int) -> None:
    """The generator's JPEG encoding of ``image`` into the file or buffer ``target``."""
    image.save(target, format="JPEG", quality=quality, subsampling=0)


def _checked_args(**given: Any) -> dict[str, Any]:
    """The arguments of :func:`generate` that the metadata records, checked; ``val_per_class``
    and ``unique_part`` only when set, so that datasets without them keep their metadata."""
    args: dict[str, Any] = {
        "num_classes": check_num_classes(given["num_classes"]),
        "train_per_class": check_int("train_per_class", given["train_per_class"], 1, 100_000),
        "test_per_class": check_int("test_per_class", given["test_per_class"], 1, 100_000),
        "image_size": check_int("image_size", given["image_size"], 48, 2048),
        "seed": check_int("seed", given["seed"], 0, 2**63 - 1),
        "fine_scale": check_number("fine_scale", given["fine_scale"], 0.25, 2.0),
        "distractors": check_bool("distractors", given["distractors"]),
        "jpeg_quality": check_int("jpeg_quality", given["jpeg_quality"], 1, 100),
        "min_scale": check_number("min_scale", given["min_scale"], 0.3, 1.3),
        "max_scale": check_number("max_scale", given["max_scale"], 0.3, 1.3),
        "max_rotation": check_number("max_rotation", given["max_rotation"], 0.0, 90.0),
        "noise_std": check_number("noise_std", given["noise_std"], 0.0, 64.0),
    }
    if args["min_scale"] > args["max_scale"]:
        raise ConfigError(f"min_scale={given['min_scale']} must not exceed "
                          f"max_scale={given['max_scale']}")
    if check_int("val_per_class", given["val_per_class"], 0, 100_000):
        args["val_per_class"] = int(given["val_per_class"])
    if check_unique_part(given["unique_part"]) is not None:
        args["unique_part"] = given["unique_part"]
    return args


def _write_dataset(root: Path, args: dict[str, Any], progress: bool) -> None:
    """Render and write every image of the dataset ``args`` describes into the prepared
    ``root``, then its metadata (the completion marker)."""
    classes = choose_classes(args["num_classes"], args.get("unique_part"))
    class_dirs = [f"{i:03d}.{class_name(attrs)}" for i, attrs in enumerate(classes, start=1)]
    val_per_class = args.get("val_per_class", 0)
    per_class = args["train_per_class"] + args["test_per_class"]
    total = args["num_classes"] * (per_class + val_per_class)
    with tqdm(total=total, desc="synth", unit="img", disable=not progress) as bar:
        _write_tree(root, args, classes, class_dirs, val=False, bar=bar)
        if val_per_class:
            _write_tree(root / VAL_FOLDER, args, classes, class_dirs, val=True, bar=bar)
    metadata = build_metadata(args, classes, class_dirs)
    tmp = root / (METADATA_FILE + ".tmp")
    tmp.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    tmp.replace(root / METADATA_FILE)


def _write_tree(
    base: Path,
    args: dict[str, Any],
    classes: list[dict[str, str]],
    class_dirs: list[str],
    *,
    val: bool,
    bar: tqdm,
) -> None:
    """Render and write one CUB-format tree: train + test under the root, or ``val/``."""
    train_per_class = 0 if val else args["train_per_class"]
    per_class = args["val_per_class"] if val else train_per_class + args["test_per_class"]
    render_kw = {k: args[k] for k in RENDER_ARGS}
    images, labels, split, boxes, locs = [], [], [], [], []
    for class_index, (attrs, class_dir) in enumerate(zip(classes, class_dirs, strict=True)):
        (base / "images" / class_dir).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            index = class_index * per_class + j
            image_id = index + 1
            bird = render_bird(attrs, image_rng(args["seed"], index, val=val), **render_kw)
            rel = f"{class_dir}/{class_dir[4:]}_{'val_' if val else ''}{image_id:05d}.jpg"
            _save_jpeg(bird.image, base / "images" / rel, args["jpeg_quality"])
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {class_index + 1}")
            split.append(f"{image_id} {1 if j < train_per_class else 0}")
            boxes.append(f"{image_id} " + " ".join(f"{v:.1f}" for v in bird.bbox))
            for part in PARTS:
                x, y = bird.parts[part.name]
                locs.append(f"{image_id} {part.id} {x:.1f} {y:.1f} 1")
            bar.update()

    _write_lines(base / "images.txt", images)
    _write_lines(base / "classes.txt", [f"{i} {d}" for i, d in enumerate(class_dirs, start=1)])
    _write_lines(base / "image_class_labels.txt", labels)
    _write_lines(base / "train_test_split.txt", split)
    _write_lines(base / "bounding_boxes.txt", boxes)
    (base / "parts").mkdir(exist_ok=True)
    _write_lines(base / "parts" / "parts.txt", [f"{p.id} {p.name}" for p in PARTS])
    _write_lines(base / "parts" / "part_locs.txt", locs)


def _prepare_root(root: Path, args: dict[str, Any], overwrite: bool) -> bool:
    """True if ``root`` already holds this exact dataset; else make it ready to write."""
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file; expected a directory for the synthetic dataset")
    marker = root / METADATA_FILE
    if not overwrite:
        if marker.is_file():
            try:
                old = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DataError(
                    f"{marker} is unreadable ({exc}); pass overwrite=True (--overwrite) "
                    "to regenerate the dataset"
                ) from exc
            old_args = old.get("args", {}) if isinstance(old, dict) else {}
            version = old.get("generator_version") if isinstance(old, dict) else None
            if version == GENERATOR_VERSION and old_args == args:
                return True
            changes = [
                f"{k}: {old_args.get(k)!r} -> {args.get(k)!r}"
                for k in {**old_args, **args}
                if old_args.get(k) != args.get(k)
            ]
            if version != GENERATOR_VERSION:
                changes.append(f"generator_version: {version!r} -> {GENERATOR_VERSION}")
            raise DataError(
                f"{root} holds a synthetic dataset made with other arguments "
                f"({', '.join(changes)}); pass overwrite=True (--overwrite) to replace it"
            )
        if root.is_dir() and any(root.iterdir()):
            raise DataError(
                f"{root} is not empty but has no {METADATA_FILE} (an interrupted run or another "
                "dataset); pass overwrite=True (--overwrite) to replace it"
            )
    marker.unlink(missing_ok=True)
    for name in _OUTPUTS:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    return False


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
