"""Time to accuracy on CIFAR-10 (the shared JPEG-q75 copy): clearset's `cifar-airbench` recipe against the
plain PyTorch ResNet-18 loop most people write, given the same wall-clock training time, on this machine.

- clearset: `train(ws, recipe="cifar-airbench", eval_every=1)`: the test accuracy after every epoch (with
  the recipe's test-time flips and shifts), against the training seconds so far (evaluation excluded).
- baseline: torchvision transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize)
  through a DataLoader (num_workers 2), ResNet-18 (CIFAR stem), SGD Nesterov lr 0.1 momentum 0.9 wd 5e-4,
  batch 128, cosine over the epochs that fit in clearset's training time (the same seconds), fp32; its
  test accuracy after every epoch, without test-time augmentation (the loop people write has none).

Reported per seed: the curves, the time to 90% and 93%, and the accuracy at 5 / 15 / 30 / 60 minutes of
training (the last evaluation at or before each budget); then mean ± sd over seeds.

    .venv/bin/python bench/train/airbench.py [--seeds 3] [--epochs 10]
    .venv/bin/python bench/train/airbench.py --recipe cifar-efficientnet-lite0-ft --validation  # choose settings
    .venv/bin/python bench/train/airbench.py --quick     # 5,000 images, 2 epochs, one seed (CI-sized)

Each seed's arm is kept under bench/results/arms/train_airbench/ (committed, with its provenance): a
later invocation reuses it, so 3 hour-long seeds can be measured over several sessions.

Writes bench/results/train_airbench.json (or train_airbench_quick.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

import clearset
from clearset.io import atomic_path, write_json
from clearset.models.cifar import create_model
from clearset.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, synthetic.py
from common import CACHE, ROOT, SHARED, stamp, write_result  # noqa: E402

TARGETS = (0.90, 0.93)
BUDGETS_MIN = (5, 15, 30, 60)


def validation_npz() -> Path:
    """The first 45,000 CIFAR-10 training images as `train` and the last 5,000 as `test`: the split a
    recipe's settings are chosen on, so that the test labels never choose them (bench/.cache only)."""
    path = CACHE / "cifar10_validation.npz"
    if not path.exists():
        with np.load(SHARED / "cifar10.npz") as z, atomic_path(path) as tmp, open(tmp, "wb") as fh:
            x, y = z["x_train"], z["y_train"]
            np.savez(fh, x_train=x[:45000], y_train=y[:45000], x_test=x[45000:], y_test=y[45000:],
                     class_names=z["class_names"])
    return path


def workspace(train_images: int, validation: bool = False):
    """CIFAR-10 ingested once under bench/.cache (train + test; with ``validation`` the 45,000 / 5,000 split
    of the training images), the subset file of the first ``train_images`` training rows (None: all), and
    the arrays the baseline reads."""
    source = validation_npz() if validation else SHARED / "cifar10.npz"
    ws = clearset.ingest(str(source), CACHE / ("ws_cifar10_validation" if validation else "ws_cifar10"))
    with np.load(source) as z:
        x_tr, y_tr, x_te, y_te = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    subset = None
    if train_images:
        x_tr, y_tr = x_tr[:train_images], y_tr[:train_images]
        m = ws.manifest(["index", "split"])
        subset = CACHE / f"airbench_first_{train_images}{'_validation' if validation else ''}.parquet"
        pd.DataFrame({"index": m.loc[m["split"] == "train", "index"].to_numpy()[:train_images]}).to_parquet(subset)
    return ws, subset, (x_tr, y_tr, x_te, y_te)


def milestones(curve: list[tuple[float, float]]) -> dict:
    """Time to each target and accuracy at each budget, from (training seconds, test accuracy) points."""
    out = {f"time_to_{int(t * 100)}": next((s for s, a in curve if a >= t), None) for t in TARGETS}
    for m in BUDGETS_MIN:
        within = [a for s, a in curve if s <= 60 * m]
        out[f"acc_at_{m}min"] = max(within) if within else None
    return out


