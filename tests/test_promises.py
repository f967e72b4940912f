"""The documented promises (README.md, docs/rules.md, docs/configuration.md) as property tests
over the real command line and config files.

Each test draws a world with hypothesis: a logs root with one to three runs (complete G+D
sets, partial sets, truncated and zero-byte files, a latest-only ``G_2333333.pth``, pretrained
``G_0``/``D_0`` bases, small models, configs, lookalike names, symlinks named like
checkpoints, files outside any run), ``janitor.toml`` files at the root and in runs, pins made
with ``janitor pin``, and a combination of prune's flags. It then runs ``janitor prune -n
--json`` and ``janitor prune --json`` in-process (the real scan, config, plan and executor)
and checks one promise against the files on disk. The expected answers are worked out here
from what was written, not from janitor's own data structures.

Ages of saves lie on a grid of 61 minutes plus 7 s: out-of-order saves are always more than
an hour apart (janitor's staleness slack) and no age ever ties with a duration given in whole
minutes, so the dry run and the real run, a moment later, see the same world.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import fake_ckpt, truncate

SCENARIO = "16. README promises over the real CLI and config"
PROMISE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

GRID = 3660  # seconds between possible save times: > janitor's one-hour staleness slack
SKEW = 7  # ages are never whole minutes, so never equal to a threshold like "90m"
LATEST = 2333333  # the latest-only constant of Applio, RVC and unknown layouts
UNIT = {"m": 60, "h": 3600, "d": 86400}

# What a set is on disk: which files exist and which of them are cut short.
SET_FILES = {
    "pair": ({"G", "D"}, set()),
    "g_only": ({"G"}, set()),  # the D was deleted by hand: partial
    "d_only": ({"D"}, set()),
    "g_trunc": ({"G", "D"}, {"G"}),  # a crash or a save in progress
    "d_trunc": ({"G", "D"}, {"D"}),
    "g_empty": ({"G", "D"}, {"G"}),  # zero bytes
}
LOOKALIKES = (
    "G_best.pth", "G_1000_backup.pth", "G_-1.pth", "G_1e5.pth", "G_100.PTH", "G_0100.pth",
    "D_best.pth", "g_200.pth",
)  # fmt: skip
EXTRAS = (
    "config", "small", "link_out", "link_ckpt_out", "link_in", "hidden", "datadir", "lightning",
    *LOOKALIKES,
)  # fmt: skip


# ----------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class SetSpec:
    number: int
    state: str  # a SET_FILES key
    slot: int  # age = slot * GRID + SKEW
    payload: int
    latest_only: bool = False
    base: bool = False

    @property
    def age(self) -> int:
        return self.slot * GRID + SKEW

    @property
    def present(self) -> set[str]:
        return SET_FILES[self.state][0]

    @property
    def broken(self) -> set[str]:
        return SET_FILES[self.state][1]


@dataclass(frozen=True)
class RunSpec:
    name: str
    kind: str  # applio | rvc | generic | sovits
    sets: tuple[SetSpec, ...]
    extras: frozenset[str]
    toml: dict | None  # the run's own janitor.toml
    cli_pins: tuple[int, ...]  # `janitor pin RUN ...` before the prune
    metric: tuple[tuple[int, int], ...] = ()  # (step, value) logged to TensorBoard


@dataclass(frozen=True)
class World:
    runs: tuple[RunSpec, ...]
    root_toml: dict | None
    flags: dict  # option -> value (None: a switch)
    by_run_folder: bool  # name the run folders on the command line instead of the root

    @property
    def trash(self) -> bool:
        return "--trash" in self.flags

    @property
    def fix_resume(self) -> bool:
        return "--fix-resume" in self.flags

    @property
    def older_than(self) -> int | None:
        return seconds(self.flags["--older-than"]) if "--older-than" in self.flags else None

    def args(self) -> list[str]:
        out: list[str] = []
        for option, value in self.flags.items():
            out += [option] if value is None else [option, str(value)]
        return out

    def pins(self, run: RunSpec) -> set[int]:
        """Every pin made for this run: `janitor pin`, ``pins`` in the run's janitor.toml and
        in its [runs.NAME] table of the root's janitor.toml."""
        own = (run.toml or {}).get("pins", [])
        root = ((self.root_toml or {}).get("runs") or {}).get(run.name, {}).get("pins", [])
        return set(run.cli_pins) | set(own) | set(root)


