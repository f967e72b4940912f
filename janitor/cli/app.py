"""The command line: parse, call the library, print. Errors become one line and an exit code
here and nowhere else (0 ok, 1 failure, 2 usage). torch is never imported by this module."""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import os
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from janitor.core.profiles import PROFILES
from janitor.domain.errors import EXIT_FAILURE, EXIT_OK, JanitorError, UsageError
from janitor.domain.policy import Overrides

if TYPE_CHECKING:
    from janitor.storage.fs import FileSystem

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


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"janitor: {message}", err=True)
    return typer.Exit(code)


def _warn(message: str) -> None:
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


def _collector_restored(fn):
    """``fn`` may pause the cyclic collector (scan and prune do, at scale); it runs again
    once ``fn`` returns or raises (tests and the API run commands in-process)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        was = gc.isenabled()
        try:
            return fn(*args, **kwargs)
        finally:
            if was:
                gc.enable()

    return run


def command(fn):
    """Run a command body; turn janitor's errors into one line and an exit code (with
    --json, also the envelope with ``ok`` false and the error)."""
    name = fn.__name__.replace("trash_", "trash ").replace("_", "-")
    fn = _collector_restored(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            code = fn(*args, **kwargs)
        except JanitorError as exc:
            if _state["debug"]:
                raise
            if kwargs.get("json") or kwargs.get("json_log"):
                _json_failure(name, None, str(exc))
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


# ------------------------------------------------------------------ options, defined once

Paths = Annotated[list[str], typer.Argument(help="Logs roots, run folders or checkpoint files.")]
Json = Annotated[bool, typer.Option("--json", help="One JSON document on stdout (raw numbers).")]
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
    typer.Option("--trainer", help=f"Force the trainer profile: {', '.join(PROFILES)}."),
]
KeepLast = Annotated[
    str | None,
    typer.Option("--keep-last", help="Keep the newest N sets, complete or partial (default 1 if "
                 "no rule).", metavar="N", show_default=False),
]  # fmt: skip
KeepEvery = Annotated[
    str | None,
    typer.Option("--keep-every", help="Milestones: keep steps STEPS, 2*STEPS, ... (or the newest "
                 "set before each).", metavar="STEPS", show_default=False),
]  # fmt: skip
KeepWithin = Annotated[
    str | None,
    typer.Option("--keep-within", help="Keep sets saved within DURATION (2d, 36h, 90m; a unit is "
                 "required) of the newest.", metavar="DURATION", show_default=False),
]  # fmt: skip
KeepBest = Annotated[
    str | None,
    typer.Option("--keep-best", help="Keep the best K sets by --metric (TensorBoard scalar).",
                 metavar="K", show_default=False),
]  # fmt: skip
Metric = Annotated[
    str | None,
    typer.Option("--metric", help="TensorBoard scalar tag, e.g. loss/g/total.", metavar="TAG",
                 show_default=False),
]  # fmt: skip
Mode = Annotated[
    str | None,
    typer.Option("--mode", help="min (default) or max: which end of --metric is best.",
                 show_default=False),
]  # fmt: skip
MaxSize = Annotated[
    str | None,
    typer.Option("--max-size", help="After the rules, drop the oldest unprotected sets until "
                 "the run fits in SIZE (20GB).", metavar="SIZE", show_default=False),
]  # fmt: skip
RemoveIncomplete = Annotated[
    bool,
    typer.Option("--remove-incomplete", help="Also remove incomplete/partial sets older than "
                 "--older-than (crash leftovers)."),
]  # fmt: skip
OlderThan = Annotated[
    str | None,
    typer.Option("--older-than", metavar="DURATION", show_default=False,
                 help="With --remove-incomplete: how old a leftover must be."),
]  # fmt: skip
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
                 help="Also draw one run's plan (steps, set sizes, what is kept and why, the "
                 "metric) into FILE.svg or FILE.png; needs vits-janitor[plot]."),
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


def rule_overrides(
    keep_last: str | None,
    keep_every: str | None,
    keep_within: str | None,
    keep_best: str | None,
    metric: str | None,
    mode: str | None,
    max_size: str | None,
    remove_incomplete: bool,
    older_than: str | None,
) -> Overrides:
    """Command-line rules, each checked and worded by its flag (None = not given: the config
    files may say)."""
    from janitor.usecases.prune import parse_overrides

    return parse_overrides(
        keep_last=keep_last, keep_every=keep_every, keep_within=keep_within,
        keep_best=keep_best, metric=metric, mode=mode, max_size=max_size,
        remove_incomplete=remove_incomplete, older_than=older_than,
    )  # fmt: skip


RULE_OPTIONS = {
    "keep_last": (KeepLast, None),
    "keep_every": (KeepEvery, None),
    "keep_within": (KeepWithin, None),
    "keep_best": (KeepBest, None),
    "metric": (Metric, None),
    "mode": (Mode, None),
    "max_size": (MaxSize, None),
    "remove_incomplete": (RemoveIncomplete, False),
    "older_than": (OlderThan, None),
}


def rule_options(fn):
    """Give a command (prune, watch) the retention-rule options, declared once above; it
    receives them parsed, as one typed ``rules: Overrides`` (None where not given: the
    config files may say). Typer reads options from the signature, so the command's
    signature is extended with the options here, in one place."""
    import inspect

    sig = inspect.signature(fn, eval_str=True)
    params = [p for name, p in sig.parameters.items() if name != "rules"]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    extra = [
        inspect.Parameter(name, kind, default=default, annotation=annotation)
        for name, (annotation, default) in RULE_OPTIONS.items()
    ]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        values = {name: kwargs.pop(name) for name in RULE_OPTIONS}
        return fn(*args, rules=rule_overrides(**values), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[params[0], *extra, *params[1:]])
    wrapper.__annotations__ = {
        **{k: v for k, v in fn.__annotations__.items() if k != "rules"},
        **{name: annotation for name, (annotation, _) in RULE_OPTIONS.items()},
    }
    return wrapper


# ------------------------------------------------------------------ commands


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
    from janitor.storage.locate import storage_of

    if plot is not None:
        from janitor.cli.plot import check_target

        check_target(plot)
    elif metric is not None:
        raise UsageError("--metric on scan is for --plot (the curve to draw)")
    fs, paths = storage_of(paths)
    gc.disable()  # no collector passes over 200k objects (`command` turns it back on)
    with fs.listing(paths[0]) if len(paths) == 1 else contextlib.nullcontext():
        return _scan(fs, paths, json, trainer, plot, metric, no_cache)


def _scan(
    fs: FileSystem, paths: list[str], json: bool, trainer: str | None, plot: str | None,
    metric: str | None, no_cache: bool,
) -> int:  # fmt: skip
    from janitor.cli import render
    from janitor.storage.config import ConfigFiles
    from janitor.storage.scan import scan as do_scan
    from janitor.storage.scan import scan_runs_mapped, unfinished_uploads
    from janitor.usecases.inspect import summarize, summarize_run

    files = ConfigFiles(fs)  # each janitor.toml read once (before workers fork: inherited)
    files.warm(paths)
    if not json and plot is None:  # run by run: each block printed and let go, never all at once
        errors: list = []
        paths_seen: dict[str, None] = {}
        journals: set[str] = set()
        totals, now, unchecked = [0, 0, 0, 0], time.time(), 0

        def block(run):  # may run in a worker process: what it returns is all that is kept
            summary = summarize_run(run, now, fs, files)
            text = io.StringIO()
            render.scan_run_text(summary, text)
            numbers = (len(run.candidates), run.big_bytes, run.small_bytes,
                       summary.keep_last_1_frees)  # fmt: skip
            warnings = files.warnings([run.path])  # where its files were read
            return run.path, text.getvalue(), summary.journal, numbers, run.unchecked, warnings

        # lazy: the report reads only what its lines decide (sets below the newest complete
        # one show as "not checked"); --json and --plot read every file
        blocks = scan_runs_mapped(paths, errors, block, fs=fs, trainer=trainer,
                                  cache=not no_cache, lazy=True)  # fmt: skip
        warned: dict[str, None] = {}
        with contextlib.closing(blocks):  # a reader gone (`| head`): workers ended first
            for path, text, journal, numbers, not_checked, warnings in blocks:
                warned.update(dict.fromkeys(warnings))
                if path in paths_seen:  # a run folder given twice (logs and logs/alice)
                    continue
                sys.stdout.write(text)
                paths_seen[path] = None
                if journal:
                    journals.add(journal)
                for i, n in enumerate(numbers):
                    totals[i] += n
                unchecked += not_checked
        for warning in warned:
            _warn(warning)
        uploads = unfinished_uploads(fs, paths)
        render.scan_footer(errors, len(paths_seen), *totals, journals=journals,
                           unchecked=unchecked, uploads=uploads)  # fmt: skip
        return EXIT_FAILURE if errors else EXIT_OK
    report = do_scan(paths, fs=fs, trainer=trainer, cache=not no_cache)
    if plot is not None:
        _plot(report, plot, metric)
    summaries = summarize(report, fs=fs, files=files)
    for warning in files.warnings(r.path for r in report.runs):
        _warn(warning)
    if json:
        doc = render.scan_json(report, summaries)
        render.dump_json(render.envelope("scan", not report.errors, doc))
    else:
        render.scan_text(report, summaries)
    return EXIT_FAILURE if report.errors else EXIT_OK


def _plot(report, target: str, metric: str | None) -> None:
    """The one run's plan (its janitor.toml rules) as a picture; the metric curve is the
    plan's own (keep-best) or --metric."""
    from janitor.cli.plot import plot_plan
    from janitor.storage.metrics import load_scalars
    from janitor.usecases.prune import plan_run

    if len(report.runs) != 1:
        names = ", ".join(r.name for r in report.runs[:5]) or "none"
        raise UsageError(f"--plot draws one run; found {len(report.runs)} ({names})")
    (run,) = report.runs
    rp = plan_run(run)
    name = metric or rp.planner.as_dict().get("rules", {}).get("metric")
    values = load_scalars(run.path, name) if metric else getattr(rp.planner, "metric", None)
    plot_plan(rp, target, values, name)


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
    from janitor.domain.plans import Plan
    from janitor.domain.results import ExecutionReport
    from janitor.storage.config import ConfigFiles
    from janitor.storage.locate import storage_of
    from janitor.storage.scan import scan as do_scan
    from janitor.usecases.executor import Executor
    from janitor.usecases.prune import Pruner

    store, paths = storage_of(paths)
    gc.disable()  # no collector passes over 200k objects (`command` turns it back on)
    cache = {"cache": not no_cache, "save_cache": not dry_run}
    report = do_scan(paths, fs=store, trainer=trainer, **cache)
    files = ConfigFiles(store)  # each janitor.toml read once for all runs
    for warning in files.warnings(r.path for r in report.runs):
        _warn(warning)
    fs = store
    fixes: list = []
    if fix_resume:  # the prune plan is made on the runs as they are after the moves
        from janitor.usecases.fix_resume import view_after
        from janitor.usecases.prune import planner_for

        for run in report.runs:  # every run's rules are checked before anything moves
            planner_for(run, rules, store, files)

        fixes = _fix_resume(report, dry_run, lock_timeout, quiet, json, store, files)
        fs = view_after(fixes, store) if dry_run else store
        report = do_scan(paths, trainer=trainer, fs=fs, **cache)
    executor = Executor(fs, trash=trash, truncate=truncate, lock_timeout=lock_timeout,
                        purge_versions=purge_versions)  # fmt: skip
    pruner = Pruner(rules, executor, fs, files)
    shown = None if json else (lambda rp: render.run_plan_text(rp, sys.stdout, quiet, verbose))
    plans, results = [], []
    with render.progress(not (json or quiet or dry_run), "removing") as advance:
        executor.on_removed = advance
        runs = pruner.run_all(report.runs, dry_run=dry_run, shown=shown, processes=True)
        for rp, result in runs:
            plans.append(rp)
            if result is not None:
                results.append(result)
            if not json:
                render.run_result_text(rp, result, sys.stdout, quiet, trash)
    plan = Plan(tuple(plans), report.errors)
    execution = None if dry_run else ExecutionReport(tuple(results))
    _versions_left(
        store, paths, plan.expected_freed if dry_run else execution.freed, purge_versions
    )
    moved = None if dry_run else ExecutionReport(tuple(result for _, result in fixes))
    failed = report.errors or any(e is not None and e.errors for e in (execution, moved))
    if json:
        doc = render.plan_json(plan, execution, dry_run, trash)
        if fix_resume:  # --fix-resume moves to the trash
            fixed = Plan(tuple(rp for rp, _ in fixes))
            doc["fix_resume"] = render.plan_json(fixed, moved, dry_run, True)["runs"]
        render.dump_json(render.envelope("prune", not failed, doc))
    else:
        render.prune_summary(plan, execution, sys.stdout, quiet, trash)
    return EXIT_FAILURE if failed else EXIT_OK


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
    from janitor.storage import platform
    from janitor.storage.locate import storage_of
    from janitor.usecases.executor import Executor
    from janitor.usecases.watch import Watcher

    if poll is not None:
        _in_range(poll, "--poll", "seconds", 3600)
    _in_range(settle, "--settle", "seconds", 86400)
    _in_range(rescan_minutes, "--rescan", "minutes", 7 * 24 * 60)
    fs, paths = storage_of(paths)
    watcher = Watcher(
        paths, rules, poll=poll, settle=settle, rescan=rescan_minutes * 60,
        extract_on_save=extract_on_save, trainer=trainer, fs=fs,
        executor=Executor(fs, trash=trash, truncate=truncate),
        log=render.json_log() if json_log else render.text_log(),
        progress=render.PassProgress(not json_log),
    )  # fmt: skip
    stop = threading.Event()
    platform.on_stop_signals(lambda *_: stop.set())
    watcher.start()
    try:
        while not stop.wait(3600):
            pass
    finally:
        watcher.stop()
    return EXIT_OK


