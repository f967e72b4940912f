"""`make bench`, section 2c: extract-small of a full-size G on object storage (issue 15).

The store is the local disk seen through the storage seam as a remote one
(``fixtures.remote.RemoteLike``: no local path, every read counted); janitor fetches with
ranged reads only the zip's directory, the headers and the model's records. The baseline
downloads every byte of the object into a local copy of the run folder, then extracts it on
disk. Measured twice: straight from the disk (page cache: the cost of staging itself), and
through a simulated link (``Link``: 100 MB/s, 20 ms per request, 32 requests at a time),
where the bytes not downloaded are the point. Each side is a whole child process; both write
the same small model (a fixed creation date), checked byte for byte.

Child: ``python bench/remote.py ranged|download G OUT_DIR RESULT_JSON [link]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
CHUNK = 64 << 20  # the baseline's download: ranged GETs of this size, as a sync tool does
NOW = datetime(2026, 1, 1)


def child(mode: str, g: str, out_dir: str, result: str, link: bool) -> None:
    from fixtures.remote import Link, RemoteLike, install, url
    from janitor.torchio.extract import Options, extract_one

    store = RemoteLike(Link() if link else None)
    install(store)
    opts = Options(output=out_dir, force=True)
    size = os.path.getsize(g)
    t0 = time.perf_counter()
    if mode == "ranged":
        done = extract_one(url(g), opts, now=lambda: NOW)
    else:  # every byte into a local copy of the run folder, then extraction from the disk
        with tempfile.TemporaryDirectory(dir=os.path.dirname(out_dir)) as tmp:
            run = os.path.join(tmp, os.path.basename(os.path.dirname(g)))
            os.makedirs(run)
            for name in ("config.json", "model_info.json"):
                side = os.path.join(os.path.dirname(g), name)
                Path(run, name).write_bytes(store.read_bytes(side))
            ranges = [(i, min(i + CHUNK, size)) for i in range(0, size, CHUNK)]
            with open(os.path.join(run, os.path.basename(g)), "wb") as fh:
                for i in range(0, len(ranges), 4):  # four chunks in flight, ~256 MB held
                    for blob in store.read_ranges(g, ranges[i : i + 4]):
                        fh.write(blob)
            done = extract_one(os.path.join(run, os.path.basename(g)), opts, now=lambda: NOW)
    wall = time.perf_counter() - t0
    digest = hashlib.sha256(Path(done.output).read_bytes()).hexdigest()
    doc = {
        "fetched": store.fetched.get(g, 0), "requests": store.requests.get(g, 0), "size": size,
        "wall_inside": wall, "sha256": digest, "notes": list(done.notes),
    }  # fmt: skip
    Path(result).write_text(json.dumps(doc))


def add_to(bench, figure, reps: int, log=print) -> None:
    """Section 2c of ``bench/run.py`` (``figure`` is run.py's Figure) on ``bench.big_g``;
    raw samples under ``raw["remote_extract"]``."""
    import measure as m

    g = bench.big_g
    out = bench.path("remote-out")
    os.makedirs(out, exist_ok=True)
    result = bench.path("remote-out.json")
    raw: dict = {"source": g, "source_bytes": os.path.getsize(g)}
    samples: dict[str, list] = {}
    docs: dict[str, dict] = {}
    for link in (False, True):
        where = "link" if link else "disk"
        warm = 0 if link else 1  # the disk's first round warmed the page cache and imports
        log(f"remote extraction ({where}): {'warm-up + ' if warm else ''}{reps} repetitions, "
            "ranged vs download")  # fmt: skip
        for i in range(reps + warm):
            for mode in ("ranged", "download"):
                cmd = [PY, __file__, mode, g, out, result, *(["link"] if link else [])]
                s = m.run(cmd, cwd=str(REPO))
                docs[f"{mode}-{where}"] = json.loads(Path(result).read_text())
                if i or not warm:
                    samples.setdefault(f"{mode}-{where}", []).append(s)
    if len({d["sha256"] for d in docs.values()}) != 1:
        raise m.BenchError(f"remote and local extraction wrote different files: {docs}")
    shutil.rmtree(out)
    raw["runs"] = docs
    raw["samples"] = {k: [asdict(s) for s in v] for k, v in samples.items()}
    bench.raw["remote_extract"] = raw
    ranged = docs["ranged-disk"]
    share = ranged["fetched"] / ranged["size"]
    mb = raw["source_bytes"] / 1e6
    bench.add(figure(
        "2c-remote-bytes", f"2c extract-small from a store, full-size G ({mb:.0f} MB): bytes "
        f"fetched / object ({ranged['requests']} ranged reads)", m.summary([share]), "×",
        "download-then-extract: 1.00×", with_ratio=False, goal="≤ 0.4×", goal_on="value",
        goal_op="<=", goal_value=0.4, goal_source="brief",
    ))  # fmt: skip
    link = "simulated link 100 MB/s, 20 ms/request, 32 at a time"
    for where, shown in (("disk", "straight from the disk"), ("link", link)):
        bench.add(figure(
            f"2c-remote-wall-{where}", f"2c extract-small from a store ({shown}): wall",
            m.walls(samples[f"ranged-{where}"]), "s", "download-then-extract",
            m.walls(samples[f"download-{where}"]), goal="< 1×", goal_on="ratio", goal_op="<",
            goal_value=1.0, goal_source="bench",
        ))  # fmt: skip


if __name__ == "__main__":
    mode, g, out_dir, result, *rest = sys.argv[1:]
    child(mode, g, out_dir, result, link=rest == ["link"])
