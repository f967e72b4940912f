"""`make bench`, section 7: runs on object storage, against a real S3 API (moto's server on
127.0.0.1, in this process) behind a counting proxy (``tests.objectstore.FaultProxy``, which
counts every request the children make).

7a. ``janitor scan s3://bench/logs --no-cache`` of a bucket with N runs x 20 sets of tiny
    complete zips vs a plain s3fs listing of the same prefix (``S3FileSystem().find``): wall
    and requests;
7b. the re-scan with the verdict cache valid: ranged GETs (goal 0) and wall;
7c. the issue's acceptance run on the bucket: a real-size Applio run (steps 100/200/300)
    uploaded to ``s3://runs/logs/alice``; ``scan --json`` says newest complete 300,
    ``prune --keep-last 1`` leaves exactly the 300 set and the small models, and the trainer's
    own resume rule on a download of what is left picks 300 (a check, not a time);
7d. extract-small of its G_300 on the bucket: bytes fetched and the output.

``BENCH_QUICK=1`` writes that run at tiny scale (the same files, tensors shrunk): 7c checks
the same things; 7d checks the output and reports the bytes fetched without its goal (a tiny
file's share is not a full-size one's; 2c measures the share on a full-size G). At real size
7c and 7d took 4.4 of the quick bench's 8.8 minutes (moto copies the whole 438 MB object for
each of the ~317 ranged GETs).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import measure as m
import trees

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
LISTING = "import s3fs, sys; s3fs.S3FileSystem(use_listings_cache=False).find(sys.argv[1])"


class Store:
    """moto's S3 server on 127.0.0.1 with the counting proxy in front; the environment the
    children get (the standard AWS variables)."""

    def __init__(self) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        from tests.objectstore import ENV, FaultProxy

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.proxy = FaultProxy(f"http://{host}:{port}")
        self.env = {**os.environ, **ENV, "AWS_ENDPOINT_URL": self.proxy.url}
        self.client = boto3.client(
            "s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip

    def run(self, cmd: list[str], stdout=None) -> tuple[m.Sample, int, int]:
        """A child through the proxy: its sample, its requests and its ranged GETs."""
        self.proxy.requests.clear()
        sample = m.run(cmd, stdout=stdout, cwd=str(REPO), env=self.env)
        return sample, len(self.proxy.requests), self.proxy.ranged_gets()

    def keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def close(self) -> None:
        self.proxy.stop()
        self.server.stop()


def add_to(
    bench, Figure, janitor: list[str], reps: int, runs: int, log, resume, scale: str = "full"
) -> None:
    store = Store()
    try:
        _scan_rows(bench, Figure, store, janitor, reps, runs, log)
        _acceptance(bench, Figure, store, janitor, log, resume, scale)
    finally:
        store.close()


def _scan_rows(bench, Figure, store: Store, janitor, reps: int, runs: int, log) -> None:
    sets = 20
    store.client.create_bucket(Bucket="bench")
    data = trees.tiny_checkpoint()
    log(f"object storage: uploading {runs} runs x {sets} sets of tiny zips to s3://bench/logs")
    for r in range(runs):
        for s in range(1, sets + 1):
            for kind in ("G", "D"):
                key = f"logs/{trees.run_name(r)}/{kind}_{s * 100}.pth"
                store.client.put_object(Bucket="bench", Key=key, Body=data)
    url = "s3://bench/logs"
    cold, warm, listing = [], [], []
    counts: dict[str, list[tuple[int, int]]] = {"cold": [], "warm": [], "listing": []}
    store.run([*janitor, "scan", url])  # writes the verdict cache the warm side reads
    for _ in range(reps):  # sides alternate; each cold scan first drops the cache
        for side, cmd in (
            ("cold", [*janitor, "scan", url, "--no-cache"]),
            ("listing", [PY, "-c", LISTING, "bench/logs"]),
            ("warm", [*janitor, "scan", url]),
        ):
            sample, requests, ranged = store.run(cmd)
            {"cold": cold, "warm": warm, "listing": listing}[side].append(sample)
            counts[side].append((requests, ranged))
    files = runs * sets * 2
    bench.raw["object_storage_scan"] = {
        "runs": runs, "sets": sets, "objects": files,
        "samples": {k: [asdict(s) for s in v] for k, v in
                    (("cold", cold), ("warm", warm), ("listing", listing))},
        "requests_and_ranged_gets": counts,
    }  # fmt: skip
    req = {k: v[-1][0] for k, v in counts.items()}
    base = f"s3fs `find` of the prefix ({req['listing']} requests)"
    bench.add(Figure(
        "7a-bucket-scan-cold", f"7a scan of a bucket, {runs} runs x {sets} sets ({files:,} "
        f"objects), no cache: {req['cold']} requests, {counts['cold'][-1][1]} ranged GETs",
        m.walls(cold), "s", base, m.walls(listing), goal="report",
    ))  # fmt: skip
    ranged = [float(r) for _, r in counts["warm"]]
    bench.add(Figure(
        "7b-bucket-rescan-ranged-gets", f"7b re-scan of the unchanged bucket (cache valid): "
        f"ranged GETs ({req['warm']} requests, {m.walls(warm)['median']:.2f} s)",
        m.summary(ranged), "", base, m.walls(listing), with_ratio=False, goal="0",
        goal_on="value", goal_op="<=", goal_value=0.0, goal_source="brief",
    ))  # fmt: skip


def _acceptance(bench, Figure, store: Store, janitor, log, resume, scale: str) -> None:
    """The issue's acceptance run on the bucket (real size; ``scale`` "tiny": quick)."""
    tmp = tempfile.mkdtemp(prefix="objstore-", dir=bench.tmp)
    logs = os.path.join(tmp, "logs")
    steps = ["100", "200", "300"]
    size = "real-size" if scale == "full" else f"{scale}-scale"
    log(f"object storage: a {size} Applio run (steps 100/200/300) to s3://runs/logs/alice")
    target = "run+small" if scale == "full" else f"run+small@{scale}"
    m.run([PY, str(REPO / "bench" / "gen_big.py"), target, logs, *steps], cwd=str(REPO))
    run_dir = os.path.join(logs, "alice")
    store.client.create_bucket(Bucket="runs")
    for name in sorted(os.listdir(run_dir)):
        store.client.upload_file(os.path.join(run_dir, name), "runs", f"logs/alice/{name}")
    uploaded = sum(os.path.getsize(os.path.join(run_dir, n)) for n in os.listdir(run_dir))
    small = sorted(n for n in os.listdir(run_dir) if not n.startswith(("G_", "D_")))
    _extract_row(bench, Figure, store, janitor, run_dir, tmp, steps[-1], size)
    with tempfile.TemporaryFile(dir=tmp) as out:
        store.run([*janitor, "scan", "s3://runs/logs", "--json"], stdout=out)
        out.seek(0)
        doc = json.loads(out.read())
    newest = doc["runs"][0]["newest_complete_step"] if doc.get("runs") else None
    prune, requests, _ = store.run([*janitor, "prune", "s3://runs/logs", "--keep-last", "1"])
    left = [k.split("/")[-1] for k in store.keys("runs", "logs/alice/")]
    down = os.path.join(tmp, "down")
    os.makedirs(down)
    for name in left:
        if name.startswith(("G_", "D_")):
            store.client.download_file("runs", f"logs/alice/{name}", os.path.join(down, name))
    after = resume(down)
    checks = {
        "scan --json: newest complete 300": newest == 300,
        "prune --keep-last 1 leaves exactly G_300, D_300 and the small models": (
            sorted(n for n in left if n.startswith(("G_", "D_"))) == ["D_300.pth", "G_300.pth"]
            and set(small) <= set(left)
        ),
        "the trainer's resume on a download of what is left: 300": after == {"G": 300, "D": 300},
    }
    ok = all(checks.values())
    bench.raw["object_storage_acceptance"] = {
        "uploaded_bytes": uploaded, "newest_complete": newest, "left": left,
        "resume_after": after, "prune": asdict(prune), "prune_requests": requests,
        "checks": checks,
    }  # fmt: skip
    log(f"object storage acceptance: {'ok' if ok else 'FAILED'} {checks}")
    failed = "; ".join(k for k, v in checks.items() if not v)
    shown = f"newest complete {newest}; left G/D 300 + {len(small)} small files; resume 300"
    shown = shown if ok else failed
    bench.add(Figure(
        "7c-bucket-acceptance", f"7c {size} Applio run on a bucket ({uploaded / 1e9:.2f} GB): "
        "scan, prune --keep-last 1, trainer's resume", m.summary([1.0 if ok else 0.0]), "",
        f"prune {prune.wall:.1f} s, {requests} requests", goal="equal", goal_on="value",
        goal_op=">=", goal_value=1.0, goal_source="brief", text=shown, detail=checks,
    ))  # fmt: skip
    subprocess.run(["rm", "-rf", tmp], check=False)


