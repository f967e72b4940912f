"""Command values, checked once for both edges. The command line hands in text as typed
(``origin="flag"``); the Python API hands in Python values (``origin="keyword"``): a bool is a
bool, a count an int ("2" is refused), a duration a ``timedelta`` or a string with a unit, a
size an int of bytes or a string with a unit, paths a ``str``, an ``os.PathLike`` or an
iterable of them. Errors name the flag (``--idle``) or the keyword (``idle argument``)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from janitor.core.profiles import PROFILES
from janitor.core.values import MAX_STEP, is_int, parse_bytes, parse_count, parse_duration, shown
from janitor.domain.errors import UsageError

Origin = Literal["flag", "keyword"]
TRAINERS = tuple(PROFILES)  # the trainer profiles --trainer / trainer= may name
_FLAG = re.compile(r"(?<![\w/.-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


@dataclass(frozen=True)
class Spelling:
    """How the user named a value: ``--keep-best`` on the command line, ``keep_best
    argument`` in Python."""

    origin: Origin = "flag"

    def __call__(self, name: str, flag: str | None = None) -> str:
        if self.origin == "keyword":
            return f"{name} argument"
        return flag or "--" + name.replace("_", "-")

    def reword(self, text: str) -> str:
        """A message that names flags, worded for this origin (``--force`` -> ``force
        argument``): the torch layer's option checks speak in flags."""
        if self.origin == "flag":
            return text
        return _FLAG.sub(lambda m: f"{m.group(1).replace('-', '_')} argument", text)


def paths(value: Any, what: str) -> list[str]:
    """``str``, ``os.PathLike`` or an iterable of them (not empty)."""
    items = [value] if isinstance(value, str | os.PathLike) else value
    if isinstance(items, bytes | bytearray) or not isinstance(items, Iterable):
        raise UsageError(
            f"{what}: expected a path (str or os.PathLike) or a list of them, got {shown(value)}"
        )
    out = []
    for item in items:
        if not isinstance(item, str | os.PathLike) or isinstance(item, bytes):
            raise UsageError(f"{what}: expected paths (str or os.PathLike), got {shown(item)}")
        path = os.fspath(item)
        if not isinstance(path, str) or not path:
            raise UsageError(f"{what}: expected a non-empty path, got {shown(item)}")
        out.append(path)
    if not out:
        raise UsageError(f"{what}: needs at least one path")
    return out


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{what}: must be True or False, got {shown(value)}")
    return value


def maybe_flag(value: Any, what: str) -> bool | None:
    return None if value is None else flag(value, what)


def count(value: Any, what: str, origin: Origin, *, minimum: int = 0, maximum: int = MAX_STEP):
    """A whole number: digits on the command line, an ``int`` in Python."""
    if value is None:
        return None
    if origin == "keyword" and not is_int(value):
        raise UsageError(f"{what}: must be a whole number (int), got {shown(value)}")
    return parse_count(value, what, minimum=minimum, maximum=maximum)


def duration(value: Any, what: str, *, allow_zero: bool = True) -> float | None:
    """'2d', '36h' (a unit is required) or a ``timedelta``; seconds."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = f"{value.total_seconds()}s"
    return parse_duration(value, what, allow_zero=allow_zero)


def size(value: Any, what: str) -> int | None:
    """'20GB', '500MiB' or an ``int`` of bytes."""
    return None if value is None else parse_bytes(value, what)


def text(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{what}: must be a string, got {shown(value)}")
    return value


def seconds(value: Any, what: str, unit: str, most: float) -> float:
    """An interval: a real number above 0 and at most ``most`` (NaN fails both)."""
    number = (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    )
    if number is None or not 0 < number <= most or math.isnan(number):
        got = f"{value:g}" if number is not None else shown(value)
        raise UsageError(
            f"{what} must be a number of {unit} above 0 and at most {most:g}, got {got}"
        )
    return number


def steps(value: Any, what: str, origin: Origin) -> tuple[int, ...]:
    """Step numbers: ``1000,5000`` on the command line, a sequence of ints in Python."""
    if value is None:
        return ()
    if origin == "flag":
        try:
            return tuple(int(x) for x in value.split(",") if x.strip())
        except ValueError:
            raise UsageError(
                f"{what}: expected step numbers like 1000,5000, got {value!r}"
            ) from None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise UsageError(f"{what}: expected a list of step numbers, got {shown(value)}")
    return tuple(count(v, what, origin) for v in value)
