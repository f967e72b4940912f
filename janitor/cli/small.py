"""``extract-small`` and ``info``: the commands that read tensors (through the use cases;
the torch layer comes from ``janitor.compose``, the one composition point)."""

from typing import Annotated

import typer

from janitor.cli.run import Json, app, command
from janitor.domain.errors import EXIT_FAILURE, EXIT_OK


def _text(help: str, *names: str, metavar: str | None = None):
    """An optional text option, shown without a default."""
    return Annotated[
        str | None, typer.Option(*names, help=help, metavar=metavar, show_default=False)
    ]


@app.command("extract-small")
@command
def extract_small(
    files: Annotated[
        list[str],
        typer.Argument(help="Big G_<step>.pth files, HF checkpoint-<step>/ folders, .ckpt files."),
    ],
    output: _text("Output file (one input) or folder.", "--output", "-o") = None,
    fmt: _text("applio, rvc, release (so-vits-svc/Bert-VITS2) or gpt-sovits (default: follows "
               "the run); ckpt or safetensors for Lightning.", "--format") = None,
    like: _text("rvc: savee (what training writes, default) or extract (the web UI's "
                "extraction: fixed config, --info text).", "--like") = None,
    info_text: _text("rvc --like extract: the info text.", "--info") = None,
    half: Annotated[
        bool, typer.Option("--half", help="release: fp16, as compress_model.py -hf.")
    ] = False,
    name: _text("Model name (default: run folder name).", "--name") = None,
    author: _text("Author metadata (Applio).", "--author") = None,
    sr: _text("Sample rate, when neither config.json nor the weights tell it.", "--sr",
              metavar="HZ") = None,
    version: _text("v1 or v2; must agree with the weights.", "--version") = None,
    f0: Annotated[
        bool | None,
        typer.Option(
            "--f0/--no-f0", help="Pitch guidance; must agree with the weights.", show_default=False
        ),
    ] = None,
    vocoder: _text("HiFi-GAN, MRF HiFi-GAN or RefineGAN; must agree with the weights.",
                   "--vocoder") = None,
    step: _text("Step, for latest-only files (G_2333333).", "--step", metavar="N") = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Leave an existing output alone (exit 0).")
    ] = False,
    json: Json = False,
) -> int:  # fmt: skip
    """Write the small inference model the trainer would write, from any big G checkpoint."""
    from janitor.cli import render
    from janitor.compose import TORCH
    from janitor.usecases.small import extract_options
    from janitor.usecases.small import extract_small as do_extract

    opts = extract_options(
        output=output, format=fmt, name=name, author=author, sr=sr, version=version, f0=f0,
        vocoder=vocoder, step=step, force=force, skip_existing=skip_existing, like=like,
        half=half, info=info_text,
    )  # fmt: skip
    with render.progress(len(files) > 1 and not json) as advance:
        report = do_extract(
            files, opts, TORCH, on_done=None if json else render.extracted_text,
            on_failed=lambda e: typer.echo(f"janitor: {e.message}", err=True),
            progress=lambda done, total: advance(),
        )  # fmt: skip
    if json:
        failed = [{"path": e.path, "message": e.message} for e in report.failed]
        doc = {"extracted": [d.as_dict() for d in report.extracted], "errors": failed}
        render.dump_json(render.envelope("extract-small", not failed, doc))
    return EXIT_FAILURE if report.failed else EXIT_OK


@app.command()
@command
def info(files: Annotated[list[str], typer.Argument(help="Checkpoint files.")],
         json: Json = False) -> int:  # fmt: skip
    """Describe checkpoints: kind, epoch, step, detected format; every small-model field."""
    from janitor.cli import render
    from janitor.compose import TORCH
    from janitor.usecases.small import info as do_info

    report = do_info(files, TORCH,
                     on_failed=lambda e: typer.echo(f"janitor: {e.message}", err=True))  # fmt: skip
    failed = [(e.path, e.message) for e in report.failed]
    if json:  # always a list, also for one file
        render.dump_json(render.envelope("info", not failed, {"files": list(report.files)}, failed))
    else:
        for doc in report.files:
            render.info_text(doc)
    return EXIT_FAILURE if failed else EXIT_OK
