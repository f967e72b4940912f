"""Retention rules as values: a ``Policy`` (validated where it is built), what the policy
knows of one set (``Candidate``) and its decision (``Outcome``). No I/O; the rules themselves
are in ``janitor.core.policy``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, NamedTuple

from janitor.domain.errors import InvalidValue

Mode = Literal["min", "max"]
Status = Literal["complete", "partial", "incomplete", "unchecked"]
MAX_COUNT = 10**12  # larger counts and steps are typos, not intentions


@dataclass(frozen=True)
class Policy:
    keep_last: int | None = None
    keep_every: int | None = None  # steps per bucket
    keep_within: float | None = None  # seconds before the newest set's mtime
    keep_best: int | None = None
    metric: str | None = None
    mode: Mode = "min"
    max_size: int | None = None  # bytes
    remove_incomplete_older_than: float | None = None  # seconds before `now`

    def __post_init__(self) -> None:
        for name in ("keep_last", "keep_every", "keep_best"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidValue(name, value, "must be a whole number >= 0")
            if value > MAX_COUNT:
                raise InvalidValue(name, value, f"must be at most {MAX_COUNT:,}")
        if self.keep_every == 0:
            raise InvalidValue("keep_every", 0, "must be at least 1 step")
        for name in ("keep_within", "max_size", "remove_incomplete_older_than"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidValue(name, value, "must be a number")
            if not math.isfinite(value) or value < 0:
                raise InvalidValue(name, value, "must be a finite amount >= 0")
        if self.keep_best and not self.metric:
            raise InvalidValue("metric", self.metric, "is needed by keep-best (e.g. loss/g/total)")
        if self.mode not in ("min", "max"):
            raise InvalidValue("mode", self.mode, "must be min or max")

    @property
    def has_keep_rule(self) -> bool:
        return any(
            v is not None
            for v in (self.keep_last, self.keep_every, self.keep_within, self.keep_best)
        )

    def effective(self) -> Policy:
        """With no keep rule at all, keep the last 1 (the trainer's "save only latest") —
        unless only ``max_size`` is given: then keep what fits."""
        if self.has_keep_rule or self.max_size is not None:
            return self
        return replace(self, keep_last=1)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self, sources: Mapping[str, str] | None = None) -> str:
        """The effective rules in words; with ``sources`` (field -> where its value came
        from) each says its source: "keep-last 2 (--keep-last), keep-every 10000 (logs/...)"."""
        from humanfriendly import format_size, format_timespan

        p = self.effective()
        src = dict(sources or {})
        parts: list[tuple[str, str]] = []
        if p.keep_last is not None:
            parts.append(("keep_last", f"keep-last {p.keep_last}"))
        if p.keep_every is not None:
            parts.append(("keep_every", f"keep-every {p.keep_every}"))
        if p.keep_within is not None:
            parts.append(("keep_within", f"keep-within {format_timespan(p.keep_within)}"))
        if p.keep_best is not None:
            parts.append(("keep_best", f"keep-best {p.keep_best} by {p.metric} ({p.mode})"))
        if p.max_size is not None:
            parts.append(("max_size", f"max-size {format_size(p.max_size)}"))
        if p.remove_incomplete_older_than is not None:
            age = format_timespan(p.remove_incomplete_older_than)
            parts.append(("remove_incomplete_older_than", f"remove-incomplete older than {age}"))
        out: list[str] = []  # consecutive rules from one source share one "(source)"
        for i, (name, text) in enumerate(parts):
            following = parts[i + 1][0] if i + 1 < len(parts) else None
            same_next = following is not None and src.get(following) == src.get(name)
            out.append(text if name not in src or same_next else f"{text} ({src[name]})")
        return ", ".join(out)


class Candidate(NamedTuple):
    """What the policy knows of one checkpoint set. A named tuple: a plan at scale makes
    one per set (100,000 in a 200k-file tree), and a frozen dataclass costs ten times more."""

    number: int  # order key: step, or the latest-only constant
    status: Status
    mtime: float
    size: int
    latest_only: bool = False
    base: bool = False
    pinned: bool = False
    metric: float | None = None
    missing: tuple[str, ...] = ()  # prefixes a partial set lacks ("D",)
    protect: tuple[str, ...] = ()  # the framework's own protections (HF best model, pointers)
    truncated: bool = False  # incomplete and unchanged for longer than a save takes to settle

    @property
    def lacks(self) -> str:
        """What a partial set lacks ('no D file'), for its reasons; '' for other sets."""
        if self.status != "partial":
            return ""
        return f"no {', '.join(self.missing)} file" if self.missing else "a file is missing"


@dataclass(frozen=True)
class Outcome:
    keep: tuple[int, ...]  # numbers, ascending
    remove: tuple[int, ...]
    reasons: dict[int, tuple[str, ...]]  # every number -> why it is kept, or why removed
    expected_freed: int
    notes: tuple[str, ...] = field(default=())


RULE_FIELDS = (
    "keep_last", "keep_every", "keep_within", "keep_best", "metric", "mode", "max_size",
    "remove_incomplete_older_than",
)  # fmt: skip
_FLAGS = {"remove_incomplete_older_than": "--older-than"}
_KEYWORDS = {"remove_incomplete_older_than": "older_than"}


@dataclass(frozen=True)
class Overrides:
    """Rule values given for one invocation, on the command line (``origin="flag"``) or as
    keywords of the Python API (``origin="keyword"``); None where not given, so the config
    files may say. Values are already parsed (seconds, bytes)."""

    keep_last: int | None = None
    keep_every: int | None = None
    keep_within: float | None = None
    keep_best: int | None = None
    metric: str | None = None
    mode: Mode | None = None
    max_size: int | None = None
    remove_incomplete_older_than: float | None = None
    origin: Literal["flag", "keyword"] = "flag"

    def given(self) -> dict[str, object]:
        return {f: v for f in RULE_FIELDS if (v := getattr(self, f)) is not None}

    def source(self, name: str) -> str:
        """How the user spelled ``name``: ``--keep-last``, or ``keep_last argument``."""
        if self.origin == "keyword":
            return f"{_KEYWORDS.get(name, name)} argument"
        return _FLAGS.get(name, "--" + name.replace("_", "-"))
