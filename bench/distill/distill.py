"""Dataset distillation on MNIST and CIFAR-10: random real images vs dm, datadam, dm+fyi, datadam+fyi at
equal iterations, each set evaluated by training fresh ConvNet-3s on it alone (3 seeds).

Every method runs the same loop (clearset.distill): real-image initialisation, DSA
color_crop_cutout_flip_scale_rotate (siamese), a fresh InstanceNorm ConvNet-3 (width 128) per iteration,
64 real images per class per iteration, SGD on the pixels (lr 1, momentum 0.5); datadam with p = 1 and
the card's loss weights. Evaluation: ConvNet-3, SGD lr 0.01 momentum 0.9 wd 5e-4, lr / 10 half-way,
DSA, ``--eval-epochs`` epochs (default 300), 3 seeds, the full test set. ``random`` is the initialisation
itself (the same images every method starts from, so the comparison isolates what matching adds).

The papers run 8,000-20,000 iterations on GPUs; here ``--iterations`` (default 200) on 2 CPU cores, so
absolute numbers sit below theirs. Numbers the method cards quote from the papers are printed beside ours.
Every set and evaluation is cached in the workspaces under bench/.cache, so an interrupted bench resumes.

    .venv/bin/python bench/distill/distill.py [--datasets mnist,cifar10] [--iterations 200] [--eval-epochs 300]
        [--methods random,dm,datadam,dm+fyi,datadam+fyi]

Writes bench/results/distill.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import clearset
from clearset.distill import distill, evaluate_distilled
from clearset.workspace import Workspace, read_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, write_result  # noqa: E402

IPCS = {"mnist": (1, 10, 50), "cifar10": (1, 10)}
# from methods.md (the DataDAM and FYI cards); None where the cards give no number
PAPER = {
    ("cifar10", 1, "datadam"): (32.0, "DataDAM paper, recalled in the card, unverified"),
    ("cifar10", 10, "datadam"): (54.2, "DataDAM paper, recalled in the card, unverified"),
    ("cifar10", 10, "dm"): (48.9, "DM, as quoted in the DWA authors' table"),
}


def workspace(name: str) -> Workspace:
    if name == "cifar10":
        return clearset.ingest(str(SHARED / "cifar10.npz"), CACHE / "ws_cifar10")
    if name == "mnist":
        return clearset.ingest(str(SHARED / "mnist.npz"), CACHE / "ws_mnist")
    raise SystemExit(f"unknown dataset {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="mnist,cifar10")
    ap.add_argument("--methods", default="random,dm,datadam,dm+fyi,datadam+fyi")
    ap.add_argument("--ipc", default="", help="comma-separated IPCs (default: 1,10,50 on MNIST, 1,10 on CIFAR-10)")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--eval-epochs", type=int, default=300)
    ap.add_argument("--eval-seeds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "distill.json"))
    args = ap.parse_args()
    from pathlib import Path

    import torch

    out = Path(args.out)
    result = read_json(out) if out.exists() else {}
    result.update({"bench": "distill", "date": time.strftime("%Y-%m-%d"), "iterations": args.iterations,
                   "eval_epochs": args.eval_epochs, "eval_seeds": args.eval_seeds,
                   "machine": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "2-core CPU (no GPU)",
                   "network": "ConvNet-3, width 128, InstanceNorm"})
    rows = {(r["dataset"], r["ipc"], r["method"]): r for r in result.get("rows", [])}
    for dataset in args.datasets.split(","):
        ws = workspace(dataset)
        ipcs = [int(i) for i in args.ipc.split(",")] if args.ipc else IPCS[dataset]
        for ipc in ipcs:
            for method in args.methods.split(","):
                t0 = time.perf_counter()
                d = distill(ws, method=method, ipc=ipc, iterations=args.iterations)
                meta = read_json(Workspace.sidecar_of(d.path))
                ev = evaluate_distilled(ws, d, seeds=args.eval_seeds, epochs=args.eval_epochs)
                paper = PAPER.get((dataset, ipc, method.split("+")[0]))
                row = {"dataset": dataset, "ipc": ipc, "method": method, "iterations": d.config["iterations"],
                       "test_acc_mean": round(ev["test_acc_mean"], 4), "test_acc_sd": round(ev["test_acc_sd"], 4),
                       "test_acc": ev["test_acc"], "distill_seconds": meta.get("seconds"),
                       "iterations_per_second": meta.get("iterations_per_second"),
                       "eval_seconds": ev["seconds"], "paper": paper[0] if paper else None,
                       "paper_source": paper[1] if paper else None}
                rows[(dataset, ipc, method)] = row
                print(f"{dataset:8s} ipc {ipc:3d} {method:12s} {100 * row['test_acc_mean']:6.2f} ± "
                      f"{100 * row['test_acc_sd']:.2f}  ({row['iterations']} it, "
                      f"{row['iterations_per_second'] or 0:.2f} it/s, {time.perf_counter() - t0:.0f} s)"
                      + (f"   paper {paper[0]}" if paper else ""), flush=True)
                result["rows"] = sorted(rows.values(), key=lambda r: (r["dataset"], r["ipc"], r["method"]))
                write_result(out, result)
    cifar10 = [r for r in result["rows"] if r["dataset"] == "cifar10" and r["ipc"] == 10 and r["iterations_per_second"]]
    if cifar10:
        result["cifar10_ipc10_seconds_per_1000_iterations"] = {
            r["method"]: round(1000 / r["iterations_per_second"], 1) for r in cifar10}
    write_result(out, result)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