def _versions_left(fs: FileSystem, paths: list[str], freed: int, purged: bool) -> None:
    """On a versioned bucket, deleted objects stay as noncurrent versions: say so."""
    if freed and not purged and paths and fs.versioned(paths[0]):
        _warn(
            f"{paths[0]}: the bucket is versioned: removed objects stay as noncurrent "
            "versions and still take (billed) storage; --purge-versions also deletes the old "
            "versions of the objects janitor removes, or let a lifecycle rule expire them"
        )


def _in_range(value: float, flag: str, unit: str, most: float) -> None:
    """A watch interval: a real number above 0 and at most ``most`` (NaN fails both)."""
    if not 0 < value <= most:
        raise UsageError(f"{flag} must be a number of {unit} above 0 and at most {most:g}, "
                         f"got {value:g}")  # fmt: skip


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
) -> int:
    """Training is over: make sure verified small models exist, then remove every big
    checkpoint (G, D, DUR, WD) of the run, the newest included."""
    from janitor.cli import render
    from janitor.domain.policy import Policy
    from janitor.storage.config import check_rule, parse_duration
    from janitor.storage.locate import storage_of
    from janitor.storage.scan import scan as do_scan
    from janitor.torchio.extract import TorchSmallModels
    from janitor.usecases.executor import Executor
    from janitor.usecases.finalize import finalize_run

    best = None if keep_best is None else check_rule("keep_best", keep_best, "--keep-best")
    policy = Policy(keep_best=best, metric=metric, mode=mode or "min")  # validates
    try:
        wanted = [int(x) for x in steps.split(",") if x.strip()] if steps else []
    except ValueError:
        raise UsageError(f"--steps: expected step numbers like 1000,5000, got {steps!r}") from None
    idle_s = parse_duration(idle, "--idle")
    fs, paths = storage_of(paths)
    report = do_scan(paths, fs=fs, trainer=trainer, save_cache=not dry_run)
    executor = Executor(fs, trash=trash, truncate=truncate, purge_versions=purge_versions)
    finals = []
    with render.finalize_progress(not json, len(report.runs)) as (advance, on_tensor):
        small_models = TorchSmallModels(on_tensor)
        for run in report.runs:
            final = finalize_run(
                run, small_models, steps=wanted, keep_best=policy.keep_best, metric=policy.metric,
                mode=policy.mode, idle=idle_s, force=force, dry_run=dry_run, executor=executor,
                fs=fs,
            )  # fmt: skip
            finals.append(final)
            advance()
            if not json:
                render.final_text(final, trash=trash)
    failed = report.errors or any(
        f.refused or (f.result is not None and f.result.errors) for f in finals
    )
    freed = sum(f.result.freed for f in finals if f.result is not None)
    _versions_left(fs, paths, freed, purge_versions)
    if json:
        doc = render.finals_json(finals, dry_run)
        render.dump_json(render.envelope("finalize", not failed, doc, report.errors))
    elif not report.runs:
        typer.echo("no training runs found")
    return EXIT_FAILURE if failed else EXIT_OK


