"""Curation strategies: one shared contract for every strategy, then each algorithm against its card."""

import numpy as np
import pandas as pd
import pytest

from clearset.curate import STRATEGIES, CurateData, rs2_sampler, select
from clearset.curate.base import bounded_quotas
from clearset.errors import ParameterError
from clearset.testing import tiny_curate_data
from conftest import digits_with_features


def make_data(n=120, classes=3, seed=0, d=8):
    return tiny_curate_data(n, classes, seed, d)


def fresh(data):
    return CurateData(**{k: v for k, v in data.__dict__.items() if not k.startswith("_")})


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_meets_the_contract(name):
    spec = STRATEGIES.get(name)
    for data, keep in [(make_data(), 0.3), (make_data(n=40, classes=1), 0.5), (make_data(n=31, classes=4), 0.9)]:
        if name == "filter" and data.n_classes == 1:
            continue  # a filter needs two verified classes (tested below)
        a = select(name, fresh(data), keep, seed=1)
        b = select(name, fresh(data), keep, seed=1)
        assert np.array_equal(a.rows, b.rows) and np.array_equal(a.weight, b.weight), "deterministic for a seed"
        assert a.rows.dtype == np.int64 and (np.diff(a.rows) > 0).all() and 0 <= a.rows[0] and a.rows[-1] < data.n
        if spec.exact:
            assert len(a.rows) == round(keep * data.n)
        assert np.isfinite(a.weight).all() and (a.weight >= 0).all() and len(a.weight) == len(a.rows)
    tiny = make_data(n=7, classes=3)  # classes of 3, 2 and 2 images
    if name != "filter":  # every image (but those a person dropped in review, for ``reviewed``)
        dropped = {"reviewed": tiny.reviewed_drop.sum(), "unpoisoned": tiny.poison_flag.sum()}.get(name, 0)
        assert len(select(name, fresh(tiny), 1.0, seed=0).rows) == 7 - dropped
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ParameterError, match="keep"):
            select(name, make_data(), bad)


def test_missing_inputs_say_what_to_run():
    data = CurateData(labels=np.arange(10) % 2, n_classes=2)
    with pytest.raises(ParameterError, match="clearset embed"):
        select("dbp", data, 0.5)
    with pytest.raises(ParameterError, match="clearset audit"):
        select("clean", data, 0.5)
    with pytest.raises(ParameterError, match="trusted"):
        select("filter", CurateData(labels=np.arange(10) % 2, n_classes=2, features=np.eye(10, 4)), 0.5)


def test_bounded_quotas_is_the_projection_with_an_exact_total():
    target = np.array([10.4, 0.2, 5.9, 3.5])
    x = bounded_quotas(target, np.full(4, 1.0), np.array([6, 5, 9, 9]), 20)
    assert x.sum() == 20 and (x >= 1).all() and (x <= [6, 5, 9, 9]).all()
    assert x[0] == 6  # capped at the cluster size; the surplus moves to the others
    from scipy.optimize import minimize  # independent: the continuous QP by SLSQP

    res = minimize(lambda v: ((v - target) ** 2).sum(), np.full(4, 5.0), method="SLSQP",
                   bounds=[(1, h) for h in (6, 5, 9, 9)], constraints={"type": "eq", "fun": lambda v: v.sum() - 20})
    assert np.abs(x - res.x).max() < 1.0  # rounding moves each quota by less than one image


def test_rs2_sampler_covers_everything_before_repeating_and_is_stateless():
    s = rs2_sampler(10, 3, seed=5)
    import torch

    g = torch.Generator()
    epochs = [s(e, g).tolist() for e in range(6)]
    assert all(len(e) == 3 for e in epochs)
    first_pass = sum(epochs[:3], []) + epochs[3][:1]
    assert sorted(first_pass) == list(range(10))  # a permutation of all 10 before any repeat
    assert s(4, g).tolist() == epochs[4]  # epoch e is a function of (seed, e) only: resume-safe


def test_semdedup_drops_planted_copies_first():
    from clearset.curate.semdedup import duplicate_scores

    data = make_data(n=100, classes=2, d=16)
    feats = data.features.copy()
    feats[90:] = feats[:10] + 1e-4  # 10 near-copies
    data.features = feats
    kept = select("semdedup", data, 0.9, seed=0).rows
    kept = set(kept.tolist())
    assert all((i in kept) != (90 + i in kept) for i in range(10))  # exactly one of each near-copy pair
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assign, sim = np.zeros(6, np.int64), np.array([0.6, 0.1, 0.5, 0.2, 0.4, 0.3], np.float32)
    score = duplicate_scores(x, assign, sim, block=4)  # block smaller than the cluster: two blocks
    order = np.argsort(sim)
    for pos, r in enumerate(order):  # brute force: max similarity to anything earlier in the order
        expect = -1 if pos == 0 else max(float(x[r] @ x[q]) for q in order[:pos])
        assert score[r] == pytest.approx(expect, abs=1e-6)


