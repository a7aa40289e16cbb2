"""The ``clearset`` command. Each command parses options and calls the Python API; nothing else."""

from __future__ import annotations

import errno
import functools
from pathlib import Path
from typing import Any, List, Optional

import typer

from .errors import ClearsetError, ParameterError
from .progress import setup_logging
from .scale.config import DEFAULT as DEFAULT_PARTITION
from .train.recipes import DEFAULT_RECIPE

app = typer.Typer(
    name="clearset",
    help="Find what is wrong with an image-classification dataset, make it smaller or cleaner, and measure "
         "models honestly.\n\nPipeline: ingest -> embed -> audit -> curate/distill -> train -> evaluate -> "
         "bench -> report. Start with `clearset demo`, or `clearset ingest SOURCE -o WS`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _options(quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors; no bars."),
             verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")):
    setup_logging(quiet=quiet, verbose=verbose)


# What the operating system says about a path the user chose (not writable, disk full, not a folder):
# a user's mistake or their machine's state, reported as one line; any other OSError is a bug.
USER_OS_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                  errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.ENOENT}


def error_line(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` as one red line on stderr; the Exit to raise."""
    typer.secho("error: " + " ".join(str(message).split()), fg="red", err=True)
    return typer.Exit(code)


def os_error_message(e: OSError) -> str:
    where = e.filename or "a file"
    reasons: dict[int, str] = {
        errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only", errno.ENOTDIR: "a part of the path is not a folder",
        errno.EISDIR: "it is a folder", errno.EEXIST: "it exists already",
        errno.ENOENT: "its folder does not exist and cannot be made"}
    what = reasons.get(e.errno, e.strerror) if e.errno is not None else e.strerror
    fix = ("free some space and run the same command again (finished work is kept)"
           if e.errno in (errno.ENOSPC, errno.EDQUOT) else "choose a path you can write to (e.g. -o/--out elsewhere)")
    return f"{where}: cannot write ({what}); {fix}"


# Library parameters a command passes under another name: (command, library name) -> the flag.
FLAG_ALIASES = {
    "train": {"teachers": "--teacher", "known_classes": "--known", "tract": "--tract-lambda"},
    "reinforce": {"teachers": "--teacher"},
    "distill": {"seeds": "--eval-seeds", "epochs": "--eval-epochs"},
}


def _flags(command_name: str) -> dict[str, str]:
    """Python parameter -> the flag of the running command that sets it (for error messages, which name
    the library's parameters: errors.param)."""
    import click

    ctx = click.get_current_context(silent=True)
    flags: dict[str, str] = {}
    for p in ctx.command.params if ctx is not None else []:
        longs = [o for o in p.opts if o.startswith("--")]
        if p.name:
            flags[p.name] = max(longs, key=len) if longs else (p.human_readable_name or p.name).upper()
    return {**flags, **FLAG_ALIASES.get(command_name, {})}


def command(fn):
    """Register ``fn`` as a command whose user errors print one red line and exit 2 (no traceback)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ClearsetError as e:
            raise error_line(e.for_cli(_flags(fn.__name__.rstrip("_"))), e.exit_code) from None
        except OSError as e:
            if e.errno not in USER_OS_ERRORS:
                raise
            raise error_line(os_error_message(e)) from None
        except KeyboardInterrupt:
            typer.secho("interrupted: finished chunks are saved; run the same command again to resume",
                        fg="yellow", err=True)
            raise typer.Exit(130) from None

    return app.command(fn.__name__.rstrip("_").replace("_", "-"))(wrapper)


def _engine_option():
    return typer.Option("local", "--engine", help="Where the work runs: local (threads on this machine) or ray "
                        "(a Ray cluster; same results; see docs/scaling.md).")


def _address_option():
    return typer.Option(None, "--address", help="Ray cluster address for --engine ray, e.g. ray://head:10001 "
                        "(default: $RAY_ADDRESS, else a Ray started on this machine).")


def _engine(name: str, address: Optional[str]):
    from .engines import get_engine

    return get_engine(name, address=address)


def _split_list(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@command
def ingest(
    source: str = typer.Argument(..., help="A folder of class subfolders, a .csv/.parquet with path,label "
                                 "columns, an .npz (x_train/y_train...), .tar shards (WebDataset), "
                                 "builtin:digits, builtin:fractals?classes=10&per_class=100&size=64, or "
                                 "download:cifar10|cifar100|mnist|fashion-mnist."),
    workspace: Path = typer.Option(..., "--workspace", "-o", "-w", help="Workspace folder to write into."),
    split: Optional[str] = typer.Option(None, help="Splits to take, e.g. 'train' or 'train,test'; for a "
                                        "source without splits, the name of its one split (default train)."),
    labels: Optional[List[str]] = typer.Option(None, help="Replace labels: FILE (.npy/.txt/.csv/.parquet, one "
                                               "per image in source order) or SPLIT=FILE. Repeatable."),
    classes: Optional[str] = typer.Option(None, help="Class names in label order, comma-separated."),
    on_error: str = typer.Option("skip", help="Unreadable images: 'skip' (listed in ingest_errors.parquet) "
                                 "or 'fail'."),
    engine: str = _engine_option(),
    address: Optional[str] = _address_option(),
    force: bool = typer.Option(False, help="Redo even if this ingest already completed."),
):
    """Read a dataset once: validate and hash every image, write manifest.parquet and classes.json."""
    from .data.ingest import ingest as run

    with _engine(engine, address) as eng:
        ws = run(source, workspace, split=_split_list(split), labels=labels, classes=_split_list(classes),
                 on_error=on_error, engine=eng, force=force)
    typer.echo(f"{ws.manifest_path}: {ws.manifest_rows()} images, {len(ws.classes())} classes")


@command
def embed(
    workspace: Path = typer.Argument(..., help="An ingested workspace."),
    backbone: str = typer.Option("efficientnet_lite0", help="ws:NAME (this workspace's `clearset pretrain` NAME), "
                                 "efficientnet_lite0|1|2 (ImageNet weights, offline) "
                                 "or any timm model name (random weights)."),
    image_size: Optional[int] = typer.Option(None, help="Model input side in pixels (default: the backbone's "
                                             "native size; 128 suits 32-px images)."),
    batch_size: int = typer.Option(128, help="Images per forward pass."),
    precision: str = typer.Option("auto", help="auto (bf16 where the hardware has it natively), fp32, bf16."),
    dtype: str = typer.Option("float32", help="Storage dtype: float32 or float16."),
    threads: Optional[int] = typer.Option(None, help="Decoding threads."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda if available)."),
    engine: str = _engine_option(),
    address: Optional[str] = _address_option(),
    force: bool = typer.Option(False, help="Recompute even if cached."),
):
    """Extract features (and ImageNet logits) for every image; resumes after interruption."""
    from .features import embed as run

    with _engine(engine, address) as eng:
        r = run(workspace, backbone=backbone, image_size=image_size, batch_size=batch_size, precision=precision,
                dtype=dtype, threads=threads, device=device, engine=eng, force=force)
    typer.echo(f"{r.features}: {r.shape[0]} x {r.shape[1]} ({r.precision}"
               f"{', cached' if r.cached else f', {r.images_per_s:.0f} img/s'})")


def _partition_config(in_memory_gb: float):
    if not in_memory_gb > 0:
        raise ParameterError(f"--in-memory-gb {in_memory_gb:g}: give a positive size in GiB")
    return DEFAULT_PARTITION.replace(in_memory_bytes=int(in_memory_gb * 2 ** 30))


@command
def audit(
    workspace: Path = typer.Argument(..., help="An ingested (and embedded) workspace."),
    checks: Optional[str] = typer.Option(None, help="Comma-separated checks (default: all): label_issues, "
                                         "duplicates, outliers, multilabel, class_pairs, properties."),
    features: Optional[str] = typer.Option(None, help="Embedding to use, backbone@size (default: the newest)."),
    pred_probs: Optional[Path] = typer.Option(None, help="Out-of-fold probabilities (N, C) .npy to use "
                                              "instead of computing them."),
    threshold: Optional[float] = typer.Option(None, help="Near-duplicate threshold on aligned similarity (default 0.94; see docs/audit.md)."),
    export: Optional[Path] = typer.Option(None, help="Also write a new manifest with suggested relabels and "
                                          "drops as columns (use it later with --labels)."),
    spatial: bool = typer.Option(False, help="multilabel also reads the backbone's spatial class maps (ReLabel): "
                                 "one more pass of the backbone over the images."),
    combine: bool = typer.Option(False, help="label_issues averages --pred-probs (e.g. from `clearset oof`) with "
                                 "the embedding models instead of replacing them."),
    stored_oof: bool = typer.Option(True, help="Without --pred-probs, average in the pixel networks' out-of-fold "
                                    "probabilities `clearset oof` stored for this manifest, if any (the most "
                                    "accurate label issues measured)."),
    option: Optional[list[str]] = typer.Option(None, help="A check's option as CHECK.NAME=VALUE (repeatable), e.g. "
                                               "outliers.k=20, label_issues.folds=10; `clearset list checks` "
                                               "names the checks, docs/audit.md their options."),
    engine: str = _engine_option(),
    address: Optional[str] = _address_option(),
    in_memory_gb: float = typer.Option(DEFAULT_PARTITION.in_memory_bytes / 2 ** 30, help="Features larger than "
                                       "this (GiB as float32) are processed by cluster partitions on disk, in flat "
                                       "memory (docs/scaling.md)."),
    label_splits: Optional[str] = typer.Option(None, help="Comma-separated splits whose labels the checks read "
                                               "(e.g. train): the other rows count as unlabelled, so test labels "
                                               "cannot shape which training images are flagged (for an audit "
                                               "that feeds curate or train)."),
    force: bool = typer.Option(False, help="Recompute cached checks."),
):
    """Find label errors, duplicates and train/test leakage, outliers, multi-label images, confused
    classes and dataset properties. Results: WS/audit/*.parquet and WS/audit/summary.json."""
    from .audit import export_clean_manifest, run_audit

    with _engine(engine, address) as eng:
        summary = run_audit(workspace, checks=_split_list(checks), features=features, pred_probs=pred_probs,
                            threshold=threshold, spatial=spatial, combine=combine, stored_oof=stored_oof,
                            engine=eng, force=force, partition=_partition_config(in_memory_gb),
                            options=_check_options(option or []), label_splits=_split_list(label_splits))
    for name, s in summary["checks"].items():
        figures = {k: v for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        typer.echo(f"{name:13s} " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in list(figures.items())[:6]))
    if export:
        typer.echo(f"exported {export_clean_manifest(workspace, export)}")


@command
def oof(
    workspace: Path = typer.Argument(..., help="An ingested workspace."),
    recipe: str = typer.Option(DEFAULT_RECIPE, help="Training recipe of the fold models."),
    folds: int = typer.Option(5, help="Number of stratified folds."),
    seed: int = typer.Option(0, min=0, help="Seed of the folds and the runs."),
    epochs: Optional[int] = typer.Option(None, help="Override the recipe's epochs (label issues on CIFAR-10N "
                                         "were found best with --clean --epochs 20: docs/audit.md)."),
    clean: bool = typer.Option(False, help="Leave out of each fold's training set the images the embedding "
                               "models flag within it (needs `clearset embed`); the held-out fold stays unseen."),
    features: Optional[str] = typer.Option(None, help="With --clean: which features, backbone@size "
                                           "(default: the first embedded)."),
    force: bool = typer.Option(False, help="Retrain every fold."),
):
    """Out-of-fold class probabilities of networks trained on the pixels (one cached run per fold).
    `clearset audit WS` then averages the newest such file made for the current manifest with its embedding
    models (or pass one with --pred-probs FILE --combine). Recommended: --clean --epochs 20."""
    from .oof import pixel_oof

    typer.echo(str(pixel_oof(workspace, recipe=recipe, folds=folds, seed=seed, epochs=epochs, clean=clean,
                             features=features, force=force)))


@command
def pretrain(
    workspace: Path = typer.Argument(..., help="An ingested workspace (labels are never read for training)."),
    method: str = typer.Option("simclr", help="simclr (2-layer head, embed the trunk), simclrv2 (3-layer head, "
                               "embed its first layer), gsimclr (simclr with one image per pseudo-class in "
                               "each batch), distill (a student reproducing --teacher's embedding), fractal "
                               "or fractal-single (rendered fractals, no real image)."),
    model: str = typer.Option("resnet18_cifar", help="Trunk network (a `clearset list models` name)."),
    image_size: Optional[int] = typer.Option(None, help="Side of the views (default: the images' median side, "
                                             "at most 64; at least 16)."),
    epochs: int = typer.Option(20, help="Epochs over the split's images (the CIFAR recipe: 1000 on a GPU)."),
    batch_size: int = typer.Option(256, help="Images per batch (each gives two views)."),
    lr: Optional[float] = typer.Option(None, help="LARS learning rate (default 1.0 x batch / 512)."),
    temperature: float = typer.Option(0.5, help="NT-Xent temperature (CIFAR recipe 0.5; ImageNet 0.1)."),
    jitter: float = typer.Option(0.5, help="Colour-jitter strength s (CIFAR recipe 0.5; ImageNet 1.0)."),
    crop_min: float = typer.Option(0.08, help="Smallest random crop of a view, as a share of the image area "
                                   "(SimCLR 0.08; larger keeps more of small objects such as digits)."),
    flip: bool = typer.Option(True, help="Horizontal flips in the views (--no-flip for digits, text, or "
                              "anything whose mirror image is something else)."),
    split: str = typer.Option("train", help="Which split's images to learn from."),
    seed: int = typer.Option(0, min=0, help="Seed of the initialisation and the views."),
    name: Optional[str] = typer.Option(None, help="Name under WS/pretrained/ (then `embed --backbone ws:NAME`)."),
    teacher: Optional[str] = typer.Option(None, help="distill: ws:NAME, the pre-training whose embedding the "
                                          "student (--model) learns to reproduce."),
    fractal_classes: int = typer.Option(100, help="fractal: number of fractal systems (classes)."),
    fractal_per_class: int = typer.Option(100, help="fractal: images rendered per class."),
    device: str = typer.Option("auto", help="auto (CUDA when visible), cpu, cuda[:N]."),
    force: bool = typer.Option(False, help="Train again even if cached."),
):
    """Self-supervised pre-training on the workspace's own images (SimCLR / SimCLRv2 / G-SimCLR), with a per-epoch kNN
    monitor when the split has labels. Resumes after Ctrl-C; then `clearset embed WS --backbone ws:NAME`."""
    from .pretrain import pretrain as run_pretrain

    root = run_pretrain(workspace, method=method, model=model, image_size=image_size, epochs=epochs,
                        batch_size=batch_size, lr=lr, temperature=temperature, jitter=jitter, split=split, seed=seed,
                        name=name, device=device, force=force, fractal_classes=fractal_classes,
                        fractal_per_class=fractal_per_class, teacher=teacher, crop_min=crop_min, flip=flip)
    typer.echo(f"{root}  (clearset embed {workspace} --backbone ws:{root.name})")


@command
def poison(
    source: Path = typer.Argument(..., help="An ingested workspace with train and test splits (never changed)."),
    out: Path = typer.Option(..., "-o", "--out", help="The poisoned copy to write (a new workspace)."),
    attack: str = typer.Option("badnets", help="badnets (patch, labels set to the target), blend (a blended "
                               "random pattern, labels set to the target) or clean-label-patch (patch on "
                               "target-class images, labels unchanged)."),
    rate: float = typer.Option(0.1, help="Share of the training images poisoned."),
    target: str = typer.Option("0", help="Target class (name or number)."),
    patch: int = typer.Option(3, help="badnets: side of the square trigger in pixels."),
    position: str = typer.Option("bottom-right", help="badnets: bottom-right, top-left or random."),
    pattern: str = typer.Option("checker", help="badnets: checker, white or random (seeded)."),
    alpha: float = typer.Option(0.1, help="blend: weight of the pattern."),
    seed: int = typer.Option(0, min=0, help="Seed of which images are poisoned and of the patterns."),
):
    """Write a poisoned copy of a workspace to test backdoor defences on: a share of the training images
    carry a trigger, a test_triggered split holds the triggered test images, and
    OUT/security/poison_truth.parquet says which rows were poisoned."""
    from .security.poison import poison as run_poison

    ws = run_poison(source, out, attack=attack, rate=rate, target=int(target) if target.isdigit() else target,
                    patch=patch, position=position, pattern=pattern, alpha=alpha, seed=seed)
    typer.echo(f"{ws.root}: poisoned copy ({attack}); truth in {ws.dir('security') / 'poison_truth.parquet'}")


@command
def expose(
    workspace: Path = typer.Argument(..., help="The workspace the run belongs to."),
    run: str = typer.Option(..., help="The suspect model: a run name under WS/runs/ (or its folder)."),
    defence: str = typer.Option("0.01", help="Clean defence set: a share of the labelled training images "
                                "(class-balanced) or a .csv/.parquet of 'index' (and 'label') rows."),
    lr: float = typer.Option(1e-5, help="Adam learning rate of the gradient ascent (the card: 1e-5)."),
    max_epochs: int = typer.Option(20, help="At most this many epochs over the defence set."),
    threshold: float = typer.Option(0.5, help="Verdict: backdoor suspected when this share of the exposed "
                                    "model's predictions fall on one class (not yet calibrated on clean models)."),
    seed: int = typer.Option(0, min=0, help="Seed of the defence set and the batch order."),
):
    """Expose a backdoor by clean unlearning (EBYD): gradient ascent on a small clean set until clean
    accuracy is at chance; a backdoored model's predictions then pile up on its target label."""
    from .security.expose import expose as run_expose

    share: float | str
    try:
        share = float(defence)
    except ValueError:
        share = defence
    r = run_expose(workspace, run, defence=share, lr=lr, max_epochs=max_epochs, threshold=threshold, seed=seed)
    typer.echo(f"{r['verdict']}: {r['score']:.0%} of the exposed model's predictions on {r['suspected_target_name']} "
               f"(margin {r['margin']:.2f}; clean accuracy {r['clean_acc_before']:.3f} -> {r['clean_acc_after']:.3f})"
               + ("" if r["threshold_calibrated"] else "; threshold not calibrated on clean models yet")
               + f"\n{r['path']}")


@command
def scan_poison(
    workspace: Path = typer.Argument(..., help="The workspace whose training images to scan."),
    run: str = typer.Option(..., help="The suspect model: a run name under WS/runs/ (or its folder)."),
    eps: float = typer.Option(0.1, help="Upper bound of the poisoning rate: spectral signatures flag the "
                              "1.5 x eps highest scores of each class."),
    seed: int = typer.Option(0, min=0, help="Seed of the clustering."),
):
    """Which training images carry a trigger: spectral signatures and activation clustering on the suspect
    model's penultimate features, per class. Writes WS/security/scan-<run>.parquet."""
    from .security.scan import scan

    typer.echo(str(scan(workspace, run, eps=eps, seed=seed)))


@command
def explain_diff(
    workspace: Path = typer.Argument(..., help="An ingested workspace."),
    a: str = typer.Option(..., "--a", help="Set A: key=value terms joined by commas, e.g. class=cat,split=test "
                          "(keys: class, split, source, correct with --run, or a manifest column)."),
    b: str = typer.Option(..., "--b", help="Set B, the same way."),
    run: Optional[str] = typer.Option(None, help="A run whose predictions decide correct=true|false."),
    max_images: int = typer.Option(5000, help="At most this many images of each set (a seeded sample)."),
    seed: int = typer.Option(0, min=0, help="Seed of the sample."),
):
    """How two sets of images differ: interpretable attributes (brightness, contrast, colourfulness,
    saturation, sharpness, edge density, size) ranked by how well they separate A from B (AUROC)."""
    from .explain.diff import diff

    res = diff(workspace, a, b, run=run, max_images=max_images, seed=seed)
    typer.echo(f"A: {res['images_a']} images, B: {res['images_b']} images (AUROC > 0.5: A higher)")
    for r in res["ranked"]:
        typer.echo(f"  {r['attribute']:14s} AUROC {r['auroc']:.3f}  A {r['mean_a']:.4g}  B {r['mean_b']:.4g}  "
                   f"p {r['p']:.2g}")
    typer.echo(res["path"])


@command
def explain_instructions(
    workspace: Path = typer.Argument(..., help="A workspace with labelled train (and test) images and features."),
    features: Optional[str] = typer.Option(None, help="Which embedding, backbone@size (default: the newest)."),
    per_class: int = typer.Option(5, help="Exemplars and boundary examples per class."),
    rule: str = typer.Option("medoids", help="medoids (k-means inside the class: representative and diverse), "
                             "mean (nearest the class mean) or random."),
    seed: int = typer.Option(0, min=0, help="Seed of the clustering / random choice."),
):
    """Labeling instructions from the data: per class, exemplars and boundary examples (nearest another
    class), with the retrieval mAP of each exemplar rule on the held-out test split."""
    from .explain.instructions import instructions

    typer.echo(str(instructions(workspace, features=features, per_class=per_class, rule=rule, seed=seed)))


@command
def score(
    workspace: Path = typer.Argument(..., help="An ingested workspace with labelled training images."),
    method: str = typer.Option("el2n", help="el2n: the error L2 norm of networks early in training (Paul et al.); "
                               "forgetting: forgetting events over a whole training (Toneva et al.); craig: "
                               "last-layer gradient proxies for CRAIG coresets (Mirzasoleiman et al.)."),
    recipe: str = typer.Option("cifar-resnet8-fast", help="Training recipe of the scoring networks."),
    epochs: Optional[int] = typer.Option(None, help="Epochs each network trains before it scores (default: el2n 2, "
                                         "the paper 20 of 200; forgetting the recipe's whole training; craig 2)."),
    runs: Optional[int] = typer.Option(None, help="Independent initialisations (default: el2n 4, the paper 10; "
                                       "forgetting 2, the paper 5; craig 1)."),
    seed: int = typer.Option(0, min=0, help="Seed of the runs."),
    force: bool = typer.Option(False, help="Retrain and rescore."),
):
    """Per-image pruning scores from networks trained on the pixels (cached runs); `clearset curate --strategy
    el2n` (or forgetting, craig-pixel, craig-augment-pixel) then uses them. The linear-probe adaptations
    (`el2n-probe`, `forgetting-probe`, `craig-probe`) need no score."""
    from .scores import pixel_scores

    typer.echo(str(pixel_scores(workspace, method=method, recipe=recipe, epochs=epochs, runs=runs, seed=seed,
                                force=force)))


@command
def probe(
    workspace: Path = typer.Argument(..., help="A workspace with features."),
    features: Optional[str] = typer.Option(None, help="Which features, backbone@size (default: the newest "
                                           "embedding of the workspace)."),
    backbone: Optional[str] = typer.Option(None, help="Or: which backbone (its newest embedding, or the one at "
                                           "--image-size)."),
    image_size: Optional[int] = typer.Option(None, help="Or: the size the features were embedded at."),
    train_split: str = typer.Option("train", help="Split the classifier is fit on."),
    test_split: str = typer.Option("test", help="Split it is scored on."),
):
    """Linear-probe accuracy of stored features: logistic regression, train split -> test split."""
    from .evaluate.probe import linear_probe

    r = linear_probe(workspace, features=features, backbone=backbone, image_size=image_size,
                     train_split=train_split, test_split=test_split)
    typer.echo(f"linear-probe accuracy {r.accuracy:.4f} ({r.train_images} train -> {r.test_images} test)")


@command
def train(
    workspace: Path = typer.Argument(..., help="An ingested workspace with a training split."),
    recipe: str = typer.Option(DEFAULT_RECIPE, help="Named recipe (`clearset list recipes`)."),
    model: Optional[str] = typer.Option(None, help="Override the recipe's model: resnet18_cifar, resnet8, "
                                        "resnet20, convnet3 or a timm name."),
    epochs: Optional[int] = typer.Option(None, help="Override the recipe's epoch count."),
    seed: int = typer.Option(0, min=0, help="Seed of initialisation, order and augmentation (exactly reproducible on CPU)."),
    subset: Optional[Path] = typer.Option(None, help="Train on these rows only: a .parquet/.csv with "
                                          "index (+ weight) columns, as `clearset curate` writes."),
    name: Optional[str] = typer.Option(None, help="Run name under WS/runs/ (default: recipe-model-seed-confighash)."),
    eval_split: str = typer.Option("test", help="Split to predict at the end (stored in predictions.npz)."),
    teacher: Optional[list[Path]] = typer.Option(None, help="Distil from this run (repeat for an ensemble: "
                                                 "the mean of their softmaxes is the target)."),
    kd_temperature: float = typer.Option(1.0, help="Softmax temperature of teachers and student in distillation."),
    kd_hard_weight: float = typer.Option(0.0, help="Share of the hard-label target mixed into distillation (0 = none: soft targets only, as in MEAL V2; this is plain KD, without MEAL V2's discriminator)."),
    kd_discriminator: bool = typer.Option(False, help="With --teacher: add MEAL V2's discriminator of student vs "
                                          "teacher logits (jointly minimised). MEAL V2 as published: several "
                                          "--teacher, --recipe cifar-meal-v2, --kd-hard-weight 0."),
    known: Optional[str] = typer.Option(None, help="Open-set training: comma-separated class names or indices "
                                        "to train on; the others' test images become 'unknown' for `clearset eval`."),
    tract: bool = typer.Option(False, help="TrAct: closed-form first-layer gradient (docs/train.md)."),
    tract_lambda: float = typer.Option(0.1, help="TrAct's lambda."),
    device: str = typer.Option("auto", help="auto (CUDA when visible), cpu or cuda[:N]."),
    precision: str = typer.Option("auto", help="auto (bf16 autocast where the hardware runs it natively), fp32 or bf16."),
    eval_every: int = typer.Option(0, help="Also evaluate every N epochs (time-to-accuracy); 0 = at the end only."),
    reinforced: Optional[Path] = typer.Option(None, help="Train on stored reinforced targets: a WS/reinforced/<name> "
                                              "folder written by `clearset reinforce` (replaces the recipe's augmentations)."),
    features: Optional[str] = typer.Option(None, help="For --recipe linear-probe: the stored embedding, "
                                           "backbone@size (default: the latest `clearset embed`)."),
    compile: str = typer.Option("auto", help="torch.compile for training: auto (on for CUDA, off on CPU), on, off."),
    distilled: Optional[Path] = typer.Option(None, help="Train on a synthetic set from `clearset distill` (.npz) "
                                             "instead of the training images (e.g. with --recipe convnet3)."),
    init: Optional[str] = typer.Option(None, help="ws:NAME: start from the trunk of this workspace's "
                                       "`clearset pretrain` NAME (the same model as the recipe's)."),
    resume: bool = typer.Option(True, help="Continue an interrupted run where it stopped (--no-resume: start "
                                "it again from epoch 1; a finished run stays a cache hit)."),
    force: bool = typer.Option(False, help="Start over even if the run is finished or resumable."),
):
    """Train a model on the workspace (per-epoch checkpoints: re-run the same command to resume after a
    crash or Ctrl-C; a finished run is a cache hit). Writes WS/runs/<name>/."""
    from .train import train as run_train

    r = run_train(workspace, recipe=recipe, model=model, epochs=epochs, seed=seed, subset=subset, name=name,
                  eval_split=eval_split, force=force, teachers=teacher or None, kd_temperature=kd_temperature,
                  kd_hard_weight=kd_hard_weight, kd_discriminator=kd_discriminator,
                  tract=tract_lambda if tract else None,
                  known_classes=_class_indices(workspace, known) if known else None, device=device,
                  precision=precision, eval_every=eval_every, reinforced=reinforced, features=features,
                  resume=resume, compile=compile, distilled=distilled, init=init)
    last = r.metrics[-1] if r.metrics else {}
    acc = last.get("eval_acc")
    typer.echo(f"{r.root}{' (cached)' if r.cached else ''}: {len(r.metrics)} epochs"
               + (f", {eval_split} accuracy {acc:.4f}" if acc is not None else ""))


@command
def curate(
    workspace: Optional[Path] = typer.Argument(None, help="A workspace (embedded; audited for `clean`)."),
    strategy: Optional[str] = typer.Option(None, help="Strategy name; see --list."),
    keep: float = typer.Option(0.3, help="Fraction of the labelled training images to keep, in (0, 1]."),
    seed: int = typer.Option(0, min=0, help="Seed (every strategy is deterministic for a seed)."),
    split: str = typer.Option("train", help="Split to curate."),
    features: Optional[str] = typer.Option(None, help="Embedding to use, backbone@size (default: the newest)."),
    trusted: Optional[Path] = typer.Option(None, help="For `filter`: a .csv/.parquet of index,label rows with "
                                           "verified labels."),
    option: Optional[list[str]] = typer.Option(None, help="A strategy option as name=value (repeatable), e.g. "
                                               "clusters=100, easy=true, relabel=true."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Subset file to write (default WS/subsets/<strategy>-k<keep>-s<seed>.parquet)."),
    list_strategies: bool = typer.Option(False, "--list", help="List the strategies and exit."),
    in_memory_gb: float = typer.Option(DEFAULT_PARTITION.in_memory_bytes / 2 ** 30, help="Features larger than "
                                       "this (GiB as float32) are processed by cluster partitions on disk, in flat "
                                       "memory (docs/scaling.md)."),
    force: bool = typer.Option(False, help="Recompute even if cached."),
):
    """Select a subset of the training images with a pruning strategy; writes index,weight rows that
    `clearset train --subset FILE` trains on (RS2's file also carries its per-epoch sampler)."""
    from .curate import STRATEGIES, curate as run_curate

    if list_strategies:
        for name, spec in STRATEGIES.items():
            typer.echo(f"{name:16s} {spec.description}")
        return
    if workspace is None or strategy is None:
        raise ClearsetError("give a workspace and --strategy (or --list to see the strategies)")
    r = run_curate(workspace, strategy=strategy, keep=keep, seed=seed, split=split, features=features,
                   trusted=trusted, out=out, force=force, partition=_partition_config(in_memory_gb),
                   **_parse_options(option or []))
    typer.echo(f"{r.path}{' (cached)' if r.cached else ''}: kept {len(r.index):,} images ({strategy}, keep {keep:g})")


@command
def distill(
    workspace: Optional[Path] = typer.Argument(None, help="A workspace."),
    method: str = typer.Option("dm", help="dm, datadam or random; append +fyi for the flip wrapper (dm+fyi). "
                               "See --list."),
    ipc: int = typer.Option(10, help="Synthetic images per class (at most the smallest class)."),
    iterations: Optional[int] = typer.Option(None, help="Matching iterations (default 1000; the papers run "
                                             "8,000-20,000 on GPUs)."),
    seed: int = typer.Option(0, min=0, help="Seed of the initialisation, networks and augmentation draws."),
    init: str = typer.Option("real", help="Start from random real images of each class (real) or noise."),
    lr: float = typer.Option(1.0, help="SGD learning rate on the pixels (momentum 0.5)."),
    real_batch: int = typer.Option(64, help="Real images drawn per class each iteration."),
    power: float = typer.Option(1.0, help="Attention power p of datadam (the authors' code: 1; paper: 4)."),
    dsa_strategy: str = typer.Option("color_crop_cutout_flip_scale_rotate", "--dsa",
                                     help="Differentiable siamese augmentation groups joined by _, or none."),
    image_size: Optional[int] = typer.Option(None, help="Side of the synthetic images (default: the images' own)."),
    depth: int = typer.Option(3, help="ConvNet depth (each block halves the side)."),
    width: int = typer.Option(128, help="ConvNet width."),
    norm: str = typer.Option("instance", help="ConvNet normalisation: instance, batch or none."),
    batching: str = typer.Option("class", help="class: one forward per class; all: every class in one batch "
                                 "(the reference code's; with --norm batch, DataDAM's reference protocol)."),
    eval_batch: int = typer.Option(256, help="Evaluate: batch size (the DataDAM reference: 64)."),
    option: Optional[list[str]] = typer.Option(None, help="A method option as name=value (repeatable), e.g. "
                                               "sam_weight=100, task_balance=0.01."),
    eval_seeds: int = typer.Option(3, help="Evaluate: fresh ConvNets trained on the set (0 = skip)."),
    eval_epochs: int = typer.Option(300, help="Evaluate: epochs per network."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Also write the set to this .npz."),
    name: Optional[str] = typer.Option(None, help="Name under WS/distilled/ (default <method>-ipc<ipc>-s<seed>-<key>)."),
    device: str = typer.Option("auto", help="auto (CUDA when visible), cpu, cuda[:N]."),
    list_methods: bool = typer.Option(False, "--list", help="List the methods and exit."),
    force: bool = typer.Option(False, help="Recompute even if cached."),
):
    """Distil the training images into a few synthetic images per class, then evaluate the set by training
    fresh ConvNets on it alone (mean and sd of test accuracy). Interrupted runs resume."""
    from .distill import DISTILLERS, distill as run_distill, evaluate_distilled
    from .workspace import Workspace, read_json

    if list_methods:
        for n, spec in DISTILLERS.items():
            typer.echo(f"{n:10s} {spec.description}")
        typer.echo(f"{'+fyi':10s} wrapper: match the synthetic batch together with its horizontal flip")
        return
    if workspace is None:
        raise ClearsetError("give a workspace (or --list to see the methods)")
    d = run_distill(workspace, method=method, ipc=ipc, iterations=iterations, seed=seed, init=init, lr=lr,
                    real_batch=real_batch, strategy=dsa_strategy, image_size=image_size, depth=depth, width=width,
                    norm=norm, power=power, batching=batching, name=name, out=out, force=force, device=device,
                    **_parse_options(option or []))
    assert d.path is not None  # a set distil() wrote
    meta = read_json(Workspace.sidecar_of(d.path))
    speed = meta.get("iterations_per_second")
    typer.echo(f"{d.path}: {len(d.labels)} images ({d.ipc} per class, {method}, {d.config['iterations']} iterations"
               + (f", {speed:.2f} it/s" if speed else "") + ")")
    if eval_seeds:
        res = evaluate_distilled(workspace, d, seeds=eval_seeds, epochs=eval_epochs, device=device,
                                 batch_size=eval_batch)
        typer.echo(f"test accuracy of ConvNets trained on it: {res['test_acc_mean']:.4f} ± {res['test_acc_sd']:.4f} "
                   f"({eval_seeds} seeds, {eval_epochs} epochs)")


def _check_options(items: list[str]) -> dict[str, dict]:
    """``CHECK.NAME=VALUE`` items -> {check: {name: value}}."""
    out: dict[str, dict] = {}
    for item in items:
        check, dot, rest = item.partition(".")
        if not dot or not check or "=" not in rest:
            raise ParameterError(f"--option {item!r}: write it as CHECK.NAME=VALUE, e.g. outliers.k=20")
        out.setdefault(check, {}).update(_parse_options([rest]))
    return out


def _parse_options(items: list[str]) -> dict:
    out: dict[str, bool | int | float | str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ClearsetError(f"--option {item!r}: write it as name=value")
        low = value.lower()
        if low in ("true", "false"):
            out[name] = low == "true"
        else:
            try:
                out[name] = int(value)
            except ValueError:
                try:
                    out[name] = float(value)
                except ValueError:
                    out[name] = value
    return out


@command
def bench(
    workspace: Path = typer.Argument(..., help="A workspace (embedded; audited for `clean`)."),
    strategies: str = typer.Option("random,rs2,dbp", help="Comma-separated strategies (clearset curate --list)."),
    keep: str = typer.Option("0.1,0.3,0.5", help="Comma-separated fractions kept."),
    seeds: int = typer.Option(2, min=1, help="Seeds per cell (0..N-1)."),
    recipe: str = typer.Option(DEFAULT_RECIPE, help="The one training recipe every cell uses."),
    epochs: Optional[int] = typer.Option(None, help="Override the recipe's epochs."),
    budget: str = typer.Option("epochs", help="epochs: the recipe's epochs over each subset; iterations: as many "
                               "iterations as the full data (epochs / keep), the RS2 card's fair comparison."),
    trusted: Optional[Path] = typer.Option(None, help="Verified index,label rows for the `filter` strategy."),
    features: Optional[str] = typer.Option(None, help="Embedding for the strategies, backbone@size."),
    eval_every: int = typer.Option(0, help="Evaluate every N epochs for time-to-accuracy curves."),
    full: bool = typer.Option(True, help="Also train on all the data (the reference row)."),
    distilled: Optional[list[Path]] = typer.Option(None, help="A distilled set (.npz from `clearset distill`) to "
                                                   "bench beside the strategies (repeatable)."),
    engine: str = _engine_option(),
    address: Optional[str] = _address_option(),
):
    """Curate, train and evaluate every (strategy, keep, seed) cell with one recipe; cached per cell, so an
    interrupted bench resumes. Writes WS/bench/leaderboard.csv/.json; the report plots it."""
    from .leaderboard.runner import TABLE_LEGEND, leaderboard_table, run_bench, summarise

    try:
        keeps = [float(k) for k in _split_list(keep) or []]
    except ValueError:
        raise ClearsetError(f"--keep {keep!r}: give comma-separated fractions, e.g. 0.1,0.3") from None
    with _engine(engine, address) as eng:
        board = run_bench(workspace, strategies=_split_list(strategies) or [], keeps=keeps,
                          seeds=list(range(seeds)), recipe=recipe, epochs=epochs, budget=budget, trusted=trusted,
                          features=features, eval_every=eval_every, full=full, distilled=distilled or None,
                          engine=eng if eng.parallel else None)
    typer.echo(f"test accuracy, mean ± sd over {seeds} seed(s), budget: {budget}")
    typer.echo(leaderboard_table(summarise(board)).to_string())
    typer.echo(TABLE_LEGEND)
    typer.echo(str(Path(workspace) / "bench" / "leaderboard.csv"))


@command
def reinforce(
    workspace: Path = typer.Argument(..., help="A workspace with a manifest."),
    teacher: list[Path] = typer.Option(..., help="A teacher run, WS/runs/<name> (repeat for an ensemble: the "
                                       "mean of their softmaxes is stored)."),
    ns: int = typer.Option(10, help="Augmentations stored per image (the paper: 400 on ImageNet)."),
    topk: int = typer.Option(10, help="Teacher probabilities stored per augmentation (the rest is spread evenly)."),
    seed: int = typer.Option(0, min=0, help="Seed of the augmentation draws."),
    augment: str = typer.Option("strong", help="strong: crop, flip, 2 RandAugment ops, random erase (the paper's "
                                "+RA/RE); light: crop and flip only."),
    split: str = typer.Option("train", help="Split to reinforce."),
    subset: Optional[Path] = typer.Option(None, help="Reinforce only these rows (a subset file with an index column)."),
    name: Optional[str] = typer.Option(None, help="Folder name under WS/reinforced/ (default: ns-topk-seed-hash)."),
    device: str = typer.Option("auto", help="auto (CUDA when visible), cpu or cuda[:N]."),
    force: bool = typer.Option(False, help="Redo even if finished."),
):
    """Dataset reinforcement: store NS augmentations per image (parameters, replayed exactly) with the
    teachers' top-k probabilities, once; then `clearset train --reinforced DIR` trains on them at no teacher
    cost. Resumes after interruption."""
    from .train import reinforce as run_reinforce

    r = run_reinforce(workspace, teachers=teacher, ns=ns, topk=topk, seed=seed, augment=augment, split=split,
                      subset=subset, name=name, device=device, force=force)
    typer.echo(f"{r.root}: {len(r.index)} images x {r.ns} augmentations, top-{r.topk_idx.shape[2]} teacher probabilities")


def _class_indices(workspace: Path, spec: str) -> list[int]:
    from .workspace import Workspace

    classes = Workspace(workspace).classes()
    out = []
    for item in _split_list(spec) or []:
        if item in classes:
            out.append(classes.index(item))
        elif item.isdigit() and int(item) < len(classes):
            out.append(int(item))
        else:
            raise ClearsetError(f"--known: {item!r} is not a class of {workspace} (classes: {', '.join(classes)})")
    return out


@command
def eval_(
    run: Path = typer.Argument(..., help="A run folder, WS/runs/<name>."),
    data: Optional[Path] = typer.Option(None, help="Evaluate on another workspace (same classes)."),
    split: Optional[str] = typer.Option(None, help="Split to evaluate (default: the run's evaluation split)."),
    human_labels: Optional[Path] = typer.Option(None, help="A .npy (images x classes) of human label counts "
                                                "or probabilities for that split, e.g. CIFAR-10H."),
    corruptions: Optional[str] = typer.Option(None, help="Also measure robustness: 'all' (the 15 common "
                                              "corruptions) or a comma-separated list; see docs/evaluate.md."),
    severities: str = typer.Option("1,2,3,4,5", help="Corruption severities to run."),
    corruption_images: Optional[int] = typer.Option(None, help="Corrupt a seeded random sample of this many "
                                                    "evaluation images (default: all)."),
    shift: Optional[list[Path]] = typer.Option(None, help="A shift test set (.npz with x_test, y_test, "
                                               "class_names), e.g. ../shared/data/cinic10_imagenet_shift.npz; repeatable."),
    mistakes: bool = typer.Option(False, help="Sort every error into label error / ambiguous / confusable / "
                                  "other, from the workspace's audit and --human-labels (docs/evaluate.md)."),
):
    """Accuracy (top-1/5, per class), NLL, Brier, calibration (ECE, adaptive ECE) and, with human labels,
    plurality / multi-label accuracy, expected agreement, cross-entropy and variable top-k."""
    from .evaluate.api import evaluate

    try:
        sev = [int(v) for v in _split_list(severities) or []]
    except ValueError:
        raise ClearsetError(f"--severities {severities!r}: give comma-separated integers 1..5") from None
    names = [] if corruptions is None else (None if corruptions == "all" else _split_list(corruptions))
    r = evaluate(run, data=data, split=split, human_labels=human_labels, corruptions=names, severities=sev,
                 corruption_images=corruption_images, shift=shift or None, mistakes=mistakes)
    m = r["metrics"]
    for k, v in m.items():
        if isinstance(v, float):
            typer.echo(f"{k:28s} {v:.4f}")
    for score, v in m.get("openset", {}).items():
        if isinstance(v, dict):
            typer.echo(f"open-set {score:19s} AUROC {v['auroc']:.4f}  FPR@95TPR {v['fpr_at_95_tpr']:.4f}"
                       + (f"  OSCR {v['oscr']:.4f}" if "oscr" in v else ""))
    if "variable_topk" in m:
        typer.echo(f"{'variable_topk':28s} {m['variable_topk']['accuracy']:.4f}")
    typer.echo(m["path"])
    if r["robustness"] is not None:
        rb = r["robustness"]
        if rb["corruptions"]:
            typer.echo(f"{'clean (same images)':28s} {rb['clean_acc']:.4f}")
            for name, row in rb["corruptions"].items():
                typer.echo(f"{name:28s} {row['mean']:.4f}  " + " ".join(f"s{k}={v:.3f}" for k, v in row.items() if k != "mean"))
            typer.echo(f"{'mean corruption accuracy':28s} {rb['mean_corruption_acc']:.4f}")
        for name, v in rb["shift"].items():
            typer.echo(f"shift {name:22s} {v['acc']:.4f} ({v['images']} images)")
        typer.echo(rb["path"])
    if r["mistakes"] is not None:
        t = r["mistakes"]
        typer.echo(f"{t['errors']} errors: " + ", ".join(f"{k} {v}" for k, v in t["counts"].items())
                   + f"  (evidence: {', '.join(t['evidence']) or 'none: run `clearset audit` first'})")
        typer.echo(t["path"])


@command
def report(workspace: Path = typer.Argument(..., help="A workspace.")):
    """Write WS/report/index.html: dataset card and every section the workspace has results for."""
    from .reporting import build_report

    typer.echo(str(build_report(workspace)))


@command
def review(workspace: Path = typer.Argument(..., help="An audited workspace."),
           host: str = typer.Option("127.0.0.1", help="Address to bind (default: this machine only)."),
           port: int = typer.Option(8765, help="Port to listen on."),
           allow_remote: bool = typer.Option(False, help="Allow a --host other machines can reach (prints a "
                                             "warning; writes need the token in the printed URL)."),
           apply: bool = typer.Option(False, "--apply", help="Do not serve: write the decisions so far as a new "
                                      "manifest version (WS/review/versions/vN/) and exit.")):
    """Review the audit's findings in the browser: relabel, keep, drop or mark ambiguous (keyboard or bulk),
    undo; every decision is saved as you make it. --apply (or the Apply button) writes a new manifest version,
    a subset file for `clearset train --subset`, changes.csv, a cleanlab-style label_issues.csv and a Label
    Studio import of the ambiguous images. The workspace's own manifest is never changed."""
    from .review import apply_review, serve

    if apply:
        out = apply_review(workspace)
        typer.echo(f"v{out['version']}: {out['relabelled']} relabelled, {out['dropped']} dropped, {out['ambiguous']} "
                   f"ambiguous ({out['in_force']} decisions in force) -> {out['folder']}")
        typer.echo(f"train on it: clearset train {workspace} --subset {out['subset']}")
        return
    serve(workspace, host=host, port=port, allow_remote=allow_remote, echo=typer.echo)


@command
def demo(workspace: Path = typer.Option(Path("demo-workspace"), "--workspace", "-w",
                                        help="Where the demo writes."),
         force: bool = typer.Option(False, help="Redo every step.")):
    """Run the pipeline on the bundled digits (offline) and print the report path and headline numbers."""
    from .pipeline import run_demo

    result = run_demo(workspace, force=force)
    typer.echo(result.summary())


REGISTRY_MODULES = ("clearset.data.sources", "clearset.data.store", "clearset.models.backbones", "clearset.models.cifar",
                    "clearset.train.recipes", "clearset.audit", "clearset.curate", "clearset.distill",
                    "clearset.evaluate.metrics", "clearset.evaluate.corruptions", "clearset.evaluate.openset",
                    "clearset.reporting.sections", "clearset.pretrain")


def load_registries() -> dict:
    """Every extension point's registry, by the name ``clearset list`` takes."""
    import importlib

    from .registry import REGISTRIES

    for module in REGISTRY_MODULES:
        importlib.import_module(module)
    return REGISTRIES


@command
def list_(what: Optional[str] = typer.Argument(None, help="Which extension point (default: how many of each): "
                                               "sources, stores, backbones, models, recipes, checks, strategies, "
                                               "distillers, metrics, corruptions, sections."),
          pattern: str = typer.Option("*", help="Only names matching this shell pattern, e.g. 'efficientnet*'.")):
    """List the registered names of an extension point, each with its one-line description and, for an
    adaptation of a published method, how it differs from the paper."""
    registries = load_registries()
    if what is None:
        for name, reg in sorted(registries.items()):
            typer.echo(f"{name:12s} {len(reg):3d}  e.g. {', '.join(reg.list()[:4])}")
        return
    if what not in registries:
        raise ClearsetError(f"cannot list {what!r}: choose {', '.join(sorted(registries))}")
    reg = registries[what]
    width = max([len(n) for n in reg.list(pattern)] + [8]) + 2
    for name in reg.list(pattern):
        typer.echo(f"{name:{width}s} {reg.describe(name)}")
        if reg.differs(name):
            typer.echo(f"{'':{width}s}   differs from the paper in: {reg.differs(name)}")
    if what == "backbones":
        typer.echo(f"{'<timm name>':{width}s} any timm model name, random weights")


def main() -> None:
    """The ``clearset`` script. Click's usage errors (unknown option or command, a value of the wrong
    type) are one line too, naming the option and where its help is."""
    import typer.main

    usage_errors, aborts = _click_exceptions()
    setup_logging()
    cli = typer.main.get_command(app)
    plain_metavars(cli)
    try:
        code = cli.main(prog_name="clearset", standalone_mode=False)
    except usage_errors as error:
        e: Any = error  # a click UsageError (format_message, exit_code, ctx)
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `clearset`: the help, as click shows it
            typer.echo(e.format_message(), err=True)
            raise SystemExit(e.exit_code) from None
        where = e.ctx.command_path if e.ctx is not None else "clearset"
        raise SystemExit(error_line(f"{e.format_message()} (see `{where} --help`)", e.exit_code).exit_code) from None
    except aborts:
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def plain_metavars(group) -> None:
    """Help that reads like a man page: ``SOURCE``, ``--workspace PATH``, ``--keep X``, instead of
    typer's ``{source}``, ``<path>``, ``<list[str]>``; flags show none."""
    for command in [group, *getattr(group, "commands", {}).values()]:
        for p in command.params:
            if getattr(p, "is_flag", False):
                continue
            if p.param_type_name == "argument":
                p.metavar = p.name.upper()
            else:
                p.metavar = _metavar(p)


def _metavar(param) -> str:
    import typing
    from pathlib import PurePath

    kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    kind = getattr(param, "type", None) if kind is None else kind
    while typing.get_args(kind):  # Optional[X], List[X] -> X
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if isinstance(kind, type) and issubclass(kind, PurePath) or getattr(kind, "name", "") == "path":
        return "PATH"
    if kind is int or getattr(kind, "name", "") == "integer":
        return "N"
    if kind is float or getattr(kind, "name", "") == "float":
        return "X"
    return "TEXT"


def _click_exceptions() -> tuple[tuple[type[Exception], ...], tuple[type[BaseException], ...]]:
    """Click's UsageError and Abort: from the click that typer runs on (recent typer vendors its own
    copy as ``typer._click``) and from click itself."""
    import importlib

    usage, abort = [], [typer.Abort]
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        usage.append(mod.UsageError)
        if hasattr(mod, "Abort"):
            abort.append(mod.Abort)
    return tuple(usage), tuple(abort)


if __name__ == "__main__":
    main()