def _fix_resume(
    report, dry_run: bool, lock_timeout: float, quiet: bool, json: bool, fs: FileSystem, files
) -> list:
    """Only on request: stale sets go to the trash (journaled, restorable), never deleted.
    Returns (plan, result) for each run with stale sets; result is None in a dry run.
    Says what it moves (would move), and what went wrong unless the output is --json."""
    from janitor.cli.render import shown_path
    from janitor.usecases.executor import Executor
    from janitor.usecases.fix_resume import fix_resume

    mover = Executor(fs, trash=True, lock_timeout=lock_timeout)
    fixes = fix_resume(report, mover, dry_run, files)
    for shown, result in fixes:
        run = shown.run
        if json:
            continue
        if result is None and not quiet:
            names = ", ".join(f.name for d in shown.removals for f in d.set.files)
            typer.echo(f"{run.name}: --fix-resume would move to the trash: {names}")
        elif result is not None and result.removed and not quiet:
            names = ", ".join(os.path.basename(r.path) for r in result.removed)
            typer.echo(f"{run.name}: --fix-resume moved to the trash: {names}")
        for msg in result.skipped if result else ():
            typer.echo(f"  skipped: {msg}")
        for e in result.errors if result else ():
            typer.echo(f"error: {shown_path(e.path)}: {e.message}")
    return fixes


