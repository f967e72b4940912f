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

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from janitor.domain.errors import JanitorError, UsageError
from janitor.storage import layout
from janitor.storage.fs import LOCAL, FileSystem

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


def _read(path: str, fs: FileSystem = LOCAL) -> dict[str, Any]:
    try:
        return tomllib.loads(fs.read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
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


def run_settings(run_path: str, fs: FileSystem = LOCAL) -> dict[str, tuple[Any, str]]:
    """Policy fields from the config files that apply to one run (see module doc), each
    with the file (and table) it came from."""
    root_file, run_file = layout.root_config(run_path), layout.run_config(run_path)
    name = os.path.basename(run_path.rstrip(os.sep))
    root, own = _read(root_file, fs), _read(run_file, fs)
    merged: dict[str, tuple[Any, str]] = {}
    for table, source in (
        (root.get("prune", {}), root_file),
        (root.get("runs", {}).get(name, {}), f"{root_file} [runs.{name}]"),
        (own.get("prune", {}), run_file),
    ):
        merged.update({k: (v, source) for k, v in _rules(table, source).items()})
    return merged


def pins(run_path: str, fs: FileSystem = LOCAL) -> frozenset[int]:
    path = layout.run_config(run_path)
    value = _read(path, fs).get("pins", [])
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise UsageError(f"{path}: pins must be a list of step numbers")
    return frozenset(value)


def set_pins(
    run_path: str,
    add: frozenset[int] = frozenset(),
    drop: frozenset[int] = frozenset(),
    fs: FileSystem = LOCAL,
) -> frozenset[int]:
    """Edit the run's pins in place (comments and other settings kept); returns the new pins."""
    import tomlkit

    path = layout.run_config(run_path)
    try:
        doc = tomlkit.parse(fs.read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        doc = tomlkit.document()
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.ParseError) as exc:
        raise JanitorError(f"{path}: cannot read ({exc})") from None
    current = set(int(v) for v in doc.get("pins", []))
    new = sorted((current | add) - drop)
    doc["pins"] = new
    fs.write_atomic(path, tomlkit.dumps(doc).encode("utf-8"))
    return frozenset(new)