def clearset_arm(ws, subset, seed: int, recipe, epochs: int | None, eval_every: int) -> dict:
    t = time.perf_counter()
    run = train(ws, recipe=recipe, epochs=epochs, seed=seed, eval_every=eval_every, subset=subset)
    wall = time.perf_counter() - t
    seconds = np.cumsum([m["seconds"] for m in run.metrics])
    curve = [(round(float(s), 1), float(m["eval_acc"])) for s, m in zip(seconds, run.metrics) if "eval_acc" in m]
    meta = run.root / "run.meta.json"
    finished = json.loads(meta.read_text()).get("finished") if meta.exists() else None
    return {"curve": curve, "train_seconds": float(seconds[-1]), "final_acc": curve[-1][1], "run": run.name,
            "wall_seconds": None if run.cached else round(wall, 1),  # with loading, whitening and evaluations
            # a cached run was measured when it finished, by the code of that time: the arm's provenance
            # then records when the arm was written, not when it was measured
            "run_cached": run.cached, "run_finished": finished,
            "images_per_s": float(np.mean([m["images_per_s"] for m in run.metrics])), **milestones(curve)}


def baseline_arm(arrays, seed: int, seconds: float, probe_batches: int = 20) -> dict:
    """The plain loop, its epochs chosen so that its training takes about ``seconds``."""
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    x_tr, y_tr, x_te, y_te = arrays
    mean, std = (x_tr / 255.0).mean((0, 1, 2)), (x_tr / 255.0).std((0, 1, 2))
    train_tf = T.Compose([T.ToPILImage(), T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(mean, std)])
    test_x = ((torch.from_numpy(x_te).float() / 255.0 - torch.tensor(mean).float()) / torch.tensor(std).float())
    test_x = test_x.permute(0, 3, 1, 2).contiguous()

    class Arrays(Dataset):
        def __len__(self):
            return len(x_tr)

        def __getitem__(self, i):
            return train_tf(x_tr[i]), int(y_tr[i])

    torch.manual_seed(seed)
    net = create_model("resnet18_cifar", 10)
    loader = DataLoader(Arrays(), batch_size=128, shuffle=True, num_workers=2, persistent_workers=True)
    # how many epochs fit: time a few batches first (on a copy, so the real run starts fresh)
    probe = create_model("resnet18_cifar", 10)
    popt = torch.optim.SGD(probe.parameters(), lr=0.1, momentum=0.9)
    t0 = time.perf_counter()
    for b, (xb, yb) in enumerate(loader):
        loss = F.cross_entropy(probe(xb), yb)
        popt.zero_grad()
        loss.backward()
        popt.step()
        if b + 1 == probe_batches:
            break
    per_epoch = (time.perf_counter() - t0) / probe_batches * len(loader)
    epochs = max(1, math.floor(seconds / per_epoch))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    curve, trained = [], 0.0
    for _ in range(epochs):
        net.train()
        t = time.perf_counter()
        for xb, yb in loader:
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        trained += time.perf_counter() - t
        net.eval()
        with torch.inference_mode():
            pred = torch.cat([net(test_x[s : s + 1000]).argmax(1) for s in range(0, len(test_x), 1000)])
        curve.append((round(trained, 1), float((pred.numpy() == y_te).mean())))
        print(f"  baseline epoch {len(curve)}/{epochs}: {curve[-1]}", flush=True)
    return {"curve": curve, "epochs": epochs, "train_seconds": trained, "final_acc": curve[-1][1],
            "estimated_epoch_seconds": round(per_epoch, 1), **milestones(curve)}


def parse_setting(recipe, kv: str) -> tuple[str, object]:
    """``FIELD=VALUE`` for a recipe field, the value converted to the field's type."""
    field, _, value = kv.partition("=")
    if field not in recipe.as_dict() and not hasattr(recipe, field):
        sys.exit(f"--set {kv}: {recipe.name} has no field {field!r}")
    kind = type(getattr(recipe, field))
    return field, (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)


ARMS = ROOT / "bench" / "results" / "arms" / "train_airbench"


def remembered(name: str, compute, keep: bool = True) -> dict:
    """One arm's result, kept (with its own provenance) under bench/results/arms/train_airbench/, which is
    committed, so that a bench of several hour-long seeds can be completed over several sessions on fresh
    checkouts: each seed is measured once, by the invocation that ran it, and the summary says which commit
    and machine measured each. ``keep=False`` (``--quick``): computed every time, kept nowhere."""
    path = ARMS / f"{name}.json"
    if keep and path.exists():
        return json.loads(path.read_text())
    out = compute()
    if keep:
        out = {**out, "provenance": stamp()}
        write_json(path, out)
    return out


