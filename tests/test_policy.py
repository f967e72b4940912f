"""The retention function: table cases and invariants over thousands of random runs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janitor.core.policy import (
    BASE,
    IN_FLIGHT,
    INCOMPLETE,
    LATEST_ONLY,
    LATEST_WRITTEN,
    NEWEST_COMPLETE,
    NEWEST_NUMBERED,
    PINNED,
    PROTECTIONS,
    Candidate,
    Policy,
    apply,
)
from janitor.domain.errors import UsageError

LATEST = 2333333
NOW = 1_800_000_000.0
HOUR = 3600.0


def run(*numbers: int, status=None, size=10, pinned=(), metric=None, mtime=None, missing=None):
    """Candidates saved an hour apart, in step order."""
    status = status or {}
    metric = metric or {}
    mtime = mtime or {}
    missing = missing or {}
    return [
        Candidate(
            number=n,
            status=status.get(n, "complete"),
            mtime=mtime.get(n, NOW - (len(numbers) - i) * HOUR),
            size=size,
            latest_only=n == LATEST,
            base=n == 0,
            pinned=n in pinned,
            metric=metric.get(n),
            **({"missing": missing[n]} if n in missing else {}),
        )
        for i, n in enumerate(numbers)
    ]


def test_default_is_keep_last_one():
    out = apply(run(100, 200, 300), Policy(), NOW)
    assert out.keep == (300,)
    assert out.remove == (100, 200)
    assert out.reasons[300] == (NEWEST_COMPLETE, "last 1")
    assert out.reasons[100] == ("kept by no rule",)
    assert out.expected_freed == 20


def test_keep_last_counts_only_complete_sets():
    cands = run(100, 200, 300, 400, status={300: "incomplete", 400: "incomplete"})
    out = apply(cands, Policy(keep_last=2), NOW)
    assert out.keep == (100, 200, 300, 400)
    assert INCOMPLETE in out.reasons[400] and IN_FLIGHT in out.reasons[400]
    assert out.reasons[200] == (NEWEST_COMPLETE, "last 2")
    assert out.reasons[100] == ("last 2",)


def test_keep_every_keeps_newest_in_each_bucket():
    cands = run(*range(100, 1200, 100))
    out = apply(cands, Policy(keep_every=500, keep_last=1), NOW)
    # buckets end at multiples: (0,500]: 500; (500,1000]: 1000; (1000,1500]: 1100 (newest so far)
    assert out.keep == (500, 1000, 1100)
    assert "every 500 steps" in out.reasons[500]


def test_keep_every_buckets_end_at_the_milestones():
    # saves every 1000 steps: --keep-every 5000 means steps 5000, 10000, 15000
    out = apply(run(*range(1000, 16000, 1000)), Policy(keep_every=5000), NOW)
    assert out.keep == (5000, 10000, 15000)
    out = apply(run(*range(1000, 13000, 1000)), Policy(keep_every=5000), NOW)
    assert out.keep == (5000, 10000, 12000)  # 12000: the newest of the bucket still filling
    # saves that miss the multiple: the newest before it stands for the milestone
    out = apply(run(1500, 4500, 5500, 9500, 10500), Policy(keep_every=5000), NOW)
    assert out.keep == (4500, 9500, 10500)


def test_keep_within_is_measured_from_the_newest_save_not_now():
    cands = run(100, 200, 300, 400)  # an hour apart, newest an hour before NOW
    out = apply(cands, Policy(keep_within=2 * HOUR + 1), NOW + 1e6)
    assert out.keep == (200, 300, 400)
    assert out.reasons[200] == ("within 2 hours and 1 second of the newest save",)


def test_keep_best_by_metric_min_and_max():
    metric = {100: 5.0, 200: 1.0, 300: 3.0, 400: 4.0}
    out = apply(run(100, 200, 300, 400, metric=metric), Policy(keep_best=1, metric="m"), NOW)
    assert out.keep == (200, 400)
    assert out.reasons[200] == ("best 1 by m (1)",)
    out = apply(
        run(100, 200, 300, 400, metric=metric),
        Policy(keep_best=1, metric="m", mode="max"),
        NOW,
    )
    assert out.keep == (100, 400)


def test_pins_latest_only_and_bases_are_protected():
    cands = run(0, 100, 200, 300, LATEST, pinned={100})
    out = apply(cands, Policy(keep_last=1), NOW)
    assert out.reasons[0] == (BASE,)
    assert out.reasons[100] == (PINNED,)
    # each kept set its own reason: no two sets are both "newest complete"
    assert out.reasons[LATEST] == (LATEST_ONLY, "last 1")
    # a numbered step newer than any other stays too: the latest-only file may be stale
    assert out.reasons[300] == (NEWEST_NUMBERED,)
    assert out.remove == (200,)


def test_partial_sets_newer_than_newest_complete_are_in_flight():
    out = apply(run(100, 200, status={200: "partial"}), Policy(), NOW)
    assert out.keep == (100, 200)
    assert out.reasons[200] == (IN_FLIGHT,)  # a save in progress takes no rule's slot
    assert out.reasons[100] == (NEWEST_COMPLETE, "last 1")
    out = apply(run(100, 200, status={100: "partial"}), Policy(), NOW)
    assert out.remove == (100,)
    assert out.reasons[100] == ("kept by no rule (partial set: a file is missing)",)


def test_partial_sets_obey_the_keep_rules():
    # D files of steps 1000-4000 deleted by hand: a G alone is still worth keeping
    steps = (1000, 2000, 3000, 4000, 5000)
    gone = {s: "partial" for s in steps[:4]}
    missing = {s: ("D",) for s in steps[:4]}
    partial = dict(status=gone, missing=missing)
    out = apply(run(*steps, **partial), Policy(keep_last=5), NOW)
    assert out.keep == steps and out.remove == ()
    assert out.reasons[1000] == ("last 5 (partial: no D file)",)
    assert out.reasons[5000] == (NEWEST_COMPLETE, "last 5")
    out = apply(run(*steps, **partial), Policy(keep_last=3), NOW)
    assert out.keep == (3000, 4000, 5000)
    assert out.reasons[2000] == ("kept by no rule (partial set: no D file)",)
    out = apply(run(*steps, **partial), Policy(keep_every=2000), NOW)
    assert out.keep == (2000, 4000, 5000)
    assert out.reasons[4000] == ("every 2000 steps (partial: no D file)",)
    out = apply(run(*steps, **partial), Policy(keep_within=1.5 * HOUR), NOW)
    assert out.keep == (4000, 5000)
    metric = {1000: 3.0, 2000: 1.0, 3000: 2.0, 4000: 4.0, 5000: 5.0}
    out = apply(run(*steps, metric=metric, **partial), Policy(keep_best=1, metric="m"), NOW)
    assert out.keep == (2000, 5000)
    assert out.reasons[2000] == ("best 1 by m (1) (partial: no D file)",)
    out = apply(run(*steps, size=10, **partial), Policy(max_size=30), NOW)
    assert out.keep == (3000, 4000, 5000)
    # only --remove-incomplete --older-than takes them beyond the rules
    policy = Policy(keep_last=5, remove_incomplete_older_than=HOUR)
    out = apply(run(*steps, **partial), policy, NOW + 10 * HOUR)
    assert out.keep == (5000,)
    assert out.reasons[1000] == ("partial, older than 1 hour (--remove-incomplete)",)
    # a partial set newer than the newest complete one is still a save in flight
    out = apply(run(1000, 2000, status={2000: "partial"}), Policy(keep_last=0), NOW)
    assert out.keep == (1000, 2000) and IN_FLIGHT in out.reasons[2000]


def test_remove_incomplete_needs_age():
    cands = run(100, 200, 300, status={300: "incomplete"}, mtime={300: NOW - 10})
    policy = Policy(remove_incomplete_older_than=HOUR)
    assert 300 in apply(cands, policy, NOW).keep
    # still being written (not settled, e.g. the watcher sees it grow): never, whatever its age
    assert 300 in apply(cands, policy, NOW + 2 * HOUR).keep
    settled = [c._replace(truncated=c.number == 300) for c in cands]  # truncated: a leftover
    out = apply(settled, policy, NOW + 2 * HOUR)
    assert 300 in out.remove
    assert out.reasons[300] == ("incomplete, older than 1 hour (--remove-incomplete)",)


def test_max_size_trims_oldest_unprotected_and_says_when_it_cannot():
    cands = run(100, 200, 300, 400, size=10)
    out = apply(cands, Policy(keep_last=4, max_size=25), NOW)
    assert out.keep == (300, 400)
    assert out.reasons[100] == ("removed to fit max-size 25 bytes",)
    out = apply(run(100, 200, pinned={100}, size=10), Policy(keep_last=2, max_size=5), NOW)
    assert out.keep == (100, 200)
    assert out.notes and "cannot fit" in out.notes[0]


def test_max_size_alone_keeps_what_fits():
    out = apply(run(100, 200, 300, size=10), Policy(max_size=20), NOW)
    assert out.keep == (200, 300)


def test_no_complete_set_keeps_everything():
    cands = run(100, 200, status={100: "incomplete", 200: "partial"})
    assert apply(cands, Policy(keep_last=0), NOW).remove == ()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"keep_last": -1},
        {"keep_every": 0},
        {"keep_within": -5.0},
        {"keep_within": float("nan")},
        {"max_size": float("inf")},
        {"keep_best": 2},  # no metric
        {"mode": "avg"},
    ],
)
def test_invalid_policies_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        Policy(**kwargs)


# ----------------------------------------------------------------- invariants (hypothesis)

statuses = st.sampled_from(["complete", "complete", "complete", "partial", "incomplete"])


@st.composite
def candidate_lists(draw):
    steps = draw(st.sets(st.integers(1, 5000), min_size=0, max_size=25))
    numbers = sorted(steps)
    if draw(st.booleans()):
        numbers.append(LATEST)
    if draw(st.booleans()):
        numbers.insert(0, 0)
    out = []
    for n in numbers:
        out.append(
            Candidate(
                number=n,
                status=draw(statuses),
                mtime=draw(st.floats(NOW - 30 * 86400, NOW, allow_nan=False)),
                size=draw(st.integers(0, 10**9)),
                latest_only=n == LATEST,
                base=n == 0,
                pinned=draw(st.booleans()) and draw(st.booleans()),
                metric=draw(st.none() | st.floats(-10, 10, allow_nan=False)),
            )
        )
    return out


policies = st.builds(
    Policy,
    keep_last=st.none() | st.integers(0, 6),
    keep_every=st.none() | st.integers(1, 3000),
    keep_within=st.none() | st.floats(0, 10 * 86400),
    keep_best=st.none(),
    max_size=st.none() | st.integers(0, 10**10),
    remove_incomplete_older_than=st.none() | st.floats(0, 20 * 86400),
) | st.builds(
    Policy,
    keep_best=st.integers(0, 4),
    metric=st.just("loss/g/total"),
    mode=st.sampled_from(["min", "max"]),
    keep_last=st.none() | st.integers(0, 3),
)


def _newest_complete(cands):
    complete = [c for c in cands if c.status == "complete" and not c.base]
    return max((c.number for c in complete), default=None)


def _resume_pick(cands):
    """The trainers' rule: the largest number wins (same folder, same prefix digits)."""
    return max((c.number for c in cands), default=None)


