"""``janitor scan RUN --plot FILE.svg|png``: one picture of a run's plan. Steps on the x axis,
each set's size as a bar coloured by what the plan does with it (kept, and why; removed;
incomplete), the metric curve on a second axis when there is one.

matplotlib (extra ``vits-janitor[plot]``) is imported only here, only when asked; the figure
is drawn without pyplot (no global state, no display); the scan use case writes the bytes
atomically through the storage seam.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

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
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise JanitorError("--plot needs matplotlib: pip install 'vits-janitor[plot]'") from None

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
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=120, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


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