def arm_tag(recipe: str, overrides: dict, epochs: int, n_train: int, validation: bool, eval_every: int) -> str:
    """The name one seed's arm is kept under (the seed is appended)."""
    return (f"{recipe}{''.join(f'-{k}{v}' for k, v in sorted(overrides.items()))}-e{epochs}-n{n_train}"
            f"{'-val' if validation else ''}-every{eval_every}")


def summary(arms: list[dict]) -> dict:
    out = {}
    for key in ("final_acc", "train_seconds", *(f"time_to_{int(t * 100)}" for t in TARGETS),
                *(f"acc_at_{m}min" for m in BUDGETS_MIN)):
        vals = [a[key] for a in arms if a.get(key) is not None]
        out[key] = {"mean": float(np.mean(vals)) if vals else None,
                    "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None, "n": len(vals), "of": len(arms)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="cifar-airbench", help="clearset's recipe (cifar-airbench, cifar-airbench95)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="the recipe's epochs unless given")
    ap.add_argument("--eval-every", type=int, default=1, help="test accuracy every N epochs (and at the end)")
    ap.add_argument("--train-images", type=int, default=0, help="first N training images (0: all 50,000)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--validation", action="store_true",
                    help="train on the first 45,000 training images, test on the last 5,000 (to choose settings)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a recipe field (repeatable), e.g. --set lr=0.1")
    ap.add_argument("--quick", action="store_true", help="5,000 images, 2 epochs, one seed")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.train_images = 1, 2, 5000
    ws, subset, arrays = workspace(args.train_images, args.validation)
    base = clearset.train.get_recipe(args.recipe)
    overrides = dict(parse_setting(base, kv) for kv in args.set)
    recipe = base.with_overrides(**overrides) if overrides else args.recipe
    epochs = args.epochs or base.epochs
    n_train = args.train_images or (45000 if args.validation else 50000)
    tag = arm_tag(args.recipe, overrides, epochs, n_train, args.validation, args.eval_every)
    ours, theirs = [], []
    for seed in range(args.seeds):
        ours.append(remembered(f"{tag}-s{seed}",
                               lambda: clearset_arm(ws, subset, seed, recipe, epochs, args.eval_every),
                               keep=not args.quick))
        print(f"seed {seed}: clearset {ours[-1]['final_acc']:.4f} in {ours[-1]['train_seconds']:.0f} s "
              f"(wall {ours[-1]['wall_seconds']} s)", flush=True)
        if not args.no_baseline:
            seconds = ours[-1]["train_seconds"]
            theirs.append(remembered(f"baseline-{seconds:.0f}s-n{n_train}{'-val' if args.validation else ''}-s{seed}",
                                     lambda: baseline_arm(arrays, seed, seconds), keep=not args.quick))
            print(f"seed {seed}: baseline {theirs[-1]['final_acc']:.4f} in {theirs[-1]['train_seconds']:.0f} s",
                  flush=True)
    name = "train_airbench" if args.recipe == "cifar-airbench" else f"train_{args.recipe.removeprefix('cifar-')}"
    name += "".join(f"_{k}{v}" for k, v in sorted(overrides.items()))
    name += (f"_e{epochs}" if epochs != base.epochs and not args.quick else "") + ("_validation" if args.validation else "")
    if args.train_images and not args.quick:
        name += f"_n{args.train_images}"
    result = {"bench": name, "train_images": n_train, "epochs": epochs, "eval_every": args.eval_every,
              "evaluated_on": "training images 45,000-49,999 (validation)" if args.validation else "test split",
              "recipe_overrides": overrides,
              "seeds": args.seeds, "targets": TARGETS, "budgets_min": BUDGETS_MIN,
              "clearset": {"recipe": args.recipe, "runs": ours, "summary": summary(ours)},
              "baseline": {"what": "plain PyTorch ResNet-18 loop, same training seconds", "runs": theirs,
                           "summary": summary(theirs) if theirs else None}}
    print(write_result(f"{name}_quick" if args.quick else name, result))


if __name__ == "__main__":
    main()
