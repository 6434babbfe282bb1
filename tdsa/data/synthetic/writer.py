"""An embedded fine-grained benchmark: procedural cartoon birds in CUB-200-2011's format.

Every image shows one bird (body, head, eye, beak, wing, tail, breast, legs) with large
intra-class variance: position, scale, rotation, horizontal flip, body colour and a cluttered,
noisy background with eye-like distractor blobs. Classes differ only in small local attributes
at four parts and two granularities: coarse (wing pattern, tail shape) and fine (eye-ring colour,
beak-tip colour, a few pixels each). The class attribute combinations are chosen so that every
attribute value is shared by at least two classes: no single part identifies a class, unless
``unique_part`` names a fine part's attribute: then each class has a colour of that part that
no other class has (extra values, :data:`UNIQUE_VALUES`), and that part alone separates them.

The output is read by the real CUB-200-2011 loader (``tdsa.data.build_dataset("synthetic", ...)``).
An optional validation split lives in ``val/``, a CUB-format tree of its own. Rendering is a pure
function of (seed, image index, class attributes), so any image can be re-rendered, and rendered
as its *counterfactual twin* (:func:`render_twin`): the same bird, pose, background and noise with
one part's attribute changed.

Book: chapter 1, *Generating the dataset*.
"""

from __future__ import annotations

import colorsys
import functools
import io
import json
import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from tdsa.errors import ConfigError, DataError
from tdsa.validation import check_bool, check_choice, check_int, check_number

GENERATOR_VERSION = 1
"""Bumped whenever the same arguments would produce different files."""

DEFAULT_ROOT = "data/synthetic"
METADATA_FILE = "tdsa_synthetic.json"
VAL_FOLDER = "val"
"""The validation split's CUB-format tree, inside the dataset root (see :func:`generate`)."""
#: The arguments of :func:`generate` that :func:`render_bird` takes (the rest are bookkeeping).
RENDER_ARGS = (
    "image_size",
    "fine_scale",
    "distractors",
    "min_scale",
    "max_scale",
    "max_rotation",
    "noise_std",
)

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "wing": ("plain", "bar", "spots"),
    "tail": ("fan", "fork", "point"),
    "eye_ring": ("red", "yellow", "blue"),
    "beak_tip": ("black", "orange"),
}
"""Class attributes and their values."""


@dataclass(frozen=True)
class Part:
    """One annotated part: CUB-style 1-based ``id`` and the class attribute it carries, if any.
    """

    id: int
    name: str
    granularity: str | None
    attribute: str | None


PARTS: tuple[Part, ...] = (
    Part(1, "beak", "fine", "beak_tip"),
    Part(2, "eye", "fine", "eye_ring"),
    Part(3, "wing", "coarse", "wing"),
    Part(4, "tail", "coarse", "tail"),
    Part(5, "breast", None, None),
    Part(6, "leg", None, None),
)
"""The annotated parts, in ``parts/parts.txt`` order."""

UNIQUE_PARTS: tuple[str, ...] = tuple(
    p.attribute for p in PARTS if p.granularity == "fine" and p.attribute is not None
)
"""The attributes ``unique_part`` may name: the fine parts' colours (``beak_tip``, ``eye_ring``)."""
UNIQUE_VALUES: tuple[str, ...] = tuple(
    f"u{k:02d}" for k in range(1, math.prod(len(v) for v in ATTRIBUTES.values()) + 1)
)
"""The extra values of a ``unique_part`` attribute, in the order classes take them: colours
apart from the fine parts' own and from each other (:func:`unique_colours`)."""

# Label-map ids of drawn regions that are not annotated parts.
_BODY_LABEL = len(PARTS) + 1
_HEAD_LABEL = len(PARTS) + 2
_PART_LABEL = {p.name: p.id for p in PARTS}

