"""The poisoning toolkit (clearset poison): a known-bad copy of a workspace and its ground truth."""

import numpy as np
import pandas as pd
import pytest

import clearset
from clearset.data.loading import load_images
from clearset.errors import ParameterError
from clearset.security.poison import apply_trigger, poison


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("src") / "src.npz"
    np.savez(path, x_train=rng.integers(0, 200, (60, 12, 12, 3), dtype=np.uint8), y_train=np.arange(60) % 3,
             x_test=rng.integers(0, 200, (30, 12, 12, 3), dtype=np.uint8), y_test=np.arange(30) % 3)
    return clearset.ingest(str(path), tmp_path_factory.mktemp("ws") / "ws"), path


def images(ws, split):
    m = ws.manifest(["index", "split", "label"])
    rows = m[m["split"] == split]
    return load_images(ws, rows["index"].to_numpy(), 12).permute(0, 2, 3, 1).numpy(), rows["label"].to_numpy()


def test_badnets_copy_patches_relabels_and_records_the_truth(src, tmp_path):
    ws_src, path = src
    before = np.load(path)["x_train"].copy()
    ws = poison(ws_src, tmp_path / "bad", rate=0.2, target=1, patch=3)
    assert np.array_equal(np.load(path)["x_train"], before)  # the source is never changed
    truth = pd.read_parquet(ws.dir("security") / "poison_truth.parquet")
    train = truth[truth["split"] == "train"].reset_index(drop=True)
    assert train["poisoned"].sum() == 12 and (train.loc[train["poisoned"], "original_label"] != 1).all()
    assert (train.loc[train["poisoned"], "label"] == 1).all()
    x, y = images(ws, "train")
    x0, y0 = images(ws_src, "train")
    hit = train["poisoned"].to_numpy()
    assert np.array_equal(y[hit], np.ones(hit.sum())) and np.array_equal(y[~hit], y0[~hit])
    assert np.array_equal(x[~hit], x0[~hit])  # clean rows untouched
    patch = x[hit][:, 8:11, 8:11]  # bottom-right, one pixel in from the border
    assert set(np.unique(patch)) == {0, 255} and np.array_equal(x[hit][:, :8], x0[hit][:, :8])
    xt, yt = images(ws, "test_triggered")
    assert len(xt) == 20 and (yt != 1).all()  # every test image not of the target, true labels kept
    m = ws.manifest(["index", "split"])
    assert truth.sort_values("index")["split"].tolist() == m.sort_values("index")["split"].tolist()


def test_blend_and_clean_label_variants(src, tmp_path):
    ws_src, _ = src
    x = np.full((2, 12, 12, 3), 100, np.uint8)
    blended = apply_trigger(x, "blend", patch=3, position="bottom-right", pattern="checker", alpha=0.1, seed=0)
    assert np.abs(blended.astype(int) - 100).max() <= 16 and not np.array_equal(blended, x)
    ws = poison(ws_src, tmp_path / "cl", attack="clean-label-patch", rate=0.1, target=2)
    t = pd.read_parquet(ws.dir("security") / "poison_truth.parquet").query("split == 'train'")
    assert t["poisoned"].sum() == 6 and (t.loc[t["poisoned"], "original_label"] == 2).all()
    assert (t["label"] == t["original_label"]).all()  # clean-label: no label changes


def test_poison_refuses_bad_settings_in_one_line(src, tmp_path):
    ws_src, _ = src
    for kw, match in [({"attack": "ghost"}, "attack"), ({"rate": 0}, "rate"), ({"target": 7}, "target"),
                      ({"patch": 12}, "patch"), ({"attack": "clean-label-patch", "rate": 0.5}, "rate"),
                      ({"position": "middle"}, "position")]:
        with pytest.raises(ParameterError, match=match):
            poison(ws_src, tmp_path / "x", **kw)
    only = tmp_path / "only.npz"
    np.savez(only, x=np.zeros((4, 8, 8, 3), np.uint8), y=np.array([0, 1, 0, 1]))
    with pytest.raises(ParameterError, match="train and test splits"):
        poison(clearset.ingest(str(only), tmp_path / "only"), tmp_path / "y")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from clearset.train import train
    from clearset.train.recipes import RECIPES, Recipe, register_recipe

    if "security-tiny" not in RECIPES:
        register_recipe(Recipe("security-tiny", "test", model="resnet8", epochs=2, batch_size=64, lr=0.05,
                               image_size=8, crop_pad=0))
    ws = clearset.ingest("builtin:digits", tmp_path_factory.mktemp("d") / "ws")
    return ws, train(ws, recipe="security-tiny", name="victim")


