"""Bad and odd inputs to every command, as a new user or a hostile tester would give them.

Each refused case asserts what the CLI promises for a user mistake: exit code 2, exactly one line
``error: ...`` that names the file or field (``message``), no traceback, no new or changed file anywhere
in the test's folder (so no partial artifact in the workspace and the inputs' bytes unchanged). The
commands run in-process through ``clearset.cli.main`` (the same code path as the ``clearset`` script,
without paying an interpreter start per case); a few cases that need another user or a real process
run the script itself.

Cases are grouped by the class of input, not by the bug that first showed it: held-out inputs of the
same classes must behave the same way.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from conftest import digits_with_features, encoded, make_imagefolder, rgb, write_tar

CLI = [sys.executable, "-c", "from clearset.cli import main; main()"]


# ------------------------------------------------------------------------------------------ harness
def snapshot(root: Path) -> dict[str, str]:
    """Every file (sha256) and folder under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """``clearset ARGS`` in this process: (exit code, stdout, stderr). An uncaught exception propagates
    (the test then fails with it, as a user would see a traceback)."""
    from clearset.cli import main

    argv = sys.argv
    sys.argv = ["clearset", *args]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code: int, err: str, message: str | None) -> str:
    assert "Traceback" not in err, err
    assert code == 2, f"exit {code}: {err}"
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    others = [line for line in err.splitlines() if line.strip() and not line.startswith("error: ")]
    assert not others, f"more than the error line on stderr: {err}"
    if message is not None:
        assert message.lower() in errors[0].lower(), errors[0]
    return errors[0]


@dataclass
class Case:
    id: str
    args: list[str]  # {tmp}: the test folder, {ws}: the workspace (tmp/ws)
    message: str | None  # a piece of the error line: the file or field it names
    workspace: str | None = None  # None: no workspace; "digits": ingested; "features": + a stand-in embedding;
    #                               "run": + a linear-probe run named lp
    setup: Callable[[Path], None] | None = None  # writes the bad input files into tmp
    marks: list = field(default_factory=list)


# ------------------------------------------------------------------------------------------ inputs
def _npz(name: str, **arrays):
    def setup(tmp: Path):
        np.savez(tmp / name, **arrays)
    return setup


def _object_npz(tmp: Path):
    x = np.empty(3, dtype=object)
    x[:] = [np.zeros((4, 4), np.uint8)] * 3
    np.savez(tmp / "obj.npz", x_train=x, y_train=np.zeros(3, np.int64))


def _file(name: str, data: bytes):
    def setup(tmp: Path):
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(data)
    return setup


def _folder_of(*files: tuple[str, bytes]):
    def setup(tmp: Path):
        for rel, data in files:
            p = tmp / "imgs" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    return setup


def _csv(text: str, images: bool = True):
    def setup(tmp: Path):
        if images:
            make_imagefolder(tmp / "imgs", classes=("a", "b"), per_class=2)
        (tmp / "list.csv").write_text(text)
    return setup


def _labels_npy(values, dtype=None):
    return lambda tmp: np.save(tmp / "labels.npy", np.asarray(values, dtype=dtype))


def _features(kind: str):
    """Replace the stand-in embedding fake@8 with one that has NaN/inf rows or the wrong row count."""
    def setup(tmp: Path):
        path = tmp / "ws" / "features" / "fake@8.npy"
        f = np.load(path)
        if kind == "nan":
            f[5, 2] = np.nan
        elif kind == "inf":
            f[7] = np.inf
        elif kind == "rows":
            f = f[:-3]
        np.save(path, f)
    return setup


def _probs(shape, fill=0.1, nan=False):
    def setup(tmp: Path):
        p = np.full(shape, fill, np.float32)
        if nan:
            p[0, 0] = np.nan
        np.save(tmp / "probs.npy", p)
    return setup


def _one_class(ws: Path):
    """Every label of the workspace set to class 0 (a manifest rewritten in place, as a user might)."""
    m = pd.read_parquet(ws / "manifest.parquet")
    m["label"] = 0
    m.to_parquet(ws / "manifest.parquet", index=False)


JPEG = encoded(rgb(1, 16, 16), "JPEG")
PNG = encoded(rgb(2, 16, 16), "PNG")

