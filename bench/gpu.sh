#!/usr/bin/env bash
# Time for cifar-resnet18 to reach 93% CIFAR-10 test accuracy on the device at hand (meant for a GPU),
# then (second stage, below) distillation at a paper-like number of iterations.
# Trains with clearset's trainer (--device auto: CUDA when visible), evaluates every epoch, and writes
# bench/results/gpu_resnet18.json with the device name, the epoch and the seconds at which the target was
# first reached (or the best accuracy if never). Tested on CPU with a tiny setting:
#   GPU_BENCH_EPOCHS=1 GPU_BENCH_TRAIN_IMAGES=512 bash bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EPOCHS=${GPU_BENCH_EPOCHS:-40}
N=${GPU_BENCH_TRAIN_IMAGES:-0}
TARGET=${GPU_BENCH_TARGET:-0.93}
OUT=${GPU_BENCH_OUT:-bench/results/gpu_resnet18.json}
"$PY" - "$EPOCHS" "$N" "$TARGET" "$OUT" <<'PYEOF'
import json, os, sys, time
from pathlib import Path
import numpy as np, pandas as pd, torch
import clearset
from clearset.train import train

epochs, n, target, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
shared = Path(os.environ.get("CLEARSET_SHARED_DATA", "../shared/data"))
ws = clearset.ingest(str(shared / "cifar10.npz"), "bench/.cache/ws_cifar10_gpu")
subset = None
if n:
    subset = Path("bench/.cache") / f"gpu_first_{n}.parquet"
    pd.DataFrame({"index": np.arange(n)}).to_parquet(subset)
t = time.perf_counter()
run = train(ws, recipe="cifar-resnet18", epochs=epochs, subset=subset, eval_every=1, force=True,
            name="gpu-resnet18")
wall = time.perf_counter() - t
elapsed, reached = 0.0, None
for m in run.metrics:
    elapsed += m["seconds"]
    if reached is None and m.get("eval_acc", 0) >= target:
        reached = {"epoch": m["epoch"], "train_seconds": round(elapsed, 1)}
dev = run.config["device"]
name = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"
result = {"bench": "gpu_resnet18", "date": time.strftime("%Y-%m-%d"), "device": name,
          "precision": run.config["precision"], "epochs": epochs, "train_images": n or 50000, "target": target,
          "reached": reached, "best_acc": max(m.get("eval_acc", 0) for m in run.metrics),
          "per_epoch": [{k: m.get(k) for k in ("epoch", "seconds", "images_per_s", "eval_acc")} for m in run.metrics],
          "wall_seconds_including_data": round(wall, 1)}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps({k: result[k] for k in ("device", "reached", "best_acc", "wall_seconds_including_data")}))
PYEOF

# Distillation at a paper-like scale (the distill issue): dm and datadam at IPC 10 with many more iterations
# than the CPU bench runs, evaluated with 1,000 epochs. MNIST is small enough to travel with the tree
# (CLEARSET_SHARED_DATA pointing at a folder holding mnist.npz); CIFAR-10 is added when its file is there.
# GPU_BENCH_DISTILL_ITERATIONS=0 skips this stage.
DIST_IT=${GPU_BENCH_DISTILL_ITERATIONS:-5000}
if [ "$DIST_IT" -gt 0 ]; then
  SHARED_DIR=${CLEARSET_SHARED_DATA:-../shared/data}
  SETS=mnist
  if [ -f "$SHARED_DIR/cifar10.npz" ]; then SETS=mnist,cifar10; fi
  "$PY" bench/distill.py --datasets "$SETS" --ipc 10 --methods random,dm,datadam --iterations "$DIST_IT" \
      --eval-epochs "${GPU_BENCH_DISTILL_EVAL_EPOCHS:-1000}" --out bench/results/gpu_distill.json
fi