# Canonical bird geometry, in pixels of a 128-px image at scale 1, bird facing right, y down.
_REF_SIZE = 128.0
_BODY = (0.0, 0.0, 20.0, 13.0)  # centre x, centre y, semi-axes a, b
_HEAD = (20.0, -13.0, 9.5)  # centre x, centre y, radius
_EYE = (22.5, -14.5)
_EYE_RING_RADIUS = 4.6  # outer radius of the coloured ring at fine_scale 1
_PUPIL_FRACTION = 0.45
_BEAK = ((25.0, -17.0), (42.0, -13.2), (42.0, -11.2), (25.0, -8.0))  # base up, tip up/down, base
_BEAK_TIP_LENGTH = 6.0  # along the beak, at fine_scale 1
_BEAK_VISIBLE = 12.5  # beak length outside the head
_WING = (-5.0, -17.0, 13.0, 6.5, -20.0)  # centre x, centre y, a, b, tilt in degrees
_TAIL_ATTACH = (-17.0, -2.0)
_TAIL_TILT = 10.0  # degrees, tail raised towards the back
_TAIL_LOCATION = (-7.5, 0.0)  # in the tail's own frame (pointing along -x from the attachment)
_TAIL_SHAPES: dict[str, tuple[tuple[float, float], ...]] = {
    "fan": ((0, -3.5), (-15, -10), (-18.5, -6), (-19.5, 0), (-18.5, 6), (-15, 10), (0, 3.5)),
    "fork": ((0, -3.5), (-19.5, -9.5), (-20.5, -5), (-11, 0), (-20.5, 5), (-19.5, 9.5), (0, 3.5)),
    "point": ((0, -4), (-12, -3.5), (-22, 0), (-12, 3.5), (0, 4)),
}
_BREAST = (9.0, 4.5, 8.0, 5.5)
_LEGS = (((4.0, 11.0), (5.0, 22.0), (9.5, 23.0)), ((-4.0, 11.0), (-5.0, 22.0), (-0.5, 23.0)))
_LEG_WIDTH = 3.5
_LEG_LOCATION = 0.6  # fraction along the front leg, below the body

_RING_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "yellow": (240, 210, 35),
    "blue": (45, 85, 230),
}
_TIP_COLOURS: dict[str, tuple[int, int, int]] = {"black": (30, 28, 28), "orange": (240, 125, 25)}
_PUPIL_RGB = (25, 22, 20)
_BEAK_RGB = (170, 155, 125)
_DISTRACTOR_RINGS = (*_RING_COLOURS.values(), (235, 235, 235), (240, 125, 25), (60, 170, 70))
_SUPERSAMPLE = 2
_VAL_STREAM = (1,)  # SeedSequence spawn keys (see image_rng, twin_rng)
_TWIN_STREAM = 0


@dataclass(frozen=True)
class RenderedBird:
    """One rendered image with its ground truth.

    ``labels`` is an ``H x W`` uint8 map: 0 background, ``Part.id`` for the annotated parts,
    larger ids for the rest of the bird (body, head). ``parts`` maps part names to 0-based
    ``(x, y)`` pixel coordinates; ``bbox`` is ``(x, y, width, height)`` of the bird.
    """

    image: Image.Image
    labels: np.ndarray
    parts: dict[str, tuple[float, float]]
    bbox: tuple[float, float, float, float]


def _seed_sequence(seed: int, index: int, stream: tuple[int, ...]) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, index], spawn_key=stream)


def image_rng(seed: int, index: int, *, val: bool = False) -> np.random.Generator:
    """The random generator of image ``index`` (0-based, in ``images.txt`` order).

    ``val=True`` gives the generator of validation image ``index`` (in ``val/images.txt``
    order): a stream of its own (spawn key ``(1,)``), so no validation image repeats a train or
    test image and adding a validation split changes no train or test image.
    """
    return np.random.default_rng(_seed_sequence(seed, index, _VAL_STREAM if val else ()))


def twin_rng(seed: int, index: int, *, val: bool = False) -> np.random.Generator:
    """The generator of the attribute-specific draws of image ``index``'s counterfactual twins.

    Only a swapped-in value that needs random draws of its own (a wing pattern the class does
    not have: the jitter of its bars or spots) uses it; everything else about a twin comes from
    :func:`image_rng`, exactly as for the original image. A stream separate from every image's
    (spawn key ``(0,)``, ``(1, 0)`` for validation images).
    """
    return np.random.default_rng(
        _seed_sequence(seed, index, (*(_VAL_STREAM if val else ()), _TWIN_STREAM))
    )


def choose_classes(num_classes: int, unique_part: str | None = None) -> list[dict[str, str]]:
    """Attribute combinations of ``num_classes`` classes, the same for every seed.

    Chosen (deterministic local search) so that, when possible, every value that occurs is
    shared by at least two classes and every value is used; every attribute is needed (some
    pair of classes differs only there); and as many (class, attribute) pairs as possible have
    a twin class that differs only in that attribute.

    With ``unique_part`` (one of :data:`UNIQUE_PARTS`) each class then gets a value of that
    attribute that no other class has: the first class with each value keeps it, the others
    take the next of :data:`UNIQUE_VALUES`; the other attributes are those of the search.
    """
    _check_num_classes(num_classes)
    unique_part = check_unique_part(unique_part)
    names = list(ATTRIBUTES)
    classes = [
        {name: ATTRIBUTES[name][v] for name, v in zip(names, row, strict=True)}
        for row in _search_classes(num_classes)
    ]
    if unique_part is not None:
        extra, taken = iter(UNIQUE_VALUES), set()
        for attrs in classes:
            if attrs[unique_part] in taken:
                attrs[unique_part] = next(extra)
            taken.add(attrs[unique_part])
    return classes


