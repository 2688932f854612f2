"""One check per kind of option value, shared by every option record (``SpaceParams``, ``SSPConfig``,
``SegmentOptions``, ``ProtocolValues``) so that the same kind of value is refused the same way everywhere.

Each check returns the value (numbers as they were given, sequences as tuples) or raises ``error``
(:class:`~s3_hf.errors.InvalidConfigError` by default) with a message that names the option, says what it must be and
shows what it got. ``bool`` is never accepted as a number, and NaN never passes a numeric check.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from s3_hf.errors import InvalidConfigError


def _fail(error: type[Exception], name: str, expected: str, value: Any, optional: bool, hint: str) -> Exception:
    tail = f" {hint}" if hint else ""
    return error(f"{name} must be {expected}{' or None' if optional else ''}, got {value!r}.{tail}")


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or a float (not a bool) other than NaN."""
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer_kind(low: int | None) -> str:
    """How :func:`integer` words its bound: ``a positive integer``, ``an integer >= 0``, ``an integer``."""
    if low is None:
        return "an integer"
    return "a positive integer" if low == 1 else f"an integer >= {low}"


def range_text(low: float | None, high: float | None, open_low: bool = False, open_high: bool = False) -> str:
    """The range of :func:`number` in words: ``in [0, 1]``, ``in (0, 1)``, ``>= 0``, ``> 1``, ``<= 2``."""
    if low is not None and high is not None:
        return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    if low is not None:
        return f"{'>' if open_low else '>='} {low:g}"
    if high is not None:
        return f"{'<' if open_high else '<='} {high:g}"
    return ""


def _in_range(x: float, low: float | None, high: float | None, open_low: bool, open_high: bool) -> bool:
    above = low is None or (x > low if open_low else x >= low)
    below = high is None or (x < high if open_high else x <= high)
    return above and below


def integer(
    name: str,
    value: Any,
    low: int | None = 1,
    *,
    optional: bool = False,
    error: type[Exception] = InvalidConfigError,
    hint: str = "",
) -> Any:
    """An int (not a bool) ``>= low`` (no bound when ``low`` is ``None``); ``None`` too when ``optional``.

    Args:
        name: the option's name, for the message.
        value: the value to check.
        low: the smallest value allowed.
        optional: accept ``None``.
        error: the exception type raised.
        hint: a sentence appended to the message (what to use instead).
    """
    if optional and value is None:
        return None
    if not is_integer(value) or (low is not None and value < low):
        raise _fail(error, name, integer_kind(low), value, optional, hint)
    return value


def number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
    finite: bool = False,
    optional: bool = False,
    expected: str | None = None,
    error: type[Exception] = InvalidConfigError,
) -> Any:
    """An int or float (not a bool, not NaN) in a range; ``None`` too when ``optional``.

    Args:
        name: the option's name, for the message.
        value: the value to check.
        low: the lower bound (``None``: none).
        high: the upper bound (``None``: none).
        open_low: exclude ``low`` itself.
        open_high: exclude ``high`` itself.
        finite: refuse infinities.
        optional: accept ``None``.
        expected: what the message says the value must be (default: ``a number`` and the range).
        error: the exception type raised.
    """
    if optional and value is None:
        return None
    ok = is_number(value) and _in_range(value, low, high, open_low, open_high)
    if not ok or (finite and not math.isfinite(value)):
        words = expected or " ".join(
            x for x in ("a finite number" if finite else "a number", range_text(low, high, open_low, open_high)) if x
        )
        raise _fail(error, name, words, value, optional, "")
    return value


def probability(
    name: str, value: Any, *, optional: bool = False, error: type[Exception] = InvalidConfigError
) -> float | None:
    """A number in ``[0, 1]``; ``None`` too when ``optional``."""
    return number(name, value, low=0, high=1, optional=optional, expected="a number in [0, 1]", error=error)


def positive_probability(
    name: str, value: Any, *, optional: bool = False, error: type[Exception] = InvalidConfigError
) -> float | None:
    """A number in ``(0, 1]`` (a threshold a probability must reach: 0 would accept everything); ``None`` too when
    ``optional``."""
    return number(name, value, low=0, high=1, open_low=True, optional=optional, error=error)


def one_of(name: str, value: Any, choices: Collection[Any], *, error: type[Exception] = InvalidConfigError) -> Any:
    """One of ``choices`` (compared by equality; a bool is never taken for 0 or 1)."""
    if isinstance(value, bool) or value not in choices:
        raise error(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}.")
    return value


def flag(name: str, value: Any, *, error: type[Exception] = InvalidConfigError) -> bool:
    """``True`` or ``False``, nothing else."""
    if not isinstance(value, bool):
        raise error(f"{name} must be True or False, got {value!r}.")
    return value


def numbers(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    finite: bool = True,
    nonempty: bool = True,
    error: type[Exception] = InvalidConfigError,
) -> tuple[float, ...]:
    """A list or tuple of numbers each ``>= low``, as a tuple of floats."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and (len(value) > 0 or not nonempty)
    ok = ok and all(is_number(x) and (low is None or x >= low) and (not finite or math.isfinite(x)) for x in value)
    if not ok:
        each = " ".join(x for x in ("finite" if finite else "", "numbers", range_text(low, None)) if x)
        raise error(f"{name} must be a {'non-empty ' if nonempty else ''}list of {each}, got {value!r}.")
    return tuple(float(x) for x in value)


def integers(
    name: str, value: Any, *, low: int | None = 1, nonempty: bool = True, error: type[Exception] = InvalidConfigError
) -> tuple[int, ...]:
    """A list or tuple of ints (not bools) each ``>= low``, as a tuple."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and (len(value) > 0 or not nonempty)
    if not ok or not all(is_integer(x) and (low is None or x >= low) for x in value):
        kind = "integers" if low is None else ("positive integers" if low == 1 else f"integers >= {low}")
        raise error(f"{name} must be a {'non-empty ' if nonempty else ''}list of {kind}, got {value!r}.")
    return tuple(value)


def strings(
    name: str, value: Any, *, nonempty: bool = True, error: type[Exception] = InvalidConfigError
) -> tuple[str, ...]:
    """A list or tuple of strings, as a tuple."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and (len(value) > 0 or not nonempty)
    if not ok or not all(isinstance(x, str) for x in value):
        raise error(f"{name} must be a {'non-empty ' if nonempty else ''}list of strings, got {value!r}.")
    return tuple(value)


def known_fields(cls: type, data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``data`` when every key is a field of the dataclass ``cls``; else :class:`InvalidConfigError` naming the
    unknown keys and the known ones (``what``: the options' name, e.g. ``"TS^3"``)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise InvalidConfigError(f"Unknown {what} options {sorted(unknown)}; known: {sorted(known)}.")
    return dict(data)


__all__ = [
    "flag",
    "integer",
    "integer_kind",
    "integers",
    "is_integer",
    "is_number",
    "known_fields",
    "number",
    "numbers",
    "one_of",
    "positive_probability",
    "probability",
    "range_text",
    "strings",
]