def seconds(duration: str) -> int:
    return int(duration[:-1]) * UNIT[duration[-1]]


durations = st.builds("{}{}".format, st.integers(1, 72), st.sampled_from("mhd"))
# Values that keep little are drawn often: they are where a protection has to hold alone.
keep_last = st.sampled_from([0, 0, 1, 2, 3])
# A size of 0 is refused (max-size must be above zero): the smallest budget is 1 KB.
sizes = st.sampled_from(["1KB", "1MB"]) | st.builds(
    "{}{}".format, st.integers(1, 40), st.sampled_from(["KB", "KiB"])
)
keep_every = st.sampled_from([1, 100, 1000, 10**6]) | st.integers(1, 3000)
METRIC = "loss/g/total"
modes = st.sampled_from(["min", "max"])


@st.composite
def rule_tables(draw) -> dict:
    """A [prune] or [runs.NAME] table of janitor.toml."""
    table = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "keep-last": keep_last,
                "keep-every": keep_every,
                "keep-within": durations,
                "keep-best": st.integers(0, 3),
                "max-size": sizes,
            },
        )
    )
    if "keep-best" in table:
        table["metric"] = METRIC
        if draw(st.booleans()):
            table["mode"] = draw(modes)
    return table


@st.composite
def run_specs(draw, name: str, kind: str, rules: bool) -> RunSpec:
    steps = sorted(draw(st.lists(st.integers(1, 60), min_size=1, max_size=7, unique=True)))
    if draw(st.booleans()):  # saved in order, the newest most recently
        newest, gap = draw(st.integers(0, 3)), draw(st.integers(1, 12))
        slots = [newest + (len(steps) - 1 - i) * gap for i in range(len(steps))]
    else:  # leftovers of an earlier run, Drive copies: any order
        slots = draw(st.lists(st.integers(0, 300), min_size=len(steps), max_size=len(steps)))
    states = st.sampled_from(["pair"] * 4 + [s for s in SET_FILES if s != "pair"])
    payloads = st.sampled_from([64, 400, 1500])
    sets = [
        SetSpec(step * 100, draw(states), slot, draw(payloads))
        for step, slot in zip(steps, slots, strict=True)
    ]
    if kind != "sovits" and draw(st.integers(0, 2)) == 2:  # 1 in 3; shrinks to none
        state = draw(st.sampled_from(["pair", "pair", "g_only", "g_trunc"]))
        slot = draw(st.integers(0, 300))
        sets.append(SetSpec(LATEST, state, slot, draw(payloads), latest_only=True))
    if draw(st.integers(0, 2)) == 2:
        sets.insert(0, SetSpec(0, "pair", 400, 64, base=True))
    numbers = [s.number for s in sets if not s.base]
    pin_steps = st.sampled_from(numbers) | st.integers(1, 6000)
    toml = None
    if draw(st.booleans()):
        toml = {}
        if draw(st.booleans()):
            toml["pins"] = sorted(draw(st.sets(pin_steps, max_size=2)))
        if rules and draw(st.booleans()):
            toml["prune"] = draw(rule_tables())
    cli_pins = tuple(sorted(draw(st.sets(pin_steps, max_size=2)))) if draw(st.booleans()) else ()
    extras = frozenset(draw(st.sets(st.sampled_from(EXTRAS), max_size=6)))
    logged = st.sampled_from(numbers) | st.integers(1, 60).map(lambda k: k * 100)
    metric = draw(st.dictionaries(logged.filter(lambda n: n != LATEST), st.integers(0, 9)))
    return RunSpec(name, kind, tuple(sets), extras, toml, cli_pins, tuple(sorted(metric.items())))