def check_unique_part(value: Any, key: str = "unique_part") -> str | None:
    """``value`` when it is None or one of :data:`UNIQUE_PARTS`; else a ConfigError that
    names ``key`` and the allowed names."""
    if value is None:
        return None
    return check_choice(key, value, UNIQUE_PARTS)


def value_lists(classes: list[dict[str, str]]) -> dict[str, list[str]]:
    """Each attribute's values in a dataset of ``classes``: those of :data:`ATTRIBUTES`, then
    the extra values (:data:`UNIQUE_VALUES`) the classes use, in order."""
    values = {name: list(v) for name, v in ATTRIBUTES.items()}
    for attrs in classes:
        for name, value in attrs.items():
            if value not in values[name]:
                values[name].append(value)
    return values


@functools.cache
def unique_colours() -> dict[str, tuple[int, int, int]]:
    """The RGB colour of each of :data:`UNIQUE_VALUES`. A drawn ring's colour is its value's
    times 0.8..1 (plus jitter), a segment towards black; each extra value is in turn the
    colour of a 15-step grid whose segment is farthest from those of the fine parts' own
    colours (eye rings, beak tips, pupil, beak) and of the values chosen before it."""
    levels = np.arange(0, 256, 15, dtype=float)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    fixed = [*_RING_COLOURS.values(), *_TIP_COLOURS.values(), _PUPIL_RGB, _BEAK_RGB]
    nearest = np.full(len(grid), np.inf)
    for colour in fixed:
        nearest = np.minimum(nearest, _segment_distance(grid, np.asarray(colour, dtype=float)))
    chosen: dict[str, tuple[int, int, int]] = {}
    for name in UNIQUE_VALUES:
        best = grid[int(np.argmax(nearest))]
        red, green, blue = (int(v) for v in best)
        chosen[name] = (red, green, blue)
        nearest = np.minimum(nearest, _segment_distance(grid, best))
    return chosen


