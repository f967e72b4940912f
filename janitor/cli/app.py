"""The command line: parse the flags, call the command's one use case
(``janitor.usecases.commands``, ``janitor.usecases.small``), render what it returns; how a
command runs (errors to one line and an exit code) is ``janitor.cli.run``. This
module reaches storage, core and torch only through the use cases (the torch layer is handed
to them from ``janitor.compose``); torch is never
imported by this module."""

import io
import sys
from typing import Annotated

import typer

from janitor.cli.rule_flags import KeepBest, Metric, Mode, rule_options
from janitor.cli.run import Json, app, command, trash_app
from janitor.cli.run import warn as _warn
from janitor.domain.errors import EXIT_FAILURE, EXIT_OK
from janitor.domain.policy import Overrides
from janitor.usecases.options import TRAINERS

# ------------------------------------------------------------------ options, defined once

Paths = Annotated[list[str], typer.Argument(help="Logs roots, run folders or checkpoint files.")]
NoCache = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Read every checkpoint's ends again; neither read nor write the verdict cache "
        "(.janitor/verdicts.cache).",
    ),
]
Trainer = Annotated[
    str | None,
    typer.Option("--trainer", help=f"Force the trainer profile: {', '.join(TRAINERS)}."),
]
Trash = Annotated[
    bool, typer.Option("--trash", help="Move files to .janitor/trash instead of deleting.")
]
Truncate = Annotated[
    bool | None,
    typer.Option("--truncate/--no-truncate", show_default=False,
                 help="Truncate to 0 bytes before unlinking (Google Drive keeps deleted files "
                 "in its trash). Default: on under /content/drive."),
]  # fmt: skip
PurgeVersions = Annotated[
    bool,
    typer.Option("--purge-versions", help="Versioned buckets: also delete the old versions of "
                 "the objects removed (nothing else); without it they stay, billed."),
]  # fmt: skip
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the total.")]
Plot = Annotated[
    str | None,
    typer.Option("--plot", metavar="FILE", show_default=False,
                 help="Also draw into FILE.svg or FILE.png: a run folder's plan (steps, set "
                 "sizes, what is kept and why, the metric), or a logs root's disk use by run "
                 "beside the free space; needs vits-janitor[plot]."),
]  # fmt: skip
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Every set on its own row (no step ranges).")
]
DryRun = Annotated[bool, typer.Option("--dry-run", "-n", help="Show the plan; change nothing.")]
Yes = Annotated[
    bool, typer.Option("--yes", "-y", help="Accepted for scripts; prune never prompts.")
]
FixResume = Annotated[
    bool,
    typer.Option("--fix-resume", help="Move stale files the trainer would wrongly resume from "
                 "(an old G_2333333.pth, higher steps left by an earlier run) to the trash."),
]  # fmt: skip
LockWait = Annotated[
    float,
    typer.Option("--lock-timeout", metavar="SECONDS",
                 help="How long to wait for another janitor working on the same run."),
]  # fmt: skip


# ------------------------------------------------------------------ commands


def _paths(paths: list[str]) -> list[str]:
    from janitor.usecases.options import paths as checked

    return checked(paths, "PATHS")


@app.command()
@command
def scan(
    paths: Paths,
    json: Json = False,
    trainer: Trainer = None,
    plot: Plot = None,
    metric: Metric = None,
    no_cache: NoCache = False,
) -> int:
    """Show each training run: sets, newest complete step, sizes, problems, what prune frees."""
    from janitor.cli import render
    from janitor.usecases import commands

    if plot is not None:
        from janitor.cli.plot import check_target, draw_plan, draw_root

        check_target(plot)
    opts = commands.ScanOptions.parse(trainer=trainer, cache=not no_cache, plot=plot,
                                      metric=metric)  # fmt: skip
    if not json and plot is None:  # run by run: each block printed and let go, never all at once

        def block(summary) -> str:  # may run in a worker process
            text = io.StringIO()
            render.scan_run_text(summary, text)
            return text.getvalue()

        done = commands.scan_stream(_paths(paths), opts, block, sys.stdout.write, _warn)
        render.scan_footer(done.errors, done.runs, *done.totals, journals=done.journals,
                           unchecked=done.unchecked, uploads=done.uploads,
                           disks=done.disks, gone_trash=done.gone_trash)  # fmt: skip
        return EXIT_FAILURE if done.errors else EXIT_OK
    outcome = commands.scan_report(_paths(paths), opts, draw=draw_plan if plot else None,
                                   draw_root=draw_root if plot else None, warn=_warn)  # fmt: skip
    report = outcome.report
    if json:
        doc = render.scan_json(report, outcome.summaries, outcome.disks)
        render.dump_json(render.envelope("scan", not report.errors, doc))
    else:
        render.scan_text(report, outcome.summaries, disks=outcome.disks)
    return EXIT_FAILURE if report.errors else EXIT_OK