CASES = [
    # --- sources that do not exist or are not datasets
    Case("ingest-missing-path", ["ingest", "{tmp}/nope", "-o", "{ws}"], "no such file or folder"),
    Case("ingest-empty-folder", ["ingest", "{tmp}/empty", "-o", "{ws}"], "no class folders",
         setup=lambda t: (t / "empty").mkdir()),
    Case("ingest-class-folders-without-images", ["ingest", "{tmp}/imgs", "-o", "{ws}"], "no images",
         setup=_folder_of(("a/readme.txt", b"x"), ("b/notes.md", b"y"))),
    Case("ingest-unknown-extension", ["ingest", "{tmp}/data.xyz", "-o", "{ws}"], "unknown source format",
         setup=_file("data.xyz", b"123")),
    Case("ingest-unknown-scheme", ["ingest", "nosuch:thing", "-o", "{ws}"], "nosuch:thing"),
    Case("ingest-builtin-unknown", ["ingest", "builtin:widgets", "-o", "{ws}"], "widgets"),
    Case("ingest-fractals-bad-option", ["ingest", "builtin:fractals?classes=abc", "-o", "{ws}"], "classes"),
    # --- images: corrupt, truncated, empty, odd, with --on-error fail
    Case("ingest-all-images-corrupt", ["ingest", "{tmp}/imgs", "-o", "{ws}"], "none of the",
         setup=_folder_of(("a/1.png", b"not a png"), ("b/2.jpg", b"\xff\xd8\xff garbage"))),
    Case("ingest-truncated-jpeg-fail", ["ingest", "{tmp}/imgs", "-o", "{ws}", "--on-error", "fail"], "1.jpg",
         setup=_folder_of(("a/1.jpg", JPEG[: len(JPEG) // 2]), ("b/2.png", PNG))),
    Case("ingest-zero-byte-image-fail", ["ingest", "{tmp}/imgs", "-o", "{ws}", "--on-error", "fail"], "0.png",
         setup=_folder_of(("a/0.png", b""), ("b/2.png", PNG))),
    Case("ingest-html-named-corrupt-fail", ["ingest", "{tmp}/imgs", "-o", "{ws}", "--on-error", "fail"],
         "<img src=x onerror=alert(1)>.png",
         setup=_folder_of(("a/<img src=x onerror=alert(1)>.png", b"GIF89a"), ("b/2.png", PNG))),
    Case("ingest-on-error-unknown", ["ingest", "builtin:digits", "-o", "{ws}", "--on-error", "maybe"], "--on-error"),
    # --- tables
    Case("csv-no-label-column", ["ingest", "{tmp}/list.csv", "-o", "{ws}"], "'label'",
         setup=_csv("path\na/0.png\n")),
    Case("csv-empty-file", ["ingest", "{tmp}/list.csv", "-o", "{ws}"], "list.csv", setup=_csv("")),
    Case("csv-binary-garbage", ["ingest", "{tmp}/list.csv", "-o", "{ws}"], "list.csv",
         setup=_file("list.csv", bytes(range(256)) * 4)),
    Case("csv-float-label", ["ingest", "{tmp}/list.csv", "-o", "{ws}"], "not an integer",
         setup=_csv("path,label\na/0.png,1.5\nb/0.png,0\n")),
    Case("csv-negative-label", ["ingest", "{tmp}/list.csv", "-o", "{ws}"], "negative",
         setup=_csv("path,label\na/0.png,-3\nb/0.png,0\n")),
    Case("csv-only-missing-files", ["ingest", "{tmp}/list.csv", "-o", "{ws}"], "none of the",
         setup=_csv("path,label\nnope/0.png,0\nnope/1.png,1\n")),
    Case("csv-missing-file-fail", ["ingest", "{tmp}/list.csv", "-o", "{ws}", "--on-error", "fail"], "gone.png",
         setup=_csv("path,label\nimgs/a/0.png,0\ngone.png,1\n")),
    Case("csv-empty-path", ["ingest", "{tmp}/list.csv", "-o", "{ws}"], "path",
         setup=_csv("path,label\n,0\nimgs/a/0.png,1\n")),
    Case("csv-folder-as-path", ["ingest", "{tmp}/list.csv", "-o", "{ws}", "--on-error", "fail"], "imgs/a",
         setup=_csv("path,label\nimgs/a,0\nimgs/b/0.png,1\n")),
    # --- arrays
    Case("npz-object-array", ["ingest", "{tmp}/obj.npz", "-o", "{ws}"], "obj.npz", setup=_object_npz),
    Case("npz-not-a-zip", ["ingest", "{tmp}/bad.npz", "-o", "{ws}"], "bad.npz", setup=_file("bad.npz", b"PK\x03\x04oops")),
    Case("npz-zero-bytes", ["ingest", "{tmp}/bad.npz", "-o", "{ws}"], "bad.npz", setup=_file("bad.npz", b"")),
    Case("npz-channels-first", ["ingest", "{tmp}/a.npz", "-o", "{ws}"], "channels-last",
         setup=_npz("a.npz", x_train=np.zeros((4, 3, 8, 8), np.uint8), y_train=np.zeros(4, np.int64))),
    Case("npz-label-length", ["ingest", "{tmp}/a.npz", "-o", "{ws}"], "y_train",
         setup=_npz("a.npz", x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.zeros(3, np.int64))),
    Case("npz-float-labels", ["ingest", "{tmp}/a.npz", "-o", "{ws}"], "y_train",
         setup=_npz("a.npz", x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.zeros(4, np.float32))),
    Case("npz-nan-pixels-fail", ["ingest", "{tmp}/a.npz", "-o", "{ws}", "--on-error", "fail"], "nan",
         setup=_npz("a.npz", x_train=np.full((2, 8, 8), np.nan, np.float32), y_train=np.zeros(2, np.int64))),
    Case("npz-no-images", ["ingest", "{tmp}/a.npz", "-o", "{ws}"], "no image arrays",
         setup=_npz("a.npz", pixels=np.zeros((4, 8, 8), np.uint8))),
    Case("npz-empty-split", ["ingest", "{tmp}/a.npz", "-o", "{ws}"], "no images",
         setup=_npz("a.npz", x_train=np.zeros((0, 8, 8), np.uint8), y_train=np.zeros(0, np.int64))),
    Case("npz-label-beyond-class-names", ["ingest", "{tmp}/a.npz", "-o", "{ws}"], "out of range",
         setup=_npz("a.npz", x_train=np.zeros((2, 8, 8), np.uint8), y_train=np.array([0, 5]),
                    class_names=np.array(["a", "b"]))),
    # --- label files
    Case("labels-wrong-length", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "{tmp}/labels.npy"],
         "labels.npy", setup=_labels_npy([0, 1, 2])),
    Case("labels-unknown-class", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "train={tmp}/labels.npy"],
         "out of range", setup=_labels_npy([12] * 1438)),
    Case("labels-negative", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "train={tmp}/labels.npy"],
         "negative", setup=_labels_npy([-4] * 1438)),
    Case("labels-float", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "train={tmp}/labels.npy"],
         "integers", setup=_labels_npy([0.5] * 1438)),
    Case("labels-nan", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "train={tmp}/labels.npy"],
         "nan", setup=_labels_npy([np.nan] + [1.0] * 1437)),
    Case("labels-2d", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "train={tmp}/labels.npy"],
         "1-d", setup=_labels_npy(np.zeros((1438, 2), np.int64))),
    Case("labels-object-npy", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "train={tmp}/labels.npy"],
         "labels.npy", setup=_labels_npy(["a"] * 1438, dtype=object)),
    Case("labels-missing-file", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "{tmp}/none.npy"], "none.npy"),
    Case("labels-pickle-suffix", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "{tmp}/l.pkl"], "l.pkl",
         setup=_file("l.pkl", b"\x80\x04K\x01.")),
    Case("labels-unknown-split", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "val={tmp}/labels.npy"],
         "no split 'val'", setup=_labels_npy([0] * 10)),
    Case("labels-text-garbage", ["ingest", "builtin:digits", "-o", "{ws}", "--labels", "train={tmp}/l.txt"], "l.txt",
         setup=_file("l.txt", b"cat\ndog\n")),
    Case("classes-count-mismatch", ["ingest", "{tmp}/imgs", "-o", "{ws}", "--classes", "x,y,z"], "--classes",
         setup=lambda t: make_imagefolder(t / "imgs", classes=("a", "b"), per_class=2)),
    Case("classes-duplicate-name", ["ingest", "builtin:digits", "-o", "{ws}", "--classes", "a,a,b,c,d,e,f,g,h,i"],
         "--classes"),
    Case("split-unknown", ["ingest", "builtin:digits", "-o", "{ws}", "--split", "val"], "no split 'val'"),
    # --- tar shards
    Case("tar-not-a-tar", ["ingest", "{tmp}/s.tar", "-o", "{ws}"], "s.tar", setup=_file("s.tar", b"hello" * 100)),
    Case("tar-compressed", ["ingest", "{tmp}/s.tar.gz", "-o", "{ws}"], "s.tar.gz", setup=_file("s.tar.gz", b"\x1f\x8b")),
    Case("tar-bad-label", ["ingest", "{tmp}/s.tar", "-o", "{ws}"], "0001.cls",
         setup=lambda t: write_tar(t / "s.tar", [("0001.png", PNG), ("0001.cls", b"cat")])),
    Case("tar-empty-folder-glob", ["ingest", "{tmp}/shards/*.tar", "-o", "{ws}"], "no .tar shards",
         setup=lambda t: (t / "shards").mkdir()),
    # --- the workspace itself
    Case("workspace-is-a-file", ["ingest", "builtin:digits", "-o", "{tmp}/afile"], "afile",
         setup=_file("afile", b"x")),
    Case("workspace-not-ingested-embed", ["embed", "{tmp}/none"], "no manifest.parquet"),
    Case("workspace-not-ingested-audit", ["audit", "{tmp}/none"], "no manifest.parquet"),
    Case("workspace-not-ingested-report", ["report", "{tmp}/none"], "no manifest.parquet"),
    Case("workspace-not-ingested-train", ["train", "{tmp}/none"], "no manifest.parquet"),
    Case("workspace-not-ingested-curate", ["curate", "{tmp}/none", "--strategy", "random"], "no manifest.parquet"),
    Case("workspace-manifest-garbage", ["audit", "{ws}"], "manifest.parquet", "digits",
         setup=_file("ws/manifest.parquet", b"not parquet")),
    Case("workspace-classes-garbage", ["report", "{ws}"], "classes.json", "digits",
         setup=_file("ws/classes.json", b"{not json")),
    # --- options and devices
    Case("unknown-option", ["ingest", "builtin:digits", "-o", "{ws}", "--frobnicate"], "--frobnicate"),
    Case("unknown-command", ["frobnicate"], "frobnicate"),
    Case("option-not-a-number", ["train", "{ws}", "--epochs", "many"], "--epochs", "digits"),
    Case("embed-device-tpu", ["embed", "{ws}", "--device", "tpu"], "--device", "digits"),
    Case("embed-device-cuda-absent", ["embed", "{ws}", "--device", "cuda:3"], "--device", "digits"),
    Case("train-device-tpu", ["train", "{ws}", "--device", "tpu"], "--device", "digits"),
    Case("distill-device-tpu", ["distill", "{ws}", "--device", "tpu", "--iterations", "1"], "--device", "digits"),
    Case("reinforce-device-tpu", ["reinforce", "{ws}", "--teacher", "{ws}/runs/lp", "--device", "tpu"], "--device", "run"),
    Case("embed-unknown-backbone", ["embed", "{ws}", "--backbone", "no_such_net_42"], "no_such_net_42", "digits"),
    Case("embed-image-size-8", ["embed", "{ws}", "--image-size", "8"], "--image-size", "digits"),
    Case("embed-precision-fp8", ["embed", "{ws}", "--precision", "fp8"], "--precision", "digits"),
    Case("embed-batch-size-0", ["embed", "{ws}", "--batch-size", "0"], "--batch-size", "digits"),
    Case("embed-dtype-int8", ["embed", "{ws}", "--dtype", "int8"], "--dtype", "digits"),
    Case("train-unknown-recipe", ["train", "{ws}", "--recipe", "fastest"], "fastest", "digits"),
    Case("train-unknown-model", ["train", "{ws}", "--model", "no_such_net_42"], "no_such_net_42", "digits"),
    Case("train-epochs-zero", ["train", "{ws}", "--epochs", "0"], "--epochs", "digits"),
    Case("train-no-eval-split", ["train", "{ws}", "--eval-split", "val"], "val", "digits"),
    Case("train-subset-missing", ["train", "{ws}", "--subset", "{tmp}/none.parquet"], "none.parquet", "digits"),
    Case("train-subset-out-of-range", ["train", "{ws}", "--subset", "{tmp}/s.csv"], "s.csv", "digits",
         setup=_file("s.csv", b"index\n0\n99999\n")),
    Case("train-subset-garbage", ["train", "{ws}", "--subset", "{tmp}/s.parquet"], "s.parquet", "digits",
         setup=_file("s.parquet", b"garbage")),
    Case("train-teacher-missing", ["train", "{ws}", "--teacher", "{tmp}/norun"], "norun", "digits"),
    Case("train-known-unknown-class", ["train", "{ws}", "--known", "0,zebra"], "zebra", "digits"),
    Case("score-no-runs", ["score", "{ws}", "--runs", "0"], "--runs", "digits"),
    Case("pretrain-tiny-images", ["pretrain", "{ws}"], "--image-size 8", "digits"),
    Case("poison-unknown-attack", ["poison", "{ws}", "-o", "{tmp}/p", "--attack", "ghost"], "ghost", "digits"),
    Case("poison-target-out-of-range", ["poison", "{ws}", "-o", "{tmp}/p", "--target", "12"], "--target 12",
         "digits"),
    Case("poison-no-workspace", ["poison", "{tmp}/nows", "-o", "{tmp}/p"], "nows"),
    Case("expose-no-run", ["expose", "{ws}", "--run", "ghost"], "ghost", "digits"),
    Case("scan-poison-no-run", ["scan-poison", "{ws}", "--run", "ghost"], "ghost", "digits"),
    Case("explain-diff-unknown-class", ["explain-diff", "{ws}", "--a", "class=zebra", "--b", "split=test"], "zebra",
         "digits"),
    Case("explain-instructions-no-features", ["explain-instructions", "{ws}"], "embed", "digits"),
    Case("explain-diff-empty", ["explain-diff", "{ws}", "--a", "split=val", "--b", "split=test"], "split=val",
         "digits"),
    Case("expose-bad-share", ["expose", "{ws}", "--run", "lp", "--defence", "1.5"], "lp", "run"),
    Case("pretrain-unknown-method", ["pretrain", "{ws}", "--method", "byol", "--image-size", "16"], "byol", "digits"),
    Case("pretrain-no-workspace", ["pretrain", "{tmp}/nows"], "nows"),
    Case("embed-unknown-ws-backbone", ["embed", "{ws}", "--backbone", "ws:nope"], "nope", "digits"),
    Case("score-unknown-method", ["score", "{ws}", "--method", "grand"], "grand", "digits"),
    Case("train-distilled-missing", ["train", "{ws}", "--distilled", "{tmp}/d.npz"], "d.npz", "digits"),
    Case("train-linear-probe-nan", ["train", "{ws}", "--recipe", "linear-probe"], "row 5", "features",
         setup=_features("nan")),
    Case("train-compile-maybe", ["train", "{ws}", "--compile", "maybe"], "--compile", "digits"),
    # --- features: NaN / inf / stale
    Case("probe-nan-features", ["probe", "{ws}"], "row 5", "features", setup=_features("nan")),
    Case("probe-inf-features", ["probe", "{ws}"], "row 7", "features", setup=_features("inf")),
    Case("probe-rows-mismatch", ["probe", "{ws}"], "other images", "features", setup=_features("rows")),
    Case("probe-rows-mismatch-named", ["probe", "{ws}", "--features", "fake@8"], "rows", "features",
         setup=_features("rows")),
    Case("probe-no-features", ["probe", "{ws}"], "clearset embed", "digits"),
    Case("probe-one-class", ["probe", "{ws}"], "two classes", "features",
         setup=lambda t: _one_class(t / "ws")),
    Case("train-name-escapes", ["train", "{ws}", "--recipe", "linear-probe", "--name", "../../out"], "--name",
         "features"),
    Case("distill-name-escapes", ["distill", "{ws}", "--name", "../x", "--iterations", "1", "--eval-seeds", "0"],
         "--name", "digits"),
    Case("reinforce-name-escapes", ["reinforce", "{ws}", "--teacher", "{ws}/runs/lp", "--name", "a/b"], "--name",
         "run"),
    Case("probe-unknown-features", ["probe", "{ws}", "--image-size", "99"], "@99", "features"),
    Case("curate-dbp-nan-features", ["curate", "{ws}", "--strategy", "dbp"], "row 5", "features",
         setup=_features("nan")),
    Case("audit-inf-features", ["audit", "{ws}"], "row 7", "features", setup=_features("inf")),
    Case("audit-rows-mismatch", ["audit", "{ws}"], "other images", "features", setup=_features("rows")),
    Case("audit-bad-features-spec", ["audit", "{ws}", "--features", "fake"], "backbone@size", "features"),
    Case("audit-unknown-check", ["audit", "{ws}", "--checks", "vibes"], "vibes", "features"),
    Case("audit-pred-probs-shape", ["audit", "{ws}", "--pred-probs", "{tmp}/probs.npy"], "probs.npy", "features",
         setup=_probs((10, 3))),
    Case("audit-pred-probs-nan", ["audit", "{ws}", "--pred-probs", "{tmp}/probs.npy"], "probs.npy", "features",
         setup=_probs((1797, 10), nan=True)),
    Case("audit-pred-probs-not-npy", ["audit", "{ws}", "--pred-probs", "{tmp}/probs.npy"], "probs.npy", "features",
         setup=_file("probs.npy", b"hello")),
    Case("audit-threshold-out-of-range", ["audit", "{ws}", "--checks", "duplicates", "--threshold", "5"],
         "threshold", "features"),
    # --- curate, bench, distill
    Case("curate-unknown-strategy", ["curate", "{ws}", "--strategy", "best"], "best", "features"),
    Case("curate-keep-zero", ["curate", "{ws}", "--strategy", "random", "--keep", "0"], "--keep", "features"),
    Case("curate-keep-above-one", ["curate", "{ws}", "--strategy", "random", "--keep", "1.5"], "--keep", "features"),
    Case("curate-bad-option", ["curate", "{ws}", "--strategy", "random", "--option", "clusters"], "name=value", "features"),
    Case("curate-unknown-option", ["curate", "{ws}", "--strategy", "random", "--option", "colour=red"], "colour",
         "features"),
    Case("curate-trusted-missing", ["curate", "{ws}", "--strategy", "filter", "--trusted", "{tmp}/t.csv"], "t.csv",
         "features"),
    Case("bench-keep-not-a-number", ["bench", "{ws}", "--keep", "half"], "--keep", "features"),
    Case("bench-unknown-strategy", ["bench", "{ws}", "--strategies", "best", "--keep", "0.5"], "best", "features"),
    Case("distill-unknown-method", ["distill", "{ws}", "--method", "magic"], "magic", "digits"),
    Case("distill-ipc-zero", ["distill", "{ws}", "--ipc", "0"], "--ipc", "digits"),
    Case("distill-ipc-too-many", ["distill", "{ws}", "--ipc", "5000"], "--ipc", "digits"),
    Case("distill-bad-dsa", ["distill", "{ws}", "--dsa", "wobble"], "wobble", "digits"),
    # --- runs and evaluation
    Case("eval-run-missing", ["eval", "{tmp}/norun"], "norun"),
    Case("eval-human-labels-shape", ["eval", "{ws}/runs/lp", "--human-labels", "{tmp}/h.npy"], "h.npy", "run",
         setup=lambda t: np.save(t / "h.npy", np.ones((3, 10)))),
    Case("eval-unknown-corruption", ["eval", "{ws}/runs/lp", "--corruptions", "glitter"], "glitter", "run"),
    Case("eval-shift-garbage", ["eval", "{ws}/runs/lp", "--shift", "{tmp}/s.npz"], "s.npz", "run",
         setup=_file("s.npz", b"nope")),
    Case("eval-severity-bad", ["eval", "{ws}/runs/lp", "--corruptions", "all", "--severities", "9"], "--severities",
         "run"),
    Case("reinforce-teacher-missing", ["reinforce", "{ws}", "--teacher", "{tmp}/norun"], "norun", "digits"),
    Case("oof-one-fold", ["oof", "{ws}", "--folds", "1"], "--folds", "digits"),
    Case("list-unknown", ["list", "widgets"], "widgets"),
    # --- review
    Case("review-not-ingested", ["review", "{tmp}/none", "--apply"], "no manifest.parquet"),
    Case("review-no-audit", ["review", "{ws}", "--apply"], "clearset audit", "digits"),
    Case("review-no-audit-serve", ["review", "{ws}"], "clearset audit", "digits"),
    Case("review-remote-host", ["review", "{ws}", "--host", "0.0.0.0"], "--allow-remote", "digits"),
    Case("review-port-zero", ["review", "{ws}", "--port", "0"], "--port", "digits"),
    # --- found by sweeping every option with values out of range
    Case("curate-seed-negative", ["curate", "{ws}", "--strategy", "random", "--seed", "-1"], "--seed", "features"),
    Case("train-seed-negative", ["train", "{ws}", "--seed", "-1"], "--seed", "digits"),
    Case("curate-out-unwritable", ["curate", "{ws}", "--strategy", "random", "-o", "/proc/x.parquet"], "/proc/x.parquet",
         "features"),
    Case("demo-unwritable", ["demo", "-w", "/proc/demo"], "/proc/demo"),
    Case("distill-width-zero", ["distill", "{ws}", "--width", "0", "--iterations", "1"], "--width", "digits"),
    Case("oof-folds-too-many", ["oof", "{ws}", "--folds", "5000"], "--folds", "digits"),
    Case("reinforce-split-unknown", ["reinforce", "{ws}", "--teacher", "{ws}/runs/lp", "--split", "nope"], "nope",
         "run"),
    Case("bench-seeds-zero", ["bench", "{ws}", "--seeds", "0"], "--seeds", "features"),
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The workspaces cases start from, built once: copied into each case's folder."""
    import clearset
    from clearset.train import train

    root = tmp_path_factory.mktemp("prepared")
    clearset.ingest("builtin:digits", root / "digits")
    digits_with_features(root / "features")
    shutil.copytree(root / "features", root / "run")
    train(root / "run", recipe="linear-probe", name="lp", features="fake@8")
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_in_one_line(case: Case, prepared: Path, tmp_path: Path, capsys):
    if case.workspace:
        shutil.copytree(prepared / case.workspace, tmp_path / "ws")
    if case.setup:
        case.setup(tmp_path)
    before = snapshot(tmp_path)
    args = [a.format(tmp=tmp_path, ws=tmp_path / "ws") for a in case.args]
    code, _, err = run_cli(args, capsys)
    assert_one_error_line(code, err, case.message)
    assert snapshot(tmp_path) == before, "the failed command left or changed files"


