"""A timm-style model registry: ``register_model``, ``list_models`` and ``create_model``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any, TypeVar

from tdsa.errors import ConfigError
from tdsa.models.base import TdsaNet
from tdsa.validation import DEFAULT_XI

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
        from tdsa.models.pretrained import load_pretrained

        load_pretrained(model, pretrained)
    return model