def _segment_distance(colours: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The least RGB distance between ``colours`` ``[N, 3]`` and ``colour``, each times any of
    0.8..1 (sampled at five points): ``[N]``."""
    shades = np.linspace(0.8, 1.0, 5)
    ours = colours[:, None, None, :] * shades[None, :, None, None]
    theirs = colour[None, None, None, :] * shades[None, None, :, None]
    return np.linalg.norm(ours - theirs, axis=-1).min(axis=(1, 2))


def _colour(own: Mapping[str, tuple[int, int, int]], value: str) -> tuple[int, int, int]:
    """The colour of a fine attribute's ``value``: its own, else an extra value's."""
    return own[value] if value in own else unique_colours()[value]


def render_bird(
    attributes: Mapping[str, str],
    rng: np.random.Generator,
    *,
    image_size: int = 128,
    fine_scale: float = 1.0,
    distractors: bool = True,
    min_scale: float = 0.85,
    max_scale: float = 1.15,
    max_rotation: float = 25.0,
    noise_std: float = 8.0,
    swap: Mapping[str, str] | None = None,
    swap_rng: np.random.Generator | None = None,
) -> RenderedBird:
    """Draw one bird with the given class attributes, its label map, parts and box.

    All randomness comes from ``rng`` (see :func:`image_rng`), and ``rng`` is consumed in the
    same way whatever ``swap`` is. ``swap`` (attribute name -> value) renders the image's
    counterfactual twin: the bird is painted with those values instead of the class's, and
    everything else (background, clutter, pose, position, colours and their jitter, noise) is
    drawn exactly as for ``attributes``. The bird is placed from the class's own geometry, so a
    swapped tail may reach a pixel or two past the usual margin. A swapped-in wing pattern the
    class does not have draws its jitter from ``swap_rng`` (see :func:`twin_rng`).
    """
    size = image_size
    painted = _painted(attributes, swap)
    background = _background(rng, size)
    # The ring and tip jitter consume the same draws for every value.
    colours = _bird_colours(rng, painted)
    scale = rng.uniform(min_scale, max_scale)
    angle = math.radians(rng.uniform(-max_rotation, max_rotation))
    flip = bool(rng.random() < 0.5)
    wing_a, wing_b = _WING[2], _WING[3]
    pattern = _wing_pattern(rng, attributes["wing"], wing_a, wing_b)
    shapes, locations = _bird_shapes(attributes, colours, fine_scale, pattern)
    drawn = shapes
    if painted != dict(attributes):
        if painted["wing"] != attributes["wing"]:
            if swap_rng is None:
                raise ConfigError(
                    f"swapping the wing pattern {attributes['wing']!r} -> {painted['wing']!r} "
                    "needs swap_rng (tdsa.data.synthetic.twin_rng) for the new pattern's jitter"
                )
            pattern = _wing_pattern(swap_rng, painted["wing"], wing_a, wing_b)
        drawn, _ = _bird_shapes(painted, colours, fine_scale, pattern)

    unit = size / _REF_SIZE * scale
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    mirror = np.array([-1.0 if flip else 1.0, 1.0])

    def place(points: np.ndarray) -> np.ndarray:
        return (points * mirror * unit) @ rot.T

    all_points = np.concatenate([place(pts) for _, pts, _ in shapes])
    low, high = all_points.min(axis=0), all_points.max(axis=0)
    margin = 2.0
    offset = np.empty(2)
    for axis in range(2):
        lo, hi = margin - low[axis], size - 1 - margin - high[axis]
        offset[axis] = rng.uniform(lo, hi) if hi > lo else (lo + hi) / 2

    canvas = background.resize((size * _SUPERSAMPLE,) * 2, Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    eye_radius = _EYE_RING_RADIUS * fine_scale * size / _REF_SIZE
    _draw_clutter(draw, rng, size, eye_radius, distractors)
    placed = [(label, place(pts) + offset, fill) for label, pts, fill in drawn]
    for _, pts, fill in placed:
        draw.polygon(_pil_points(pts * _SUPERSAMPLE + (_SUPERSAMPLE - 1) / 2), fill=fill)
    image = canvas.resize((size, size), Image.Resampling.BOX)

    pixels = np.asarray(image, dtype=np.float32)
    if noise_std > 0:
        pixels = pixels + rng.normal(0.0, noise_std, pixels.shape).astype(np.float32)
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")

    label_image = Image.new("L", (size, size), 0)
    label_draw = ImageDraw.Draw(label_image)
    for label, pts, _ in placed:
        label_draw.polygon(_pil_points(pts), fill=label)
    labels = np.asarray(label_image).copy()

    parts = {}
    for name, xy in locations.items():
        x, y = place(np.array([xy], dtype=float))[0] + offset
        parts[name] = (float(x), float(y))
    ys, xs = np.nonzero(labels)
    bbox = (
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    )
    return RenderedBird(image=image, labels=labels, parts=parts, bbox=bbox)


def _painted(attributes: Mapping[str, str], swap: Mapping[str, str] | None) -> dict[str, str]:
    """The class attributes with ``swap`` applied, every name and value checked."""
    painted = dict(attributes)
    for name, value in {**painted, **dict(swap or {})}.items():
        if name not in ATTRIBUTES:
            raise ConfigError(f"unknown attribute {name!r}; attributes: {', '.join(ATTRIBUTES)}")
        extra = name in UNIQUE_PARTS and value in UNIQUE_VALUES
        if value not in ATTRIBUTES[name] and not extra:
            more = f" or {UNIQUE_VALUES[0]}..{UNIQUE_VALUES[-1]}" if name in UNIQUE_PARTS else ""
            raise ConfigError(f"{name}={value!r} is not a value of {name}; values: "
                              f"{', '.join(ATTRIBUTES[name])}{more}")
    missing = [name for name in ATTRIBUTES if name not in painted]
    if missing:
        raise ConfigError(f"attributes lack {', '.join(missing)}; expected all of "
                          f"{', '.join(ATTRIBUTES)}")
    painted.update(swap or {})
    return painted


SPLITS = ("train", "test", "val", "train_minus_val")
"""Splits of a synthetic root; ``train_minus_val`` is ``train`` (val has images of its own)."""


def part_attribute(part: str) -> str:
    """The class attribute that part ``part`` carries (``"eye"`` -> ``"eye_ring"``).
    """
    carried = {p.name: p.attribute for p in PARTS if p.attribute is not None}
    if part not in carried:
        raise ConfigError(
            f"part {part!r} carries no class attribute; parts with attributes: "
            + ", ".join(f"{name} ({attr})" for name, attr in carried.items())
        )
    return carried[part]


def load_metadata(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The metadata (``tdsa_synthetic.json``) of the synthetic root ``source``; parsed
    metadata is returned as it is.

    Raises :class:`tdsa.errors.DataError` if the file is missing or unreadable, or if the
    dataset was made by another generator version (its images cannot be re-rendered).
    """
    if isinstance(source, Mapping):
        meta, where = dict(source), "the metadata"
    else:
        path = Path(source) / METADATA_FILE
        where = str(path)
        if not path.is_file():
            raise DataError(f"{source} has no {METADATA_FILE}: not a synthetic dataset root; "
                            f"generate one with `python -m tdsa data synth --root {source}`")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} is unreadable ({exc})") from None
    if not isinstance(meta, dict) or not {"args", "classes"} <= set(meta):
        raise DataError(f"{where} is not synthetic metadata (expected 'args' and 'classes')")
    version = meta.get("generator_version")
    if version != GENERATOR_VERSION:
        raise DataError(
            f"{where} was written by generator version {version!r}, this is version "
            f"{GENERATOR_VERSION}: its images cannot be re-rendered; regenerate the dataset "
            "with --overwrite"
        )
    return meta


