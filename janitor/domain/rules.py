"""Every retention rule, declared once. A ``Rule`` says how the rule is spelled everywhere
(``Policy`` field, ``--flag``, ``janitor.toml`` key, Python keyword), how its value is read
(the parser kind), its ``--help`` line, and its words in plans (``Policy.describe`` and the
reasons a set is kept or removed). Everything else is derived from the registry here: the
options of ``prune`` and ``watch``, the keys of ``[prune]``/``[runs.NAME]``, the keywords of
``ScanReport.plan``, the checks, the descriptions. Adding a rule is one ``Rule`` here and,
for a keep rule, its pure function in ``janitor.core.policy``. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Parser = Literal["count", "steps", "duration", "size", "floor", "str", "bool", "choice"]
Scope = Literal["run", "root"]

# Beyond these a value is a typo, not a wish (and would overflow what reads it).
MAX_SETS = 1_000_000  # a number of sets: keep-last, keep-best
MAX_STEP = 10**12  # a step number: keep-every, pins (GPT-SoVITS's latest-only number is 2.3e11)


@dataclass(frozen=True)
class Switch:
    """A yes/no option that must come with a rule's value, to say the user means it
    (``--remove-incomplete`` with ``--older-than``)."""

    flag: str
    keyword: str
    help: str


@dataclass(frozen=True)
class Rule:
    """One retention rule. Spellings left empty are derived from ``name``: ``keep_last`` is
    ``--keep-last`` on the command line, ``keep-last`` in janitor.toml, ``keep_last=`` in
    Python; ``key=None``: not read from janitor.toml.

    Templates (``describe``, ``reason``, ``removal``) name policy fields in braces and get
    their values as shown to people (``2 days``, ``20 GB``): ``"keep-best {keep_best} by
    {metric} ({mode})"``. ``keep``: the rule's pure keep function, or its name in
    ``janitor.core.policy.KEEP`` (domain cannot import core): ``fn(ranked, policy)`` returns
    {number: detail} for the sets it keeps, newest first in ``ranked``; a non-empty detail is
    added to the reason in parentheses."""

    name: str  # the Policy field
    parser: Parser
    help: str  # the --help line
    metavar: str | None = None
    flag: str = ""
    key: str | None = ""
    keyword: str = ""
    describe: str = ""  # in Policy.describe; "" when another rule's text says it
    reason: str = ""  # why a set this rule keeps is kept
    removal: str = ""  # why a set this rule takes is removed
    keep: str | Callable[..., Mapping[int, str]] | None = None
    needs: tuple[str, ...] = ()  # rules that must have a value when this one is non-zero
    choices: tuple[str, ...] = ()  # parser "choice"
    default: Any = None  # the Policy's value when nothing is given
    example: str = ""  # for errors: "e.g. loss/g/total"
    switch: Switch | None = None
    # "root": a rule over a whole logs root (min-free, max-total): not one run's keep rule;
    # ``janitor.usecases.pressure`` applies it after every run's own rules
    scope: Scope = "run"

    def __post_init__(self) -> None:
        dashed = self.name.replace("_", "-")
        if not self.flag:
            object.__setattr__(self, "flag", f"--{dashed}")
        if self.key == "":
            object.__setattr__(self, "key", dashed)
        if not self.keyword:
            object.__setattr__(self, "keyword", self.name)
        if (self.parser == "choice") != bool(self.choices):
            raise ValueError(f"rule {self.name}: choices go with the choice parser")

    def problem(self, value: Any) -> str | None:
        """What is wrong with an already-read ``value`` (None: nothing). The ``Policy``
        checks its values with this as a last line of defence; user input is read and
        checked, with its source, by ``janitor.core.values``."""
        kind = self.parser
        if kind in ("count", "steps"):
            low, high = (1, MAX_STEP) if kind == "steps" else (0, MAX_SETS)
            if not is_int(value) or value < 0:
                return "must be a whole number >= 0"
            if value < low:
                return f"must be at least {low}"
            return f"must be at most {high:,}" if value > high else None
        if kind == "floor" and isinstance(value, Percent):
            return None if 0 < value < 100 else "must be a percentage above 0 and below 100"
        if kind in ("duration", "size", "floor"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return "must be a number"
            return None if math.isfinite(value) and value >= 0 else "must be a finite amount >= 0"
        if kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if kind == "choice":
            return None if value in self.choices else f"must be {' or '.join(self.choices)}"
        return None if isinstance(value, str) and value.strip() else "must be a non-empty text"


class Percent(float):
    """A share of a file system's size (``--min-free 10%``): ``Percent(10.0)``."""

    def __repr__(self) -> str:
        return f"Percent({float(self)!r})"

    def __str__(self) -> str:
        return f"{float(self):g}%"

    def of(self, total: int) -> int:
        return int(total * float(self) / 100)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ------------------------------------------------------------------ the registry

_REGISTRY: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    """Add a rule (tests add dummy ones; ``unregister`` takes them away). Every spelling
    must be new."""
    for other in _REGISTRY.values():
        for attr in ("name", "flag", "key", "keyword"):
            mine = getattr(rule, attr)
            if mine is not None and mine in (getattr(other, attr), *_switch_names(other)):
                raise ValueError(f"rule {rule.name}: {attr} {mine} is taken by {other.name}")
    _REGISTRY[rule.name] = rule
    return rule