def test_bad_input_suite_is_large_and_covers_every_command():
    import typer.main

    from clearset.cli import app

    commands = set(typer.main.get_command(app).commands)
    covered = {c.args[0] for c in CASES}
    assert len(CASES) >= 60
    assert commands - {"demo"} <= covered, commands - covered


def test_every_flag_a_library_message_names_exists_on_the_cli():
    """Library errors tell users which option to change: each ``--flag`` they name must be a real option
    of some command (or a global one); flags of other programs are listed here by name."""
    import re

    import typer.main

    from clearset.cli import app

    root = typer.main.get_command(app)
    options = {"--help"} | {o for p in root.params for o in [*p.opts, *p.secondary_opts]}
    for command in root.commands.values():
        options |= {o for p in command.params for o in [*p.opts, *p.secondary_opts]}
    other_programs = {"--head"}  # `ray start --head`
    src = Path(__file__).resolve().parents[2] / "src" / "clearset"
    named = {}
    for f in src.rglob("*.py"):
        if f.name != "cli.py":
            for m in re.finditer(r"(?<![\w-])--[a-z][a-z0-9-]*", f.read_text()):
                named.setdefault(m.group(0), f.relative_to(src))
    missing = {flag: str(where) for flag, where in named.items() if flag not in options | other_programs}
    assert not missing, missing


