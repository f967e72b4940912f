"""``ui`` and ``ui-plugin``: the web page (``janitor.ui``, imported only when run: gradio is
an optional extra and never loaded by ``--help``, ``scan`` or ``prune``)."""

from typing import Annotated

import typer

from janitor.cli.run import app, command
from janitor.domain.errors import EXIT_OK


@app.command("ui")
@command
def ui(
    logs_root: Annotated[str, typer.Argument(help="Logs root (or run folder, or s3:// URL).")],
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: the first free from 7860).")
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Listen here; beyond 127.0.0.1 needs --auth.")
    ] = "127.0.0.1",
    auth: Annotated[
        str | None,
        typer.Option("--auth", help="USER:PASSWORD asked by the page.", show_default=False),
    ] = None,
) -> int:
    """Serve the web page on this machine (no share link, no analytics)."""
    from janitor.ui.serve import launch

    launch(logs_root, host=host, port=port, auth=auth)
    return EXIT_OK


@app.command("ui-plugin")
@command
def ui_plugin(
    trainer: Annotated[str, typer.Argument(help="The web UI to plug into: applio.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Folder to write janitor.zip into.")],
) -> int:
    """Write the plugin zip for a trainer's web UI (Applio's Plugin Installer takes it)."""
    from janitor.ui.applio import write_zip

    typer.echo(write_zip(trainer, out))
    return EXIT_OK
