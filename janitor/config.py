"""``janitor.toml``: default rules per logs root and per run, and pinned steps.

Lookup for a run folder ``logs/alice``, later entries overriding earlier ones key by key:

1. ``logs/janitor.toml`` ``[prune]``
2. ``logs/janitor.toml`` ``[runs.alice]``
3. ``logs/alice/janitor.toml`` ``[prune]``
4. command-line flags

Pins live in the run's own file as ``pins = [1000, 5000]`` (``janitor pin``/``unpin`` edit it,
keeping the user's comments and layout) and in ``[runs.alice]`` of the logs root's file; a
run's pins are the union of both.

Every value is checked where it enters, here for files and flags alike: an unknown key or
table, a value of the wrong type or out of range is a usage error naming its source (the flag,
or the file, line and key). The ``Policy``'s own checks stay as a last line of defence.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from janitor.errors import JanitorError, UsageError
from janitor.policy import Policy

CONFIG_NAME = "janitor.toml"
STATE_DIR = ".janitor"

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
_COUNTS = ("keep_last", "keep_every", "keep_best")

# Beyond these a value is a typo, not a wish (and would overflow what reads it).
MAX_COUNT = 1_000_000  # sets: keep-last, keep-best
MAX_STEP = 10**12  # steps: keep-every, pins (GPT-SoVITS's latest-only number is 2.3e11)
MAX_DURATION = 100 * 365 * 86400.0  # 100 years
MAX_BYTES = 10**18  # 1 EB
_UNITS = "2d, 36h, 90m, 30s"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _shown(value: Any) -> str:
    """A value as the user wrote it (TOML spelling for booleans)."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ------------------------------------------------------------------ values, from any source


def parse_count(
    value: str | int, what: str | Source, minimum: int = 0, maximum: int = MAX_COUNT
) -> int:
    """A whole number: command-line text or a TOML integer. ``what`` names the source."""
    text = value.strip() if isinstance(value, str) else None
    if text is not None and text.isascii() and text.isdigit():
        number = int(text) if len(text) <= 30 else maximum + 1  # no 4300-digit int() error
    elif _is_int(value):
        number = value
    else:
        number = None
    if number is None or number < minimum:
        raise UsageError(f"{what}: must be a whole number >= {minimum}, got {_shown(value)}")
    if number > maximum:
        raise UsageError(f"{what}: {text or number} is too large (at most {maximum:,})")
    return number


def parse_duration(text: str, what: str | Source = "duration", *, allow_zero: bool = True) -> float:
    """'2d', '36h', '90m', '30s' (a unit is required: a bare '2' is refused, not 2 seconds)."""
    from humanfriendly import InvalidTimespan, parse_timespan

    if isinstance(text, bool) or not isinstance(text, str):
        raise UsageError(f'{what}: {_shown(text)} needs a unit, in quotes ("2d", "36h", "90m")')
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


def parse_bytes(text: str | int, what: str | Source = "size", *, allow_zero: bool = True) -> int:
    """'20GB', '500MiB', or a whole number of bytes."""
    from humanfriendly import InvalidSize, parse_size

    if _is_int(text):
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
            f'{what}: must be a size such as "20GB" or a whole number of bytes, got {_shown(text)}'
        )
    if (isinstance(value, float) and not math.isfinite(value)) or value > MAX_BYTES:
        raise UsageError(f"{what}: {text!r} is too large (at most 1 EB)")
    if value < 0:
        raise UsageError(f"{what}: must not be negative, got {_shown(text)}")
    if value == 0 and not allow_zero:
        raise UsageError(f"{what}: must be more than zero, got {_shown(text)}")
    return int(value)


