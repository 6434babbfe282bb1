"""The birds' colours: the fine parts' class colours, the extra colours of ``unique_part``
and the random colours of one bird."""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Mapping

import numpy as np

from tdsa.data.synthetic.attributes import UNIQUE_VALUES

RING_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "yellow": (240, 210, 35),
    "blue": (45, 85, 230),
}
"""The RGB colour of each eye-ring value."""
_TIP_COLOURS: dict[str, tuple[int, int, int]] = {"black": (30, 28, 28), "orange": (240, 125, 25)}
_PUPIL_RGB = (25, 22, 20)
_BEAK_RGB = (170, 155, 125)


@functools.cache
def unique_colours() -> dict[str, tuple[int, int, int]]:
    """The RGB colour of each of :data:`UNIQUE_VALUES`. A drawn ring's colour is its value's
    times 0.8..1 (plus jitter), a segment towards black; each extra value is in turn the
    colour of a 15-step grid whose segment is farthest from those of the fine parts' own
    colours (eye rings, beak tips, pupil, beak) and of the values chosen before it."""
    levels = np.arange(0, 256, 15, dtype=float)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    fixed = [*RING_COLOURS.values(), *_TIP_COLOURS.values(), _PUPIL_RGB, _BEAK_RGB]
    nearest = np.full(len(grid), np.inf)
    for colour in fixed:
        nearest = np.minimum(nearest, segment_distance(grid, np.asarray(colour, dtype=float)))
    chosen: dict[str, tuple[int, int, int]] = {}
    for name in UNIQUE_VALUES:
        best = grid[int(np.argmax(nearest))]
        red, green, blue = (int(v) for v in best)
        chosen[name] = (red, green, blue)
        nearest = np.minimum(nearest, segment_distance(grid, best))
    return chosen


def segment_distance(colours: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The least RGB distance between ``colours`` ``[N, 3]`` and ``colour``, each times any of
    0.8..1 (sampled at five points): ``[N]``."""
    shades = np.linspace(0.8, 1.0, 5)
    ours = colours[:, None, None, :] * shades[None, :, None, None]
    theirs = colour[None, None, None, :] * shades[None, None, :, None]
    return np.linalg.norm(ours - theirs, axis=-1).min(axis=(1, 2))


def _colour(own: Mapping[str, tuple[int, int, int]], value: str) -> tuple[int, int, int]:
    """The colour of a fine attribute's ``value``: its own, else an extra value's."""
    return own[value] if value in own else unique_colours()[value]


def _mix(a: tuple[int, ...], b: tuple[int, ...], t: float) -> tuple[int, int, int]:
    red, green, blue = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return red, green, blue


def jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: float) -> tuple:
    """``colour`` plus a uniform random offset of up to ``amount`` per channel, rounded."""
    values = np.clip(np.asarray(colour) + rng.uniform(-amount, amount, 3), 0, 255)
    return tuple(np.rint(values).astype(int).tolist())


def hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    """The RGB colour (0..255) of hue, saturation and value in 0..1."""
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def bird_colours(rng: np.random.Generator, attributes: Mapping[str, str]) -> dict[str, tuple]:
    """The fill of each region of one bird with class ``attributes``: random body, wing,
    pattern, breast and leg colours, the fine parts' class colours with jitter. The draws
    from ``rng`` are the same whatever the attribute values."""
    body = hsv(rng.random(), rng.uniform(0.15, 0.6), rng.uniform(0.35, 0.85))
    dark = _mix(body, (0, 0, 0), rng.uniform(0.2, 0.45))
    ring = np.asarray(jitter(rng, _colour(RING_COLOURS, attributes["eye_ring"]), 20))
    return {
        "body": body,
        "wing": dark,
        "pattern": _mix(dark, (245, 240, 225), rng.uniform(0.6, 0.8)),
        "breast": _mix(body, (245, 240, 230), rng.uniform(0.3, 0.6)),
        "leg": hsv(rng.uniform(0.0, 0.12), rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.45)),
        "beak": jitter(rng, _BEAK_RGB, 20),
        "tip": jitter(rng, _colour(_TIP_COLOURS, attributes["beak_tip"]), 15),
        "ring": tuple(int(v) for v in np.rint(ring * rng.uniform(0.8, 1.0))),
        "pupil": jitter(rng, _PUPIL_RGB, 10),
    }