def image_source(meta: Mapping[str, Any], split: str, index: int) -> tuple[int, int, bool]:
    """``(class index, image index, val)`` of image ``index`` of ``split``, in the order
    ``build_dataset("synthetic", root, split)`` lists it: the arguments of :func:`image_rng`
    that render it.
    """
    if split not in SPLITS:
        raise ConfigError(f"synthetic: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    args = meta["args"]
    train, test = args["train_per_class"], args["test_per_class"]
    per_class = {"train": train, "train_minus_val": train, "test": test,
                 "val": args.get("val_per_class", 0)}[split]
    if per_class == 0:
        raise DataError("synthetic: this dataset has no val split; regenerate it with "
                        "--val-per-class N (val_per_class=N)")
    count = args["num_classes"] * per_class
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
            or not 0 <= index < count:
        raise IndexError(f"synthetic {split}: image index {index!r} is outside 0..{count - 1}")
    class_index, j = divmod(int(index), per_class)
    if split == "val":
        return class_index, int(index), True
    return class_index, class_index * (train + test) + (j if split != "test" else train + j), False


def render_image(
    source: str | Path | Mapping[str, Any],
    split: str,
    index: int,
    *,
    swap: Mapping[str, str] | None = None,
) -> RenderedBird:
    """Re-render image ``index`` of ``split`` of a synthetic dataset (a root or its metadata),
    optionally with attributes swapped (:func:`render_bird`'s ``swap``).

    Without ``swap`` the pixels are those the generator saved before JPEG encoding.
    """
    meta = load_metadata(source)
    class_index, image_index, val = image_source(meta, split, index)
    args = meta["args"]
    seed = args["seed"]
    return render_bird(
        meta["classes"][class_index]["attributes"],
        image_rng(seed, image_index, val=val),
        **{k: args[k] for k in RENDER_ARGS},
        swap=swap,
        swap_rng=twin_rng(seed, image_index, val=val),
    )


def render_twin(
    source: str | Path | Mapping[str, Any], split: str, index: int, *, part: str, value: str
) -> RenderedBird:
    """The counterfactual twin of image ``index`` of ``split``: the same bird, pose,
    background, clutter and noise with part ``part``'s attribute set to ``value``.

    ``value`` equal to the image's own value gives the original image.
    """
    return render_image(source, split, index, swap={part_attribute(part): value})


def attribute_values(source: str | Path | Mapping[str, Any], attribute: str) -> list[str]:
    """The values of ``attribute`` in a synthetic dataset (a root or its metadata): those of
    :data:`ATTRIBUTES`, then the extra ones its classes use when it was generated with
    ``unique_part`` set to ``attribute``."""
    meta = load_metadata(source)
    if attribute not in meta["attributes"]:
        raise ConfigError(f"unknown attribute {attribute!r}; attributes: "
                          f"{', '.join(meta['attributes'])}")
    return list(meta["attributes"][attribute])


def twin_values(source: str | Path | Mapping[str, Any], split: str, index: int,
                part: str) -> list[str]:
    """The values of ``part``'s attribute other than image ``index``'s own, in the order of
    :func:`attribute_values`: the twins that exist for that part.
    """
    meta = load_metadata(source)
    attribute = part_attribute(part)
    own = meta["classes"][image_source(meta, split, index)[0]]["attributes"][attribute]
    return [v for v in attribute_values(meta, attribute) if v != own]


def generate(
    root: str | Path = DEFAULT_ROOT,
    *,
    num_classes: int = 12,
    train_per_class: int = 40,
    test_per_class: int = 30,
    image_size: int = 128,
    seed: int = 0,
    fine_scale: float = 1.0,
    distractors: bool = True,
    jpeg_quality: int = 92,
    min_scale: float = 0.85,
    max_scale: float = 1.15,
    max_rotation: float = 25.0,
    noise_std: float = 8.0,
    val_per_class: int = 0,
    unique_part: str | None = None,
    overwrite: bool = False,
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
    args: dict[str, Any] = {
        "num_classes": _check_num_classes(num_classes),
        "train_per_class": check_int("train_per_class", train_per_class, 1, 100_000),
        "test_per_class": check_int("test_per_class", test_per_class, 1, 100_000),
        "image_size": check_int("image_size", image_size, 48, 2048),
        "seed": check_int("seed", seed, 0, 2**63 - 1),
        "fine_scale": check_number("fine_scale", fine_scale, 0.25, 2.0),
        "distractors": check_bool("distractors", distractors),
        "jpeg_quality": check_int("jpeg_quality", jpeg_quality, 1, 100),
        "min_scale": check_number("min_scale", min_scale, 0.3, 1.3),
        "max_scale": check_number("max_scale", max_scale, 0.3, 1.3),
        "max_rotation": check_number("max_rotation", max_rotation, 0.0, 90.0),
        "noise_std": check_number("noise_std", noise_std, 0.0, 64.0),
    }
    if args["min_scale"] > args["max_scale"]:
        raise ConfigError(f"min_scale={min_scale} must not exceed max_scale={max_scale}")
    # Recorded only when positive, so that datasets without val keep their metadata.
    if check_int("val_per_class", val_per_class, 0, 100_000):
        args["val_per_class"] = int(val_per_class)
    if check_unique_part(unique_part) is not None:
        args["unique_part"] = unique_part
    check_bool("overwrite", overwrite)
    root = Path(root)
    if _prepare_root(root, args, overwrite):
        return root

    classes = choose_classes(num_classes, unique_part)
    class_dirs = [f"{i:03d}.{_class_name(attrs)}" for i, attrs in enumerate(classes, start=1)]
    per_class = train_per_class + test_per_class
    total = num_classes * (per_class + val_per_class)
    with tqdm(total=total, desc="synth", unit="img", disable=not progress) as bar:
        _write_tree(root, args, classes, class_dirs, val=False, bar=bar)
        if val_per_class:
            _write_tree(root / VAL_FOLDER, args, classes, class_dirs, val=True, bar=bar)
    metadata = {
        "generator_version": GENERATOR_VERSION,
        "args": args,
        "image_size": image_size,
        "parts": [
            {"id": p.id, "name": p.name, "granularity": p.granularity, "attribute": p.attribute}
            for p in PARTS
        ],
        "attributes": value_lists(classes),
        "classes": [
            {"id": i, "name": d, "attributes": attrs}
            for i, (d, attrs) in enumerate(zip(class_dirs, classes, strict=True), start=1)
        ],
    }
    tmp = root / (METADATA_FILE + ".tmp")
    tmp.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    tmp.replace(root / METADATA_FILE)
    return root


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
            bird.image.save(
                base / "images" / rel, format="JPEG", quality=args["jpeg_quality"], subsampling=0
            )
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


# --------------------------------------------------------------------------- class choice


def _check_num_classes(num_classes: Any) -> int:
    limit = math.prod(len(v) for v in ATTRIBUTES.values())
    value = check_int("num_classes", num_classes)
    if not 2 <= value <= limit:
        raise ConfigError(
            f"num_classes={value} is outside 2..{limit}: there are {limit} distinct attribute "
            "combinations "
            f"({' x '.join(ATTRIBUTES)} = {' x '.join(str(len(v)) for v in ATTRIBUTES.values())});"
            f" use 2..{limit}"
        )
    return value


def _class_score(chosen: np.ndarray, sizes: np.ndarray) -> tuple[int, int, int, int]:
    """Lower is better: (bad values, unneeded attributes, imbalance, -twinned pairs)."""
    counts = [np.bincount(chosen[:, a], minlength=int(sizes[a])) for a in range(len(sizes))]
    bad_values = sum(int(np.sum(c <= 1)) for c in counts)
    differs = chosen[:, None, :] != chosen[None, :, :]
    twin = differs & (differs.sum(axis=-1) == 1)[..., None]
    twinned = int(twin.any(axis=1).sum())
    unneeded = int((~twin.any(axis=(0, 1))).sum())
    imbalance = sum(int(c.max() - c.min()) for c in counts)
    return bad_values, unneeded, imbalance, -twinned


@functools.cache
def _search_classes(k: int) -> tuple[tuple[int, ...], ...]:
    """Value indices of k classes: deterministic hill climbing with restarts over k-subsets."""
    combos = np.array(list(product(*(range(len(v)) for v in ATTRIBUTES.values()))))
    n = len(combos)
    sizes = np.array([len(v) for v in ATTRIBUTES.values()])
    if k == n:
        return tuple(tuple(int(v) for v in row) for row in combos)
    rng = np.random.default_rng(20210131)
    best_set, best_score = None, None
    for _ in range(6):
        current = rng.permutation(n)
        score = _class_score(combos[current[:k]], sizes)
        for _ in range(1500):
            i, j = int(rng.integers(k)), int(rng.integers(k, n))
            current[[i, j]] = current[[j, i]]
            new = _class_score(combos[current[:k]], sizes)
            if new <= score:
                score = new
            else:
                current[[i, j]] = current[[j, i]]
        if best_score is None or score < best_score:
            best_set, best_score = np.sort(current[:k]), score
    return tuple(tuple(int(v) for v in row) for row in combos[best_set])


def _class_name(attrs: Mapping[str, str]) -> str:
    suffix = {"wing": "wing", "tail": "tail", "eye_ring": "eye", "beak_tip": "beak"}
    return "Synthbird_" + "_".join(f"{attrs[k]}_{suffix[k]}" for k in ATTRIBUTES)


# --------------------------------------------------------------------------- drawing


def _pil_points(points: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points]


def _ellipse(
    cx: float, cy: float, a: float, b: float, tilt: float = 0.0, n: int = 28
) -> np.ndarray:
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return _to_frame(np.stack([a * np.cos(t), b * np.sin(t)], axis=1), (cx, cy), tilt)


def _to_frame(local: np.ndarray, centre: tuple[float, float], tilt_deg: float) -> np.ndarray:
    """Rotate local points by ``tilt_deg`` and move them to ``centre``."""
    c, s = math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))
    return local @ np.array([[c, s], [-s, c]]) + np.asarray(centre)