def test_every_parameter_a_library_message_names_has_a_flag():
    """Library errors name Python parameters (errors.param); the CLI shows each as the flag that sets it:
    an option of that name, or an alias in cli.FLAG_ALIASES. A name no command can set fails here."""
    import re

    import typer.main

    from clearset.cli import FLAG_ALIASES, app

    root = typer.main.get_command(app)
    settable = {p.name for c in root.commands.values() for p in c.params} | {p.name for p in root.params}
    settable |= {name for aliases in FLAG_ALIASES.values() for name in aliases}
    src = Path(__file__).resolve().parents[2] / "src" / "clearset"
    named = {m.group(1): f.relative_to(src) for f in src.rglob("*.py")
             for m in re.finditer(r"""param\(['"](\w+)['"]\)""", f.read_text())}
    assert len(named) > 30
    missing = {name: str(where) for name, where in named.items() if name not in settable}
    assert not missing, missing


# ------------------------------------------------------------------------------------------ the machine
def in_private_mounts(setup: str, args: list[str]) -> subprocess.CompletedProcess:
    """``clearset ARGS`` as a real process in a mount namespace of its own, after the shell ``setup``
    (mounts that exist for this process only: a read-only bind, a tiny tmpfs). Skipped where the machine
    allows no mount namespace."""
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0 or shutil.which("unshare") is None:
        pytest.skip("no private mount namespace here (unshare -m); the read-only and full-disk cases need one")
    cmd = " ".join(map(_quote, CLI + args))
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", f"set -e; {setup}; exec {cmd}"],
                          capture_output=True, text=True, timeout=300)


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(str(s))


