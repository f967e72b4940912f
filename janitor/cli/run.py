"""How a command runs: the Typer app, and errors turned into one line and an exit code
here and nowhere else (0 ok, 1 failure, 2 usage; with --json also the envelope)."""

import functools
import sys
from typing import Annotated

import typer

from janitor.domain.errors import EXIT_FAILURE, EXIT_OK, JanitorError

app = typer.Typer(
    name="janitor",
    help="Keep voice-model training runs (Applio, RVC, so-vits-svc, Bert-VITS2, GPT-SoVITS) "
    "and Hugging Face Trainer, Lightning and DeepSpeed runs from eating the disk: scan, prune "
    "stale checkpoints, pin what matters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
trash_app = typer.Typer(help="Inspect and empty janitor's trash (.janitor/trash).")
app.add_typer(trash_app, name="trash")

_state = {"debug": False}

Json = Annotated[bool, typer.Option("--json", help="One JSON document on stdout (raw numbers).")]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"janitor: {message}", err=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"janitor: warning: {message}", err=True)


def _interrupted() -> None:
    """Ctrl-C: every ``finally`` has run (temp files are gone); say so and leave with 130
    without running interpreter teardown, where a half-finished torch import can turn the
    interrupt into a death by signal."""
    import os

    sys.stdout.flush()
    sys.stderr.write("janitor: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


def _quiet_exit(code: int) -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os._exit(code)


def command(fn):
    """Run a command body; turn janitor's errors into one line and an exit code (with
    --json, also the envelope with ``ok`` false and the error)."""
    name = fn.__name__.replace("trash_", "trash ").replace("_", "-")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            code = fn(*args, **kwargs)
        except JanitorError as exc:
            if _state["debug"]:
                raise
            if kwargs.get("json") or kwargs.get("json_log"):
                _json_failure(name, exc.path, str(exc))
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            _interrupted()
        except BrokenPipeError:  # `janitor scan | head`: the reader left; not a failure
            _quiet_exit(EXIT_OK)
        except OSError as exc:
            if _state["debug"]:
                raise
            if kwargs.get("json") or kwargs.get("json_log"):
                _json_failure(name, exc.filename, exc.strerror or str(exc))
            where = f"{exc.filename}: " if exc.filename else ""
            raise _fail(f"{where}{exc.strerror or exc}", EXIT_FAILURE) from None
        except Exception as exc:  # a bug: still one line, the details behind --debug
            if _state["debug"]:
                raise
            raise _fail(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
                EXIT_FAILURE,
            ) from None
        raise typer.Exit(code or EXIT_OK)

    return wrapper


def _json_failure(name: str, path: str | None, message: str) -> None:
    from janitor.cli import render

    render.dump_json(render.envelope(name, False, errors=[(path, message)]))


def _version(value: bool) -> None:
    if value:
        from janitor import __version__

        typer.echo(f"janitor {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    _state["debug"] = debug
