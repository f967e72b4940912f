"""The two ways a checkpoint set is built agree: ``CheckpointSet(...)`` (``__post_init__``
derives size, mtime and status from the files) and the scan's fast path ``file_set`` (which
fills the frozen instance's slots directly). Every field, for every mix of complete,
truncated and not-yet-read files, missing prefixes, latest-only files, bases and folder sets;
and both follow the written rules, not only each other."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from janitor.core.planners import FinalizePlanner, RulesPlanner, candidates
from janitor.core.profiles import APPLIO
from janitor.domain.checkpoints import NOT_CHECKED, CheckpointFile, CheckpointSet, Run, file_set
from janitor.domain.policy import Policy
from janitor.domain.profile import LATEST_BASE

PREFIXES = ("G", "D", "DUR", "WD")
FOLDER = "/logs/alice/"

# a file as the scan finds it: read and whole, read and cut short, or not read (lazy scan)
file_states = st.sampled_from(
    [(True, None), (False, "no end-of-central-directory record"), (False, NOT_CHECKED)]
)
mtimes = st.sampled_from([0.0, 1.0, 1_700_000_000.0, 1_700_000_000.5]) | st.floats(
    0, 2e9, allow_nan=False
)

keys = st.none() | st.binary(min_size=40, max_size=40)


@st.composite
def files_of(draw, number: int, prefixes: tuple[str, ...]) -> tuple[CheckpointFile, ...]:
    out = []
    for p in prefixes:
        complete, problem = draw(file_states)
        size, mtime, key = draw(st.integers(0, 2 * 10**9)), draw(mtimes), draw(keys)
        name = f"{p}_{number}.pth"
        out.append(CheckpointFile(FOLDER, name, p, number, size, mtime, complete, problem, key))
    return tuple(out)


@st.composite
def set_args(draw) -> dict:
    """Keyword arguments of a set of files, as the scan makes them."""
    kind = draw(st.sampled_from(["step", "latest-only", "base"]))
    number = {
        "step": draw(st.integers(1, 10**7)),
        "latest-only": draw(st.sampled_from([2333333, LATEST_BASE])),
        "base": 0,
    }[kind]
    used = draw(st.sets(st.sampled_from(PREFIXES), min_size=1).map(sorted))
    present = draw(st.sets(st.sampled_from(used), min_size=1 if kind != "base" else 0))
    order = tuple(p for p in PREFIXES if p in present)
    missing = () if kind == "base" else tuple(p for p in PREFIXES if p in used and p not in present)
    return {
        "number": number,
        "files": draw(files_of(number, order)),
        "missing": missing,
        "latest_only": kind == "latest-only",
        "base": kind == "base",
    }


def _fields(s: CheckpointSet) -> dict:
    return {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}


def _expected_status(files, missing, problem=None) -> str:
    """The rule as written: a truncated file or a set's own problem makes it incomplete;
    otherwise a file not read leaves it unchecked; otherwise a missing prefix, partial."""
    if problem or any(not f.complete and f.problem != NOT_CHECKED for f in files):
        return "incomplete"
    if any(not f.complete for f in files):
        return "unchecked"
    return "partial" if missing else "complete"


@settings(max_examples=400, deadline=None)
@given(args=set_args())
def test_file_set_builds_the_same_set_as_the_constructor(args):
    fast = file_set(**args)
    slow = CheckpointSet(**args)
    assert _fields(fast) == _fields(slow)
    assert fast == slow and hash(fast) == hash(slow)
    assert (fast.step, fast.name, fast.label) == (slow.step, slow.name, slow.label)
    files = args["files"]
    assert slow.size == sum(f.size for f in files)
    assert slow.mtime == max((f.mtime for f in files), default=0.0)
    assert slow.status == _expected_status(files, args["missing"])


@settings(max_examples=400, deadline=None)
@given(
    args=set_args(),
    problem=st.none() | st.just("not named by latest yet: being written, or left by a crash"),
    protect=st.lists(st.just("the target of last.ckpt"), max_size=1).map(tuple),
)
def test_a_fast_set_changed_by_replace_is_the_set_built_with_those_fields(args, problem, protect):
    """The scan's framework pass gives a fast set protections and a problem with
    ``dataclasses.replace``, which reads every init field back from the slots."""
    changed = dataclasses.replace(file_set(**args), protect=protect, problem=problem)
    built = CheckpointSet(**args, protect=protect, problem=problem)
    assert _fields(changed) == _fields(built)
    assert built.status == _expected_status(args["files"], args["missing"], problem)


@settings(max_examples=400, deadline=None)
@given(
    number=st.integers(1, 10**7),
    data=st.data(),
    problem=st.none() | st.just("trainer_state.json does not name this step yet"),
    folder_mtime=mtimes,
)
def test_a_folder_set_derives_its_fields_like_a_set_of_the_same_files(
    number, data, problem, folder_mtime
):
    """A folder set (HF checkpoint-<N>/, DeepSpeed global_step<N>/) is built by the
    constructor only; its files may be none (a folder that could not be read)."""
    prefixes = data.draw(st.lists(st.sampled_from(PREFIXES), max_size=4))
    files = data.draw(files_of(number, tuple(prefixes)))
    folder = f"{FOLDER}checkpoint-{number}"
    got = CheckpointSet(number, files, folder=folder, problem=problem, folder_mtime=folder_mtime)
    same_files = file_set(number, files)
    assert got.size == same_files.size
    assert got.mtime == max(same_files.mtime, folder_mtime)
    assert got.status == ("incomplete" if problem else same_files.status)
    assert got.status == _expected_status(files, (), problem)
    assert (got.name, got.step) == (f"checkpoint-{number}", number)


# ----------------------------------------------------------------- scan's "would free"


@st.composite
def runs(draw):
    """A run of sets with distinct numbers (steps, a latest-only set, a base), some pinned."""
    sets = {}
    for args in draw(st.lists(set_args(), max_size=12)):
        sets.setdefault(args["number"], CheckpointSet(**args))
    numbers = sorted(sets)
    selected = draw(st.none() | st.sets(st.sampled_from(numbers)) if numbers else st.none())
    run = Run(FOLDER.rstrip("/"), "alice", APPLIO, "test", tuple(sets[n] for n in numbers),
              selected=None if selected is None else frozenset(selected))  # fmt: skip
    pins = frozenset(draw(st.sets(st.sampled_from(numbers))) if numbers else ())
    return run, pins


@settings(max_examples=400, deadline=None)
@given(rp=runs(), now=st.floats(0, 3e9, allow_nan=False), verified=st.booleans(),
       only=st.none() | st.sets(st.integers(0, 10**7), max_size=3),
       keep_last=st.none() | st.integers(0, 3))  # fmt: skip
def test_what_scan_says_each_planner_frees_is_what_its_plan_frees(rp, now, verified, only,
                                                                    keep_last):  # fmt: skip
    """``frees`` (scan's summary, computed without per-set decisions) equals the plan's
    ``expected_freed``, for the rules and for finalize (the sets named, ``only``, pins)."""
    run, pins = rp
    only = None if only is None else frozenset(only) | frozenset(s.number for s in run.sets[:1])
    planners = (
        RulesPlanner(Policy(keep_last=keep_last), pins=pins),
        FinalizePlanner((), verified=verified, pins=pins, only=only),
    )
    shared = candidates(run, pins, None, now)  # what scan's summary hands both planners
    for planner in planners:
        freed = planner.plan(run, now).expected_freed
        assert planner.frees(run, now) == freed == planner.frees(run, now, shared), planner
