"""A child process that extracts and verifies small models for the watcher, one at a time.

The watcher never imports torch; it starts this worker (which imports torch once) and sends
one JSON line per G file on stdin; the worker answers one JSON line per request on stdout.
``ok`` means the small model exists (written now, or found under the trainer's name) and
holds exactly that G's weights, checked tensor by tensor (``verify_small``).
"""

from __future__ import annotations

import json
import sys


def handle(path: str) -> dict:
    from janitor.domain.errors import JanitorError
    from janitor.torchio.extract import Options, extract_one, verify_small

    try:
        done = extract_one(path, Options(skip_existing=True))
        problems = verify_small(done.output, path, done.expect)
    except JanitorError as exc:
        return {"ok": False, "path": path, "error": str(exc)}
    except Exception as exc:  # a bug must not kill the worker silently
        return {"ok": False, "path": path, "error": f"{type(exc).__name__}: {exc}"}
    reply = {"path": path, "output": done.output, "skipped": done.skipped}
    if problems:
        detail = "; ".join(problems)
        return {**reply, "ok": False, "error": f"{done.output} failed verification: {detail}"}
    return {**reply, "ok": True}


def main() -> int:
    for line in sys.stdin:
        try:
            request = json.loads(line)
            path = request["path"]
        except (ValueError, KeyError, TypeError):
            continue
        sys.stdout.write(json.dumps(handle(path)) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