def test_clean_unlearning_ascends_until_chance_and_reports_the_histogram(digits_run, tmp_path):
    from clearset.security.expose import expose

    ws, run = digits_run
    res = expose(ws, "victim", defence=0.05, lr=1e-3, max_epochs=30)
    assert res["clean_acc_before"] > 0.5  # the model had learned the digits
    assert res["reached_chance"] and res["clean_acc_after"] <= 0.1  # ascent destroys the clean features
    accs = [t["clean_acc"] for t in res["trajectory"]]
    assert accs[0] == res["clean_acc_before"] and len(accs) == res["steps"] + 1
    assert sum(res["histogram"]) == res["defence_images"] == np.asarray(res["confusion"]).sum()
    assert res["suspected_target"] == int(np.argmax(res["histogram"]))
    assert 0 <= res["margin"] <= res["score"] <= 1 and res["verdict"] in ("clean", "backdoor suspected")
    assert not res["threshold_calibrated"]
    from pathlib import Path

    assert Path(res["path"]).exists() and Path(res["path"]).with_suffix(".safetensors").exists()
    one = tmp_path / "one.csv"
    m = ws.manifest(["index", "label"])
    pd.DataFrame({"index": m.loc[m["label"] == 0, "index"].head(20)}).to_csv(one, index=False)
    with pytest.raises(ParameterError, match="two"):
        expose(ws, "victim", defence=one)
    three = tmp_path / "three.csv"
    pd.DataFrame({"index": m["index"].head(3)}).to_csv(three, index=False)
    with pytest.raises(ParameterError, match="3 images"):
        expose(ws, "victim", defence=three)
    from clearset.errors import WorkspaceError

    with pytest.raises(WorkspaceError, match="no finished training run"):
        expose(ws, "ghost")


def test_spectral_signatures_and_activation_clustering_find_a_planted_direction():
    """Features of 3 classes; 10% of class 0 shifted along one direction (the trigger's signature):
    both detectors single them out, and clean classes are left alone."""
    from clearset.security.scan import activation_clusters, spectral_flags, spectral_scores

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 200)
    feats = rng.normal(0, 1, (600, 16)) + 5 * np.eye(16)[labels]
    poisoned = np.zeros(600, bool)
    poisoned[rng.choice(200, 20, replace=False)] = True  # rows of class 0
    feats[poisoned] += 6 * np.eye(16)[9]
    score = spectral_scores(feats, labels)
    flag = spectral_flags(score, labels, eps=0.1)
    assert flag[poisoned].all() and flag.sum() == 3 * 30  # 1.5 eps per class
    ac, stats = activation_clusters(feats, labels, seed=0)
    assert stats[0]["poisoned"] and not stats[1]["poisoned"] and not stats[2]["poisoned"]
    assert np.array_equal(ac, poisoned)


def test_scan_writes_the_table_for_a_run(digits_run):
    from clearset.security.scan import scan

    ws, _ = digits_run
    t = pd.read_parquet(scan(ws, "victim"))
    m = ws.manifest(["split", "label"])
    assert len(t) == int(((m["split"] == "train") & (m["label"] >= 0)).sum())
    assert (t["flagged"] == (t["spectral_flag"] & t["ac_flag"])).all() and (t["spectral_score"] >= 0).all()
    with pytest.raises(ParameterError, match="eps"):
        scan(ws, "victim", eps=0.7)
    from clearset.curate import curate

    kept = pd.read_parquet(curate(ws, strategy="unpoisoned", keep=1.0).path)["index"]
    assert set(kept) == set(t.loc[~t["flagged"], "index"])  # every unflagged image, no flagged one
    from clearset.security.expose import expose

    expose(ws, "victim", defence=0.05, lr=1e-3)
    html = clearset.report(ws).read_text()
    assert 'id="security"' in html and "clean unlearning" in html and "poisoned-row scan" in html


@pytest.mark.browser
def test_the_security_section_renders_in_headless_chromium(digits_run, tmp_path):
    """The report of a scanned and exposed run shows its Security section in a real browser."""
    from clearset.security.expose import expose
    from clearset.security.scan import scan
    from conftest import chromium_dom, require_chromium

    require_chromium()
    ws, _ = digits_run
    scan(ws, "victim")
    expose(ws, "victim", defence=0.05, lr=1e-3)
    dom = chromium_dom(clearset.report(ws), tmp_path / "profile")
    assert 'id="security"' in dom and "clean unlearning (EBYD)" in dom and "poisoned-row scan" in dom
