"""explain-diff: the attributes that separate two sets of images, ranked by AUROC."""

import numpy as np
import pytest

import clearset
from clearset.errors import ParameterError
from clearset.explain.diff import attributes, diff, select


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """60 images of 2 classes; half of class 1 brightened (the planted difference)."""
    rng = np.random.default_rng(0)
    grey = rng.uniform(50, 110, (60, 1, 1, 1)) + rng.normal(0, rng.uniform(5, 25, (60, 1, 1, 1)), (60, 16, 16, 1))
    chroma = rng.uniform(0, 50, (60, 1, 1, 1)) * rng.normal(0, 1, (60, 1, 1, 3))  # images differ in colour too
    x = grey + chroma
    y = np.arange(60) % 2
    bright = (y == 1) & (np.arange(60) < 30)
    x[bright] += 70  # the same on every channel: brighter, colour differences kept
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("d") / "d.npz"
    np.savez(path, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:], class_names=np.array(["a", "b"]))
    return clearset.ingest(str(path), tmp_path_factory.mktemp("w") / "ws"), bright


def test_a_planted_brightness_difference_ranks_first(ws):
    w, bright = ws
    m = w.manifest(["index"])
    assert len(m) == 60
    res = diff(w, "class=b,split=train", "class=a,split=train")
    top = res["ranked"][0]
    assert top["attribute"] == "brightness" and top["auroc"] > 0.8 and top["p"] < 0.01
    same = diff(w, "class=a,split=train", "class=a,split=train")
    assert all(abs(r["auroc"] - 0.5) < 1e-9 for r in same["ranked"])  # a set against itself: no difference


def test_attributes_and_selectors():
    grey = np.full((8, 8, 3), 128, np.uint8)
    a = attributes(grey)
    assert abs(a["brightness"] - 128 / 255) < 1e-9 and a["contrast"] == 0 and a["saturation"] == 0
    assert a["colourfulness"] == 0 and a["sharpness"] == 0 and a["edge_density"] == 0
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    assert attributes(red)["saturation"] == 1 and attributes(red)["colourfulness"] > 0


def test_bad_selectors_are_one_line(ws):
    w, _ = ws
    for sel, match in [("", "empty"), ("class=zebra", "zebra"), ("colour=red", "colour"), ("split", "key=value"),
                       ("correct=true", "run"), ("split=val", "matches no image")]:
        with pytest.raises(ParameterError, match=match):
            select(w, sel)


def test_instruction_exemplars_are_diverse_held_out_and_scored():
    """medoids pick one image per sub-cluster (not the near-duplicates nearest the mean); boundary examples
    are the class's images nearest another class; mAP is computed on held-out queries."""
    from clearset.explain.instructions import boundary, exemplars, retrieval_map

    rng = np.random.default_rng(0)
    # class 0: two tight sub-clusters far apart; class 1 elsewhere; one class-0 image sits next to class 1
    a = np.r_[rng.normal(0, 0.01, (20, 3)) + [1, 0, 0], rng.normal(0, 0.01, (20, 3)) + [0, 1, 0]]
    b = rng.normal(0, 0.01, (40, 3)) + [0, 0, 1]
    x = np.r_[a, b, [[0.05, 0.0, 1.0]]]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.r_[np.zeros(40, int), np.ones(40, int), [0]]
    med = exemplars(x, y, 2, 2, "medoids", seed=0)
    assert sorted((x[med[0]][:, 1] > 0.5).tolist()) == [False, True]  # one from each sub-cluster
    assert boundary(x, y, 2, 1)[0] == [(80, 1)]  # the class-0 image near class 1
    score = retrieval_map(med, x, x[:80], y[:80])
    assert 0.9 < score <= 1.0
    with pytest.raises(ParameterError, match="rule"):
        exemplars(x, y, 2, 2, "best", seed=0)


def test_instructions_on_a_workspace_and_in_the_report(tmp_path):
    import json
    import re

    from clearset.explain.instructions import instructions
    from conftest import digits_with_features

    ws = clearset.ingest("builtin:digits", tmp_path / "raw")
    labels = ws.manifest()["label"].to_numpy()
    feats = np.eye(10)[labels] + np.random.default_rng(0).normal(0, 0.3, (len(labels), 10))
    ws = digits_with_features(tmp_path / "ws", feats)
    out = json.loads(instructions(ws, per_class=3).read_text())
    assert set(out["map"]) == {"medoids", "mean", "random"} and all(0 < v <= 1 for v in out["map"].values())
    assert all(len(c["exemplars"]) == 3 and len(c["boundary"]) == 3 for c in out["classes"].values())
    page = clearset.report(ws)
    html = page.read_text()
    assert 'id="instructions"' in html and "near " in html
    assets = [a for a in re.findall(r'src="([^"]+)"', html) if "instructions/" in a]
    assert len(assets) >= 10 * 6 and all((page.parent / a).is_file() for a in assets)  # every tile's image


@pytest.mark.browser
def test_the_instructions_section_renders_in_headless_chromium(tmp_path):
    from clearset.explain.instructions import instructions
    from conftest import chromium_dom, digits_with_features, require_chromium

    require_chromium()
    ws = digits_with_features(tmp_path / "ws", dim=8)
    instructions(ws, per_class=2)
    dom = chromium_dom(clearset.report(ws), tmp_path / "profile")
    assert 'id="instructions"' in dom and "Labeling instructions" in dom and "boundary" in dom