@app.command()
@command
@rule_options
def prune(
    paths: Paths,
    rules: Overrides,
    dry_run: DryRun = False,
    json: Json = False,
    trash: Trash = False,
    truncate: Truncate = None,
    yes: Yes = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    trainer: Trainer = None,
    fix_resume: FixResume = False,
    lock_timeout: LockWait = 10.0,
    no_cache: NoCache = False,
    purge_versions: PurgeVersions = False,
) -> int:
    """Remove stale checkpoint sets by the rules; the newest complete set always stays.

    Acts without prompting (cron-ready); --dry-run previews. Rules combine: a set is kept if
    any rule keeps it. Defaults come from janitor.toml in the logs root or run folder.
    """
    from janitor.cli import render
    from janitor.usecases import commands

    opts = commands.PruneOptions.parse(
        "flag", rules, dry_run=dry_run, trash=trash, truncate=truncate, trainer=trainer,
        fix_resume=fix_resume, lock_timeout=lock_timeout, cache=not no_cache,
        purge_versions=purge_versions,
    )  # fmt: skip
    out = sys.stdout

    def fixed(shown, result) -> None:
        if not json:
            render.fix_resume_text(shown, result, out, quiet)

    def done(rp, result) -> None:
        if not json:
            render.run_result_text(rp, result, out, quiet, trash)

    shown = None if json else (lambda rp: render.run_plan_text(rp, out, quiet, verbose))
    with render.progress(not (json or quiet or dry_run), "removing") as advance:
        outcome = commands.prune(_paths(paths), opts, warn=_warn, on_fix=fixed, on_plan=shown,
                                 on_run=done, progress=advance, processes=True)  # fmt: skip
    if json:
        doc = render.plan_json(outcome.plan, outcome.execution, dry_run, trash)
        if outcome.fixed is not None:  # --fix-resume moves to the trash
            doc["fix_resume"] = render.plan_json(outcome.fixed, outcome.moved, dry_run, True)[
                "runs"
            ]
        doc["shortfalls"] = list(outcome.shortfalls)
        render.dump_json(render.envelope("prune", not outcome.failed, doc))
    else:
        render.prune_summary(outcome.plan, outcome.execution, out, quiet, trash)
        for line in outcome.shortfalls:  # min-free / max-total not met: a cron mail shows it
            typer.echo(f"janitor: {line}", err=True)
    return EXIT_FAILURE if outcome.failed else EXIT_OK


@app.command()
@command
@rule_options
def watch(
    paths: Annotated[list[str], typer.Argument(help="Logs roots or run folders to watch.")],
    rules: Overrides,
    extract_on_save: Annotated[
        bool, typer.Option("--extract-on-save", help="Write each new G's small model first.")
    ] = False,
    poll: Annotated[
        float | None,
        typer.Option(
            "--poll",
            metavar="SECONDS",
            show_default=False,
            help="Poll every SECONDS instead of inotify (Google Drive, NFS, SMB; buckets are "
            "always polled, every 60 s by default).",
        ),
    ] = None,
    settle: Annotated[
        float, typer.Option(metavar="SECONDS", help="A file unchanged this long is written.")
    ] = 10.0,
    rescan_minutes: Annotated[
        float, typer.Option("--rescan", metavar="MINUTES", help="Full pass every MINUTES.")
    ] = 10.0,
    trash: Trash = False,
    truncate: Truncate = None,
    json_log: Annotated[bool, typer.Option("--json-log", help="JSON lines instead of text.")] = (
        False
    ),
    trainer: Trainer = None,
) -> int:
    """Watch log folders and prune (and extract) as the trainer writes. Ctrl-C to stop."""
    import threading

    from janitor.cli import render
    from janitor.usecases import commands

    opts = commands.WatchOptions.parse(
        "flag", rules, extract_on_save=extract_on_save, poll=poll, settle=settle,
        rescan=rescan_minutes, trash=trash, truncate=truncate, trainer=trainer,
    )  # fmt: skip
    stop = threading.Event()

    def until() -> None:
        while not stop.wait(3600):
            pass

    commands.stop_signals(lambda *_: stop.set())
    commands.watch(
        _paths(paths), opts, log=render.json_log() if json_log else render.text_log(),
        progress=render.PassProgress(not json_log), until=until,
    )  # fmt: skip
    return EXIT_OK