def test_dbp_follows_the_card():
    from clearset.curate.density import cluster_complexity

    rng = np.random.default_rng(0)
    tight = rng.normal(0, 0.01, (60, 3)) + [1, 0, 0]
    loose = rng.normal(0, 0.25, (60, 3)) + [0, 1, 0]
    x = np.concatenate([tight, loose]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    data = CurateData(labels=np.zeros(120, np.int64), n_classes=1, features=x)
    sub = select("dbp", data, 0.5, seed=0, clusters=2)
    assert (sub.rows >= 60).sum() > (sub.rows < 60).sum()  # the complex (loose) cluster gets the larger quota
    assert (sub.rows < 60).sum() >= 0.5 * 60 / 2  # but at least half the uniform share (balance 0.5)
    c = np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0]], np.float32)
    assign = np.array([0, 0, 1, 2])
    sim = np.array([1.0, 0.8, 0.9, 0.5])
    d_intra, d_inter = cluster_complexity(c, assign, sim, nearest=1)
    assert np.allclose(d_intra, [0.1, 0.1, 0.5]) and np.allclose(d_inter, [1 - 0.6, 1 - 0.8, 1 - 0.8])


def test_clean_and_filter_prefer_correct_labels():
    data = make_data(n=200, classes=2)
    wrong = np.zeros(200, bool)
    wrong[::5] = True
    noisy = data.labels.copy()
    noisy[wrong] = 1 - noisy[wrong]
    data.suggested_label = data.labels.copy()  # the audit suggests the true label
    data.labels = noisy
    data.is_label_issue = wrong
    kept = select("clean", fresh(data), 0.5, seed=0).rows
    assert not wrong[kept].any()
    relabelled = select("clean", fresh(data), 0.5, seed=0, relabel=True)
    assert relabelled.info["relabelled"] == int(wrong[relabelled.rows].sum()) > 0
    data.trusted = np.full(200, -1)
    data.trusted[:40] = np.arange(40) % 2  # verified labels
    kept = select("filter", fresh(data), 0.5, seed=0).rows
    assert wrong[kept].mean() < 0.5 * wrong.mean()


def test_craig_weights_count_the_members_each_medoid_serves():
    from clearset.curate.craig import facility_location

    g = np.concatenate([np.zeros((30, 2)), np.ones((10, 2)) * 5]).astype(np.float32)
    picks, w = facility_location(g, 2, seed=0)
    assert sorted(w.tolist()) == [10.0, 30.0] and {int(p) < 30 for p in picks} == {True, False}


def test_curate_workspace_cli_and_training_on_the_subset(tmp_path):
    from typer.testing import CliRunner

    from clearset.cli import app
    from clearset.curate import curate

    ws = digits_with_features(tmp_path / "ws")
    m = ws.manifest()
    r = curate(ws, strategy="dbp", keep=0.25)
    train_rows = m[m["split"] == "train"]
    assert len(r.index) == round(0.25 * len(train_rows)) and set(r.index) <= set(train_rows["index"])
    assert curate(ws, strategy="dbp", keep=0.25).cached
    runner = CliRunner()
    res = runner.invoke(app, ["curate", str(ws.root), "--strategy", "clean", "--keep", "0.5"])
    assert res.exit_code == 2 and "clearset audit" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["curate", str(ws.root), "--strategy", "random", "--keep", "2"])
    assert res.exit_code == 2 and "--keep" in res.output
    res = runner.invoke(app, ["curate", str(ws.root), "--strategy", "dbp", "--option", "clusterz=3"])
    assert res.exit_code == 2 and "no option" in res.output
    assert not any((ws.root / "subsets").glob("clean*")) and not any((ws.root / "subsets").glob("random*"))
    rs = curate(ws, strategy="rs2", keep=0.1)
    from clearset.train import train
    from clearset.train.recipes import Recipe

    tiny = Recipe("tiny", "t", model="convnet3", epochs=2, batch_size=32, lr=0.05, image_size=8, crop_pad=0)
    run = train(ws, recipe=tiny, subset=rs.path)
    assert run.config["sampler"].startswith("rs2-") and run.config["train_images"] == len(train_rows)
    assert all(abs(e["images_per_s"]) > 0 for e in run.metrics)
    lab = tmp_path / "relabel.parquet"
    pd.DataFrame({"index": train_rows["index"][:50], "weight": 1.0, "label": 3}).to_parquet(lab)
    assert train(ws, recipe=tiny, subset=lab).config["targets"].startswith("relabelled:")


def test_craig_augment_appends_strong_copies_of_the_coreset(tmp_path):
    from clearset.curate import curate
    from clearset.train import train
    from clearset.train.recipes import Recipe

    ws = digits_with_features(tmp_path / "ws")
    m = ws.manifest()
    r = curate(ws, strategy="craig-augment-probe", keep=0.1)
    table = pd.read_parquet(r.path)
    n_train = int((m["split"] == "train").sum())
    assert len(table) == n_train and int(table["augment"].sum()) == round(0.1 * n_train)
    tiny = Recipe("tiny", "t", model="resnet8", epochs=1, batch_size=64, lr=0.05, image_size=8, crop_pad=0)
    run = train(ws, recipe=tiny, subset=r.path)
    assert run.config["strong_copies"] == round(0.1 * n_train)
    assert run.config["train_images"] == n_train + round(0.1 * n_train)