def _mix(a: tuple[int, ...], b: tuple[int, ...], t: float) -> tuple[int, int, int]:
    red, green, blue = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return red, green, blue


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: float) -> tuple:
    values = np.clip(np.asarray(colour) + rng.uniform(-amount, amount, 3), 0, 255)
    return tuple(np.rint(values).astype(int).tolist())


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _bird_colours(rng: np.random.Generator, attributes: Mapping[str, str]) -> dict[str, tuple]:
    body = _hsv(rng.random(), rng.uniform(0.15, 0.6), rng.uniform(0.35, 0.85))
    dark = _mix(body, (0, 0, 0), rng.uniform(0.2, 0.45))
    ring = np.asarray(_jitter(rng, _colour(_RING_COLOURS, attributes["eye_ring"]), 20))
    return {
        "body": body,
        "wing": dark,
        "pattern": _mix(dark, (245, 240, 225), rng.uniform(0.6, 0.8)),
        "breast": _mix(body, (245, 240, 230), rng.uniform(0.3, 0.6)),
        "leg": _hsv(rng.uniform(0.0, 0.12), rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.45)),
        "beak": _jitter(rng, _BEAK_RGB, 20),
        "tip": _jitter(rng, _colour(_TIP_COLOURS, attributes["beak_tip"]), 15),
        "ring": tuple(int(v) for v in np.rint(ring * rng.uniform(0.8, 1.0))),
        "pupil": _jitter(rng, _PUPIL_RGB, 10),
    }