READ_ONLY = [
    ("embed", ["embed", "{ws}", "--backbone", "test_efficientnet", "--image-size", "32"]),
    ("audit", ["audit", "{ws}"]),
    ("report", ["report", "{ws}"]),
    ("train", ["train", "{ws}", "--recipe", "linear-probe"]),
    ("ingest-again", ["ingest", "builtin:fractals?classes=2&per_class=2&size=16", "-o", "{ws}"]),
    ("ingest-under-it", ["ingest", "builtin:digits", "-o", "{ws}/new"]),
]


@pytest.mark.parametrize("name,args", READ_ONLY, ids=[n for n, _ in READ_ONLY])
def test_read_only_workspace_is_one_line(name, args, prepared, tmp_path):
    shutil.copytree(prepared / "features", tmp_path / "ws")
    before = snapshot(tmp_path)
    ws = tmp_path / "ws"
    r = in_private_mounts(f"mount --bind {ws} {ws}; mount -o remount,bind,ro {ws}",
                          [a.format(ws=ws) for a in args])
    line = assert_one_error_line(r.returncode, r.stderr, "read-only")
    assert str(ws) in line
    assert snapshot(tmp_path) == before


def test_full_disk_is_one_line_and_the_same_command_resumes(tmp_path):
    """A 48 KiB disk: one line; what is left is hidden resume state only (WS/.staging, never an artifact
    a reader would take); after the disk grows the same command finishes."""
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    cmd = " ".join(map(_quote, CLI + ["ingest", "builtin:digits", "-o", str(disk / "ws")]))
    script = (f"mount -t tmpfs -o size=48k tmpfs {disk}; {cmd} 2> {out}/err1 || echo $? > {out}/rc1; "
              f"ls -A {disk}/ws > {out}/left 2>/dev/null || true; mount -o remount,size=16m {disk}; "
              f"{cmd} 2> {out}/err2; echo $? > {out}/rc2; test -f {disk}/ws/manifest.parquet")
    r = in_private_mounts(script, ["--help"])
    assert r.returncode == 0, r.stderr
    line = assert_one_error_line(int((out / "rc1").read_text()), (out / "err1").read_text(), "disk is full")
    assert "run the same command again" in line
    left = (out / "left").read_text().split()
    assert all(name.startswith(".") for name in left), left
    assert (out / "rc2").read_text().strip() == "0", (out / "err2").read_text()