def test_filter_agree_mode_and_el2n_offset():
    data = make_data(n=200, classes=2)
    wrong = np.zeros(200, bool)
    wrong[::5] = True
    data.labels = np.where(wrong, 1 - data.labels, data.labels)
    data.trusted = np.full(200, -1)
    data.trusted[:40] = np.arange(40) % 2
    agree = select("filter", fresh(data), 0.3, seed=0, mode="agree")
    assert wrong[agree.rows].mean() < 0.5 * wrong.mean() and agree.info["mode"] == "agree"
    with pytest.raises(ParameterError, match="mode"):
        select("filter", fresh(data), 0.3, mode="best")
    hard = select("el2n-probe", fresh(data), 0.2, seed=0).rows
    shifted = select("el2n-probe", fresh(data), 0.2, seed=0, offset=0.2).rows
    assert len(shifted) == len(hard) and set(hard).isdisjoint(set(shifted))  # the 20% hardest skipped


@pytest.mark.parametrize("bf16", [True, False])
def test_spherical_kmeans_recovers_planted_clusters_and_assigns_exactly(bf16, monkeypatch):
    import clearset.ops.knn as knn_mod
    from clearset.ops import kmeans

    monkeypatch.setattr(knn_mod, "bf16_native", lambda: bf16)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (6, 16))
    truth = np.repeat(np.arange(6), 50)
    x = centres[truth] + rng.normal(0, 0.1, (300, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    c, assign, sim = kmeans.spherical_kmeans(x, 6, seed=0)
    assert np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-5)
    # every planted cluster maps to one centroid, and no two planted clusters share one
    pairs = {(t, a) for t, a in zip(truth, assign)}
    assert len(pairs) == 6 and len({a for _, a in pairs}) == 6
    exact = x @ c.T
    assert np.array_equal(assign, exact.argmax(1)) and np.allclose(sim, exact.max(1), atol=1e-6)
    again = kmeans.spherical_kmeans(x, 6, seed=0)
    assert all(np.array_equal(u, v) for u, v in zip((c, assign, sim), again)), "deterministic for a seed"
    monkeypatch.setattr(kmeans, "ASSIGN_BLOCK", 7)  # float16 input, assigned 7 rows at a time
    _, assign16, _ = kmeans.spherical_kmeans(x.astype(np.float16), 6, seed=0)
    assert len({(t, a) for t, a in zip(truth, assign16)}) == 6


def test_spherical_kmeans_reseeds_empty_clusters_and_caps_k():
    from clearset.ops.kmeans import lloyd, spherical_kmeans

    x = np.repeat(np.eye(3, dtype=np.float32), [20, 20, 1], axis=0)  # 3 distinct points, 41 rows
    c = lloyd(x, 3, niter=5, rng=np.random.default_rng(4))  # an init with two centroids on one point empties one
    assert {tuple(np.round(r, 4)) for r in c} == {tuple(r) for r in np.eye(3)}
    c, assign, _ = spherical_kmeans(x[[0, 20]], 5, seed=0)
    assert len(c) == 2 and set(assign) == {0, 1}


def test_adaptations_carry_their_own_names_and_say_how_they_differ():
    for name in STRATEGIES.names():
        if name.endswith("-probe"):
            assert STRATEGIES.differs(name), f"{name}: an adaptation needs its 'differs from the paper' line"
    assert not STRATEGIES.differs("random")
    with pytest.raises(ParameterError, match="'craig' is now named 'craig-probe'"):
        select("craig", make_data(), 0.5)


def test_ssp_is_dbp_with_uniform_quotas():
    """The DBP card's SSP baseline: the same clusters, even quotas (where a cluster is big enough), the
    farthest from its centroid kept first."""
    from clearset.curate.base import spherical_kmeans
    from clearset.curate.density import dbp_rows

    data = make_data(n=400, classes=4, d=8)
    x = data.normalised()
    rows, info = dbp_rows(x, 100, seed=3, clusters=10, uniform=True)
    _, assign, sim = spherical_kmeans(x, 10, 3)
    kept = np.bincount(assign[rows], minlength=10)
    sizes = np.bincount(assign, minlength=10)
    big = sizes >= 10
    assert kept[big].max() - kept[big].min() <= 1 and (kept[~big] == sizes[~big]).all()
    for j in range(10):  # inside a cluster: the least prototypical
        members = np.flatnonzero(assign == j)
        chosen = np.isin(members, rows)
        if chosen.any() and (~chosen).any():
            assert sim[members][chosen].max() <= sim[members][~chosen].min()
    assert not np.array_equal(select("ssp", fresh(data), 0.25, seed=3).rows, select("dbp", fresh(data), 0.25, seed=3).rows)