def check_rule(name: str, value: Any, what: str | Source) -> Any:
    """One retention-rule value (``Policy`` field ``name``) from a flag or janitor.toml,
    checked and converted; errors name ``what`` (the flag, or file, line and key)."""
    if name == "keep_every":
        return parse_count(value, what, minimum=1, maximum=MAX_STEP)
    if name in _COUNTS:
        return parse_count(value, what)
    if name in ("keep_within", "remove_incomplete_older_than"):
        return parse_duration(value, what, allow_zero=False)
    if name == "max_size":
        return parse_bytes(value, what, allow_zero=False)
    if name == "metric":
        if not isinstance(value, str) or not value.strip():
            raise UsageError(
                f"{what}: must be a TensorBoard scalar tag such as loss/g/total, got "
                f"{_shown(value)}"
            )
        return value.strip()
    if name == "mode":
        if value not in ("min", "max"):
            raise UsageError(f"{what}: must be min or max, got {_shown(value)}")
        return value
    raise ValueError(f"not a rule: {name}")


# ------------------------------------------------------------------ reading janitor.toml

_NAME = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""  # a bare or quoted TOML key
_PART = re.compile(_NAME)
_KEY = re.compile(rf"\s*({_NAME}(?:\s*\.\s*{_NAME})*)\s*=")
_HEADER = re.compile(r"\s*\[\[?([^\[\]]+)\]\]?\s*(#.*)?$")


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _PART.findall(dotted))


def _line_of(text: str, keys: tuple[str, ...]) -> int | None:
    """The line (1-based) where the key or table ``keys`` is written: tomllib gives none, so
    a scan of the text for table headers and ``key =`` lines. None if it cannot tell."""
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _parts(header[1])
            if table[: len(keys)] == keys:
                return number
            continue
        key = _KEY.match(line)
        if key and (table + _parts(key[1]))[: len(keys)] == keys:
            return number
    return None


@dataclass(frozen=True)
class _File:
    path: str
    text: str
    data: dict[str, Any]

    def at(self, *keys: str) -> str:
        """'logs/janitor.toml:7': the file, and the line where ``keys`` are written."""
        from janitor.render import shown_path

        line = _line_of(self.text, keys)
        return f"{shown_path(self.path)}:{line}" if line else shown_path(self.path)

    def where(self, *keys: str, table: bool = False) -> str:
        """'logs/janitor.toml:7: [runs.bob] keep-last' (or '...: [runs.bob]' for a table)."""
        if table:
            return f"{self.at(*keys)}: [{'.'.join(keys)}]"
        inside = f"[{'.'.join(keys[:-1])}] " if len(keys) > 1 else ""
        return f"{self.at(*keys)}: {inside}{keys[-1]}"


@dataclass(frozen=True)
class Source:
    """Where a rule value came from: a flag, or a key of a janitor.toml."""

    flag: str | None = None
    file: _File | None = None
    keys: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.flag if self.flag else self.file.where(*self.keys)


Rules = dict[str, tuple[Any, Source]]  # Policy field -> (value, where it came from)


@dataclass(frozen=True)
class Settings:
    """One janitor.toml, checked."""

    file: _File
    prune: Rules
    runs: dict[str, Rules]  # [runs.NAME] rules
    run_pins: dict[str, frozenset[int]]  # [runs.NAME] pins
    pins: frozenset[int] | None  # top-level pins; None when the key is absent