def test_full_disk_in_process_leaves_no_artifact(prepared, tmp_path, capsys, monkeypatch):
    """The writer of every artifact raising ENOSPC: one line, no artifact written or changed."""
    import clearset.io as cio

    shutil.copytree(prepared / "features", tmp_path / "ws")
    before = snapshot(tmp_path)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "ws" / "x"))

    real = cio.atomic_path

    class Full:
        def __init__(self, path):
            self.cm = real(path)

        def __enter__(self):
            tmp = self.cm.__enter__()
            full()
            return tmp

        def __exit__(self, *exc):
            return self.cm.__exit__(*exc)

    monkeypatch.setattr(cio, "atomic_path", Full)
    for mod in ("clearset.workspace", "clearset.audit", "clearset.curate", "clearset.reporting.html"):
        monkeypatch.setattr(f"{mod}.atomic_path", Full, raising=False)
    for args in (["audit", str(tmp_path / "ws"), "--checks", "outliers"],
                 ["curate", str(tmp_path / "ws"), "--strategy", "random"]):
        code, _, err = run_cli(args, capsys)
        assert_one_error_line(code, err, "disk is full")
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------------------ a new manifest
def test_a_new_manifest_sets_aside_what_the_old_one_made(prepared, tmp_path, capsys):
    """Re-ingesting other images into a workspace with features, an audit and a run: everything derived
    moves to WS/stale/<time>/ with one warning, the report works, and a stale embedding copied back is
    refused in one line by every reader."""
    import clearset

    ws = tmp_path / "ws"
    shutil.copytree(prepared / "run", ws)
    from clearset.audit import run_audit

    run_audit(ws, checks=["outliers", "label_issues"])
    code, _, err = run_cli(["ingest", "builtin:fractals?classes=3&per_class=4&size=16", "-o", str(ws)], capsys)
    assert code == 0, err
    assert "moved to" in err and "stale" in err
    stale = next((ws / "stale").iterdir())
    assert {"features", "audit", "runs"} <= {p.name for p in stale.iterdir()}
    assert not (ws / "features").exists() and not (ws / "audit").exists() and not (ws / "runs").exists()
    html = clearset.report(ws).read_text()
    assert 'id="audit"' not in html and 'id="training"' not in html
    shutil.copytree(stale / "features", ws / "features")  # the old embedding, back where it was
    capsys.readouterr()
    for args in (["probe", str(ws), "--features", "fake@8"], ["audit", str(ws), "--features", "fake@8"],
                 ["curate", str(ws), "--strategy", "dbp", "--features", "fake@8"]):
        code, _, err = run_cli(args, capsys)
        assert_one_error_line(code, err, "the manifest")
    assert "fake" not in clearset.report(ws).read_text()  # not listed as this workspace's embedding


