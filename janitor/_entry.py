"""Console entry point: a Ctrl-C at any moment, even while imports run, is one line and 130."""

import os
import sys


def main() -> None:
    code = 0
    try:
        from janitor.cli import main as cli_main

        cli_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            sys.stderr.write(f"{exc.code}\n")
    except KeyboardInterrupt:  # while the CLI itself was still being imported
        sys.stderr.write("janitor: interrupted\n")
        code = 130
    # Leave now: the work is done and flushed. Interpreter teardown restores the default
    # SIGINT action before it ends, so a Ctrl-C in that window would kill the process by
    # signal (exit -2) after a successful run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
