"""Assemble the report: run each section, render templates/index.html.j2, write atomically.

Everything from the data (class names, file names, run names) is untrusted: every template is
autoescaped, whatever its file name, and the page carries a Content-Security-Policy that allows only the
one script clearset wrote (by its hash), no plugins, no forms and no network.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import time
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from .. import __version__
from ..workspace import Workspace, write_bytes
from .sections import SECTIONS, ReportContext

log = logging.getLogger("clearset")


def content_security_policy(*scripts: str) -> str:
    """A policy that runs only ``scripts`` (inline, allowed by their SHA-256) and loads images from the
    report's own files: an injected ``<script>`` or ``onerror=`` attribute does not execute."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                      for s in scripts)
    return (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src 'self' file: data:; "
            "object-src 'none'; base-uri 'none'; form-action 'none'")


def template_environment() -> Environment:
    """Jinja2 with autoescape on for every template (``select_autoescape()`` would skip ``.html.j2``)."""
    env = Environment(loader=PackageLoader("clearset", "reporting/templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v, d=1: "–" if v is None else f"{100 * v:.{d}f}%"
    env.filters["num"] = lambda v: "–" if v is None else f"{v:,}"
    return env


def build_report(workspace: str | Path | Workspace, *, out_dir: str | Path | None = None) -> Path:
    """Write the HTML report of ``workspace`` and return the path of index.html."""
    ws = Workspace.of(workspace)
    ws.require_manifest()
    out = Path(out_dir) if out_dir else ws.report_dir
    if (out / "assets").exists():
        shutil.rmtree(out / "assets")  # stale pictures of sections that no longer apply
    ctx = ReportContext(ws, out)
    rendered = []
    env = template_environment()
    for sec in sorted((s for _, s in SECTIONS.items()), key=lambda s: s.order):
        data = sec.build(ctx)
        if data is None:
            continue
        body = Markup(env.get_template(f"sections/{sec.name}.html.j2").render(**data))  # escaped already
        rendered.append({"name": sec.name, "title": sec.title, "body": body})
    script = resources.files("clearset").joinpath("reporting/templates/sortable.js").read_text()
    page = env.get_template("index.html.j2").render(
        title=ws.root.resolve().name, sections=rendered, version=__version__, script=Markup(script),
        csp=content_security_policy(script), generated=time.strftime("%Y-%m-%d %H:%M"))
    index = out / "index.html"
    write_bytes(index, page.encode())
    log.info("report: %s", index)
    return index
