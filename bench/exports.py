"""`make bench`, section 2b: every trainer's export from a full-size big checkpoint.

For so-vits-svc 4.1, Bert-VITS2 2.3, GPT-SoVITS v2 and v2Pro (SoVITS) and the GPT stage, one
full-size run is written at a time (``fixtures.trainers``, true manifest shapes) and
``janitor extract-small`` is timed against ``bench/naive_export.py``: a full ``torch.load``
of the big file, the same object built in memory, ``torch.save``. Sides alternate; one
untimed warm-up each; the run is removed before the next trainer's is written.

Also runnable on its own: ``python bench/exports.py`` (``BENCH_QUICK=1``: one repetition, one
trainer per export format).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import measure as m

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
NAIVE = str(REPO / "bench" / "naive_export.py")
GEN = """\
import sys
from pathlib import Path
from fixtures import trainers as T
what, root = sys.argv[1], Path(sys.argv[2])
if what == "so-vits-svc":
    T.write_sovits_run(root, (1600,), scale="full")
elif what == "bert-vits2":
    T.write_bert_vits2_run(root, (2000,), scale="full")
elif what == "gpt":
    T.write_gpt_run(root, "v2", (9,), scale="full")
else:
    T.write_gpt_sovits_run(root, what, (68,), scale="full")
"""

# (label, generator target, big file relative to the root, naive format, janitor's output)
CASES = (
    ("so-vits-svc 4.1 release", "so-vits-svc", "logs/44k/G_1600.pth", "release",
     "logs/44k/G_1600_release.pth"),
    ("Bert-VITS2 2.3 release", "bert-vits2", "Data/alice/models/G_2000.pth", "release",
     "Data/alice/models/G_2000_release.pth"),
    ("GPT-SoVITS v2 SoVITS", "v2", "logs/alice/logs_s2_v2/G_68.pth", "sovits",
     "SoVITS_weights_v2/alice_e4_s68.pth"),
    ("GPT-SoVITS v2Pro SoVITS", "v2Pro", "logs/alice/logs_s2_v2Pro/G_68.pth", "sovits",
     "SoVITS_weights_v2Pro/alice_e4_s68.pth"),
    ("GPT-SoVITS GPT (stage 1)", "gpt", "logs/alice/logs_s1_v2/ckpt/epoch=9-step=120.ckpt", "gpt",
     "GPT_weights_v2/alice-e10.ckpt"),
)  # fmt: skip


# BENCH_QUICK=1: one case per export format (release, sovits, gpt).
QUICK_CASES = tuple(c for c in CASES if c[1] == "gpt")  # the quick bench: one export


def measure(
    janitor: list[str], tmp: str, reps: int, log=print, quick: bool = False
) -> tuple[list[dict], dict]:
    """Wall and peak RSS per trainer, janitor and naive: (rows, raw samples). ``janitor``
    runs with cwd = the repo (``python -m janitor`` then imports this checkout). ``quick``:
    one export (GPT-SoVITS's GPT stage, the smallest full-size file)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    rows, raw = [], {}
    for label, target, big, fmt, out in QUICK_CASES if quick else CASES:
        root = os.path.join(tmp, "exports", target)
        log(f"exports: writing a full-size {label} run")
        m.run([PY, "-c", GEN, target, root], cwd=str(REPO), env=env)
        src, out_j = os.path.join(root, big), os.path.join(root, out)
        out_n = os.path.join(tmp, "exports", "naive.pth")
        jcmd = [*janitor, "extract-small", src, "--force"]
        ncmd = [PY, NAIVE, fmt, src, out_n]
        m.run(jcmd, cwd=str(REPO))  # warm-up (and the file janitor writes must be there)
        m.run(ncmd, env=env)
        if not os.path.exists(out_j):
            raise m.BenchError(f"janitor wrote no {out_j}")
        sizes = {"source": os.path.getsize(src), "janitor": os.path.getsize(out_j),
                 "naive": os.path.getsize(out_n)}  # fmt: skip
        js, ns = [], []
        for _ in range(reps):
            js.append(m.run(jcmd, cwd=str(REPO)))
            ns.append(m.run(ncmd, env=env))
        raw[label] = {"bytes": sizes, "janitor": [asdict(s) for s in js],
                      "naive": [asdict(s) for s in ns]}  # fmt: skip
        rows.append({"label": label, "bytes": sizes, "wall": (m.walls(js), m.walls(ns)),
                     "rss": (m.rss_mb(js), m.rss_mb(ns))})  # fmt: skip
        shutil.rmtree(root)
    return rows, raw


def main() -> int:
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    tmp = tempfile.mkdtemp(prefix="janitor-bench-exports-")
    m.SCRATCH = tmp
    janitor = [PY, "-m", "janitor"]  # this checkout's janitor (cwd = the repo)
    try:
        rows, _ = measure(
            janitor, tmp, 1 if quick else 3, log=lambda s: print(s, file=sys.stderr), quick=quick
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| export | source | janitor wall | naive wall | ratio | janitor RSS | naive RSS "
          "| ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        (jw, nw), (jr, nr) = r["wall"], r["rss"]
        print(f"| {r['label']} | {r['bytes']['source'] / 1e6:.0f} MB | {jw['median']:.2f} s | "
              f"{nw['median']:.2f} s | {jw['median'] / nw['median']:.2f}× | "
              f"{jr['median']:.0f} MB | {nr['median']:.0f} MB | "
              f"{jr['median'] / nr['median']:.2f}× |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())


def add_to(bench, figure, reps: int, log=print, quick: bool = False) -> None:
    """Section 2b of ``bench/run.py``: two figures per trainer (``figure`` is run.py's
    Figure), raw samples under ``raw["exports"]``."""
    rows, raw = measure([PY, "-m", "janitor"], bench.tmp, reps, log=log, quick=quick)
    bench.raw["exports"] = raw
    naive = "`naive_export.py`"
    for r in rows:
        (jw, nw), (jr, nr) = r["wall"], r["rss"]
        what = f"2b extract-small, {r['label']} ({r['bytes']['source'] / 1e6:.0f} MB)"
        slug = r["label"].split(" (")[0].replace(" ", "-").lower()
        bench.add(figure(f"2b-{slug}-wall", f"{what}: wall", jw, "s", naive, nw, goal="report"))
        bench.add(figure(f"2b-{slug}-rss", f"{what}: peak RSS", jr, "MB", naive, nr,
                         goal="report"))  # fmt: skip
