"""Argument checks shared by the package: one wording per kind of check, one exception type.

Every check raises :class:`tdsa.errors.ConfigError` (a ``ValueError``: a bad argument or
config value, exit code 2 on the command line) naming the argument and what was expected, and
returns the value converted to the plain Python type. ``bool`` is never accepted as a number
(``True`` is an ``int`` in Python); numpy scalars are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tdsa.errors import ConfigError

__all__ = ["DEFAULT_XI", "check_bool", "check_choice", "check_int", "check_number",
           "check_positive_int", "check_positive_ints", "check_stage_xi", "check_xi"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer within ``[low, high]`` (either bound may
    be None)."""
    if not _is_int(value):
        raise ConfigError(f"{name} must be an integer{_range(low, high)}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name}={value} is outside the allowed range{_range(low, high)}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` if it is an integer >= 1."""
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_ints(name: str, values: Any, length: int | None = None,
                        what: str = "") -> tuple[int, ...]:
    """``values`` as a tuple of ``int`` if it is a sequence (not a string) of integers >= 1,
    of ``length`` items when given; ``what`` names the items in the message, e.g.
    ``"(xi_mid, xi_high)"``."""
    ok = isinstance(values, Sequence) and not isinstance(values, str) \
        and (length is None or len(values) == length) \
        and all(_is_int(v) and v >= 1 for v in values)
    if not ok:
        count = "" if length is None else f"{length} "
        label = f" {what}" if what else ""
        raise ConfigError(f"{name} must be {count}positive integers{label}, got {values!r}")
    return tuple(int(v) for v in values)


DEFAULT_XI: tuple[int, int] = (9, 3)
"""Channels per class ``(xi_mid, xi_high)`` at the two stages, as published: the one default
the models, the configs and :class:`tdsa.losses.TDSALoss` take."""


def check_stage_xi(xi: Any) -> int:
    """``xi`` (channels per class of one stage) as an ``int`` if it is an integer >= 1, else a
    ConfigError (a ``ValueError``) that says so."""
    return check_positive_int("xi (channels per class)", xi)


def check_xi(xi: Any, top_down: bool = False, *, name: str = "xi",
             top_down_name: str = "top_down") -> tuple[int, int]:
    """``xi = (xi_mid, xi_high)``, the channels per class of the two stages, as two ``int`` if
    both are integers >= 1 and, with the top-down gate (``top_down``), ``xi_mid`` is a multiple
    of ``xi_high`` (each high channel gates ``xi_mid / xi_high`` mid channels of its class);
    else a ConfigError naming ``name`` (and ``top_down_name``, the gate's switch)."""
    xi_mid, xi_high = check_positive_ints(name, xi, 2, "[xi_mid, xi_high]")
    if top_down and xi_mid % xi_high:
        raise ConfigError(
            f"{name}={[xi_mid, xi_high]} is invalid with {top_down_name}=true: xi_mid must be a "
            f"multiple of xi_high (each high channel gates xi_mid / xi_high mid channels of its "
            f"class)")
    return xi_mid, xi_high


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None,
                 *, open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a ``float`` if it is a finite number within the bounds (``open_*``
    excludes the bound itself)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number) \
            or not math.isfinite(float(value)):
        where = _interval(low, high, open_low, open_high)
        raise ConfigError(f"{name} must be a finite number{where}, got {value!r}")
    v = float(value)
    below = low is not None and (v <= low if open_low else v < low)
    above = high is not None and (v >= high if open_high else v > high)
    if below or above:
        raise ConfigError(f"{name}={value!r} is outside the allowed range"
                          f"{_interval(low, high, open_low, open_high)}")
    return v


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a ``bool`` if it is True or False (numpy's too)."""
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``."""
    options = list(choices)
    if value not in options:
        raise ConfigError(f"{name}={value!r} is invalid: expected one of {', '.join(options)}")
    return str(value)


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" {low}..{high}"
    if low is not None:
        return f" >= {low}"
    return "" if high is None else f" <= {high}"


def _interval(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    if low is None and high is None:
        return ""
    left = "(" if open_low or low is None else "["
    right = ")" if open_high or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f" in {left}{lo}, {hi}{right}"
