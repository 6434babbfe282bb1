"""Counterfactual twins of the synthetic birds: re-rendering and one-attribute swaps."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from tdsa.data import build_dataset, synthetic
from tdsa.errors import ConfigError, DataError

ARGS = {"num_classes": 12, "train_per_class": 2, "test_per_class": 2, "val_per_class": 1,
        "image_size": 96, "seed": 4}
PART_ID = {p.name: p.id for p in synthetic.PARTS}
ATTRIBUTE_PARTS = [p.name for p in synthetic.PARTS if p.attribute is not None]
RING_RGB = {"red": (215, 35, 35), "yellow": (240, 210, 35), "blue": (45, 85, 230)}
TIP_RGB = {"black": (30, 28, 28), "orange": (240, 125, 25)}
MARGIN = 2  # pixels: anti-aliasing (2x supersampling, box filter) reaches one pixel out

# sha256(pixels + label map)[:16] of render_bird(classes[c], image_rng(0, index), image_size=96)
# with the generator of version 1 as the book's committed results were made with it.
GOLDEN = {(0, 3): "35f27d8975dc2b64", (4, 283): "e72db339f53404aa",
          (8, 563): "a99f34bcfe38e40a"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("twins") / "root", **ARGS)


@pytest.fixture(scope="module")
def meta(root: Path) -> dict:
    return synthetic.load_metadata(root)


def pixels(bird: synthetic.RenderedBird) -> np.ndarray:
    return np.asarray(bird.image).astype(np.int16)


def jpeg(bird: synthetic.RenderedBird) -> bytes:
    buffer = io.BytesIO()
    bird.image.save(buffer, format="JPEG", quality=92, subsampling=0)
    return buffer.getvalue()


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square dilation by ``radius`` pixels (plain shifts)."""
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = np.zeros_like(mask)
            shifted[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            out |= shifted
    return out


def nearest(colour: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda k: float(np.sum((colour - np.array(palette[k])) ** 2)))


def test_existing_images_unchanged() -> None:
    """Rendering with swaps must not change any image of generator version 1."""
    assert synthetic.GENERATOR_VERSION == 1
    classes = synthetic.choose_classes(12)
    for (c, index), digest in GOLDEN.items():
        bird = synthetic.render_bird(classes[c], synthetic.image_rng(0, index), image_size=96)
        got = hashlib.sha256(np.asarray(bird.image).tobytes() + bird.labels.tobytes())
        assert got.hexdigest()[:16] == digest, (
            f"image {index} of seed 0 changed: the generator no longer reproduces the datasets "
            "of GENERATOR_VERSION 1 (bump it only on purpose)")


@pytest.mark.parametrize("split", ["train", "test", "val", "train_minus_val"])
def test_render_image_reproduces_the_files(root: Path, meta: dict, split: str) -> None:
    dataset = build_dataset("synthetic", root, split)
    for i in range(len(dataset)):
        bird = synthetic.render_image(meta, split, i)
        assert jpeg(bird) == Path(dataset.samples[i][0]).read_bytes(), (split, i)
        assert np.allclose([bird.parts[n] for n in dataset.part_names],
                           dataset.parts(i)[:, :2], atol=0.051)


def test_twin_differs_only_inside_the_swapped_part(meta: dict) -> None:
    changed_parts = set()
    for split, index in (("train", 0), ("test", 9), ("test", 21), ("val", 7), ("train", 17)):
        original = synthetic.render_image(meta, split, index)
        for part in ATTRIBUTE_PARTS:
            for value in synthetic.twin_values(meta, split, index, part):
                twin = synthetic.render_twin(meta, split, index, part=part, value=value)
                differs = np.any(pixels(twin) != pixels(original), axis=-1)
                region = (original.labels == PART_ID[part]) | (twin.labels == PART_ID[part])
                outside = differs & ~dilate(region, MARGIN)
                assert not outside.any(), (split, index, part, value, int(outside.sum()))
                assert differs.sum() >= 10, (split, index, part, value)
                changed_parts.add(part)
                assert twin.parts == original.parts
                other = original.labels != PART_ID[part]
                assert np.array_equal(np.where(other & (twin.labels != PART_ID[part]),
                                               twin.labels, 0),
                                      np.where(other & (twin.labels != PART_ID[part]),
                                               original.labels, 0))
    assert changed_parts == set(ATTRIBUTE_PARTS)


def pale_share(bird: synthetic.RenderedBird) -> float:
    """Share of the wing's interior in a pale pattern colour (as in test_render)."""
    values = np.asarray(bird.image, dtype=np.float32)
    wing = bird.labels == PART_ID["wing"]
    interior = wing & np.roll(wing, 1, 0) & np.roll(wing, -1, 0)
    interior &= np.roll(wing, 1, 1) & np.roll(wing, -1, 1)
    brightness = values[interior].sum(axis=1)
    return float((brightness > np.median(brightness) + 120).mean())


def test_twins_carry_the_new_attribute() -> None:
    """Without noise, at 256 px, each twin shows the swapped-in value where the part is."""
    classes = synthetic.choose_classes(12)
    for i in range(6):
        attrs = classes[2 * i]
        masks = {}
        for attribute, values in synthetic.ATTRIBUTES.items():
            for value in values:
                twin = synthetic.render_bird(
                    attrs, synthetic.image_rng(11, i), image_size=256, noise_std=0.0,
                    swap={attribute: value}, swap_rng=synthetic.twin_rng(11, i))
                image = np.asarray(twin.image, dtype=np.float32)
                if attribute == "beak_tip":
                    bx, by = twin.parts["beak"]
                    assert nearest(image[round(by), round(bx)], TIP_RGB) == value
                elif attribute == "eye_ring":
                    ex, ey = twin.parts["eye"]
                    ring = image[round(ey), round(ex + 0.72 * 4.6 * 2)]
                    assert nearest(ring, RING_RGB) == value
                elif attribute == "wing":
                    share = pale_share(twin)
                    assert share < 0.03 if value == "plain" else share > 0.10, (value, share)
                else:
                    masks[value] = twin.labels == PART_ID["tail"]
        shapes = list(masks.values())
        assert all(not np.array_equal(a, b) for k, a in enumerate(shapes) for b in shapes[k + 1:])


def test_twin_of_own_value_and_undoing_a_swap(meta: dict) -> None:
    split, index = "test", 13
    own = meta["classes"][synthetic.image_source(meta, split, index)[0]]["attributes"]
    original = synthetic.render_image(meta, split, index)
    for part in ATTRIBUTE_PARTS:
        attribute = synthetic.part_attribute(part)
        same = synthetic.render_twin(meta, split, index, part=part, value=own[attribute])
        assert np.array_equal(pixels(same), pixels(original))
        assert np.array_equal(same.labels, original.labels)
    wing = next(v for v in synthetic.ATTRIBUTES["wing"] if v != own["wing"])
    ring = next(v for v in synthetic.ATTRIBUTES["eye_ring"] if v != own["eye_ring"])
    double = synthetic.render_image(meta, split, index, swap={"wing": wing, "eye_ring": ring})
    undone = synthetic.render_image(meta, split, index,
                                    swap={"wing": wing, "eye_ring": own["eye_ring"]})
    single = synthetic.render_twin(meta, split, index, part="wing", value=wing)
    assert np.array_equal(pixels(undone), pixels(single))
    assert not np.array_equal(pixels(double), pixels(single))
    # Swapping back the wing of the double twin leaves only the ring swapped.
    ring_only = synthetic.render_image(meta, split, index,
                                       swap={"wing": own["wing"], "eye_ring": ring})
    assert np.array_equal(pixels(ring_only),
                          pixels(synthetic.render_twin(meta, split, index, part="eye",
                                                       value=ring)))


def test_twins_are_deterministic(root: Path, meta: dict) -> None:
    first = synthetic.render_twin(meta, "val", 3, part="wing",
                                  value=synthetic.twin_values(meta, "val", 3, "wing")[0])
    for part in ATTRIBUTE_PARTS:  # other renders in between change nothing
        synthetic.render_twin(meta, "train", 1, part=part,
                              value=synthetic.twin_values(meta, "train", 1, part)[-1])
    again = synthetic.render_twin(root, "val", 3, part="wing",
                                  value=synthetic.twin_values(root, "val", 3, "wing")[0])
    assert jpeg(first) == jpeg(again)
    assert np.array_equal(first.labels, again.labels)


def test_swaps_consume_the_same_draws() -> None:
    attrs = {"wing": "bar", "tail": "fan", "eye_ring": "red", "beak_tip": "black"}
    after = []
    for swap in (None, {"wing": "spots", "tail": "point", "eye_ring": "blue",
                        "beak_tip": "orange"}):
        rng = np.random.default_rng([1, 2])
        synthetic.render_bird(attrs, rng, image_size=64, swap=swap,
                              swap_rng=np.random.default_rng(9))
        after.append(rng.random())
    assert after[0] == after[1]


def test_image_source_order(meta: dict) -> None:
    train, test = ARGS["train_per_class"], ARGS["test_per_class"]
    assert synthetic.image_source(meta, "train", 0) == (0, 0, False)
    assert synthetic.image_source(meta, "train", 3) == (1, train + test + 1, False)
    assert synthetic.image_source(meta, "test", 3) == (1, train + test + train + 1, False)
    assert synthetic.image_source(meta, "val", 5) == (5, 5, True)
    assert synthetic.image_source(meta, "train_minus_val", 3) == \
        synthetic.image_source(meta, "train", 3)


def test_twin_errors(root: Path, meta: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"part 'breast' carries no class attribute; parts "
                       r"with attributes: beak \(beak_tip\), eye \(eye_ring\), wing \(wing\), "
                       r"tail \(tail\)"):
        synthetic.render_twin(meta, "test", 0, part="breast", value="red")
    with pytest.raises(ConfigError, match=r"eye_ring='green' is not a value of eye_ring; "
                       r"values: red, yellow, blue"):
        synthetic.render_twin(meta, "test", 0, part="eye", value="green")
    with pytest.raises(IndexError, match=r"synthetic test: image index 24 is outside 0\.\.23"):
        synthetic.render_image(meta, "test", 24)
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        synthetic.render_image(meta, "dev", 0)
    with pytest.raises(ConfigError, match=r"swapping the wing pattern .* needs swap_rng"):
        synthetic.render_bird(meta["classes"][0]["attributes"], np.random.default_rng(0),
                              swap={"wing": "spots" if meta["classes"][0]["attributes"]["wing"]
                                    != "spots" else "bar"})
    no_val = {**meta, "args": {k: v for k, v in meta["args"].items() if k != "val_per_class"}}
    with pytest.raises(DataError, match="no val split; regenerate it with --val-per-class N"):
        synthetic.render_image(no_val, "val", 0)
    old = json.loads((root / synthetic.METADATA_FILE).read_text())
    old["generator_version"] = 0
    (tmp_path / synthetic.METADATA_FILE).write_text(json.dumps(old))
    with pytest.raises(DataError, match=r"was written by generator version 0, this is version "
                       r"1: its images cannot be re-rendered"):
        synthetic.load_metadata(tmp_path)
    with pytest.raises(DataError, match=r"has no tdsa_synthetic\.json: not a synthetic dataset"):
        synthetic.load_metadata(tmp_path / "nowhere")

