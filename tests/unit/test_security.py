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
