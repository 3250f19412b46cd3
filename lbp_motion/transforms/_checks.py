"""Checks of the augmentation transforms' parameters (:mod:`.temporal`, :mod:`.spatial`):
one :class:`~lbp_motion.errors.ConfigError` line naming the transform and the field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lbp_motion.errors import ConfigError


def _check(cond: bool, name: str, what: str, value: Any, expected: str) -> None:
    if not cond:
        raise ConfigError(
            f"data: augment: {name}: field {what!r} is {value!r}; expected {expected}"
        )


def _check_range(name: str, what: str, value: Any, *, positive: bool = True) -> tuple[float, float]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ok = ok and value[0] <= value[1] and (not positive or value[0] > 0)
    _check(
        ok,
        name,
        what,
        value,
        "[low, high] with " + ("0 < low <= high" if positive else "low <= high"),
    )
    return float(value[0]), float(value[1])


def _check_p(name: str, p: Any) -> None:
    _check(
        isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1,
        name,
        "p",
        p,
        "a probability in [0, 1]",
    )
