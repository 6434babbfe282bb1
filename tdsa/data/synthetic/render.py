"""Drawing one bird image: pose and place the bird's shapes over a cluttered background, then
add noise; with its label map, part locations and bounding box. A counterfactual twin is the
same drawing with some attribute values swapped."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from tdsa.data.synthetic.attributes import ATTRIBUTES, UNIQUE_PARTS, UNIQUE_VALUES
from tdsa.data.synthetic.background import background, draw_clutter
from tdsa.data.synthetic.colours import bird_colours
from tdsa.data.synthetic.shapes import (
    EYE_RING_RADIUS,
    REF_SIZE,
    Shape,
    bird_shapes,
    pil_points,
    wing_pattern,
)
from tdsa.errors import ConfigError

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

_SUPERSAMPLE = 2
_MARGIN = 2.0  # pixels between the class's own bird and the image border


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
    scenery = background(rng, size)
    # The ring and tip jitter consume the same draws for every value.
    colours = bird_colours(rng, painted)
    place = _pose(rng, size, min_scale, max_scale, max_rotation)
    pattern = wing_pattern(rng, attributes["wing"])
    shapes, locations = bird_shapes(attributes, colours, fine_scale, pattern)
    drawn = _drawn_shapes(attributes, painted, shapes, colours, fine_scale, pattern, swap_rng)
    offset = _offset(rng, [place(pts) for _, pts, _ in shapes], size)
    placed = [(label, place(pts) + offset, fill) for label, pts, fill in drawn]
    eye_radius = EYE_RING_RADIUS * fine_scale * size / REF_SIZE
    image = _paint(scenery, placed, rng, size, eye_radius, distractors, noise_std)
    labels = _label_map(placed, size)
    parts = {name: _pixel(place(np.array([xy], dtype=float))[0] + offset)
             for name, xy in locations.items()}
    return RenderedBird(image=image, labels=labels, parts=parts, bbox=_bbox(labels))


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


def _pose(rng: np.random.Generator, size: int, min_scale: float, max_scale: float,
          max_rotation: float) -> Callable[[np.ndarray], np.ndarray]:
    """Draw the bird's scale, rotation and flip; the map from canonical points to image pixels
    before the bird is shifted into place."""
    scale = rng.uniform(min_scale, max_scale)
    angle = math.radians(rng.uniform(-max_rotation, max_rotation))
    flip = bool(rng.random() < 0.5)
    unit = size / REF_SIZE * scale
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    mirror = np.array([-1.0 if flip else 1.0, 1.0])

    def place(points: np.ndarray) -> np.ndarray:
        return (points * mirror * unit) @ rot.T

    return place


def _drawn_shapes(
    attributes: Mapping[str, str],
    painted: dict[str, str],
    shapes: list[Shape],
    colours: dict[str, tuple],
    fine_scale: float,
    pattern: list[np.ndarray],
    swap_rng: np.random.Generator | None,
) -> list[Shape]:
    """The shapes to paint: the class's own ``shapes``, or those of the ``painted`` values (a
    twin), with the class's wing pattern unless the twin's wing is another kind."""
    if painted == dict(attributes):
        return shapes
    if painted["wing"] != attributes["wing"]:
        if swap_rng is None:
            raise ConfigError(
                f"swapping the wing pattern {attributes['wing']!r} -> {painted['wing']!r} "
                "needs swap_rng (tdsa.data.synthetic.twin_rng) for the new pattern's jitter"
            )
        pattern = wing_pattern(swap_rng, painted["wing"])
    drawn, _ = bird_shapes(painted, colours, fine_scale, pattern)
    return drawn


def _offset(rng: np.random.Generator, posed: list[np.ndarray], size: int) -> np.ndarray:
    """A random shift of the ``posed`` bird that keeps it :data:`_MARGIN` pixels inside the
    image on each axis (centred on an axis where it cannot)."""
    all_points = np.concatenate(posed)
    low, high = all_points.min(axis=0), all_points.max(axis=0)
    offset = np.empty(2)
    for axis in range(2):
        lo, hi = _MARGIN - low[axis], size - 1 - _MARGIN - high[axis]
        offset[axis] = rng.uniform(lo, hi) if hi > lo else (lo + hi) / 2
    return offset


def _paint(scenery: Image.Image, placed: list[Shape], rng: np.random.Generator, size: int,
           eye_radius: float, distractors: bool, noise_std: float) -> Image.Image:
    """The image: clutter and the ``placed`` polygons drawn over ``scenery`` on a supersampled
    canvas, box-filtered down to ``size``, plus Gaussian noise."""
    canvas = scenery.resize((size * _SUPERSAMPLE,) * 2, Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    draw_clutter(draw, rng, size, eye_radius, distractors, _SUPERSAMPLE)
    for _, pts, fill in placed:
        draw.polygon(pil_points(pts * _SUPERSAMPLE + (_SUPERSAMPLE - 1) / 2), fill=fill)
    image = canvas.resize((size, size), Image.Resampling.BOX)

    pixels = np.asarray(image, dtype=np.float32)
    if noise_std > 0:
        pixels = pixels + rng.normal(0.0, noise_std, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def _label_map(placed: list[Shape], size: int) -> np.ndarray:
    """The ``size x size`` uint8 map of the ``placed`` polygons' labels (0 elsewhere)."""
    label_image = Image.new("L", (size, size), 0)
    label_draw = ImageDraw.Draw(label_image)
    for label, pts, _ in placed:
        label_draw.polygon(pil_points(pts), fill=label)
    return np.asarray(label_image).copy()


def _pixel(point: np.ndarray) -> tuple[float, float]:
    x, y = point
    return float(x), float(y)


def _bbox(labels: np.ndarray) -> tuple[float, float, float, float]:
    """``(x, y, width, height)`` of the labelled pixels."""
    ys, xs = np.nonzero(labels)
    return (
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    )
