"""Embed with a tiny random timm model: row i = image i, cache hits, and resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import clearset
from clearset.data.images import resize_center
from clearset.errors import ParameterError, WorkspaceError
from clearset.models.backbones import create_backbone

MODEL = "test_efficientnet"  # timm's ~0.4M-parameter test network


@pytest.fixture
def ws(tmp_path):
    return clearset.ingest("builtin:fractals?classes=3&per_class=20&size=24&test=0.25", tmp_path / "ws")


def test_rows_follow_manifest_order(ws):
    r = clearset.embed(ws, backbone=MODEL, image_size=32, batch_size=7, precision="fp32")
    feats = r.load()
    assert feats.shape == (60, 256) and feats.dtype == np.float32 and r.logits is None
    bb = create_backbone(MODEL)
    for i in (0, 13, 59):
        x = torch.from_numpy(np.array(resize_center(ws.store().load(i), 32))).permute(2, 0, 1)[None].float()
        x = (x - torch.tensor(bb.mean).view(1, 3, 1, 1) * 255) / (torch.tensor(bb.std).view(1, 3, 1, 1) * 255)
        with torch.no_grad():
            expected = bb.features_and_logits(x)[0][0].numpy()
        np.testing.assert_allclose(feats[i], expected, rtol=1e-4, atol=1e-4)


def test_cache_hit_and_force(ws):
    first = clearset.embed(ws, backbone=MODEL, image_size=32, precision="fp32")
    stamp = first.features.stat().st_mtime_ns
    again = clearset.embed(ws, backbone=MODEL, image_size=32, precision="fp32")
    assert again.cached and again.features.stat().st_mtime_ns == stamp
    other = clearset.embed(ws, backbone=MODEL, image_size=32, precision="fp32", dtype="float16")
    assert not other.cached and other.load().dtype == np.float16  # a changed parameter is a new key
    forced = clearset.embed(ws, backbone=MODEL, image_size=32, precision="fp32", dtype="float16", force=True)
    assert not forced.cached


def test_bad_parameters(ws, tmp_path):
    with pytest.raises(ParameterError, match="unknown backbone 'nonet'"):
        clearset.embed(ws, backbone="nonet")
    with pytest.raises(ParameterError, match="precision"):
        clearset.embed(ws, backbone=MODEL, precision="fp8")
    with pytest.raises(ParameterError, match="image_size"):
        clearset.embed(ws, backbone=MODEL, image_size=4)
    with pytest.raises(WorkspaceError, match="clearset ingest"):
        clearset.embed(tmp_path / "empty", backbone=MODEL)


SLOW_EMBED = """
import sys, time
import clearset.features as e
real = e._load_batch
def slow(*args):
    time.sleep(0.15)
    return real(*args)
e._load_batch = slow
e.embed(sys.argv[1], backbone="{model}", image_size=32, batch_size=4, chunk_size=4, threads=1, precision="fp32")
"""


def test_sigkill_then_resume_loses_and_duplicates_nothing(ws, tmp_path):
    progress = ws.root / "features" / f".{MODEL}@32.npy.progress.json"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_EMBED.format(model=MODEL), str(ws.root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if progress.exists() and json.loads(progress.read_text())["done"] >= 12:
                break
            assert proc.poll() is None, "embed finished or died before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("embed made no progress")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    done = json.loads(progress.read_text())["done"]
    assert 12 <= done < 60
    assert not ws.features_path(MODEL, 32).exists()  # no half-written final artifact
    resumed = clearset.embed(ws, backbone=MODEL, image_size=32, batch_size=4, chunk_size=4, precision="fp32")
    meta = json.loads(ws.sidecar_of(resumed.features).read_text())
    assert meta["resumed_from"] == done
    fresh = clearset.ingest("builtin:fractals?classes=3&per_class=20&size=24&test=0.25", tmp_path / "fresh")
    reference = clearset.embed(fresh, backbone=MODEL, image_size=32, batch_size=4, precision="fp32").load()
    np.testing.assert_allclose(resumed.load(), reference, rtol=1e-5, atol=1e-5)
    assert not progress.exists()


def test_relabelling_keeps_the_features_cached(tmp_path):
    spec = "builtin:fractals?classes=2&per_class=5&size=16&test=0"
    ws = clearset.ingest(spec, tmp_path / "ws")
    first = clearset.embed(ws, backbone=MODEL, image_size=32, precision="fp32")
    np.save(tmp_path / "flip.npy", 1 - ws.manifest()["label"].to_numpy())
    ws = clearset.ingest(spec, tmp_path / "ws", labels=[str(tmp_path / "flip.npy")])
    assert clearset.embed(ws, backbone=MODEL, image_size=32, precision="fp32").cached
    assert first.features.exists()