def _storage(path: str) -> FileSystem:
    """The storage of a path the user named (resolved once per command: for a URL this
    opens a client)."""
    from janitor.storage.locate import resolve

    return resolve(path)[0]


def _run_folder(path: str, fs: FileSystem) -> str:
    from janitor.storage.locate import absolute

    if not fs.is_dir(path):
        raise UsageError(f"{path}: not a run folder")
    return absolute(path)


@app.command()
@command
def pin(
    run: Annotated[str, typer.Argument(help="Run folder (not a logs root).")],
    steps: Annotated[list[str], typer.Argument(help="Steps to pin.", metavar="STEPS...")],
    json: Json = False,
) -> int:
    """Pin steps of a run: pinned sets are never removed (stored in RUN/janitor.toml)."""
    return _edit_pins("pin", run, steps, json)


@app.command()
@command
def unpin(
    run: Annotated[str, typer.Argument(help="Run folder (not a logs root).")],
    steps: Annotated[list[str], typer.Argument(help="Steps to unpin.", metavar="STEPS...")],
    json: Json = False,
) -> int:
    """Remove pins from a run."""
    return _edit_pins("unpin", run, steps, json)


def _edit_pins(verb: str, run: str, steps: list[str], json: bool = False) -> int:
    from janitor.cli import render
    from janitor.storage import config

    wanted = frozenset(config.parse_count(s, "STEPS", maximum=config.MAX_STEP) for s in steps)
    fs = _storage(run)
    folder = _pin_target(verb, run, steps, fs)
    files = config.ConfigFiles(fs)
    absent: frozenset[int] = frozenset()
    if verb == "pin":
        now = files.set_pins(folder, add=wanted)
    else:
        absent = wanted - files.pins(folder)
        now = files.set_pins(folder, drop=wanted)
    if json:
        render.dump_json(render.envelope(verb, True, render.pins_json(folder, now, absent)))
        return EXIT_OK
    if absent:
        typer.echo(f"not pinned: {', '.join(map(str, sorted(absent)))}")
    typer.echo(f"pinned: {', '.join(map(str, sorted(now))) or 'none'}")
    return EXIT_OK


