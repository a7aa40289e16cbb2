"""Shared test helpers: tiny images written in the test, the shared-data location, browser lookup."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLEARSET_SHARED_DATA", REPO.parent / "shared" / "data"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def rgb(seed: int, h: int = 12, w: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_image(path: Path, array: np.ndarray, fmt: str | None = None, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array)
    if mode:
        im = im.convert(mode)
    im.save(path, format=fmt)
    return path


def encoded(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def write_tar(path: Path, samples) -> Path:
    """A tar file of (member name, bytes) samples, in order."""
    import tarfile

    with tarfile.open(path, "w") as tf:
        for name, data in samples:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def make_shards(root: Path, shards: int = 4, per_shard: int = 5) -> Path:
    """WebDataset shards of small PNGs with .cls labels (0-3); shard 1 also holds a sample with no image
    and one undecodable image."""
    root.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        samples = []
        for i in range(per_shard):
            key = f"{s:03d}{i:03d}"
            samples += [(f"{key}.png", encoded(rgb(s * 100 + i))), (f"{key}.cls", str((s + i) % 4).encode())]
        if s == 1:
            samples += [("zz_noimage.cls", b"2"), ("zz_broken.png", b"not a png"), ("zz_broken.cls", b"1")]
        write_tar(root / f"shard-{s:03d}.tar", samples)
    return root


def make_imagefolder(root: Path, classes=("cat", "dog"), per_class: int = 3, ext: str = "png") -> Path:
    for c, name in enumerate(classes):
        for j in range(per_class):
            write_image(root / name / f"{j}.{ext}", rgb(100 * c + j))
    return root


def pytest_collection_modifyitems(config, items):
    """Tests that start a local Ray carry the ``ray`` marker, those on ../shared/data ``integration``, those
    that drive Chromium ``browser``: ``make test-fast`` leaves all three out."""
    for item in items:
        if "ray_engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data; skipped when absent, except under CI where its absence is a failure."""
    if not (SHARED_DATA / "cifar10.npz").exists():
        if IN_CI:
            pytest.fail(f"CI=true but the shared data is missing at {SHARED_DATA}")
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def require_chromium() -> str:
    """The Chromium binary; the test is skipped without one, except under CI, where that is a failure."""
    chromium = find_chromium()
    if chromium is None:
        if IN_CI:
            pytest.fail("CI=true but chromium is missing: .ci/run should have installed it")
        pytest.skip("chromium not installed (apt-get install chromium); the browser check needs it")
    return chromium


def chromium_dom(page: Path, profile: Path) -> str:
    """The DOM of ``page`` after headless Chromium has rendered it (skips without Chromium, as above)."""
    import subprocess

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"]
    return subprocess.run([require_chromium(), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                          timeout=120, check=True).stdout


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def digits_with_features(root: Path, features: np.ndarray | None = None, dim: int = 6):
    """The bundled digits ingested at ``root``, with a stand-in embedding ``fake@8`` (given, or seeded
    noise of ``dim`` columns) registered like `clearset embed` output."""
    import clearset

    ws = clearset.ingest("builtin:digits", root)
    n = len(ws.manifest())
    if features is None:
        features = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    path = ws.features_path("fake", 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(features, dtype=np.float32))
    ws.step("embed", params={"backbone": "fake", "image_size": 8, "precision": "fp32"}, inputs={}, outputs=[path],
            sidecar=ws.sidecar_of(path)).finish()
    return ws


@pytest.fixture(scope="session")
def demo_result(tmp_path_factory):
    """`clearset demo` run once for the session (about 2.5 min on 2 cores): its test and the review app's
    browser test share it."""
    import clearset

    return clearset.demo(tmp_path_factory.mktemp("demo") / "demo")
