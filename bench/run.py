"""`make bench`: side-by-side performance figures for janitor, on realistic checkpoints.

Everything is generated into one temp folder (``tempfile.mkdtemp(prefix="janitor-bench-")``,
so ``TMPDIR`` is honoured) that is removed at the end, also on Ctrl-C or SIGTERM:

1. CLI start-up: ``janitor --help`` and ``janitor scan <one full-size run>`` vs
   ``python -c "import torch"`` and ``python -c pass``; ``python -c "import janitor"`` vs
   ``janitor --help``;
2. extraction: ``janitor extract-small`` on full-size G files vs ``bench/naive_extract.py``
   (one file, and a batch in one call vs one naive call per file), vs a floor process
   (``bench/floor_extract.py``) and vs janitor's own torch path (``JANITOR_CONVERT=torch``);
   2b. every other trainer's export (``bench/exports.py``) vs ``bench/naive_export.py``;
   2c. extraction from object storage (``bench/remote.py``): bytes fetched, and wall vs
   download-then-extract;
   2d. ``janitor finalize`` of a full-size Applio run of 10 saves (3 in the quick bench)
   without torch vs janitor's torch path forced, and the peak memory (PSS) of ``watch
   --extract-on-save`` and its worker while a new full-size save's small models are made,
   against the same with torch;
   2e. the size of a fresh venv after ``pip install vits-janitor`` (the wheel of this
   checkout, its dependencies from the package index; no torch);
3. scan of a 200k-file tree (100 runs x 1,000 G/D sets of tiny complete zips) vs ``find``:
   cold (``--no-cache``) and warm (verdict cache valid);
4. prune throughput vs ``find -delete``, and the plan (``--dry-run``) vs ``scan``;
5. the watcher (inotify and ``--poll``): idle CPU and RSS, save-to-prune delay, SIGTERM;
   5b. ``watch --min-free`` on a real tmpfs (root): idle CPU beside the same watcher without
   it, and the time from a completed save that took free space below the floor to the floor
   being restored (full-size 440 + 860 MB sets; 1/100 in the quick bench);
7. object storage (``bench/objectstore.py``): a bucket's scan vs a plain s3fs listing, the
   cached re-scan's ranged GETs, and the issue's acceptance run on a real-size Applio run;
6. The API example (docs/python-api.md) on a real-size Applio run (the full-size run plus one
   more save) against ``janitor prune logs --keep-last 1`` on a hard-linked copy: the trainer's
   resume step afterwards, and ``expected_freed_size`` against the bytes gone (a check, not a
   time).

Every figure is a whole child process (``Popen`` + ``os.wait4``): wall time from
``time.perf_counter`` around it, peak RSS from its ``ru_maxrss``. Sides alternate inside each
repetition (A, B, A, B, ...); tables show the median and min-max.

Output: a markdown table and notes on stdout, all raw samples in ``bench/results.json``.
``BENCH_QUICK=1`` runs a reduced version of every section, under 3 minutes on 2 cores (fewer
repetitions, smaller trees, 20 watched runs, 10 s idle window (5 s for 5b), one export in 2b,
no second warm-up in 2c, the object storage run of 7c/7d at tiny scale, 1/100-size sets
in 5b).
``BENCH_PRUNE_RUNS=N`` prunes copies of N runs of the scan tree instead of the default.
``BENCH_ONLY=scan`` runs sections 3 and 4 alone (the trees, scan, prune) and writes
``bench/results-scan.json`` instead (``bench/results.json`` keeps the last full run);
``BENCH_ONLY=extract`` runs sections 1, 2, 2d and 2e (start-up, extraction, finalize, the
watch worker's memory, the installed size) and writes ``bench/results-extract.json``.
"""

from __future__ import annotations

import compileall
import contextlib
import glob
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import exports
import measure as m
import objectstore
import remote
import trees

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
NAIVE = str(REPO / "bench" / "naive_extract.py")
FLOOR = str(REPO / "bench" / "floor_extract.py")
WITH_TORCH = {**os.environ, "JANITOR_CONVERT": "torch"}  # janitor's torch path, forced
GEN_BIG = str(REPO / "bench" / "gen_big.py")
RESULTS = REPO / "bench" / "results.json"


def janitor_cmd() -> list[str]:
    """The venv's console script (what users run), else ``python -m janitor``. Every child
    gets this checkout first on ``PYTHONPATH`` (see ``main``), so the script runs this
    checkout's code even when the venv's editable install points at another one."""
    exe = Path(PY).parent / "janitor"
    return [str(exe)] if exe.exists() else [PY, "-m", "janitor"]


J = janitor_cmd()

# Reference baselines for the scan figure: what the walk costs in Python without janitor.
REF_STAT = """\
import os, sys
n, stack = 0, [sys.argv[1]]
while stack:
    with os.scandir(stack.pop()) as it:
        for e in it:
            e.stat(follow_symlinks=False)
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
            else:
                n += 1
"""
REF_READ = """\
import os, sys
flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
n, stack = 0, [sys.argv[1]]
while stack:
    with os.scandir(stack.pop()) as it:
        for e in it:
            e.stat(follow_symlinks=False)
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
                continue
            fd = os.open(e.path, flags)
            try:
                os.fstat(fd)
                os.pread(fd, 512, 0)
            finally:
                os.close(fd)
            n += 1
"""

# Which heavy modules `import janitor` loads, and `janitor.scan` (the API's first use) after it.
HEAVY_PROBE = """\
import sys
heavy = ("torch", "numpy", "tensorboard", "typer", "click", "rich", "watchdog")
def loaded():
    return ",".join(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))) or "-"
import janitor
print(loaded())
janitor.scan
print(loaded())
"""

# The API example of docs/python-api.md, cut to the calls timed; run in a folder holding `logs/`.
API_EXAMPLE = """\
import janitor
report = janitor.scan("logs")
plan = report.plan(keep_last=1)
print(plan.expected_freed_size)
result = plan.execute()
print(result.freed_size, result.errors)
"""


def trainer_resume(run_dir: str) -> dict[str, int | None]:
    """The step the trainer resumes from: Applio's ``latest_checkpoint_path`` (RVC's is the
    same) sorts ``G_*.pth`` / ``D_*.pth`` by the integer formed by all digits of the whole
    path and loads the last one."""
    out: dict[str, int | None] = {}
    for kind in ("G", "D"):
        found = sorted(
            glob.glob(os.path.join(run_dir, f"{kind}_*.pth")),
            key=lambda f: int("".join(filter(str.isdigit, f))),
        )
        name = os.path.basename(found[-1]) if found else ""
        out[kind] = int(name[len(kind) + 1 : -len(".pth")]) if found else None
    return out


def page_in(paths: Sequence[str]) -> None:
    """Read each file once, untimed: what a timed command then reads comes from the page
    cache for every side alike (this machine's cache lets files written minutes ago go)."""
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while fh.read(8 << 20):
                pass


@dataclass(frozen=True)
class Config:
    quick: bool
    run_steps: tuple[int, ...]  # steps of the full-size run (G+D each)
    startup_reps: int
    extract_reps: int
    batch_files: int
    batch_reps: int
    scan_runs: int
    scan_sets: int
    scan_reps: int
    prune_runs: int  # runs of the scan tree copied for each prune repetition
    prune_reps: int
    watch_runs: int
    idle: float  # seconds of the watcher's idle window
    latency_reps: int
    finalize_saves: int  # saves (G+D, full size) of the run `finalize` is timed on
    finalize_reps: int
    watch_pss_reps: int


FULL = Config(False, (100, 200), 5, 5, 5, 3, 100, 1000, 3, 5, 3, 100, 30.0, 5, 10, 3, 3)
# Quick: under 3 minutes on 2 cores (it took 8 min 47 s before the object storage run went
# to tiny scale and 2b to one trainer per export format; docs/performance.md).
QUICK = Config(True, (100,), 3, 2, 5, 1, 20, 500, 3, 4, 2, 20, 10.0, 2, 3, 1, 1)


def config_from_env() -> Config:
    cfg = QUICK if os.environ.get("BENCH_QUICK", "") not in ("", "0") else FULL
    runs = os.environ.get("BENCH_PRUNE_RUNS")
    if runs:
        cfg = Config(**{**asdict(cfg), "prune_runs": max(1, min(int(runs), cfg.scan_runs))})
    return cfg


# ---------------------------------------------------------------- formatting


