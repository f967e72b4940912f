"""Each retention rule is declared once (janitor.domain.rules); the flags, janitor.toml keys,
Python keywords, checks, descriptions and reasons come from that declaration. Values are
checked strictly, alike from the command line and from Python. Golden cases on the policy
function itself (tests/golden/policy/*.json)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

import janitor
from janitor.core.policy import apply
from janitor.domain import rules
from janitor.domain.errors import UsageError
from janitor.domain.policy import Candidate, Overrides, Policy
from janitor.storage import config
from janitor.usecases.prune import parse_overrides, plan
from tests.conftest import fake_run

GOLDEN = Path(__file__).parent / "golden" / "policy"
NOW = 1_700_000_000.0 + 600 * 10


@pytest.fixture
def logs(tmp_path) -> Path:
    """alice: complete sets 100..500 ten minutes apart; 600 has a G only (a partial set left
    by a crash, older than an hour by `now`)."""
    root = tmp_path / "logs"
    run = fake_run(root, "alice", [100, 200, 300, 400, 500], start=NOW - 7200)
    fake_run(root, "alice", [600], prefixes=("G",), start=NOW - 3600)
    assert (run / "G_600.pth").exists() and not (run / "D_600.pth").exists()
    return root


def _steps(run: Path) -> list[int]:
    return sorted({int(p.stem.split("_")[1]) for p in run.glob("?_*.pth")})


# ----------------------------------------------------------------- strict values (the bug)


def test_a_text_false_is_not_a_yes_to_remove_incomplete(logs):
    """Reported: ``remove_incomplete="false"`` was read as true, and the partial set 600,
    which keep_last=2 keeps, was removed. Now: a usage error naming the keyword."""
    report = janitor.scan(str(logs))
    with pytest.raises(UsageError, match=r"remove_incomplete argument: must be True or False"):
        report.plan(keep_last=2, remove_incomplete="false", older_than="1m")
    assert _steps(logs / "alice") == [100, 200, 300, 400, 500, 600]
    # a real False with an age is the other error (the age goes with the switch)
    with pytest.raises(UsageError, match=r"older_than argument goes with remove_incomplete"):
        report.plan(keep_last=2, remove_incomplete=False, older_than="1m")
    kept = report.plan(keep_last=2).runs[0]
    assert 600 in {d.set.number for d in kept.decisions if d.keep}


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"keep_last": "2"}, r"keep_last argument: must be a whole number, got '2'"),
        ({"keep_last": 2.0}, r"keep_last argument: must be a whole number"),
        ({"keep_last": True}, r"keep_last argument: must be a whole number, got true"),
        ({"keep_every": 0}, r"keep_every argument: must be a whole number >= 1"),
        ({"keep_within": "2"}, r"keep_within argument: '2' needs a unit"),
        ({"keep_within": 7200}, r"keep_within argument: 7200 needs a unit"),
        ({"max_size": 1.5}, r"max_size argument: must be a size"),
        ({"mode": "avg"}, r"mode argument: must be min or max, got 'avg'"),
        ({"metric": 3}, r"metric argument: must be a text such as loss/g/total"),
        ({"remove_incomplete": 1, "older_than": "1d"}, r"remove_incomplete argument: must be"),
        ({"remove_incomplete": True}, r"remove_incomplete argument needs older_than argument"),
        ({"keep_lst": 2}, r"unknown rule keep_lst \(did you mean keep_last\?"),
    ],
)
def test_python_values_are_taken_as_typed(given, error):
    with pytest.raises(UsageError, match=error):
        parse_overrides(origin="keyword", **given)


def test_python_values_of_the_right_type_are_read():
    got = parse_overrides(
        origin="keyword", keep_last=2, keep_within=timedelta(hours=2), max_size="1GB",
        remove_incomplete=True, older_than=timedelta(days=1),
    )  # fmt: skip
    assert got.given() == {
        "keep_last": 2, "keep_within": 7200.0, "max_size": 10**9,
        "remove_incomplete_older_than": 86400.0,
    }  # fmt: skip
    assert parse_overrides(origin="keyword", max_size=5000).max_size == 5000


def test_the_command_line_reads_text_and_names_the_flag(logs, cli):
    assert parse_overrides(keep_last="2").keep_last == 2  # text is what a flag gives
    with pytest.raises(UsageError, match=r"^--keep-last: must be a whole number >= 0"):
        parse_overrides(keep_last="two")
    r = cli("prune", logs, "--dry-run", "--keep-last", "2")
    assert r.exit_code == 0, r.output
    r = cli("prune", logs, "--dry-run", "--keep-last", "x")
    assert r.exit_code == 2 and "--keep-last: must be a whole number" in r.output
    r = cli("prune", logs, "--dry-run", "--older-than", "1d")
    assert r.exit_code == 2 and "--older-than goes with --remove-incomplete" in r.output


# ----------------------------------------------------------------- one declaration per rule


def test_every_rule_is_a_field_of_policy_and_overrides_and_nothing_else():
    names = [r.name for r in rules.rules()]
    assert list(Policy().values()) == names == list(Overrides().values())
    with pytest.raises(TypeError, match="unknown rule 'keep_lots'"):
        Policy(keep_lots=1)


def test_every_rule_is_a_flag_a_key_and_a_keyword(cli):
    help_texts = {cmd: cli(cmd, "--help").output for cmd in ("prune", "watch")}
    for r in rules.rules():
        for text in help_texts.values():
            assert r.flag in text and r.help.split()[0] in text
        assert r.key is None or config.RULE_KEYS[r.key] == r.name
        assert Overrides(origin="keyword").source(r.name) == f"{r.keyword} argument"
    assert "--remove-incomplete" in help_texts["prune"]


def test_describe_and_reasons_come_from_the_declarations():
    p = Policy(keep_last=2, keep_within=7200, keep_best=1, metric="m", max_size=10**9,
               remove_incomplete_older_than=86400)  # fmt: skip
    assert p.describe({"keep_last": "--keep-last"}) == (
        "keep-last 2 (--keep-last), keep-within 2 hours, keep-best 1 by m (min), "
        "max-size 1 GB, remove-incomplete older than 1 day"
    )
    with pytest.raises(UsageError, match=r"metric: is needed by keep-best \(e.g. loss/g/total\)"):
        Policy(keep_best=1)
    with pytest.raises(UsageError, match=r"keep-last: must be at most 1,000,000"):
        Policy(keep_last=rules.MAX_SETS + 1)
    assert Policy(keep_every=rules.MAX_STEP).keep_every == rules.MAX_STEP


def test_a_policy_is_a_value():
    a, b = Policy(keep_last=2), Policy(keep_last=2)
    assert a == b and hash(a) == hash(b) and a != Policy(keep_last=3)
    assert a.replace(keep_last=3) == Policy(keep_last=3)
    with pytest.raises(AttributeError):
        a.keep_last = 3
    assert repr(a) == "Policy(keep_last=2, mode='min')"


# ----------------------------------------------------------------- a rule added in one place


def _keep_odd(ranked: list[Candidate], p: Policy) -> dict[int, str]:
    return {c.number: "" for c in ranked if (c.number // 100) % 2}


@pytest.fixture
def keep_odd():
    """A dummy rule, declared once: keep the sets whose step (in hundreds) is odd."""
    rule = rules.register(rules.Rule(
        "keep_odd", "bool", keep=_keep_odd, help="Keep the sets of odd hundreds.",
        describe="keep-odd", reason="odd hundred",
    ))  # fmt: skip
    yield rule
    rules.unregister("keep_odd")
    assert "keep_odd" not in Policy().values()


def test_a_registered_rule_is_a_flag(keep_odd, logs, cli):
    for command in ("prune", "watch"):
        line = [x for x in cli(command, "--help").output.splitlines() if "--keep-odd" in x]
        assert line and "Keep the sets of odd hundreds." in line[0]
    r = cli("prune", logs, "--keep-odd", "--keep-last", "1")
    assert r.exit_code == 0, r.output
    assert _steps(logs / "alice") == [100, 300, 500, 600]
    records = [json.loads(x) for x in (logs / ".janitor/journal.jsonl").open()]
    removed = [x for x in records if x.get("reasons")]
    assert {x["policy"] for x in removed} == {"keep-last 1 (--keep-last), keep-odd (--keep-odd)"}
    assert {x["reasons"][0] for x in removed} == {"kept by no rule"}


def test_a_registered_rule_is_a_toml_key_and_a_keyword(keep_odd, logs, cli):
    (logs / "janitor.toml").write_text("[prune]\nkeep-odd = true\nkeep-last = 1\n")
    r = cli("prune", logs, "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    sets = {s["number"]: s for s in json.loads(r.stdout)["runs"][0]["sets"]}
    assert sets[300]["reasons"] == ["odd hundred"] and sets[300]["action"] == "keep"
    assert sets[200]["action"] == "remove"
    (logs / "janitor.toml").write_text('[prune]\nkeep-odd = "yes"\n')
    r = cli("prune", logs, "--dry-run")
    assert r.exit_code == 2 and "keep-odd: must be True or False, got 'yes'" in r.output
    os.remove(logs / "janitor.toml")

    report = janitor.scan(str(logs))
    rp = report.plan(keep_odd=True).runs[0]  # the public API takes it as a keyword
    reasons = {d.set.number: d.reasons for d in rp.decisions}
    assert reasons[100] == ("odd hundred",) and reasons[200] == ("kept by no rule",)
    assert "keep-odd (keep_odd argument)" in rp.planner.describe()
    assert plan(report, parse_overrides(origin="keyword", keep_odd=True)).runs[0] == rp
    with pytest.raises(UsageError, match="keep_odd argument: must be True or False"):
        report.plan(keep_odd="true")


# ----------------------------------------------------------------- golden cases on `apply`


def _golden() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def test_there_are_golden_cases_for_every_rule():
    """Every run rule (min-free and max-total, rules over a root, are tests/test_pressure.py's)."""
    cases = [json.loads(p.read_text()) for p in _golden()]
    assert len(cases) >= 20
    used = {name for case in cases for name in case["policy"]}
    assert {r.name for r in rules.rules("run")} <= used


@pytest.mark.parametrize("path", _golden(), ids=lambda p: p.stem)
def test_golden_policy_case(path):
    case = json.loads(path.read_text())
    candidates = [Candidate(**{**c, "missing": tuple(c.get("missing", ())),
                               "protect": tuple(c.get("protect", ()))})
                  for c in case["candidates"]]  # fmt: skip
    out = apply(candidates, Policy(**case["policy"]), case["now"])
    expect = case["expect"]
    assert list(out.keep) == expect["keep"]
    assert list(out.remove) == expect["remove"]
    assert {str(n): list(why) for n, why in out.reasons.items()} == expect["reasons"]
