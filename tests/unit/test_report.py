"""The report renders every section, links only files that exist, and shows in a real browser."""

import re
import subprocess

import pytest

import clearset
from clearset.reporting.sections import SECTIONS
from conftest import IN_CI, find_chromium, make_imagefolder


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    root = make_imagefolder(tmp / "d", classes=("apple", "pear", "plum"), per_class=4)
    (root / "plum" / "broken.png").write_bytes(b"nope")
    ws = clearset.ingest(str(root), tmp / "ws")
    clearset.embed(ws, backbone="test_efficientnet", image_size=32, precision="fp32")
    return clearset.report(ws)


def test_sections_and_assets(report):
    html = report.read_text()
    assert 'id="dataset"' in html and 'id="embeddings"' in html
    for name in ("apple", "pear", "plum", "broken.png", "test_efficientnet@32.npy"):
        assert name in html
    assets = re.findall(r'src="([^"]+)"', html)
    assert assets and all((report.parent / a).is_file() for a in assets)


def test_sections_without_data_are_left_out(tmp_path):
    ws = clearset.ingest("builtin:fractals?classes=2&per_class=2&size=16", tmp_path / "ws")
    html = clearset.report(ws).read_text()
    assert 'id="dataset"' in html and 'id="embeddings"' not in html
    assert {"dataset", "embeddings"} <= set(SECTIONS.names())


@pytest.mark.browser
def test_renders_in_headless_chromium(report, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        if IN_CI:
            pytest.fail("CI=true but chromium is missing: .ci/run should have installed it")
        pytest.skip("chromium not installed (apt-get install chromium); the browser check needs it")
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]
    subprocess.run([chromium, *flags, "--window-size=1200,1400", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    dom = subprocess.run([chromium, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "Dataset card" in dom and "Samples per class" in dom
    from PIL import Image
    import numpy as np

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    # A blank or error page is nearly one colour; the report has text, charts and image grids.
    assert len(np.unique(img.reshape(-1, 3)[::37], axis=0)) > 200
