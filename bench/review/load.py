"""The review app under load: a workspace with >= 10^5 findings, the real server (uvicorn) in its own process.

Workspace: ``--images`` (default 120,000) random 16x16 images in 10 classes, stand-in 32-d features, and an
audit (label issues from given random out-of-fold probabilities, so most rows are flagged; outliers) --
what matters here is the number of findings, not their quality. Measured over HTTP from this process:
the first queue page (cold: the server's first request; warm: median of 20), a deep page, the JSON page,
a decision round-trip (median and p95 of 300 POST /api/decide, each fsynced), a bulk decision over a
filtered class, a cold and a warm thumbnail, and the server's RSS at start, after the pages and after
the decisions. Targets (issue 23): first page < 300 ms, decision round-trip < 100 ms, memory flat.
There is no baseline tool with the same job to run beside it; the numbers are absolute.

    .venv/bin/python bench/review/load.py [--images 120000]

Writes bench/results/review_load.json.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import CACHE, write_result  # noqa: E402


def build(n: int) -> Path:
    import clearset
    from clearset.audit import run_audit

    root = CACHE / f"ws_review_load_{n}"
    src = CACHE / f"review_load_{n}.npz"
    rng = np.random.default_rng(0)
    if not src.exists():
        x = rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)
        np.savez(src, x_train=x, y_train=rng.integers(0, 10, n))
    ws = clearset.ingest(str(src), root)
    feats = ws.features_path("standin", 16)
    if not feats.exists():
        feats.parent.mkdir(parents=True, exist_ok=True)
        np.save(feats, rng.normal(size=(n, 32)).astype(np.float32))
        ws.step("embed", params={"backbone": "standin", "image_size": 16, "precision": "fp32"}, inputs={},
                outputs=[feats], sidecar=ws.sidecar_of(feats)).finish()
    probs = CACHE / f"review_load_{n}_probs.npy"
    if not probs.exists():
        p = rng.dirichlet(np.full(10, 0.3), size=n)
        np.save(probs, p)
    run_audit(ws, pred_probs=probs, checks=["label_issues", "outliers"])
    return root


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=120_000)
    ap.add_argument("--decisions", type=int, default=300)
    args = ap.parse_args()
    root = build(args.images)
    import os

    load = os.getloadavg()[0]  # another job on the machine shows here (this bench does not need it quiet)
    review = root / "review"
    if review.exists():  # a fresh decision log for every run
        import shutil

        shutil.rmtree(review)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", "from clearset.cli import main; main()", "review", str(root),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    token, counts = None, ""
    for line in proc.stdout:
        found = re.search(r"token=(\S+)", line)
        if found:
            token = found.group(1)
            break
        counts = line
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> bytes:
        return urllib.request.urlopen(base + path, timeout=30).read()

    def post(path: str, body: dict) -> dict:
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-Clearset-Token": token or ""})
        return json.loads(urllib.request.urlopen(req, timeout=60).read())

    while True:
        try:
            urllib.request.urlopen(base + "/static/review.css", timeout=2).read()
            break
        except OSError:
            time.sleep(0.05)
    startup_s = time.perf_counter() - t0
    try:
        rss_start = rss_kb(proc.pid)
        first_page_cold = timed(lambda: get("/queue/label_issues"))
        warm = [timed(lambda: get("/queue/label_issues")) for _ in range(20)]
        total = json.loads(get("/api/queue/label_issues?per_page=1"))["total"]
        pages = -(-total // 24)
        deep = [timed(lambda: get(f"/queue/label_issues?page={pages - 1}")) for _ in range(10)]
        filtered = [timed(lambda: get("/queue/label_issues?label=3&min=0.5")) for _ in range(10)]
        json_page = [timed(lambda: get("/api/queue/label_issues?page=100")) for _ in range(10)]
        thumb_cold = timed(lambda: get("/image/12345.png?size=128"))
        thumb_warm = float(np.median([timed(lambda: get("/image/12345.png?size=128")) for _ in range(10)]))
        rss_pages = rss_kb(proc.pid)
        items = json.loads(get("/api/queue/label_issues?per_page=500&page=3"))["items"]
        findings = [it["finding"] for it in items][: args.decisions]
        while len(findings) < args.decisions:
            page = 4 + len(findings) // 500
            findings += [it["finding"] for it in json.loads(get(f"/api/queue/label_issues?per_page=500&page={page}"))["items"]]
        findings = findings[: args.decisions]
        rtt = [timed(lambda f=f, i=i: post("/api/decide", {"finding": f, "action": "relabel", "label": i % 10}))
               for i, f in enumerate(findings)]
        rss_decisions = rss_kb(proc.pid)
        bulk_t = time.perf_counter()
        bulk = post("/api/bulk", {"queue": "label_issues", "action": "keep", "label": 7, "min": 0.9})
        bulk_ms = (time.perf_counter() - bulk_t) * 1000
        apply_t = time.perf_counter()
        applied = post("/api/apply", {})
        apply_ms = (time.perf_counter() - apply_t) * 1000
        rss_end = rss_kb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    med = lambda xs: round(float(np.median(xs)), 1)  # noqa: E731
    result = {
        "bench": "review_load", "images": args.images, "findings": {"label_issues": total},
        "server_counts": counts.strip(), "load_average_1min_at_start": round(load, 2), "startup_s": round(startup_s, 2),
        "first_page_cold_ms": round(first_page_cold, 1), "first_page_warm_ms": med(warm),
        "deep_page_ms": med(deep), "filtered_page_ms": med(filtered), "json_page_ms": med(json_page),
        "thumbnail_cold_ms": round(thumb_cold, 1), "thumbnail_warm_ms": round(thumb_warm, 1),
        "decision_rtt_ms": {"median": med(rtt), "p95": round(float(np.percentile(rtt, 95)), 1),
                            "max": round(max(rtt), 1), "n": len(rtt)},
        "bulk": {"decided": bulk["decided"], "ms": round(bulk_ms, 1)},
        "apply": {"ms": round(apply_ms, 1), "version": applied["version"], "in_force": applied["in_force"]},
        "server_rss_mb": {"start": round(rss_start / 1024, 1), "after_pages": round(rss_pages / 1024, 1),
                          "after_decisions": round(rss_decisions / 1024, 1), "after_bulk_and_apply": round(rss_end / 1024, 1)},
        "targets": {"first_page_ms": 300, "decision_rtt_ms": 100},
    }
    result["met"] = {"first_page": result["first_page_cold_ms"] < 300 and result["first_page_warm_ms"] < 300,
                     "decision_rtt": result["decision_rtt_ms"]["p95"] < 100}
    print(json.dumps(result, indent=1))
    print(f"-> {write_result('review_load', result)}")


if __name__ == "__main__":
    main()
