"""``clearset demo``: the whole pipeline on the bundled scikit-learn digits, offline, in about a minute.

Later stages (audit, curate, train...) add their steps here as they land.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .features import embed
from .evaluate.probe import linear_probe
from .data.ingest import ingest
from .reporting import build_report

log = logging.getLogger("clearset")
DEMO_SOURCE = "builtin:digits"
DEMO_BACKBONE = "efficientnet_lite0"
DEMO_SIZE = 64


@dataclass
class DemoResult:
    report: Path
    headline: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        width = max(len(k) for k in self.headline) if self.headline else 0
        lines = [f"  {k:<{width}}  {v}" for k, v in self.headline.items()]
        return "\n".join(["clearset demo on builtin:digits", *lines, f"report: {self.report.resolve()}"])


def run_demo(workspace: str | Path = "demo-workspace", *, force: bool = False) -> DemoResult:
    t0 = time.perf_counter()
    ws = ingest(DEMO_SOURCE, workspace, split=None, force=force)
    m = ws.manifest()
    emb = embed(ws, backbone=DEMO_BACKBONE, image_size=DEMO_SIZE, force=force)
    probe = linear_probe(ws, backbone=DEMO_BACKBONE, image_size=DEMO_SIZE)
    report = build_report(ws)
    counts = m["split"].value_counts(sort=False).to_dict()
    return DemoResult(report, {
        "images": f"{len(m):,} ({', '.join(f'{k} {v}' for k, v in counts.items())}), {len(ws.classes())} classes",
        "embedding": f"{emb.shape[1]}-d {DEMO_BACKBONE}@{DEMO_SIZE} ImageNet features"
                     + ("" if emb.cached else f", {emb.images_per_s:.0f} img/s ({emb.precision})"),
        "linear probe": f"{probe.accuracy:.1%} test accuracy ({probe.train_images} train -> {probe.test_images} test)",
        "time": f"{time.perf_counter() - t0:.1f} s",
    })