def _bird_shapes(
    attributes: Mapping[str, str],
    colours: dict[str, tuple],
    fine_scale: float,
    pattern: list[np.ndarray],
) -> tuple[list[tuple[int, np.ndarray, tuple]], dict[str, tuple[float, float]]]:
    """Polygons (label, canonical points, fill) in drawing order, and the part locations.

    ``pattern`` holds the wing pattern's polygons in the wing's frame (:func:`_wing_pattern`).
    """
    shapes: list[tuple[int, np.ndarray, tuple]] = []
    locations: dict[str, tuple[float, float]] = {}

    for leg_index, (top, knee, toe) in enumerate(_LEGS):
        for start, end in ((top, knee), (knee, toe)):
            shapes.append((_PART_LABEL["leg"], _segment(start, end, _LEG_WIDTH), colours["leg"]))
        if leg_index == 0:
            locations["leg"] = tuple(np.add(top, np.subtract(knee, top) * _LEG_LOCATION))

    tail = np.array(_TAIL_SHAPES[attributes["tail"]], dtype=float)
    shapes.append((_PART_LABEL["tail"], _to_frame(tail, _TAIL_ATTACH, _TAIL_TILT), colours["wing"]))
    locations["tail"] = tuple(_to_frame(np.array([_TAIL_LOCATION]), _TAIL_ATTACH, _TAIL_TILT)[0])

    shapes.append((_BODY_LABEL, _ellipse(*_BODY), colours["body"]))
    shapes.append((_PART_LABEL["breast"], _ellipse(*_BREAST), colours["breast"]))
    locations["breast"] = _BREAST[:2]

    wx, wy, _, _, wtilt = _WING
    shapes.append((_PART_LABEL["wing"], _ellipse(*_WING), colours["wing"]))
    for local in pattern:
        shapes.append((_PART_LABEL["wing"], _to_frame(local, (wx, wy), wtilt), colours["pattern"]))
    locations["wing"] = (wx, wy)

    beak = np.array(_BEAK)
    tip_len = min(_BEAK_TIP_LENGTH * fine_scale, _BEAK_VISIBLE)
    t = (beak[1, 0] - tip_len - beak[0, 0]) / (beak[1, 0] - beak[0, 0])
    tip_top = beak[0] + (beak[1] - beak[0]) * t
    tip_bottom = beak[3] + (beak[2] - beak[3]) * t
    tip = np.stack([tip_top, beak[1], beak[2], tip_bottom])
    shapes.append((_PART_LABEL["beak"], beak, colours["beak"]))
    shapes.append((_PART_LABEL["beak"], tip, colours["tip"]))
    locations["beak"] = tuple(tip.mean(axis=0))

    shapes.append((_HEAD_LABEL, _ellipse(_HEAD[0], _HEAD[1], _HEAD[2], _HEAD[2]), colours["body"]))
    ring_radius = _EYE_RING_RADIUS * fine_scale
    shapes.append((_PART_LABEL["eye"], _ellipse(*_EYE, ring_radius, ring_radius), colours["ring"]))
    pupil = ring_radius * _PUPIL_FRACTION
    shapes.append((_PART_LABEL["eye"], _ellipse(*_EYE, pupil, pupil, n=16), colours["pupil"]))
    locations["eye"] = _EYE
    return shapes, locations


