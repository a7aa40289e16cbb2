"""CIFAR-10 end to end: ingest both splits (60,000 images), embed with EfficientNet-Lite0 at 128 px, and
score the features with a linear probe (train 50,000 -> test 10,000). Each step runs as the CLI would,
in its own process, so the peak resident memory reported is that step's alone.
Writes bench/results/embed_cifar10.json.

    .venv/bin/python bench/embed/cifar10.py [--precision auto|fp32] [--workspace bench/.cache/ws_cifar10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import ROOT, SHARED, run_timed, write_result  # noqa: E402


def step(*args: str) -> dict:
    """Run `clearset -q ARGS` in a child process under /usr/bin/time: wall time, peak RSS, output."""
    out = run_timed(["-c", "from clearset.cli import main; main()", "-q", *args])
    return {"command": "clearset " + " ".join(args), "seconds": out["wall_s"], "peak_rss_mb": out["peak_rss_mb"],
            "output": out["stdout"].strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=ROOT / "bench" / ".cache" / "ws_cifar10")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "embed_cifar10.json")
    args = ap.parse_args()
    ws = str(args.workspace)
    steps = {"ingest": step("ingest", str(SHARED / "cifar10.npz"), "-o", ws, "--force")}
    steps["embed"] = step("embed", ws, "--backbone", "efficientnet_lite0", "--image-size", "128", "--precision",
                          args.precision, "--force")
    meta = json.loads(Path(ws, "features", "efficientnet_lite0@128.meta.json").read_text())
    steps["embed"].update(images_per_s=meta["images_per_s"], precision=meta["params"]["precision"])
    steps["probe"] = step("probe", ws, "--image-size", "128")
    result = {"bench": "embed_cifar10", "date": time.strftime("%Y-%m-%d"), "steps": steps,
              "linear_probe_accuracy": json.loads(Path(ws, "probe", "efficientnet_lite0@128.json").read_text())[
                  "accuracy"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    for name, s in steps.items():
        print(f"{name:7s} {s['seconds']:7.1f} s  peak RSS {s['peak_rss_mb']} MB  {s['output']}")
    print(f"linear-probe accuracy: {result['linear_probe_accuracy']:.4f} -> {args.out}")


if __name__ == "__main__":
    main()