def num(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def show(s: dict, unit: str) -> str:
    """``median unit (min–max)``; just the value for a single sample."""
    sep = "" if unit in ("%", "×", "") else " "
    lo, mid, hi = num(s["min"]), num(s["median"]), num(s["max"])
    if s["n"] == 1 or lo == hi:
        return f"{mid}{sep}{unit}"
    return f"{mid}{sep}{unit} ({lo}–{hi})"


def log(msg: str) -> None:
    elapsed = time.perf_counter() - T0
    print(f"[bench {elapsed:6.1f}s] {msg}", file=sys.stderr, flush=True)


T0 = time.perf_counter()


@dataclass
class Figure:
    key: str
    title: str
    janitor: dict
    unit: str
    baseline_name: str = "—"
    baseline: dict | None = None
    ratio: float | None = None
    goal: str = "—"
    goal_on: str | None = None  # "ratio" or "value"
    goal_op: str | None = None  # "<=", "<", ">="
    goal_value: float | None = None
    goal_source: str | None = None  # "brief" (the issue's goal) or "bench" (chosen here)
    with_ratio: bool = True  # False: a baseline shown for context only (idle CPU)
    text: str | None = None  # shown instead of the janitor summary
    met: bool | None = None
    detail: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.with_ratio and self.ratio is None and self.baseline and self.baseline["median"]:
            self.ratio = self.janitor["median"] / self.baseline["median"]
        if self.goal_op is not None:
            value = self.ratio if self.goal_on == "ratio" else self.janitor["median"]
            ops: dict[str, Callable[[float, float], bool]] = {
                "<=": lambda a, b: a <= b,
                "<": lambda a, b: a < b,
                ">=": lambda a, b: a >= b,
            }
            self.met = value is not None and ops[self.goal_op](value, self.goal_value)

    def row(self) -> list[str]:
        base = "—"
        if self.baseline is not None:
            base = f"{self.baseline_name}: {show(self.baseline, self.unit)}"
        elif self.baseline_name != "—":
            base = self.baseline_name
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}×"
        goal = self.goal + ("*" if self.goal_source == "bench" else "")
        met = {None: "—", True: "yes", False: "**no**"}[self.met]
        shown = self.text if self.text is not None else show(self.janitor, self.unit)
        return [self.title, shown, base, ratio, goal, met]


def table(figures: Sequence[Figure]) -> str:
    head = ["figure", "janitor", "baseline", "ratio", "goal", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(f.row()) + " |" for f in figures]
    return "\n".join(lines)


# ---------------------------------------------------------------- the bench


