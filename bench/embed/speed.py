"""clearset embed vs the loop a user would write, same model, resolution and images, in one run.

Baseline: a torch Dataset with torchvision transforms (ToPILImage, Resize, ToTensor, Normalize), a
DataLoader with batch 64 (best of num_workers 0 and 2), model.eval() under torch.no_grad(), fp32.
clearset: `clearset.features` at fp32 and at its default precision (auto: bf16 where the CPU has it).
Each variant runs in its own process (clearset tunes process-wide malloc settings; the baseline must
not inherit them). Prints images/s and ratios; writes bench/results/embed.json.

    .venv/bin/python bench/embed/speed.py [--n 4096] [--size 128] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, cpu_model, write_result  # noqa: E402

BASELINE = r'''
import sys, time, json, numpy as np, torch
from torch.utils.data import DataLoader, Dataset
import torchvision.transforms as T
from clearset.models.backbones import create_backbone
npz, size, name, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
x = np.load(npz)["x"]
bb = create_backbone(name)
tf = T.Compose([T.ToPILImage(), T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize(bb.mean, bb.std)])
class DS(Dataset):
    def __len__(self): return len(x)
    def __getitem__(self, i): return tf(x[i])
loader = DataLoader(DS(), batch_size=64, num_workers=workers)
model = bb.model.eval()
out = []
t = time.perf_counter()
with torch.no_grad():
    for batch in loader:
        out.append(model.forward_head(model.forward_features(batch), pre_logits=True).numpy())
dt = time.perf_counter() - t
np.save(sys.argv[5], np.concatenate(out))
print(json.dumps({"seconds": dt, "images_per_s": len(x) / dt}))
'''

CLEARSET = r'''
import sys, json, clearset
ws, size, name, precision = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
r = clearset.embed(ws, backbone=name, image_size=size, precision=precision, force=True)
print(json.dumps({"seconds": r.shape[0] / r.images_per_s, "images_per_s": r.images_per_s,
                  "precision": r.precision, "features": str(r.features)}))
'''


def run(code: str, *args) -> dict:
    env = dict(os.environ, CLEARSET_QUIET="1")
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4096, help="CIFAR-10 test images to embed")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "embed.json")
    args = ap.parse_args()

    import clearset

    CACHE.mkdir(parents=True, exist_ok=True)
    subset = CACHE / f"cifar10_test_{args.n}.npz"
    if not subset.exists():
        x = np.load(SHARED / "cifar10.npz")["x_test"][: args.n]
        np.savez(subset, x=x, y=np.load(SHARED / "cifar10.npz")["y_test"][: args.n])
    ws = clearset.ingest(str(subset), CACHE / f"ws_{args.n}")

    labels = np.load(subset)["y"]
    results = {}
    for workers in (0, 2):
        r = run(BASELINE, subset, args.size, args.backbone, workers, CACHE / f"baseline_{workers}.npy")
        r["probe_accuracy"] = probe(np.load(CACHE / f"baseline_{workers}.npy"), labels)
        results[f"baseline (DataLoader, num_workers={workers}, fp32)"] = r
        print(f"baseline num_workers={workers}: {r['images_per_s']:.1f} img/s", flush=True)
    reference = np.load(CACHE / "baseline_0.npy")
    for precision in ("fp32", "auto"):
        r = run(CLEARSET, ws.root, args.size, args.backbone, precision)
        feats = np.load(r["features"])  # read now: the next run rewrites the same backbone@size file
        cos = (feats * reference).sum(1) / (np.linalg.norm(feats, axis=1) * np.linalg.norm(reference, axis=1))
        r.update(min_cosine_to_baseline=float(cos.min()), mean_cosine_to_baseline=float(cos.mean()),
                 probe_accuracy=probe(feats, labels))
        results[f"clearset embed (precision={precision} -> {r['precision']})"] = r
        print(f"clearset precision={precision} ({r['precision']}): {r['images_per_s']:.1f} img/s", flush=True)

    base_key = max((k for k in results if k.startswith("baseline")), key=lambda k: results[k]["images_per_s"])
    base = results[base_key]["images_per_s"]
    ours_fp32 = next(v for k, v in results.items() if "precision=fp32" in k)
    ours_auto = next(v for k, v in results.items() if "precision=auto" in k)
    summary = {
        "bench": "embed", "images": args.n, "image_size": args.size, "backbone": args.backbone,
        "baseline": base_key, "baseline_images_per_s": base,
        "ratio_fp32": ours_fp32["images_per_s"] / base, "ratio_default": ours_auto["images_per_s"] / base,
        "default_precision": ours_auto["precision"], "runs": results,
        "probe": "logistic regression, first half of the images -> second half",
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": __import__("torch").__version__},
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, summary)
    print(f"\nbaseline (best): {base:.1f} img/s  [{base_key}]")
    print(f"clearset fp32:   {ours_fp32['images_per_s']:.1f} img/s  ratio {summary['ratio_fp32']:.2f}x")
    print(f"clearset {ours_auto['precision']}:   {ours_auto['images_per_s']:.1f} img/s  ratio "
          f"{summary['ratio_default']:.2f}x")
    for name, r in results.items():
        extra = (f", cosine to baseline min {r['min_cosine_to_baseline']:.5f} mean {r['mean_cosine_to_baseline']:.5f}"
                 if "min_cosine_to_baseline" in r else "")
        print(f"  {name}: linear probe {r['probe_accuracy']:.4f}{extra}")
    print(f"-> {args.out}")


def probe(features: np.ndarray, labels: np.ndarray) -> float:
    from clearset.evaluate.probe import probe_accuracy

    half = len(labels) // 2
    return probe_accuracy(features[:half], labels[:half], features[half:], labels[half:])


if __name__ == "__main__":
    main()
