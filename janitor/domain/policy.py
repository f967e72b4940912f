"""Retention rules as values: a ``Policy`` (validated where it is built), what the policy
knows of one set (``Candidate``) and its decision (``Outcome``). No I/O; the rules are
declared in ``janitor.domain.rules``, their keep functions are in ``janitor.core.policy``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any, Literal, NamedTuple

from janitor.domain import rules as registry
from janitor.domain.errors import InvalidValue

Mode = Literal["min", "max"]
Status = Literal["complete", "partial", "incomplete", "unchecked"]


class _RuleValues:
    """One value (or None) per registered rule, as attributes named by the rule's ``name``
    (plain instance attributes: ``apply`` reads them as fast as a dataclass's). Frozen."""

    _defaults = False  # the rule's default for a value not given (else None)

    def __init__(self, **values: Any) -> None:
        known = registry.rules()
        names = {r.name for r in known}
        for name in values:
            if name not in names:
                raise TypeError(f"{type(self).__name__}() got an unknown rule {name!r}")
        own = self.__dict__
        for r in known:
            own[r.name] = values.get(r.name, r.default if self._defaults else None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __getattr__(self, name: str) -> Any:  # a rule registered after this value was made
        if not name.startswith("_") and any(r.name == name for r in registry.rules()):
            return None
        raise AttributeError(name)

    def values(self) -> dict[str, Any]:
        """Every rule's value (None where not given)."""
        return {r.name: getattr(self, r.name) for r in registry.rules()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.__dict__.items())))

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if v is not None)
        return f"{type(self).__name__}({given})"


class Policy(_RuleValues):
    """The rules for one run: a value per registered rule (``Policy(keep_last=2)``)."""

    _defaults = True

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        for r in registry.rules():
            value = getattr(self, r.name)
            if value is None:
                continue
            problem = r.problem(value)
            if problem:
                raise InvalidValue(r.name, value, problem)
            for need in r.needs if value else ():
                if not getattr(self, need):
                    example = registry.rule(need).example
                    hint = f" (e.g. {example})" if example else ""
                    raise InvalidValue(need, getattr(self, need), f"is needed by {r.key}{hint}")

    @property
    def has_keep_rule(self) -> bool:
        return any(r.keep is not None and getattr(self, r.name) is not None
                   for r in registry.rules())  # fmt: skip

    @property
    def keeps_what_fits(self) -> bool:
        """No keep rule, but a limit (max-size, or a root rule: min-free, max-total): every
        set is wanted, and the limit takes what it must."""
        return not self.has_keep_rule and (
            self.max_size is not None
            or any(getattr(self, r.name) is not None for r in registry.rules("root"))
        )

    def replace(self, **changes: Any) -> Policy:
        return Policy(**{**self.to_dict(), **changes})

    def effective(self) -> Policy:
        """With no keep rule at all, keep the last 1 (the trainer's "save only latest") —
        unless only a limit is given (``max_size``, ``min_free``, ``max_total``): then keep
        what fits."""
        if self.has_keep_rule or self.keeps_what_fits:
            return self
        return self.replace(keep_last=1)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.values().items() if v is not None}

    def describe(self, sources: Mapping[str, str] | None = None) -> str:
        """The effective rules in words; with ``sources`` (field -> where its value came
        from) each says its source: "keep-last 2 (--keep-last), keep-every 10000 (logs/...)"."""
        p = self.effective()
        src = dict(sources or {})
        shown = registry.shown_values(p.values())
        given = [r for r in registry.rules() if r.describe and getattr(p, r.name) is not None]
        parts = [(r.name, r.describe.format(**shown)) for r in given]
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


class Overrides(_RuleValues):
    """Rule values given for one invocation, on the command line (``origin="flag"``) or as
    keywords of the Python API (``origin="keyword"``); None where not given, so the config
    files may say. Values are already read (seconds, bytes): ``parse_overrides`` reads them."""

    def __init__(self, origin: Literal["flag", "keyword"] = "flag", **values: Any) -> None:
        super().__init__(**values)
        self.__dict__["origin"] = origin

    def given(self) -> dict[str, object]:
        return {k: v for k, v in self.values().items() if v is not None}

    def source(self, name: str) -> str:
        """How the user spelled rule ``name`` (or a rule's switch, by its keyword):
        ``--keep-last``, or ``keep_last argument``."""
        for r in registry.rules():
            if r.switch and name == r.switch.keyword:
                spelled = r.switch.keyword if self.origin == "keyword" else r.switch.flag
                break
            if name == r.name:
                spelled = r.keyword if self.origin == "keyword" else r.flag
                break
        else:
            raise ValueError(f"not a rule: {name}")
        return f"{spelled} argument" if self.origin == "keyword" else spelled
