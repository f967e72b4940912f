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

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

try:
    import tomllib  # novermin (guarded: Python 3.10 has the same parser as tomli)
except ModuleNotFoundError:
    import tomli as tomllib

from janitor.core.profiles import looks_like_checkpoint_folder
from janitor.core.values import (
    COUNTS,
    MAX_STEP,
    RULE_KEYS,
    check_rule,
    is_int,
    parse_bytes,
    parse_count,
    parse_duration,
    shown,
)
from janitor.domain.errors import JanitorError, UsageError
from janitor.domain.paths import shown_path
from janitor.domain.policy import Overrides, Policy
from janitor.storage import layout
from janitor.storage.fs import LOCAL, FileSystem

__all__ = ["RULE_KEYS", "check_rule", "parse_bytes", "parse_count", "parse_duration"]

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

    def brief(self) -> str:
        """For plans and the journal: the flag or keyword, or the file (and table)."""
        if self.flag:
            return self.flag
        table = f" [{'.'.join(self.keys[:2])}]" if self.keys[:1] == ("runs",) else ""
        return f"{shown_path(self.file.path)}{table}"


Rules = dict[str, tuple[Any, Source]]  # Policy field -> (value, where it came from)


@dataclass(frozen=True)
class Settings:
    """One janitor.toml, checked."""

    file: _File
    prune: Rules
    runs: dict[str, Rules]  # [runs.NAME] rules
    run_pins: dict[str, frozenset[int]]  # [runs.NAME] pins
    pins: frozenset[int] | None  # top-level pins; None when the key is absent


def _read(path: str, fs: FileSystem = LOCAL) -> _File | None:
    try:
        raw = fs.read_bytes(path)
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
            if name in COUNTS and not is_int(value):
                raise UsageError(f"{where}: must be a whole number, got {shown(value)}")
            rules[name] = (check_rule(name, value, where), where)
        else:
            known = ", ".join([*RULE_KEYS, *(["pins"] if keys[0] == "runs" else [])])
            raise UsageError(
                f"{f.at(*keys, key)}: [{'.'.join(keys)}]: unknown setting {key} (known: {known})"
            )
    return rules, pins


def _pins(value: Any, where: str | Source) -> frozenset[int]:
    if not isinstance(value, list) or not all(is_int(v) and 0 <= v <= MAX_STEP for v in value):
        raise UsageError(
            f"{where}: must be a list of step numbers such as [5000, 12000], got {shown(value)}"
        )
    return frozenset(value)


def load(path: str, fs: FileSystem = LOCAL) -> Settings | None:
    """One janitor.toml, every key checked (None when there is no such file)."""
    f = _read(path, fs)
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


def _holds_checkpoints(folder: str, fs: FileSystem = LOCAL) -> bool:
    try:
        names = {e.name for e in fs.listdir(folder) if e.kind == "file"}
        return looks_like_checkpoint_folder(names)
    except OSError:
        return False


def _split(run_path: str) -> tuple[str, str]:
    run_path = run_path.rstrip(os.sep) or os.sep
    return os.path.dirname(run_path), os.path.basename(run_path)


def _root(run_path: str, fs: FileSystem = LOCAL) -> Settings | None:
    """The logs root's janitor.toml, seen from one of its runs. Top-level pins there belong
    to the root folder itself: an error unless that folder is a run too."""
    parent, _ = _split(run_path)
    root = load(layout.root_config(run_path), fs)
    if root is not None and root.pins is not None and not _holds_checkpoints(parent, fs):
        raise UsageError(
            f"{root.file.where('pins')}: {shown_path(parent)} is a logs root, not a run, so "
            "these pins protect nothing; put them in [runs.NAME] here or in the run's own "
            "janitor.toml (janitor pin RUN STEP)"
        )
    return root


