"""``extract-small`` and ``info``: one entry each, for the command line and the Python API.
The entry picks how a path is extracted: a trainer's G file or export (VITS family), or a
framework checkpoint (an HF ``checkpoint-<step>/`` folder, a Lightning ``.ckpt``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from janitor.core.values import is_int
from janitor.domain.errors import JanitorError, PathProblem, UsageError
from janitor.domain.extract import Options as ExtractOptions
from janitor.usecases import options as check
from janitor.usecases.tools import TorchLayer

T = TypeVar("T")
_TEXTS = ("output", "format", "name", "author", "version", "vocoder", "like", "info")
_FLAGS = ("force", "skip_existing", "half", "dry_run")


def extract_options(origin: check.Origin = "flag", **given: Any) -> ExtractOptions:
    """extract-small's long options as typed (``origin="flag"``) or as Python values."""
    spell = check.Spelling(origin)
    unknown = sorted(set(given) - {f.name for f in fields(ExtractOptions)})
    if unknown:
        raise UsageError(f"{spell(unknown[0])}: no such option of extract-small")
    values: dict[str, Any] = {n: check.text(given.get(n), spell(n)) for n in _TEXTS}
    values |= {n: _whole(given.get(n), spell(n), origin) for n in ("sr", "step")}
    values |= {n: check.flag(given.get(n, False), spell(n)) for n in _FLAGS}
    values["f0"] = check.maybe_flag(given.get("f0"), spell("f0"))
    return ExtractOptions(**values)


def _whole(value: Any, what: str, origin: check.Origin) -> int | None:
    """--sr and --step: any whole number here; their ranges are checked with the rest."""
    if value is None:
        return None
    if origin == "keyword":
        if not is_int(value):
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


def _each(
    paths: list[str],
    fn: Callable[[str], T],
    on_done: Callable[[T], None] | None,
    on_failed: Callable[[PathProblem], None] | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[tuple[T, ...], tuple[PathProblem, ...]]:
    """``fn`` on each path, one at a time; with one path its failure is raised, with several
    each failure is collected (and told ``on_failed``) and the others still go."""
    done: list[T] = []
    failed: list[PathProblem] = []
    for i, path in enumerate(paths):
        try:
            done.append(fn(path))
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
    return tuple(done), tuple(failed)


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
    """Each input (torch imported once): the trainer's small model of a G file or export, or
    a framework checkpoint's inference part. Every option refused is refused before any
    file is read (worded by flag or keyword)."""
    try:
        torch.check_extract(options, len(paths))
    except UsageError as exc:
        raise UsageError(check.Spelling(origin).reword(str(exc)), path=exc.path) from None

    def one(path: str) -> Any:
        if torch.is_framework_input(path):  # HF checkpoint folder, Lightning .ckpt
            return torch.extract_framework(path, options)
        return torch.extract_trainer(path, options)

    return ExtractReport(*_each(paths, one, on_done, on_failed, progress))


@dataclass(frozen=True)
class InfoReport:
    files: tuple[dict[str, Any], ...] = ()
    failed: tuple[PathProblem, ...] = ()


def info(
    paths: list[str], torch: TorchLayer, *, on_failed: Callable[[PathProblem], None] | None = None
) -> InfoReport:
    """Describe each checkpoint; with one input its failure is raised."""
    return InfoReport(*_each(paths, torch.info, None, on_failed))
