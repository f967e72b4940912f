"""``janitor scan RUN --plot FILE.svg|png``: one picture of a run's plan. Steps on the x axis,
each set's size as a bar coloured by what the plan does with it (kept, and why; removed;
incomplete), the metric curve on a second axis when there is one. ``scan ROOT --plot``: the
root's disk use by run beside its file systems' free space (``draw_root``).

matplotlib (extra ``vits-janitor[plot]``) is imported only here, only when asked; the figure
is drawn without pyplot (no global state, no display); the scan use case writes the bytes
atomically through the storage seam.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

from janitor.domain.disk import RootPicture
from janitor.domain.errors import JanitorError, UsageError
from janitor.domain.plans import RunPlan, SetDecision

FORMATS = ("svg", "png")
KEEP, REMOVE, INCOMPLETE = "#2e7d32", "#c62828", "#9e9e9e"


def check_target(path: str) -> str:
    """The image format from the file name; a usage error for anything else."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise UsageError(f"--plot: {path}: the file name must end in .svg or .png")
    return ext


def draw_plan(
    rp: RunPlan,
    path: str,
    metric: Mapping[int, float] | None = None,
    metric_name: str | None = None,
) -> bytes:
    """The picture of ``rp`` in the format ``path`` names (svg or png)."""
    fmt = check_target(path)
    Figure, Patch = _matplotlib()
    decisions = rp.decisions
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    ax = fig.add_subplot()
    xs, gap, latest = _positions(decisions)
    colours = [
        INCOMPLETE if d.set.status == "incomplete" else (KEEP if d.keep else REMOVE)
        for d in decisions
    ]
    ax.bar(xs, [d.set.size / 1e6 for d in decisions], width=gap * 0.8, color=colours)
    for x, d in zip(xs, decisions, strict=True):
        if d.keep:
            ax.annotate(d.reasons[0] if d.reasons else "kept", (x, d.set.size / 1e6),
                        rotation=90, fontsize=7, ha="center", va="bottom",
                        xytext=(0, 2), textcoords="offset points")  # fmt: skip
    for x, d in latest:  # no step of its own: named under its bar
        ax.annotate(d.set.label, (x, 0), fontsize=7, ha="center", va="top",
                    xytext=(0, -14), textcoords="offset points")  # fmt: skip
    top = max((d.set.size for d in decisions), default=0) / 1e6
    ax.set_ylim(0, top * 1.45 or 1)  # room for the reasons above the bars
    ax.set_xlabel("step")
    ax.set_ylabel("set size (MB)")
    ax.set_title(f"{rp.run.name}: {rp.planner.describe()}", fontsize=10)
    handles = [Patch(color=KEEP, label="kept"), Patch(color=REMOVE, label="removed by the plan"),
               Patch(color=INCOMPLETE, label="incomplete")]  # fmt: skip
    if metric:
        twin = ax.twinx()
        xs = sorted(metric)
        (line,) = twin.plot(xs, [metric[x] for x in xs], color="#1565c0", linewidth=1.2,
                            label=metric_name or "metric")  # fmt: skip
        twin.set_ylabel(metric_name or "metric")
        handles.append(line)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return _save(fig, fmt)


def _matplotlib():
    """matplotlib's Figure and Patch, imported only when a picture is asked for."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise JanitorError("--plot needs matplotlib: pip install 'vits-janitor[plot]'") from None
    return Figure, Patch


def _save(fig, fmt: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=120, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


USE_PARTS = (  # (field of RunUse, label, colour)
    ("kept", "kept by the rules", KEEP),
    ("removable", "removable under the rules", REMOVE),
    ("small", "small models", "#1565c0"),
    ("trash", "trash (still on disk)", "#ef6c00"),
)
FREE, OTHER, FLOOR = "#cfd8dc", "#616161", "#6a1b9a"


def draw_root(picture: RootPicture, path: str) -> bytes:
    """A logs root: each run's bytes stacked (kept, removable under its rules, small models,
    trash) and, beside them, each file system holding runs: what its runs use, what else is
    on it, its free space, and the floor (``min-free``) where one is set. Every bar carries
    its numbers as its id (``run|part|bytes``, ``disk|part|bytes``): an svg says what it
    plots."""
    fmt = check_target(path)
    Figure, Patch = _matplotlib()
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    runs_ax, disks_ax = fig.subplots(1, 2, width_ratios=[3, 1] if picture.disks else [3, 0.01])
    names = [u.name for u in picture.runs]
    bottom = [0.0] * len(names)
    for part, label, colour in USE_PARTS:
        values = [getattr(u, part) for u in picture.runs]
        bars = runs_ax.bar(names, [v / 1e6 for v in values], bottom=bottom, color=colour,
                           label=label)  # fmt: skip
        for bar, u, v in zip(bars, picture.runs, values, strict=True):
            bar.set_gid(f"run|{u.name}|{part}|{v}")
        bottom = [b + v / 1e6 for b, v in zip(bottom, values, strict=True)]
    runs_ax.set_ylabel("MB")
    runs_ax.set_title(f"{picture.root}: disk use by run", fontsize=10)
    runs_ax.tick_params(axis="x", labelrotation=30 if len(names) > 6 else 0)
    handles = [Patch(color=c, label=label) for _, label, c in USE_PARTS]
    if picture.disks:
        _draw_disks(disks_ax, picture)
        handles += [Patch(color=OTHER, label="other files"), Patch(color=FREE, label="free")]
    else:
        disks_ax.set_axis_off()
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    return _save(fig, fmt)


def _draw_disks(ax, picture: RootPicture) -> None:
    by_path = {u.path: u for u in picture.runs}
    for i, d in enumerate(picture.disks):
        runs = sum(
            u.kept + u.removable + u.small + u.trash for p in d.runs if (u := by_path.get(p))
        )
        other = max(0, d.size - d.free - runs)
        bottom = 0.0
        for part, value, colour in (("runs", runs, KEEP), ("other", other, OTHER),
                                    ("free", d.free, FREE)):  # fmt: skip
            (bar,) = ax.bar([i], [value / 1e6], bottom=bottom, color=colour)
            bar.set_gid(f"disk|{d.mount}|{part}|{value}")
            bottom += value / 1e6
        if d.floor is not None:  # the free space janitor keeps: free must stay above it
            top = d.size / 1e6
            (line,) = ax.plot([i - 0.45, i + 0.45], [top - d.floor / 1e6] * 2, color=FLOOR,
                              linestyle="--", label="min-free floor")  # fmt: skip
            line.set_gid(f"disk|{d.mount}|floor|{d.floor}")
    ax.set_xticks(range(len(picture.disks)), [d.mount for d in picture.disks], fontsize=8)
    ax.set_ylabel("MB")
    ax.set_title("file systems", fontsize=10)


def _positions(decisions: Sequence[SetDecision]) -> tuple[list[float], float, list]:
    """Each set's place on the step axis, the bars' spacing, and the latest-only sets (no
    step: placed one spacing after the newest step, in their order) with their places."""
    steps = [d.set.step for d in decisions if d.set.step is not None]
    gap = min((b - a for a, b in zip(steps, steps[1:], strict=False)), default=1) or 1
    after = max(steps, default=0)
    xs: list[float] = []
    latest = []
    for d in decisions:
        if d.set.step is None:
            after += gap
            latest.append((after, d))
        xs.append(d.set.step if d.set.step is not None else after)
    return xs, gap, latest
