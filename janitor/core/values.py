"""Values as users type them (counts, durations with a unit, sizes, rule values), checked
where they enter and worded with their source (a flag, or a file, line and key). Pure."""

from __future__ import annotations

import math
import re
from typing import Any

from janitor.domain.errors import UsageError

# TOML key -> Policy field
RULE_KEYS = {
    "keep-last": "keep_last",
    "keep-every": "keep_every",
    "keep-within": "keep_within",
    "keep-best": "keep_best",
    "metric": "metric",
    "mode": "mode",
    "max-size": "max_size",
}
# Policy field -> the command-line flag that sets it
FLAGS = {
    "keep_last": "--keep-last",
    "keep_every": "--keep-every",
    "keep_within": "--keep-within",
    "keep_best": "--keep-best",
    "metric": "--metric",
    "mode": "--mode",
    "max_size": "--max-size",
    "remove_incomplete_older_than": "--older-than",
}
COUNTS = ("keep_last", "keep_every", "keep_best")

# Beyond these a value is a typo, not a wish (and would overflow what reads it).
MAX_COUNT = 1_000_000  # sets: keep-last, keep-best
MAX_STEP = 10**12  # steps: keep-every, pins (GPT-SoVITS's latest-only number is 2.3e11)
MAX_DURATION = 100 * 365 * 86400.0  # 100 years
MAX_BYTES = 10**18  # 1 EB
_UNITS = "2d, 36h, 90m, 30s"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def shown(value: Any) -> str:
    """A value as the user wrote it (TOML spelling for booleans)."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ------------------------------------------------------------------ values, from any source


def parse_count(value: str | int, what: object, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    """A whole number: command-line text or a TOML integer. ``what`` names the source."""
    text = value.strip() if isinstance(value, str) else None
    if text is not None and text.isascii() and text.isdigit():
        number = int(text) if len(text) <= 30 else maximum + 1  # no 4300-digit int() error
    elif is_int(value):
        number = value
    else:
        number = None
    if number is None or number < minimum:
        raise UsageError(f"{what}: must be a whole number >= {minimum}, got {shown(value)}")
    if number > maximum:
        raise UsageError(f"{what}: {text or number} is too large (at most {maximum:,})")
    return number


def parse_duration(text: str, what: object = "duration", *, allow_zero: bool = True) -> float:
    """'2d', '36h', '90m', '30s' (a unit is required: a bare '2' is refused, not 2 seconds)."""
    from humanfriendly import InvalidTimespan, parse_timespan

    if isinstance(text, bool) or not isinstance(text, str):
        raise UsageError(f'{what}: {shown(text)} needs a unit, in quotes ("2d", "36h", "90m")')
    if _NUMBER.fullmatch(text.strip()):
        raise UsageError(f"{what}: {text!r} needs a unit ({_UNITS})")
    try:
        value = float(parse_timespan(text.strip()))
    except (InvalidTimespan, ValueError, OverflowError):
        raise UsageError(
            f"{what}: cannot read {text!r} as a duration (examples: {_UNITS})"
        ) from None
    if not math.isfinite(value) or value > MAX_DURATION:
        raise UsageError(f"{what}: {text!r} is too long (at most 100 years)")
    if value < 0:
        raise UsageError(f"{what}: must not be negative, got {text!r}")
    if value == 0 and not allow_zero:
        raise UsageError(f"{what}: must be more than zero, got {text!r}")
    return value


def parse_bytes(text: str | int, what: object = "size", *, allow_zero: bool = True) -> int:
    """'20GB', '500MiB', or a whole number of bytes."""
    from humanfriendly import InvalidSize, parse_size

    if is_int(text):
        value = text
    elif isinstance(text, str):
        try:
            value = parse_size(text.strip(), binary=False)
        except (InvalidSize, ValueError):
            raise UsageError(
                f"{what}: cannot read {text!r} as a size (examples: 20GB, 500MiB)"
            ) from None
    else:
        raise UsageError(
            f'{what}: must be a size such as "20GB" or a whole number of bytes, got {shown(text)}'
        )
    if (isinstance(value, float) and not math.isfinite(value)) or value > MAX_BYTES:
        raise UsageError(f"{what}: {text!r} is too large (at most 1 EB)")
    if value < 0:
        raise UsageError(f"{what}: must not be negative, got {shown(text)}")
    if value == 0 and not allow_zero:
        raise UsageError(f"{what}: must be more than zero, got {shown(text)}")
    return int(value)


def check_rule(name: str, value: Any, what: object) -> Any:
    """One retention-rule value (``Policy`` field ``name``) from a flag or janitor.toml,
    checked and converted; errors name ``what`` (the flag, or file, line and key)."""
    if name == "keep_every":
        return parse_count(value, what, minimum=1, maximum=MAX_STEP)
    if name in COUNTS:
        return parse_count(value, what)
    if name in ("keep_within", "remove_incomplete_older_than"):
        return parse_duration(value, what, allow_zero=False)
    if name == "max_size":
        return parse_bytes(value, what, allow_zero=False)
    if name == "metric":
        if not isinstance(value, str) or not value.strip():
            raise UsageError(
                f"{what}: must be a TensorBoard scalar tag such as loss/g/total, got {shown(value)}"
            )
        return value.strip()
    if name == "mode":
        if value not in ("min", "max"):
            raise UsageError(f"{what}: must be min or max, got {shown(value)}")
        return value
    raise ValueError(f"not a rule: {name}")
