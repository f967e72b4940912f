"""``extract-small`` and ``info``: one entry each, for the command line and the Python API.
The entry picks how a path is extracted: a trainer's G file or export (VITS family), or a
framework checkpoint (an HF ``checkpoint-<step>/`` folder, a Lightning ``.ckpt``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from janitor.domain.errors import JanitorError, PathProblem, UsageError
from janitor.usecases import options as check
from janitor.usecases.tools import TorchLayer


@dataclass(frozen=True)
class ExtractOptions:
    """extract-small's options, checked (the long options; ``info`` is the text of RVC
    WebUI's own extraction)."""

    output: str | None = None
    format: str | None = None
    name: str | None = None
    author: str | None = None
    sr: int | None = None
    version: str | None = None
    f0: bool | None = None
    vocoder: str | None = None
    step: int | None = None
    force: bool = False
    skip_existing: bool = False
    like: str | None = None
    half: bool = False
    info: str | None = None

    @classmethod
    def parse(cls, origin: check.Origin = "flag", **given: Any) -> ExtractOptions:
        spell = check.Spelling(origin)
        unknown = sorted(set(given) - set(cls.__dataclass_fields__))
        if unknown:
            raise UsageError(f"{spell(unknown[0])}: no such option of extract-small")
        values = dict(given)
        for name in ("output", "format", "name", "author", "version", "vocoder", "like", "info"):
            values[name] = check.text(given.get(name), spell(name))
        for name in ("sr", "step"):
            values[name] = _whole(given.get(name), spell(name), origin)
        for name in ("force", "skip_existing", "half"):
            values[name] = check.flag(given.get(name, False), spell(name))
        values["f0"] = check.maybe_flag(given.get("f0"), spell("f0"))
        return cls(**values)


def _whole(value: Any, what: str, origin: check.Origin) -> int | None:
    """--sr and --step: any whole number here; their ranges are checked with the rest."""
    if value is None:
        return None
    if origin == "keyword":
        if not check.is_int(value):
            raise UsageError(f"{what} must be a whole number, got {value!r}")
        return value
    try:
        return int(value.strip(), 10)
    except ValueError:
        raise UsageError(f"{what} must be a whole number, got {value!r}") from None


@dataclass(frozen=True)
class ExtractReport:
    """What extract-small wrote (``Extracted`` or ``FrameworkExtract`` each) and the inputs
    that failed."""

    extracted: tuple[Any, ...] = ()
    failed: tuple[PathProblem, ...] = ()


def extract_small(
    paths: list[str],
    options: ExtractOptions,
    torch: TorchLayer,
    *,
    origin: check.Origin = "flag",
    on_done: Callable[[Any], None] | None = None,
    on_failed: Callable[[PathProblem], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExtractReport:
    """Each input, one at a time (torch imported once): the trainer's small model of a G
    file or export, or a framework checkpoint's inference part. Every option refused is
    refused before any file is read; with one input its failure is raised, with several
    each failure is collected (``on_failed``) and the others still convert."""
    spell = check.Spelling(origin)
    try:
        torch.check_extract(options, len(paths))
    except UsageError as exc:
        raise UsageError(spell.reword(str(exc))) from None
    done: list[Any] = []
    failed: list[PathProblem] = []
    for i, path in enumerate(paths):
        try:
            extract = torch.extract_framework if torch.is_framework_input(path) else None
            done.append((extract or torch.extract_trainer)(path, options))
            if on_done is not None:
                on_done(done[-1])
        except JanitorError as exc:
            if len(paths) == 1:
                raise
            failed.append(PathProblem(path, str(exc)))
            if on_failed is not None:
                on_failed(failed[-1])
        if progress is not None:
            progress(i + 1, len(paths))
    return ExtractReport(tuple(done), tuple(failed))


@dataclass(frozen=True)
class InfoReport:
    files: tuple[dict[str, Any], ...] = ()
    failed: tuple[PathProblem, ...] = ()


def info(
    paths: list[str],
    torch: TorchLayer,
    *,
    on_failed: Callable[[PathProblem], None] | None = None,
) -> InfoReport:
    """Describe each checkpoint; with one input its failure is raised."""
    docs, failed = [], []
    for path in paths:
        try:
            docs.append(torch.info(path))
        except JanitorError as exc:
            if len(paths) == 1:
                raise
            failed.append(PathProblem(path, str(exc)))
            if on_failed is not None:
                on_failed(failed[-1])
    return InfoReport(tuple(docs), tuple(failed))
