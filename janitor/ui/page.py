"""The web page: a Gradio Blocks app over ``janitor.ui.handlers`` (which call the Python API).
``build(root)`` makes the standalone page (``janitor ui``); ``controls(root)`` adds the same
controls to the Blocks being built (a tab of a trainer's own web UI, as the Applio plugin
does). Only components that exist in Gradio 5.x and 6.x are used.

Every action disables the buttons while it runs, shows progress for long work, and turns an
error into one readable line (``gr.Error``), never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from janitor.ui import handlers as h

CSS = "footer {display: none !important}"


def _one_line(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Any exception of ``fn`` as a ``gr.Error`` of one line (gradio shows it, no traceback)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:  # the page must stay up: every failure is shown, in one line
            raise gr.Error(h.one_line(exc), print_exception=False) from None

    return wrapped


# --------------------------------------------------------------- the events, each one handler


@_one_line
def load(root: str, skip: Sequence[str] = ()):
    view = h.root_view(root, skip)
    first = view.choices[0][1] if view.choices else None
    return view.header, view.rows, gr.update(choices=view.choices, value=first)


@_one_line
def show_plan(run: str | None):
    view = h.dry_run(run)
    return view.text, view.rows, view.plan, gr.update(choices=view.steps, value=[])


@_one_line
def prune(run: str | None, shown, trash: bool, progress=gr.Progress()):  # noqa: B008
    view = h.prune(run, shown, trash, progress=progress)
    return view.text, view.rows, view.plan, gr.update(choices=view.steps, value=[])


@_one_line
def extract(run: str | None, steps: list[str], progress=gr.Progress()):  # noqa: B008
    return h.extract(run, steps, progress=progress)


@_one_line
def finalize(run: str | None, steps: list[str], dry_run: bool, trash: bool,
             progress=gr.Progress()):  # noqa: B008  # fmt: skip
    return h.finalize(run, steps, dry_run=dry_run, trash=trash, progress=progress)


@_one_line
def pin(run: str | None, steps: list[str]):
    return h.pin(run, steps)


@_one_line
def unpin(run: str | None, steps: list[str]):
    return h.pin(run, steps, unpin=True)


@_one_line
def trash(run: str | None):
    return h.trash_rows(run)


@_one_line
def restore(run: str | None, step: str):
    return h.restore(run, step), h.trash_rows(run)


@_one_line
def journal(run: str | None):
    return h.journal_rows(run)


def picked(run: str | None):
    """Another run chosen: its plan must be shown again before Prune may act."""
    return "Press **Dry run** to see this run's plan.", [], None


# --------------------------------------------------------------- the layout


def controls(root: str = "", skip: Sequence[str] = ()) -> dict[str, Any]:
    """The page's controls, added to the Blocks (or tab) being built; returned by name."""
    with gr.Row():
        root_box = gr.Textbox(root, label="Logs root", elem_id="root", scale=4)
        load_btn = gr.Button("Load", elem_id="load", scale=1)
    header = gr.Markdown(elem_id="header")
    runs = gr.Dataframe(headers=h.RUN_COLUMNS, value=[], interactive=False, elem_id="runs",
                        label="Runs")  # fmt: skip
    run = gr.Dropdown(choices=[], label="Run", elem_id="run", interactive=True)
    shown = gr.State(None)  # the plan the user has just seen: the only one Prune carries out
    with gr.Tab("Plan and prune"):
        with gr.Row():
            dry_btn = gr.Button("Dry run", elem_id="dry-run")
            prune_btn = gr.Button("Prune", variant="stop", elem_id="prune")
        use_trash = gr.Checkbox(False, label="Move to the trash instead of deleting",
                                info=h.TRASH_NOTE, elem_id="trash")  # fmt: skip
        plan_text = gr.Markdown(elem_id="plan-text")
        plan = gr.Dataframe(headers=h.PLAN_COLUMNS, value=[], interactive=False, elem_id="plan",
                            label="Plan: every set, keep or remove, and why")  # fmt: skip
    with gr.Tab("Small models, finalize, pins"):
        steps = gr.CheckboxGroup(choices=[], label="Steps (press Dry run to list them)",
                                 elem_id="steps")  # fmt: skip
        with gr.Row():
            extract_btn = gr.Button("Extract small models", elem_id="extract")
            pin_btn = gr.Button("Pin", elem_id="pin")
            unpin_btn = gr.Button("Unpin", elem_id="unpin")
        with gr.Row():
            final_dry = gr.Checkbox(True, label="Finalize as a dry run", elem_id="final-dry")
            finalize_btn = gr.Button("Finalize", variant="stop", elem_id="finalize")
        status = gr.Markdown(elem_id="status")
    with gr.Tab("Trash"):
        gr.Markdown(h.TRASH_NOTE)
        trash_rows = gr.Dataframe(headers=h.TRASH_COLUMNS, value=[], interactive=False,
                                  elem_id="trash-list")  # fmt: skip
        with gr.Row():
            restore_step = gr.Textbox("", label="Step to restore (empty: every step)",
                                      elem_id="restore-step")  # fmt: skip
            list_btn = gr.Button("List the trash", elem_id="list-trash")
            restore_btn = gr.Button("Restore", elem_id="restore")
        restore_text = gr.Markdown(elem_id="restore-text")
    with gr.Tab("Journal"):
        journal_btn = gr.Button("Show the journal", elem_id="show-journal")
        journal_rows = gr.Dataframe(headers=h.JOURNAL_COLUMNS, value=[], interactive=False,
                                    elem_id="journal")  # fmt: skip

    buttons = [load_btn, dry_btn, prune_btn, extract_btn, pin_btn, unpin_btn, finalize_btn,
               list_btn, restore_btn, journal_btn]  # fmt: skip

    def busy():
        return [gr.update(interactive=False) for _ in buttons]

    def idle():
        return [gr.update(interactive=True) for _ in buttons]

    def on(button, fn, inputs, outputs) -> None:
        """``fn`` on a click (API name: its own), every button disabled while it runs
        (enabled again after, also when it failed)."""
        button.click(busy, None, buttons, queue=False).then(
            fn, inputs, outputs, api_name=fn.__name__
        ).then(idle, None, buttons, queue=False)

    def load_root(root: str):
        return load(root, skip)

    plan_out = [plan_text, plan, shown, steps]
    on(load_btn, load_root, [root_box], [header, runs, run])
    on(dry_btn, show_plan, [run], plan_out)
    on(prune_btn, prune, [run, shown, use_trash], plan_out)
    on(extract_btn, extract, [run, steps], [status])
    on(pin_btn, pin, [run, steps], [status])
    on(unpin_btn, unpin, [run, steps], [status])
    on(finalize_btn, finalize, [run, steps, final_dry, use_trash], [status])
    on(list_btn, trash, [run], [trash_rows])
    on(restore_btn, restore, [run, restore_step], [restore_text, trash_rows])
    on(journal_btn, journal, [run], [journal_rows])
    run.change(picked, [run], [plan_text, plan, shown])
    return {"root": root_box, "header": header, "runs": runs, "run": run}


def build(root: str = "", skip: Sequence[str] = ()) -> gr.Blocks:
    """The standalone page on ``root`` (loaded when the page opens)."""
    with gr.Blocks(title="janitor", analytics_enabled=False) as demo:
        gr.Markdown("# janitor: checkpoints of training runs")
        parts = controls(root, skip)
        if root:
            demo.load(lambda r: load(r, skip), [parts["root"]],
                      [parts["header"], parts["runs"], parts["run"]])  # fmt: skip
    return demo