def _trash_path(path: str, fs: FileSystem) -> str:
    """A folder the trash commands work on, links resolved (the journal records real paths)."""
    return fs.realpath(_run_folder(path, fs))


def _pin_target(verb: str, path: str, steps: list[str], fs: FileSystem) -> str:
    """The run folder pins go to: one holding checkpoints, or a folder with no run below it
    (a run not started yet). A logs root, a file or a missing folder is a usage error."""
    from janitor.storage.scan import scan as do_scan

    if not fs.exists(path):
        raise UsageError(f"{path}: no such folder (pins go to a run folder)")
    if not fs.is_dir(path):
        raise UsageError(
            f"{path}: not a run folder (pins go to the folder holding the checkpoints)"
        )
    real = fs.realpath(path)
    runs = do_scan([path], fs=fs, save_cache=False).runs
    if not runs or any(r.path == real for r in runs):
        return real
    names = [os.path.relpath(r.path, real) for r in runs]
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} runs)" if len(names) > 5 else "")
    example = f"janitor {verb} {os.path.join(path, names[0])} {' '.join(steps)}"
    raise UsageError(f"{path}: a logs root, not a run (runs: {shown}); {verb} a run: {example}")


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
    json: Json = False,
) -> int:
    """Move files that `prune --trash` put in .janitor/trash back into the run.

    A set's files come back together, never over a file already in the run. With several
    copies of a step in the trash, the newest comes back and the older ones are named."""
    from janitor.cli import render
    from janitor.usecases.trash import restore as do_restore

    fs = _storage(run)
    run_path = _trash_path(run, fs)
    result = do_restore(run_path, step, copy, fs=fs)
    ok = not (result.errors or result.blocked)
    if json:
        render.dump_json(render.envelope("restore", ok, render.restore_json(result, run_path)))
    else:
        render.restore_text(result, run_path)
    for e in result.errors:
        typer.echo(f"error: {render.shown_path(e.path)}: {e.message}", err=True)
    return EXIT_OK if ok else EXIT_FAILURE