def _segment(start: tuple[float, float] | np.ndarray, end: tuple[float, float] | np.ndarray,
             width: float) -> np.ndarray:
    p0, p1 = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    d = p1 - p0
    normal = np.array([-d[1], d[0]]) / np.hypot(*d) * width / 2
    return np.stack([p0 + normal, p1 + normal, p1 - normal, p0 - normal])


def _wing_pattern(rng: np.random.Generator, kind: str, a: float, b: float) -> list[np.ndarray]:
    """Pattern polygons in the wing's own frame (ellipse with semi-axes a, b)."""
    if kind == "plain":
        return []
    if kind == "bar":
        bands = []
        for start in (-0.45, 0.05):
            u0 = (start + rng.uniform(-0.05, 0.05)) * a
            u = np.linspace(u0, u0 + 0.24 * a, 6)
            v = b * np.sqrt(np.clip(1 - (u / a) ** 2, 0, 1))
            bands.append(np.concatenate([np.stack([u, -v], 1), np.stack([u[::-1], v[::-1]], 1)]))
        return bands
    spots = ((-0.55, 0.0), (-0.2, -0.45), (-0.2, 0.45), (0.2, 0.0), (0.55, -0.25), (0.5, 0.35))
    radius = 0.3 * b
    return [
        _ellipse(
            u * a + rng.uniform(-0.5, 0.5), v * b + rng.uniform(-0.4, 0.4), radius, radius, n=12
        )
        for u, v in spots
    ]


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """Muted gradient plus low- and mid-frequency colour noise."""
    top = np.array(_hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.4, 0.9)), np.float32)
    bottom = np.array(_hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.8)), np.float32)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    pixels = top + (bottom - top) * ramp
    for cells, amplitude in ((4, 35.0), (12, 18.0)):
        grid = rng.normal(0.0, amplitude, (cells, cells, 3))
        grid_img = Image.fromarray(np.clip(grid + 128, 0, 255).astype(np.uint8), "RGB")
        smooth = grid_img.resize((size, size), Image.Resampling.BICUBIC)
        pixels = pixels + (np.asarray(smooth, dtype=np.float32) - 128.0)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def _draw_clutter(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    size: int,
    eye_radius: float,
    distractors: bool,
) -> None:
    """Branches, leaves and (if ``distractors``) eye-like blobs, on the supersampled canvas."""
    ss = _SUPERSAMPLE
    for _ in range(int(rng.integers(2, 5))):
        start = rng.uniform(0, size, 2)
        end = start + rng.uniform(-0.6, 0.6, 2) * size
        width = rng.uniform(1.5, 4.0) * size / _REF_SIZE
        colour = _hsv(rng.uniform(0.03, 0.12), rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.5))
        draw.polygon(_pil_points(_segment(start, end, width) * ss), fill=colour)
    for _ in range(int(rng.integers(3, 8))):
        cx, cy = rng.uniform(0, size, 2)
        a, b = rng.uniform(3, 9, 2) * size / _REF_SIZE
        colour = _hsv(rng.uniform(0.15, 0.45), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.7))
        leaf = _ellipse(cx, cy, a, b, rng.uniform(0, 180), n=16)
        draw.polygon(_pil_points(leaf * ss), fill=colour)
    if not distractors:
        return
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0, size, 2)
        radius = eye_radius * rng.uniform(0.8, 1.3)
        ring = _DISTRACTOR_RINGS[int(rng.integers(len(_DISTRACTOR_RINGS)))]
        ring = _jitter(rng, ring, 20)
        draw.polygon(_pil_points(_ellipse(cx, cy, radius, radius) * ss), fill=ring)
        pupil = radius * _PUPIL_FRACTION
        draw.polygon(_pil_points(_ellipse(cx, cy, pupil, pupil, n=16) * ss), fill=(25, 22, 20))


# --------------------------------------------------------------------------- files


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


def encode_as_saved(image: Image.Image, quality: int) -> Image.Image:
    """``image`` through the generator's JPEG encoding (as the files on disk are)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling=0)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")
