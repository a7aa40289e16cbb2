"""The report renders every section, links only files that exist, and shows in a real browser."""

import re
import subprocess

import pytest

import clearset
from clearset.reporting.sections import SECTIONS
from conftest import make_imagefolder, require_chromium


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
    chromium = require_chromium()
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]
    subprocess.run([chromium, *flags, "--window-size=1200,1400", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    dom = subprocess.run([chromium, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "Dataset card" in dom and "Samples per class" in dom
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    # A blank or error page is nearly one colour; the report has text, charts and image grids.
    assert len(np.unique(img.reshape(-1, 3)[::37], axis=0)) > 200


PAYLOADS = ['<img src=x onerror="document.title=\'PWNED-1\'">', '"><svg onload="document.title=\'PWNED-2\'">',
            "<script>document.title='PWNED-3'</script>"]


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """A dataset whose class names, file names and run name are HTML/JS payloads, fully reported."""
    import numpy as np

    from clearset.train import train
    from conftest import rgb, write_image

    tmp = tmp_path_factory.mktemp("hostile")
    rows = []
    for c, label in enumerate(PAYLOADS):
        for j in range(4):
            name = f"<img src=x onerror=\"document.title='PWNED-f{c}{j}'\">.png"
            write_image(tmp / "imgs" / str(c) / name, rgb(10 * c + j, 16, 16))
            rows.append((f"imgs/{c}/{name}", label, "test" if j == 3 else "train"))
    (tmp / "imgs" / "<svg onload=alert(9)>.png").write_bytes(b"not an image")  # listed as skipped
    rows.append(("imgs/<svg onload=alert(9)>.png", PAYLOADS[0], "train"))
    import pandas as pd

    pd.DataFrame(rows, columns=["path", "label", "split"]).to_csv(tmp / "list.csv", index=False)
    ws = clearset.ingest(str(tmp / "list.csv"), tmp / "ws")
    clearset.embed(ws, backbone="test_efficientnet", image_size=32, precision="fp32")
    train(ws, recipe="linear-probe", name="<svg onload=\"document.title='PWNED-run'\">")
    from clearset.audit import run_audit

    run_audit(ws)
    assert np.isfinite(np.load(ws.features_path("test_efficientnet", 32))).all()
    return clearset.report(ws)


def test_payload_names_are_escaped_in_the_html(hostile_report):
    html = hostile_report.read_text()
    assert "&lt;img src=x onerror=" in html  # shown, as text
    for raw in ("<img src=x", "<svg", "<script>document", "onload=\"document", "onerror=\"document"):
        assert raw not in html, raw
    assert html.count("<script>") == 1 and 'http-equiv="Content-Security-Policy"' in html
    tags = elements(html)
    assert not [t for t, attrs in tags if t == "svg" or any(a.startswith("on") for a, _ in attrs)]


@pytest.mark.browser
def test_payload_report_runs_no_injected_script_in_chromium(hostile_report, tmp_path):
    chromium = require_chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", hostile_report.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "PWNED" not in dom.split("</title>")[0]  # no payload set the title: none ran
    assert re.search(r'<html[^>]*class="[^"]*\bjs\b', dom)  # the page's own script did run under the policy
    tags = elements(dom)
    assert not [t for t, attrs in tags if t == "svg" or any(a.startswith("on") for a, _ in attrs)]
    assert sum(t == "script" for t, _ in tags) == 1
    assert "&lt;img src=x onerror=" in dom  # the names are there, as text


def elements(html: str) -> list[tuple[str, list]]:
    """(tag, attributes) of every element of an HTML document."""
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(html)
    return found