@st.composite
def worlds(draw, *, rules: bool = True, trash: bool | None = None, fix_resume: bool | None = None,
           keep_last_only: bool = False) -> World:  # fmt: skip
    """A logs root and a prune command line. ``rules=False``: config files hold pins only;
    ``keep_last_only``: the command line's one rule is --keep-last N."""
    kinds = draw(
        st.lists(
            st.sampled_from(["applio", "rvc", "generic", "sovits"]), min_size=1, max_size=3
        ).filter(lambda ks: ks.count("sovits") <= 1)
    )
    names = iter(["alice", "bob", "carol"])
    runs = tuple(
        draw(run_specs("44k" if kind == "sovits" else next(names), kind, rules)) for kind in kinds
    )
    root_toml = None
    if draw(st.booleans()):
        root_toml = {}
        if rules and draw(st.booleans()):
            root_toml["prune"] = draw(rule_tables())
        for run in runs:
            if draw(st.booleans()):
                table = draw(rule_tables()) if rules else {}
                numbers = [s.number for s in run.sets if not s.base]
                pins = draw(st.sets(st.sampled_from(numbers), max_size=2))
                if pins:
                    table["pins"] = sorted(pins)
                root_toml.setdefault("runs", {})[run.name] = table
    if keep_last_only:
        flags = {"--keep-last": draw(st.integers(1, 3))}
    else:
        flags = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "--keep-last": keep_last,
                    "--keep-every": keep_every,
                    "--keep-within": durations,
                    "--max-size": sizes,
                    "--older-than": durations,
                },
            )
        )
        if "--older-than" in flags:
            flags = {"--remove-incomplete": None, **flags}
        if draw(st.booleans()):
            flags.update({"--keep-best": draw(st.integers(0, 3)), "--metric": METRIC})
            if draw(st.booleans()):
                flags["--mode"] = draw(modes)
        if fix_resume if fix_resume is not None else draw(st.booleans()):
            flags["--fix-resume"] = None
    if trash if trash is not None else draw(st.booleans()):
        flags["--trash"] = None
    return World(runs, root_toml, flags, draw(st.booleans()))


# ----------------------------------------------------------------------------- on disk


def toml_text(doc: dict) -> str:
    """A small TOML writer for the shapes used here (top-level values, then tables)."""

    def value(v) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v) if isinstance(v, str) else repr(v)

    def table(name: str, d: dict) -> list[str]:
        lines = [f"[{name}]"] if name else []
        lines += [f"{k} = {value(v)}" for k, v in d.items() if not isinstance(v, dict)]
        for k, v in d.items():
            if isinstance(v, dict):
                lines += table(f"{name}.{json.dumps(k)}" if name else k, v)
        return lines

    return "\n".join(table("", doc)) + "\n"


@dataclass
class SetTruth:
    number: int
    files: dict[str, str]  # prefix -> path relative to the world's base folder
    broken: set[str]
    age: int
    latest_only: bool
    base: bool
    status: str = "complete"  # complete | partial | incomplete, as docs/trainers.md defines them
    stale: bool = False  # older than a complete lower-numbered save (docs/safety.md, Scan warnings)


@dataclass
class RunTruth:
    spec: RunSpec
    rel: str
    sets: dict[int, SetTruth]
    pins: set[int]

    def numbered(self) -> list[SetTruth]:
        return [s for s in self.sets.values() if not s.base and not s.latest_only]

    def candidates(self) -> list[SetTruth]:
        return [s for s in self.sets.values() if not s.base]


