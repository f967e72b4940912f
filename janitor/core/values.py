"""Values as users type them (counts, durations with a unit, sizes, rule values), checked
where they enter and worded with their source (a flag, or a file, line and key). Pure."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

from janitor.domain import rules
from janitor.domain.errors import UsageError
from janitor.domain.rules import MAX_SETS, MAX_STEP, is_int

RULE_KEYS = rules.TOML_KEYS  # janitor.toml key -> Policy field (the registry's, live)
COUNTS = rules.COUNTS  # whole numbers only, in a file as in Python
MAX_DURATION = 100 * 365 * 86400.0  # 100 years
MAX_BYTES = 10**18  # 1 EB
_UNITS = "2d, 36h, 90m, 30s"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def shown(value: Any) -> str:
    """A value as the user wrote it (TOML spelling for booleans)."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


# ------------------------------------------------------------------ values, from any source


def parse_count(value: str | int, what: object, minimum: int = 0, maximum: int = MAX_SETS) -> int:
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


def size_text(n: int) -> str:
    """Bytes as janitor words them in reasons and messages ("14 MB", decimal units);
    humanfriendly is imported on first use (a scan without such a message never loads it)."""
    from humanfriendly import format_size

    return format_size(n)


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


def parse_floor(value: str | int, what: object) -> int | rules.Percent:
    """A free-space floor: a size ('14GB', or bytes) or a share of the file system ('10%')."""
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1].strip()
        share = float(number) if _NUMBER.fullmatch(number) else math.nan
        if not 0 < share < 100:
            raise UsageError(f"{what}: a percentage must be above 0 and below 100, got {value!r}")
        return rules.Percent(share)
    return parse_bytes(value, what, allow_zero=False)


def check_rule(name: str, value: Any, what: object, *, text: bool = True) -> Any:
    """One value of rule ``name`` (a ``Policy`` field), checked and converted; errors name
    ``what`` (the flag, keyword, or file, line and key). Python values are taken as they are
    typed: a count is an int, a yes/no a bool; a duration a ``timedelta`` or text with a unit;
    a size an int of bytes or text with a unit. ``text``: the value comes from the command
    line, where a count is text too ("2"); without it (Python keywords) a count is an int."""
    r = rules.rule(name)
    kind = r.parser
    if kind in ("count", "steps"):
        if not (text and isinstance(value, str)) and not is_int(value):
            raise UsageError(f"{what}: must be a whole number, got {shown(value)}")
        if kind == "steps":
            return parse_count(value, what, minimum=1, maximum=MAX_STEP)
        return parse_count(value, what)
    if kind == "duration":
        if isinstance(value, timedelta):
            value = f"{value.total_seconds()}s"
        return parse_duration(value, what, allow_zero=False)
    if kind == "size":
        return parse_bytes(value, what, allow_zero=False)
    if kind == "floor":
        return parse_floor(value, what)
    if kind == "bool":
        return check_switch(value, what)
    if kind == "choice":
        if value not in r.choices:
            raise UsageError(f"{what}: must be {' or '.join(r.choices)}, got {shown(value)}")
        return value
    if not isinstance(value, str) or not value.strip():
        example = f" such as {r.example}" if r.example else ""
        raise UsageError(f"{what}: must be a text{example}, got {shown(value)}")
    return value.strip()


def check_switch(value: Any, what: object) -> bool:
    """A yes/no: a bool, nothing else (the text "false" is not a no to be read as yes)."""
    if not isinstance(value, bool):
        raise UsageError(f"{what}: must be True or False, got {shown(value)}")
    return value
