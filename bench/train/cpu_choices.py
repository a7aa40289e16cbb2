"""The CPU engineering choices of the fast recipes, each measured: training throughput (images per second
of forward + backward + optimiser step, the part that dominates a run) of clearset's networks under

- precision: fp32 against bf16 autocast (what ``device.py``'s probe picks on this machine is recorded);
- memory layout: channels_last against the default contiguous layout;
- batch size: 256 / 512 / 1024 / 2048 at the winning precision and layout;
- threads: 1 against all cores;
- torch.compile against eager (compile seconds reported apart from the steady-state throughput).

Each cell: the recipe's optimiser (``train.loop.make_optimizer``), ``warmup`` untimed steps, then
``steps`` timed steps on fixed random normalised images at the recipe's size. Networks: ``airbench``
(cifar-airbench), ``airbench_wide`` (cifar-airbench95) and ``efficientnet_lite0_ft`` at 64 px
(cifar-efficientnet-lite0-ft).

    .venv/bin/python bench/train/cpu_choices.py [--steps 6] [--models airbench,airbench_wide,...]
    .venv/bin/python bench/train/cpu_choices.py --quick      # airbench only, 2 timed steps

Writes bench/results/train_cpu_choices.json (or train_cpu_choices_quick.json).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from clearset.device import choose_precision
from clearset.models.cifar import create_model
from clearset.train.loop import make_optimizer
from clearset.train.recipes import get_recipe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
from common import write_result  # noqa: E402

RECIPE_OF = {"airbench": "cifar-airbench", "airbench_wide": "cifar-airbench95",
             "efficientnet_lite0_ft": "cifar-efficientnet-lite0-ft"}


def throughput(model: str, *, batch: int, bf16: bool, channels_last: bool, compile_: bool = False,
               steps: int, warmup: int = 2) -> dict:
    rec = get_recipe(RECIPE_OF[model])
    torch.manual_seed(0)
    net = create_model(model, 10, image_size=rec.image_size).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = make_optimizer(net, rec)
    forward = torch.compile(net) if compile_ else net
    x = torch.randn(batch, 3, rec.image_size, rec.image_size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(x).float(), y, label_smoothing=rec.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = time.perf_counter()
    for _ in range(warmup):
        step()
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t
    return {"model": model, "batch": batch, "precision": "bf16" if bf16 else "fp32",
            "layout": "channels_last" if channels_last else "contiguous", "compile": compile_,
            "threads": torch.get_num_threads(), "warmup_seconds": round(first, 2),
            "images_per_s": round(steps * batch / seconds, 1)}


def run_model(model: str, steps: int, quick: bool) -> list[dict]:
    default_batch = get_recipe(RECIPE_OF[model]).batch_size
    cells = []

    def cell(**kw) -> dict:
        kw.setdefault("batch", default_batch)
        cells.append(throughput(model, steps=steps, **kw))
        print(cells[-1], flush=True)
        return cells[-1]

    grid = [cell(bf16=b, channels_last=c) for b in (False, True) for c in (True, False)]
    best = max(grid, key=lambda r: r["images_per_s"])
    bf16, cl = best["precision"] == "bf16", best["layout"] == "channels_last"
    if quick:
        return cells
    for batch in (256, 512, 1024, 2048):
        if batch != default_batch:
            cell(batch=batch, bf16=bf16, channels_last=cl)
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
        try:
            cell(bf16=bf16, channels_last=cl)
        finally:
            torch.set_num_threads(threads)
    cell(bf16=bf16, channels_last=cl, compile_=True, warmup=2)
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per cell")
    ap.add_argument("--models", default=",".join(RECIPE_OF), help="comma-separated: " + ", ".join(RECIPE_OF))
    ap.add_argument("--quick", action="store_true", help="airbench only, the precision x layout grid, 2 steps")
    args = ap.parse_args()
    models = ["airbench"] if args.quick else [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(RECIPE_OF))
    if unknown:
        sys.exit(f"--models: unknown {unknown}; use {', '.join(RECIPE_OF)}")
    steps = 2 if args.quick else args.steps
    cells = [c for m in models for c in run_model(m, steps, args.quick)]
    probe = choose_precision("auto", torch.device("cpu"))
    eager = [c for c in cells if not c["compile"] and c["threads"] == torch.get_num_threads()]
    best = {m: max((c for c in eager if c["model"] == m), key=lambda c: c["images_per_s"]) for m in models}
    result = {"bench": "train_cpu_choices", "steps": steps, "cells": cells, "best": best,
              "auto_precision": {"precision": probe.precision, "reason": probe.reason}}
    print(write_result("train_cpu_choices_quick" if args.quick else "train_cpu_choices", result))


if __name__ == "__main__":
    main()