def build_world(world: World, base: Path, now: float) -> dict[str, RunTruth]:
    logs = base / "logs"
    outside = base / "outside"
    outside.mkdir(parents=True)
    (outside / "target.pth").write_bytes(os.urandom(300))
    fake_ckpt(outside / "G_100.pth", payload=64)
    fake_ckpt(outside / "D_100.pth", payload=64)
    fake_ckpt(base / "assets" / "weights" / "alice_e10_s100.pth", payload=64)
    logs.mkdir()
    (logs / "notes.txt").write_text("not a checkpoint\n")
    (logs / "linked").symlink_to(outside, target_is_directory=True)  # a run, if followed
    if world.root_toml is not None:
        (logs / "janitor.toml").write_text(toml_text(world.root_toml))
    truths = {}
    for spec in world.runs:
        run = logs / spec.name
        run.mkdir()
        sets = {}
        for s in spec.sets:
            files = {}
            for prefix in sorted(s.present):
                path = fake_ckpt(run / f"{prefix}_{s.number}.pth", payload=s.payload)
                if prefix in s.broken:
                    truncate(path, 0.0 if s.state == "g_empty" else 0.5)
                mtime = now - s.age
                os.utime(path, (mtime, mtime))
                files[prefix] = str(path.relative_to(base))
            sets[s.number] = SetTruth(s.number, files, set(s.broken), s.age, s.latest_only, s.base)
        _extras(spec, run, outside)
        if spec.toml is not None:
            (run / "janitor.toml").write_text(toml_text(spec.toml))
        truths[spec.name] = RunTruth(spec, str(run.relative_to(base)), sets, world.pins(spec))
        _judge(truths[spec.name])
    return truths


def _extras(spec: RunSpec, run: Path, outside: Path) -> None:
    if spec.metric:
        write_scalars(run, spec.metric)
    if spec.kind == "applio":
        (run / "model_info.json").write_text('{"total_dataset_duration": 61.0}')
    elif spec.kind == "rvc":
        (run / "0_gt_wavs").mkdir()
        (run / "0_gt_wavs" / "0_0.wav").write_bytes(os.urandom(100))
    x = spec.extras
    if "config" in x:
        (run / "config.json").write_text(json.dumps({"seed": os.urandom(4).hex()}))
    if "small" in x:
        fake_ckpt(run / f"{spec.name}_10e_100s.pth", payload=64)
        fake_ckpt(run / f"{spec.name}_e10_s100.pth", payload=64)
    if "link_out" in x:
        (run / "G_99999.pth").symlink_to(outside / "target.pth")
    if "link_ckpt_out" in x:
        (run / "D_88888.pth").symlink_to(os.path.join("..", "..", "outside", "G_100.pth"))
    if "link_in" in x:
        (run / "G_77777.pth").symlink_to("config.json")  # dangling unless config.json exists
    if "hidden" in x:
        fake_ckpt(run / ".old" / "G_1.pth", payload=64)
        fake_ckpt(run / ".old" / "D_1.pth", payload=64)
    if "datadir" in x:
        fake_ckpt(run / "f0" / "G_5.pth", payload=64)
    if "lightning" in x:
        fake_ckpt(run / "epoch=1-step=100.ckpt", payload=64)
    for name in LOOKALIKES:
        if name in x:
            fake_ckpt(run / name, payload=64)


