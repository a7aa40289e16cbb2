#!/usr/bin/env bash
# GPU benches, meant for a lent GPU machine (one device call; see bench/README.md):
#  1. bench/device/gpu_resnet18.py: time for cifar-resnet18 to reach 93% CIFAR-10 test accuracy with clearset's
#     trainer (CUDA when visible, torch.compile on CUDA), evaluated every epoch -> $GPU_BENCH_OUT
#     (default bench/results/gpu_resnet18.json);
#  2. bench/distill/distill.py: random, dm and datadam at IPC 10 with a paper-like number of iterations, evaluated
#     with 1,000 epochs -> $GPU_BENCH_DISTILL_OUT (default bench/results/gpu_distill.json).
# Each stage runs under its own time limit (GPU_BENCH_TRAIN_SECONDS, GPU_BENCH_DISTILL_SECONDS; 0 = none).
# A training stopped by its limit is reported from its per-epoch checkpoint ("stopped_at_epoch").
# Data: $CLEARSET_SHARED_DATA (default ../shared/data); a device machine cannot see ../shared, so there
# CIFAR-10 travels as JPEG (bench/device/gpu_data.py) and is unpacked to gpudata/. Tested on CPU with a tiny setting:
#   GPU_BENCH_EPOCHS=1 GPU_BENCH_TRAIN_IMAGES=512 GPU_BENCH_DISTILL_ITERATIONS=2 GPU_BENCH_DISTILL_EVAL_EPOCHS=2 \
#     GPU_BENCH_OUT=/tmp/r.json GPU_BENCH_DISTILL_OUT=/tmp/d.json bash bench/device/gpu.sh
# Measured on an H100 (bench/results/gpu_*.json): ~5.6 s per ResNet-18 epoch after a ~45 s first epoch
# (compilation), dm 17 it/s, datadam 15 it/s; size the limits from these.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export PYTHONUNBUFFERED=1
OUT=${GPU_BENCH_OUT:-bench/results/gpu_resnet18.json}
rm -f "$OUT"
timeout "${GPU_BENCH_TRAIN_SECONDS:-0}" "$PY" bench/device/gpu_resnet18.py --epochs "${GPU_BENCH_EPOCHS:-40}" \
    --train-images "${GPU_BENCH_TRAIN_IMAGES:-0}" --target "${GPU_BENCH_TARGET:-0.93}" \
    --compile "${GPU_BENCH_COMPILE:-auto}" --out "$OUT"
status=$?
echo "resnet18 stage: exit $status"
if [ ! -f "$OUT" ]; then
  "$PY" bench/device/gpu_resnet18.py --from-checkpoint --out "$OUT"
fi

DIST_IT=${GPU_BENCH_DISTILL_ITERATIONS:-1500}
if [ "$DIST_IT" -gt 0 ]; then
  SHARED_DIR=${CLEARSET_SHARED_DATA:-../shared/data}
  SETS=""
  for s in cifar10 mnist; do [ -f "$SHARED_DIR/$s.npz" ] && SETS="$SETS${SETS:+,}$s"; done
  timeout "${GPU_BENCH_DISTILL_SECONDS:-0}" "$PY" bench/distill/distill.py --datasets "$SETS" --ipc 10 \
      --methods random,dm,datadam --iterations "$DIST_IT" --eval-epochs "${GPU_BENCH_DISTILL_EVAL_EPOCHS:-1000}" \
      --out "${GPU_BENCH_DISTILL_OUT:-bench/results/gpu_distill.json}"
  echo "distill stage: exit $?"
fi
