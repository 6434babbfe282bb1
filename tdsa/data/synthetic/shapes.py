"""The bird's shapes: its polygons and part locations in a canonical frame (a 128-px image at
scale 1, bird facing right, y down), before it is posed and placed in an image."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from tdsa.data.synthetic.attributes import PARTS

Shape = tuple[int, np.ndarray, tuple]
"""One polygon: (label-map id, points ``[N, 2]``, fill colour)."""

# Label-map ids of drawn regions that are not annotated parts.
_BODY_LABEL = len(PARTS) + 1
_HEAD_LABEL = len(PARTS) + 2
_PART_LABEL = {p.name: p.id for p in PARTS}

# Canonical bird geometry, in pixels of a 128-px image at scale 1, bird facing right, y down.
REF_SIZE = 128.0
_BODY = (0.0, 0.0, 20.0, 13.0)  # centre x, centre y, semi-axes a, b
_HEAD = (20.0, -13.0, 9.5)  # centre x, centre y, radius
_EYE = (22.5, -14.5)
EYE_RING_RADIUS = 4.6  # outer radius of the coloured ring at fine_scale 1
PUPIL_FRACTION = 0.45
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


def bird_shapes(
    attributes: Mapping[str, str],
    colours: dict[str, tuple],
    fine_scale: float,
    pattern: list[np.ndarray],
) -> tuple[list[Shape], dict[str, tuple[float, float]]]:
    """Polygons (label, canonical points, fill) in drawing order, and the part locations.

    ``pattern`` holds the wing pattern's polygons in the wing's frame (:func:`wing_pattern`).
    """
    shapes: list[Shape] = []
    locations: dict[str, tuple[float, float]] = {}

    for leg_index, (top, knee, toe) in enumerate(_LEGS):
        for start, end in ((top, knee), (knee, toe)):
            shapes.append((_PART_LABEL["leg"], segment(start, end, _LEG_WIDTH), colours["leg"]))
        if leg_index == 0:
            locations["leg"] = tuple(np.add(top, np.subtract(knee, top) * _LEG_LOCATION))

    tail = np.array(_TAIL_SHAPES[attributes["tail"]], dtype=float)
    shapes.append((_PART_LABEL["tail"], _to_frame(tail, _TAIL_ATTACH, _TAIL_TILT), colours["wing"]))
    locations["tail"] = tuple(_to_frame(np.array([_TAIL_LOCATION]), _TAIL_ATTACH, _TAIL_TILT)[0])

    shapes.append((_BODY_LABEL, ellipse(*_BODY), colours["body"]))
    shapes.append((_PART_LABEL["breast"], ellipse(*_BREAST), colours["breast"]))
    locations["breast"] = _BREAST[:2]

    wx, wy, _, _, wtilt = _WING
    shapes.append((_PART_LABEL["wing"], ellipse(*_WING), colours["wing"]))
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

    shapes.append((_HEAD_LABEL, ellipse(_HEAD[0], _HEAD[1], _HEAD[2], _HEAD[2]), colours["body"]))
    ring_radius = EYE_RING_RADIUS * fine_scale
    shapes.append((_PART_LABEL["eye"], ellipse(*_EYE, ring_radius, ring_radius), colours["ring"]))
    pupil = ring_radius * PUPIL_FRACTION
    shapes.append((_PART_LABEL["eye"], ellipse(*_EYE, pupil, pupil, n=16), colours["pupil"]))
    locations["eye"] = _EYE
    return shapes, locations


def wing_pattern(rng: np.random.Generator, kind: str) -> list[np.ndarray]:
    """Pattern polygons in the wing's own frame (the wing ellipse's semi-axes a, b)."""
    a, b = _WING[2], _WING[3]
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
        ellipse(
            u * a + rng.uniform(-0.5, 0.5), v * b + rng.uniform(-0.4, 0.4), radius, radius, n=12
        )
        for u, v in spots
    ]


def ellipse(
    cx: float, cy: float, a: float, b: float, tilt: float = 0.0, n: int = 28
) -> np.ndarray:
    """``n`` points ``[n, 2]`` on the ellipse centred at (cx, cy) with semi-axes a, b, tilted
    by ``tilt`` degrees."""
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return _to_frame(np.stack([a * np.cos(t), b * np.sin(t)], axis=1), (cx, cy), tilt)


def segment(start: tuple[float, float] | np.ndarray, end: tuple[float, float] | np.ndarray,
            width: float) -> np.ndarray:
    """The rectangle ``[4, 2]`` of a stroke ``width`` wide from ``start`` to ``end``."""
    p0, p1 = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    d = p1 - p0
    normal = np.array([-d[1], d[0]]) / np.hypot(*d) * width / 2
    return np.stack([p0 + normal, p1 + normal, p1 - normal, p0 - normal])


def pil_points(points: np.ndarray) -> list[tuple[float, float]]:
    """``points`` ``[N, 2]`` as the list of (x, y) that PIL's polygon takes."""
    return [(float(x), float(y)) for x, y in points]


def _to_frame(local: np.ndarray, centre: tuple[float, float], tilt_deg: float) -> np.ndarray:
    """Rotate local points by ``tilt_deg`` and move them to ``centre``."""
    c, s = math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))
    return local @ np.array([[c, s], [-s, c]]) + np.asarray(centre)