def write_scalars(run: Path, points) -> None:
    """A TensorBoard event file with METRIC at the given steps (tensorboard's own writer)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(run))
    for step, value in points:
        summary = Summary(value=[Summary.Value(tag=METRIC, simple_value=float(value))])
        writer.add_event(Event(wall_time=1e9 + step, step=step, summary=summary))
    writer.close()


def _judge(run: RunTruth) -> None:
    """Status and staleness as docs/trainers.md and docs/safety.md define them, from what was
    written."""
    used = set().union(*(s.files.keys() for s in run.candidates()))
    for s in run.candidates():
        if s.broken:
            s.status = "incomplete"
        elif used - s.files.keys():
            s.status = "partial"
    complete = [s for s in run.candidates() if s.status == "complete"]
    for s in run.candidates():
        s.stale = any(c.number < s.number and c.age < s.age for c in complete)


def snapshot(base: Path) -> dict[str, tuple]:
    """Every folder, file and symlink under ``base`` except janitor's own state folder:
    content hash and mtime of files, target of links."""
    out: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(base):
        rel_folder = os.path.relpath(folder, base)
        if rel_folder == "logs":
            dirs[:] = [d for d in dirs if d != ".janitor"]
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.normpath(os.path.join(rel_folder, name))
            st_ = os.lstat(path)
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = ("dir",)
            else:
                digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()
                out[rel] = ("file", digest, st_.st_size, st_.st_mtime_ns)
    return out


def trash_contents(base: Path) -> set[tuple[str, str]]:
    """(original name, content hash) of every file in janitor's trash (a name that was taken
    gets a ``.N`` suffix there)."""
    trash = base / "logs" / ".janitor" / "trash"
    return {
        (re.sub(r"(\.pth)\.[0-9]+$", r"\1", p.name), hashlib.sha1(p.read_bytes()).hexdigest())
        for p in trash.rglob("*")
        if p.is_file()
    }


@dataclass
class Outcome:
    world: World
    base: Path
    runs: dict[str, RunTruth]
    before: dict[str, tuple]
    after: dict[str, tuple] = field(default_factory=dict)
    trashed: set[tuple[str, str]] = field(default_factory=set)  # see trash_contents
    dry: dict = field(default_factory=dict)
    real: dict = field(default_factory=dict)
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""

    def in_place(self, rel: str) -> bool:
        return self.after.get(rel) == self.before[rel]

    def in_trash(self, rel: str) -> bool:
        return (os.path.basename(rel), self.before[rel][1]) in self.trashed

    def set_in_place(self, s: SetTruth) -> bool:
        return all(self.in_place(f) for f in s.files.values())

    def set_in_trash(self, s: SetTruth) -> bool:
        return all(not self.in_place(f) and self.in_trash(f) for f in s.files.values())

    def gone(self) -> set[str]:
        return {rel for rel in self.before if not self.in_place(rel)}

    def abs(self, rel: str) -> str:
        return str(self.base / rel)


def invoke(cli, *args):
    result = cli(*args)
    return result.exit_code, result.stdout, result.stderr


@contextlib.contextmanager
def pruned(cli, world: World, *, dry_run_first: bool = True, expect: int = 0):
    """Build ``world``, pin with `janitor pin`, run `prune -n --json` then `prune --json`."""
    base = Path(tempfile.mkdtemp(prefix="janitor-promise-")).resolve()
    try:
        now = time.time()
        runs = build_world(world, base, now)
        logs = base / "logs"
        for run in runs.values():
            if run.spec.cli_pins:
                code, out, err = invoke(cli, "pin", base / run.rel, *run.spec.cli_pins)
                assert code == 0, (out, err)
        o = Outcome(world, base, runs, snapshot(base))
        targets = [base / r.rel for r in runs.values()] if world.by_run_folder else [logs]
        if dry_run_first:
            code, out, err = invoke(cli, "prune", *targets, *world.args(), "-n", "--json")
            assert code == expect, (out, err)
            if code == 0:
                o.dry = json.loads(out)
            assert snapshot(base) == o.before, "the dry run changed files"
            assert not (logs / ".janitor" / "trash").exists()
        o.exit_code, o.stdout, o.stderr = invoke(cli, "prune", *targets, *world.args(), "--json")
        assert o.exit_code == expect, (o.stdout, o.stderr)
        if o.exit_code == 0:
            o.real = json.loads(o.stdout)
        o.after = snapshot(base)
        o.trashed = trash_contents(base)
        _events(o)
        yield o
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _events(o: Outcome) -> None:
    """What the example exercised (pytest --hypothesis-show-statistics)."""
    sets = [s for r in o.runs.values() for s in r.candidates()]
    gone = o.gone()
    event(f"exit {o.exit_code}")
    event("some files removed" if gone else "nothing removed")
    for status in ("partial", "incomplete"):
        if any(s.status == status for s in sets):
            event(f"has {status} sets")
    if any(s.stale for s in sets):
        event("has stale sets" + (" and --fix-resume" if o.world.fix_resume else ""))
    if any(rel in gone for s in sets if s.broken for rel in s.files.values()):
        event("a truncated set removed")
    if o.world.fix_resume and o.trashed and not o.world.trash:
        event("--fix-resume moved files")
    if any(n in r.sets for r in o.runs.values() for n in r.pins):
        event("an existing step pinned")


def planned_removals(doc: dict) -> set[str]:
    """Files of every set a prune --json document does not keep: the prune plan's, and the
    moves of --fix-resume (listed apart, under "fix_resume")."""
    return {
        f["path"]
        for run in [*doc["runs"], *doc.get("fix_resume", [])]
        for s in run["sets"]
        if s["action"] != "keep"
        for f in s["files"]
    }


def trainer_pick(folder: str, names: set[str], prefix: str) -> frozenset[str]:
    """The trainers' resume rule (Applio, RVC, so-vits-svc) over the entries ``names`` of
    ``folder``: among ``<prefix>_*.pth``, the path whose digits, all concatenated, form the
    largest number. Ties (``G_1000.pth`` and ``G_1000_backup.pth``) depend on listing order,
    so every tied name is returned."""
    key = {
        n: int("".join(c for c in os.path.join(folder, n) if c.isdigit()) or "0")
        for n in names
        if fnmatch.fnmatchcase(n, f"{prefix}_*.pth")
    }
    best = max(key.values(), default=None)
    return frozenset(n for n, k in key.items() if k == best)


# ----------------------------------------------------------------------------- the promises


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(world=worlds())
def test_newest_complete_set_is_never_removed(cli, cases, world):
    """1. The newest complete set, and the most recently written complete set, of every run
    stay, whatever the flags and config. --fix-resume may only move a stale newest set to the
    trash, and then the newest complete set of what is left stays."""
    cases()
    with pruned(cli, world) as o:
        for run in o.runs.values():
            complete = [s for s in run.candidates() if s.status == "complete"]
            if not complete:
                continue
            latest_written = min(complete, key=lambda s: (s.age, -s.number))
            assert o.set_in_place(latest_written), (run.rel, latest_written.number)
            numbered = [s for s in complete if not s.latest_only]
            if not numbered:
                continue
            newest = max(numbered, key=lambda s: s.number)
            if not o.set_in_place(newest):
                moved = world.fix_resume and newest.stale and o.set_in_trash(newest)
                assert moved, (run.rel, newest.number, world.flags)
            if world.fix_resume and not world.trash:  # the trash holds what --fix-resume moved
                left = [s for s in numbered if not o.set_in_trash(s)]
                top = max(left, key=lambda s: s.number, default=None)
                assert top is not None and o.set_in_place(top), (run.rel, top, world.flags)


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(world=worlds())
def test_truncated_files_are_never_removed_nor_newest(cli, cases, world):
    """2. A truncated or being-written file is never removed (unless --remove-incomplete
    --older-than and its set is older than that, or --fix-resume moved a stale one to the
    trash) and never counted as the newest complete set."""
    cases()
    with pruned(cli, world) as o:
        for run in o.runs.values():
            for s in run.candidates():
                for prefix in s.broken:
                    rel = s.files[prefix]
                    if o.in_place(rel):
                        continue
                    allowed = world.older_than is not None and s.age > world.older_than
                    moved = world.fix_resume and s.stale and o.in_trash(rel)
                    assert allowed or moved, (rel, s.age, world.flags)
        for doc in (o.dry, o.real):
            for run_doc in doc["runs"]:
                run = next(r for r in o.runs.values() if o.abs(r.rel) == run_doc["path"])
                for s in run_doc["sets"]:
                    if "newest complete" in s["reasons"]:
                        assert run.sets[s["number"]].status == "complete", (run.rel, s)
        code, out, err = invoke(cli, "scan", o.base / "logs", "--json")
        assert code == 0, err
        for run_doc in json.loads(out)["runs"]:
            run = next(r for r in o.runs.values() if o.abs(r.rel) == run_doc["path"])
            number = run_doc["newest_complete_number"]
            if run_doc["trainer"] == "lightning":  # every VITS file gone: the run now reads
                continue  # as the Lightning run its epoch=1-step=100.ckpt extra makes
            if number is not None:  # after the prune: a G alone may be whole once no D is
                # left in the run (the run no longer keeps D files), but never a broken file
                assert not run.sets[number].broken, (run.rel, number)


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(world=worlds())
def test_files_of_a_set_go_together(cli, cases, world):
    """3. After a prune, every set is either all there or all gone (files already missing
    before do not count); without --trash or --fix-resume nothing lands in the trash."""
    cases()
    with pruned(cli, world) as o:
        for run in o.runs.values():
            for s in run.sets.values():
                there = {p for p, rel in s.files.items() if o.in_place(rel)}
                assert there in (set(), set(s.files)), (run.rel, s.number, there)
        if not world.trash and not world.fix_resume:
            assert not o.trashed


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(world=worlds())
def test_only_checkpoints_of_runs_are_ever_touched(cli, cases, world):
    """4. Every file that is not a checkpoint of a run (configs, small models, lookalike names,
    symlinks and their targets, hidden and data folders, files outside the runs) is
    byte-identical afterwards; what stays in place is unchanged; nothing new appears."""
    cases()
    with pruned(cli, world) as o:
        members = {
            rel for run in o.runs.values() for s in run.sets.values() for rel in s.files.values()
        }
        for rel in o.gone():
            assert rel in members and rel not in o.after, rel
        assert set(o.after) <= set(o.before), set(o.after) - set(o.before)


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(world=worlds())
def test_pinned_steps_are_never_removed(cli, cases, world):
    """5. Steps pinned with `janitor pin`, in the run's janitor.toml or under [runs.NAME] in the
    root janitor.toml stay, whatever the flags."""
    cases()
    with pruned(cli, world) as o:
        for run in o.runs.values():
            for number in run.pins:
                if number in run.sets:
                    assert o.set_in_place(run.sets[number]), (run.rel, number, world.flags)


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(world=worlds())
def test_latest_only_file_and_pretrained_bases_are_never_removed(cli, cases, world):
    """6. G_2333333.pth (and its D) and G_0/D_0 stay; only --fix-resume may move a stale
    latest-only file, and only to the trash."""
    cases()
    with pruned(cli, world) as o:
        for run in o.runs.values():
            for s in run.sets.values():
                if s.base:
                    assert o.set_in_place(s), (run.rel, s.number)
                elif s.latest_only and not o.set_in_place(s):
                    assert world.fix_resume and s.stale and o.set_in_trash(s), run.rel


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(world=worlds())
def test_dry_run_shows_exactly_what_the_real_run_does(cli, cases, world):
    """7. The files `prune -n --json` would remove (or move) are exactly the files the real
    prune then takes away, with and without --fix-resume and --trash; the dry run changes
    nothing (checked in ``pruned``); what the real plan keeps is still in place."""
    cases()
    with pruned(cli, world) as o:
        assert planned_removals(o.dry) == {o.abs(rel) for rel in o.gone()}, world.flags
        for run_doc in o.real["runs"]:
            for s in run_doc["sets"]:
                if s["action"] == "keep":
                    for f in s["files"]:
                        rel = os.path.relpath(f["path"], o.base)
                        assert o.in_place(rel), rel


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(world=worlds())
def test_the_trainer_resumes_from_the_same_step(cli, cases, world):
    """8. The trainers' own rule picks the same G and D after any prune as before, when the
    picked file's set was complete (or no --remove-incomplete was given); with --fix-resume, a
    stale pick is replaced by one that is not stale (unless that stale set is pinned)."""
    cases()
    with pruned(cli, world) as o:
        for run in o.runs.values():
            owner = {
                os.path.basename(rel): s for s in run.sets.values() for rel in s.files.values()
            }
            folder = str(o.base / run.rel)
            before = {os.path.basename(r) for r in o.before if os.path.dirname(r) == run.rel}
            after = {os.path.basename(r) for r in o.after if os.path.dirname(r) == run.rel}
            for prefix in ("G", "D"):
                picked = trainer_pick(folder, before, prefix)
                picked_after = trainer_pick(folder, after, prefix)
                sets = [owner[n] for n in picked if n in owner]
                if world.fix_resume and any(s.stale for s in sets):
                    stale_after = [
                        n
                        for n in picked_after
                        if n in owner and owner[n].stale and owner[n].number not in run.pins
                    ]  # a pinned stale set stays: pins win
                    assert not stale_after, (run.rel, prefix, picked, picked_after)
                elif world.older_than is not None and any(s.status != "complete" for s in sets):
                    continue  # a crash leftover the user asked to go
                else:
                    assert picked_after == picked, (run.rel, prefix, world.flags)


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(world=worlds(trash=False, fix_resume=False))
def test_expected_freed_is_what_the_real_run_frees(cli, cases, world):
    """9. expected_freed of the dry run is the number of bytes the real prune frees on disk
    (and reports as freed)."""
    cases()
    with pruned(cli, world) as o:
        freed = sum(o.before[rel][2] for rel in o.gone())
        assert o.dry["expected_freed"] == freed == o.real["freed"], world.flags


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(world=worlds(rules=False, keep_last_only=True))
def test_partial_sets_count_for_keep_last(cli, cases, world):
    """10. With --keep-last N as the only rule, the N newest sets that are complete or partial
    (a D deleted by hand) are kept, like complete ones. A latest-only set counts as the newest,
    as janitor orders it (docs/rules.md is silent on whether it takes one of the N)."""
    cases()
    n = world.flags["--keep-last"]
    with pruned(cli, world) as o:
        for run in o.runs.values():
            eligible = [s for s in run.candidates() if s.status in ("complete", "partial")]
            for s in sorted(eligible, key=lambda s: s.number)[-n:]:
                assert o.set_in_place(s), (run.rel, s.number, s.status, n)


BARE_SOURCES = ("--keep-within", "--older-than", "root [prune]", "root [runs]", "run [prune]")


@st.composite
def bare_duration_worlds(draw):
    """A world whose command line or one janitor.toml gives a duration without a unit."""
    world = draw(worlds())
    # `janitor pin` reads janitor.toml too and refuses a broken one (strict config): no pins
    world = replace(world, runs=tuple(replace(r, cli_pins=()) for r in world.runs))
    source = draw(st.sampled_from(BARE_SOURCES))
    number = draw(st.integers(1, 1000))
    if source.startswith("--"):
        bare = draw(st.sampled_from([str(number), f"{number}.5"]))
        if source == "--older-than":
            flags = {**world.flags, "--remove-incomplete": None, "--older-than": bare}
        else:
            flags = {**world.flags, "--keep-within": bare}
        return replace(world, flags=flags), source
    bare = draw(st.sampled_from([number, number + 0.5, str(number)]))
    run = draw(st.sampled_from(world.runs))
    if source == "run [prune]":
        toml = dict(run.toml or {})
        toml["prune"] = {**toml.get("prune", {}), "keep-within": bare}
        runs = tuple(replace(r, toml=toml) if r is run else r for r in world.runs)
        return replace(world, runs=runs), source
    root = {k: dict(v) for k, v in (world.root_toml or {}).items()}
    if source == "root [prune]":
        root["prune"] = {**root.get("prune", {}), "keep-within": bare}
    else:
        runs_table = {k: dict(v) for k, v in root.get("runs", {}).items()}
        runs_table[run.name] = {**runs_table.get(run.name, {}), "keep-within": bare}
        root["runs"] = runs_table
    return replace(world, root_toml=root), source


@pytest.mark.safety(SCENARIO)
@PROMISE
@given(case=bare_duration_worlds())
def test_durations_without_a_unit_are_refused(cli, cases, case):
    """11. A bare number for --keep-within, --older-than or keep-within in any janitor.toml is
    refused: exit 2, one line naming the flag or the file and key, nothing removed or moved."""
    cases()
    world, source = case
    with pruned(cli, world, dry_run_first=False, expect=2) as o:
        assert o.after == o.before
        assert not o.trashed
        doc = json.loads(o.stdout)  # --json: one envelope, ok false, the same one line
        assert doc["ok"] is False and len(doc["errors"]) == 1, doc
        lines = o.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("janitor: "), o.stderr
        if source.startswith("--"):
            assert source in lines[0], lines[0]
        else:
            assert "janitor.toml" in lines[0] and "keep-within" in lines[0], lines[0]
        assert doc["errors"][0]["message"] in lines[0]
