"""The shared argument checks: accepted values, converted types, and one wording per kind."""

from __future__ import annotations

import numpy as np
import pytest

from tdsa.errors import ConfigError
from tdsa.validation import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_positive_int,
    check_positive_ints,
    check_stage_xi,
    check_xi,
)


def test_integers_accept_numpy_and_reject_bools_floats_and_out_of_range() -> None:
    assert check_int("n", np.int64(3), 1, 5) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_int("n", -4) == -4
    for bad in (True, 2.0, "2", None):
        with pytest.raises(ConfigError, match=r"^n must be an integer 1\.\.5, got "):
            check_int("n", bad, 1, 5)
    with pytest.raises(ConfigError, match=r"^n=6 is outside the allowed range 1\.\.5$"):
        check_int("n", 6, 1, 5)
    with pytest.raises(ConfigError, match=r"^n=-1 is outside the allowed range >= 0$"):
        check_int("n", -1, low=0)
    with pytest.raises(ConfigError, match=r"^n=9 is outside the allowed range <= 8$"):
        check_int("n", 9, high=8)


def test_positive_integers() -> None:
    assert check_positive_int("xi", 1) == 1
    for bad in (0, -2, False, True, 1.5):
        with pytest.raises(ConfigError, match=r"^xi must be a positive integer, got "):
            check_positive_int("xi", bad)


def test_numbers_are_finite_and_bounds_may_be_open() -> None:
    assert check_number("f", 1) == 1.0 and type(check_number("f", np.float32(0.5))) is float
    assert check_number("f", 0.0, 0.0, 1.0) == 0.0
    with pytest.raises(ConfigError, match=r"^f=0\.0 is outside the allowed range in \(0, 1\)$"):
        check_number("f", 0.0, 0.0, 1.0, open_low=True, open_high=True)
    with pytest.raises(ConfigError, match=r"^f=1 is outside the allowed range in \[0, 1\)$"):
        check_number("f", 1, 0.0, 1.0, open_high=True)
    for bad in (float("nan"), float("inf"), True, "1"):
        with pytest.raises(ConfigError, match=r"^f must be a finite number in \[0, inf\), got "):
            check_number("f", bad, low=0.0)
    assert isinstance(ConfigError("x"), ValueError), "argument errors stay ValueErrors"


def test_bools_and_choices() -> None:
    assert check_bool("b", np.bool_(True)) is True
    with pytest.raises(ConfigError, match=r"^b must be true or false, got 1$"):
        check_bool("b", 1)
    assert check_choice("split", "val", ("train", "val")) == "val"
    with pytest.raises(ConfigError, match=r"^split='tset' is invalid: expected one of train, val$"):
        check_choice("split", "tset", ("train", "val"))


def test_positive_integer_sequences() -> None:
    assert check_positive_ints("xi", [np.int64(9), 3], 2) == (9, 3)
    assert check_positive_ints("ks", (1, 5, 10)) == (1, 5, 10)
    assert check_positive_ints("ks", ()) == ()
    for bad in ((9, 0), (9, True), (9, 3.0), (9,), (9, 3, 1), 9, "93", None):
        with pytest.raises(ConfigError, match=r"^xi must be 2 positive integers \(mid, high\), "
                           r"got "):
            check_positive_ints("xi", bad, 2, "(mid, high)")
    with pytest.raises(ConfigError, match=r"^ks must be positive integers, got \[1, -5\]$"):
        check_positive_ints("ks", [1, -5])


def test_xi_is_one_check_for_the_pair_and_the_gate_ratio() -> None:
    assert check_xi([np.int64(9), 3], top_down=True) == (9, 3)
    assert check_xi((4, 3)) == (4, 3), "without the gate any two positive integers do"
    for bad in ((9, 0), (9,), "93", (9, 3.0)):
        with pytest.raises(ConfigError, match=r"^xi must be 2 positive integers "
                           r"\[xi_mid, xi_high\], got "):
            check_xi(bad)
    with pytest.raises(ConfigError, match=r"^model\.xi=\[4, 3\] is invalid with "
                       r"loss\.top_down=true: xi_mid must be a multiple of xi_high \(each high "
                       r"channel gates xi_mid / xi_high mid channels of its class\)$"):
        check_xi([4, 3], True, name="model.xi", top_down_name="loss.top_down")
    assert check_stage_xi(np.int64(3)) == 3
    with pytest.raises(ConfigError, match=r"^xi \(channels per class\) must be a positive "
                       r"integer, got 0$"):
        check_stage_xi(0)
