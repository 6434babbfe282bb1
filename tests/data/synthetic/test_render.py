"""Tests of drawing one synthetic bird (tdsa.data.synthetic.render): parts, colours, patterns,
fine scale and distractors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tdsa.data import synthetic

RING_RGB = {"red": (215, 35, 35), "yellow": (240, 210, 35), "blue": (45, 85, 230)}
TIP_RGB = {"black": (30, 28, 28), "orange": (240, 125, 25)}


def nearest(colour: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda k: float(np.sum((colour - np.array(palette[k])) ** 2)))



def render_many(count: int, **kwargs) -> list[tuple[dict[str, str], synthetic.RenderedBird]]:
    classes = synthetic.choose_classes(12)
    return [
        (
            classes[i % 12],
            synthetic.render_bird(classes[i % 12], synthetic.image_rng(11, i), **kwargs),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("fine_scale", [0.5, 1.0, 2.0])
def test_parts_on_label_map_inside_box(fine_scale: float) -> None:
    for _, bird in render_many(24, image_size=96, fine_scale=fine_scale):
        ys, xs = np.nonzero(bird.labels)
        assert bird.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        bx, by, bw, bh = bird.bbox
        for part in synthetic.PARTS:
            x, y = bird.parts[part.name]
            assert 0 <= x < 96 and 0 <= y < 96
            assert bx <= round(x) <= bx + bw - 1 and by <= round(y) <= by + bh - 1
            assert bird.labels[round(y), round(x)] == part.id, part.name


def test_fine_attributes_drawn_at_their_locations() -> None:
    """Without noise, the beak tip and eye ring at the annotated spots have the class colours."""
    for attrs, bird in render_many(24, image_size=256, noise_std=0.0):
        pixels = np.asarray(bird.image, dtype=np.float32)
        bx, by = bird.parts["beak"]
        assert nearest(pixels[round(by), round(bx)], TIP_RGB) == attrs["beak_tip"]
        ex, ey = bird.parts["eye"]
        ring_mid = 0.72 * 4.6 * 2  # middle of the ring at 256 px and scale 1
        ring = pixels[round(ey), round(ex + ring_mid)]
        assert nearest(ring, RING_RGB) == attrs["eye_ring"]
        pupil = pixels[round(ey), round(ex)]
        assert pupil.max() < 60


def test_wing_pattern_pixels() -> None:
    """Bars and spots cover a clear share of the wing in a pale colour; a plain wing has none."""
    shares: dict[str, list[float]] = {"plain": [], "bar": [], "spots": []}
    for attrs, bird in render_many(24, image_size=128, noise_std=0.0):
        pixels = np.asarray(bird.image, dtype=np.float32)
        wing = bird.labels == 3
        interior = wing & np.roll(wing, 1, 0) & np.roll(wing, -1, 0)
        interior &= np.roll(wing, 1, 1) & np.roll(wing, -1, 1)
        values = pixels[interior].sum(axis=1)
        pale = values > np.median(values) + 120
        shares[attrs["wing"]].append(float(pale.mean()))
    assert max(shares["plain"]) < 0.03
    assert min(shares["bar"]) > 0.12 and min(shares["spots"]) > 0.10


def test_fine_scale_and_separation() -> None:
    """Eye ring radius >= 4 px at 128 px and scale 1; discriminative parts far apart.

    Measured on a 512-px label map (4x the reference) so pixel rounding of the outline is small.
    """
    fixed = {"image_size": 512, "min_scale": 1.0, "max_scale": 1.0, "max_rotation": 0.0}
    radii = {}
    for fine_scale in (1.0, 2.0):
        (_, bird), *_ = render_many(1, fine_scale=fine_scale, **fixed)
        radii[fine_scale] = math.sqrt(float((bird.labels == 2).sum()) / math.pi) / 4
        names = [p.name for p in synthetic.PARTS if p.attribute is not None]
        ys, xs = np.nonzero(bird.labels == len(synthetic.PARTS) + 1)
        body = (xs.mean(), ys.mean())
        points = [bird.parts[n] for n in names] + [body]
        for p, q in itertools.combinations(points, 2):
            assert math.dist(p, q) >= 0.1 * 512
    assert radii[1.0] >= 4.0
    assert radii[2.0] == pytest.approx(2 * radii[1.0], rel=0.05)


def test_distractors_add_eye_like_blobs() -> None:
    def ring_like_background(distractors: bool) -> int:
        total = 0
        for _, bird in render_many(12, image_size=96, noise_std=0.0, distractors=distractors):
            pixels = np.asarray(bird.image, dtype=np.float32)[bird.labels == 0]
            for rgb in RING_RGB.values():
                total += int((np.abs(pixels - np.array(rgb)).max(axis=1) < 25).sum())
        return total

    assert ring_like_background(True) > 3 * ring_like_background(False) + 20
