"""What tells the synthetic bird classes apart: the class attributes, their values and the
annotated parts that carry them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tdsa.errors import ConfigError
from tdsa.validation import check_choice

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


def check_unique_part(value: Any, key: str = "unique_part") -> str | None:
    """``value`` when it is None or one of :data:`UNIQUE_PARTS`; else a ConfigError that
    names ``key`` and the allowed names."""
    if value is None:
        return None
    return check_choice(key, value, UNIQUE_PARTS)


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