@pytest.mark.safety("11. property tests: policy invariants, resume after prune")
@settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cands=candidate_lists(), policy=policies, now=st.floats(NOW, NOW + 40 * 86400))
def test_invariants(cands, policy, now, cases):
    cases()
    out = apply(cands, policy, now)
    numbers = {c.number for c in cands}
    keep, remove = set(out.keep), set(out.remove)
    # keep and remove partition the input
    assert keep | remove == numbers and not keep & remove
    by = {c.number: c for c in cands}
    # every decision says why; removal reasons are never protections
    for n in numbers:
        assert out.reasons[n], n
    for n in remove:
        assert len(out.reasons[n]) == 1 and out.reasons[n][0] not in PROTECTIONS
    # the newest complete set is always kept, and only a complete set is called that; beside
    # a complete latest-only set, the newest numbered one is kept as such
    newest = _newest_complete(cands)
    if newest is not None:
        own = LATEST_ONLY if by[newest].latest_only else NEWEST_COMPLETE
        assert newest in keep and own in out.reasons[newest]
    numbered = _newest_complete([c for c in cands if not c.latest_only])
    if numbered is not None and numbered != newest:
        assert numbered in keep and NEWEST_NUMBERED in out.reasons[numbered]
    for unique in (NEWEST_COMPLETE, NEWEST_NUMBERED, LATEST_WRITTEN):  # no two sets share it
        assert sum(unique in out.reasons[n] for n in numbers) <= 1, unique
    complete = [c for c in cands if c.status == "complete" and not c.base]
    if complete:  # ... and so is the save written last (a higher step may be a stale one)
        assert max(complete, key=lambda c: (c.mtime, c.number)).number in keep
    for n in keep:
        if NEWEST_COMPLETE in out.reasons[n]:
            assert by[n].status == "complete"
    # incomplete sets stay unless explicitly asked for with an age
    for c in cands:
        if c.status == "incomplete" and c.number in remove:
            assert policy.remove_incomplete_older_than is not None
            assert now - c.mtime > policy.remove_incomplete_older_than
        if c.pinned or c.base or c.latest_only:
            assert c.number in keep
    # partial sets obey the keep rules: only max-size or --remove-incomplete take them beyond
    for n in remove:
        if by[n].status == "partial" and policy.remove_incomplete_older_than is None:
            assert out.reasons[n][0].startswith(("kept by no rule (partial set:", "removed to fit"))
    # bytes freed are the removed sets' bytes
    assert out.expected_freed == sum(by[n].size for n in remove)
    # the trainer resumes from the same file afterwards (unless leftovers were asked away)
    if policy.remove_incomplete_older_than is None:
        assert _resume_pick([by[n] for n in keep]) == _resume_pick(cands)
    # running the plan again removes nothing
    again = apply([by[n] for n in sorted(keep)], policy, now)
    assert again.remove == ()


def test_a_save_in_progress_takes_no_keep_last_slot():
    """G_400 written, D_400 not yet: the set is partial and in flight. It is kept, but it
    must not push 200 out of --keep-last 2 (found by the watcher test beside a trainer)."""
    out = apply(run(100, 200, 300, 400, status={400: "partial"}), Policy(keep_last=2), NOW)
    assert out.keep == (200, 300, 400) and out.remove == (100,)
    assert IN_FLIGHT in out.reasons[400] and "last 2" in out.reasons[200]