def test_relabelling_keeps_the_features_and_sets_aside_the_rest(prepared, tmp_path, capsys):
    ws = tmp_path / "ws"
    shutil.copytree(prepared / "run", ws)
    n_train = int((pd.read_parquet(ws / "manifest.parquet")["split"] == "train").sum())
    np.save(tmp_path / "l.npy", np.arange(n_train) % 3)
    code, _, err = run_cli(["ingest", "builtin:digits", "-o", str(ws), "--labels", f"train={tmp_path / 'l.npy'}"],
                           capsys)
    assert code == 0, err
    assert (ws / "features" / "fake@8.npy").exists() and not (ws / "runs").exists()
    code, out, err = run_cli(["probe", str(ws)], capsys)
    assert code == 0 and "linear-probe accuracy" in out, err


def test_the_same_source_named_another_way_is_not_a_new_manifest(tmp_path, capsys, monkeypatch):
    """A folder ingested by its path, then through a symlink and a relative path, is one cached ingest;
    forced again (same images, splits, labels and classes) nothing derived is set aside."""
    from PIL import Image

    data = tmp_path / "data"
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i + (c == "b") * 100, np.uint8)).save(data / c / f"{i}.png")
    ws = tmp_path / "ws"
    assert run_cli(["ingest", str(data), "-o", str(ws)], capsys)[0] == 0
    (ws / "runs" / "kept").mkdir(parents=True)
    (tmp_path / "link").symlink_to(data)
    monkeypatch.chdir(tmp_path)
    for spelling in (str(tmp_path / "link"), "data", "./link/../data"):
        code, _, err = run_cli(["ingest", spelling, "-o", str(ws)], capsys)
        assert code == 0 and "cached" in err and "moved to" not in err, (spelling, err)
    code, _, err = run_cli(["ingest", "link", "-o", str(ws), "--force"], capsys)
    assert code == 0 and "moved to" not in err, err
    assert (ws / "runs" / "kept").exists() and not (ws / "stale").exists()


# ------------------------------------------------------------------------------------------ odd but valid
def _embed_and_report(ws: Path, capsys) -> str:
    for args in (["embed", str(ws), "--backbone", "test_efficientnet", "--image-size", "32", "--precision", "fp32"],
                 ["report", str(ws)]):
        code, _, err = run_cli(args, capsys)
        assert code == 0 and "Traceback" not in err, err
    return (ws / "report" / "index.html").read_text()


