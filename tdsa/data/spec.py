"""What a network's input looks like: size, resize and normalisation, resolved in one place.

:func:`resolve_data_config` follows timm's function of that name: the run's data config
fixes what it names (the regime's recipe, ``image_size``, ``resize``), a model's
``default_cfg`` fills in the input size when the config leaves it out, and the regime's
defaults the rest. The normalisation of each regime is defined here and nowhere else:
``scratch`` is the reference code's mean = std = 0.5, ``pretrained`` ImageNet's (the
statistics torchvision's weights were trained with); the models' ``default_cfg`` and the
visualisations' un-normalisation read these constants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

from tdsa.errors import ConfigError
from tdsa.validation import check_choice, check_positive_int

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PUBLISHED_MEAN = (0.5, 0.5, 0.5)
PUBLISHED_STD = (0.5, 0.5, 0.5)
NORMALISATION = {"scratch": (PUBLISHED_MEAN, PUBLISHED_STD),
                 "pretrained": (IMAGENET_MEAN, IMAGENET_STD)}
REGIMES = tuple(NORMALISATION)
DEFAULT_SIZE = {"scratch": 224, "pretrained": 448}


@dataclass(frozen=True)
class DataSpec:
    """A resolved input: ``image_size`` S (square output), ``resize`` (``(S, S)`` exact in the
    scratch regime, the short side before cropping in the pretrained one), ``mean``/``std``."""

    regime: str
    image_size: int
    resize: int | tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain lists for JSON (the run's ``summary.json`` records it as ``data_spec``)."""
        return {"regime": self.regime, "input_size": [3, self.image_size, self.image_size],
                "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
                "mean": list(self.mean), "std": list(self.std)}


def _size_from_model(default_cfg: Mapping[str, Any] | None) -> int | None:
    size = (default_cfg or {}).get("input_size")
    if size is None:
        return None
    if size[-1] != size[-2]:
        raise ConfigError(f"the model's input_size {tuple(size)} is not square; set image_size")
    return int(size[-1])


def resolve_data_config(data: Any = None, default_cfg: Mapping[str, Any] | None = None
                        ) -> DataSpec:
    """The :class:`DataSpec` of ``data`` (a :class:`tdsa.config.DataConfig` or a mapping with
    ``regime``, ``image_size``, ``resize``; missing or null entries are left out) completed
    by a model's ``default_cfg`` (its ``input_size``) and the regime's defaults (224 scratch,
    448 pretrained; resize ``round(S * 8 / 7)``). A bad value is a ConfigError (a ValueError)
    naming it.
    """
    given = asdict(data) if is_dataclass(data) and not isinstance(data, type) else dict(data or {})
    regime = given.get("regime") or "scratch"
    regime = check_choice("regime", regime, REGIMES)
    size = given.get("image_size")
    if size is None:
        size = _size_from_model(default_cfg) or DEFAULT_SIZE[regime]
    size, resize = check_positive_int("image_size", size), given.get("resize")
    if regime == "scratch":
        if resize is not None:
            raise ConfigError("resize applies to the 'pretrained' regime only; the 'scratch' "
                              "regime resizes to (image_size, image_size)")
        shape: int | tuple[int, int] = (size, size)
    else:
        shape = round(size * 8 / 7) if resize is None else int(resize)
        if shape < size:
            raise ConfigError(f"resize ({shape}) must be >= image_size ({size}) in the "
                              f"'pretrained' regime")
    mean, std = NORMALISATION[regime]
    return DataSpec(regime=regime, image_size=size, resize=shape, mean=mean, std=std)
