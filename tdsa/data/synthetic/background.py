"""What surrounds the bird: a noisy colour gradient, branches, leaves and eye-like distractor
blobs."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from tdsa.data.synthetic.colours import RING_COLOURS, hsv, jitter
from tdsa.data.synthetic.shapes import PUPIL_FRACTION, REF_SIZE, ellipse, pil_points, segment

_DISTRACTOR_RINGS = (*RING_COLOURS.values(), (235, 235, 235), (240, 125, 25), (60, 170, 70))


def background(rng: np.random.Generator, size: int) -> Image.Image:
    """Muted gradient plus low- and mid-frequency colour noise."""
    top = np.array(hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.4, 0.9)), np.float32)
    bottom = np.array(hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.8)), np.float32)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    pixels = top + (bottom - top) * ramp
    for cells, amplitude in ((4, 35.0), (12, 18.0)):
        grid = rng.normal(0.0, amplitude, (cells, cells, 3))
        grid_img = Image.fromarray(np.clip(grid + 128, 0, 255).astype(np.uint8), "RGB")
        smooth = grid_img.resize((size, size), Image.Resampling.BICUBIC)
        pixels = pixels + (np.asarray(smooth, dtype=np.float32) - 128.0)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def draw_clutter(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    size: int,
    eye_radius: float,
    distractors: bool,
    supersample: int,
) -> None:
    """Branches, leaves and (if ``distractors``) eye-like blobs, on the canvas ``supersample``
    times the image ``size``."""
    ss = supersample
    for _ in range(int(rng.integers(2, 5))):
        start = rng.uniform(0, size, 2)
        end = start + rng.uniform(-0.6, 0.6, 2) * size
        width = rng.uniform(1.5, 4.0) * size / REF_SIZE
        colour = hsv(rng.uniform(0.03, 0.12), rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.5))
        draw.polygon(pil_points(segment(start, end, width) * ss), fill=colour)
    for _ in range(int(rng.integers(3, 8))):
        cx, cy = rng.uniform(0, size, 2)
        a, b = rng.uniform(3, 9, 2) * size / REF_SIZE
        colour = hsv(rng.uniform(0.15, 0.45), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.7))
        leaf = ellipse(cx, cy, a, b, rng.uniform(0, 180), n=16)
        draw.polygon(pil_points(leaf * ss), fill=colour)
    if not distractors:
        return
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0, size, 2)
        radius = eye_radius * rng.uniform(0.8, 1.3)
        ring = _DISTRACTOR_RINGS[int(rng.integers(len(_DISTRACTOR_RINGS)))]
        ring = jitter(rng, ring, 20)
        draw.polygon(pil_points(ellipse(cx, cy, radius, radius) * ss), fill=ring)
        pupil = radius * PUPIL_FRACTION
        draw.polygon(pil_points(ellipse(cx, cy, pupil, pupil, n=16) * ss), fill=(25, 22, 20))