@trash_app.command("list")
@command
def trash_list(
    path: Annotated[str, typer.Argument(help="A logs root (every run's trash) or a run folder.")],
    json: Json = False,
) -> int:
    """Every file in the trash: run, step, copy id, original and trash path, size, when."""
    from janitor.cli import render
    from janitor.storage import layout
    from janitor.storage.trash import trash_contents, trash_copies, trash_runs

    fs = _storage(path)
    folder = _trash_path(path, fs)
    is_root = fs.is_dir(layout.trash_root(folder))
    runs = trash_runs(folder, fs) if is_root else [folder]
    files = {r: trash_contents(r, fs) for r in runs}
    if json:
        doc = render.trash_list_json([f for r in runs for f in files[r]])
        render.dump_json(render.envelope("trash list", True, doc))
    else:
        render.trash_list_text([(r, layout.trash_dir(r), trash_copies(files[r])) for r in runs])
    return EXIT_OK


@trash_app.command("empty")
@command
def trash_empty(
    logs_root: Annotated[str, typer.Argument(help="The logs root holding .janitor/trash.")],
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            show_default=False,
            help="Only files trashed more than DURATION ago (7d).",
        ),
    ] = None,
    json: Json = False,
) -> int:
    """Delete files in the trash for good (`janitor trash list` shows them first)."""
    from janitor.cli import render
    from janitor.storage.config import parse_duration
    from janitor.usecases.trash import empty_trash

    age = parse_duration(older_than, "--older-than") if older_than else None
    fs = _storage(logs_root)
    result = empty_trash(_trash_path(logs_root, fs), age, time.time(), fs)
    for e in result.errors:
        typer.echo(f"error: {render.shown_path(e.path)}: {e.message}", err=True)
    if json:
        doc = render.empty_json(result)
        render.dump_json(render.envelope("trash empty", not result.errors, doc))
    else:
        render.empty_text(result, older_than)
    return EXIT_FAILURE if result.errors else EXIT_OK


