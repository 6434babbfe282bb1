"""A timm-style model registry: ``register_model``, ``list_models`` and ``create_model``, and
``create_model_from_config``: the network a run's config describes."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any, TypeVar

from tdsa.errors import ConfigError
from tdsa.models.base import TdsaNet
from tdsa.models.pretrained import load_pretrained
from tdsa.validation import DEFAULT_XI

if TYPE_CHECKING:
    from tdsa.config import Config

_MODELS: dict[str, Callable[..., TdsaNet]] = {}

F = TypeVar("F", bound=Callable[..., TdsaNet])


def register_model(fn: F) -> F:
    """Register a model builder under its function name (decorator, as in timm).

    The builder is called as ``fn(num_classes, xi=(xi_mid, xi_high), **kw)``.
    """
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """The registered model names, sorted.
    """
    return sorted(_MODELS)


def create_model(
    name: str,
    num_classes: int,
    *,
    xi: Sequence[int] = DEFAULT_XI,
    pretrained: bool | str | PathLike[str] = False,
    **kw: Any,
) -> TdsaNet:
    """Build a registered model with two feature taps (``mid``, ``high``) and a classifier.

    ``xi = (xi_mid, xi_high)`` channels per class at the two taps. ``pretrained`` is False,
    True (torchvision ImageNet weights for the trunk) or a path to a local state dict (a
    full tdsa state dict, a tdsa checkpoint with a ``model`` entry, or a torchvision
    backbone state dict); see :func:`tdsa.models.load_pretrained`. Extra keyword arguments
    go to the builder (``width``, ``head``, ``input_size``, ``adapter``, ...).

    Book: chapter 7, *The reference recipe*.
    """
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    builder = _MODELS[name]
    allowed = [
        p.name
        for p in inspect.signature(builder).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "xi"
    ]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ConfigError(
            f"model {name!r} got unknown option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(allowed)}"
        )
    model = builder(num_classes, xi=xi, **kw)
    if pretrained is not False and pretrained is not None:
        load_pretrained(model, pretrained)
    return model


def create_model_from_config(
    cfg: Config,
    num_classes: int | None = None,
    *,
    pretrained: bool | str | PathLike[str] = False,
) -> TdsaNet:
    """:func:`create_model` for the network of a run's config: ``model.name``, ``model.xi`` and
    ``model.options``, whose ``input_size`` defaults to ``data.image_size``.

    ``num_classes`` defaults to ``model.num_classes`` (a ConfigError when both are unset). The
    weights are initialised unless ``pretrained`` is given (as for :func:`create_model`; a run
    passes ``model.pretrained``).

    Book: chapter 7, *The reference recipe*.
    """
    classes = cfg.model.num_classes if num_classes is None else num_classes
    if classes is None:
        raise ConfigError("model.num_classes is not set: pass num_classes (the dataset's)")
    options = dict(cfg.model.options)
    options.setdefault("input_size", cfg.data.image_size)
    return create_model(cfg.model.name, classes, xi=tuple(cfg.model.xi), pretrained=pretrained,
                        **options)
