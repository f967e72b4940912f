"""``janitor ui``: the page served on this machine. Loopback only unless a host is asked for
(then a password is required), never a share link, analytics off."""

from __future__ import annotations

import os
from collections.abc import Sequence

from janitor.domain.errors import UsageError

INSTALL = "pip install 'vits-janitor[ui]'"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def need_gradio():
    """gradio, or one line saying how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise UsageError(f"the web page needs gradio: {INSTALL}") from None
    return gradio


def parse_auth(auth: str | None, host: str) -> tuple[str, str] | None:
    """``user:pass``; required when the page listens beyond this machine."""
    if auth is None:
        if host not in LOOPBACK:
            raise UsageError(
                f"--host {host}: the page would be reachable from other machines; "
                "give --auth USER:PASSWORD too"
            )
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise UsageError("--auth: expected USER:PASSWORD (both not empty)")
    return user, password


def launch(root: str, *, host: str = "127.0.0.1", port: int | None = None,
           auth: str | None = None, skip: Sequence[str] = (), block: bool = True):  # fmt: skip
    """Serve the page on ``root``; ``block=False`` returns the running app (tests)."""
    credentials = parse_auth(auth, host)
    need_gradio()
    from janitor.ui.page import build

    demo = build(os.path.abspath(root) if "://" not in root else root, skip)
    demo.queue()
    demo.launch(
        server_name=host, server_port=port, auth=credentials, share=False,
        prevent_thread_lock=not block, show_error=True, quiet=not block,
        inbrowser=False,
    )  # fmt: skip
    return demo