def _read(path: str) -> _File | None:
    from janitor.render import shown_path

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JanitorError(f"{shown_path(path)}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
        return _File(path, text, tomllib.loads(text))
    except UnicodeDecodeError:
        raise UsageError(f"{shown_path(path)}: not valid TOML (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{shown_path(path)}: not valid TOML ({exc})") from None


def _rules(f: _File, keys: tuple[str, ...], table: Any) -> tuple[Rules, frozenset[int] | None]:
    """A [prune] or [runs.NAME] table: its rules and (in [runs.NAME] only) its pins."""
    if not isinstance(table, dict):
        raise UsageError(f"{f.where(*keys)}: must be a table ([{'.'.join(keys)}])")
    rules: Rules = {}
    pins = None
    for key, value in table.items():
        where = Source(file=f, keys=(*keys, key))  # worded only if there is an error
        if key == "pins" and keys[0] == "runs":
            pins = _pins(value, where)
        elif key == "pins":
            raise UsageError(
                f"{where}: not a rule; pins go at the top of the run's own janitor.toml or in "
                "[runs.NAME]"
            )
        elif key in RULE_KEYS:
            name = RULE_KEYS[key]
            if name in _COUNTS and not _is_int(value):
                raise UsageError(f"{where}: must be a whole number, got {_shown(value)}")
            rules[name] = (check_rule(name, value, where), where)
        else:
            known = ", ".join([*RULE_KEYS, *(["pins"] if keys[0] == "runs" else [])])
            raise UsageError(
                f"{f.at(*keys, key)}: [{'.'.join(keys)}]: unknown setting {key} (known: {known})"
            )
    return rules, pins


def _pins(value: Any, where: str | Source) -> frozenset[int]:
    if not isinstance(value, list) or not all(_is_int(v) and 0 <= v <= MAX_STEP for v in value):
        raise UsageError(
            f"{where}: must be a list of step numbers such as [5000, 12000], got {_shown(value)}"
        )
    return frozenset(value)


def load(path: str) -> Settings | None:
    """One janitor.toml, every key checked (None when there is no such file)."""
    f = _read(path)
    if f is None:
        return None
    prune: Rules = {}
    runs: dict[str, Rules] = {}
    run_pins: dict[str, frozenset[int]] = {}
    pins = None
    for key, value in f.data.items():
        if key == "prune":
            prune, _ = _rules(f, ("prune",), value)
        elif key == "runs":
            if not isinstance(value, dict):
                raise UsageError(f"{f.where('runs')}: must be tables [runs.NAME], one per run")
            for name, table in value.items():
                runs[name], found = _rules(f, ("runs", name), table)
                if found is not None:
                    run_pins[name] = found
        elif key == "pins":
            pins = _pins(value, Source(file=f, keys=("pins",)))
        elif key in RULE_KEYS:
            raise UsageError(
                f"{f.where(key)}: not read at the top level; did you mean it under [prune]?"
            )
        elif isinstance(value, dict):
            raise UsageError(
                f"{f.where(key, table=True)}: unknown table (known: [prune], [runs.NAME])"
            )
        else:
            raise UsageError(
                f"{f.where(key)}: unknown setting (known at the top level: pins, [prune], "
                "[runs.NAME])"
            )
    return Settings(f, prune, runs, run_pins, pins)


def _holds_checkpoints(folder: str) -> bool:
    from janitor.profiles import looks_like_checkpoint_folder

    try:
        with os.scandir(folder) as it:
            names = {e.name for e in it if e.is_file(follow_symlinks=False)}
        return looks_like_checkpoint_folder(names)
    except OSError:
        return False


def _split(run_path: str) -> tuple[str, str]:
    run_path = run_path.rstrip(os.sep) or os.sep
    return os.path.dirname(run_path), os.path.basename(run_path)


def _root(run_path: str) -> Settings | None:
    """The logs root's janitor.toml, seen from one of its runs. Top-level pins there belong
    to the root folder itself: an error unless that folder is a run too."""
    parent, _ = _split(run_path)
    root = load(os.path.join(parent, CONFIG_NAME))
    if root is not None and root.pins is not None and not _holds_checkpoints(parent):
        from janitor.render import shown_path

        raise UsageError(
            f"{root.file.where('pins')}: {shown_path(parent)} is a logs root, not a run, so "
            "these pins protect nothing; put them in [runs.NAME] here or in the run's own "
            "janitor.toml (janitor pin RUN STEP)"
        )
    return root


def run_rules(run_path: str) -> Rules:
    """The rules the config files set for one run, with their sources (see module doc)."""
    _, name = _split(run_path)
    root, own = _root(run_path), load(os.path.join(run_path, CONFIG_NAME))
    merged: Rules = {}
    if root is not None:
        merged.update(root.prune)
        merged.update(root.runs.get(name, {}))
    if own is not None:
        merged.update(own.prune)
    return merged


def policy_for(run_path: str, overrides: Mapping[str, Any]) -> Policy:
    """The run's policy: config files, then command-line ``overrides`` (Policy fields, checked
    already; None = not given). Contradictions are worded with the source of each value."""
    values = run_rules(run_path)
    for name, value in overrides.items():
        if value is not None:
            values[name] = (value, Source(flag=FLAGS[name]))
    best = values.get("keep_best")
    if best and best[0] and "metric" not in values:
        src = best[1]
        if src.flag:
            raise UsageError("--keep-best needs --metric TAG (e.g. --metric loss/g/total)")
        raise UsageError(f'{src}: needs a metric (metric = "loss/g/total" beside it, or --metric)')
    if best is None:
        for name in ("metric", "mode"):
            if name in values and values[name][1].flag:
                _, run = _split(run_path)
                raise UsageError(
                    f"{FLAGS[name]} goes with --keep-best K (no keep-best for {run} in the flags "
                    "or janitor.toml)"
                )
    return Policy(**{name: value for name, (value, _) in values.items()})


def pins(run_path: str) -> frozenset[int]:
    """The run's pins: its own janitor.toml and ``[runs.NAME]`` of the logs root's."""
    _, name = _split(run_path)
    root, own = _root(run_path), load(os.path.join(run_path, CONFIG_NAME))
    found = (own.pins or frozenset()) if own is not None else frozenset()
    if root is not None:
        found |= root.run_pins.get(name, frozenset())
    return found


def run_table_warnings(run_paths: Iterable[str]) -> list[str]:
    """``[runs.NAME]`` tables naming no folder next to the runs (a typo, or a run not started
    yet): one warning each, with the runs that do exist there."""
    from janitor.render import shown_path

    paths = sorted(set(run_paths))
    folders = sorted({_split(p)[0] for p in paths} | set(paths))
    out = []
    for folder in folders:
        settings = load(os.path.join(folder, CONFIG_NAME))
        if settings is None:
            continue
        here = [_split(p)[1] for p in paths if _split(p)[0] == folder]
        for name in settings.runs:
            if not os.path.isdir(os.path.join(folder, name)):
                runs = ", ".join(here) or "none"
                out.append(
                    f"{settings.file.where('runs', name, table=True)}: no run folder "
                    f"{shown_path(os.path.join(folder, name))} (runs: {runs}); ignored until it "
                    "exists"
                )
    return out


def set_pins(
    run_path: str, add: frozenset[int] = frozenset(), drop: frozenset[int] = frozenset()
) -> frozenset[int]:
    """Edit the run's own pins in place (comments and other settings kept); returns the pins
    now in force (with those of ``[runs.NAME]`` in the logs root's file). Checks everything
    before writing; writes nothing when nothing changes."""
    import tomlkit

    _, name = _split(run_path)
    path = os.path.join(run_path, CONFIG_NAME)
    root, own = _root(run_path), load(path)
    from_root = root.run_pins.get(name, frozenset()) if root is not None else frozenset()
    if drop & from_root:
        steps = ", ".join(map(str, sorted(drop & from_root)))
        raise UsageError(
            f"{root.file.where('runs', name, 'pins')}: step {steps} is pinned there; "
            "edit that file to unpin it (nothing changed)"
        )
    current = (own.pins or frozenset()) if own is not None else frozenset()
    new = (current | add) - drop
    if new != current:
        try:
            doc = tomlkit.parse(own.file.text) if own is not None else tomlkit.document()
        except tomlkit.exceptions.ParseError as exc:
            raise UsageError(f"{own.file.at()}: cannot edit ({exc})") from None
        doc["pins"] = sorted(new)
        atomic_write_text(path, tomlkit.dumps(doc))
    return frozenset(new | from_root)


def atomic_write_text(path: str, text: str) -> None:
    """Temp file in the same folder, fsync, ``os.replace``: never a half-written file."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".janitor-tmp-", suffix=".toml", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def state_dir(run_path: str) -> str:
    """Where journal, locks and trash live: ``.janitor/`` in the run's parent (the logs root)."""
    return os.path.join(os.path.dirname(run_path.rstrip(os.sep)), STATE_DIR)