class Bench:
    def __init__(self, cfg: Config, tmp: str) -> None:
        self.cfg = cfg
        self.tmp = tmp
        self.figures: list[Figure] = []
        self.raw: dict = {}
        self.notes: list[str] = []
        self.disk_peak = 0
        self.disk_points: dict[str, int] = {}
        self.data = trees.tiny_checkpoint()

    def path(self, *parts: str) -> str:
        return os.path.join(self.tmp, *parts)

    def disk(self, label: str) -> None:
        used = trees.disk_usage(self.tmp)
        self.disk_points[label] = used
        self.disk_peak = max(self.disk_peak, used)
        log(f"temp disk at {label}: {used / 1e9:.2f} GB")

    def add(self, fig: Figure) -> None:
        self.figures.append(fig)

    # ------------------------------------------------------------ 0. full-size fixtures

    def generate_big(self) -> None:
        cfg = self.cfg
        log(
            f"writing full-size fixtures: run alice (steps {cfg.run_steps}, G+D) and "
            f"{cfg.batch_files} G files, in two processes"
        )
        jobs = [  # the repo is on PYTHONPATH (main): fixtures.gen is importable
            [PY, GEN_BIG, "run", self.path("logs"), *map(str, cfg.run_steps)],
            [PY, GEN_BIG, "G", self.path("batch"), *map(str, range(1, cfg.batch_files + 1))],
        ]
        os.makedirs(self.path("batch"))
        t0 = time.perf_counter()
        with contextlib.ExitStack() as stack:
            procs = []
            for cmd in jobs:
                err = stack.enter_context(tempfile.TemporaryFile(dir=self.tmp))
                procs.append((cmd, err, m.spawn(cmd, stdout=None, stderr=err, cwd=REPO)))
            for cmd, err, proc in procs:
                rc, _ = m.reap(proc, 900)
                if rc != 0:
                    raise m.BenchError(f"{' '.join(cmd)}: exit {rc}\n{m.tail(err)}")
        self.raw["generate_big_s"] = time.perf_counter() - t0
        self.run_dir = self.path("logs", "alice")
        self.big_g = os.path.join(self.run_dir, f"G_{cfg.run_steps[-1]}.pth")
        self.batch = [self.path("batch", f"G_{i * 100}.pth") for i in range(1, cfg.batch_files + 1)]
        sizes = {
            n: os.path.getsize(os.path.join(self.run_dir, n)) for n in os.listdir(self.run_dir)
        }
        self.raw["full_size_files"] = sizes
        log(f"fixtures written in {self.raw['generate_big_s']:.1f} s")
        self.disk("full-size fixtures")

    # ------------------------------------------------------------ 1. start-up

    def startup(self) -> None:
        cfg = self.cfg
        cmds = {
            "janitor --help": [*J, "--help"],
            "import torch": [PY, "-c", "import torch"],
            "janitor scan": [*J, "scan", self.run_dir],
            "python -c pass": [PY, "-c", "pass"],
            "import janitor": [PY, "-c", "import janitor"],
        }
        log(f"start-up: {cfg.startup_reps} repetitions of {', '.join(cmds)}")
        for cmd in cmds.values():  # untimed warm-up of each
            m.run(cmd)
        samples: dict[str, list[m.Sample]] = {k: [] for k in cmds}
        for _ in range(cfg.startup_reps):
            for name, cmd in cmds.items():
                samples[name].append(m.run(cmd))
        self.raw["startup"] = {k: [asdict(s) for s in v] for k, v in samples.items()}
        w = {k: m.walls(v) for k, v in samples.items()}
        r = {k: m.rss_mb(v) for k, v in samples.items()}
        for key, name, shown in (
            ("help", "janitor --help", "`janitor --help`"),
            ("scan", "janitor scan", "`janitor scan` one full-size run"),
        ):
            self.add(Figure(
                f"1-{key}-wall-vs-torch", f"1 start-up: {shown}, wall", w[name], "s",
                "`python -c 'import torch'`", w["import torch"], goal="≤ 0.1×",
                goal_on="ratio", goal_op="<=", goal_value=0.1, goal_source="brief",
            ))  # fmt: skip
            self.add(Figure(
                f"1-{key}-wall-vs-floor", f"1 start-up: {shown}, wall vs floor", w[name], "s",
                "`python -c pass`", w["python -c pass"],
            ))  # fmt: skip
            self.add(Figure(
                f"1-{key}-rss-vs-torch", f"1 start-up: {shown}, peak RSS", r[name], "MB",
                "`python -c 'import torch'`", r["import torch"], goal="report",
            ))  # fmt: skip
        for key, shown, d, unit in (("wall", "wall", w, "s"), ("rss", "peak RSS", r, "MB")):
            self.add(Figure(
                f"1-import-{key}", f"1 start-up: `python -c 'import janitor'`, {shown}",
                d["import janitor"], unit, "`janitor --help`", d["janitor --help"],
                goal="≤ 1×", goal_on="ratio", goal_op="<=", goal_value=1.0, goal_source="brief",
            ))  # fmt: skip
        # Untimed: what `import janitor` and the API example's first attribute pull in.
        probe = subprocess.run(
            [PY, "-c", HEAVY_PROBE], capture_output=True, text=True, check=True
        ).stdout.split()
        self.raw["import_janitor_heavy_modules"] = dict(zip(["import", "janitor.scan"], [
            [] if x == "-" else x.split(",") for x in probe
        ], strict=True))  # fmt: skip
        self.startup_walls = w
        self.startup_rss = r

    # ------------------------------------------------------------ 2. extraction

    def extraction(self) -> None:
        cfg = self.cfg
        out_j, out_n = self.path("out", "janitor.pth"), self.path("out", "naive.pth")
        out_t, out_f = self.path("out", "torch.pth"), self.path("out", "floor.bin")
        os.makedirs(self.path("out"))
        jcmd = [*J, "extract-small", self.big_g, "--force", "-o", out_j]
        tcmd = [*J, "extract-small", self.big_g, "--force", "-o", out_t]
        ncmd = [PY, NAIVE, self.big_g, out_n]
        fcmd = [PY, FLOOR, self.big_g, out_f]

        def clean() -> None:
            for p in (out_j, out_n, out_t, out_f):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(p)
            page_in([self.big_g])

        log(f"extraction, one full-size G: warm-up + {cfg.extract_reps} repetitions")
        clean()
        m.run(jcmd)
        m.run(ncmd)
        out_sizes = {"janitor": os.path.getsize(out_j), "naive": os.path.getsize(out_n)}
        js, ns, ts, fs = [], [], [], []
        for _ in range(cfg.extract_reps):
            clean()
            js.append(m.run(jcmd))
            clean()
            ns.append(m.run(ncmd))
            clean()
            ts.append(m.run(tcmd, env=WITH_TORCH))
            clean()
            fs.append(m.run(fcmd))
        clean()
        self.raw["extract_one"] = {
            "source": self.big_g,
            "source_bytes": os.path.getsize(self.big_g),
            "output_bytes": out_sizes,
            "janitor": [asdict(s) for s in js],
            "naive": [asdict(s) for s in ns],
            "janitor_with_torch": [asdict(s) for s in ts],
            "floor": [asdict(s) for s in fs],
        }
        naive = "`naive_extract.py`"
        self.add(Figure(
            "2-extract-wall", "2 extract-small, one full-size G (438 MB): wall",
            m.walls(js), "s", naive, m.walls(ns), goal="≤ 0.3×", goal_on="ratio",
            goal_op="<=", goal_value=0.3, goal_source="issue 27",
        ))  # fmt: skip
        self.add(Figure(
            "2-extract-rss", "2 extract-small, one full-size G: peak RSS",
            m.rss_mb(js), "MB", naive, m.rss_mb(ns), goal="≤ 0.15×", goal_on="ratio",
            goal_op="<=", goal_value=0.15, goal_source="issue 27",
        ))  # fmt: skip
        self.add(Figure(
            "2-extract-floor", "2 extract-small, one full-size G: wall against the floor",
            m.walls(js), "s", "`floor_extract.py`", m.walls(fs), goal="≤ 1.5×",
            goal_on="ratio", goal_op="<=", goal_value=1.5, goal_source="issue 27",
        ))  # fmt: skip
        self.add(Figure(
            "2-extract-torch", "2 extract-small, one full-size G: wall, without torch",
            m.walls(js), "s", "janitor with torch (JANITOR_CONVERT=torch)", m.walls(ts),
            goal="report",
        ))  # fmt: skip
        self.extract_one_wall = m.walls(js)["median"]

        n = len(self.batch)
        log(f"extraction, batch of {n} G files: {cfg.batch_reps} repetitions")
        bj, bn = self.path("out", "batch-janitor"), self.path("out", "batch-naive")
        jb, nb = [], []
        for _ in range(cfg.batch_reps):
            shutil.rmtree(bj, ignore_errors=True)
            os.makedirs(bj)
            page_in(self.batch)  # both sides read the files from the page cache
            jb.append(m.run([*J, "extract-small", *self.batch, "-o", bj, "--force"]))
            if len(os.listdir(bj)) != n:
                raise m.BenchError(f"janitor batch wrote {sorted(os.listdir(bj))}, expected {n}")
            self.disk("batch outputs written")
            shutil.rmtree(bj)
            shutil.rmtree(bn, ignore_errors=True)
            os.makedirs(bn)
            page_in(self.batch)
            one = [
                m.run([PY, NAIVE, g, os.path.join(bn, f"{i}.pth")])
                for i, g in enumerate(self.batch)
            ]
            nb.append(m.Sample(sum(s.wall for s in one), max(s.rss_kib for s in one), 0))
            shutil.rmtree(bn)
        self.raw["extract_batch"] = {
            "files": n,
            "janitor": [asdict(s) for s in jb],
            "naive_sequential_total": [asdict(s) for s in nb],
        }
        self.add(Figure(
            "2-batch-wall", f"2 extract-small, {n} G files in one call: total wall",
            m.walls(jb), "s", f"{n}× `naive_extract.py`", m.walls(nb), goal="≤ 0.15×",
            goal_on="ratio", goal_op="<=", goal_value=0.15, goal_source="issue 27",
        ))  # fmt: skip
        self.add(Figure(
            "2-batch-rss", f"2 extract-small, {n} G files in one call: peak RSS",
            m.rss_mb(jb), "MB", "largest naive call", m.rss_mb(nb), goal="report",
        ))  # fmt: skip
        per_file = (m.walls(jb)["median"] - self.extract_one_wall) / max(1, n - 1)
        self.raw["extract_batch"]["marginal_s_per_file"] = per_file
        self.disk("extraction done")
        for d in ("batch", "out"):  # logs/ goes on to the API example
            shutil.rmtree(self.path(d))

    # ------------------------------------------------------------ 2e. the install without torch

    def installed_size(self) -> None:
        """README's `pip install vits-janitor` (the wheel built from this checkout, its
        dependencies from the package index) in a fresh venv: its size on disk, torch absent;
        against a venv with only pip in it."""
        log("installed size: the wheel and its dependencies in a fresh venv (package index)")
        dist, venv, bare = self.path("dist"), self.path("venv-janitor"), self.path("venv-bare")
        m.run([PY, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", dist])
        for v in (venv, bare):
            m.run([sys.executable, "-m", "venv", v])
        wheel = glob.glob(os.path.join(dist, "vits_janitor-*.whl"))
        m.run([os.path.join(venv, "bin", "pip"), "install", "-q", *wheel])
        probe = "import importlib.util as u; print(u.find_spec('torch') is None)"
        no_torch = subprocess.run([os.path.join(venv, "bin", "python"), "-c", probe],
                                  capture_output=True, text=True).stdout.strip()  # fmt: skip
        if no_torch != "True":
            raise m.BenchError("pip install vits-janitor installed torch")
        sizes = {v: trees.disk_usage(v) / 1e6 for v in (venv, bare)}
        self.raw["installed_size_mb"] = {"janitor": sizes[venv], "bare_venv": sizes[bare]}
        self.add(Figure(
            "2e-install-size", "2e `pip install vits-janitor` (no extras) in a fresh venv: size",
            m.summary([sizes[venv]]), "MB", "a venv with pip only", m.summary([sizes[bare]]),
            with_ratio=False, goal="≤ 150 MB", goal_on="value", goal_op="<=",
            goal_value=150.0, goal_source="issue 27",
        ))  # fmt: skip
        for d in (dist, venv, bare):
            shutil.rmtree(d)

    # ------------------------------------------------------------ 2d. finalize, watch worker

    def finalize_run(self) -> None:
        """`janitor finalize` of a full-size Applio run of ``finalize_saves`` saves (it writes
        and verifies the newest G's small model, then removes every G and D): without torch
        against the torch path forced (``JANITOR_CONVERT=torch``), alternately, each on a
        fresh hard-linked copy of the same run."""
        cfg = self.cfg
        steps = [100 * (i + 1) for i in range(cfg.finalize_saves)]
        src = self.path("finalize-src")
        log(f"finalize: a full-size run of {len(steps)} saves, {cfg.finalize_reps} repetitions")
        m.run([PY, GEN_BIG, "run", src, *map(str, steps)], cwd=REPO)
        self.disk("finalize run written")
        free_s, torch_s = [], []
        for i in range(cfg.finalize_reps):
            for label, env, out in (("free", None, free_s), ("torch", WITH_TORCH, torch_s)):
                root = self.path(f"finalize-{label}-{i}")
                shutil.copytree(src, root, copy_function=os.link)
                run = os.path.join(root, "alice")
                out.append(m.run([*J, "finalize", run, "--idle", "0s"], env=env))
                left = sorted(n for n in os.listdir(run) if n.startswith(("G_", "D_")))
                small = [n for n in os.listdir(run) if n.startswith("alice_")]
                if left or not small:
                    raise m.BenchError(f"finalize ({label}) left {left}, small models {small}")
                shutil.rmtree(root)
        shutil.rmtree(src)
        self.raw["finalize"] = {
            "saves": len(steps),
            "janitor": [asdict(s) for s in free_s],
            "janitor_with_torch": [asdict(s) for s in torch_s],
        }
        n = len(steps)
        self.add(Figure(
            "2d-finalize-wall", f"2d `finalize` of a full-size Applio run of {n} saves: wall",
            m.walls(free_s), "s", "janitor with torch (JANITOR_CONVERT=torch)", m.walls(torch_s),
            goal="report",
        ))  # fmt: skip
        self.add(Figure(
            "2d-finalize-rss", f"2d `finalize` of a full-size run of {n} saves: peak RSS",
            m.rss_mb(free_s), "MB", "with torch", m.rss_mb(torch_s), goal="report",
        ))  # fmt: skip

    def _watch_extraction_pss(self, label: str, env: dict | None) -> dict:
        """Peak PSS of `watch --extract-on-save` (janitor and its extraction worker) from the
        start of a trainer's full-size save (G, then D) until the new G's small model and the
        older G's are made and verified and the older set is gone, sampled every 5 ms."""
        cfg = self.cfg
        root = self.path(f"watch-extract-{label}")
        first, second = cfg.run_steps[-1], cfg.run_steps[-1] + 100
        shutil.copytree(self.path("logs"), root, copy_function=os.link)
        run = os.path.join(root, "alice")
        for n in os.listdir(run):
            if n.startswith(("G_", "D_")) and not n.endswith(f"_{first}.pth"):
                os.remove(os.path.join(run, n))
        w = self._start_watcher(f"watch-extract-{label}", root,
                                ["--extract-on-save", "--settle", "1"], env=env)  # fmt: skip
        proc = w["proc"]
        smalls = lambda: [n for n in os.listdir(run) if n.startswith("alice_")]  # noqa: E731
        try:
            self._wait_ready(w, [])
            time.sleep(0.5)
            idle = m.tree_pss_kib(proc.pid)
            staged = self.path(f"logs-watch-{label}")
            m.run([PY, GEN_BIG, "save", staged, str(first), str(second)], cwd=REPO)
            saved = os.path.join(staged, "alice")

            def trainer_saves() -> None:  # G, then D, written into the watched run
                for kind in ("G", "D"):
                    name = f"{kind}_{second}.pth"
                    shutil.copyfile(os.path.join(saved, name), os.path.join(run, name))

            saver = threading.Thread(target=trainer_saves)
            t_save, peak, deadline = time.perf_counter(), 0, time.perf_counter() + 180
            saver.start()
            while len(smalls()) < 2 or os.path.exists(os.path.join(run, f"G_{first}.pth")):
                peak = max(peak, m.tree_pss_kib(proc.pid))
                if time.perf_counter() > deadline:
                    raise m.BenchError(f"watch ({label}): the new save's small model not made")
                time.sleep(0.005)
            done_s = time.perf_counter() - t_save
            saver.join()
            shutil.rmtree(staged)
        finally:
            stopped = self._stop_watcher(w)
        shutil.rmtree(root)
        return {"idle_pss_kib": idle, "peak_pss_kib": peak, "save_to_pruned_s": done_s,
                **stopped}  # fmt: skip

    def watch_extraction(self) -> None:
        log("watch --extract-on-save: memory of janitor and its worker during an extraction")
        free = [self._watch_extraction_pss("free", None) for _ in range(self.cfg.watch_pss_reps)]
        forced = self._watch_extraction_pss("torch", WITH_TORCH)
        self.raw["watch_extract_pss"] = {"janitor": free, "janitor_with_torch": forced}
        mb = lambda kib: kib * 1024 / 1e6  # noqa: E731
        self.add(Figure(
            "2d-watch-pss", "2d `watch --extract-on-save`: peak PSS of janitor and its worker "
            "while a new full-size save's small model is made", m.summary(
                [mb(r["peak_pss_kib"]) for r in free]), "MB", "with torch (JANITOR_CONVERT=torch)",
            m.summary([mb(forced["peak_pss_kib"])]), goal="≤ 100 MB", goal_on="value",
            goal_op="<=", goal_value=100.0, goal_source="issue 27",
            detail={"idle_pss_mb": [mb(r["idle_pss_kib"]) for r in free]},
        ))  # fmt: skip

    # ------------------------------------------------------------ 6. the API example

    def api_example(self) -> None:
        """The API example on copy A of a real-size Applio run (3 saves), `janitor prune
        logs --keep-last 1` on copy B; then the trainer's resume rule on both."""
        cfg = self.cfg
        steps = [*cfg.run_steps, cfg.run_steps[-1] + 100]
        log(f"API example: one more full-size save (step {steps[-1]}), two hard-linked copies")
        m.run([PY, GEN_BIG, "save", self.path("logs"), *map(str, steps)], cwd=REPO)
        self.disk("API example run")
        roots = {side: self.path(f"api-{side}") for side in ("api", "cli")}
        for root in roots.values():  # hard links: ~no disk; removing a link frees no block
            os.makedirs(root)
            subprocess.run(["cp", "-al", self.path("logs"), root], check=True)
        shutil.rmtree(self.path("logs"))
        runs = {side: os.path.join(root, "logs", "alice") for side, root in roots.items()}
        before = {side: trees.file_sizes(root) for side, root in roots.items()}
        resume_before = {side: trainer_resume(run) for side, run in runs.items()}
        # the CLI first: the copies share their files (hard links), and a removed name whose
        # file has another name frees no byte (result.freed_size counts only bytes that left
        # the disk); once the CLI's names are gone, the API's removals free the bytes
        cmds = {
            "cli": [*J, "prune", "logs", "--keep-last", "1"],
            "api": [PY, "-c", API_EXAMPLE],
        }
        samples, outs, failures = {}, {}, {}
        for side, cmd in cmds.items():
            with tempfile.TemporaryFile(dir=self.tmp) as out:
                try:
                    samples[side] = asdict(m.run(cmd, stdout=out, cwd=roots[side]))
                except m.BenchError as exc:
                    failures[side] = str(exc)
                out.seek(0)
                outs[side] = out.read().decode("utf-8", "replace")
        after = {side: trees.file_sizes(root) for side, root in roots.items()}
        resume = {side: trainer_resume(run) for side, run in runs.items()}
        freed = {side: sum(before[side].values()) - sum(after[side].values()) for side in roots}
        allocated = {side: trees.disk_usage(root) for side, root in roots.items()}
        lines = outs["api"].splitlines()
        try:
            expected = int(lines[0])
            api_freed_text, api_errors = lines[1].split(" ", 1)
            api_freed = int(api_freed_text)
        except (IndexError, ValueError):
            expected, api_freed, api_errors = None, None, None
            failures.setdefault("api", f"unexpected output: {outs['api'][-500:]!r}")
        journal = os.path.join(roots["cli"], "logs", ".janitor", "journal.jsonl")
        cli_freed = 0
        with contextlib.suppress(OSError), open(journal, encoding="utf-8") as fh:
            for line in fh:
                event = json.loads(line)
                if event.get("event") == "remove":
                    cli_freed += event["size"]
        last = steps[-1]
        checks = {
            "runs without error": not failures and api_errors == "()",
            f"resume step before = {last}": all(
                r == {"G": last, "D": last} for r in resume_before.values()
            ),
            f"resume step after API = after CLI = {last}": (
                resume["api"] == resume["cli"] == {"G": last, "D": last}
            ),
            "expected_freed_size = bytes gone from disk = result.freed_size = CLI's freed": (
                expected is not None
                and expected == freed["api"] == api_freed == freed["cli"] == cli_freed
            ),
            "files left identical by name": set(after["api"]) == set(after["cli"]),
        }
        ok = all(checks.values())
        self.raw["api_example"] = {
            "steps": steps,
            "code": API_EXAMPLE,
            "cli": cmds["cli"][len(J) :],
            "files_before": before["api"],
            "resume_before": resume_before,
            "resume_after": resume,
            "expected_freed_size": expected,
            "result_freed_size": api_freed,
            "result_errors": api_errors,
            "freed_on_disk_bytes": freed,
            "cli_journal_freed_bytes": cli_freed,
            "files_after": {side: sorted(a) for side, a in after.items()},
            "allocated_after_bytes": allocated,
            "samples": samples,
            "stdout": {side: o[-2000:] for side, o in outs.items()},
            "failures": failures,
            "checks": checks,
        }
        log(f"API example: {'ok' if ok else 'FAILED'} {checks}")
        if expected is not None and ok:
            shown = f"resume {last} (G and D); freed {expected:,} B = expected; errors ()"
        else:
            shown = "; ".join(k for k, v in checks.items() if not v) + " FAILED"
        cli_shown = (
            f"`janitor prune logs --keep-last 1`: resume {resume['cli']['G']}, "
            f"freed {cli_freed:,} B"
        )
        self.api_figure = Figure(
            "6-api-example", "6 API example on a real-size run: resume step, freed == expected",
            m.summary([1.0 if ok else 0.0]), "", cli_shown, goal="equal", goal_on="value",
            goal_op=">=", goal_value=1.0, goal_source="brief", text=shown, detail=checks,
        )  # fmt: skip
        for root in roots.values():
            shutil.rmtree(root)

    # ------------------------------------------------------------ trees (built before any
    # mass deletion: on this ext4 without a journal, creating files right after deleting
    # many is much slower)

    def build_trees(self) -> None:
        cfg = self.cfg
        root = self.path("scan")
        os.makedirs(root)
        log(f"writing the scan tree: {cfg.scan_runs} runs × {cfg.scan_sets} sets")
        t0 = time.perf_counter()
        self.scan_files = trees.build_tree(
            root, cfg.scan_runs, range(1, cfg.scan_sets + 1), self.data
        )
        self.raw["scan_tree"] = {
            "runs": cfg.scan_runs,
            "sets_per_run": cfg.scan_sets,
            "files": self.scan_files,
            "file_bytes": len(self.data),
            "write_s": time.perf_counter() - t0,
        }
        took = self.raw["scan_tree"]["write_s"]
        log(f"{self.scan_files} files in {took:.1f} s; copying the prune trees")
        t0 = time.perf_counter()
        for rep in range(cfg.prune_reps):
            for side in ("janitor", "find"):
                trees.copy_runs(root, cfg.prune_runs, self.path("prune", f"{rep}-{side}"))
        self.raw["prune_copies_s"] = time.perf_counter() - t0
        for mode in ("inotify", "poll"):
            trees.build_tree(self.path(f"watch-{mode}"), cfg.watch_runs, (1, 2), self.data)
        # Untimed: write the new trees back now, so no measured scan or delete races the
        # kernel's writeback of 200k fresh inodes (nothing is dropped from the page cache).
        t0 = time.perf_counter()
        os.sync()
        self.raw["sync_s"] = time.perf_counter() - t0
        self.disk("trees built")

    # ------------------------------------------------------------ 3. scan at scale

    def scan(self) -> None:
        cfg = self.cfg
        root = self.path("scan")
        cmds = {
            "janitor scan --no-cache": [*J, "scan", root, "--no-cache"],
            "find": ["find", root, "-printf", "%s %p\n"],
            "janitor scan": [*J, "scan", root],
            "janitor scan, one process": [*J, "scan", root],
            "janitor prune --dry-run": [*J, "prune", root, "--keep-last", "1", "--dry-run", "-q"],
            "python scandir+stat": [PY, "-c", REF_STAT, root],
            "python scandir+stat+open+pread": [PY, "-c", REF_READ, root],
        }
        log(f"scan: {cfg.scan_reps} repetitions of {', '.join(cmds)}")
        m.run(cmds["find"])  # untimed warm-up: dentries, inodes and file pages are cached
        m.run(cmds["python scandir+stat+open+pread"])
        # Untimed: writes the verdict cache of every file (warm below). `scan --json` reads
        # every file; the text report reads only the newest sets of each run (the others are
        # "not checked") and caches just those, which would leave the dry run below cold.
        first = m.run([*cmds["janitor scan"], "--json"])
        cache = os.path.join(root, ".janitor", "verdicts.cache")
        self.raw["scan_cache"] = {"first_scan": asdict(first), "bytes": os.path.getsize(cache)}
        envs = {"janitor scan, one process": {**os.environ, "JANITOR_WORKERS": "1"}}
        samples: dict[str, list[m.Sample]] = {k: [] for k in cmds}
        for _ in range(cfg.scan_reps):
            for name, cmd in cmds.items():
                samples[name].append(m.run(cmd, env=envs.get(name)))
        # untimed: janitor and its scan workers together (GNU time gives one process's peak);
        # PSS, so that pages the workers share with janitor since the fork count once
        tree = [m.tree_pss_peak_kib(cmds["janitor scan --no-cache"]) for _ in range(cfg.scan_reps)]
        self.raw["scan_tree_pss_kib"] = tree
        self.raw["scan"] = {k: [asdict(s) for s in v] for k, v in samples.items()}
        w = {k: m.walls(v) for k, v in samples.items()}
        r = {k: m.rss_mb(v) for k, v in samples.items()}
        n = self.scan_files
        label = f"{n:,} files ({cfg.scan_runs} runs × {cfg.scan_sets:,} sets)"
        find = "`find -printf '%s %p'`"
        self.add(Figure(
            "3-scan-wall", f"3 `janitor scan --no-cache` (cold), {label}: wall",
            w["janitor scan --no-cache"], "s", find, w["find"], goal="≤ 4×", goal_on="ratio",
            goal_op="<=", goal_value=4.0, goal_source="brief",
        ))  # fmt: skip
        self.add(Figure(
            "3-scan-warm", "3 `janitor scan`, verdict cache valid (warm), same tree: wall",
            w["janitor scan"], "s", find, w["find"], goal="≤ 2.5×", goal_on="ratio",
            goal_op="<=", goal_value=2.5, goal_source="brief",
        ))  # fmt: skip
        self.add(Figure(
            "3-scan-rss-tree",
            "3 `janitor scan --no-cache`, same tree: peak memory of janitor and its workers (PSS)",
            m.summary([k * 1024 / 1e6 for k in tree]), "MB", find, r["find"], goal="≤ 80 MB",
            goal_on="value", goal_op="<=", goal_value=80.0, goal_source="brief",
        ))  # fmt: skip
        self.add(Figure(
            "3-scan-rss", "3 `janitor scan --no-cache`, same tree: peak RSS of one process",
            r["janitor scan --no-cache"], "MB", find, r["find"], goal="report",
        ))  # fmt: skip
        self.add(Figure(
            "3-scan-warm-one",
            "3 `janitor scan` (warm) in one process (`JANITOR_WORKERS=1`), same tree: wall",
            w["janitor scan, one process"], "s", find, w["find"], goal="report",
        ))  # fmt: skip
        self.add(Figure(
            "3-scan-warm-rss", "3 `janitor scan` (warm), same tree: peak RSS",
            r["janitor scan"], "MB", find, r["find"], goal="report",
        ))  # fmt: skip
        self.add(Figure(
            "3-ref-stat", "3 reference: python os.scandir + stat only, same tree",
            w["python scandir+stat"], "s", find, w["find"], goal="reference",
        ))  # fmt: skip
        self.add(Figure(
            "3-ref-read", "3 reference: python scandir + stat + open/pread each file",
            w["python scandir+stat+open+pread"], "s", find, w["find"], goal="reference",
        ))  # fmt: skip
        self.add(Figure(
            "4-plan-vs-scan",
            f"4 `prune --dry-run` (plan only, cache valid), {n // 2:,} sets: wall",
            w["janitor prune --dry-run"], "s", "`janitor scan` (warm, one process)",
            w["janitor scan, one process"],
            goal="≤ 1.2×", goal_on="ratio", goal_op="<=", goal_value=1.2, goal_source="bench",
        ))  # fmt: skip
        self.scan_w = w

    # ------------------------------------------------------------ 4. prune throughput

    def prune(self) -> None:
        cfg = self.cfg
        last = cfg.scan_sets
        keep = {
            os.path.join(trees.run_name(r), f"{k}_{last}.pth")
            for r in range(cfg.prune_runs)
            for k in ("G", "D")
        }
        files = cfg.prune_runs * cfg.scan_sets * 2
        removed = files - len(keep)
        log(f"prune: {cfg.prune_reps} repetitions on fresh copies of {files:,} files")
        js, fs, journal = [], [], []
        for rep in range(cfg.prune_reps):
            jroot = self.path("prune", f"{rep}-janitor")
            js.append(m.run([*J, "prune", jroot, "--keep-last", "1", "--quiet"]))
            left = trees.files_under(jroot)
            if left != keep:
                raise m.BenchError(f"janitor prune left {len(left)} files, expected {len(keep)}")
            jpath = os.path.join(jroot, ".janitor", "journal.jsonl")
            with open(jpath, "rb") as fh:
                journal.append({"bytes": os.path.getsize(jpath), "lines": sum(1 for _ in fh)})
            shutil.rmtree(jroot)
            froot = self.path("prune", f"{rep}-find")
            fcmd = ["find", froot, "-name", "*_*.pth", "!", "-name", f"*_{last}.pth", "-delete"]
            fs.append(m.run(fcmd))
            left = trees.files_under(froot)
            if left != keep:
                raise m.BenchError(f"find -delete left {len(left)} files, expected {len(keep)}")
            shutil.rmtree(froot)
        self.raw["prune"] = {
            "runs": cfg.prune_runs,
            "sets_per_run": cfg.scan_sets,
            "files": files,
            "removed_per_rep": removed,
            "janitor": [asdict(s) for s in js],
            "find_delete": [asdict(s) for s in fs],
            "journal": journal,
        }
        rate_j = m.summary([removed / s.wall for s in js])
        rate_f = m.summary([removed / s.wall for s in fs])
        self.add(Figure(
            "4-prune-rate",
            f"4 `prune --keep-last 1`, {cfg.prune_runs} runs × {cfg.scan_sets:,} sets "
            f"({removed:,} files removed): files/s",
            rate_j, "files/s", "`find -delete`", rate_f, goal="≥ 0.8×", goal_on="ratio",
            goal_op=">=", goal_value=0.8, goal_source="brief",
            detail={"wall_janitor": m.walls(js), "wall_find": m.walls(fs)},
        ))  # fmt: skip
        self.add(Figure(
            "4-prune-rss", "4 `prune`, same copies: peak RSS", m.rss_mb(js), "MB",
            "`find -delete`", m.rss_mb(fs), goal="report",
        ))  # fmt: skip
        self.prune_journal = journal

    # ------------------------------------------------------------ 5. the watcher

    def _start_watcher(
        self, label: str, root: str, extra: Sequence[str], keep: int = 1, env: dict | None = None
    ):
        out = open(self.path(f"{label}.log"), "wb")  # noqa: SIM115 - closed in _stop_watcher
        cmd = [*J, "watch", root, "--keep-last", str(keep), *extra]
        t0 = time.perf_counter()
        proc = m.spawn(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        return {"proc": proc, "out": out, "t0": t0, "cmd": cmd, "log": self.path(f"{label}.log")}

    def _log_text(self, w) -> str:
        with open(w["log"], encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def _wait_ready(self, w, gone: Sequence[str], timeout: float = 180.0) -> float:
        """Until the start pass is done ("watching" logged) and ``gone`` files are removed."""
        proc = w["proc"]
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                m.LIVE.discard(proc)
                raise m.BenchError(
                    f"watcher exited {proc.returncode}:\n{self._log_text(w)[-1500:]}"
                )
            if "watching " in self._log_text(w) and not any(map(os.path.exists, gone)):
                return time.perf_counter() - w["t0"]
            if time.perf_counter() - w["t0"] > timeout:
                raise m.BenchError(f"watcher start pass not done after {timeout:g} s")
            time.sleep(0.02)

    def _stop_watcher(self, w) -> dict:
        w["proc"].send_signal(signal.SIGTERM)
        rc, maxrss = m.reap(w["proc"], 30)
        w["out"].close()
        text = self._log_text(w)
        return {"exit_code": rc, "ru_maxrss_kib": maxrss, "last_line": text.strip()[-300:]}

    def _idle(self, watchers: dict, idle: float | None = None) -> dict:
        """CPU time and RSS of each watcher, and of a sleeping interpreter, over one window
        (``idle`` seconds, else the configured window)."""
        idle = self.cfg.idle if idle is None else idle
        sleeper = m.spawn(
            [PY, "-c", f"import time; time.sleep({idle + 60:g})"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # the workers finish whatever the start pass left; the sleeper starts
        pids = {name: w["proc"].pid for name, w in watchers.items()}
        pids["sleeper"] = sleeper.pid
        c0 = {name: m.cpu_seconds(pid) for name, pid in pids.items()}
        t0 = time.monotonic()
        rss: dict[str, list[float]] = {name: [] for name in pids}
        while time.monotonic() - t0 < idle:
            time.sleep(1.0)
            for name, pid in pids.items():
                rss[name].append(m.memory_kib(pid)["VmRSS"] * 1024 / 1e6)
        c1 = {name: m.cpu_seconds(pid) for name, pid in pids.items()}
        t1 = time.monotonic()
        hwm = {name: m.memory_kib(pid)["VmHWM"] * 1024 / 1e6 for name, pid in pids.items()}
        sleeper.terminate()
        m.reap(sleeper, 10)
        out = {}
        for name in watchers:
            out[name] = {
                "window_s": t1 - t0,
                "cpu_s": c1[name] - c0[name],
                "cpu_pct": 100 * (c1[name] - c0[name]) / (t1 - t0),
                "vmrss_mb": rss[name],
                "vmhwm_mb": hwm[name],
                "sleeper_cpu_pct": 100 * (c1["sleeper"] - c0["sleeper"]) / (t1 - t0),
                "sleeper_vmrss_mb": rss["sleeper"],
            }
        return out

    def _latency(self, run: str, step: int, reps: int, timeout: float = 60.0) -> list[float]:
        """Write G then D of step+1 (plain open/write/close); time until step's set is gone."""
        out = []
        for _ in range(reps):
            old = [os.path.join(run, f"{k}_{step}.pth") for k in ("G", "D")]
            if not all(map(os.path.exists, old)):
                raise m.BenchError(f"latency: {old} missing before the save")
            for k in ("G", "D"):
                trees.write_file(os.path.join(run, f"{k}_{step + 1}.pth"), self.data)
            t0 = time.perf_counter()  # the set is complete when D is closed
            while any(map(os.path.exists, old)):
                if time.perf_counter() - t0 > timeout:
                    raise m.BenchError(f"latency: {old} still there after {timeout:g} s")
                time.sleep(0.005)
            out.append(time.perf_counter() - t0)
            step += 1
            time.sleep(0.5)
        return out

    def watch(self) -> None:
        cfg = self.cfg
        old = [
            os.path.join(trees.run_name(r), f"{k}_1.pth")
            for r in range(cfg.watch_runs)
            for k in ("G", "D")
        ]

        # Start passes one after the other, then one idle window for both watchers (and a
        # sleeping interpreter as the baseline), then the inotify save-to-prune delay.
        ino_root, poll_root = self.path("watch-inotify"), self.path("watch-poll")
        log(f"watch: inotify and --poll 5 start passes over {cfg.watch_runs} runs each")
        wi = self._start_watcher("watch-inotify", ino_root, [])
        ino = {"start_pass_s": self._wait_ready(wi, [os.path.join(ino_root, p) for p in old])}
        wp = self._start_watcher("watch-poll5", poll_root, ["--poll", "5"])
        poll = {"start_pass_s": self._wait_ready(wp, [os.path.join(poll_root, p) for p in old])}
        log(f"watch: {cfg.idle:g} s idle window (both watchers)")
        window = self._idle({"inotify": wi, "poll5": wp})
        ino.update(window["inotify"])
        poll.update(window["poll5"])
        poll.update(self._stop_watcher(wp))
        log(f"watch (inotify, --settle 10): {cfg.latency_reps} saves")
        run0 = trees.run_name(0)
        ino["latency_s"] = self._latency(os.path.join(ino_root, run0), 2, cfg.latency_reps)
        ino.update(self._stop_watcher(wi))

        # polling every 1 s with --settle 2: save-to-prune delay
        log(f"watch (--poll 1 --settle 2): {cfg.latency_reps} saves")
        w = self._start_watcher("watch-poll1", poll_root, ["--poll", "1", "--settle", "2"])
        self._wait_ready(w, [])
        p1 = {"latency_s": self._latency(os.path.join(poll_root, run0), 2, cfg.latency_reps)}
        p1.update(self._stop_watcher(w))
        self.raw["watch"] = {"inotify": ino, "poll5": poll, "poll1_settle2": p1}

        idle = f"{cfg.idle:g} s"
        for key, mode, d in (("inotify", "inotify", ino), ("poll", "--poll 5", poll)):
            self.add(Figure(
                f"5-{key}-cpu", f"5 `watch` ({mode}), idle CPU over {idle}",
                m.summary([d["cpu_pct"]]), "%", "sleeping python",
                m.summary([d["sleeper_cpu_pct"]]), with_ratio=False, goal="≤ 1%", goal_on="value",
                goal_op="<=", goal_value=1.0, goal_source="brief",
            ))  # fmt: skip
            self.add(Figure(
                f"5-{key}-rss", f"5 `watch` ({mode}), VmRSS while idle", m.summary(d["vmrss_mb"]),
                "MB", "`python -c 'time.sleep()'`", m.summary(d["sleeper_vmrss_mb"]),
                goal="≤ 60 MB", goal_on="value", goal_op="<=", goal_value=60.0,
                goal_source="brief", detail={"vmhwm_mb": d["vmhwm_mb"]},
            ))  # fmt: skip
        self.add(Figure(
            "5-inotify-latency", "5 `watch` (inotify, --settle 10): set complete → older set gone",
            m.summary(ino["latency_s"]), "s", goal="≤ 1 s", goal_on="value", goal_op="<=",
            goal_value=1.0, goal_source="bench",
        ))  # fmt: skip
        self.add(Figure(
            "5-poll-latency", "5 `watch` (--poll 1 --settle 2): set complete → older set gone",
            m.summary(p1["latency_s"]), "s", "poll + settle", m.summary([3.0]),
            goal="≤ 4 s", goal_on="value", goal_op="<=", goal_value=4.0, goal_source="bench",
        ))  # fmt: skip
        codes = [ino["exit_code"], poll["exit_code"], p1["exit_code"]]
        self.add(Figure(
            "5-sigterm", "5 `watch`: exit code after SIGTERM (3 watchers)",
            m.summary([max(abs(c) if c is not None else 999 for c in codes)]), "",
            goal="0", goal_on="value", goal_op="<=", goal_value=0.0, goal_source="brief",
            detail={"exit_codes": codes}, text=", ".join(map(str, codes)),
        ))  # fmt: skip

    # ------------------------------------------------------------ 5b. watch --min-free

    def _big_set(self, run: str, step: int, g: int, d: int) -> None:
        """A trainer's save: G then D, each a structurally complete zip of ``g``/``d`` bytes,
        written in 8 MB chunks (plain writes, as torch.save)."""
        import zipfile

        os.makedirs(run, exist_ok=True)
        chunk = b"\0" * (8 << 20)
        for kind, size in (("G", g), ("D", d)):
            name, stem = os.path.join(run, f"{kind}_{step}.pth"), f"{kind}_{step}"
            with zipfile.ZipFile(name, "w") as z:  # torch's layout: the pickle first
                z.writestr(f"{stem}/data.pkl", b"\x80\x02}q\x00.")
                self._stream(z, f"{stem}/data/0", size, chunk)

    @staticmethod
    def _stream(z, entry: str, size: int, chunk: bytes) -> None:
        with z.open(entry, "w") as fh:
            left = size
            while left > 0:
                fh.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)

    def min_free(self) -> None:
        """The watcher's added cost of ``--min-free`` on a real tmpfs: idle CPU beside the
        same watcher without it, and the time from a completed save that took free space
        below what the watcher keeps (the floor and room for the run's next save) to that
        being restored (statvfs f_bavail)."""
        cfg = self.cfg
        if os.geteuid() != 0:
            self.notes.append("5b skipped: mounting a tmpfs needs root")
            return
        scale = 100 if cfg.quick else 1  # full: a 440 MB G and an 860 MB D per save
        idle_s = min(cfg.idle, 5.0) if cfg.quick else cfg.idle
        g, d = 440_000_000 // scale, 860_000_000 // scale
        per_set = g + d
        mnt = self.path("minfree-tmpfs")
        os.makedirs(mnt)
        size = 6 * per_set + (64 << 20)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], check=True)
        try:
            floored, plain = os.path.join(mnt, "floored"), os.path.join(mnt, "plain")
            for step in (1, 2):
                self._big_set(os.path.join(floored, "r"), step, g, d)
                self._big_set(os.path.join(plain, "r"), step, g, d)
            st = os.statvfs(mnt)
            free = st.f_bavail * st.f_frsize
            floor = free - per_set // 2  # the next save takes free space below it
            log(f"watch --min-free: {per_set / 1e6:.0f} MB sets on a {size / 1e6:.0f} MB tmpfs")
            wf = self._start_watcher("minfree-on", floored, ["--min-free", str(floor)], keep=100)
            self._wait_ready(wf, [])
            wp = self._start_watcher("minfree-off", plain, [], keep=100)
            self._wait_ready(wp, [])
            window = self._idle({"on": wf, "off": wp}, idle_s)
            wp_stop = self._stop_watcher(wp)
            # what the watcher keeps free: the floor, and room for the active run's next save
            target, latency = floor + per_set, []
            for step in range(3, 3 + cfg.latency_reps):
                self._big_set(os.path.join(floored, "r"), step, g, d)
                t0 = time.perf_counter()  # the set is complete when D is closed
                st = os.statvfs(mnt)
                if st.f_bavail * st.f_frsize >= target:
                    raise m.BenchError("min-free: the save left free space above the target")
                while True:
                    st = os.statvfs(mnt)
                    if st.f_bavail * st.f_frsize >= target:
                        break
                    if time.perf_counter() - t0 > 60:
                        raise m.BenchError("min-free: the floor not restored after 60 s")
                    time.sleep(0.005)
                latency.append(time.perf_counter() - t0)
                time.sleep(0.5)
            wf_stop = self._stop_watcher(wf)
        finally:
            subprocess.run(["umount", "-l", mnt], check=False)
        codes = [wf_stop["exit_code"], wp_stop["exit_code"]]
        self.raw["min_free"] = {
            "idle": window, "latency_s": latency, "set_bytes": per_set, "exit_codes": codes,
        }  # fmt: skip
        on, off = window["on"], window["off"]
        self.add(Figure(
            "5b-min-free-cpu", f"5b `watch --min-free` idle CPU over {idle_s:g} s",
            m.summary([on["cpu_pct"]]), "%", "the same `watch` without --min-free",
            m.summary([off["cpu_pct"]]), with_ratio=False, goal="≤ 1%", goal_on="value",
            goal_op="<=", goal_value=1.0, goal_source="issue 25",
        ))  # fmt: skip
        self.add(Figure(
            "5b-min-free-latency",
            f"5b `watch --min-free` (inotify): save complete → min-free + room for the next "
            f"save restored ({per_set / 1e6:.0f} MB sets)",
            m.summary(latency), "s", goal="≤ 1 s", goal_on="value", goal_op="<=",
            goal_value=1.0, goal_source="bench",
        ))  # fmt: skip

    # ------------------------------------------------------------ notes

    def make_notes(self, machine: dict) -> None:
        cfg, raw, n = self.cfg, self.raw, self.notes
        figs = {f.key: f for f in self.figures}
        med = lambda key: figs[key].janitor["median"]  # noqa: E731
        bmed = lambda key: figs[key].baseline["median"]  # noqa: E731
        n.append(
            f"Machine: {machine['cores']} cores ({machine['cpu_model']}), "
            f"{machine['ram_bytes'] / 2**30:.1f} GiB RAM, Python {machine['python']}, "
            f"torch {machine['torch']}, janitor {machine['janitor_rev']}; load average "
            f"{machine['loadavg_start']} at start, {machine['loadavg_end']} at end."
        )
        n.append(
            "Page cache: nothing is dropped. Each side had an untimed warm-up run and both "
            "sides read the same, already cached files; sides alternate in every repetition. "
            "The synthetic trees are flushed with one untimed `sync` before they are measured. "
            "`*` marks a goal chosen by the bench where the brief set none."
        )
        help_floor = med("1-help-wall-vs-floor") - bmed("1-help-wall-vs-floor")
        n.append(
            f"Start-up: `janitor --help` {num(med('1-help-wall-vs-torch'))} s and "
            f"`janitor scan` of one full-size run {num(med('1-scan-wall-vs-torch'))} s, against "
            f"{num(bmed('1-help-wall-vs-torch'))} s to import torch and "
            f"{num(bmed('1-help-wall-vs-floor'))} s for a bare interpreter: janitor's imports "
            f"cost ~{num(help_floor)} s before any work. `python -c 'import janitor'` "
            f"{num(med('1-import-wall'))} s at {num(med('1-import-rss'))} MB; heavy modules "
            f"it loads: {raw['import_janitor_heavy_modules']['import'] or 'none'} "
            f"(with `janitor.scan` resolved: "
            f"{raw['import_janitor_heavy_modules']['janitor.scan'] or 'none'})."
        )
        one = raw["extract_one"]
        per_file = raw["extract_batch"]["marginal_s_per_file"]
        n.append(
            f"Extraction: {one['source_bytes'] / 1e6:.0f} MB G → "
            f"{one['output_bytes']['janitor'] / 1e6:.1f} MB small model (naive: "
            f"{one['output_bytes']['naive'] / 1e6:.1f} MB). The batch pays start-up and the "
            f"torch import once; each further file costs ~{num(per_file)} s "
            f"(one-file run: {num(self.extract_one_wall)} s)."
        )
        files = raw["scan_tree"]["files"]
        w = self.scan_w
        cold_s = w["janitor scan --no-cache"]["median"]
        warm_s = w["janitor scan"]["median"]
        one_s = w["janitor scan, one process"]["median"]
        workers = min(len(os.sched_getaffinity(0)), 8)
        stat_s = w["python scandir+stat"]["median"]
        read_s = w["python scandir+stat+open+pread"]["median"]
        startup = med("1-help-wall-vs-torch")
        sc = raw["scan_cache"]
        n.append(
            f"Scan at scale ({files:,} files, written in {raw['scan_tree']['write_s']:.0f} s): "
            f"`find` {num(w['find']['median'])} s; a Python walk with os.scandir + stat "
            f"{num(stat_s)} s; adding one open + pread per file (what the completeness check "
            f"needs) {num(read_s)} s. `janitor scan --no-cache` {num(cold_s)} s stats every file "
            f"and reads the ends of only those its report depends on (each run's sets from the "
            f"newest down to the newest complete one, and any set written after it; the others "
            f"are reported as not checked); `janitor scan` with a valid verdict "
            f"cache {num(warm_s)} s stats each file and opens none ({num(one_s)} s in one "
            f"process, `JANITOR_WORKERS=1`: the runs are built by {workers} forked worker "
            f"processes, one per CPU, which send back only each run's printed block). "
            f"janitor's modules are compiled to bytecode first, as pip does on install. "
            f"Start-up is ~{num(startup)} s of each. The first, untimed `janitor scan "
            f"--json` (which reads every file and writes the cache, "
            f"{sc['bytes'] / 1e6:.1f} MB) took {num(sc['first_scan']['wall'])} s."
        )
        pr = raw["prune"]
        j = self.prune_journal
        n.append(
            f"Prune: {pr['removed_per_rep']:,} files removed per repetition "
            f"({pr['runs']} runs × {pr['sets_per_run']:,} sets, fresh `cp -a` copies), "
            f"janitor {show(figs['4-prune-rate'].detail['wall_janitor'], 's')} vs "
            f"`find -delete` {show(figs['4-prune-rate'].detail['wall_find'], 's')}. "
            f"janitor also wrote a {j[0]['bytes'] / 1e6:.1f} MB journal "
            f"({j[0]['lines']:,} lines) per repetition. The prune copies cover "
            f"{pr['runs']} of the {cfg.scan_runs} runs to keep `make bench` under 10 minutes; "
            f"`BENCH_PRUNE_RUNS={cfg.scan_runs}` prunes the whole tree."
        )
        wt = raw["watch"]
        n.append(
            f"Watcher: start pass over {cfg.watch_runs} runs (removing {cfg.watch_runs} sets) "
            f"took {num(wt['inotify']['start_pass_s'])} s (inotify) and "
            f"{num(wt['poll5']['start_pass_s'])} s (--poll 5) including start-up; peak RSS "
            f"(VmHWM) {num(wt['inotify']['vmhwm_mb'])} MB and {num(wt['poll5']['vmhwm_mb'])} MB; "
            f"idle CPU {wt['inotify']['cpu_s']:.2f} s and {wt['poll5']['cpu_s']:.2f} s of "
            f"CPU in {cfg.idle:g} s. SIGTERM exit codes: "
            f"{figs['5-sigterm'].detail['exit_codes']}."
        )
        api = raw["api_example"]
        walls = {side: api["samples"].get(side, {}).get("wall") for side in ("api", "cli")}
        n.append(
            f"API example: one full-size Applio run with saves {api['steps']} "
            f"({sum(api['files_before'].values()) / 1e9:.2f} GB), two hard-linked copies; "
            f"README's example on one ({num(walls['api'] or 0)} s), `janitor prune logs "
            f"--keep-last 1` on the other ({num(walls['cli'] or 0)} s). Trainer's resume step "
            f"before {api['resume_before']['api']}, after the API {api['resume_after']['api']}, "
            f"after the CLI {api['resume_after']['cli']}; expected_freed_size "
            f"{api['expected_freed_size']}, result.freed_size {api['result_freed_size']}, "
            f"bytes gone (st_size of the files before minus after) {api['freed_on_disk_bytes']}, "
            f"CLI journal {api['cli_journal_freed_bytes']}; files left: "
            f"{', '.join(api['files_after']['api'])}. Checks: {api['checks']}."
        )
        met = [f for f in self.figures if f.met is True]
        missed = [f for f in self.figures if f.met is False]
        n.append(f"Goals met: {len(met)} of {len(met) + len(missed)}.")
        for f in missed:
            value = f.ratio if f.goal_on == "ratio" else f.janitor["median"]
            shown = f"{value:.2f}×" if f.goal_on == "ratio" else show(f.janitor, f.unit)
            star = "*" if f.goal_source == "bench" else ""
            n.append(f"Missed: {f.title}: {shown} against {f.goal}{star}.")


# ---------------------------------------------------------------- machine, output


def machine_info() -> dict:
    info = {"cores": os.cpu_count(), "python": platform.python_version()}
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                info["ram_bytes"] = int(line.split()[1]) * 1024
    info["cpu_model"] = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    for pkg in ("torch", "janitor"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            info[pkg] = None
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
            text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    info["janitor_rev"] = rev
    info["janitor_imported_from"] = subprocess.run(  # by the children (PYTHONPATH, main)
        [PY, "-c", "import janitor; print(janitor.__file__)"], capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    info["kernel"] = platform.release()
    info["rss_method"] = m.RSS_METHOD
    info["loadavg_start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


def write_results(doc: dict, path: Path = RESULTS) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _interrupt(signum, frame):  # SIGTERM behaves like Ctrl-C: clean up, exit
    raise KeyboardInterrupt


def main() -> int:
    cfg = config_from_env()
    os.chdir(REPO)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    # Children (the console script too) import janitor from this checkout, not from whatever
    # checkout the venv's editable install names (a worktree shares the main clone's venv).
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    # janitor as pip installs it: with its modules' bytecode (pip compiles a wheel's files
    # as it installs them). An editable install under PYTHONDONTWRITEBYTECODE (set here)
    # would compile every module again at each start: ~40 ms of each timed command.
    compileall.compile_dir(str(REPO / "janitor"), quiet=1)
    machine = machine_info()
    machine["bytecode"] = "janitor's modules compiled before timing (as pip does on install)"
    tmp = tempfile.mkdtemp(prefix="janitor-bench-")
    m.SCRATCH = tmp
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    log(f"{'QUICK ' if cfg.quick else ''}bench in {tmp}; janitor = {' '.join(J)}")
    bench = Bench(cfg, tmp)
    only_scan = os.environ.get("BENCH_ONLY", "") == "scan"
    only_extract = os.environ.get("BENCH_ONLY", "") == "extract"
    try:
        if not only_scan:
            bench.generate_big()
            bench.startup()
            bench.extraction()
            bench.finalize_run()
            bench.watch_extraction()
            bench.installed_size()
        if not only_scan and not only_extract:
            exports.add_to(bench, Figure, 1 if cfg.quick else 3, log=log, quick=cfg.quick)  # 2b
            remote.add_to(bench, Figure, 1 if cfg.quick else 3, log=log)  # 2c: from a store
            objectstore.add_to(
                bench,
                Figure,
                J,
                1 if cfg.quick else 3,
                20 if cfg.quick else 100,
                log,
                trainer_resume,
                "tiny" if cfg.quick else "full",
            )  # 7: a bucket (moto's S3 API on 127.0.0.1)
            bench.api_example()
        if not only_extract:
            bench.build_trees()
            bench.scan()
            bench.prune()
        if not only_scan and not only_extract:
            bench.watch()
            bench.min_free()
            bench.add(bench.api_figure)  # last row of the table
        log("removing the trees")
        t0 = time.perf_counter()
        for name in os.listdir(tmp):
            p = os.path.join(tmp, name)
            if os.path.isdir(p):
                shutil.rmtree(p)
        bench.raw["cleanup_s"] = time.perf_counter() - t0
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    except m.BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        m.kill_live()
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"removed {tmp}")
    machine["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if not only_scan and not only_extract:  # the notes quote every section
        bench.make_notes(machine)
    total = time.perf_counter() - T0
    doc = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": cfg.quick,
        "duration_s": total,
        "machine": machine,
        "config": asdict(cfg),
        "janitor_cmd": J,
        "peak_temp_disk_bytes": bench.disk_peak,
        "temp_disk_bytes": bench.disk_points,
        "figures": [asdict(f) for f in bench.figures],
        "raw": bench.raw,
        "notes": bench.notes,
    }
    only = os.environ.get("BENCH_ONLY", "") if only_scan or only_extract else ""
    raw = f"bench/results-{only}.json" if only else "bench/results.json"
    write_results(doc, REPO / raw)
    mode = ("BENCH_QUICK=1 " if cfg.quick else "") + (f"BENCH_ONLY={only} " if only else "")
    print(f"## janitor bench ({mode}make bench, {doc['date']}, {total:.0f} s)\n")
    print(table(bench.figures))
    print()
    for note in bench.notes:
        print(f"- {note}")
    print(f"- Peak temp disk: {bench.disk_peak / 1e9:.2f} GB. Raw samples: {raw}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