@app.command()
@command
def finalize(
    paths: Annotated[list[str], typer.Argument(help="Run folders (or a logs root).")],
    keep_best: KeepBest = None,
    metric: Metric = None,
    mode: Mode = None,
    steps: Annotated[
        str | None,
        typer.Option(
            "--steps",
            metavar="S1,S2",
            show_default=False,
            help="Also keep small models of these steps.",
        ),
    ] = None,
    idle: Annotated[
        str, typer.Option(metavar="DURATION", help="Refuse runs with a file newer than this.")
    ] = "30m",
    dry_run: DryRun = False,
    trash: Trash = False,
    truncate: Truncate = None,
    json: Json = False,
    force: Annotated[
        bool, typer.Option("--force", help="Finalize even if the run looks active.")
    ] = False,
    trainer: Trainer = None,
    purge_versions: PurgeVersions = False,
    all_runs: Annotated[
        bool,
        typer.Option(
            "--all", help="Finalize every run found (a logs root); without it, one run only."
        ),
    ] = False,
) -> int:
    """Training is over: make sure verified small models exist, then remove every big
    checkpoint (G, D, DUR, WD) of the run, the newest included. More than one run (a logs
    root) takes --all; --dry-run shows them all first."""
    from janitor.cli import render
    from janitor.compose import TORCH
    from janitor.usecases import commands

    opts = commands.FinalizeOptions.parse(
        "flag", keep_best=keep_best, metric=metric, mode=mode, steps=steps, idle=idle,
        dry_run=dry_run, trash=trash, truncate=truncate, force=force, trainer=trainer,
        purge_versions=purge_versions, all=all_runs,
    )  # fmt: skip
    paths = _paths(paths)
    with render.finalize_progress(not json, len(paths)) as (advance, on_tensor):

        def done(final) -> None:
            advance()
            if not json:
                render.final_text(final, trash=trash)

        outcome = commands.finalize(paths, opts, TORCH, warn=_warn, on_run=done,
                                    on_tensor=on_tensor)  # fmt: skip
    if json:
        doc = render.finals_json(list(outcome.finals), dry_run)
        render.dump_json(render.envelope("finalize", not outcome.failed, doc, outcome.errors))
    elif not outcome.finals:
        typer.echo("no training runs found")
    return EXIT_FAILURE if outcome.failed else EXIT_OK


RunArg = Annotated[str, typer.Argument(help="Run folder (not a logs root).")]


@app.command()
@command
def pin(
    run: RunArg,
    steps: Annotated[list[str], typer.Argument(help="Steps to pin.", metavar="STEPS...")],
    json: Json = False,
) -> int:
    """Pin steps of a run: pinned sets are never removed (stored in RUN/janitor.toml)."""
    return _edit_pins(run, steps, json, unpin=False)


@app.command()
@command
def unpin(
    run: RunArg,
    steps: Annotated[list[str], typer.Argument(help="Steps to unpin.", metavar="STEPS...")],
    json: Json = False,
) -> int:
    """Remove pins from a run."""
    return _edit_pins(run, steps, json, unpin=True)


