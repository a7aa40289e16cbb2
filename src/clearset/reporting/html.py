"""Assemble the report: run each section, render templates/index.html.j2, write atomically."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from .. import __version__
from ..workspace import Workspace, write_bytes
from .sections import SECTIONS, ReportContext

log = logging.getLogger("clearset")


def build_report(workspace: str | Path | Workspace, *, out_dir: str | Path | None = None) -> Path:
    """Write the HTML report of ``workspace`` and return the path of index.html."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    ws.require_manifest()
    out = Path(out_dir) if out_dir else ws.report_dir
    if (out / "assets").exists():
        shutil.rmtree(out / "assets")  # stale pictures of sections that no longer apply
    ctx = ReportContext(ws, out)
    rendered = []
    env = Environment(loader=PackageLoader("clearset", "reporting/templates"), autoescape=select_autoescape(),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v, d=1: "–" if v is None else f"{100 * v:.{d}f}%"
    env.filters["num"] = lambda v: "–" if v is None else f"{v:,}"
    for sec in sorted((s for _, s in SECTIONS.items()), key=lambda s: s.order):
        data = sec.build(ctx)
        if data is None:
            continue
        body = env.get_template(f"sections/{sec.name}.html.j2").render(**data)
        rendered.append({"name": sec.name, "title": sec.title, "body": body})
    page = env.get_template("index.html.j2").render(
        title=ws.root.resolve().name, sections=rendered, version=__version__,
        generated=time.strftime("%Y-%m-%d %H:%M"))
    index = out / "index.html"
    write_bytes(index, page.encode())
    log.info("report: %s", index)
    return index
