"""A child process that extracts small models for the watcher, one at a time.

The watcher never imports torch; it starts this worker (which imports torch once) and sends
one JSON line per G file on stdin; the worker answers one JSON line per request on stdout.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from janitor.domain.errors import JanitorError
    from janitor.torchio.extract import Options, extract_one

    for line in sys.stdin:
        try:
            request = json.loads(line)
            path = request["path"]
        except (ValueError, KeyError, TypeError):
            continue
        try:
            done = extract_one(path, Options(skip_existing=True))
            reply = {"ok": True, "path": path, "output": done.output, "skipped": done.skipped}
        except JanitorError as exc:
            reply = {"ok": False, "path": path, "error": str(exc)}
        except Exception as exc:  # a bug must not kill the worker silently
            reply = {"ok": False, "path": path, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