def unregister(name: str) -> None:
    del _REGISTRY[name]


def _switch_names(rule: Rule) -> tuple[str, ...]:
    return (rule.switch.flag, rule.switch.keyword) if rule.switch else ()


def rules(scope: Scope | None = None) -> tuple[Rule, ...]:
    """The rules in declaration order (``scope``: only those of that scope)."""
    return tuple(r for r in _REGISTRY.values() if scope is None or r.scope == scope)


def rule(name: str) -> Rule:
    return _REGISTRY[name]


class _Live(Mapping[str, str]):
    """A mapping computed from the registry at each use (rules registered later count)."""

    def __init__(self, pairs: Callable[[], dict[str, str]]) -> None:
        self._pairs = pairs

    def __getitem__(self, key: str) -> str:
        return self._pairs()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs())

    def __len__(self) -> int:
        return len(self._pairs())


TOML_KEYS: Mapping[str, str] = _Live(
    lambda: {r.key: r.name for r in _REGISTRY.values() if r.key is not None}
)  # janitor.toml key -> Policy field
COUNTS: Mapping[str, str] = _Live(
    lambda: {r.name: r.key for r in _REGISTRY.values() if r.parser in ("count", "steps")}
)  # the rules whose values are whole numbers (Policy field -> key)


def shown_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Rule values as people read them (``2 days``, ``20 GB``), for the templates
    (humanfriendly is imported only for a value it words)."""
    out = {}
    for r in _REGISTRY.values():
        value = values.get(r.name)
        if value is not None and r.parser == "duration":
            from humanfriendly import format_timespan

            value = format_timespan(value)
        elif value is not None and r.parser in ("size", "floor") and not isinstance(value, Percent):
            from humanfriendly import format_size

            value = format_size(value)
        out[r.name] = str(value)
    return out


# ------------------------------------------------------------------ the rules

KEEP_LAST = register(Rule(
    "keep_last", "count", metavar="N", keep="keep_last",
    help="Keep the newest N sets, complete or partial (default 1 if no rule).",
    describe="keep-last {keep_last}", reason="last {keep_last}",
))  # fmt: skip
KEEP_EVERY = register(Rule(
    "keep_every", "steps", metavar="STEPS", keep="keep_every",
    help="Milestones: keep steps STEPS, 2*STEPS, ... (or the newest set before each).",
    describe="keep-every {keep_every}", reason="every {keep_every} steps",
))  # fmt: skip
KEEP_WITHIN = register(Rule(
    "keep_within", "duration", metavar="DURATION", keep="keep_within",
    help="Keep sets saved within DURATION (2d, 36h, 90m; a unit is required) of the newest.",
    describe="keep-within {keep_within}", reason="within {keep_within} of the newest save",
))  # fmt: skip
KEEP_BEST = register(Rule(
    "keep_best", "count", metavar="K", keep="keep_best", needs=("metric",),
    help="Keep the best K sets by --metric (TensorBoard scalar).",
    describe="keep-best {keep_best} by {metric} ({mode})", reason="best {keep_best} by {metric}",
))  # fmt: skip
METRIC = register(Rule(
    "metric", "str", metavar="TAG", example="loss/g/total",
    help="TensorBoard scalar tag, e.g. loss/g/total.",
))  # fmt: skip
MODE = register(Rule(
    "mode", "choice", choices=("min", "max"), default="min",
    help="min (default) or max: which end of --metric is best.",
))  # fmt: skip
MAX_SIZE = register(Rule(
    "max_size", "size", metavar="SIZE",
    help="After the rules, drop the oldest unprotected sets until the run fits in SIZE (20GB).",
    describe="max-size {max_size}", reason="fits in max-size {max_size}",
    removal="removed to fit max-size {max_size}",
))  # fmt: skip
REMOVE_INCOMPLETE = register(Rule(
    # not in janitor.toml: letting crash leftovers go is asked for each time
    "remove_incomplete_older_than", "duration", metavar="DURATION", flag="--older-than",
    key=None, keyword="older_than",
    help="With --remove-incomplete: how old a leftover must be.",
    describe="remove-incomplete older than {remove_incomplete_older_than}",
    removal="{status}, older than {remove_incomplete_older_than} (--remove-incomplete)",
    switch=Switch("--remove-incomplete", "remove_incomplete",
                  "Also remove incomplete/partial sets older than --older-than (crash leftovers)."),
))  # fmt: skip


def _root_limit(name: str, parser: Parser, metavar: str, until: str, removal: str) -> Rule:
    """A limit over a whole logs root, applied after every run's rules (scope "root")."""
    shown = f"{name.replace('_', '-')} {{{name}}}"
    return register(Rule(
        name, parser, metavar=metavar, scope="root", describe=shown,
        removal=removal.format(limit=shown),
        help=f"After the rules, remove the oldest unprotected sets across runs until {until}.",
    ))  # fmt: skip


MIN_FREE = _root_limit(
    "min_free", "floor", "SIZE|PERCENT", "SIZE (14GB) or PERCENT (10%) of each file system "
    "holding runs is free", "removed to keep {limit} free",
)  # fmt: skip
MAX_TOTAL = _root_limit(
    "max_total", "size", "SIZE", "all big checkpoints under the root fit in SIZE (100GB)",
    "removed to fit {limit}",
)  # fmt: skip