def _same_small_model(a: str, b: str) -> bool:
    """The same small model but for the time of writing (Applio's creation_date)."""
    import torch

    mine, theirs = (torch.load(p, weights_only=True) for p in (a, b))
    for d in (mine, theirs):
        d.pop("creation_date", None)
    weights = mine.pop("weight"), theirs.pop("weight")
    return (
        mine == theirs
        and weights[0].keys() == weights[1].keys()
        and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    )


def _extract_row(
    bench, Figure, store: Store, janitor, run_dir: str, tmp: str, step: str, size_name: str
) -> None:
    """7d: extract-small of the G on the bucket vs of the same G on disk: bytes of the object
    fetched (goal <= 0.4x at real size) and the output, equal but for its time."""
    g = os.path.join(run_dir, f"G_{step}.pth")
    outs = {side: os.path.join(tmp, f"x-{side}") for side in ("local", "remote")}
    for out in outs.values():
        os.makedirs(out)
    local = m.run([*janitor, "extract-small", g, "-o", outs["local"]], cwd=str(REPO))
    store.proxy.served.clear()
    remote, requests, ranged = store.run(
        [*janitor, "extract-small", f"s3://runs/logs/alice/G_{step}.pth", "-o", outs["remote"]]
    )
    fetched = store.proxy.served.get(f"/runs/logs/alice/G_{step}.pth", 0)
    size = os.path.getsize(g)
    (a,), (b,) = (sorted(glob.glob(os.path.join(o, "*"))) for o in outs.values())
    same = os.path.basename(a) == os.path.basename(b) and _same_small_model(a, b)
    bench.raw["object_storage_extract"] = {
        "object_bytes": size, "fetched_bytes": fetched, "requests": requests,
        "ranged_gets": ranged, "same_output": same, "local": asdict(local),
        "remote": asdict(remote),
    }  # fmt: skip
    real = size_name == "real-size"
    goal = (
        {"goal": "≤ 0.4×, output equal", "goal_on": "value", "goal_op": "<=",
         "goal_value": 0.4, "goal_source": "brief"}
        if real else {"goal": "output equal"}
    )  # fmt: skip
    bench.add(Figure(
        "7d-bucket-extract-bytes", f"7d extract-small of the {size_name} G_{step} on the "
        f"bucket: bytes fetched / object ({fetched / 1e6:.1f} of {size / 1e6:.1f} MB, {ranged} "
        f"ranged GETs; output equal: {same}; wall {remote.wall:.1f} s vs {local.wall:.1f} s from "
        "disk, but moto copies the whole object for each ranged GET: 2c has the wall on a "
        "modelled link)",
        m.summary([fetched / size]), "×", **goal,
        text=None if same else f"{fetched / size:.3f}×, OUTPUT DIFFERS",
    ))  # fmt: skip
    if not real:
        bench.figures[-1].met = same
    if not same:
        bench.figures[-1].met = False
