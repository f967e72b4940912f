"""``janitor.toml``: default rules and pinned steps, for the runs below a folder and per run.

The files that apply to a run are those of the run folder and of up to ``CONFIG_REACH`` (3)
folders above it (``layout.config_folders``): ``logs/janitor.toml`` reaches ``logs/alice``,
``logs/group/carol``, GPT-SoVITS's ``logs/<exp>/logs_s2_v2`` and ``logs/<exp>/logs_s1_v2/ckpt``
and Bert-VITS2's ``Data/<exp>/models`` (from ``Data/``) alike, whatever path the command was
given (the logs root, the run or one of its files). Rules, later entries overriding earlier
ones key by key (for ``logs/group/carol``):

1. ``logs/janitor.toml`` ``[prune]``, then its ``[runs.carol]`` / ``[runs."group/carol"]``
2. ``logs/group/janitor.toml`` ``[prune]``, then its ``[runs.carol]``
3. ``logs/group/carol/janitor.toml`` ``[prune]``
4. command-line flags

so a file nearer the run wins over one further up, and in one file a ``[runs.NAME]`` table
over ``[prune]``. ``[runs.NAME]`` names a run by its path relative to the file's folder
(``"group/carol"``, or ``alice`` for ``logs/alice``), or by its folder name when exactly one
run below that folder has it (``carol``; found by names alone, ``CONFIG_REACH`` levels
down); a table that names several runs applies to none, and one that names no run is
ignored: both are warnings on ``scan`` and ``prune``.

Pins: the run's own file has ``pins = [1000, 5000]`` at the top (``janitor pin``/``unpin``
edit it, keeping the user's comments and layout); ``[runs.NAME]`` tables above may have
``pins`` too. A run's pins are the union of all of them, each with where it came from.

One ``ConfigFiles`` per command reads each file once, whatever the number of runs.

Every value is checked where it enters, here for files and flags alike: an unknown key or
table, a value of the wrong type or out of range is a usage error naming its source (the flag,
or the file, line and key). The ``Policy``'s own checks stay as a last line of defence.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    import tomllib  # novermin (guarded: Python 3.10 has the same parser as tomli)
except ModuleNotFoundError:
    import tomli as tomllib

from janitor.core.profiles import ALL_SKIP_DIRS, looks_like_checkpoint_folder
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
from janitor.domain.profile import DEEPSPEED_TAG_RE, HF_CHECKPOINT_RE
from janitor.storage import layout
from janitor.storage.fs import LOCAL, DirEntry, FileSystem

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
class RuleSource:
    """Where a rule value or a pin came from: a flag, or a key of a janitor.toml."""

    flag: str | None = None
    file: _File | None = None
    keys: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.flag if self.flag else self.file.where(*self.keys)

    def brief(self) -> str:
        """For plans and the journal: the flag or keyword, or the file (and table)."""
        return self._said(shown_path(self.file.path)) if self.file else self.flag

    def place(self) -> str:
        """Like ``brief`` with the line: 'logs/janitor.toml:5 [runs.bob]' (pins' sources)."""
        return self._said(self.file.at(*self.keys)) if self.file else self.flag

    def _said(self, file: str) -> str:
        table = f" [{'.'.join(self.keys[:2])}]" if self.keys[:1] == ("runs",) else ""
        return f"{file}{table}"


Rules = dict[str, tuple[Any, RuleSource]]  # Policy field -> (value, where it came from)


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
    except (FileNotFoundError, NotADirectoryError):  # (a run given as one of its files)
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
        where = RuleSource(file=f, keys=(*keys, key))  # worded only if there is an error
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


def _pins(value: Any, where: str | RuleSource) -> frozenset[int]:
    if not isinstance(value, list) or not all(is_int(v) and 0 <= v <= MAX_STEP for v in value):
        raise UsageError(
            f"{where}: must be a list of step numbers such as [5000, 12000], got {shown(value)}"
        )
    return frozenset(value)


def load_file(path: str, fs: FileSystem = LOCAL) -> Settings | None:
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
            pins = _pins(value, RuleSource(file=f, keys=("pins",)))
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


# ------------------------------------------------------------------ the files of a run


@dataclass(frozen=True)
class RunSettings:
    """What the janitor.toml files say for one run: each rule value and each pinned step,
    with where it came from (a step pinned in several places has each of them)."""

    rules: Rules = field(default_factory=dict)
    pins: Mapping[int, tuple[RuleSource, ...]] = field(default_factory=dict)

    @property
    def pinned(self) -> frozenset[int]:
        return frozenset(self.pins)

    def rule_sources(self) -> dict[str, str]:
        """Policy field -> 'logs/janitor.toml [runs.bob]' (as plans and the journal say it)."""
        return {name: src.brief() for name, (_, src) in self.rules.items()}

    def pin_sources(self) -> dict[int, tuple[str, ...]]:
        """Step -> ('logs/janitor.toml:5 [runs.bob]', 'logs/bob/janitor.toml:1'), in order."""
        return {step: tuple(src.place() for src in found) for step, found in self.pins.items()}


def _is_run(entries: Iterable[DirEntry]) -> bool:
    """A run folder, by its listing alone: checkpoint names, or checkpoint folders."""
    entries = list(entries)
    names = {e.name for e in entries if e.kind == "file"}
    return looks_like_checkpoint_folder(names) or any(
        _is_set_dir(e.name) for e in entries if e.kind == "dir"
    )


def _is_set_dir(name: str) -> bool:
    return bool(HF_CHECKPOINT_RE.match(name) or DEEPSPEED_TAG_RE.match(name))


def _relative(path: str, folder: str) -> str:
    """``path`` below ``folder`` (one of its ``layout.config_folders``), '/'-separated."""
    return path[len(folder.rstrip("/")) + 1 :]


def _listed(names: Sequence[str], most: int = 8) -> str:
    more = f", ... ({len(names)} runs)" if len(names) > most else ""
    return ", ".join(names[:most]) + more if names else "none"


class ConfigFiles:
    """One command's view of the janitor.toml files (see module doc): each file is read and
    checked once, whatever number of runs it applies to, and the runs below a file's folder
    are listed once (names only, ``CONFIG_REACH`` levels deep) for its ``[runs.NAME]``
    tables. Make one per command, or per pass of a long-running one (files change)."""

    def __init__(self, fs: FileSystem = LOCAL) -> None:
        self.fs = fs
        self._files: dict[str, Settings | None] = {}
        self._marks: dict[str, tuple[int, float, float] | None] = {}
        self._is_run: dict[str, bool] = {}
        self._below: dict[str, tuple[str, ...]] = {}
        self._runs: dict[str, RunSettings] = {}
        self._warnings: dict[str, list[str]] = {}

    def settings(self, folder: str) -> Settings | None:
        """The janitor.toml of ``folder``, checked (None when there is none)."""
        path = layout.config_path(folder)
        if path not in self._files:
            mark = self._marks[path] = self._mark(path)  # no file: nothing to read
            self._files[path] = None if mark is None else load_file(path, self.fs)
        return self._files[path]

    def _mark(self, path: str) -> tuple[int, float, float] | None:
        """What tells one version of a file from the next without reading it: size, mtime
        and ctime (a rewrite by rename changes the ctime too); None: no such file."""
        try:
            e = self.fs.stat(path)
        except FileNotFoundError:
            return None
        except OSError:  # cannot be told: read, and the read says what is wrong
            return -1, 0.0, 0.0
        return e.size, e.mtime, e.ctime

    def unchanged(self, run_path: str) -> bool:
        """Whether every janitor.toml that applies to ``run_path`` is as it was when read
        here (stats only): then what this object says of the run still holds."""
        for folder in layout.config_folders(run_path):
            path = layout.config_path(folder)
            if path not in self._marks or self._mark(path) != self._marks[path]:
                return False
        return True

    def warm(self, paths: Iterable[str]) -> None:
        """Read the files above ``paths`` (and list the runs their tables name) now: before
        a scan's worker processes fork, so that they inherit them instead of each reading."""
        for path in paths:
            for folder in layout.config_folders(path):
                try:
                    found = self.settings(folder)
                except JanitorError:  # said when a run needs the file (the scan says first
                    continue  # what is wrong with an unreadable folder)
                if found is not None and found.runs:
                    self.runs_below(folder)

    def _listdir(self, folder: str) -> list[DirEntry]:
        """Not kept: a run folder may hold thousands of names."""
        try:
            entries = self.fs.listdir(folder)
        except OSError:
            entries = []
        self._is_run[folder] = _is_run(entries)
        return entries

    def runs_below(self, folder: str) -> tuple[str, ...]:
        """The run folders up to ``CONFIG_REACH`` levels below ``folder``, as paths relative
        to it ('alice', 'group/carol'), sorted; told by their names alone (no file is read)."""
        if folder not in self._below:
            found, todo = [], [(folder, "", 0)]
            while todo:
                path, rel, depth = todo.pop()
                entries = self._listdir(path)
                if depth and self._is_run[path]:
                    found.append(rel)
                if depth < layout.CONFIG_REACH:
                    todo.extend(
                        (os.path.join(path, e.name), f"{rel}/{e.name}" if rel else e.name,
                         depth + 1)
                        for e in entries
                        if e.kind == "dir" and not e.name.startswith(".")
                        and e.name not in ALL_SKIP_DIRS and not _is_set_dir(e.name)
                    )  # fmt: skip
            self._below[folder] = tuple(sorted(found))
        return self._below[folder]

    def _match(self, folder: str, name: str, run: str | None = None) -> tuple[str, ...]:
        """The runs below ``folder`` that ``[runs.NAME]`` names: the one at that relative
        path; else, for a bare name, every run of that folder name (one, or an ambiguity).
        ``run``: a run (relative path) known to be there, whether its names tell or not."""
        key = posixpath.normpath(name) if name else name
        if key == run:
            return (key,)
        runs = set(self.runs_below(folder)) | ({run} if run else set())
        if key in runs:
            return (key,)
        if "/" in key:
            return ()
        return tuple(sorted(r for r in runs if posixpath.basename(r) == key))

    def _is_run_folder(self, folder: str) -> bool:
        if folder not in self._is_run:
            self._listdir(folder)
        return self._is_run[folder]

    def run(self, run_path: str) -> RunSettings:
        """Every rule and pin the files set for one run, with their sources: files from the
        farthest to the nearest, in each its ``[prune]`` then the ``[runs.NAME]`` tables that
        name the run (by folder name, then by path), a later value winning; pins from all."""
        run_path = run_path.rstrip("/") or run_path
        if run_path in self._runs:
            return self._runs[run_path]
        rules: Rules = {}
        pins: dict[int, list[RuleSource]] = {}

        def pin(steps: Iterable[int], source: RuleSource) -> None:
            for step in steps:
                pins.setdefault(step, []).append(source)

        for folder in reversed(layout.config_folders(run_path)):
            found = self.settings(folder)
            if found is None:
                continue
            rules.update(found.prune)
            if folder == run_path:  # its own file: its tables name runs below it
                pin(found.pins or (), RuleSource(file=found.file, keys=("pins",)))
                continue
            if found.pins is not None and not self._is_run_folder(folder):
                raise UsageError(
                    f"{found.file.where('pins')}: {shown_path(folder)} is a logs root, not a "
                    "run, so these pins protect nothing; put them in [runs.NAME] here or in "
                    "the run's own janitor.toml (janitor pin RUN STEP)"
                )
            rel = _relative(run_path, folder)
            named = [n for n in found.runs if self._match(folder, n, rel) == (rel,)]
            named.sort(key=lambda n: posixpath.normpath(n) == rel)  # by path: the later
            for name in named:
                rules.update(found.runs[name])
                pin(
                    found.run_pins.get(name, ()),
                    RuleSource(file=found.file, keys=("runs", name, "pins")),
                )
        settings = RunSettings(rules, {step: tuple(pins[step]) for step in sorted(pins)})
        self._runs[run_path] = settings
        return settings

    def pins(self, run_path: str) -> frozenset[int]:
        """The run's pinned steps, from all its files."""
        return self.run(run_path).pinned

    def policy_for(self, run_path: str, overrides: Overrides) -> tuple[Policy, dict[str, str]]:
        """The run's policy: config files, then this invocation's ``overrides`` (checked
        already); and where each value came from. Contradictions are worded with the source
        of each value."""
        values = dict(self.run(run_path).rules)
        for name, value in overrides.given().items():
            values[name] = (value, RuleSource(flag=overrides.source(name)))
        best = values.get("keep_best")
        if best and best[0] and "metric" not in values:
            src = best[1]
            if src.flag and overrides.origin == "keyword":
                raise UsageError(f'{src.flag} needs a metric (e.g. metric="loss/g/total")')
            if src.flag:
                raise UsageError(f"{src.flag} needs --metric TAG (e.g. --metric loss/g/total)")
            raise UsageError(
                f'{src}: needs a metric (metric = "loss/g/total" beside it, or --metric)'
            )
        if best is None:
            for name in ("metric", "mode"):
                if name in values and values[name][1].flag:
                    run = os.path.basename(run_path.rstrip("/"))
                    raise UsageError(
                        f"{values[name][1].flag} goes with {overrides.source('keep_best')} K "
                        f"(no keep-best for {run} in the flags or janitor.toml)"
                    )
        policy = Policy(**{name: value for name, (value, _) in values.items()})
        return policy, {name: src.brief() for name, (_, src) in values.items()}

    def warnings(self, run_paths: Iterable[str]) -> list[str]:
        """``[runs.NAME]`` tables, in the files that apply to these runs, that name no run
        (a typo, or a run not started yet) or a folder name several runs have: one warning
        each, with the runs there are."""
        folders = {f for p in run_paths for f in layout.config_folders(p.rstrip("/") or p)}
        return [w for folder in sorted(folders) for w in self._table_warnings(folder)]

    def _table_warnings(self, folder: str) -> list[str]:
        if folder not in self._warnings:
            found, out = self.settings(folder), []
            for name in found.runs if found is not None else ():
                matched = self._match(folder, name)
                where = found.file.where("runs", name, table=True)
                if not matched:
                    runs = _listed(self.runs_below(folder))
                    out.append(
                        f"{where}: no run {shown_path(os.path.join(folder, name))} (runs: "
                        f"{runs}); ignored until it holds checkpoints"
                    )
                elif len(matched) > 1:
                    out.append(
                        f"{where}: {len(matched)} runs are named {name} ({_listed(matched)}); "
                        f'applies to none: name one by its path, e.g. [runs."{matched[0]}"]'
                    )
            self._warnings[folder] = out
        return self._warnings[folder]

    def set_pins(
        self,
        run_path: str,
        add: frozenset[int] = frozenset(),
        drop: frozenset[int] = frozenset(),
    ) -> frozenset[int]:
        """Edit the run's own pins in place (comments and other settings kept); returns the
        pins now in force (with those of the files above). Checks everything before
        writing; writes nothing when nothing changes."""
        import tomlkit

        run_path = run_path.rstrip("/") or run_path
        path = layout.config_path(run_path)
        own, settings = self.settings(run_path), self.run(run_path)
        above = {
            step: [src for src in found if src.file.path != path]
            for step, found in settings.pins.items()
        }
        above = {step: found for step, found in above.items() if found}
        if drop & above.keys():
            where = above[min(drop & above.keys())][0]
            steps = ", ".join(str(s) for s in sorted(drop & above.keys()) if where in above[s])
            raise UsageError(
                f"{where}: step {steps} is pinned there; edit that file to unpin it "
                "(nothing changed)"
            )
        current = (own.pins or frozenset()) if own is not None else frozenset()
        new = (current | add) - drop
        if new != current:
            try:
                doc = tomlkit.parse(own.file.text) if own is not None else tomlkit.document()
            except tomlkit.exceptions.ParseError as exc:
                raise UsageError(f"{own.file.at()}: cannot edit ({exc})") from None
            doc["pins"] = sorted(new)
            self.fs.write_atomic(path, tomlkit.dumps(doc).encode("utf-8"))
            self._files.pop(path, None)
            self._runs.clear()
        return frozenset(new | above.keys())