def test_csv_with_absolute_and_outside_paths_works_end_to_end(tmp_path, capsys):
    make_imagefolder(tmp_path / "elsewhere", classes=("a", "b"), per_class=3)
    (tmp_path / "lists").mkdir()
    rows = [f"{tmp_path / 'elsewhere' / c / f'{j}.png'},{c}" for c in "ab" for j in range(2)]  # absolute
    rows += [f"../elsewhere/{c}/2.png,{c}" for c in "ab"]  # relative, outside the table's folder
    (tmp_path / "lists" / "list.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    before = snapshot(tmp_path / "elsewhere")
    code, out, err = run_cli(["ingest", str(tmp_path / "lists" / "list.csv"), "-o", str(tmp_path / "ws")], capsys)
    assert code == 0 and "6 images, 2 classes" in out, err
    assert "Samples per class" in _embed_and_report(tmp_path / "ws", capsys)
    assert snapshot(tmp_path / "elsewhere") == before


@pytest.mark.parametrize("spec,splits", [("{tmp}/shards", {"train": 6, "test": 3}),
                                         ("{tmp}/shards/train/shard-{{000..001}}.tar", {"train": 6}),
                                         ("{tmp}/shards/*/shard-000.tar", {"train": 6})])
def test_shard_split_folders_globs_and_brace_ranges(spec, splits, tmp_path, capsys):
    from conftest import make_shards

    make_shards(tmp_path / "shards" / "train", shards=2, per_shard=3)
    make_shards(tmp_path / "shards" / "test", shards=1, per_shard=3)
    code, _, err = run_cli(["ingest", spec.format(tmp=tmp_path), "-o", str(tmp_path / "ws")], capsys)
    assert code == 0, err
    got = pd.read_parquet(tmp_path / "ws" / "manifest.parquet")["split"].value_counts().to_dict()
    assert got == splits
    assert "Dataset card" in _embed_and_report(tmp_path / "ws", capsys)


def test_tar_members_never_become_paths(tmp_path, capsys):
    """Members named ../x, /abs/x and a symlink: read by byte range or skipped, nothing written outside."""
    shard = tmp_path / "in" / "s.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as tf:
        for name, data in [("../../escape.png", PNG), ("../../escape.cls", b"0"), ("/etc/clearset-abs.png", JPEG),
                           ("/etc/clearset-abs.cls", b"1"), ("ok.png", PNG), ("ok.cls", b"1")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, __import__("io").BytesIO(data))
        link = tarfile.TarInfo("link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    before = snapshot(tmp_path)
    code, out, err = run_cli(["ingest", str(shard), "-o", str(tmp_path / "ws")], capsys)
    assert code == 0 and "3 images" in out, err
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("ws")}
    assert after == before and not Path("/etc/clearset-abs.png").exists()
    errors = pd.read_parquet(tmp_path / "ws" / "ingest_errors.parquet")
    assert errors["source"].str.contains("link.png").any()
    from clearset import Workspace

    ws = Workspace(tmp_path / "ws")
    assert all(ws.store().load(i).shape == (16, 16, 3) for i in range(3))


def test_odd_images_are_read_and_a_huge_one_is_skipped_with_one_warning(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "imgs"
    cmyk = Image.fromarray(rgb(3, 20, 20)).convert("CMYK")
    odd = {"a/cmyk.jpg": cmyk, "a/gray16.png": Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)),
           "a/palette.png": Image.fromarray(rgb(4, 9, 9)).convert("P"), "a/la.png": Image.new("LA", (5, 7), (100, 50)),
           "b/tiny.png": Image.new("RGB", (1, 1), (255, 0, 0)), "b/strip.png": Image.new("RGB", (500, 1)),
           "b/rgba.webp": Image.new("RGBA", (12, 12), (0, 0, 255, 40)), "b/bw.bmp": Image.new("1", (8, 8)),
           "b/huge.png": Image.new("L", (12000, 12000))}  # 144 MP, a 140 KB file
    for rel, im in odd.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        im.save(root / rel)
    code, out, err = run_cli(["ingest", str(root), "-o", str(tmp_path / "ws")], capsys)
    assert code == 0 and "8 images, 2 classes" in out, err
    assert "Traceback" not in err and "DecompressionBomb" not in err
    warnings = [line for line in err.splitlines() if "skipped" in line]
    assert len(warnings) == 1 and "ingest_errors.parquet" in warnings[0], err
    errors = pd.read_parquet(tmp_path / "ws" / "ingest_errors.parquet")
    assert list(errors["source"].str.contains("huge.png")) == [True] and "144 MP" in errors["error"].iloc[0]
    _embed_and_report(tmp_path / "ws", capsys)


def test_an_export_that_cannot_be_written_keeps_the_finished_audit(prepared, tmp_path, capsys):
    """The audit's tables are complete artifacts; only the export fails, in one line, and a rerun of the
    audit is a cache hit."""
    shutil.copytree(prepared / "features", tmp_path / "ws")
    ws = str(tmp_path / "ws")
    code, _, err = run_cli(["audit", ws, "--checks", "outliers", "--export", "/proc/e.parquet"], capsys)
    assert code == 2 and [line for line in err.splitlines() if line.startswith("error: ")] == [
        line for line in err.splitlines() if "/proc/e.parquet" in line]
    assert (tmp_path / "ws" / "audit" / "outliers.parquet").exists()
    code, _, err = run_cli(["audit", ws, "--checks", "outliers", "--export", str(tmp_path / "e.parquet")], capsys)
    assert code == 0 and "cached" in err and (tmp_path / "e.parquet").exists(), err
    exported = pd.read_parquet(tmp_path / "e.parquet")
    assert exported["is_outlier"].any() and not exported["is_label_issue"].any()  # no label_issues run: none flagged