@app.command("extract-small")
@command
def extract_small(
    files: Annotated[
        list[str],
        typer.Argument(help="Big G_<step>.pth files, HF checkpoint-<step>/ folders, .ckpt files."),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Output file (one input) or folder.", show_default=False
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="applio, rvc, release (so-vits-svc/Bert-VITS2) or gpt-sovits (default: "
            "follows the run); ckpt or safetensors for Lightning.",
            show_default=False,
        ),
    ] = None,
    like: Annotated[
        str | None,
        typer.Option(
            "--like",
            help="rvc: savee (what training writes, default) or extract (the web UI's "
            "extraction: fixed config, --info text).",
            show_default=False,
        ),
    ] = None,
    info_text: Annotated[
        str | None,
        typer.Option("--info", help="rvc --like extract: the info text.", show_default=False),
    ] = None,
    half: Annotated[
        bool, typer.Option("--half", help="release: fp16, as compress_model.py -hf.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Model name (default: run folder name).", show_default=False)
    ] = None,
    author: Annotated[
        str | None, typer.Option(help="Author metadata (Applio).", show_default=False)
    ] = None,
    sr: Annotated[
        str | None,
        typer.Option(
            "--sr",
            metavar="HZ",
            show_default=False,
            help="Sample rate, when neither config.json nor the weights tell it.",
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="v1 or v2; must agree with the weights.", show_default=False)
    ] = None,
    f0: Annotated[
        bool | None,
        typer.Option(
            "--f0/--no-f0", help="Pitch guidance; must agree with the weights.", show_default=False
        ),
    ] = None,
    vocoder: Annotated[
        str | None,
        typer.Option(
            help="HiFi-GAN, MRF HiFi-GAN or RefineGAN; must agree with the weights.",
            show_default=False,
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            metavar="N", help="Step, for latest-only files (G_2333333).", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Leave an existing output alone (exit 0).")
    ] = False,
    json: Json = False,
) -> int:
    """Write the small inference model the trainer would write, from any big G checkpoint."""
    from janitor.cli import render
    from janitor.torchio.extract import Options, check_options, extract_one, whole_number
    from janitor.torchio.frameworks import extract_framework, is_framework_input

    opts = Options(
        output, fmt, name, author, whole_number(sr, "--sr"), version, f0, vocoder,
        whole_number(step, "--step"), force, skip_existing, like=like, half=half, info=info_text,
    )  # fmt: skip
    check_options(opts, len(files))  # every option refused here exits 2 before any file
    done, failed = [], []
    with render.progress(len(files) > 1 and not json) as advance:
        for path in files:  # one process, torch imported once, files one at a time
            try:
                framework = is_framework_input(path)  # HF checkpoint folder, Lightning .ckpt
                done.append((extract_framework if framework else extract_one)(path, opts))
                if not json:
                    render.extracted_text(done[-1])
            except JanitorError as exc:
                if len(files) == 1:
                    raise
                failed.append({"path": path, "message": str(exc)})
                typer.echo(f"janitor: {exc}", err=True)
            advance()
    if json:
        doc = {"extracted": [d.as_dict() for d in done], "errors": failed}
        render.dump_json(render.envelope("extract-small", not failed, doc))
    return EXIT_FAILURE if failed else EXIT_OK


@app.command()
@command
def info(files: Annotated[list[str], typer.Argument(help="Checkpoint files.")],
         json: Json = False) -> int:  # fmt: skip
    """Describe checkpoints: kind, epoch, step, detected format; every small-model field."""
    from janitor.cli import render
    from janitor.torchio.extract import info as do_info

    docs, failed = [], []
    for path in files:
        try:
            docs.append(do_info(path))
        except JanitorError as exc:
            if len(files) == 1:
                raise
            typer.echo(f"janitor: {exc}", err=True)
            failed.append((path, str(exc)))
    if json:  # always a list, also for one file
        render.dump_json(render.envelope("info", not failed, {"files": docs}, failed))
    else:
        for doc in docs:
            render.info_text(doc)
    return EXIT_FAILURE if failed else EXIT_OK


@app.command("log")
@command
def log(
    path: Annotated[str, typer.Argument(help="A logs root (every run) or a run folder.")] = ".",
    json: Json = False,
) -> int:
    """What janitor removed, trashed, restored: when, which file, why, by which rule."""
    from janitor.cli import render
    from janitor.usecases.inspect import journal_log

    fs = _storage(path)
    if not fs.is_dir(path):
        raise UsageError(f"{path}: not a folder (a logs root or a run folder)")
    journal, records = journal_log(path, fs)
    if json:
        render.dump_json(render.envelope("log", True, render.log_json(journal, records)))
    else:
        render.log_text(journal, records)
    return EXIT_OK


def main() -> None:
    try:
        app(prog_name="janitor")
    except SystemExit as exc:  # click's own usage errors exit 2 already
        sys.exit(exc.code)


if __name__ == "__main__":
    main()
