"""``janitor.toml``: default rules per logs root and per run, and pinned steps.

Lookup for a run folder ``logs/alice``, later entries overriding earlier ones key by key:

1. ``logs/janitor.toml`` ``[prune]``
2. ``logs/janitor.toml`` ``[runs.alice]``
3. ``logs/alice/janitor.toml`` ``[prune]``
4. command-line flags

Pins live in the run's own file as ``pins = [1000, 5000]`` (``janitor pin``/``unpin`` edit it,
keeping the user's comments and layout).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from janitor.core.policy import Policy
from janitor.domain.errors import JanitorError, UsageError

CONFIG_NAME = "janitor.toml"
STATE_DIR = ".janitor"

# TOML key -> (Policy field, parser)
_KEYS = {
    "keep-last": "keep_last",
    "keep-every": "keep_every",
    "keep-within": "keep_within",
    "keep-best": "keep_best",
    "metric": "metric",
    "mode": "mode",
    "max-size": "max_size",
}


def _parse(text, parse, errors, kind: str, examples: str, what: str):
    """One command-line or config value through a humanfriendly parser: a clear usage error
    naming the bad value, and never a negative amount."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = text
    else:
        try:
            value = parse(str(text).strip())
        except (*errors, ValueError):
            raise UsageError(
                f"{what}: cannot read {text!r} as a {kind} (examples: {examples})"
            ) from None
    if value < 0:
        raise UsageError(f"{what}: must not be negative, got {text!r}")
    return value


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """'2d', '36h', '90m', '45s', or a number of seconds."""
    from humanfriendly import InvalidTimespan, parse_timespan

    return float(_parse(text, parse_timespan, (InvalidTimespan,), "duration", "2d, 36h, 90m", what))


def parse_bytes(text: str | int, what: str = "size") -> int:
    """'20GB', '500MiB', or a number of bytes."""
    from humanfriendly import InvalidSize, parse_size

    parse = lambda t: parse_size(t, binary=False)  # noqa: E731
    return int(_parse(text, parse, (InvalidSize,), "size", "20GB, 500MiB", what))


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise JanitorError(f"{path}: cannot read ({exc.strerror})") from None


def _rules(table: Mapping[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            continue
        name = _KEYS[key]
        if name == "keep_within":
            value = parse_duration(value, f"{source}: {key}")
        elif name == "max_size":
            value = parse_bytes(value, f"{source}: {key}")
        elif name in ("keep_last", "keep_every", "keep_best") and (
            not isinstance(value, int) or isinstance(value, bool)
        ):
            raise UsageError(f"{source}: {key} must be a whole number, got {value!r}")
        out[name] = value
    unknown = set(table) - set(_KEYS) - {"pins"}
    if unknown:
        raise UsageError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}")
    return out


def run_settings(run_path: str) -> dict[str, Any]:
    """Policy fields from the config files that apply to one run (see module doc)."""
    root_file = os.path.join(os.path.dirname(run_path.rstrip(os.sep)), CONFIG_NAME)
    run_file = os.path.join(run_path, CONFIG_NAME)
    name = os.path.basename(run_path.rstrip(os.sep))
    root, own = _read(root_file), _read(run_file)
    merged: dict[str, Any] = {}
    merged.update(_rules(root.get("prune", {}), root_file))
    merged.update(_rules(root.get("runs", {}).get(name, {}), f"{root_file} [runs.{name}]"))
    merged.update(_rules(own.get("prune", {}), run_file))
    return merged


def policy_for(run_path: str, overrides: Mapping[str, Any]) -> Policy:
    """The run's policy: config files, then command-line ``overrides`` (non-None values)."""
    values = run_settings(run_path)
    values.update({k: v for k, v in overrides.items() if v is not None})
    allowed = {f.name for f in fields(Policy)}
    return Policy(**{k: v for k, v in values.items() if k in allowed})


def pins(run_path: str) -> frozenset[int]:
    path = os.path.join(run_path, CONFIG_NAME)
    value = _read(path).get("pins", [])
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise UsageError(f"{path}: pins must be a list of step numbers")
    return frozenset(value)


def set_pins(
    run_path: str, add: frozenset[int] = frozenset(), drop: frozenset[int] = frozenset()
) -> frozenset[int]:
    """Edit the run's pins in place (comments and other settings kept); returns the new pins."""
    import tomlkit

    path = os.path.join(run_path, CONFIG_NAME)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = tomlkit.parse(fh.read())
    except FileNotFoundError:
        doc = tomlkit.document()
    except (OSError, tomlkit.exceptions.ParseError) as exc:
        raise JanitorError(f"{path}: cannot read ({exc})") from None
    current = set(int(v) for v in doc.get("pins", []))
    new = sorted((current | add) - drop)
    doc["pins"] = new
    atomic_write_text(path, tomlkit.dumps(doc))
    return frozenset(new)


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
