"""clearset review: every route through Starlette's test client, the decision log's durability and races,
bad requests, paths, and a real server killed with SIGKILL mid-session."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

import clearset
from clearset.errors import ParameterError
from clearset.review import apply_review, serve
from clearset.review.app import create_app
from clearset.review.decisions import DecisionLog, open_log
from conftest import rgb, write_image

PAYLOADS = ['<img src=x onerror="document.title=\'PWNED-1\'">', "<script>document.title='PWNED-2'</script>",
            "cat & dog"]
TOKEN = "test-token"
H = {"X-Clearset-Token": TOKEN}
CLI = [sys.executable, "-c", "from clearset.cli import main; main()"]


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    """24 images in 3 classes named with HTML payloads (and payload file names), embedded and audited with
    given out-of-fold probabilities that contradict 4 labels, so every queue has something in it."""
    from clearset.audit import run_audit

    tmp = tmp_path_factory.mktemp("review")
    rows = []
    for c in range(3):
        for j in range(8):
            name = f"<b onmouseover=alert({c}{j})>{j}.png"
            write_image(tmp / "imgs" / str(c) / name, rgb(30 * c + j, 16, 16))
            rows.append((f"imgs/{c}/{name}", PAYLOADS[c], "test" if j >= 6 else "train"))
    write_image(tmp / "imgs" / "0" / "copy.png", rgb(0, 16, 16))  # an exact copy of the first image
    rows.append(("imgs/0/copy.png", PAYLOADS[0], "train"))
    pd.DataFrame(rows, columns=["path", "label", "split"]).to_csv(tmp / "list.csv", index=False)
    ws = clearset.ingest(str(tmp / "list.csv"), tmp / "ws")
    clearset.embed(ws, backbone="test_efficientnet", image_size=32, precision="fp32")
    labels = ws.manifest()["label"].to_numpy()
    probs = np.full((len(labels), 3), 0.02)
    probs[np.arange(len(labels)), labels] = 0.96
    for i in (1, 9, 17, 3):  # confidently another class
        probs[i] = 0.02
        probs[i, (labels[i] + 1) % 3] = 0.96
    np.save(tmp / "probs.npy", probs)
    run_audit(ws, pred_probs=tmp / "probs.npy", checks=["label_issues", "duplicates", "outliers", "multilabel"])
    return ws.root


@pytest.fixture
def ws_root(audited, tmp_path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(audited, root, symlinks=True)
    return root


@pytest.fixture
def client(ws_root) -> TestClient:
    return TestClient(create_app(ws_root, TOKEN, allowed_hosts=["testserver"]))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _items(client, queue, **params) -> list[dict]:
    r = client.get(f"/api/queue/{queue}", params={"per_page": 100, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_every_page_renders_and_data_is_shown_as_text(client):
    pages = ["/?token=" + TOKEN, "/queue/label_issues", "/queue/duplicates", "/queue/outliers",
             "/queue/label_issues?label=1&split=train&min=0.1&page=1", "/similar/0", "/similar/3?k=5"]
    for url in pages:
        r = client.get(url)
        assert r.status_code == 200, (url, r.text)
        assert "script-src 'self'" in r.headers["content-security-policy"]
        for payload in PAYLOADS[:2]:
            assert payload not in r.text  # never raw
        assert "<b onmouseover" not in r.text
    page = client.get("/queue/label_issues").text
    assert "&lt;script&gt;document.title=&#39;PWNED-2&#39;&lt;/script&gt;" in page or \
           "&lt;img src=x onerror=" in page
    assert "cat &amp; dog" in page
    assert len(_items(client, "label_issues")) >= 4
    assert client.get("/image/0.png?size=64").headers["content-type"] == "image/png"
    assert client.get("/api/neighbours/0?k=3").json()["neighbours"][0]["index"] != 0
    assert client.get("/static/review.js").status_code == 200


def test_the_token_reaches_only_a_page_that_holds_it(client):
    assert 'content="test-token"' in client.get("/?token=" + TOKEN).text
    assert 'content="test-token"' in client.get("/queue/label_issues").text  # the cookie the URL set
    fresh = TestClient(client.app)
    assert 'content="test-token"' not in fresh.get("/").text
    assert 'content="test-token"' not in fresh.get("/?token=wrong").text


def test_decide_undo_and_apply_write_a_new_version(client, ws_root):
    before = _sha(ws_root / "manifest.parquet")
    issue = _items(client, "label_issues")[0]
    r = client.post("/api/decide", json={"finding": issue["finding"], "action": "relabel", "label": issue["suggested"],
                                         "expect": 0}, headers=H)
    assert r.status_code == 200, r.text
    pair = _items(client, "duplicates")[0]
    assert client.post("/api/decide", json={"finding": pair["finding"], "action": "drop", "index": pair["partner"]},
                       headers=H).status_code == 200
    other = _items(client, "label_issues")[1]
    client.post("/api/decide", json={"finding": other["finding"], "action": "ambiguous"}, headers=H)
    client.post("/api/decide", json={"finding": other["finding"], "action": "keep"}, headers=H)
    undone = client.post("/api/undo", json={}, headers=H).json()["undone"]
    assert undone["finding"] == other["finding"] and undone["action"] == "undo"  # back to ambiguous
    out = client.post("/api/apply", json={}, headers=H).json()
    m = pd.read_parquet(out["manifest"]).set_index("index")
    assert m.loc[issue["index"], "label"] == issue["suggested"] == m.loc[issue["index"], "clean_label"]
    assert m.loc[issue["index"], "given_label"] == issue["label"]
    assert bool(m.loc[pair["partner"], "drop"]) and not bool(m.loc[pair["index"], "drop"])
    assert bool(m.loc[other["index"], "ambiguous"])
    folder = Path(out["folder"])
    subset = pd.read_parquet(folder / "subset.parquet")
    assert pair["partner"] not in set(subset["index"]) and set(m.index[m["split"] == "test"]).isdisjoint(subset["index"])
    tasks = json.loads((folder / "label_studio.json").read_text())
    assert [t["data"]["clearset_index"] for t in tasks] == [other["index"]]
    changes = pd.read_csv(folder / "changes.csv")
    assert set(changes["index"]) == {issue["index"], pair["partner"], other["index"]}
    assert set(pd.read_csv(folder / "label_issues.csv").columns) >= {"is_label_issue", "label_quality", "given_label",
                                                                     "predicted_label", "reviewed_label"}
    assert _sha(ws_root / "manifest.parquet") == before  # the workspace's own manifest is untouched
    assert client.post("/api/apply", json={}, headers=H).json()["version"] == 2


def test_bulk_accepts_every_suggestion_in_a_filter(client):
    items = _items(client, "label_issues", label=0)
    r = client.post("/api/bulk", json={"queue": "label_issues", "action": "accept", "label": 0}, headers=H)
    assert r.json()["decided"] == len(items) > 0
    state = client.app.state.review.log
    assert {state.current(i["finding"])["new"] for i in items} == {i["suggested"] for i in items}


@pytest.mark.parametrize("body,status", [
    ({"finding": "label:100000", "action": "keep"}, 404),
    ({"finding": "../../etc/passwd", "action": "keep"}, 404),
    ({"finding": None, "action": "keep"}, 404),
    ({"finding": "FIRST", "action": "relabel", "label": 7}, 400),
    ({"finding": "FIRST", "action": "relabel", "label": "<b>"}, 400),
    ({"finding": "FIRST", "action": "relabel"}, 400),
    ({"finding": "FIRST", "action": "delete-everything"}, 400),
    ({"finding": "FIRST", "action": "keep", "expect": "x"}, 400),
    ("[1, 2]", 400),
    ("{not json", 400),
])
def test_bad_requests_get_a_message_and_change_nothing(client, ws_root, body, status):
    first = _items(client, "label_issues")[0]["finding"]
    log = client.app.state.review.log
    n = len(log)
    if isinstance(body, dict):
        body = json.dumps({k: (first if v == "FIRST" else v) for k, v in body.items()})
    r = client.post("/api/decide", content=body.encode(), headers={**H, "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]
    assert len(log) == n
    assert not (ws_root / "review" / "decisions.jsonl").exists() or len(open_log(ws_root / "review")) == n


def test_writes_need_the_token_and_json(client):
    first = _items(client, "label_issues")[0]["finding"]
    body = {"finding": first, "action": "keep"}
    assert client.post("/api/decide", json=body).status_code == 403
    assert client.post("/api/decide", json=body, headers={"X-Clearset-Token": "guess"}).status_code == 403
    assert client.post("/api/apply", json={}).status_code == 403
    form = client.post("/api/decide", content=b"finding=x", headers={**H, "content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 400
    assert len(client.app.state.review.log) == 0


def test_paths_never_leave_the_workspace(client):
    for url in ["/image/..%2F..%2Fmanifest.png", "/image/-1.png", "/image/100000.png", "/image/0.png?size=4096",
                "/static/..%2F..%2F..%2Ferrors.py", "/static/../app.py", "/queue/..%2Fsecrets", "/similar/100000"]:
        r = client.get(url)
        assert r.status_code in (400, 404), (url, r.status_code)
        assert "ClearsetError" not in r.text and "import" not in r.text


def test_a_foreign_host_header_is_refused(ws_root):
    c = TestClient(create_app(ws_root, TOKEN, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://evil.example")
    assert c.get("/").status_code == 400


def test_two_clients_on_one_finding_record_one_winner(ws_root):
    """Two logs on the same file (two tabs of two servers): both saw no decision; exactly one is recorded."""
    from clearset.review.decisions import Conflict

    a, b = open_log(ws_root / "review"), open_log(ws_root / "review")
    results: list[str] = []
    barrier = threading.Barrier(2)

    def go(log: DecisionLog, label: int):
        barrier.wait()
        try:
            log.decide([{"finding": "label:1", "action": "relabel", "index": 1, "old": 0, "new": label, "expect": 0}])
            results.append(f"won {label}")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=go, args=(a, 1)), threading.Thread(target=go, args=(b, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.split()[0] for r in results) == ["conflict", "won"]
    fresh = open_log(ws_root / "review")
    assert len(fresh) == 1 and fresh.current("label:1")["new"] == int(next(r for r in results if r != "conflict")[-1])


def test_a_torn_last_line_is_skipped_and_the_next_decision_starts_fresh(tmp_path):
    log = open_log(tmp_path)
    log.decide([{"finding": "label:1", "action": "keep", "index": 1}])
    with open(tmp_path / "decisions.jsonl", "ab") as fh:
        fh.write(b'{"seq": 2, "finding": "label:2", "act')  # a crash in the middle of a write
    again = open_log(tmp_path)
    assert len(again) == 1
    again.decide([{"finding": "label:3", "action": "drop", "index": 3}])
    third = open_log(tmp_path)
    assert [r["finding"] for r in third.records()] == ["label:1", "label:3"]


def test_undo_walks_back_through_a_findings_decisions(tmp_path):
    log = open_log(tmp_path)
    log.decide([{"finding": "label:1", "action": "relabel", "index": 1, "old": 0, "new": 2}])
    log.decide([{"finding": "label:1", "action": "drop", "index": 1}])
    log.undo()
    assert log.current("label:1")["action"] == "relabel"
    log.undo("label:1")
    assert log.current("label:1") is None and log.undo() is None
    assert open_log(tmp_path).effective() == []


def test_review_needs_an_audit_and_a_local_host(tmp_path):
    ws = clearset.ingest("builtin:digits", tmp_path / "ws")
    r = subprocess.run([*CLI, "review", str(ws.root), "--apply"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "run `clearset audit" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(ParameterError, match="allow-remote"):
        serve(ws.root, host="0.0.0.0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(ws_root: Path, port: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([*CLI, "review", str(ws_root), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"token=(\S+)", line)
        if found:
            break
        assert time.time() < deadline, "the server did not start"
    else:
        raise AssertionError("the server exited before printing its URL")
    while time.time() < deadline:  # the URL is printed just before uvicorn binds
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            return proc, found.group(1)
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server printed its URL but does not answer")


def _post(port: int, token: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "X-Clearset-Token": token})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


@pytest.mark.slow
def test_kill_9_mid_session_loses_no_acknowledged_decision(ws_root):
    port = _free_port()
    proc, token = _start(ws_root, port)
    try:
        items = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/queue/label_issues", timeout=10).read())
        acked = [_post(port, token, "/api/decide", {"finding": it["finding"], "action": "keep"})["decision"]["seq"]
                 for it in items["items"]]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert acked
    proc, token = _start(ws_root, port)
    try:
        log = open_log(ws_root / "review")
        assert [r["seq"] for r in log.records()] == acked
        out = _post(port, token, "/api/apply", {})
        assert out["in_force"] == len(acked)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert apply_review(ws_root)["version"] == 2


def _browser(chromium: str):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    return pw, pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])


@pytest.mark.browser
@pytest.mark.slow
def test_in_chromium_relabel_with_the_keyboard_drop_a_duplicate_and_apply(demo_result, tmp_path):
    from conftest import require_chromium

    chromium = require_chromium()
    root = tmp_path / "demo"
    shutil.copytree(demo_result.report.parent.parent, root, symlinks=True,
                    ignore=shutil.ignore_patterns("runs", "report", "bench", "distilled", "subsets", "reinforced",
                                                  "stale", "oof", "probe", "review"))
    port = _free_port()
    proc, token = _start(root, port)
    pw, browser = _browser(chromium)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        base = f"http://127.0.0.1:{port}"
        page.goto(f"{base}/?token={token}")
        page.goto(f"{base}/queue/label_issues")
        card = page.locator(".card").first
        index, given = int(card.get_attribute("data-index")), int(card.get_attribute("data-label"))
        target = (given + 1) % 10
        page.keyboard.press(str(target))
        page.locator(".card.decided").first.wait_for(timeout=10_000)  # (the page's CSP forbids eval'd waits)
        assert "relabel" in card.locator(".state").inner_text()
        page.wait_for_timeout(300)  # the neighbours' thumbnails
        shot = tmp_path / "review.png"
        page.screenshot(path=str(shot))
        if os.environ.get("CLEARSET_SCREENSHOT_DIR"):  # how docs/img/review.png is made
            shutil.copy(shot, Path(os.environ["CLEARSET_SCREENSHOT_DIR"]) / "review.png")
        page.goto(f"{base}/queue/duplicates")
        pair = page.locator(".card").first
        dropped = int(pair.get_attribute("data-index"))
        page.keyboard.press("x")
        page.locator(".card.decided").first.wait_for(timeout=10_000)
        page.goto(f"{base}/")
        page.click("#apply")
        page.locator("#applied", has_text="version").wait_for(timeout=20_000)
    finally:
        browser.close()
        pw.stop()
        proc.terminate()
        proc.wait(timeout=30)
    m = pd.read_parquet(root / "review" / "versions" / "v1" / "manifest.parquet").set_index("index")
    assert m.loc[index, "label"] == target and m.loc[index, "given_label"] == given
    assert bool(m.loc[dropped, "drop"]) and int(m["drop"].sum()) == 1


@pytest.mark.browser
def test_in_chromium_html_in_class_and_file_names_is_text(audited, tmp_path):
    from conftest import require_chromium

    chromium = require_chromium()
    root = tmp_path / "ws"
    shutil.copytree(audited, root, symlinks=True)
    port = _free_port()
    proc, token = _start(root, port)
    pw, browser = _browser(chromium)
    try:
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"http://127.0.0.1:{port}/?token={token}")
        for queue in ("label_issues", "duplicates"):
            page.goto(f"http://127.0.0.1:{port}/queue/{queue}")
            page.wait_for_timeout(300)
            assert "PWNED" not in page.title()
            text = page.locator("main").inner_text()
            if queue == "label_issues":
                assert "<b onmouseover=" in text  # the file name, shown as text
            page.locator(".card img").first.hover()
        assert any(p in page.locator("main").inner_text() for p in PAYLOADS[:2])
        assert page.evaluate("document.querySelectorAll('main script, main svg, main b[onmouseover]').length") == 0
        assert dialogs == []
    finally:
        browser.close()
        pw.stop()
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_the_map_is_computed_once_and_a_box_opens_its_images(client, ws_root):
    app_state = client.app.state.review
    assert client.get("/map").status_code == 200
    assert client.get("/region?x0=0&x1=1&y0=0&y1=1").status_code == 400 or app_state.map.coords is not None
    assert app_state.map.wait(600), app_state.map.error
    d = client.get("/api/map").json()
    assert d["state"] == "ready" and d["n"] == len(d["x"]) == len(d["label"]) == 25
    xy = np.load(ws_root / "review" / "map" / "test_efficientnet@32.npy")
    assert xy.shape == (25, 2) and np.isfinite(xy).all()
    x, y = np.array(d["x"]), np.array(d["y"])
    box = {"x0": float(np.median(x)), "x1": float(x.max()) + 1, "y0": float(y.min()) - 1, "y1": float(y.max()) + 1}
    r = client.get("/region", params=box)
    assert r.status_code == 200
    want = {int(i) for i in np.flatnonzero(xy[:, 0] >= box["x0"])}
    shown = {int(v) for v in re.findall(r'data-index="(\d+)"', r.text)}
    assert shown == want and want
    one = min(want)
    assert client.post("/api/decide", json={"finding": f"image:{one}", "action": "drop"}, headers=H).status_code == 200
    assert client.post("/api/decide", json={"finding": "image:99999", "action": "drop"}, headers=H).status_code == 404
    for bad in ("/region?x0=a&x1=1&y0=0&y1=1", "/region?x0=0", "/region?x0=nan&x1=1&y0=0&y1=1",
                "/region?x0=0&x1=1&y0=0&y1=1&page=0"):
        assert client.get(bad).status_code == 400, bad
    lo, hi = xy.min(0) - 1, xy.max(0) + 1
    xs = np.sort(xy[:, 0])
    cut = float(xs[11] + xs[12]) / 2  # between two points, so none lies on the lasso's edge
    left_half = [lo[0], lo[1], cut, lo[1], cut, hi[1], lo[0], hi[1]]
    r = client.get("/region", params={"poly": ",".join(map(str, left_half))})
    assert {int(v) for v in re.findall(r'data-index="(\d+)"', r.text)} == \
        {int(i) for i in np.flatnonzero(xy[:, 0] < cut)}
    for bad in ("1,2,3", "a,b,c,d,e,f", "1,2,3,4,5,nan"):
        assert client.get("/region", params={"poly": bad}).status_code == 400, bad
    again = create_app(ws_root, TOKEN).state.review.map  # cached: the second app loads it, no refit
    assert again.wait(30) and np.array_equal(again.coords, xy)


def test_the_static_report_links_to_the_app(ws_root):
    html = clearset.report(ws_root).read_text()
    assert f"clearset review {ws_root}" in html
    assert 'href="http://127.0.0.1:8765/queue/label_issues"' in html and 'href="http://127.0.0.1:8765/map"' in html


def test_the_lasso_uses_the_even_odd_rule():
    from clearset.review.app import _in_polygon

    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], dtype=float)
    pts = np.array([[1, 1], [3, 1], [-0.5, 1], [1, 2.5], [1.9, 0.1]])
    assert _in_polygon(pts, square).tolist() == [True, False, False, False, True]
    bowtie = np.array([[0, 0], [2, 2], [2, 0], [0, 2]], dtype=float)  # self-crossing: two triangles
    assert _in_polygon(np.array([[1, 1.5], [0.2, 1.0], [1.8, 1.0]]), bowtie).tolist() == [False, True, True]


def test_the_applied_review_flows_into_curate_and_bench(client, ws_root):
    """``reviewed`` trains on the newest applied version: dropped images out, relabels in; applying a review
    leaves every other strategy's subsets cached; ``clearset bench`` runs it beside ``clean``."""
    from clearset.curate import curate
    from clearset.leaderboard.runner import run_bench

    with pytest.raises(ParameterError, match="clearset review"):
        curate(ws_root, strategy="reviewed", keep=1.0)
    curate(ws_root, strategy="random", keep=0.5)
    issue = _items(client, "label_issues")[0]
    client.post("/api/decide", json={"finding": issue["finding"], "action": "relabel", "label": issue["suggested"]},
                headers=H)
    pair = _items(client, "duplicates")[0]
    client.post("/api/decide", json={"finding": pair["finding"], "action": "drop", "index": pair["partner"]}, headers=H)
    client.post("/api/apply", json={}, headers=H)
    assert curate(ws_root, strategy="random", keep=0.5).cached
    r = curate(ws_root, strategy="reviewed", keep=1.0)
    table = pd.read_parquet(r.path).set_index("index")
    n_train = int((clearset.Workspace(ws_root).manifest()["split"] == "train").sum())
    assert len(table) == n_train - 1 and pair["partner"] not in table.index
    assert table.loc[issue["index"], "label"] == issue["suggested"]
    small = pd.read_parquet(curate(ws_root, strategy="reviewed", keep=0.2).path)
    assert issue["index"] in set(small["index"])  # what a person verified comes first
    assert curate(ws_root, strategy="reviewed", keep=1.0).cached  # a finished step is a cache hit
    client.post("/api/decide", json={"finding": issue["finding"], "action": "keep"}, headers=H)
    client.post("/api/apply", json={}, headers=H)  # a new version: the reviewed subset is made again
    again = curate(ws_root, strategy="reviewed", keep=1.0)
    assert not again.cached and pd.read_parquet(again.path).set_index("index").loc[issue["index"], "label"] == issue["label"]
    board = run_bench(ws_root, strategies=["clean", "reviewed"], keeps=[0.5], seeds=[0], recipe="linear-probe", full=False)
    assert sorted(board["strategy"]) == ["clean", "reviewed"] and board["test_acc"].notna().all()
