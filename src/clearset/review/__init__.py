"""``clearset review WS``: look at the audit's findings, decide, and get a corrected dataset.

A local web app over the workspace (``app.py``); every decision goes to an append-only, fsynced log
(``decisions.py``); ``apply`` turns the decisions in force into a new manifest version and exports
(``apply.py``). The workspace's manifest and the user's data are never modified.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from pathlib import Path

from ..errors import ParameterError
from ..workspace import Workspace
from .apply import apply_review
from .decisions import open_log
from .findings import Findings, review_dir

log = logging.getLogger("clearset")

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(workspace: str | Path | Workspace, *, host: str = "127.0.0.1", port: int = 8765,
          allow_remote: bool = False, echo=print) -> None:
    """Start the review app and block until Ctrl-C. Beyond localhost only with ``allow_remote``."""
    import uvicorn

    from .app import create_app

    ws = Workspace.of(workspace)
    local = is_loopback(host)
    if not local and not allow_remote:
        raise ParameterError(f"--host {host}: the app would be reachable from other machines; add --allow-remote "
                             f"if that is what you want (writes then need the token in the printed URL)")
    if not 0 < port < 65536:
        raise ParameterError(f"--port {port}: use 1-65535 (0 is not allowed)")
    token = secrets.token_urlsafe(18)
    app = create_app(ws, token, allowed_hosts=list(LOCAL_NAMES) + ["testserver"] if local else None)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if not local:
        echo(f"warning: serving on {host}: anyone who can reach this machine and has the URL below can change "
             f"the review")
    counts = ", ".join(f"{k} {v}" for k, v in app.state.review.findings.counts().items())
    echo(f"review of {ws.root} ({counts})")
    echo(f"open http://{shown}:{port}/?token={token}   (Ctrl-C stops; decisions are saved as you make them)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["Findings", "apply_review", "is_loopback", "open_log", "review_dir", "serve"]