def _edit_pins(run: str, steps: list[str], json: bool, unpin: bool) -> int:
    from janitor.cli import render
    from janitor.usecases import commands

    pins = commands.pin(run, steps, unpin=unpin)
    if json:
        doc = render.pins_json(pins.run, pins.pinned, pins.not_pinned)
        render.dump_json(render.envelope("unpin" if unpin else "pin", True, doc))
        return EXIT_OK
    if pins.not_pinned:
        typer.echo(f"not pinned: {', '.join(map(str, sorted(pins.not_pinned)))}")
    typer.echo(f"pinned: {', '.join(map(str, sorted(pins.pinned))) or 'none'}")
    return EXIT_OK


@app.command()
@command
def restore(
    run: Annotated[str, typer.Argument(help="Run folder whose trashed files go back.")],
    step: Annotated[int | None, typer.Argument(help="Only this step's set.")] = None,
    copy: Annotated[
        str | None,
        typer.Option(
            "--copy",
            metavar="ID",
            show_default=False,
            help="This copy (an id from `janitor trash list`, e.g. 100#2, or a trash "
            "file name); default: the newest copy of each step.",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="FOLDER",
            show_default=False,
            help="Put them into this run folder instead (the run was renamed; same logs root).",
        ),
    ] = None,
    json: Json = False,
) -> int:
    """Move files that `prune --trash` put in .janitor/trash back into the run.

    A set's files come back together, never over a file already in the run. With several
    copies of a step in the trash, the newest comes back and the older ones are named. A run
    folder that is gone is made again; a renamed run gets its files with --to NEW_FOLDER."""
    from janitor.cli import render
    from janitor.usecases import commands

    done = commands.restore(run, step, copy, to=to)
    if json:
        doc = render.restore_json(done.result, done.run)
        render.dump_json(render.envelope("restore", done.ok, doc))
    else:
        render.restore_text(done.result, done.run)
    _file_errors(done.result.errors)
    return EXIT_OK if done.ok else EXIT_FAILURE


def _file_errors(errors) -> None:
    from janitor.cli.render import shown_path

    for e in errors:
        typer.echo(f"error: {shown_path(e.path)}: {e.message}", err=True)


@trash_app.command("list")
@command
def trash_list(
    path: Annotated[str, typer.Argument(help="A logs root (every run's trash) or a run folder.")],
    json: Json = False,
) -> int:
    """Every file in the trash: run, step, copy id, original and trash path, size, when."""
    from janitor.cli import render
    from janitor.usecases import commands

    listing = commands.trash_list(path)
    if json:
        render.dump_json(render.envelope("trash list", True, render.trash_list_json(listing.files)))
    else:
        render.trash_list_text(listing.runs)
    return EXIT_OK


@trash_app.command("empty")
@command
def trash_empty(
    path: Annotated[
        str,
        typer.Argument(help="A logs root (every run's trash) or a run folder (also one gone)."),
    ],
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            show_default=False,
            help="Only files trashed more than DURATION ago (7d).",
        ),
    ] = None,
    dry_run: DryRun = False,
    json: Json = False,
) -> int:
    """Delete files in the trash for good (`janitor trash list` shows them first)."""
    from janitor.cli import render
    from janitor.usecases import commands

    result = commands.trash_empty(path, older_than or None, dry_run=dry_run)
    _file_errors(result.errors)
    if json:
        doc = render.empty_json(result)
        render.dump_json(render.envelope("trash empty", not result.errors, doc))
    else:
        render.empty_text(result, older_than)
    return EXIT_FAILURE if result.errors else EXIT_OK


@app.command("log")
@command
def log(
    path: Annotated[str, typer.Argument(help="A logs root (every run) or a run folder.")] = ".",
    json: Json = False,
) -> int:
    """What janitor removed, trashed, restored: when, which file, why, by which rule."""
    from janitor.cli import render
    from janitor.usecases import commands

    done = commands.log(path)
    if json:
        render.dump_json(
            render.envelope("log", True, render.log_json(done.journal, list(done.records)))
        )
    else:
        render.log_text(done.journal, list(done.records))
    return EXIT_OK


def main() -> None:
    try:
        app(prog_name="janitor")
    except SystemExit as exc:  # click's own usage errors exit 2 already
        sys.exit(exc.code)


from janitor.cli import small, web  # noqa: E402,F401  (extract-small, info; ui, ui-plugin)

if __name__ == "__main__":
    main()
