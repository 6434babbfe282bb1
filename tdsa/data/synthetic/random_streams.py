"""The random streams: every image, and every image's counterfactual twins, draw from a
generator of their own, a pure function of (seed, image index), so any image can be re-rendered
alone."""

from __future__ import annotations

import numpy as np

_VAL_STREAM = (1,)  # SeedSequence spawn keys (see image_rng, twin_rng)
_TWIN_STREAM = 0


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