def run_rules(run_path: str, fs: FileSystem = LOCAL) -> Rules:
    """The rules the config files set for one run, with their sources (see module doc)."""
    _, name = _split(run_path)
    root, own = _root(run_path, fs), load(layout.run_config(run_path), fs)
    merged: Rules = {}
    if root is not None:
        merged.update(root.prune)
        merged.update(root.runs.get(name, {}))
    if own is not None:
        merged.update(own.prune)
    return merged


def policy_for(
    run_path: str, overrides: Overrides, fs: FileSystem = LOCAL
) -> tuple[Policy, dict[str, str]]:
    """The run's policy: config files, then this invocation's ``overrides`` (checked
    already); and where each value came from. Contradictions are worded with the source of
    each value."""
    values = run_rules(run_path, fs)
    for name, value in overrides.given().items():
        values[name] = (value, Source(flag=overrides.source(name)))
    best = values.get("keep_best")
    if best and best[0] and "metric" not in values:
        src = best[1]
        if src.flag and overrides.origin == "keyword":
            raise UsageError(f'{src.flag} needs a metric (e.g. metric="loss/g/total")')
        if src.flag:
            raise UsageError(f"{src.flag} needs --metric TAG (e.g. --metric loss/g/total)")
        raise UsageError(f'{src}: needs a metric (metric = "loss/g/total" beside it, or --metric)')
    if best is None:
        for name in ("metric", "mode"):
            if name in values and values[name][1].flag:
                _, run = _split(run_path)
                raise UsageError(
                    f"{values[name][1].flag} goes with {overrides.source('keep_best')} K (no "
                    f"keep-best for {run} in the flags or janitor.toml)"
                )
    policy = Policy(**{name: value for name, (value, _) in values.items()})
    return policy, {name: src.brief() for name, (_, src) in values.items()}


def pins(run_path: str, fs: FileSystem = LOCAL) -> frozenset[int]:
    """The run's pins: its own janitor.toml and ``[runs.NAME]`` of the logs root's."""
    _, name = _split(run_path)
    root, own = _root(run_path, fs), load(layout.run_config(run_path), fs)
    found = (own.pins or frozenset()) if own is not None else frozenset()
    if root is not None:
        found |= root.run_pins.get(name, frozenset())
    return found


def run_table_warnings(run_paths: Iterable[str], fs: FileSystem = LOCAL) -> list[str]:
    """``[runs.NAME]`` tables naming no folder next to the runs (a typo, or a run not started
    yet): one warning each, with the runs that do exist there."""
    paths = sorted(set(run_paths))
    folders = sorted({_split(p)[0] for p in paths} | set(paths))
    out = []
    for folder in folders:
        settings = load(os.path.join(folder, layout.CONFIG_NAME), fs)
        if settings is None:
            continue
        here = [_split(p)[1] for p in paths if _split(p)[0] == folder]
        for name in settings.runs:
            if not _is_dir(fs, os.path.join(folder, name)):
                runs = ", ".join(here) or "none"
                out.append(
                    f"{settings.file.where('runs', name, table=True)}: no run folder "
                    f"{shown_path(os.path.join(folder, name))} (runs: {runs}); ignored until it "
                    "exists"
                )
    return out


def _is_dir(fs: FileSystem, path: str) -> bool:
    try:
        return fs.stat(path).kind == "dir"
    except OSError:
        return False


def set_pins(
    run_path: str,
    add: frozenset[int] = frozenset(),
    drop: frozenset[int] = frozenset(),
    fs: FileSystem = LOCAL,
) -> frozenset[int]:
    """Edit the run's own pins in place (comments and other settings kept); returns the pins
    now in force (with those of ``[runs.NAME]`` in the logs root's file). Checks everything
    before writing; writes nothing when nothing changes."""
    import tomlkit

    _, name = _split(run_path)
    path = layout.run_config(run_path)
    root, own = _root(run_path, fs), load(path, fs)
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
        fs.write_atomic(path, tomlkit.dumps(doc).encode("utf-8"))
    return frozenset(new | from_root)
